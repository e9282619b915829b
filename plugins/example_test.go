package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

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

// A ttl plugin gives writes default TTLs by key prefix, with jitter; the
// shard leader asks it before proposing a Put and stamps the answer into
// the command. GuardedTTL keeps the client's TTL if the plugin fails.
func ExampleHost_LoadTTL() {
	ctx := context.Background()
	h, err := plugins.NewHost(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close(ctx)

	wasm, err := os.ReadFile("testdata/ttlprefix.wasm") // the Go guest in testdata/ttlprefix
	if err != nil {
		log.Fatal(err)
	}
	p, err := h.LoadTTL(ctx, wasm, plugins.WithName("prefix-defaults"))
	if err != nil {
		log.Fatalf("refused: %v", err)
	}
	defer p.Close()
	g := plugins.NewGuardedTTL(p)

	now := int64(1_767_225_600_000)
	for _, w := range []struct {
		key          string
		requestedTTL time.Duration
	}{
		{"session:alice", 0},           // 30 min plus the key's jitter
		{"session:bob", 0},             // another jitter
		{"session:carol", time.Minute}, // the client's TTL stands
		{"perm:config", time.Hour},     // never expires
		{"other", 0},                   // the client's: none
	} {
		ttlMs, err := g.TTL(ctx, []byte(w.key), 100, w.requestedTTL.Milliseconds(), now)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(w.key, time.Duration(ttlMs)*time.Millisecond)
	}
	// Output:
	// session:alice 32m10.225s
	// session:bob 30m20.486s
	// session:carol 1m0s
	// perm:config 0s
	// other 0s
}
