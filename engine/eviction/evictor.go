package eviction

import (
	"bytes"
	"hash/maphash"
	"math"

	"github.com/wisp-db/wisp/engine"
)

// Defaults and bounds of an Evictor.
const (
	// DefaultSampleSize is the number of keys sampled per round. Redis
	// samples 5 (maxmemory-samples) into a pool of 16; sampling as many as
	// the pool holds costs little more here and tracks exact LRU closely.
	DefaultSampleSize = 16
	// DefaultPoolSize is the number of good candidates kept between rounds,
	// as in Redis (EVPOOL_SIZE).
	DefaultPoolSize = 16
	// maxSampleSize and maxPoolSize bound the options: each round ranks
	// sample+pool candidates under the engine's read lock.
	maxSampleSize = 1024
	maxPoolSize   = 1024
	// roundsPerVictim and extraRounds bound the rounds of one Select at
	// roundsPerVictim*maxKeys + extraRounds. A round picks one victim unless
	// every candidate it saw was picked already or not eligible, which the
	// slack allows for without letting a nearly empty (or nearly
	// all-persistent, for volatile-*) keyspace spin under the read lock.
	roundsPerVictim = 4
	extraRounds     = 64
	// maxIdleRounds ends a Select after this many rounds in a row whose
	// samples held only keys it had chosen already: the few keys left are
	// hard to find by sampling, and the next Select will find them.
	maxIdleRounds = 64
	// maxExpiredPerSelect bounds the already expired keys one Select takes
	// from the engine's TTL index before it starts sampling.
	maxExpiredPerSelect = 256
)

// Option configures an Evictor.
type Option func(*Evictor)

// WithSampleSize sets the number of keys sampled per round (default
// DefaultSampleSize; n <= 0 keeps the default; at most 1024). More samples
// approximate the policy better and cost more per victim.
func WithSampleSize(n int) Option {
	return func(ev *Evictor) {
		if n > 0 {
			ev.sampleSize = min(n, maxSampleSize)
		}
	}
}

// WithPoolSize sets the number of candidates kept between rounds (default
// DefaultPoolSize; n <= 0 keeps the default; at most 1024).
func WithPoolSize(n int) Option {
	return func(ev *Evictor) {
		if n > 0 {
			ev.poolSize = min(n, maxPoolSize)
		}
	}
}

// Evictor chooses eviction victims the way Redis does: each round it samples
// a few keys, merges them into a pool of the best candidates seen so far,
// lets the Policy rank the lot, takes the best as a victim and keeps the next
// best as the pool. The pool survives between Select calls, so good
// candidates accumulate.
//
// An Evictor is not safe for concurrent use: each shard leader owns one.
type Evictor struct {
	policy     Policy
	sampleSize int
	poolSize   int

	// pool holds the best candidates not yet chosen, best first, with keys
	// owned by the Evictor (copies in poolKeys). spare and spareKeys are the
	// double buffer the next pool is built in.
	// Invariant: len(pool) <= poolSize; no two entries share a key.
	pool, spare         []engine.Candidate
	poolKeys, spareKeys [][]byte

	// Scratch space, empty between calls.
	sample []engine.Candidate
	merged []engine.Candidate
	hashes []uint64 // of merged's keys
	ranks  []int
	taken  []bool
	chosen map[string]struct{}
	seed   maphash.Seed // of hashes
}

// NewEvictor returns an Evictor for p, which must not be nil, with an empty
// pool. The Evictor is bound to p: make a new one when the policy changes.
func NewEvictor(p Policy, opts ...Option) *Evictor {
	ev := &Evictor{
		policy:     p,
		sampleSize: DefaultSampleSize,
		poolSize:   DefaultPoolSize,
		chosen:     make(map[string]struct{}),
		seed:       maphash.MakeSeed(),
	}
	for _, o := range opts {
		o(ev)
	}
	return ev
}

// Policy returns the policy the Evictor was made for.
func (ev *Evictor) Policy() Policy { return ev.policy }

// Select appends to out and returns victims for eviction: copies of the
// chosen candidates, each with its own copy of the key, best victim first.
// It stops once their SizeBytes add up to at least bytesToFree, or maxKeys
// victims are chosen, or nothing more is evictable (the policy declines
// every candidate, as noeviction does, or the rounds run out); nothing is
// chosen if bytesToFree or maxKeys is not positive. rnd(n) must return a
// uniform int in [0, n); it drives the engine's sampling (Engine.Sample).
//
// Keys that have already expired at nowUnixMs are offered to the policy
// first, taken from e's TTL index (at most 256 per call), before any
// sampling: every built-in policy takes them first. Then each round samples
// the engine (only keys with an expiry for a VolatileOnly policy), merges the
// sample into the pool (one entry per key, the newest version winning), and
// takes the policy's best.
//
// The caller holds e's read lock for the call, and proposes one OpEvict per
// victim at its Version, so a key rewritten since survives. Call Select
// again only once those evictions are applied: until then the engine still
// holds the victims and may offer them again.
func (ev *Evictor) Select(e *engine.Engine, nowUnixMs int64, bytesToFree int64, maxKeys int, rnd func(int) int, out []engine.Candidate) []engine.Candidate {
	if bytesToFree <= 0 || maxKeys <= 0 {
		return out
	}
	start := len(out)
	var freed int64
	done := func() bool { return freed >= bytesToFree || len(out)-start >= maxKeys }
	take := func(c *engine.Candidate) {
		v := *c
		v.Key = bytes.Clone(c.Key)
		out = append(out, v)
		ev.chosen[string(v.Key)] = struct{}{}
		freed += v.SizeBytes
	}
	defer clear(ev.chosen)

	// Expired keys first.
	ev.sample = e.Expired(nowUnixMs, min(maxKeys, maxExpiredPerSelect), ev.sample[:0])
	ev.ranks = ev.policy.Victims(nowUnixMs, ev.sample, len(ev.sample), ev.ranks[:0])
	ev.resetTaken(len(ev.sample))
	for _, i := range ev.ranks {
		if done() {
			break
		}
		if ev.valid(i, ev.sample) {
			take(&ev.sample[i])
		}
	}

	rounds, idle := maxRounds(maxKeys), 0
	for r := 0; r < rounds && !done(); r++ {
		ev.sample = e.Sample(rnd, ev.sampleSize, ev.policy.VolatileOnly(), nowUnixMs, ev.sample[:0])
		ev.merge()
		if len(ev.merged) == 0 {
			if len(ev.sample) == 0 {
				break // nothing stored that the policy may evict
			}
			if idle++; idle >= maxIdleRounds {
				break
			}
			continue // everything sampled was chosen already
		}
		idle = 0
		ev.ranks = ev.policy.Victims(nowUnixMs, ev.merged, ev.poolSize+1, ev.ranks[:0])
		ev.resetTaken(len(ev.merged))
		best := -1
		ev.spare, ev.spareKeys = ev.spare[:0], ev.spareKeys[:0]
		for _, i := range ev.ranks {
			if !ev.valid(i, ev.merged) {
				continue
			}
			switch {
			case best < 0:
				best = i
			case len(ev.spare) < ev.poolSize:
				ev.keepSpare(&ev.merged[i])
			}
		}
		if best >= 0 {
			take(&ev.merged[best]) // before the swap: it may point into pool keys
		}
		ev.pool, ev.spare = ev.spare, ev.pool
		ev.poolKeys, ev.spareKeys = ev.spareKeys, ev.poolKeys
		clear(ev.merged) // drop references to engine keys
		ev.merged = ev.merged[:0]
		if best < 0 {
			break // the policy declines everything it sees
		}
	}
	clear(ev.sample)
	ev.sample = ev.sample[:0]
	return out
}

// maxRounds is the bound on Select's sampling rounds for maxKeys victims.
func maxRounds(maxKeys int) int {
	if maxKeys > (math.MaxInt-extraRounds)/roundsPerVictim {
		return math.MaxInt
	}
	return roundsPerVictim*maxKeys + extraRounds
}

// merge sets merged to the pool plus the sample, one entry per key (the
// newest version; at equal versions the sample's, whose access data is
// fresher), leaving out keys chosen in this Select.
func (ev *Evictor) merge() {
	ev.merged, ev.hashes = ev.merged[:0], ev.hashes[:0]
	add := func(c *engine.Candidate) {
		if len(ev.chosen) > 0 {
			if _, ok := ev.chosen[string(c.Key)]; ok {
				return
			}
		}
		h := maphash.Bytes(ev.seed, c.Key)
		for j, mh := range ev.hashes {
			if m := &ev.merged[j]; mh == h && bytes.Equal(m.Key, c.Key) {
				if c.Version >= m.Version {
					*m = *c
				}
				return
			}
		}
		ev.merged = append(ev.merged, *c)
		ev.hashes = append(ev.hashes, h)
	}
	for i := range ev.pool {
		add(&ev.pool[i])
	}
	for i := range ev.sample {
		add(&ev.sample[i])
	}
}

// keepSpare appends a copy of c, key included, to the next pool.
func (ev *Evictor) keepSpare(c *engine.Candidate) {
	k := len(ev.spare)
	if k < cap(ev.spareKeys) {
		ev.spareKeys = ev.spareKeys[:k+1]
	} else {
		ev.spareKeys = append(ev.spareKeys, nil)
	}
	ev.spareKeys[k] = append(ev.spareKeys[k][:0], c.Key...)
	v := *c
	v.Key = ev.spareKeys[k]
	ev.spare = append(ev.spare, v)
}

// resetTaken prepares taken for a policy answer over n candidates.
func (ev *Evictor) resetTaken(n int) {
	ev.taken = append(ev.taken[:0], make([]bool, n)...)
}

// valid reports whether index i of the policy's answer over cands may be
// used: in range and not seen before in this answer. Built-in policies
// always answer validly; a plugin's adapter should check too, but a bad
// answer must not make the Evictor index out of range or pick a key twice.
func (ev *Evictor) valid(i int, cands []engine.Candidate) bool {
	if i < 0 || i >= len(cands) || ev.taken[i] {
		return false
	}
	ev.taken[i] = true
	return true
}
