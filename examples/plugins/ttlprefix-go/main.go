// Command ttlprefix is an example ttl plugin in Go: a default TTL by key
// prefix, with ±10 % of jitter so that keys written together do not all
// expire together. The client's TTL, when it gave one, is kept.
//
//	session/   30 min ± 3 min
//	cache/      5 min ± 30 s
//	other keys  the client's TTL (none if it gave none)
//
// A guest has no randomness (docs/PLUGINS.md), so the jitter is derived
// from a hash of the key, FNV-1a 64: the same key gets the same TTL on every
// write at the same base, and keys written together get different ones.
// Determinism costs nothing here: only the shard leader runs the plugin,
// and it stamps the answer into the write.
//
// examples/plugins/ttlprefix-c is the same rule in C; its test checks that
// the two modules answer alike.
//
// Build: make (see the Makefile): GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared -trimpath -buildvcs=false -o ttlprefix.wasm .
package main

import (
	"bytes"
	"hash/fnv"

	"github.com/wisp-db/wisp/sdk/plugin"
)

func init() { plugin.HandleTTL(ttl) }

const (
	second = 1000 // milliseconds
	minute = 60 * second
)

// rules are the default TTLs, by prefix, in milliseconds; the first match
// wins.
var rules = []struct {
	prefix string
	ttlMs  int64
}{
	{"session/", 30 * minute},
	{"cache/", 5 * minute},
}

// ttl answers the TTL of the write w: the client's if it gave one, else
// its prefix's default with jitter, else the client's (none).
func ttl(w *plugin.TTLInput) int64 {
	if w.RequestedTTLMs != 0 {
		return plugin.KeepRequestedTTL
	}
	for _, r := range rules {
		if bytes.HasPrefix(w.Key, []byte(r.prefix)) {
			return jittered(r.ttlMs, w.Key)
		}
	}
	return plugin.KeepRequestedTTL
}

// jittered returns ttlMs ± 10 %, the offset derived from the key: in
// [ttlMs - ttlMs/10, ttlMs + ttlMs/10].
func jittered(ttlMs int64, key []byte) int64 {
	h := fnv.New64a()
	h.Write(key)
	spread := ttlMs / 10
	return ttlMs - spread + int64(h.Sum64()%uint64(2*spread+1))
}

func main() {}
