package node

import "github.com/wisp-db/wisp/shards/balance"

// The node as shards/balance sees it: the leaderships it holds that the
// placement prefers elsewhere, and the hand-off.

// balanceNode adapts a Node to balance.Node.
type balanceNode struct{ n *Node }

func (b balanceNode) Misplaced() []balance.HandOff {
	n := b.n
	v := n.view()
	var out []balance.HandOff
	for _, sh := range n.replicas().hosted {
		want := v.place.Shards[sh.id].Leader
		if want != "" && want != n.cfg.ID && sh.group.IsLeader() {
			out = append(out, balance.HandOff{Shard: sh.id, To: want})
		}
	}
	return out
}

func (b balanceNode) Transfer(shard int, to string) error {
	n := b.n
	sh := n.replicas().byShard[shard]
	if sh == nil {
		return errNotHosted
	}
	return sh.group.TransferLeadership(to, n.view().peers[to].RaftAddr)
}
