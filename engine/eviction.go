package engine

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/tidwall/btree"
)

// ttlItem is what the TTL index stores for one volatile key. key aliases the
// key tree's slot (stored keys are immutable).
type ttlItem struct {
	expiresAtUnixMs int64
	key             []byte
}

// lessTTL orders by expiry, then key: the earliest expiry first, and a total
// order, so that equal expiries do not collide.
func lessTTL(a, b ttlItem) bool {
	if c := cmp.Compare(a.expiresAtUnixMs, b.expiresAtUnixMs); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.key, b.key) < 0
}

func newTTLIndex() *btree.BTreeG[ttlItem] {
	// No locks, as for the key tree.
	return btree.NewBTreeGOptions(lessTTL, btree.Options{NoLocks: true})
}

// Stats returns the replica's counters in O(1).
func (e *Engine) Stats() Stats {
	return Stats{
		Keys:            e.tree.Len(),
		VolatileKeys:    e.ttl.Len(),
		MemoryUsedBytes: e.memoryUsed,
		ExpiredTotal:    e.expiredTotal,
		EvictedTotal:    e.evictedTotal,
	}
}

// Expired appends to out up to max stored keys whose expiry is at or before
// nowUnixMs, earliest expiry first (equal expiries in key order), and
// returns the extended slice. The active-expiry loop proposes OpExpire for
// them. O(max log n): it reads the TTL index from its start. A max of 0 or
// less appends nothing.
func (e *Engine) Expired(nowUnixMs int64, max int, out []Candidate) []Candidate {
	if max <= 0 {
		return out
	}
	n := 0
	e.ttl.Scan(func(it ttlItem) bool {
		if it.expiresAtUnixMs > nowUnixMs {
			return false
		}
		out = append(out, e.candidate(e.mustGet(it.key), nowUnixMs))
		n++
		return n < max
	})
	return out
}

// NextExpiry returns the earliest expiry of any stored key, and false if no
// key has one. The active-expiry loop can sleep until then.
func (e *Engine) NextExpiry() (int64, bool) {
	it, ok := e.ttl.Min()
	return it.expiresAtUnixMs, ok
}

// Sample appends to out n candidates drawn uniformly, with replacement, from
// the stored keys (expired ones included), or with volatileOnly from those
// with an expiry, and returns the extended slice; fewer than n if fewer keys
// are stored (none for n <= 0). rnd(k) must return a uniform int in [0, k):
// the engine has no randomness of its own. Each draw is one rnd call and
// an O(log n) lookup by position in a counted B-tree.
//
// Candidate.Frequency is the LFU counter decayed to nowUnixMs, without
// writing the decay back: sampling is not an access.
func (e *Engine) Sample(rnd func(n int) int, n int, volatileOnly bool, nowUnixMs int64, out []Candidate) []Candidate {
	if volatileOnly {
		size := e.ttl.Len()
		for range min(n, size) {
			it, ok := e.ttl.GetAt(rnd(size))
			if !ok {
				panic(fmt.Sprintf("engine: Sample: rnd(%d) returned a value out of range", size))
			}
			out = append(out, e.candidate(e.mustGet(it.key), nowUnixMs))
		}
		return out
	}
	size := e.tree.Len()
	for range min(n, size) {
		s, ok := e.tree.GetAt(rnd(size))
		if !ok {
			panic(fmt.Sprintf("engine: Sample: rnd(%d) returned a value out of range", size))
		}
		out = append(out, e.candidate(s, nowUnixMs))
	}
	return out
}

// mustGet returns the stored slot for key, which the TTL index holds.
func (e *Engine) mustGet(key []byte) slot {
	s, ok := e.tree.Get(slot{key: key})
	if !ok {
		panic(fmt.Sprintf("engine: TTL index holds key %q, absent from the key tree", key))
	}
	return s
}

// candidate describes s to an eviction policy at nowUnixMs.
func (e *Engine) candidate(s slot, nowUnixMs int64) Candidate {
	return Candidate{
		Key:             s.key,
		Version:         s.e.version,
		SizeBytes:       s.footprint(),
		ExpiresAtUnixMs: s.e.expiresAtUnixMs,
		LastAccess:      e.lastAccess(s.e),
		Frequency:       lfuCounter(s.e.lfu.Load(), nowUnixMs),
	}
}
