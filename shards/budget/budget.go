// Package budget is the memory rule: how many bytes a shard may use, given
// the memory of the nodes that hold its replicas. A node's budget
// (--max-memory, or the cluster-wide max_memory_bytes setting) bounds the
// data on that node, but only a shard's leader can act on it, since only
// its decisions reach every replica: it stamps the shard's budget into each
// write (under noeviction the engine refuses past it on every replica
// alike) and its reclaimer evicts down to it. This package computes that
// budget; shards/node measures, gossips and applies it.
//
// The rule:
//
//   - Every node measures the memory its data takes and gossips it with its
//     budget when either moved (shards/node: every 500 ms, when it moved by
//     1/64 of the budget, at least 64 KiB, or moved at all for 2 s).
//   - For each node r holding a voter of the shard, with U_r used and B_r
//     its budget, the shard may use its used bytes u plus r's room,
//     B_r − U_r, while r has room (Allowance): like Redis, a write goes in
//     if the node has room for it. Once r is over its budget the shard may
//     use u × B_r/U_r instead: the shards on a full node shrink in
//     proportion, together to the budget.
//   - The shard's budget is the least of these; nodes without a budget do
//     not limit it, and without any the shard has none (Shard.Budget).
//
// So any shard may take what room every node holding it has, however
// unevenly keys fill the shards, and a node fills to within a value of
// its budget. The price is the bound: the shards on one node draw on the
// same room until its next measure reaches their leaders, so a node can
// pass its budget by what its shards were written in that time (about a
// second; with noeviction the excess stays until keys are deleted, with
// any other policy it is evicted again). A remote node's term is computed
// once per measurement it gossips: a leader that evicted on a figure does
// not evict again on the same, now stale, figure; the leader's own node's
// term is always fresh.
//
// Pure: no I/O, clock or goroutines.
package budget

// Node is a node's data memory and budget (0: none) as it measured them.
type Node struct{ Used, Budget int64 }

// Allowance is what a shard using used bytes may use on a node with memory
// nm (see the rule above).
func Allowance(used int64, nm Node) int64 {
	if nm.Used > nm.Budget {
		return int64(float64(used) * float64(nm.Budget) / float64(nm.Used))
	}
	return used + nm.Budget - nm.Used
}

// Shard is one shard's budget over time: it remembers the term each remote
// node's measurement gave it. The zero value is ready; not safe for
// concurrent use.
type Shard struct {
	terms map[string]term
}

// term is the allowance a remote node's measurement gave.
type term struct {
	seen  Node
	allow int64
}

// Budget returns the budget of a shard using used bytes whose voters are on
// the nodes listed, and the node that sets it ("" and 0, no budget, when
// none of them has one). nodes holds each node's memory (the caller's own,
// self, measured now; the others' as gossiped). A budget is never 0, which
// means none: at least 1.
func (s *Shard) Budget(self string, used int64, voters []string, nodes map[string]Node) (int64, string) {
	if s.terms == nil {
		s.terms = map[string]term{}
	}
	best, by := int64(-1), ""
	for _, r := range voters {
		nm, ok := nodes[r]
		if !ok || nm.Budget <= 0 {
			continue
		}
		allow := Allowance(used, nm)
		if r != self {
			if t, ok := s.terms[r]; ok && t.seen == nm {
				allow = t.allow // acted on this measurement already
			} else {
				s.terms[r] = term{seen: nm, allow: allow}
			}
		}
		if best < 0 || allow < best {
			best, by = allow, r
		}
	}
	if best < 0 {
		return 0, ""
	}
	return max(best, 1), by
}
