package budget

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
		nm := Node{Used: used, Budget: budget}
		var total int64
		for _, s := range sizes {
			a := Allowance(s, nm, k)
			if used <= budget && a < s {
				t.Fatalf("Allowance(%d, %+v, %d) = %d: below what the shard uses on a node with room", s, nm, k, a)
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
	if a := Allowance(0, Node{Used: 0, Budget: 800}, 8); a != 100 {
		t.Errorf("an empty shard on an empty node may use %d; want an eighth of the room, 100", a)
	}
}

// TestRemoteTermOncePerMeasure: a remote node's term is computed once per
// measurement, so a shard that shrank (evicted) on it keeps its budget
// until the node measures again; the caller's own node is always fresh.
func TestRemoteTermOncePerMeasure(t *testing.T) {
	var s Shard
	full := map[string]Node{"a": {Used: 100, Budget: 200}, "b": {Used: 1100, Budget: 1000}}
	held := map[string]int{"a": 1, "b": 1}
	b1, by := s.Budget("a", 100, []string{"a", "b"}, full, held)
	if by != "b" || b1 != 90 { // 100 × 1000/1100
		t.Fatalf("budget %d set by %q; want 90 by b, the full node", b1, by)
	}
	// The shard evicted down to 85; b has not measured again.
	if b2, _ := s.Budget("a", 85, []string{"a", "b"}, full, held); b2 != b1 {
		t.Errorf("budget %d after evicting on b's unchanged measure; want %d kept", b2, b1)
	}
	full["b"] = Node{Used: 1000, Budget: 1000}
	if b3, by := s.Budget("a", 85, []string{"a", "b"}, full, held); by != "b" || b3 != 85 {
		t.Errorf("budget %d by %q after b measured again at its budget; want 85 by b", b3, by)
	}
	if b, by := s.Budget("a", 5, []string{"c"}, full, held); b != 0 || by != "" {
		t.Errorf("budget %d by %q with no node known; want none", b, by)
	}
}
