// Command ttlprefix is a test plugin of the ttl kind, and an example of what
// the kind is for: default TTLs by key prefix, with jitter so that keys
// written together do not expire together. A guest has no randomness, so
// the jitter is derived from a hash of the key (FNV-1a): the same key gets
// the same jitter on every write.
//
//	session:  30 min plus up to 3 min of jitter, unless the client asked for a TTL
//	cache:    5 min plus up to 30 s of jitter, whatever the client asked
//	perm:     no expiry, whatever the client asked
//	other     the client's TTL (KeepRequestedTTL)
//
// Keys under "hostile:" misbehave, for the host's tests: hostile:loop
// loops forever, hostile:panic panics, hostile:negative answers -5 ms and
// hostile:huge eleven years.
//
// Build: go generate ./plugins (see plugins/generate.go).
package main

import (
	"bytes"
	"hash/fnv"

	"github.com/wisp-db/wisp/sdk/plugin"
)

func init() { plugin.HandleTTL(ttl) }

const (
	minute = 60 * 1000
	year   = 365 * 24 * 60 * minute
)

var spins uint64 // what hostile:loop counts

func ttl(w *plugin.TTLInput) int64 {
	switch {
	case bytes.HasPrefix(w.Key, []byte("session:")):
		if w.RequestedTTLMs != 0 {
			return plugin.KeepRequestedTTL
		}
		return 30*minute + jitter(w.Key, 3*minute)
	case bytes.HasPrefix(w.Key, []byte("cache:")):
		return 5*minute + jitter(w.Key, 30*1000)
	case bytes.HasPrefix(w.Key, []byte("perm:")):
		return 0
	case bytes.Equal(w.Key, []byte("hostile:loop")):
		for {
			spins++
		}
	case bytes.Equal(w.Key, []byte("hostile:panic")):
		panic("hostile ttl plugin: panic")
	case bytes.Equal(w.Key, []byte("hostile:negative")):
		return -5
	case bytes.Equal(w.Key, []byte("hostile:huge")):
		return 11 * year
	}
	return plugin.KeepRequestedTTL
}

// jitter returns a number in [0, spanMs) derived from the key.
func jitter(key []byte, spanMs int64) int64 {
	h := fnv.New64a()
	h.Write(key)
	return int64(h.Sum64() % uint64(spanMs))
}

func main() {}
