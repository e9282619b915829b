package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/wisp-db/wisp/examples/plugins/internal/wasmtest"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/sdk/plugin"
)

const (
	modulePath = "ttlprefix.wasm"
	now        = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z
)

// load loads the committed module on a real host; LoadTTL runs the host's
// self-test first.
func load(t testing.TB) *plugins.TTL {
	t.Helper()
	h := wasmtest.NewHost(t)
	p, err := h.LoadTTL(context.Background(), wasmtest.ReadFile(t, modulePath), plugins.WithName("ttlprefix-go"))
	if err != nil {
		t.Fatalf("LoadTTL(%s) = %v", modulePath, err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestTTL asks the committed module, on the real host, for the TTL of
// writes under each rule; the host turns "keep the client's TTL" into that
// TTL.
func TestTTL(t *testing.T) {
	p := load(t)
	for _, tc := range []struct {
		key            string
		requestedTTLMs int64
		lo, hi         int64 // the answer is in [lo, hi]
	}{
		{"session/42", 0, 27 * minute, 33 * minute},
		{"session/43", 0, 27 * minute, 33 * minute},
		{"cache/front/index.html", 0, 4*minute + 30*second, 5*minute + 30*second},
		{"session/44", 90 * second, 90 * second, 90 * second}, // the client's
		{"cache/x", 1, 1, 1}, // the client's
		{"user/42", 0, 0, 0}, // none
		{"user/42", 10 * minute, 10 * minute, 10 * minute}, // the client's
		{"sessions", 0, 0, 0},                              // not under session/
		{"x/session/1", 0, 0, 0},                           // a prefix, not a substring
	} {
		t.Run(fmt.Sprintf("%s requested %d ms", tc.key, tc.requestedTTLMs), func(t *testing.T) {
			got := callTTL(t, p, tc.key, tc.requestedTTLMs)
			if got < tc.lo || got > tc.hi {
				t.Errorf("TTL(%q, requested %d ms) = %d ms; want in [%d, %d]", tc.key, tc.requestedTTLMs, got, tc.lo, tc.hi)
			}
			if again := callTTL(t, p, tc.key, tc.requestedTTLMs); again != got {
				t.Errorf("TTL(%q) = %d ms, then %d ms; want the same jitter for the same key", tc.key, got, again)
			}
		})
	}
}

// TestJitterSpreads: 1,000 session keys written together, asked for in one
// call, get TTLs spread over the whole ±10 %, as the native function
// computes them.
func TestJitterSpreads(t *testing.T) {
	p := load(t)
	const base, spread = 30 * minute, 3 * minute
	var writes []plugins.TTLWrite
	for i := range 1000 {
		writes = append(writes, plugins.TTLWrite{Key: fmt.Appendf(nil, "session/%d", i), ValueLen: 100})
	}
	ttls, err := p.TTLs(context.Background(), now, writes, nil)
	if err != nil || len(ttls) != len(writes) {
		t.Fatalf("TTLs(1,000 writes) = %d TTLs, %v", len(ttls), err)
	}
	lo, hi, seen := int64(base), int64(base), map[int64]bool{}
	for i, got := range ttls {
		key := writes[i].Key
		if want := ttl(&plugin.TTLInput{NowUnixMs: now, Key: key}); got != want {
			t.Fatalf("TTL(%q) = %d ms from the module; %d natively", key, got, want)
		}
		lo, hi, seen[got] = min(lo, got), max(hi, got), true
	}
	if lo < base-spread || hi > base+spread {
		t.Errorf("TTLs in [%d, %d] ms; want within [%d, %d]", lo, hi, base-spread, base+spread)
	}
	if lo > base-spread*9/10 || hi < base+spread*9/10 || len(seen) < 990 {
		t.Errorf("TTLs in [%d, %d] ms, %d distinct of 1,000; want them spread over [%d, %d]", lo, hi, len(seen), base-spread, base+spread)
	}
}

// TestUpToDate: the committed module is what its source builds to now.
func TestUpToDate(t *testing.T) {
	wasmtest.CheckUpToDate(t, modulePath, wasmtest.GoBuild(t, "."), "make -B")
}

func callTTL(t *testing.T, p *plugins.TTL, key string, requestedTTLMs int64) int64 {
	t.Helper()
	got, err := p.TTL(context.Background(), []byte(key), 100, requestedTTLMs, now)
	if err != nil {
		t.Fatalf("TTL(%q) = %v", key, err)
	}
	return got
}
