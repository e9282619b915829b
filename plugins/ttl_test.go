package plugins

import (
	"context"
	"errors"
	"hash/fnv"
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
	for _, tc := range []struct {
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
	} {
		got, err := p.TTL(ctx, []byte(tc.key), 100, tc.requested, 1_767_225_600_000)
		if err != nil || got != tc.want {
			t.Errorf("TTL(%.20q, requested %d) = %d, %v; want %d", tc.key, tc.requested, got, err, tc.want)
		}
	}
	if a, b := fnvJitter("session:1", 3*minute), fnvJitter("session:2", 3*minute); a == b {
		t.Errorf("two session keys got the same jitter %d: the test shows nothing", a)
	}
}

// TestTTLHostile: each misbehaviour of ttlprefix under "hostile:" fails
// its call with the right error, in time, and the next call succeeds;
// GuardedTTL keeps the client's TTL for those and counts them.
func TestTTLHostile(t *testing.T) {
	const timeout = time.Second // as TestHostileCalls: -race in CI
	h, err := NewHost(context.Background(), WithCallTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	p := loadTTL(t, h, "ttlprefix.wasm")
	g := NewGuardedTTL(p)
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
		start := time.Now()
		got, err := p.TTL(ctx, []byte(tc.key), 1, 777, 0)
		for _, want := range tc.errs {
			if !errors.Is(err, want) {
				t.Errorf("TTL(%s) = %d, %v; want it to wrap %v", tc.key, got, err, want)
			}
		}
		if took := time.Since(start); took > timeout+time.Second {
			t.Errorf("TTL(%s) took %v", tc.key, took)
		}
		if got, err := g.TTL(ctx, []byte(tc.key), 1, 777, 0); err != nil || got != 777 {
			t.Errorf("GuardedTTL(%s) = %d, %v; want the client's 777", tc.key, got, err)
		}
		if got, err := p.TTL(ctx, []byte("perm:x"), 1, 777, 0); err != nil || got != 0 {
			t.Errorf("after %s, TTL(perm:x) = %d, %v; want 0", tc.key, got, err)
		}
	}
	if s := g.Stats(); s.Calls != 4 || s.Fallbacks != 4 || !strings.Contains(s.LastError, ErrTimeout.Error()) {
		t.Errorf("GuardedTTL Stats = %+v; want 4 calls, 4 fallbacks, the timeout last", s)
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
	if s := g.Stats(); s.Calls != 4 {
		t.Errorf("after bad writes, Calls = %d; want 4, the bad writes not counted", s.Calls)
	}
	p.Close()
	if got, err := g.TTL(ctx, []byte("perm:x"), 1, 9, 0); err != nil || got != 9 {
		t.Errorf("GuardedTTL after the plugin's Close = %d, %v; want the client's 9", got, err)
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

// BenchmarkTTL is the cost of one ttl decision by the Go guest ttlprefix.
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
