package plugins

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wisp-db/wisp/plugins/abi"
)

func loadTTL(t testing.TB, h *Host, name string) *TTL {
	t.Helper()
	p, err := h.LoadTTL(context.Background(), module(t, name))
	if err != nil {
		t.Fatalf("LoadTTL(%s) = %v", name, err)
	}
	t.Cleanup(p.Close)
	return p
}

// fnvJitter is the test guest ttlprefix's jitter, computed natively.
func fnvJitter(key string, spanMs int64) int64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int64(h.Sum64() % uint64(spanMs))
}

// TestTTLPrefix: the Go guest ttlprefix sets default TTLs by prefix, with
// jitter from the key's hash; the host resolves "keep the client's".
func TestTTLPrefix(t *testing.T) {
	p := loadTTL(t, sharedHost(t), "ttlprefix.wasm")
	const minute = 60_000
	ctx := context.Background()
	cases := []struct {
		key       string
		requested int64
		want      int64
	}{
		{"session:1", 0, 30*minute + fnvJitter("session:1", 3*minute)},
		{"session:2", 0, 30*minute + fnvJitter("session:2", 3*minute)},
		{"session:1", 5000, 5000}, // the client's TTL wins
		{"cache:x", 0, 5*minute + fnvJitter("cache:x", 30_000)},
		{"cache:x", 5000, 5*minute + fnvJitter("cache:x", 30_000)},
		{"perm:x", 5000, 0},
		{"other", 0, 0},
		{"other", 1234, 1234},
		{strings.Repeat("k", abi.TTLKeySizeBytesMax), 7, 7},
	}
	for _, tc := range cases {
		got, err := p.TTL(ctx, []byte(tc.key), 100, tc.requested, 1_767_225_600_000)
		if err != nil || got != tc.want {
			t.Errorf("TTL(%.20q, requested %d) = %d, %v; want %d", tc.key, tc.requested, got, err, tc.want)
		}
	}
	// The same writes in one call: the same answers, in order.
	var writes []TTLWrite
	var want []int64
	for _, tc := range cases {
		writes = append(writes, TTLWrite{Key: []byte(tc.key), ValueLen: 100, RequestedTTLMs: tc.requested})
		want = append(want, tc.want)
	}
	writes, want = writes[:len(writes)-1], want[:len(want)-1] // the 64 KiB key: with the rest, past TTLKeysSizeBytesMax
	got, err := p.TTLs(ctx, 1_767_225_600_000, writes, []int64{42})
	if err != nil || !slices.Equal(got, append([]int64{42}, want...)) {
		t.Errorf("TTLs(%d writes) = %v, %v; want 42 then %v", len(writes), got, err, want)
	}
	if a, b := fnvJitter("session:1", 3*minute), fnvJitter("session:2", 3*minute); a == b {
		t.Errorf("two session keys got the same jitter %d: the test shows nothing", a)
	}
}

// TestTTLHostile: each misbehaviour of ttlprefix under "hostile:" fails
// its call with the right error, in time, alone or as one write of a batch
// (one hostile write fails the whole batch), and the next call succeeds;
// GuardedTTL keeps the clients' TTLs for the whole batch and counts one
// call and one fallback per batch.
func TestTTLHostile(t *testing.T) {
	const timeout = time.Second // as TestHostileCalls: -race in CI
	h, err := NewHost(context.Background(), WithCallTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	p := loadTTL(t, h, "ttlprefix.wasm")
	g := NewGuardedTTL(p)
	// Every failure here is a new case, not a plugin to rest: the clock
	// jumps past any rest on each reading.
	clock := time.Now()
	g.guard.now = func() time.Time { clock = clock.Add(restMax + time.Second); return clock }
	ctx := context.Background()
	for _, tc := range []struct {
		key  string
		errs []error
	}{
		{"hostile:negative", []error{ErrBadAnswer, abi.ErrTTLOutOfRange}},
		{"hostile:huge", []error{ErrBadAnswer, abi.ErrTTLOutOfRange}},
		{"hostile:panic", []error{ErrTrap}},
		{"hostile:loop", []error{ErrTimeout}},
	} {
		// Alone, then in the middle of a batch of good writes.
		batch := []TTLWrite{
			{Key: []byte("perm:a"), ValueLen: 1, RequestedTTLMs: 5},
			{Key: []byte(tc.key), ValueLen: 1, RequestedTTLMs: 777},
			{Key: []byte("other"), ValueLen: 1, RequestedTTLMs: 6},
		}
		for _, writes := range [][]TTLWrite{batch[1:2], batch} {
			start := time.Now()
			got, err := p.TTLs(ctx, 0, writes, []int64{42})
			for _, want := range tc.errs {
				if !errors.Is(err, want) {
					t.Errorf("TTLs(%d writes with %s) = %v, %v; want it to wrap %v", len(writes), tc.key, got, err, want)
				}
			}
			if !slices.Equal(got, []int64{42}) {
				t.Errorf("TTLs(%d writes with %s) = %v; want out unchanged, [42]", len(writes), tc.key, got)
			}
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("TTLs(%s) took %v", tc.key, took)
			}
			var want []int64
			for _, w := range writes {
				want = append(want, w.RequestedTTLMs)
			}
			if got, err := g.TTLs(ctx, 0, writes, nil); err != nil || !slices.Equal(got, want) {
				t.Errorf("GuardedTTL.TTLs(%d writes with %s) = %v, %v; want the clients' %v", len(writes), tc.key, got, err, want)
			}
			if got, err := p.TTL(ctx, []byte("perm:x"), 1, 777, 0); err != nil || got != 0 {
				t.Errorf("after %s, TTL(perm:x) = %d, %v; want 0", tc.key, got, err)
			}
		}
		if got, err := g.TTL(ctx, []byte(tc.key), 1, 777, 0); err != nil || got != 777 {
			t.Errorf("GuardedTTL.TTL(%s) = %d, %v; want the client's 777", tc.key, got, err)
		}
	}
	if s := g.Stats(); s.Calls != 12 || s.Fallbacks != 12 || !strings.Contains(s.LastError, ErrTimeout.Error()) {
		t.Errorf("GuardedTTL Stats = %+v; want 12 calls, 12 fallbacks (one per batch), the timeout last", s)
	}
	// A good batch is one call, and no fallback.
	if got, err := g.TTLs(ctx, 0, []TTLWrite{{Key: []byte("perm:a"), RequestedTTLMs: 5}, {Key: []byte("other"), RequestedTTLMs: 6}}, nil); err != nil || !slices.Equal(got, []int64{0, 6}) {
		t.Errorf("GuardedTTL.TTLs(perm:a, other) = %v, %v; want [0 6]", got, err)
	}
	if s := g.Stats(); s.Calls != 13 || s.Fallbacks != 12 {
		t.Errorf("after a good batch, Stats = %+v; want 13 calls, 12 fallbacks", s)
	}
	// The caller's mistakes are errors, not the plugin's failures.
	for _, tc := range []struct {
		key       string
		valueLen  int
		requested int64
	}{{"", 1, 0}, {strings.Repeat("k", abi.TTLKeySizeBytesMax+1), 1, 0}, {"k", -1, 0}, {"k", 1, -1}} {
		if _, err := g.TTL(ctx, []byte(tc.key), tc.valueLen, tc.requested, 0); !errors.Is(err, ErrBadWrite) {
			t.Errorf("GuardedTTL(key of %d bytes, value %d, requested %d) = %v; want ErrBadWrite", len(tc.key), tc.valueLen, tc.requested, err)
		}
	}
	big := strings.Repeat("k", abi.TTLKeySizeBytesMax)
	for _, tc := range []struct {
		name   string
		writes []TTLWrite
	}{
		{"too many writes", make([]TTLWrite, abi.TTLWritesMax+1)},
		{"keys past the bound", []TTLWrite{{Key: []byte(big)}, {Key: []byte(big)}, {Key: []byte("k")}}},
		{"a bad write among good ones", []TTLWrite{{Key: []byte("a")}, {Key: []byte("b"), ValueLen: -1}}},
	} {
		for i := range tc.writes {
			if tc.writes[i].Key == nil {
				tc.writes[i].Key = []byte("k")
			}
		}
		if got, err := g.TTLs(ctx, 0, tc.writes, []int64{42}); !errors.Is(err, ErrBadWrite) || !slices.Equal(got, []int64{42}) {
			t.Errorf("GuardedTTL.TTLs(%s) = %v, %v; want [42], ErrBadWrite", tc.name, got, err)
		}
	}
	if got, err := g.TTLs(ctx, 0, nil, []int64{42}); err != nil || !slices.Equal(got, []int64{42}) {
		t.Errorf("GuardedTTL.TTLs(no writes) = %v, %v; want [42], nil", got, err)
	}
	if s := g.Stats(); s.Calls != 13 {
		t.Errorf("after bad writes and an empty batch, Calls = %d; want 13, none of them counted", s.Calls)
	}
	p.Close()
	if got, err := g.TTL(ctx, []byte("perm:x"), 1, 9, 0); err != nil || got != 9 {
		t.Errorf("GuardedTTL after the plugin's Close = %d, %v; want the client's 9", got, err)
	}
}

// TestTTLBatchLen: the writes one call carries, from the first, by count
// and by key bytes; never 0 for writes to carry.
func TestTTLBatchLen(t *testing.T) {
	n := func(count, keySize int) []TTLWrite {
		w := make([]TTLWrite, count)
		for i := range w {
			w[i].Key = make([]byte, keySize)
		}
		return w
	}
	for _, tc := range []struct {
		name   string
		writes []TTLWrite
		want   int
	}{
		{"none", nil, 0},
		{"one", n(1, 1), 1},
		{"max", n(abi.TTLWritesMax, 1), abi.TTLWritesMax},
		{"past max", n(abi.TTLWritesMax+5, 1), abi.TTLWritesMax},
		{"two largest keys", n(3, abi.TTLKeySizeBytesMax), 2},
		{"keys of 200 bytes", n(1000, 200), abi.TTLKeysSizeBytesMax / 200},
		{"a key too long alone", n(2, abi.TTLKeysSizeBytesMax+1), 1},
	} {
		got := TTLBatchLen(tc.writes)
		if got != tc.want {
			t.Errorf("TTLBatchLen(%s) = %d; want %d", tc.name, got, tc.want)
		}
		if got > 0 && tc.name != "a key too long alone" {
			if _, err := checkTTLWrites(tc.writes[:got]); err != nil {
				t.Errorf("TTLBatchLen(%s) = %d, but those writes do not fit: %v", tc.name, got, err)
			}
		}
	}
}

// TestLoadKinds: each kind's loader refuses a module of the other kind (a
// Go guest exports both entry points, and answers the one it has no
// handler for with an error code: the self-test fails); Validate does what
// the loaders do.
func TestLoadKinds(t *testing.T) {
	h := sharedHost(t)
	ctx := context.Background()
	for _, tc := range []struct {
		kind   Kind
		module string
		errs   []error // nil: valid
	}{
		{KindEviction, "lru.wasm", nil},
		{KindTTL, "ttlprefix.wasm", nil},
		{KindTTL, "lru.wasm", []error{ErrInvalidModule, ErrSelfTest, ErrBadAnswer}},
		{KindEviction, "ttlprefix.wasm", []error{ErrInvalidModule, ErrSelfTest, ErrBadAnswer}},
		{KindTTL, "victim0.wasm", []error{ErrInvalidModule, ErrMissingExport}}, // no wisp_ttl
		{KindTTL, "garbage.wasm", []error{ErrInvalidModule, ErrCompile}},
		{KindTTL, "badimport.wasm", []error{ErrInvalidModule, ErrImportNotOffered}},
		{"hotkey", "lru.wasm", []error{ErrUnknownKind}},
	} {
		err := h.Validate(ctx, tc.kind, module(t, tc.module))
		if tc.errs == nil && err != nil {
			t.Errorf("Validate(%s, %s) = %v; want valid", tc.kind, tc.module, err)
		}
		for _, want := range tc.errs {
			if !errors.Is(err, want) {
				t.Errorf("Validate(%s, %s) = %v; want it to wrap %v", tc.kind, tc.module, err, want)
			}
		}
	}
	if _, err := h.LoadTTL(ctx, module(t, "lru.wasm")); !errors.Is(err, ErrSelfTest) {
		t.Errorf("LoadTTL(lru.wasm) = %v; want ErrSelfTest", err)
	}
	p, err := h.LoadTTL(ctx, module(t, "ttlprefix.wasm"), WithName("prefix-defaults"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Name() != "prefix-defaults" || p.SHA256() != moduleSum(module(t, "ttlprefix.wasm")) {
		t.Errorf("Name() = %q, SHA256() = %x; want prefix-defaults and the module's", p.Name(), p.SHA256())
	}
}

// BenchmarkTTL is the cost of one ttl decision, a batch of one, by the Go
// guest ttlprefix (BenchmarkTTLs in ttl_bench_test.go: batches).
func BenchmarkTTL(b *testing.B) {
	p := loadTTL(b, sharedHost(b), "ttlprefix.wasm")
	key := []byte("session:1234567890")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.TTL(ctx, key, 100, 0, 1_767_225_600_000); err != nil {
			b.Fatal(err)
		}
	}
}
