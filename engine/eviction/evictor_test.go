package eviction

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/wisp-db/wisp/engine"
)

// testEngine is an Engine with keys written one per command, in order, at
// version 1, 2, ...; ttls[i] > 0 gives key i that TTL.
func testEngine(t *testing.T, keys []string, ttls []int64) *engine.Engine {
	t.Helper()
	e := engine.New()
	for i, k := range keys {
		m := engine.Mutation{Op: engine.OpPut, Key: []byte(k), Value: []byte("value")}
		if i < len(ttls) {
			m.TTLMs = ttls[i]
		}
		put(t, e, m)
	}
	return e
}

// put applies one mutation at the next index and time testNowUnixMs.
func put(t *testing.T, e *engine.Engine, m engine.Mutation) {
	t.Helper()
	if r := e.Apply(e.AppliedIndex()+1, &engine.Command{NowUnixMs: testNowUnixMs, Mutations: []engine.Mutation{m}}); r.Err != nil {
		t.Fatalf("apply %s %q: %v", opName(m.Op), m.Key, r.Err)
	}
}

func opName(op engine.Op) string { return fmt.Sprintf("op %d", op) }

// evict applies one OpEvict command for victims, as the shard leader does.
func evict(t *testing.T, e *engine.Engine, victims []engine.Candidate) {
	t.Helper()
	cmd := &engine.Command{NowUnixMs: testNowUnixMs}
	for _, v := range victims {
		cmd.Mutations = append(cmd.Mutations, engine.Mutation{Op: engine.OpEvict, Key: v.Key, IfVersion: v.Version})
	}
	if r := e.Apply(e.AppliedIndex()+1, cmd); r.Err != nil {
		t.Fatalf("evict %d keys: %v", len(victims), r.Err)
	}
}

func names(cs []engine.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Key))
	}
	return out
}

func seededRand(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

func mustPolicy(t *testing.T, name string) Policy {
	t.Helper()
	p, err := newPolicy(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var tenKeys = []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"}

// cycle returns an rnd for Engine.Sample that counts up modulo n, so that a
// sample as large as the keyspace sees every key once: the deterministic
// tests see all candidates in their first round.
func cycle() func(int) int {
	i := -1
	return func(n int) int {
		i++
		return i % n
	}
}

// sizeOf returns the SizeBytes of a key stored as testEngine stores it.
func sizeOf(t *testing.T, key string, ttl bool) int64 {
	m := engine.Mutation{Op: engine.OpPut, Key: []byte(key), Value: []byte("value")}
	if ttl {
		m.TTLMs = 1
	}
	e := engine.New()
	put(t, e, m)
	return e.MemoryUsed()
}

// TestSelect checks Select's choices on small engines, sampled so that each
// round sees every key.
func TestSelect(t *testing.T) {
	const (
		all   = math.MaxInt64
		exact = -1
	)
	later := int64(1_000_000)
	tests := []struct {
		name      string
		policy    string
		ttls      []int64 // per key of tenKeys; < 0: expires before "now"
		reads     []int   // keys read after the writes, in order
		nowDelta  int64   // Select runs at testNowUnixMs+nowDelta
		freeBytes int64   // exact: the sum of want's SizeBytes
		maxKeys   int
		want      []string
	}{
		{name: "lru oldest write first", policy: AllKeysLRU, freeBytes: exact, maxKeys: 10, want: []string{"k0", "k1", "k2"}},
		{name: "lru max keys", policy: AllKeysLRU, freeBytes: all, maxKeys: 2, want: []string{"k0", "k1"}},
		{name: "lru reads refresh", policy: AllKeysLRU, reads: []int{0, 1, 3}, freeBytes: exact, maxKeys: 10, want: []string{"k2", "k4", "k5", "k6"}},
		{name: "lru everything", policy: AllKeysLRU, reads: []int{9, 0}, freeBytes: all, maxKeys: math.MaxInt,
			want: []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k0"}},
		{name: "lfu", policy: AllKeysLFU, reads: []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2}, freeBytes: exact, maxKeys: 10, want: []string{"k3", "k4"}},
		{name: "expired first", policy: AllKeysLRU, ttls: []int64{0, 0, 0, 0, 0, 0, 5000, 0, 2000, later}, nowDelta: 6000,
			freeBytes: exact, maxKeys: 10, want: []string{"k8", "k6", "k0", "k1"}},
		{name: "expired first lfu", policy: AllKeysLFU, ttls: []int64{0, 0, 0, 0, 0, 0, 5000, 0, 2000, later}, reads: []int{6, 6, 6, 8, 8}, nowDelta: 6000,
			freeBytes: exact, maxKeys: 10, want: []string{"k8", "k6", "k0"}},
		{name: "volatile lru", policy: VolatileLRU, ttls: []int64{0, later, 0, later, 0, 0, 0, later, 0, 0}, freeBytes: all, maxKeys: 10,
			want: []string{"k1", "k3", "k7"}},
		{name: "volatile lru no ttl", policy: VolatileLRU, freeBytes: all, maxKeys: 10, want: nil},
		{name: "volatile ttl", policy: VolatileTTL, ttls: []int64{0, later + 3, 0, later + 1, 0, 0, 0, later + 2, 0, 0}, freeBytes: exact, maxKeys: 10,
			want: []string{"k3", "k7"}},
		{name: "volatile ttl expired first", policy: VolatileTTL, ttls: []int64{0, later + 3, 0, later + 1, 0, 10, 0, later + 2, 0, 0}, nowDelta: 100,
			freeBytes: all, maxKeys: 10, want: []string{"k5", "k3", "k7", "k1"}},
		{name: "noeviction", policy: NoEviction, ttls: []int64{5}, nowDelta: 100, freeBytes: all, maxKeys: 10, want: nil},
		{name: "nothing to free", policy: AllKeysLRU, freeBytes: 0, maxKeys: 10, want: nil},
		{name: "one byte", policy: AllKeysLRU, freeBytes: 1, maxKeys: 10, want: []string{"k0"}},
		{name: "no keys wanted", policy: AllKeysLRU, freeBytes: all, maxKeys: 0, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEngine(t, tenKeys, tt.ttls)
			for _, i := range tt.reads {
				if _, ok := e.Get([]byte(tenKeys[i]), testNowUnixMs); !ok {
					t.Fatalf("Get(%q) found nothing", tenKeys[i])
				}
			}
			freeBytes := tt.freeBytes
			if freeBytes == exact {
				freeBytes = 0
				for _, k := range tt.want {
					i := slices.Index(tenKeys, k)
					freeBytes += sizeOf(t, k, i < len(tt.ttls) && tt.ttls[i] != 0)
				}
			}
			ev := NewEvictor(mustPolicy(t, tt.policy), WithSampleSize(len(tenKeys)))
			got := ev.Select(e, testNowUnixMs+tt.nowDelta, freeBytes, tt.maxKeys, cycle(), nil)
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("Select(%d bytes, %d keys) = %q; want %q", freeBytes, tt.maxKeys, names(got), tt.want)
			}
			for _, v := range got {
				item, ok := e.Get(v.Key, 0)
				if !ok || item.Version != v.Version {
					t.Errorf("victim %q at version %d; stored %v at %d", v.Key, v.Version, ok, item.Version)
				}
			}
		})
	}
}

// TestSelectFreesEnough checks the byte accounting: victims add up to at
// least the bytes asked for, and one victim fewer would not.
func TestSelectFreesEnough(t *testing.T) {
	rnd := seededRand(t)
	var keys []string
	e := engine.New()
	for i := range 100 {
		k := fmt.Sprintf("key-%03d", i)
		keys = append(keys, k)
		put(t, e, engine.Mutation{Op: engine.OpPut, Key: []byte(k), Value: make([]byte, i*10)})
	}
	ev := NewEvictor(mustPolicy(t, AllKeysRandom))
	for _, want := range []int64{1, 500, 5000, 20000} {
		got := ev.Select(e, testNowUnixMs, want, 1000, rnd.IntN, nil)
		var sum int64
		for _, v := range got {
			sum += v.SizeBytes
		}
		if sum < want || sum-got[len(got)-1].SizeBytes >= want {
			t.Errorf("Select(%d bytes) chose %d keys of %d bytes", want, len(got), sum)
		}
		if len(got) != len(slices.Compact(slices.Sorted(slices.Values(names(got))))) {
			t.Errorf("Select(%d bytes) chose a key twice: %q", want, names(got))
		}
	}
}

// TestSelectAppendsAndCopies checks that Select appends to out and that the
// victims' keys are copies the caller may keep and modify.
func TestSelectAppendsAndCopies(t *testing.T) {
	e := testEngine(t, tenKeys, nil)
	ev := NewEvictor(mustPolicy(t, AllKeysLRU), WithSampleSize(len(tenKeys)))
	prev := engine.Candidate{Key: []byte("earlier")}
	got := ev.Select(e, testNowUnixMs, math.MaxInt64, 3, cycle(), []engine.Candidate{prev})
	if want := []string{"earlier", "k0", "k1", "k2"}; !slices.Equal(names(got), want) {
		t.Fatalf("Select = %q; want %q", names(got), want)
	}
	for _, v := range got[1:] {
		v.Key[0] = 'X'
	}
	for _, k := range tenKeys {
		if _, ok := e.Get([]byte(k), testNowUnixMs); !ok {
			t.Errorf("Get(%q) after modifying victim keys found nothing", k)
		}
	}
}

// TestSelectNewestVersion checks that a pool entry left by an earlier
// Select gives way to a newer version of the same key: after b is
// rewritten, the victim is b at its new version, not the stale pool entry.
func TestSelectNewestVersion(t *testing.T) {
	rnd := cycle()
	e := testEngine(t, []string{"a", "b"}, nil)
	ev := NewEvictor(mustPolicy(t, AllKeysLRU), WithSampleSize(2))
	got := ev.Select(e, testNowUnixMs, 1, 1, rnd, nil)
	if !slices.Equal(names(got), []string{"a"}) {
		t.Fatalf("first Select = %q; want [a]", names(got))
	}
	evict(t, e, got) // b stays in the pool at version 2
	put(t, e, engine.Mutation{Op: engine.OpPut, Key: []byte("b"), Value: []byte("new")})
	got = ev.Select(e, testNowUnixMs, 1, 1, rnd, nil)
	if len(got) != 1 || string(got[0].Key) != "b" || got[0].Version != e.AppliedIndex() {
		t.Fatalf("second Select = %+v; want b at version %d", got, e.AppliedIndex())
	}
	evict(t, e, got)
	if e.Len() != 0 {
		t.Errorf("after evicting every victim, %d keys remain", e.Len())
	}
	// The pool may still hold a stale entry; an empty engine yields
	// nothing from sampling, and a stale victim is harmless (OpEvict at its
	// version is a no-op), but none is offered for a key chosen already.
	got = ev.Select(e, testNowUnixMs, 1, 10, rnd, nil)
	if len(got) > 1 {
		t.Errorf("Select on an empty engine = %q; want at most one stale pool entry", names(got))
	}
}

// script returns an rnd for Engine.Sample that returns positions in turn.
func script(t *testing.T, positions ...int) func(int) int {
	return func(n int) int {
		if len(positions) == 0 {
			t.Fatal("rnd called more often than scripted")
		}
		p := positions[0]
		positions = positions[1:]
		if p >= n {
			t.Fatalf("scripted position %d out of [0, %d)", p, n)
		}
		return p
	}
}

// TestSelectPool checks that the pool carries good candidates from one
// Select to the next: the second Select samples only recent keys, and
// still evicts the oldest key, which the first one had pooled.
func TestSelectPool(t *testing.T) {
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	e := testEngine(t, keys, nil)
	ev := NewEvictor(mustPolicy(t, AllKeysLRU), WithSampleSize(4))
	// Sample k0..k3 (positions 0-3 of 8), evict k0; then sample k4..k7
	// (positions 3-6 of the 7 left).
	rnd := script(t, 0, 1, 2, 3, 3, 4, 5, 6)
	got := ev.Select(e, testNowUnixMs, 1, 1, rnd, nil)
	if !slices.Equal(names(got), []string{"k0"}) {
		t.Fatalf("first Select = %q; want [k0]", names(got))
	}
	if want := []string{"k1", "k2", "k3"}; !slices.Equal(names(ev.pool), want) {
		t.Errorf("pool after the first Select = %q; want %q", names(ev.pool), want)
	}
	evict(t, e, got)
	got = ev.Select(e, testNowUnixMs, 1, 1, rnd, nil)
	if !slices.Equal(names(got), []string{"k1"}) {
		t.Fatalf("second Select = %q; want [k1] from the pool", names(got))
	}
	if want := []string{"k2", "k3", "k4", "k5", "k6", "k7"}; !slices.Equal(names(ev.pool), want) {
		t.Errorf("pool after the second Select = %q; want %q", names(ev.pool), want)
	}
}

// TestSelectPoolSize checks that the pool keeps at most the pool size of
// the best candidates.
func TestSelectPoolSize(t *testing.T) {
	e := testEngine(t, tenKeys, nil)
	ev := NewEvictor(mustPolicy(t, AllKeysLRU), WithSampleSize(len(tenKeys)), WithPoolSize(3))
	got := ev.Select(e, testNowUnixMs, 1, 1, cycle(), nil)
	if !slices.Equal(names(got), []string{"k0"}) {
		t.Fatalf("Select = %q; want [k0]", names(got))
	}
	if want := []string{"k1", "k2", "k3"}; !slices.Equal(names(ev.pool), want) {
		t.Errorf("pool = %q; want %q", names(ev.pool), want)
	}
}

// badPolicy answers with indexes out of range and repeated.
type badPolicy struct{}

func (badPolicy) Name() string       { return "bad" }
func (badPolicy) VolatileOnly() bool { return false }
func (badPolicy) Victims(_ int64, cands []engine.Candidate, _ int, out []int) []int {
	return append(out, -1, len(cands), 0, 0, len(cands)+5, 0)
}

// TestSelectBadPolicy checks that a policy's invalid answer costs no panic
// and no repeated victim.
func TestSelectBadPolicy(t *testing.T) {
	rnd := seededRand(t)
	e := testEngine(t, tenKeys, nil)
	got := NewEvictor(badPolicy{}).Select(e, testNowUnixMs, math.MaxInt64, 100, rnd.IntN, nil)
	if n := len(got); n == 0 || n > len(tenKeys) {
		t.Fatalf("Select = %q; want 1 to %d keys", names(got), len(tenKeys))
	}
	if len(got) != len(slices.Compact(slices.Sorted(slices.Values(names(got))))) {
		t.Errorf("Select chose a key twice: %q", names(got))
	}
}

func TestMaxRounds(t *testing.T) {
	for _, tt := range []struct{ maxKeys, want int }{
		{1, 68},
		{1000, 4064},
		{math.MaxInt, math.MaxInt},
		{(math.MaxInt - 64) / 4, (math.MaxInt-64)/4*4 + 64},
	} {
		if got := maxRounds(tt.maxKeys); got != tt.want {
			t.Errorf("maxRounds(%d) = %d; want %d", tt.maxKeys, got, tt.want)
		}
	}
}

// BenchmarkSelect measures one Select of one victim from a 100,000-key
// engine, without applying it: the per-victim cost under the read lock.
func BenchmarkSelect(b *testing.B) {
	e := engine.New()
	var buf [12]byte
	for id := range 100_000 {
		cmd := &engine.Command{NowUnixMs: testNowUnixMs, Mutations: []engine.Mutation{{Op: engine.OpPut, Key: simKey(&buf, id), Value: simValue}}}
		if r := e.Apply(e.AppliedIndex()+1, cmd); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	for _, name := range []string{AllKeysLRU, AllKeysLFU, AllKeysRandom} {
		b.Run(name, func(b *testing.B) {
			p, _ := New(name)
			ev := NewEvictor(p)
			rnd := rand.New(rand.NewPCG(1, 2))
			var out []engine.Candidate
			b.ReportAllocs()
			for b.Loop() {
				out = ev.Select(e, testNowUnixMs, 1, 1, rnd.IntN, out[:0])
			}
		})
	}
}
