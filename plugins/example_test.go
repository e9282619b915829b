package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/plugins"
)

// A host loads an eviction plugin (validating it), then asks it for one
// decision over a batch of candidates. On an error the caller falls back to
// its built-in policy for that decision.
func ExampleHost_LoadEviction() {
	ctx := context.Background()
	h, err := plugins.NewHost(ctx) // 64 MiB per instance, 100 ms per call
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close(ctx)

	wasm, err := os.ReadFile("testdata/lru.wasm") // the Go guest in testdata/lru
	if err != nil {
		log.Fatal(err)
	}
	lru, err := h.LoadEviction(ctx, wasm)
	if errors.Is(err, plugins.ErrInvalidModule) {
		log.Fatalf("refused: %v", err)
	}
	defer lru.Close()

	now := int64(1_767_225_600_000)
	cands := []engine.Candidate{
		{Key: []byte("a"), SizeBytes: 100, LastAccess: 30},
		{Key: []byte("b"), SizeBytes: 200, LastAccess: 10},
		{Key: []byte("c"), SizeBytes: 300, LastAccess: 20, ExpiresAtUnixMs: now - 1}, // expired
		{Key: []byte("d"), SizeBytes: 400, LastAccess: 40},
	}
	victims, err := lru.Victims(ctx, now, cands, 2, nil)
	if err != nil {
		log.Printf("plugin failed, falling back: %v", err)
	}
	fmt.Println(victims)
	// Output: [2 1]
}
