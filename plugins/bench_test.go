package plugins

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wisp-db/wisp/engine/eviction"
)

// BenchmarkEmptyCall is the fixed cost of one call: a decision over one
// candidate, answered by a hand-made module that does no work (empty.wasm)
// and by the Go guest gohostile (its answer: the first candidate). It covers
// the encoding, the deadline (a context with a timer), the goroutine the
// call runs on, wazero's close-on-context-done watch and the decoding.
func BenchmarkEmptyCall(b *testing.B) {
	for _, tc := range []struct{ name, module string }{
		{"wat", "empty.wasm"},
		{"go", "gohostile.wasm"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := load(b, sharedHost(b), tc.module)
			cands := randomCandidates(rand.New(rand.NewPCG(1, 1)), 1, 0)
			ctx := context.Background()
			out := make([]int, 0, 1)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if out, err = e.Victims(ctx, 1000, cands, 1, out[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLRU compares one eviction decision over 1,000 candidates, all of
// them ranked (as the Evictor asks today) or 16 victims chosen, by the Go
// guest LRU plugin and by the built-in allkeys-lru, over the same
// candidates. The goal: the plugin within 3x of the built-in.
func BenchmarkLRU(b *testing.B) {
	const n = 1000
	now := int64(1_800_000_000_000)
	cands := randomCandidates(rand.New(rand.NewPCG(2, 2)), n, now)
	builtin, err := eviction.New(eviction.AllKeysLRU)
	if err != nil {
		b.Fatal(err)
	}
	for _, max := range []int{n, 16} {
		name := "rank-all"
		if max < n {
			name = "choose-16"
		}
		b.Run(name+"/plugin", func(b *testing.B) {
			e := load(b, sharedHost(b), "lru.wasm")
			benchDecision(b, n, func(out []int) ([]int, error) {
				return e.Victims(context.Background(), now, cands, max, out)
			})
		})
		b.Run(name+"/builtin", func(b *testing.B) {
			benchDecision(b, n, func(out []int) ([]int, error) {
				return builtin.Victims(context.Background(), now, cands, max, out)
			})
		})
	}
}

func benchDecision(b *testing.B, n int, decide func(out []int) ([]int, error)) {
	out := make([]int, 0, n)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = decide(out[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/candidate")
}

// BenchmarkLRUScaling is BenchmarkLRU's rank-all decision over n candidates,
// n from 1 to abi.CandidatesMax, by the Go guest LRU plugin and by the
// built-in allkeys-lru over the same candidates, so that the fixed cost of
// a call (n=1: the smallest decision a real policy makes) and the cost per
// candidate (the slope between two sizes) can be read apart.
func BenchmarkLRUScaling(b *testing.B) {
	now := int64(1_800_000_000_000)
	builtin, err := eviction.New(eviction.AllKeysLRU)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 16, 100, 1000, 4096} {
		cands := randomCandidates(rand.New(rand.NewPCG(3, 3)), n, now)
		b.Run(fmt.Sprintf("n=%d/plugin", n), func(b *testing.B) {
			e := load(b, sharedHost(b), "lru.wasm")
			benchDecision(b, n, func(out []int) ([]int, error) {
				return e.Victims(context.Background(), now, cands, n, out)
			})
		})
		b.Run(fmt.Sprintf("n=%d/builtin", n), func(b *testing.B) {
			benchDecision(b, n, func(out []int) ([]int, error) {
				return builtin.Victims(context.Background(), now, cands, n, out)
			})
		})
	}
}
