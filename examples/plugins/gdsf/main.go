// Command gdsf is an example eviction plugin: GreedyDual-Size-Frequency
// (Cherkasova, 1998), a size-aware policy that keeps small, often-read keys
// and evicts large, rarely-read ones first. Each key's priority is
//
//	H = L + F × C / S
//
// with F its access frequency, C the cost of missing it, S its size, and L
// GDSF's clock; the key with the lowest H goes first. Expired keys go before
// all others (evicting them loses nothing), earliest expiry first.
//
// What this plugin computes, and where it differs from the paper:
//
//   - F is the candidate's Frequency: Redis's logarithmic LFU counter (0-255,
//     new keys start at 5, it decays by one per idle minute), not an access
//     count, so frequency weighs logarithmically: a key read a hundred times
//     as often is worth a few times more, not a hundred. F+1 is used, so that
//     a key whose counter decayed to 0 is still ranked by its size.
//   - C is 1 for every key: the policy aims at the hit ratio (every miss
//     costs the same). Setting C = S would aim at the byte hit ratio, and
//     make the policy blind to size.
//   - S is SizeBytes (at least 1).
//   - L cannot be kept. In GDSF, L is the priority of the last victim, kept
//     across decisions, and a key's H is fixed at its last access with the L
//     of that moment, so keys not touched for long fall behind. A guest keeps
//     no state between calls (instances are replaced and run side by side:
//     docs/PLUGINS.md), so this plugin reconstructs each key's L from what
//     the candidates carry: the key's recency within the batch,
//     (LastAccess - oldest) / (AccessClock - oldest), from 0 for the least
//     recently used candidate to 1 for the most recent, times the batch's
//     mean F×C/S. That scale is a guess at how far L inflates over the
//     batch's window of accesses (it inflates by about one victim's
//     priority per eviction, and the plugin sees neither): with it, being
//     the most recently used key is worth as much as an average key's F/S.
//     Weigh it up (clockWeight) for a more LRU-like policy, down to 0 for
//     size-aware LFU, which is still an ageing policy since the LFU counter
//     decays.
//
// The decision is a pure function of the candidates: the same batch gets the
// same victims on every instance. Ties break by index.
//
// Build: make (see the Makefile): GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared -trimpath -buildvcs=false -o gdsf.wasm .
package main

import (
	"math"
	"slices"

	"github.com/wisp-db/wisp/plugins/abi"
	"github.com/wisp-db/wisp/sdk/plugin"
)

func init() { plugin.HandleEviction(gdsf) }

// clockWeight scales the reconstructed clock L against the batch's mean
// F×C/S: 1 makes the whole batch's window of accesses worth one average
// key's value; 0 drops recency (size-aware LFU).
const clockWeight = 1.0

// A rank packs a candidate's place in the order, ascending (best victim
// first), so that one slices.Sort of uint64s ranks the batch (a comparison
// function is a call per comparison, which Go compiled to WebAssembly pays
// much for: plugins/RATIONALE.md): a live bit (0 for an expired candidate),
// then the expiry time (expired, saturated at expiryMax) or the bits of H
// (live: a non-negative float64's bits order as the float does, and leave
// the top bit clear), the low indexBits of either replaced by the
// candidate's index (so H keeps 40 of its 52 bits of mantissa).
const (
	indexBits = 12 // abi.CandidatesMax = 4096
	indexMask = 1<<indexBits - 1
	expiryMax = 1<<(63-indexBits) - 1
	liveBit   = 1 << 63
)

var _ = [1]struct{}{}[abi.CandidatesMax-1<<indexBits] // indexes fit

// ranks is reused from call to call: an instance runs one call at a time.
var ranks []uint64

// gdsf appends to victims the indexes of the in.VictimsMax candidates of
// lowest priority, lowest first.
func gdsf(in *plugin.EvictionInput, victims []int) []int {
	if in.VictimsMax <= 0 || len(in.Candidates) == 0 {
		return victims
	}
	// The batch's access window and mean value, over live candidates.
	oldest, live, sum := uint64(math.MaxUint64), 0, 0.0
	for i := range in.Candidates {
		c := &in.Candidates[i]
		if expired(c, in.NowUnixMs) {
			continue
		}
		oldest = min(oldest, c.LastAccess)
		sum += value(c)
		live++
	}
	var clockPerAccess float64 // L gained per tick of the access clock
	if live > 0 && in.AccessClock > oldest {
		clockPerAccess = clockWeight * sum / float64(live) / float64(in.AccessClock-oldest)
	}
	ranks = ranks[:0]
	for i := range in.Candidates {
		c := &in.Candidates[i]
		var r uint64
		if expired(c, in.NowUnixMs) {
			r = min(uint64(c.ExpiresAtUnixMs), expiryMax) << indexBits
		} else {
			clock := clockPerAccess * float64(c.LastAccess-oldest)
			r = liveBit | math.Float64bits(clock+value(c))
		}
		ranks = append(ranks, r&^indexMask|uint64(i))
	}
	slices.Sort(ranks)
	for _, r := range ranks[:min(len(ranks), in.VictimsMax)] {
		victims = append(victims, int(r&indexMask))
	}
	return victims
}

// value is a key's F×C/S: what keeping it is worth per byte, with C = 1.
func value(c *plugin.Candidate) float64 {
	return (float64(c.Frequency) + 1) / float64(max(c.SizeBytes, 1))
}

// expired reports whether c has expired at now: evicting it loses nothing.
func expired(c *plugin.Candidate, nowUnixMs int64) bool {
	return c.ExpiresAtUnixMs != 0 && c.ExpiresAtUnixMs <= nowUnixMs
}

func main() {}
