package budget

import (
	"math/rand/v2"
	"testing"
)

// TestAllowance: on a node with room, a shard may take all of it, so one
// write that fits in the node goes in whatever the shard held; over
// budget, the node's shards shrink in proportion, together to the budget.
func TestAllowance(t *testing.T) {
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
			a := Allowance(s, nm)
			if used <= budget && a != s+budget-used {
				t.Fatalf("Allowance(%d, %+v) = %d; want the shard's size plus the node's room", s, nm, a)
			}
			total += a
		}
		if used > budget && (total > budget || total < budget-int64(k)) {
			t.Fatalf("sizes %v on %+v: allowances add up to %d; want the budget %d (rounding down)", sizes, nm, total, budget)
		}
	}
	if a := Allowance(0, Node{Used: 320, Budget: 1 << 20}); a < 600_000 {
		t.Errorf("an empty shard on a nearly empty 1 MiB node may use %d; want room for a 600 KB value", a)
	}
}

// TestRemoteTermOncePerMeasure: a remote node's term is computed once per
// measurement, so a shard that shrank (evicted) on it keeps its budget
// until the node measures again; the caller's own node is always fresh.
func TestRemoteTermOncePerMeasure(t *testing.T) {
	var s Shard
	full := map[string]Node{"a": {Used: 100, Budget: 200}, "b": {Used: 1100, Budget: 1000}}
	b1, by := s.Budget("a", 100, []string{"a", "b"}, full)
	if by != "b" || b1 != 90 { // 100 × 1000/1100
		t.Fatalf("budget %d set by %q; want 90 by b, the full node", b1, by)
	}
	// The shard evicted down to 85; b has not measured again.
	if b2, _ := s.Budget("a", 85, []string{"a", "b"}, full); b2 != b1 {
		t.Errorf("budget %d after evicting on b's unchanged measure; want %d kept", b2, b1)
	}
	full["b"] = Node{Used: 1000, Budget: 1000}
	if b3, by := s.Budget("a", 85, []string{"a", "b"}, full); by != "b" || b3 != 85 {
		t.Errorf("budget %d by %q after b measured again at its budget; want 85 by b", b3, by)
	}
	if b, by := s.Budget("a", 5, []string{"c"}, full); b != 0 || by != "" {
		t.Errorf("budget %d by %q with no node known; want none", b, by)
	}
}
