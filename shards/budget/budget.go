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
//   - For each node r holding a voter of the shard, with U_r used, B_r its
//     budget and k_r the replicas it holds, the shard may use its used bytes
//     u plus a part of r's room: (B_r − U_r) × (u + U_r/k_r)/(2·U_r), half
//     in proportion to its size and half in equal parts, so the parts of all
//     r's replicas add up to r's room (Allowance). Once r is over its budget
//     the shard may use u × B_r/U_r instead: the shards on a full node
//     shrink in proportion.
//   - The shard's budget is the least of these; nodes without a budget do
//     not limit it, and without any the shard has none (Shard.Budget).
//
// So a shard grows while every node holding it has room: a busy shard
// takes about half a node's room each measure, however unevenly keys fill
// the shards, and the node fills to within a few values of its budget. A
// remote node's term is computed once per measurement it gossips: a leader
// that evicted on a figure does not evict again on the same, now stale,
// figure; the leader's own node's term is always fresh. Since the parts add
// up to the room, a node's shards together stay within its budget, give or
// take what changed since its last measure.
//
// Pure: no I/O, clock or goroutines.
package budget

// Node is a node's data memory and budget (0: none) as it measured them.
type Node struct{ Used, Budget int64 }

// Allowance is what a shard using used bytes may use on a node with memory
// nm holding k replicas (see the rule above).
func Allowance(used int64, nm Node, k int) int64 {
	k = max(k, 1)
	if nm.Used > nm.Budget {
		return int64(float64(used) * float64(nm.Budget) / float64(nm.Used))
	}
	room := float64(nm.Budget - nm.Used)
	if nm.Used == 0 {
		return used + int64(room/float64(k))
	}
	part := (float64(used) + float64(nm.Used)/float64(k)) / (2 * float64(nm.Used))
	return used + int64(room*min(part, 1))
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
// self, measured now; the others' as gossiped), held the replicas each
// node holds. A budget is never 0, which means none: at least 1.
func (s *Shard) Budget(self string, used int64, voters []string, nodes map[string]Node, held map[string]int) (int64, string) {
	if s.terms == nil {
		s.terms = map[string]term{}
	}
	best, by := int64(-1), ""
	for _, r := range voters {
		nm, ok := nodes[r]
		if !ok || nm.Budget <= 0 {
			continue
		}
		allow := Allowance(used, nm, held[r])
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
