package main

import (
	"context"
	"encoding/binary"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	"github.com/wisp-db/wisp/examples/plugins/internal/wasmtest"
	"github.com/wisp-db/wisp/plugins"
)

// The mixed-size hit-ratio benchmark: engine/eviction's BenchmarkHitRatio
// trace (its Zipf(0.99) generator, copied here from its test files, so that
// the same seed and key count draw the same key sequence) with values of
// many sizes, so that a size-aware policy can differ from LRU and LFU,
// replayed by engine/eviction/replay (a read-through cache in a real Engine
// with a memory budget, evicted through an Evictor and OpEvict commands as
// a shard leader does: what wisp plugin whatif runs).

var (
	hitRatioReads = flag.Int("hitratio.reads", 2_000_000, "reads in BenchmarkHitRatioMixedSizes's trace")
	hitRatioKeys  = flag.Int("hitratio.keys", 100_000, "distinct keys in BenchmarkHitRatioMixedSizes's trace")
	hitRatioSeed  = flag.Uint64("hitratio.seed", 1, "seed of BenchmarkHitRatioMixedSizes's trace and value sizes")
)

const (
	// mixEpochUnixMs is the time of the first read; each read advances it
	// by 1 ms, as in engine/eviction's simulation (the LFU counters decay
	// one step per idle minute of it).
	mixEpochUnixMs = 1_700_000_000_000
	// mixTheta is the Zipf exponent of the trace (YCSB's default), as in
	// engine/eviction.
	mixTheta = 0.99
	// mixValueBytesMin and mixValueBytesMax bound the value sizes, drawn
	// log-uniformly once per key: a mean of about 14.5 KB, a median of
	// about 3.2 KB.
	mixValueBytesMin = 100
	mixValueBytesMax = 100_000
	// mixBudgetPercent is the memory budget, a percentage of MemoryUsed
	// with every key stored.
	mixBudgetPercent = 10
)

// mixTrace is a read trace over keys with fixed, mixed value sizes.
type mixTrace struct {
	keys, reads int
	seed        uint64
	sizes       []int64 // key id -> value size in bytes
}

// newMixTrace draws each key's value size from seed.
func newMixTrace(keys, reads int, seed uint64) *mixTrace {
	t := &mixTrace{keys: keys, reads: reads, seed: seed, sizes: make([]int64, keys)}
	rnd := rand.New(rand.NewPCG(seed, 0x517e))
	lo, hi := math.Log(mixValueBytesMin), math.Log(mixValueBytesMax)
	for id := range t.sizes {
		t.sizes[id] = int64(math.Round(math.Exp(lo + (hi-lo)*rnd.Float64())))
	}
	return t
}

// records returns the trace as replay records: the key id is the key's
// hash, one read per millisecond.
func (t *mixTrace) records() func() (replay.Record, error) {
	z := newMixZipf(t.seed, t.keys, mixTheta)
	i := 0
	return func() (replay.Record, error) {
		if i >= t.reads {
			return replay.Record{}, io.EOF
		}
		id := z.next()
		rec := replay.Record{UnixMs: mixEpochUnixMs + int64(i), Op: replay.Get, Key: uint64(id), Size: t.sizes[id]}
		i++
		return rec, nil
	}
}

// fullBytes returns the engine's MemoryUsed with every key stored, as
// replay stores them (the key an 8-byte big-endian hash), measured key by
// key in a scratch engine (put, measure, delete), so that the whole
// keyspace is never held at once.
func (t *mixTrace) fullBytes(tb testing.TB) int64 {
	tb.Helper()
	e := engine.New()
	value := make([]byte, mixValueBytesMax)
	var (
		key   [8]byte
		total int64
	)
	for id := range t.keys {
		binary.BigEndian.PutUint64(key[:], uint64(id))
		put := &engine.Command{NowUnixMs: mixEpochUnixMs, Mutations: []engine.Mutation{{Op: engine.OpPut, Key: key[:], Value: value[:t.sizes[id]]}}}
		if r := e.Apply(e.AppliedIndex()+1, put); r.Err != nil {
			tb.Fatalf("put %d: %v", id, r.Err)
		}
		total += e.MemoryUsed()
		del := &engine.Command{NowUnixMs: mixEpochUnixMs, Mutations: []engine.Mutation{{Op: engine.OpDelete, Key: key[:]}}}
		if r := e.Apply(e.AppliedIndex()+1, del); r.Err != nil {
			tb.Fatalf("delete %d: %v", id, r.Err)
		}
		if used := e.MemoryUsed(); used != 0 {
			tb.Fatalf("delete %d: MemoryUsed() = %d; want 0", id, used)
		}
	}
	return total
}

// countingPolicy counts the calls of the policy it wraps.
type countingPolicy struct {
	eviction.Policy
	calls int
}

func (p *countingPolicy) Victims(ctx context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	p.calls++
	return p.Policy.Victims(ctx, nowUnixMs, cands, max, out)
}

// BenchmarkHitRatioMixedSizes replays a Zipf(0.99) trace (engine/eviction's
// generator; by default 2,000,000 reads over 100,000 keys, seed 1) whose
// keys have values of 100 B to 100 KB, log-uniform, drawn once per key
// independently of popularity, through engine/eviction/replay's cache with
// 10 % of the keyspace's memory, evicting with the built-in allkeys-lru and allkeys-lfu, the
// example GDSF plugin (gdsf.wasm on the real host) and, as a check of the
// plugin path, the Go guest LRU of plugins/testdata, which ranks as
// allkeys-lru does and must score the same. It reports the object hit
// ratio (hits per read) and the byte hit ratio (bytes of the hits per byte
// read). Run it once (about a minute on one core; -v shows the budget):
//
//	go test ./examples/plugins/gdsf -run '^$' -bench HitRatioMixedSizes -benchtime 1x -cpu 1 -v
//
// -hitratio.reads, -hitratio.keys and -hitratio.seed change the trace.
func BenchmarkHitRatioMixedSizes(b *testing.B) {
	t := newMixTrace(*hitRatioKeys, *hitRatioReads, *hitRatioSeed)
	full := t.fullBytes(b)
	budget := full * mixBudgetPercent / 100
	b.Logf("%d reads over %d keys, seed %d; values %d-%d B log-uniform; budget %d of %d bytes",
		t.reads, t.keys, t.seed, mixValueBytesMin, mixValueBytesMax, budget, full)

	h := wasmtest.NewHost(b)
	plugin := func(path, name string) func(testing.TB) eviction.Policy {
		return func(tb testing.TB) eviction.Policy {
			e, err := h.LoadEviction(context.Background(), wasmtest.ReadFile(tb, path), plugins.WithName(name))
			if err != nil {
				tb.Fatalf("LoadEviction(%s) = %v", path, err)
			}
			tb.Cleanup(e.Close)
			return e
		}
	}
	builtin := func(name string) func(testing.TB) eviction.Policy {
		return func(tb testing.TB) eviction.Policy {
			p, err := eviction.New(name)
			if err != nil {
				tb.Fatal(err)
			}
			return p
		}
	}
	for _, run := range []struct {
		name   string
		policy func(testing.TB) eviction.Policy
	}{
		{eviction.AllKeysLRU, builtin(eviction.AllKeysLRU)},
		{eviction.AllKeysLFU, builtin(eviction.AllKeysLFU)},
		{"gdsf-wasm", plugin(modulePath, "gdsf")},
		{"lru-wasm", plugin("../../../plugins/testdata/lru.wasm", "lru")},
	} {
		b.Run(run.name, func(b *testing.B) {
			p := run.policy(b) // a plugin compiles and runs its self-test here
			b.ReportAllocs()
			b.ResetTimer()
			var (
				res replay.Result
				cp  *countingPolicy
			)
			for range b.N {
				cp = &countingPolicy{Policy: p}
				var err error
				if res, err = replay.Run(context.Background(), t.records(), budget, cp); err != nil {
					b.Fatal(err) // a plugin's failed call too: nothing falls back to a built-in here
				}
			}
			b.ReportMetric(res.HitRatio(), "hit-ratio")
			b.ReportMetric(res.ByteHitRatio(), "byte-hit-ratio")
			b.ReportMetric(float64(res.Evicted), "evicted")
			b.ReportMetric(float64(cp.calls), "policy-calls")
			b.Logf("%s: hit ratio %.4f, byte hit ratio %.4f; %d reads, %d evicted, %d policy calls",
				run.name, res.HitRatio(), res.ByteHitRatio(), res.Reads, res.Evicted, cp.calls)
			if res.OverBudget > 0 {
				b.Errorf("%s: %d times nothing was evictable over budget", run.name, res.OverBudget)
			}
		})
	}
}

// mixZipf draws key ids in [0, n) with a Zipf distribution of exponent
// theta in (0, 1): a copy of engine/eviction's test generator (Gray et al.,
// SIGMOD 1994, as YCSB's ZipfianGenerator; ranks mapped to ids by a fixed
// random permutation), so that a seed gives the same trace here as there.
type mixZipf struct {
	rnd   *rand.Rand
	n     int
	zetan float64
	alpha float64
	eta   float64
	half  float64
	ids   []int32 // rank -> key id
}

func newMixZipf(seed uint64, n int, theta float64) *mixZipf {
	if n < 2 || theta <= 0 || theta >= 1 {
		panic("zipf: need n >= 2 and 0 < theta < 1")
	}
	z := &mixZipf{
		rnd:   rand.New(rand.NewPCG(seed, seed+1)),
		n:     n,
		zetan: mixZeta(n, theta),
		alpha: 1 / (1 - theta),
	}
	z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - mixZeta(2, theta)/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	z.ids = make([]int32, n)
	for i := range z.ids {
		z.ids[i] = int32(i)
	}
	z.rnd.Shuffle(n, func(i, j int) { z.ids[i], z.ids[j] = z.ids[j], z.ids[i] })
	return z
}

func mixZeta(n int, theta float64) float64 {
	var sum float64
	for i := 1; i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// next draws a key id.
func (z *mixZipf) next() int {
	u := z.rnd.Float64()
	uz := u * z.zetan
	r := 0
	switch {
	case uz < 1:
	case uz < z.half:
		r = 1
	default:
		r = min(int(float64(z.n)*math.Pow(z.eta*u-z.eta+1, z.alpha)), z.n-1)
	}
	return int(z.ids[r])
}
