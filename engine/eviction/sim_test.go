package eviction

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wisp-db/wisp/engine"
)

// The hit-ratio simulation: a read-through cache of a Zipf-distributed
// workload held in a real Engine, evicting through the Evictor and OpEvict
// commands exactly as a shard leader does, compared with exact LRU and LFU
// caches of the same capacity.

const (
	// simEpochUnixMs is the logical time of the first read; each read
	// advances it by 1 ms. 2023-11-14T22:13:20Z.
	simEpochUnixMs = 1_700_000_000_000
	// simValueBytes is the size of every value.
	simValueBytes = 100
	// simLongTTLMs is the TTL given to volatile keys: longer than any trace
	// (10M reads take 10M logical ms, under 3 hours), so none expires.
	simLongTTLMs = 30 * 24 * 3600 * 1000
	// simMaxKeysPerSelect bounds the victims of one Select, as the shard
	// leader's MaxExpirePerEntry does (the simulation evicts after each
	// miss, so it needs about one).
	simMaxKeysPerSelect = 64
	// simTheta is the Zipf exponent of the trace (YCSB's default).
	simTheta = 0.99
)

// simConfig describes one simulated trace.
type simConfig struct {
	keys   int    // distinct keys
	reads  int    // reads in the trace
	seed   uint64 // of the trace and of the sampling
	ttlMod int    // key ids divisible by ttlMod get simLongTTLMs; 0: none
	// readsPerMs is the number of reads per logical millisecond; 0 means 1.
	// It sets how fast LFU counters decay (one step per idle minute)
	// relative to the access rate.
	readsPerMs int
	// budgetPercent is the memory budget as a percentage of the full
	// keyspace's MemoryUsed.
	budgetPercent int64
	// lowWatermarkPercent, if set, makes each eviction free memory down to
	// that percentage of the budget in Selects of up to
	// simReclaimMaxKeysPerSelect victims, as the shard leader's reclaimer
	// does (98 %), instead of about one key per miss.
	lowWatermarkPercent int64
}

// simReclaimMaxKeysPerSelect bounds the victims of one Select with a low
// watermark, as shards/reclaim's MaxExpirePerEntry does.
const simReclaimMaxKeysPerSelect = 1000

// now returns the logical time of read i.
func (c simConfig) now(i int) int64 {
	return simEpochUnixMs + int64(i/max(c.readsPerMs, 1))
}

// hasTTL reports whether key id carries a TTL under c.
func (c simConfig) hasTTL(id int) bool { return c.ttlMod > 0 && id%c.ttlMod == 0 }

// simKey writes the fixed-width key of id ("key:" and 8 digits) into buf.
func simKey(buf *[12]byte, id int) []byte {
	copy(buf[:4], "key:")
	for i := 11; i >= 4; i-- {
		buf[i] = byte('0' + id%10)
		id /= 10
	}
	return buf[:]
}

// simKeyID parses a key written by simKey.
func simKeyID(key []byte) int {
	id := 0
	for _, b := range key[4:] {
		id = id*10 + int(b-'0')
	}
	return id
}

// simValue is every key's value.
var simValue = make([]byte, simValueBytes)

// putCommand returns the command that writes key id under c at nowUnixMs.
func (c simConfig) putCommand(buf *[12]byte, id int, nowUnixMs int64) *engine.Command {
	m := engine.Mutation{Op: engine.OpPut, Key: simKey(buf, id), Value: simValue}
	if c.hasTTL(id) {
		m.TTLMs = simLongTTLMs
	}
	return &engine.Command{NowUnixMs: nowUnixMs, Mutations: []engine.Mutation{m}}
}

// simBudget is the memory footprint of a simulated keyspace.
type simBudget struct {
	fullBytes   int64 // MemoryUsed with every key stored
	budgetBytes int64 // budgetPercent of fullBytes
	capacity    int   // keys the oracles hold: what fits in budgetBytes at the mean footprint
}

// measureBudget stores every key of c once in a scratch engine and measures
// MemoryUsed.
func measureBudget(tb testing.TB, c simConfig) simBudget {
	tb.Helper()
	e := engine.New()
	var buf [12]byte
	for id := range c.keys {
		if r := e.Apply(e.AppliedIndex()+1, c.putCommand(&buf, id, simEpochUnixMs)); r.Err != nil {
			tb.Fatalf("put %d: %v", id, r.Err)
		}
	}
	var b simBudget
	b.fullBytes = e.MemoryUsed()
	b.budgetBytes = b.fullBytes * c.budgetPercent / 100
	b.capacity = int(b.budgetBytes * int64(c.keys) / b.fullBytes)
	if b.capacity < 1 {
		tb.Fatalf("budget %d bytes of %d holds no key", b.budgetBytes, b.fullBytes)
	}
	return b
}

// simResult is what one simulated run measured.
type simResult struct {
	hits, reads int
	// evictCommands and evicted count the OpEvict commands applied and the
	// keys they removed; staleVictims counts victims that were no longer
	// at the chosen version (Existed false).
	evictCommands, evicted, staleVictims int
	// overBudget counts misses after which the Evictor found nothing to
	// evict while memory was over the budget (a volatile policy with no
	// volatile key left): a real leader would reject writes then.
	overBudget int
	// victimsWithoutTTL counts victims that carried no expiry.
	victimsWithoutTTL int
	// selects and policyCalls count the Select calls and the policy calls
	// they made.
	selects, policyCalls int
}

func (r simResult) hitRatio() float64 { return float64(r.hits) / float64(r.reads) }

// simulateEngine replays c's trace against an Engine evicting with p, and
// returns what it measured and the Engine.
func simulateEngine(tb testing.TB, c simConfig, b simBudget, p Policy) (simResult, *engine.Engine) {
	tb.Helper()
	e := engine.New()
	cp := &countingPolicy{Policy: p}
	ev := NewEvictor(cp)
	z := newZipf(c.seed, c.keys, simTheta)
	rnd := rand.New(rand.NewPCG(c.seed, 0x5eed))
	var (
		res     = simResult{reads: c.reads}
		buf     [12]byte
		victims []engine.Candidate
		evict   = &engine.Command{}
	)
	for i := range c.reads {
		now := c.now(i)
		id := z.next()
		if _, ok := e.Get(simKey(&buf, id), now); ok {
			res.hits++
			continue
		}
		if r := e.Apply(e.AppliedIndex()+1, c.putCommand(&buf, id, now)); r.Err != nil {
			tb.Fatalf("read %d: put %d: %v", i, id, r.Err)
		}
		for used := e.MemoryUsed(); used > b.budgetBytes; used = e.MemoryUsed() {
			target, maxKeys := b.budgetBytes, simMaxKeysPerSelect
			if c.lowWatermarkPercent > 0 {
				target, maxKeys = b.budgetBytes/100*c.lowWatermarkPercent, simReclaimMaxKeysPerSelect
			}
			res.selects++
			victims = ev.Select(e, now, used-target, maxKeys, rnd.IntN, victims[:0])
			if len(victims) == 0 {
				res.overBudget++
				break
			}
			evict.NowUnixMs = now
			evict.Mutations = evict.Mutations[:0]
			for _, v := range victims {
				if v.ExpiresAtUnixMs == 0 {
					res.victimsWithoutTTL++
				}
				evict.Mutations = append(evict.Mutations, engine.Mutation{Op: engine.OpEvict, Key: v.Key, IfVersion: v.Version})
			}
			r := e.Apply(e.AppliedIndex()+1, evict)
			if r.Err != nil {
				tb.Fatalf("read %d: evict %d keys: %v", i, len(victims), r.Err)
			}
			res.evictCommands++
			for _, m := range r.Mutations {
				if m.Existed {
					res.evicted++
				} else {
					res.staleVictims++
				}
			}
		}
	}
	res.policyCalls = cp.calls
	return res, e
}

// countingPolicy counts the calls of the policy it wraps.
type countingPolicy struct {
	Policy
	calls int
}

func (p *countingPolicy) Victims(ctx context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	p.calls++
	return p.Policy.Victims(ctx, nowUnixMs, cands, max, out)
}

// simulateOracle replays c's trace against an exact cache.
func simulateOracle(c simConfig, cache interface{ access(int) bool }) simResult {
	z := newZipf(c.seed, c.keys, simTheta)
	res := simResult{reads: c.reads}
	for range c.reads {
		if cache.access(z.next()) {
			res.hits++
		}
	}
	return res
}

// simRun is one named contender in a simulation.
type simRun struct {
	name string
	run  func(testing.TB) simResult
}

// simRuns returns the contenders over c: every evicting built-in policy
// (noeviction cannot run a read-through cache) and the two oracles.
func simRuns(c simConfig, b simBudget) []simRun {
	var runs []simRun
	for _, name := range Names() {
		if name == NoEviction {
			continue
		}
		runs = append(runs, simRun{name, func(tb testing.TB) simResult {
			p, err := newPolicy(name, c.seed)
			if err != nil {
				tb.Fatal(err)
			}
			res, _ := simulateEngine(tb, c, b, p)
			return res
		}})
	}
	runs = append(runs,
		simRun{"exact-lru", func(testing.TB) simResult { return simulateOracle(c, newLRU(b.capacity)) }},
		simRun{"exact-lfu", func(testing.TB) simResult { return simulateOracle(c, newLFU(b.capacity)) }},
	)
	return runs
}

func (r simResult) String() string {
	return fmt.Sprintf("hit ratio %.4f (%d/%d), %d evict commands, %d evicted, %d stale victims, %d over budget, %d policy calls in %d selects",
		r.hitRatio(), r.hits, r.reads, r.evictCommands, r.evicted, r.staleVictims, r.overBudget, r.policyCalls, r.selects)
}
