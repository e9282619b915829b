package eviction

import (
	"bytes"
	"context"
	"fmt"
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
	// maxSampleSize and maxPoolSize bound the options, so that a batch
	// always has room for the pool and a sample (BatchSizeMax).
	maxSampleSize = 1024
	maxPoolSize   = 1024
	// BatchSizeMax bounds the candidates of one policy call: the pool, the
	// already expired keys and the samples of one batch. It is the plugin
	// ABI's limit (plugins/abi.CandidatesMax), so that a plugin can rank
	// any batch, and it bounds the keys sampled and copied under the
	// engine's read lock at once: 2 ms for a full batch from 100,000 keys
	// (BenchmarkChoose, 2 shared cores), against about 10 µs per victim
	// held across a whole Select before batching.
	BatchSizeMax = 4096
	// roundsPerVictim and extraRounds bound the samples of one Select at
	// roundsPerVictim*maxKeys + extraRounds rounds of sampleSize keys. A
	// round finds one victim unless every key it saw was chosen already or
	// not eligible, which the slack allows for without letting a nearly
	// empty (or nearly all-persistent, for volatile-*) keyspace spin.
	roundsPerVictim = 4
	extraRounds     = 64
	// maxIdleRounds ends a Select's sampling after this many rounds in a
	// row whose samples held only keys it had chosen already: the few keys
	// left are hard to find by sampling, and the next Select will find them.
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

// Evictor chooses eviction victims the way Redis does: it samples a few
// keys per victim wanted, merges them into a pool of the best candidates
// seen so far, lets the Policy rank the lot, takes the best as victims and
// keeps the next best as the pool. The pool survives between Select calls,
// so good candidates accumulate.
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

	// Scratch space, empty between calls. batch holds a batch's fresh
	// candidates (already expired keys, then samples), with keys copied
	// into batchKeys before the engine's lock is released.
	batch     []engine.Candidate
	batchKeys []byte
	merged    []engine.Candidate
	index     map[uint64]int // maphash of a merged key -> its index in merged
	ranks     []int
	taken     []bool
	chosen    map[string]struct{}
	seed      maphash.Seed // of index

	// sel is the state of the Choose in progress. fill, made once, fills
	// a batch from an engine with it, so that passing it to a View costs
	// no allocation; held and heldView are Select's View of its engine.
	sel      selection
	fill     func(e *engine.Engine)
	held     *engine.Engine
	heldView View
}

// NewEvictor returns an Evictor for p, which must not be nil, with an empty
// pool. The Evictor is bound to p: make a new one when the policy changes.
func NewEvictor(p Policy, opts ...Option) *Evictor {
	ev := &Evictor{
		policy:     p,
		sampleSize: DefaultSampleSize,
		poolSize:   DefaultPoolSize,
		index:      make(map[uint64]int),
		chosen:     make(map[string]struct{}),
		seed:       maphash.MakeSeed(),
	}
	for _, o := range opts {
		o(ev)
	}
	ev.fill = func(e *engine.Engine) { ev.sel.info = ev.sel.fill(e) }
	ev.heldView = func(fn func(*engine.Engine)) error {
		fn(ev.held)
		return nil
	}
	return ev
}

// Policy returns the policy the Evictor was made for.
func (ev *Evictor) Policy() Policy { return ev.policy }

// View gives the Evictor read access to a shard's engine: it runs fn with
// the engine, holding whatever makes reading it safe for that long (the
// engine's read lock: raftgroup.Group.Read with stale consistency), and
// returns an error if it cannot (then Choose returns it). fn only samples
// and copies: it never calls the policy, and it returns in a few
// milliseconds at most (BatchSizeMax keys: BenchmarkChoose).
type View func(fn func(e *engine.Engine)) error

// Choose appends to out and returns victims for eviction: copies of the
// chosen candidates, each with its own copy of the key, best victim first.
// It stops once their SizeBytes add up to at least bytesToFree, or maxKeys
// victims are chosen, or nothing more is evictable (the policy declines
// every candidate, as noeviction does, or the samples run out); nothing is
// chosen if bytesToFree or maxKeys is not positive. rnd(n) must return a
// uniform int in [0, n); it drives the engine's sampling (Engine.Sample).
//
// Choose works in batches. For each it reads the engine once, through
// view: the keys that have already expired at nowUnixMs, from the TTL index
// (first batch only, at most 256), and then sampleSize keys per victim it
// expects to need (estimated from the bytes left to free and the sampled
// keys' mean size; only keys with an expiry for a VolatileOnly policy), at
// most BatchSizeMax candidates with the pool. With the engine released, it
// merges the batch into the pool (one entry per key, the newest version
// winning), asks the policy once to rank the lot, and takes, best first, as
// many victims as the batch holds expired keys plus one per sampleSize
// keys sampled; the next best become the pool. One batch usually suffices,
// so a Select costs one policy call: the policy, which may be a plugin
// taking up to its timeout, never runs while the engine is locked.
//
// Victims are chosen at the version they were sampled at, and the caller
// proposes one OpEvict per victim at that Version, so a key rewritten since
// survives. Call Choose again only once those evictions are applied: until
// then the engine still holds the victims and may offer them again.
//
// On an error, from view, from ctx, or from the policy (which ctx also
// bounds), Choose returns the victims chosen so far, which are valid, and
// the error.
func (ev *Evictor) Choose(ctx context.Context, view View, nowUnixMs int64, bytesToFree int64, maxKeys int, rnd func(int) int, out []engine.Candidate) ([]engine.Candidate, error) {
	if bytesToFree <= 0 || maxKeys <= 0 {
		return out, nil
	}
	ev.sel = selection{
		ev: ev, now: nowUnixMs, bytesToFree: bytesToFree, maxKeys: maxKeys,
		start: len(out), out: out, rounds: maxRounds(maxKeys), rnd: rnd, first: true,
	}
	sel := &ev.sel
	defer func() {
		clear(ev.chosen)
		ev.sel = selection{}
	}()
	for ; !sel.done(); sel.first = false {
		if err := ctx.Err(); err != nil {
			return sel.out, fmt.Errorf("eviction: %w", err)
		}
		sel.info = batchInfo{}
		if err := view(ev.fill); err != nil {
			ev.dropBatch()
			return sel.out, fmt.Errorf("eviction: read the engine: %w", err)
		}
		b := sel.info
		ev.merge()
		if len(ev.merged) == 0 {
			break // nothing (more) the policy may evict, or no rounds left
		}
		quota := max(1, b.expired+b.sampled/ev.sampleSize)
		took, err := sel.rank(ctx, quota)
		if err != nil {
			return sel.out, fmt.Errorf("eviction: policy %s: %w", ev.policy.Name(), err)
		}
		if took == 0 || b.exhausted || sel.rounds == 0 {
			break // the policy declines everything it sees, or sampling ran dry
		}
	}
	return sel.out, nil
}

// Select is Choose for a caller that has e in hand: single-threaded, or
// holding e's read lock for the whole call (a test; the hit-ratio
// simulation). The policy then runs under that lock, so use Select only
// with a policy that does not block, such as the built-ins, which never
// fail. If the policy fails, Select returns the victims chosen before.
func (ev *Evictor) Select(e *engine.Engine, nowUnixMs int64, bytesToFree int64, maxKeys int, rnd func(int) int, out []engine.Candidate) []engine.Candidate {
	ev.held = e
	out, _ = ev.Choose(context.Background(), ev.heldView, nowUnixMs, bytesToFree, maxKeys, rnd, out)
	ev.held = nil
	return out
}

// selection is the state of one Choose call.
type selection struct {
	ev          *Evictor
	now         int64
	bytesToFree int64
	maxKeys     int
	rnd         func(int) int
	start       int // victims are out[start:]
	out         []engine.Candidate
	freed       int64 // SizeBytes of out[start:]
	rounds      int   // sampling rounds left
	idle        int   // sampling rounds in a row that found only chosen keys
	first       bool  // the next batch is the first: it takes expired keys
	info        batchInfo
}

func (s *selection) done() bool {
	return s.freed >= s.bytesToFree || len(s.out)-s.start >= s.maxKeys
}

// take appends a victim, with its own copy of the key.
func (s *selection) take(c *engine.Candidate) {
	v := *c
	v.Key = bytes.Clone(c.Key)
	s.out = append(s.out, v)
	s.ev.chosen[string(v.Key)] = struct{}{}
	s.freed += v.SizeBytes
}

// batchInfo describes a batch fill made.
type batchInfo struct {
	expired   int  // already expired keys taken from the TTL index
	sampled   int  // sampled keys not chosen already
	exhausted bool // sampling found nothing eligible, or idled too long
}

// fill builds a batch from e, to which it has read access: the already
// expired keys for the first batch, then samples, sampleSize keys per victim still
// expected, and copies their keys, so that the batch stays valid once the
// access ends.
func (s *selection) fill(e *engine.Engine) batchInfo {
	ev := s.ev
	var b batchInfo
	ev.batch = ev.batch[:0]
	room := BatchSizeMax - len(ev.pool)
	// Bytes the batch is expected to free: all of the expired keys' (every
	// built-in takes them first), and the victims' to come from sampling,
	// at the mean size of the keys sampled.
	left := s.bytesToFree - s.freed
	keysLeft := s.maxKeys - (len(s.out) - s.start)
	if s.first {
		ev.batch = e.Expired(s.now, min(keysLeft, maxExpiredPerSelect, room), ev.batch)
		b.expired = len(ev.batch)
		for i := range ev.batch {
			left -= ev.batch[i].SizeBytes
		}
		keysLeft -= b.expired
	}
	// No more victims can come from sampling than there are keys to sample.
	eligible := e.Len()
	if ev.policy.VolatileOnly() {
		eligible = e.Stats().VolatileKeys
	}
	if eligible == 0 {
		b.exhausted = true
	}
	keysLeft = min(keysLeft, eligible)
	var sampledBytes int64
	for s.rounds > 0 && keysLeft > 0 && left > 0 {
		// Victims expected from sampling so far: one per sampleSize keys.
		if want := victimsFor(left, sampledBytes, b.sampled, keysLeft); b.sampled >= want*ev.sampleSize {
			break
		}
		n := min(ev.sampleSize, room-len(ev.batch))
		if n <= 0 {
			break // the batch is full
		}
		s.rounds--
		n0 := len(ev.batch)
		ev.batch = e.Sample(s.rnd, n, ev.policy.VolatileOnly(), s.now, ev.batch)
		if len(ev.batch) == n0 {
			b.exhausted = true // nothing stored that the policy may evict
			break
		}
		// Keep the keys not chosen already in this Select.
		k := n0
		for i := n0; i < len(ev.batch); i++ {
			if len(ev.chosen) > 0 {
				if _, ok := ev.chosen[string(ev.batch[i].Key)]; ok {
					continue
				}
			}
			sampledBytes += ev.batch[i].SizeBytes
			ev.batch[k] = ev.batch[i]
			k++
		}
		clear(ev.batch[k:])
		ev.batch = ev.batch[:k]
		if k == n0 {
			if s.idle++; s.idle >= maxIdleRounds {
				b.exhausted = true
				break
			}
			continue
		}
		s.idle = 0
		b.sampled += k - n0
	}
	ev.ownBatchKeys()
	return b
}

// victimsFor estimates the victims needed to free left bytes, at the mean
// size of the sampled keys (sampledBytes over sampled; one victim before
// any sample), between 1 and keysLeft.
func victimsFor(left, sampledBytes int64, sampled, keysLeft int) int {
	if sampled == 0 || sampledBytes <= 0 {
		return 1
	}
	mean := max(sampledBytes/int64(sampled), 1)
	n := left / mean // rounded up, without overflowing near math.MaxInt64
	if left%mean != 0 {
		n++
	}
	return int(min(max(n, 1), int64(keysLeft)))
}

// ownBatchKeys copies the batch's keys out of the engine's memory into
// batchKeys, in one buffer.
func (ev *Evictor) ownBatchKeys() {
	n := 0
	for i := range ev.batch {
		n += len(ev.batch[i].Key)
	}
	if cap(ev.batchKeys) < n {
		ev.batchKeys = make([]byte, 0, n)
	}
	buf := ev.batchKeys[:0]
	for i := range ev.batch {
		start := len(buf)
		buf = append(buf, ev.batch[i].Key...)
		ev.batch[i].Key = buf[start:len(buf):len(buf)]
	}
	ev.batchKeys = buf
}

// dropBatch empties the batch and the merged candidates.
func (ev *Evictor) dropBatch() {
	clear(ev.batch)
	ev.batch = ev.batch[:0]
	clear(ev.merged)
	ev.merged = ev.merged[:0]
}

// rank asks the policy to rank the merged candidates, takes up to quota
// victims in its order and keeps the next poolSize as the pool. It returns
// the victims taken. On the policy's error nothing changes but the batch,
// which is dropped.
func (s *selection) rank(ctx context.Context, quota int) (int, error) {
	ev := s.ev
	defer ev.dropBatch()
	var err error
	ev.ranks, err = ev.policy.Victims(ctx, s.now, ev.merged, min(len(ev.merged), quota+ev.poolSize), ev.ranks[:0])
	if err != nil {
		return 0, err
	}
	ev.resetTaken(len(ev.merged))
	took := 0
	ev.spare, ev.spareKeys = ev.spare[:0], ev.spareKeys[:0]
	for _, i := range ev.ranks {
		if !ev.valid(i, ev.merged) {
			continue
		}
		switch {
		case took < quota && !s.done():
			s.take(&ev.merged[i]) // before the swap: it may point into pool keys
			took++
		case len(ev.spare) < ev.poolSize:
			ev.keepSpare(&ev.merged[i])
		}
	}
	ev.pool, ev.spare = ev.spare, ev.pool
	ev.poolKeys, ev.spareKeys = ev.spareKeys, ev.poolKeys
	return took, nil
}

// maxRounds is the bound on Select's sampling rounds for maxKeys victims.
func maxRounds(maxKeys int) int {
	if maxKeys > (math.MaxInt-extraRounds)/roundsPerVictim {
		return math.MaxInt
	}
	return roundsPerVictim*maxKeys + extraRounds
}

// merge sets merged to the pool plus the batch, one entry per key (the
// newest version; at equal versions the batch's, whose access data is
// fresher), leaving out keys chosen in this Select.
func (ev *Evictor) merge() {
	ev.merged = ev.merged[:0]
	clear(ev.index)
	add := func(c *engine.Candidate) {
		if len(ev.chosen) > 0 {
			if _, ok := ev.chosen[string(c.Key)]; ok {
				return
			}
		}
		h := maphash.Bytes(ev.seed, c.Key)
		if j, ok := ev.index[h]; ok {
			if m := &ev.merged[j]; bytes.Equal(m.Key, c.Key) {
				if c.Version >= m.Version {
					*m = *c
				}
				return
			}
			// A 64-bit hash collision of two keys: keep both; the second
			// is not indexed, so a later duplicate of it may repeat it,
			// which valid and take tolerate.
		} else {
			ev.index[h] = len(ev.merged)
		}
		ev.merged = append(ev.merged, *c)
	}
	for i := range ev.pool {
		add(&ev.pool[i])
	}
	for i := range ev.batch {
		add(&ev.batch[i])
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
// used: in range, not seen before in this answer, and not a key chosen
// already. Built-in policies always answer validly and plugins.Eviction
// checks its guest's answer, but a bad answer must not make the Evictor
// index out of range or pick a key twice.
func (ev *Evictor) valid(i int, cands []engine.Candidate) bool {
	if i < 0 || i >= len(cands) || ev.taken[i] {
		return false
	}
	ev.taken[i] = true
	if len(ev.chosen) > 0 {
		if _, ok := ev.chosen[string(cands[i].Key)]; ok {
			return false
		}
	}
	return true
}
