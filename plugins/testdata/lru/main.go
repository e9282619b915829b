// Command lru is a test plugin: the allkeys-lru eviction policy as a Go
// guest. It ranks like the built-in (engine/eviction): expired candidates
// first, earliest expiry first, then the least recently used, ties by index.
// The host's tests compare its victims with the built-in's, and its
// benchmarks compare their speed.
//
// Build: go generate ./plugins (see plugins/generate.go).
package main

import (
	"slices"

	"github.com/wisp-db/wisp/sdk/plugin"
)

func init() { plugin.HandleEviction(lru) }

// rank is a candidate's place in the order, ascending: best victim first.
type rank struct {
	hi, lo uint64
	i      int
}

// ranks is reused from call to call: an instance runs one call at a time.
var ranks []rank

func lru(in *plugin.EvictionInput, victims []int) []int {
	if in.VictimsMax <= 0 {
		return victims
	}
	ranks = ranks[:0]
	for i := range in.Candidates {
		c := &in.Candidates[i]
		if c.ExpiresAtUnixMs != 0 && c.ExpiresAtUnixMs <= in.NowUnixMs {
			ranks = append(ranks, rank{hi: 0, lo: uint64(c.ExpiresAtUnixMs), i: i})
		} else {
			ranks = append(ranks, rank{hi: 1, lo: c.LastAccess, i: i})
		}
	}
	slices.SortFunc(ranks, func(a, b rank) int {
		switch {
		case a.hi != b.hi:
			return cmpU64(a.hi, b.hi)
		case a.lo != b.lo:
			return cmpU64(a.lo, b.lo)
		}
		return a.i - b.i
	})
	for _, r := range ranks[:min(len(ranks), in.VictimsMax)] {
		victims = append(victims, r.i)
	}
	return victims
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

func main() {}
