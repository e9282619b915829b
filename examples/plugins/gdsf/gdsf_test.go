package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/examples/plugins/internal/wasmtest"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/sdk/plugin"
)

const (
	modulePath = "gdsf.wasm"
	now        = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z
	kib        = 1 << 10
	mib        = 1 << 20
)

// load loads the committed module on a real host; LoadEviction runs the
// host's self-test first.
func load(t testing.TB) *plugins.Eviction {
	t.Helper()
	h := wasmtest.NewHost(t)
	e, err := h.LoadEviction(context.Background(), wasmtest.ReadFile(t, modulePath), plugins.WithName("gdsf"))
	if err != nil {
		t.Fatalf("LoadEviction(%s) = %v", modulePath, err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestVictims asks the committed module, on the real host, for decisions
// where GDSF and LRU disagree, and where one factor alone decides.
func TestVictims(t *testing.T) {
	e := load(t)
	for _, tc := range []struct {
		name  string
		cands []engine.Candidate
		max   int
		want  []int
	}{
		{
			name: "large rarely read before small hot, though more recently used",
			cands: []engine.Candidate{
				{Key: []byte("avatar/1"), SizeBytes: 200, Frequency: 30, LastAccess: 10},
				{Key: []byte("report.pdf"), SizeBytes: 4 * mib, Frequency: 1, LastAccess: 90},
				{Key: []byte("user/1"), SizeBytes: 120, Frequency: 25, LastAccess: 20},
				{Key: []byte("video/7"), SizeBytes: 32 * mib, Frequency: 2, LastAccess: 100},
			},
			max:  2,
			want: []int{1, 3}, // LRU would name 0 and 2; the video, used last, has the larger clock
		},
		{
			name: "expired first, earliest expiry first, whatever their size",
			cands: []engine.Candidate{
				{Key: []byte("big"), SizeBytes: 8 * mib, Frequency: 0, LastAccess: 1},
				{Key: []byte("gone-later"), SizeBytes: 10, Frequency: 40, LastAccess: 50, ExpiresAtUnixMs: now - 1},
				{Key: []byte("not-yet"), SizeBytes: 10, Frequency: 40, LastAccess: 50, ExpiresAtUnixMs: now + 1},
				{Key: []byte("gone-first"), SizeBytes: 10, Frequency: 40, LastAccess: 50, ExpiresAtUnixMs: now - 60_000},
			},
			max:  3,
			want: []int{3, 1, 0},
		},
		{
			name: "same frequency and recency: the largest first",
			cands: []engine.Candidate{
				{Key: []byte("a"), SizeBytes: 1 * kib, Frequency: 5, LastAccess: 7},
				{Key: []byte("b"), SizeBytes: 64 * kib, Frequency: 5, LastAccess: 7},
				{Key: []byte("c"), SizeBytes: 8 * kib, Frequency: 5, LastAccess: 7},
			},
			max:  3,
			want: []int{1, 2, 0},
		},
		{
			name: "same size and recency: the least frequent first",
			cands: []engine.Candidate{
				{Key: []byte("a"), SizeBytes: 4 * kib, Frequency: 9, LastAccess: 7},
				{Key: []byte("b"), SizeBytes: 4 * kib, Frequency: 0, LastAccess: 7},
				{Key: []byte("c"), SizeBytes: 4 * kib, Frequency: 200, LastAccess: 7},
			},
			max:  2,
			want: []int{1, 0},
		},
		{
			name: "same size and frequency: the least recently used first",
			cands: []engine.Candidate{
				{Key: []byte("a"), SizeBytes: 4 * kib, Frequency: 5, LastAccess: 70},
				{Key: []byte("b"), SizeBytes: 4 * kib, Frequency: 5, LastAccess: 10},
				{Key: []byte("c"), SizeBytes: 4 * kib, Frequency: 5, LastAccess: 40},
			},
			max:  3,
			want: []int{1, 2, 0},
		},
		{
			name: "all equal: by index",
			cands: []engine.Candidate{
				{Key: []byte("a"), SizeBytes: 100, Frequency: 5, LastAccess: 3},
				{Key: []byte("b"), SizeBytes: 100, Frequency: 5, LastAccess: 3},
			},
			max:  2,
			want: []int{0, 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Victims(context.Background(), now, tc.cands, tc.max, nil)
			if err != nil {
				t.Fatalf("Victims = %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Victims = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestMatchesNative: the module, on the real host, ranks a random batch of
// 1,000 candidates as the policy compiled natively does.
func TestMatchesNative(t *testing.T) {
	e := load(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	cands := randomCandidates(rand.New(rand.NewPCG(seed, seed)), 1000)
	got, err := e.Victims(context.Background(), now, cands, len(cands), nil)
	if err != nil {
		t.Fatalf("Victims = %v", err)
	}
	if want := gdsf(guestInput(cands, len(cands)), nil); !slices.Equal(got, want) {
		t.Errorf("seed %d: the module ranks %v...; natively %v...", seed, got[:10], want[:10])
	}
}

// TestUpToDate: the committed module is what its source builds to now.
func TestUpToDate(t *testing.T) {
	wasmtest.CheckUpToDate(t, modulePath, wasmtest.GoBuild(t, "."), "make -B")
}

// BenchmarkDecision is one decision over 1,000 candidates by the committed
// module on the real host, all of them ranked or 16 chosen, beside the Go
// guest LRU of plugins/testdata over the same candidates.
func BenchmarkDecision(b *testing.B) {
	const n = 1000
	cands := randomCandidates(rand.New(rand.NewPCG(1, 1)), n)
	h := wasmtest.NewHost(b)
	for _, m := range []struct{ name, path string }{
		{"gdsf", modulePath},
		{"lru", "../../../plugins/testdata/lru.wasm"},
	} {
		e, err := h.LoadEviction(context.Background(), wasmtest.ReadFile(b, m.path))
		if err != nil {
			b.Fatalf("LoadEviction(%s) = %v", m.path, err)
		}
		b.Cleanup(e.Close)
		for _, max := range []int{n, 16} {
			name := "rank-all"
			if max < n {
				name = "choose-16"
			}
			b.Run(name+"/"+m.name, func(b *testing.B) {
				out := make([]int, 0, n)
				b.ReportAllocs()
				for b.Loop() {
					if out, err = e.Victims(context.Background(), now, cands, max, out[:0]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/candidate")
			})
		}
	}
}

// randomCandidates returns n candidates: sizes from 16 bytes to 4 MiB
// (log-uniform), frequencies 0 to 40, last accesses 0 to 9,999, a tenth
// expired at now and a tenth to expire later.
func randomCandidates(rnd *rand.Rand, n int) []engine.Candidate {
	cands := make([]engine.Candidate, n)
	for i := range cands {
		c := &cands[i]
		c.Key = []byte{byte(i), byte(i >> 8)}
		c.Version = uint64(i + 1)
		c.SizeBytes = int64(16 << rnd.IntN(19))
		c.SizeBytes += rnd.Int64N(c.SizeBytes)
		c.Frequency = uint8(rnd.IntN(41))
		c.LastAccess = rnd.Uint64N(10_000)
		switch rnd.IntN(10) {
		case 0:
			c.ExpiresAtUnixMs = now - rnd.Int64N(3_600_000)
		case 1:
			c.ExpiresAtUnixMs = now + 1 + rnd.Int64N(3_600_000)
		}
	}
	return cands
}

// guestInput is the input the host hands the guest for cands: the access
// clock is their largest LastAccess (docs/PLUGINS.md).
func guestInput(cands []engine.Candidate, victimsMax int) *plugin.EvictionInput {
	in := &plugin.EvictionInput{NowUnixMs: now, VictimsMax: victimsMax}
	for _, c := range cands {
		in.AccessClock = max(in.AccessClock, c.LastAccess)
		in.Candidates = append(in.Candidates, plugin.Candidate{
			Version:         c.Version,
			LastAccess:      c.LastAccess,
			ExpiresAtUnixMs: c.ExpiresAtUnixMs,
			SizeBytes:       uint32(c.SizeBytes),
			Frequency:       uint32(c.Frequency),
		})
	}
	return in
}
