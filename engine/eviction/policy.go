package eviction

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/wisp-db/wisp/engine"
)

// Policy chooses which of a batch of candidates to evict. The built-ins
// (New) implement it, and so does a loaded WASM eviction plugin
// (plugins.Eviction): the shape, a batch of candidates in and victim
// indexes out, is the one the plugin ABI carries in a single call.
//
// The Evictor declares it because it is the Evictor's input; shards/ may
// declare the same method set where it uses a policy.
type Policy interface {
	// Name is the policy's name as --eviction-policy spells it.
	Name() string
	// VolatileOnly reports whether only keys with an expiry time are
	// candidates (the volatile-* policies). The Evictor then samples only
	// such keys; Victims ignores others anyway.
	VolatileOnly() bool
	// Victims appends to out the indexes into cands of the keys to evict,
	// best victim first, at most max of them (none if max <= 0), each at most
	// once, and returns the extended slice. Candidates that have expired at
	// nowUnixMs come first: dropping them loses nothing a read could see.
	// Victims must not modify cands, nor retain cands or their Keys after it
	// returns.
	//
	// ctx bounds the call: a policy that can block (a plugin) returns by
	// ctx's deadline. On an error Victims returns out unchanged, and the
	// caller decides without it (the Evictor stops and reports the error;
	// plugins.Guarded answers with a built-in instead). The built-ins never
	// fail and never block.
	Victims(ctx context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error)
}

// Names of the built-in policies, as --eviction-policy spells them. They are
// Redis's maxmemory-policy values.
const (
	// NoEviction never chooses a victim: once memory is full, writes that
	// would grow it fail (engine.ErrMemoryFull).
	NoEviction = "noeviction"
	// AllKeysLRU evicts the least recently used keys.
	AllKeysLRU = "allkeys-lru"
	// AllKeysLFU evicts the least frequently used keys (ties: least recently
	// used first).
	AllKeysLFU = "allkeys-lfu"
	// AllKeysRandom evicts random keys.
	AllKeysRandom = "allkeys-random"
	// VolatileLRU is AllKeysLRU restricted to keys with an expiry time.
	VolatileLRU = "volatile-lru"
	// VolatileLFU is AllKeysLFU restricted to keys with an expiry time.
	VolatileLFU = "volatile-lfu"
	// VolatileRandom is AllKeysRandom restricted to keys with an expiry
	// time.
	VolatileRandom = "volatile-random"
	// VolatileTTL evicts the keys that expire soonest (ties: least recently
	// used first); keys without an expiry time are never evicted.
	VolatileTTL = "volatile-ttl"
)

// Names returns the names of the built-in policies, in a fixed order
// (noeviction first). The caller may modify the slice.
func Names() []string {
	return []string{
		NoEviction,
		AllKeysLRU, AllKeysLFU, AllKeysRandom,
		VolatileLRU, VolatileLFU, VolatileRandom, VolatileTTL,
	}
}

// New returns a new instance of the built-in policy called name (one of
// Names). The built-ins are safe for concurrent use. Each random policy
// instance has its own generator, seeded from the runtime's entropy: random
// policies run on the leader, and their choices reach the replicas through
// the Raft log, so they need not be reproducible.
func New(name string) (Policy, error) {
	return newPolicy(name, rand.Uint64())
}

// newPolicy is New with a chosen seed for the random policies, so that tests
// can replay a run.
func newPolicy(name string, seed uint64) (Policy, error) {
	switch name {
	case NoEviction:
		return noEviction{}, nil
	case AllKeysLRU:
		return &ranked{name: name, kind: byLRU}, nil
	case VolatileLRU:
		return &ranked{name: name, volatileOnly: true, kind: byLRU}, nil
	case AllKeysLFU:
		return &ranked{name: name, kind: byLFU}, nil
	case VolatileLFU:
		return &ranked{name: name, volatileOnly: true, kind: byLFU}, nil
	case VolatileTTL:
		return &ranked{name: name, volatileOnly: true, kind: byTTL}, nil
	case AllKeysRandom, VolatileRandom:
		return &random{
			name:         name,
			volatileOnly: name == VolatileRandom,
			rnd:          rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		}, nil
	}
	return nil, fmt.Errorf("eviction: unknown policy %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// noEviction is the noeviction policy: no victims, ever.
type noEviction struct{}

func (noEviction) Name() string       { return NoEviction }
func (noEviction) VolatileOnly() bool { return false }
func (noEviction) Victims(_ context.Context, _ int64, _ []engine.Candidate, _ int, out []int) ([]int, error) {
	return out, nil
}

// ranked is a deterministic policy: expired candidates first (earliest expiry
// first), then the rest in the order of its kind, ties broken by position in
// cands.
type ranked struct {
	name         string
	volatileOnly bool
	kind         rankKind
}

// rankKind is the order of a ranked policy.
type rankKind uint8

const (
	byLRU rankKind = iota // last access, oldest first
	byLFU                 // frequency, lowest first; then by last access
	byTTL                 // expiry, soonest first; then by last access
)

func (p *ranked) Name() string       { return p.name }
func (p *ranked) VolatileOnly() bool { return p.volatileOnly }

// rankKey is a candidate's place in a ranked policy's order: ascending by
// (hi, lo, i), best victim first.
type rankKey struct {
	hi, lo uint64
	i      int // index into cands
}

func (a rankKey) less(b rankKey) bool {
	if a.hi != b.hi {
		return a.hi < b.hi
	}
	if a.lo != b.lo {
		return a.lo < b.lo
	}
	return a.i < b.i
}

func (a rankKey) compare(b rankKey) int {
	if a.less(b) {
		return -1
	}
	if b.less(a) {
		return 1
	}
	return 0
}

// key returns the rank key of c, the candidate at index i. hi 0 holds the
// expired candidates; the others have hi >= 1.
func (p *ranked) key(c *engine.Candidate, nowUnixMs int64, i int) rankKey {
	if expired(c, nowUnixMs) {
		return rankKey{hi: 0, lo: uint64(c.ExpiresAtUnixMs), i: i}
	}
	switch p.kind {
	case byLFU:
		return rankKey{hi: 1 + uint64(c.Frequency), lo: c.LastAccess, i: i}
	case byTTL:
		hi := uint64(math.MaxUint64) // no expiry: last
		if c.ExpiresAtUnixMs > 0 {
			hi = 1 + uint64(c.ExpiresAtUnixMs)
		}
		return rankKey{hi: hi, lo: c.LastAccess, i: i}
	}
	return rankKey{hi: 1, lo: c.LastAccess, i: i}
}

// insertionSortMax bounds the batches ranked sorts by insertion, in a
// buffer on the stack; larger batches are sorted by slices.SortFunc in a
// fresh buffer.
const insertionSortMax = 64

func (p *ranked) Victims(_ context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	return p.victims(nowUnixMs, cands, max, out), nil
}

func (p *ranked) victims(nowUnixMs int64, cands []engine.Candidate, max int, out []int) []int {
	if max <= 0 {
		return out
	}
	var buf [insertionSortMax]rankKey
	keys := buf[:0]
	if len(cands) > len(buf) {
		keys = make([]rankKey, 0, len(cands))
	}
	for i := range cands {
		c := &cands[i]
		if p.volatileOnly && c.ExpiresAtUnixMs == 0 {
			continue
		}
		keys = append(keys, p.key(c, nowUnixMs, i))
	}
	if len(keys) <= insertionSortMax {
		for j := 1; j < len(keys); j++ {
			for k := j; k > 0 && keys[k].less(keys[k-1]); k-- {
				keys[k], keys[k-1] = keys[k-1], keys[k]
			}
		}
	} else {
		slices.SortFunc(keys, rankKey.compare)
	}
	for _, k := range keys[:min(len(keys), max)] {
		out = append(out, k.i)
	}
	return out
}

// random is allkeys-random or volatile-random: expired candidates first
// (earliest expiry first), then a uniformly random choice of the others.
type random struct {
	name         string
	volatileOnly bool

	mu  sync.Mutex
	rnd *rand.Rand // guarded by mu
}

func (p *random) Name() string       { return p.name }
func (p *random) VolatileOnly() bool { return p.volatileOnly }

func (p *random) Victims(_ context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	return p.victims(nowUnixMs, cands, max, out), nil
}

func (p *random) victims(nowUnixMs int64, cands []engine.Candidate, max int, out []int) []int {
	if max <= 0 {
		return out
	}
	start := len(out)
	out = appendEligible(out, cands, p.volatileOnly)
	idx := out[start:]
	// Move the expired ones to the front, earliest expiry first.
	nExpired := 0
	for k, i := range idx {
		if expired(&cands[i], nowUnixMs) {
			idx[nExpired], idx[k] = idx[k], idx[nExpired]
			nExpired++
		}
	}
	slices.SortStableFunc(idx[:nExpired], func(i, j int) int {
		return cmp.Compare(cands[i].ExpiresAtUnixMs, cands[j].ExpiresAtUnixMs)
	})
	n := min(len(idx), max)
	// A partial Fisher-Yates shuffle of the rest picks its first n-nExpired
	// uniformly.
	p.mu.Lock()
	for k := nExpired; k < n; k++ {
		r := k + p.rnd.IntN(len(idx)-k)
		idx[k], idx[r] = idx[r], idx[k]
	}
	p.mu.Unlock()
	return out[:start+n]
}

// appendEligible appends the indexes of the candidates the policy may evict:
// all, or only those with an expiry time if volatileOnly.
func appendEligible(out []int, cands []engine.Candidate, volatileOnly bool) []int {
	for i := range cands {
		if !volatileOnly || cands[i].ExpiresAtUnixMs != 0 {
			out = append(out, i)
		}
	}
	return out
}

// expired reports whether c has expired at nowUnixMs.
func expired(c *engine.Candidate, nowUnixMs int64) bool {
	return c.ExpiresAtUnixMs != 0 && c.ExpiresAtUnixMs <= nowUnixMs
}
