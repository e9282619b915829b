package engine

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// accessOf returns key's access metadata as a policy sees it at nowUnixMs.
func accessOf(t *testing.T, e *Engine, key string, nowUnixMs int64) (lastAccess uint64, frequency uint8) {
	t.Helper()
	s, ok := e.tree.Get(slot{key: []byte(key)})
	if !ok {
		t.Fatalf("key %q not stored", key)
	}
	c := e.candidate(s, nowUnixMs)
	return c.LastAccess, c.Frequency
}

func TestLFUCounter(t *testing.T) {
	const minute = msPerMinute
	at10 := lfuWord(10, 20) // counter 20, stamped at minute 10
	tests := []struct {
		name string
		word uint32
		now  int64
		want uint8
	}{
		{"same minute", at10, 10*minute + 59_999, 20},
		{"three minutes later", at10, 13 * minute, 17},
		{"decayed to zero", at10, 30 * minute, 0},
		{"long idle", at10, 1000 * minute, 0},
		{"clock one minute behind", at10, 9 * minute, 20},
		{"clock an hour behind", at10, (10 - lfuMaxLagMinutes) * minute, 20},
		{"clock further behind reads as wrapped", at10, (10 - lfuMaxLagMinutes - 1) * minute, 0},
		{"16-bit wrap", lfuWord(math.MaxUint16, 20), (1<<16 + 2) * minute, 17},
		{"untimed never decays", lfuInitVal, 1000 * minute, lfuInitVal},
		{"before 1970", lfuWord(lfuMinutes(-minute), 20), 2 * minute, 17},
	}
	for _, tt := range tests {
		if got := lfuCounter(tt.word, tt.now); got != tt.want {
			t.Errorf("%s: lfuCounter(%#x, %d) = %d; want %d", tt.name, tt.word, tt.now, got, tt.want)
		}
	}
	if got := lfuMinutes(-1); got != math.MaxUint16 {
		t.Errorf("lfuMinutes(-1) = %d; want %d (floor)", got, math.MaxUint16)
	}
}

func TestLFUAccess(t *testing.T) {
	const minute = msPerMinute
	tests := []struct {
		name        string
		word        uint32
		now         int64
		rnd         uint64
		wantCounter uint8
		wantMinutes uint16
	}{
		{"new key always counts", lfuWord(1, lfuInitVal), minute, math.MaxUint64 - 1, lfuInitVal + 1, 1},
		{"below init always counts", lfuWord(1, 2), minute, math.MaxUint64 - 1, 3, 1},
		{"p = 1/11 hit", lfuWord(1, lfuInitVal+1), minute, math.MaxUint64/11 - 1, lfuInitVal + 2, 1},
		{"p = 1/11 miss", lfuWord(1, lfuInitVal+1), minute, math.MaxUint64 / 11, lfuInitVal + 1, 1},
		{"saturates", lfuWord(1, 255), minute, 0, 255, 1},
		{"decays, then counts", lfuWord(1, 10), 4 * minute, 0, 8, 4},
		{"lagging clock keeps the stamp", lfuWord(5, 10), 4 * minute, math.MaxUint64, 10, 5},
		{"untimed gets a time", lfuInitVal, 7 * minute, 0, lfuInitVal + 1, 7},
	}
	for _, tt := range tests {
		got := lfuAccess(tt.word, tt.now, tt.rnd)
		if got&lfuTimed == 0 || uint8(got) != tt.wantCounter || uint16(got>>8) != tt.wantMinutes {
			t.Errorf("%s: lfuAccess(%#x, %d, %#x) = %#x; want counter %d at minute %d", tt.name, tt.word, tt.now, tt.rnd, got, tt.wantCounter, tt.wantMinutes)
		}
	}
}

// TestLFUGrowth checks the counter's logarithmic growth against Redis's
// documented table for lfu-log-factor 10: 100 accesses give about 10, 1,000
// about 18, 100,000 about 142. The draws come from the access clock, so the
// run is deterministic.
func TestLFUGrowth(t *testing.T) {
	e := New()
	applyAll(t, e, at(testNow, put("k", "v")))
	accesses := 1
	for _, step := range []struct {
		accesses int
		lo, hi   uint8
	}{{100, 8, 12}, {1000, 15, 21}, {100_000, 130, 155}} {
		for ; accesses < step.accesses; accesses++ {
			if _, ok := e.Get([]byte("k"), testNow); !ok {
				t.Fatal("Get(k) = _, false")
			}
		}
		if _, f := accessOf(t, e, "k", testNow); f < step.lo || f > step.hi {
			t.Errorf("after %d accesses, Frequency = %d; want in [%d, %d]", accesses, f, step.lo, step.hi)
		}
	}
}

func TestAccessMetadata(t *testing.T) {
	const minute = msPerMinute
	e := New()
	applyAll(t, e, at(testNow, put("a", "1"), putTTL("b", "2", 10), put("c", "3")))
	if last, f := accessOf(t, e, "a", testNow); last != 1 || f != lfuInitVal {
		t.Fatalf("new key: LastAccess %d, Frequency %d; want 1, %d", last, f, lfuInitVal)
	}
	if last, _ := accessOf(t, e, "c", testNow); last != 3 {
		t.Fatalf("third new key: LastAccess %d; want 3", last)
	}

	// Get touches: the clock moves, and a new key's counter always grows.
	e.Get([]byte("a"), testNow)
	if last, f := accessOf(t, e, "a", testNow); last != 4 || f != lfuInitVal+1 {
		t.Errorf("after Get: LastAccess %d, Frequency %d; want 4, %d", last, f, lfuInitVal+1)
	}
	// Scan, Sample, Expired and a Get of an expired key do not.
	e.Scan(nil, nil, 10, testNow)
	e.Sample(func(int) int { return 0 }, 5, false, testNow, nil)
	e.Expired(testNow+10, 5, nil)
	e.Get([]byte("b"), testNow+10)
	e.Touch([]byte("b"), testNow+10)
	e.Touch([]byte("absent"), testNow)
	if got := e.clock.Load(); got != 4 {
		t.Errorf("access clock = %d after reads that are not accesses; want 4", got)
	}
	// Touch does.
	e.Touch([]byte("c"), testNow)
	if last, _ := accessOf(t, e, "c", testNow); last != 5 {
		t.Errorf("after Touch: LastAccess %d; want 5", last)
	}
	if last, _ := accessOf(t, e, "a", testNow); last != 4 {
		t.Errorf("after touching another key: LastAccess(a) %d; want 4", last)
	}

	// An overwrite keeps the counter and counts as an access; a write over
	// an expired key starts afresh.
	for range 50 {
		e.Get([]byte("a"), testNow)
	}
	_, before := accessOf(t, e, "a", testNow)
	applyAll(t, e, at(testNow, put("a", "new")), at(testNow+10, put("b", "new")))
	last, after := accessOf(t, e, "a", testNow)
	if after < before || after > before+1 || last != e.clock.Load()-1 || before <= lfuInitVal+1 {
		t.Errorf("overwrite: Frequency %d -> %d, LastAccess %d (clock %d); want the counter kept", before, after, last, e.clock.Load())
	}
	if _, f := accessOf(t, e, "b", testNow); f != lfuInitVal {
		t.Errorf("write over an expired key: Frequency %d; want %d", f, lfuInitVal)
	}
	// So do increments, ttl changes and persists.
	applyAll(t, e, at(testNow, setTTL("a", 1000)), at(testNow, persist("a")), at(testNow, put("n", "1")))
	for range 30 {
		e.Get([]byte("n"), testNow)
	}
	_, before = accessOf(t, e, "n", testNow)
	applyAll(t, e, at(testNow, incr("n", 1)))
	if _, f := accessOf(t, e, "n", testNow); f < before {
		t.Errorf("increment: Frequency %d -> %d; want the counter kept", before, f)
	}
	if _, f := accessOf(t, e, "a", testNow); f < after {
		t.Errorf("set ttl and persist: Frequency %d -> %d; want the counter kept", after, f)
	}

	// Sampling decays without writing back.
	_, f := accessOf(t, e, "a", testNow)
	if _, later := accessOf(t, e, "a", testNow+3*minute); later != f-3 {
		t.Errorf("Frequency 3 minutes later = %d; want %d", later, f-3)
	}
	if _, again := accessOf(t, e, "a", testNow); again != f {
		t.Errorf("Frequency after a later sample = %d; want %d (no write-back)", again, f)
	}
}

// TestLastAccessWrap checks that LastAccess is rebuilt exactly from the
// 32-bit stamps across the clock's 2^32 boundary.
func TestLastAccessWrap(t *testing.T) {
	e := New()
	e.clock.Store(1<<32 - 3)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		applyAll(t, e, at(testNow, put(k, "v")))
	}
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		if last, _ := accessOf(t, e, k, testNow); last != 1<<32-2+uint64(i) {
			t.Errorf("LastAccess(%q) = %d; want %d", k, last, 1<<32-2+uint64(i))
		}
	}
	// Accesses far beyond the stamp's range alias: documented, not fixed.
	e.clock.Add(1 << 32)
	if last, _ := accessOf(t, e, "a", testNow); last != 1<<32-2+1<<32 {
		t.Errorf("LastAccess(a) after 2^32 accesses = %d; want the aliased %d", last, uint64(1<<32-2+1<<32))
	}
}

// TestRestoredAccessMetadata checks that restored keys start as accessed at
// restore time, with a new key's counter that does not decay before their
// first access.
func TestRestoredAccessMetadata(t *testing.T) {
	src := New()
	applyAll(t, src, at(testNow, put("a", "1"), put("b", "2")))
	for range 100 {
		src.Get([]byte("a"), testNow)
	}
	var buf bytes.Buffer
	if _, err := src.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	e := New()
	e.clock.Store(77)
	if err := e.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if last, f := accessOf(t, e, k, testNow+1000*msPerMinute); last != 77 || f != lfuInitVal {
			t.Errorf("restored %q: LastAccess %d, Frequency %d; want 77, %d", k, last, f, lfuInitVal)
		}
	}
	e.Get([]byte("a"), testNow)
	if last, f := accessOf(t, e, "a", testNow+3*msPerMinute); last != 78 || f != lfuInitVal+1-3 {
		t.Errorf("restored key after a Get: LastAccess %d, Frequency %d; want 78, %d", last, f, lfuInitVal+1-3)
	}
}

// TestAccessHammer runs many Get and Touch calls on a few hot keys at once,
// as the concurrency contract allows, with samplers reading the metadata
// they write; then snapshot writers next to Apply overwriting those keys
// (reading the old entries' metadata). Run it with -race. Every access
// advances the clock exactly once, whatever the interleaving.
func TestAccessHammer(t *testing.T) {
	const (
		goroutines = 8
		iterations = 2000
		hotKeys    = 4
	)
	e := New()
	for i := range hotKeys {
		applyAll(t, e, at(testNow, putTTL(fmt.Sprintf("hot/%d", i), "v", 1<<40)))
	}
	clockBefore := e.clock.Load()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			var cs []Candidate
			for i := range iterations {
				k := []byte(fmt.Sprintf("hot/%d", (g+i)%hotKeys))
				if g%2 == 0 {
					e.Get(k, testNow+int64(i))
				} else {
					e.Touch(k, testNow+int64(i))
				}
				cs = e.Sample(rng.IntN, 2, i%2 == 0, testNow, cs[:0])
				for _, c := range cs {
					if c.LastAccess > e.clock.Load() || c.Frequency == 0 {
						t.Errorf("candidate %+v: LastAccess beyond the clock, or no frequency", c)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got, want := e.clock.Load()-clockBefore, uint64(goroutines*iterations); got != want {
		t.Errorf("access clock advanced by %d; want %d (one per access)", got, want)
	}

	snap := e.Snapshot()
	want := writeSnapshot(t, snap)
	wg = sync.WaitGroup{}
	for range 4 {
		wg.Go(func() {
			for range 20 {
				var buf bytes.Buffer
				if _, err := snap.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("WriteTo during Apply = %v, or different bytes", err)
					return
				}
			}
		})
	}
	for i := range 2000 {
		k := fmt.Sprintf("hot/%d", i%hotKeys)
		applyAll(t, e, at(testNow, put(k, "w"), setTTL(k, 5), setMeta("m", k)))
	}
	wg.Wait()
}
