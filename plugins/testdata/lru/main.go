// Command lru is a test plugin: the allkeys-lru eviction policy as a Go
// guest. It ranks like the built-in (engine/eviction): expired candidates
// first, earliest expiry first, then the least recently used, ties by index.
// The host's tests compare its victims with the built-in's, and its
// benchmarks compare their speed.
//
// It sorts one packed uint64 per candidate with slices.Sort rather than
// structs with a comparison function: function calls are what Go code
// compiled to WebAssembly pays most for (see plugins/RATIONALE.md).
//
// Build: go generate ./plugins (see plugins/generate.go).
package main

import (
	"slices"

	"github.com/wisp-db/wisp/plugins/abi"
	"github.com/wisp-db/wisp/sdk/plugin"
)

func init() { plugin.HandleEviction(lru) }

// A rank packs a candidate's place in the order, ascending (best victim
// first): a live bit (0 for an expired candidate), the expiry time (expired)
// or last access (live), saturated at valueMax, and the index.
const (
	indexBits = 12 // abi.CandidatesMax = 4096
	valueBits = 63 - indexBits
	valueMax  = 1<<valueBits - 1
	liveBit   = 1 << 63
)

var _ = [1]struct{}{}[abi.CandidatesMax-1<<indexBits] // indexes fit

// ranks is reused from call to call: an instance runs one call at a time.
var ranks []uint64

func lru(in *plugin.EvictionInput, victims []int) []int {
	if in.VictimsMax <= 0 {
		return victims
	}
	ranks = ranks[:0]
	for i := range in.Candidates {
		c := &in.Candidates[i]
		r := uint64(i)
		if c.ExpiresAtUnixMs != 0 && c.ExpiresAtUnixMs <= in.NowUnixMs {
			r |= min(uint64(c.ExpiresAtUnixMs), valueMax) << indexBits
		} else {
			r |= liveBit | min(c.LastAccess, valueMax)<<indexBits
		}
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	for _, r := range ranks[:min(len(ranks), in.VictimsMax)] {
		victims = append(victims, int(r&(1<<indexBits-1)))
	}
	return victims
}

func main() {}
