package plugin_test

import (
	"bytes"
	"fmt"
	"hash/fnv"

	"github.com/wisp-db/wisp/sdk/plugin"
)

// volatileFirst is an eviction policy: keys with an expiry time first,
// soonest expiry first; then the others in the order they came.
func volatileFirst(in *plugin.EvictionInput, victims []int) []int {
	for len(victims) < in.VictimsMax {
		best := -1
		for i, c := range in.Candidates {
			if c.ExpiresAtUnixMs == 0 || contains(victims, i) {
				continue
			}
			if best < 0 || c.ExpiresAtUnixMs < in.Candidates[best].ExpiresAtUnixMs {
				best = i
			}
		}
		if best < 0 {
			break
		}
		victims = append(victims, best)
	}
	for i := range in.Candidates {
		if len(victims) == in.VictimsMax {
			break
		}
		if !contains(victims, i) {
			victims = append(victims, i)
		}
	}
	return victims
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A plugin registers its policy in init (a c-shared module's main never
// runs) and is an ordinary Go function, which its tests call natively. Built
// with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, the module
// exports what the host calls.
func ExampleHandleEviction() {
	plugin.HandleEviction(volatileFirst) // in func init() of package main

	in := &plugin.EvictionInput{
		NowUnixMs:  1_767_225_600_000,
		VictimsMax: 3,
		Candidates: []plugin.Candidate{
			{KeyHash: 0xa, SizeBytes: 100},
			{KeyHash: 0xb, SizeBytes: 200, ExpiresAtUnixMs: 1_767_225_660_000},
			{KeyHash: 0xc, SizeBytes: 300, ExpiresAtUnixMs: 1_767_225_630_000},
			{KeyHash: 0xd, SizeBytes: 400},
		},
	}
	fmt.Println(volatileFirst(in, nil))
	// Output: [2 1 0]
}

// sessionTTL gives session keys 30 minutes, plus up to 3 minutes of jitter
// derived from the key (a guest has no randomness), unless the client asked
// for a TTL; other keys keep the client's.
func sessionTTL(w *plugin.TTLInput) int64 {
	if !bytes.HasPrefix(w.Key, []byte("session:")) || w.RequestedTTLMs != 0 {
		return plugin.KeepRequestedTTL
	}
	h := fnv.New64a()
	h.Write(w.Key)
	return 30*60_000 + int64(h.Sum64()%(3*60_000))
}

// A ttl plugin registers its function in init, like an eviction plugin; the
// host stamps the answer into the write on the shard leader.
func ExampleHandleTTL() {
	plugin.HandleTTL(sessionTTL) // in func init() of package main

	for _, w := range []plugin.TTLInput{
		{Key: []byte("session:alice")},
		{Key: []byte("session:bob")},
		{Key: []byte("session:carol"), RequestedTTLMs: 60_000},
		{Key: []byte("user:alice")},
	} {
		fmt.Println(string(w.Key), sessionTTL(&w))
	}
	// Output:
	// session:alice 1930225
	// session:bob 1820486
	// session:carol -1
	// user:alice -1
}
