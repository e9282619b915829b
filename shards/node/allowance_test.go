package node

import (
	"math/rand/v2"
	"testing"
)

// TestAllowanceParts: on a node with room, the parts of the room its
// replicas may take add up to the room, whatever their sizes, so the
// node's shards together stay within its budget; over budget, they shrink
// in proportion to the budget.
func TestAllowanceParts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		k := 1 + r.IntN(16)
		sizes := make([]int64, k)
		var used int64
		for i := range sizes {
			if r.IntN(3) > 0 {
				sizes[i] = r.Int64N(1 << 20)
			}
			used += sizes[i]
		}
		budget := used + r.Int64N(1<<22) - 1<<20
		if budget <= 0 {
			continue
		}
		nm := nodeMemory{used: used, budget: budget}
		var total int64
		for _, s := range sizes {
			a := allowance(s, nm, k)
			if used <= budget && a < s {
				t.Fatalf("allowance(%d, %+v, %d) = %d: below what the shard uses on a node with room", s, nm, k, a)
			}
			total += a
		}
		if used <= budget && (total > budget || total < budget-int64(k)) {
			t.Fatalf("sizes %v on %+v: allowances add up to %d; want the budget %d (rounding down)", sizes, nm, total, budget)
		}
		if used > budget && total > budget {
			t.Fatalf("sizes %v on %+v: allowances add up to %d, past the budget %d", sizes, nm, total, budget)
		}
	}
	if a := allowance(0, nodeMemory{used: 0, budget: 800}, 8); a != 100 {
		t.Errorf("an empty shard on an empty node may use %d; want an eighth of the room, 100", a)
	}
}
