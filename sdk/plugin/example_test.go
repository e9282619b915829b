package plugin_test

import (
	"fmt"

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
