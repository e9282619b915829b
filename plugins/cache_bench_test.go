package plugins

import (
	"context"
	"testing"
)

// BenchmarkLoadCached and BenchmarkLoadCompiled: a new host loading the
// Go-guest LRU plugin (validation and self-test included), with a
// compilation cache directory a first host filled, and without (the
// module compiled): what a node's restart costs per plugin.
func BenchmarkLoadCached(b *testing.B) { benchmarkLoad(b, true) }

func BenchmarkLoadCompiled(b *testing.B) { benchmarkLoad(b, false) }

func benchmarkLoad(b *testing.B, cached bool) {
	ctx := context.Background()
	wasm := module(b, "lru.wasm")
	var opts []Option
	if cached {
		opts = append(opts, WithCompilationCacheDir(b.TempDir()))
	}
	load := func() {
		h, err := NewHost(ctx, opts...)
		if err != nil {
			b.Fatal(err)
		}
		e, err := h.LoadEviction(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
		h.Close(ctx)
	}
	load() // fills the cache
	for b.Loop() {
		load()
	}
}
