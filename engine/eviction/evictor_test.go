package eviction

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
func (badPolicy) Victims(_ context.Context, _ int64, cands []engine.Candidate, _ int, out []int) ([]int, error) {
	return append(out, -1, len(cands), 0, 0, len(cands)+5, 0), nil
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

// lockedEngine is an engine behind a read-write lock, as a shard replica
// keeps it: View takes the read lock, apply the write lock.
type lockedEngine struct {
	mu     sync.RWMutex
	e      *engine.Engine
	inView bool // guarded by mu (set under the read lock; one reader here)
}

func (l *lockedEngine) view(fn func(*engine.Engine)) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.inView = true
	defer func() { l.inView = false }()
	fn(l.e)
	return nil
}

func (l *lockedEngine) put(t *testing.T, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	put(t, l.e, engine.Mutation{Op: engine.OpPut, Key: []byte(key), Value: []byte("rewritten")})
}

// writingPolicy ranks like its built-in, but first waits for a write to the
// engine to complete on another goroutine: if it were called under the
// engine's read lock, the write could not take the write lock and the test
// would time out.
type writingPolicy struct {
	Policy
	t         *testing.T
	l         *lockedEngine
	key       string
	calls     int
	underLock bool
}

func (p *writingPolicy) Victims(ctx context.Context, now int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	p.calls++
	p.l.mu.RLock()
	p.underLock = p.underLock || p.l.inView
	p.l.mu.RUnlock()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		p.l.put(p.t, p.key)
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("a write did not complete during the policy call: the policy runs under the engine's lock")
	}
	return p.Policy.Victims(ctx, now, cands, max, out)
}

// TestChooseRanksOutsideTheLock: Choose samples under the view and calls
// the policy outside it, so a write completes during the policy call; the
// key written then is still chosen at its sampled version, whose OpEvict
// is a no-op, so the rewrite survives. Twenty victims cost one policy call.
func TestChooseRanksOutsideTheLock(t *testing.T) {
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%03d", i)
	}
	l := &lockedEngine{e: testEngine(t, keys, nil)}
	p := &writingPolicy{Policy: mustPolicy(t, AllKeysLRU), t: t, l: l, key: "k000"}
	ev := NewEvictor(p)
	got, err := ev.Choose(context.Background(), l.view, testNowUnixMs, math.MaxInt64, 20, cycle(), nil)
	if err != nil {
		t.Fatalf("Choose = %v", err)
	}
	if len(got) != 20 {
		t.Fatalf("Choose chose %d victims; want 20", len(got))
	}
	if p.underLock {
		t.Errorf("the policy ran inside the view (under the read lock)")
	}
	if p.calls != 1 {
		t.Errorf("Choose of 20 victims called the policy %d times; want 1", p.calls)
	}
	i := slices.IndexFunc(got, func(c engine.Candidate) bool { return string(c.Key) == "k000" })
	if i < 0 {
		t.Fatalf("victims %q lack k000, the least recently used key", names(got))
	}
	evict(t, l.e, got)
	if item, ok := l.e.Get([]byte("k000"), testNowUnixMs); !ok || string(item.Value) != "rewritten" {
		t.Errorf("Get(k000) after the evictions = %q, %v; want the rewrite to survive", item.Value, ok)
	}
	if n := l.e.Len(); n != 100-19 {
		t.Errorf("%d keys left; want 81 (19 evicted, the rewritten one kept)", n)
	}
}

// TestChoosePolicyCalls: one policy call per Choose while a batch holds
// enough samples for the victims asked for (sampleSize per victim, up to
// BatchSizeMax candidates), a few beyond that.
func TestChoosePolicyCalls(t *testing.T) {
	e := engine.New()
	var buf [12]byte
	for id := range 20_000 {
		put(t, e, engine.Mutation{Op: engine.OpPut, Key: simKey(&buf, id), Value: simValue})
	}
	for _, tc := range []struct {
		maxKeys  int
		callsMax int
	}{
		{1, 1},
		{16, 1},
		{200, 1},
		// BatchSizeMax holds 255 victims' samples beside a pool of 16.
		{1000, 4},
	} {
		cp := &countingPolicy{Policy: mustPolicy(t, AllKeysLRU)}
		ev := NewEvictor(cp)
		got := ev.Select(e, testNowUnixMs, math.MaxInt64, tc.maxKeys, seededRand(t).IntN, nil)
		if len(got) != tc.maxKeys || cp.calls > tc.callsMax {
			t.Errorf("Select(%d keys) = %d victims in %d policy calls; want %d in at most %d", tc.maxKeys, len(got), cp.calls, tc.maxKeys, tc.callsMax)
		}
	}
}

// failingPolicy answers its first ok calls like its built-in, then fails.
type failingPolicy struct {
	Policy
	ok int
}

var errPolicy = errors.New("policy failed")

func (p *failingPolicy) Victims(ctx context.Context, now int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	if p.ok == 0 {
		return out, errPolicy
	}
	p.ok--
	return p.Policy.Victims(ctx, now, cands, max, out)
}

// TestChooseErrors: an error of the view, the context or the policy ends
// Choose with the victims chosen before it and the error.
func TestChooseErrors(t *testing.T) {
	l := &lockedEngine{e: testEngine(t, tenKeys, nil)}
	ctx := context.Background()
	errView := errors.New("not leader")
	failingView := func(func(*engine.Engine)) error { return errView }
	if got, err := NewEvictor(mustPolicy(t, AllKeysLRU)).Choose(ctx, failingView, testNowUnixMs, 1, 1, cycle(), nil); !errors.Is(err, errView) || len(got) != 0 {
		t.Errorf("Choose(failing view) = %q, %v; want no victims and the view's error", names(got), err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := NewEvictor(mustPolicy(t, AllKeysLRU)).Choose(canceled, l.view, testNowUnixMs, 1, 1, cycle(), nil); !errors.Is(err, context.Canceled) || len(got) != 0 {
		t.Errorf("Choose(canceled) = %q, %v; want no victims and context.Canceled", names(got), err)
	}
	// A batch of 10 samples gives one victim; the second batch's policy
	// call fails.
	p := &failingPolicy{Policy: mustPolicy(t, AllKeysLRU), ok: 1}
	ev := NewEvictor(p, WithSampleSize(10))
	got, err := ev.Choose(ctx, l.view, testNowUnixMs, math.MaxInt64, 1, cycle(), nil)
	if err != nil || !slices.Equal(names(got), []string{"k0"}) {
		t.Fatalf("Choose = %q, %v; want [k0]", names(got), err)
	}
	got, err = ev.Choose(ctx, l.view, testNowUnixMs, math.MaxInt64, 3, cycle(), []engine.Candidate{{Key: []byte("earlier")}})
	if !errors.Is(err, errPolicy) || !slices.Equal(names(got), []string{"earlier"}) {
		t.Errorf("Choose(failing policy) = %q, %v; want out unchanged and the policy's error", names(got), err)
	}
	if !strings.Contains(fmt.Sprint(err), AllKeysLRU) {
		t.Errorf("Choose error %q does not name the policy", err)
	}
	if want := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"}; !slices.Equal(names(ev.pool), want) {
		t.Errorf("pool after the failed call = %q; want it kept, %q", names(ev.pool), want)
	}
}

func TestVictimsFor(t *testing.T) {
	for _, tt := range []struct {
		left, sampledBytes int64
		sampled, keysLeft  int
		want               int
	}{
		{100, 0, 0, 10, 1}, // no sample yet
		{100, 500, 5, 10, 1},
		{101, 500, 5, 10, 2},
		{1000, 500, 5, 8, 8}, // capped by the keys left
		{math.MaxInt64, 1600, 16, 1000, 1000},
		{math.MaxInt64, 16, 16, math.MaxInt, math.MaxInt},
		{1, 0, 16, 5, 1}, // sampled keys of no size
	} {
		if got := victimsFor(tt.left, tt.sampledBytes, tt.sampled, tt.keysLeft); got != tt.want {
			t.Errorf("victimsFor(%d, %d, %d, %d) = %d; want %d", tt.left, tt.sampledBytes, tt.sampled, tt.keysLeft, got, tt.want)
		}
	}
}

// BenchmarkChoose measures one Choose of 1, 16 or 255 victims (a full batch
// of BatchSizeMax candidates) from a 100,000-key engine, and reports the
// time spent inside the View, where a shard holds the engine's read lock,
// apart from the whole (the policy ranks outside it).
func BenchmarkChoose(b *testing.B) {
	e := engine.New()
	var buf [12]byte
	for id := range 100_000 {
		cmd := &engine.Command{NowUnixMs: testNowUnixMs, Mutations: []engine.Mutation{{Op: engine.OpPut, Key: simKey(&buf, id), Value: simValue}}}
		if r := e.Apply(e.AppliedIndex()+1, cmd); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	for _, victims := range []int{1, 16, 255} {
		b.Run(fmt.Sprintf("victims=%d", victims), func(b *testing.B) {
			p, _ := New(AllKeysLRU)
			ev := NewEvictor(p)
			rnd := rand.New(rand.NewPCG(1, 2))
			var locked time.Duration
			view := func(fn func(*engine.Engine)) error {
				start := time.Now()
				fn(e)
				locked += time.Since(start)
				return nil
			}
			var out []engine.Candidate
			var err error
			b.ReportAllocs()
			for b.Loop() {
				if out, err = ev.Choose(context.Background(), view, testNowUnixMs, math.MaxInt64, victims, rnd.IntN, out[:0]); err != nil || len(out) != victims {
					b.Fatalf("Choose = %d victims, %v", len(out), err)
				}
			}
			b.ReportMetric(float64(locked.Microseconds())/float64(b.N), "locked-µs/op")
		})
	}
}
