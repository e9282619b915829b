package eviction

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// TestHitRatio replays a Zipf(0.99) trace through a cache holding 10 % of
// the keyspace and checks that the sampling policies track the exact caches:
// allkeys-lru within 3 points of exact LRU, allkeys-lfu no worse than exact
// LRU by more than a point, and allkeys-random below allkeys-lru (so the
// comparison is able to fail).
func TestHitRatio(t *testing.T) {
	c := simConfig{keys: 30_000, reads: 300_000, seed: rand.Uint64(), budgetPercent: 10}
	if raceEnabled || testing.Short() {
		c.keys, c.reads = 4_000, 40_000
	}
	t.Logf("seed %d, %d reads over %d keys", c.seed, c.reads, c.keys)
	b := measureBudget(t, c)
	t.Logf("budget %d of %d bytes: %d keys", b.budgetBytes, b.fullBytes, b.capacity)

	var (
		mu      sync.Mutex
		results = make(map[string]simResult)
	)
	t.Run("sim", func(t *testing.T) {
		for _, r := range simRuns(c, b) {
			if r.name != AllKeysLRU && r.name != AllKeysLFU && r.name != AllKeysRandom &&
				r.name != "exact-lru" && r.name != "exact-lfu" {
				continue
			}
			t.Run(r.name, func(t *testing.T) {
				t.Parallel()
				res := r.run(t)
				t.Logf("%s: %v", r.name, res)
				mu.Lock()
				results[r.name] = res
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	ratio := func(name string) float64 { return results[name].hitRatio() }
	lru, lfu, random := ratio(AllKeysLRU), ratio(AllKeysLFU), ratio(AllKeysRandom)
	exactLRU, exactLFU := ratio("exact-lru"), ratio("exact-lfu")
	t.Logf("hit ratios: exact-lfu %.4f, exact-lru %.4f, allkeys-lfu %.4f, allkeys-lru %.4f, allkeys-random %.4f",
		exactLFU, exactLRU, lfu, lru, random)
	if d := lru - exactLRU; d < -0.03 || d > 0.03 {
		t.Errorf("allkeys-lru hit ratio %.4f; want exact LRU's %.4f within 0.03", lru, exactLRU)
	}
	if lfu < exactLRU-0.01 {
		t.Errorf("allkeys-lfu hit ratio %.4f; want at least exact LRU's %.4f - 0.01", lfu, exactLRU)
	}
	if random >= lru {
		t.Errorf("allkeys-random hit ratio %.4f; want below allkeys-lru's %.4f", random, lru)
	}
	for name, res := range results {
		if name != "exact-lru" && name != "exact-lfu" && res.overBudget > 0 {
			t.Errorf("%s: %d times the evictor found nothing to evict over budget", name, res.overBudget)
		}
	}
}

// TestVolatileEvictsOnlyVolatile runs the volatile-* policies over a
// keyspace where half the keys (even ids) carry a long TTL: no victim may be
// a key without a TTL, and every such key read stays stored.
func TestVolatileEvictsOnlyVolatile(t *testing.T) {
	c := simConfig{keys: 30_000, reads: 100_000, seed: rand.Uint64(), budgetPercent: 10, ttlMod: 2}
	if raceEnabled || testing.Short() {
		c.keys, c.reads = 4_000, 10_000
	}
	t.Logf("seed %d, %d reads over %d keys, TTL on even ids", c.seed, c.reads, c.keys)
	b := measureBudget(t, c)
	for _, name := range []string{VolatileLRU, VolatileLFU, VolatileRandom, VolatileTTL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := newPolicy(name, c.seed)
			if err != nil {
				t.Fatal(err)
			}
			res, e := simulateEngine(t, c, b, p)
			t.Logf("%s: %v", name, res)
			if res.evicted == 0 {
				t.Errorf("%s evicted nothing", name)
			}
			if res.victimsWithoutTTL > 0 {
				t.Errorf("%s chose %d victims without a TTL", name, res.victimsWithoutTTL)
			}
			// Every key without a TTL that the trace read was stored
			// then and must still be.
			z := newZipf(c.seed, c.keys, simTheta)
			var buf [12]byte
			missing := 0
			for range c.reads {
				if id := z.next(); !c.hasTTL(id) {
					if _, ok := e.Get(simKey(&buf, id), c.now(c.reads)); !ok {
						missing++
					}
				}
			}
			if missing > 0 {
				t.Errorf("%s: %d reads of keys without a TTL find them gone", name, missing)
			}
		})
	}
}

// BenchmarkHitRatio replays the full trace, 10,000,000 reads of a
// Zipf(0.99) distribution over 1,000,000 keys, through a cache with 10 % of
// the keyspace's memory, for every evicting built-in and the exact LRU and
// LFU caches, and reports the hit ratio. Every key carries a long TTL (none
// expires during the trace), so the volatile-* policies have candidates;
// volatile-ttl then evicts the oldest write first (FIFO). Run it once:
//
//	go test ./engine/eviction -run '^$' -bench HitRatio -benchtime 1x -timeout 60m
//
// The logical clock advances 1 ms per read. Since LFU counters decay by one
// per idle minute, that is 60,000 reads per decay step: the keys near the
// cache's edge are read less often than that and their counters decay to
// nothing between reads, so allkeys-lfu ranks them like LRU. The extra run
// "allkeys-lfu,100-reads-per-ms" replays the trace at 100 reads per ms
// (100,000 reads a second), where the counters keep their information. The
// runs marked "reclaim-98" evict as the shard leader's reclaimer does: once
// over the budget, down to 98 % of it, in Selects of up to 1,000 victims.
func BenchmarkHitRatio(b *testing.B) {
	c := simConfig{keys: 1_000_000, reads: 10_000_000, seed: 1, budgetPercent: 10, ttlMod: 1}
	budget := measureBudget(b, c)
	b.Logf("%d reads over %d keys, seed %d; budget %d of %d bytes: %d keys",
		c.reads, c.keys, c.seed, budget.budgetBytes, budget.fullBytes, budget.capacity)
	fast := c
	fast.readsPerMs = 100
	reclaim := c
	reclaim.lowWatermarkPercent = 98
	fastReclaim := fast
	fastReclaim.lowWatermarkPercent = 98
	runWith := func(name string, c simConfig) func(testing.TB) simResult {
		return func(tb testing.TB) simResult {
			p, err := newPolicy(name, c.seed)
			if err != nil {
				tb.Fatal(err)
			}
			res, _ := simulateEngine(tb, c, budget, p)
			return res
		}
	}
	runs := append(simRuns(c, budget),
		simRun{"allkeys-lfu,100-reads-per-ms", runWith(AllKeysLFU, fast)},
		simRun{"allkeys-lru,reclaim-98", runWith(AllKeysLRU, reclaim)},
		simRun{"allkeys-lfu,100-reads-per-ms,reclaim-98", runWith(AllKeysLFU, fastReclaim)},
	)
	for _, r := range runs {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			var res simResult
			for range b.N {
				res = r.run(b)
			}
			b.ReportMetric(res.hitRatio(), "hit-ratio")
			b.ReportMetric(float64(res.staleVictims), "stale-victims")
			b.ReportMetric(float64(res.policyCalls)/float64(max(res.selects, 1)), "policy-calls/select")
			b.Logf("%s: %v", r.name, res)
		})
	}
}
