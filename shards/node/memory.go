package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/shards/budget"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
)

// Memory: each node measures its data every memoryInterval, gossips it
// when shards/budget says to, and sets each hosted replica's budget by
// shards/budget's rule from its own measure and the others' as gossiped.

// memoryInterval is how often a node measures its memory and recomputes
// its shards' budgets.
const memoryInterval = 500 * time.Millisecond

// publishQuiet is how long a small change of a node's memory waits before
// it is gossiped anyway.
const publishQuiet = 2 * time.Second

// shouldPublish reports whether a node that last gossiped last, since
// long ago, should gossip now: its budget changed, its memory moved by
// more than 1/64 of the budget (at least 64 KiB), or moved at all for
// publishQuiet.
func shouldPublish(last, now budget.Node, since time.Duration) bool {
	moved := now.Used - last.Used
	if moved < 0 {
		moved = -moved
	}
	step := max(now.Budget/64, 64<<10)
	return now.Budget != last.Budget || moved > step || now != last && since >= publishQuiet
}

// inForce is the node's memory as last measured, and the eviction policy
// in force on it.
type inForce struct {
	mem    budget.Node
	policy string
}

// shardMemory is the memory settings in force for a replica, as
// refreshMemory last set them.
type shardMemory struct {
	settings  reclaim.Settings
	limitedBy string      // the node whose room sets the budget; "" without one
	room      budget.Node // that node's memory
}

// settings returns the memory settings in force for sh: its budget (see
// above) and the eviction policy. Lock-free: refreshMemory sets them.
func (n *Node) settings(sh *shard) reclaim.Settings {
	if m := sh.mem.Load(); m != nil {
		return m.settings
	}
	n.refreshMemory() // opened since the last refresh
	if m := sh.mem.Load(); m != nil {
		return m.settings
	}
	p, _ := eviction.New(DefaultEvictionPolicy)
	return reclaim.Settings{Policy: p}
}

// stampBudget sets the noeviction budget on a write command for sh: when
// nothing would evict what the command writes, the engine refuses it past
// the budget. With eviction plugins over some prefixes and noeviction
// elsewhere, a command writing any key no plugin covers is refused.
func (n *Node) stampBudget(sh *shard, cmd *engine.Command) {
	s := n.settings(sh)
	if s.MaxMemoryBytes <= 0 {
		return
	}
	refuse := s.Policy.Name() == "noeviction"
	if sp, ok := s.Policy.(*scopedPolicy); ok {
		refuse = sp.fallback.Name() == "noeviction" && !sp.coversAll(cmd.Mutations)
	}
	if refuse {
		cmd.MaxMemoryBytes = s.MaxMemoryBytes
	}
}

// refreshMemory measures the node's memory, takes the other nodes' from
// gossip, and sets every hosted replica's memory settings. It returns the
// node's own measure and policy. Called every memoryInterval, with each new
// map, and after a settings change.
func (n *Node) refreshMemory() inForce {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	v, rs := n.view(), n.replicas()
	set := n.clusterSettings(v, rs)
	self := budget.Node{Budget: n.cfg.MaxMemoryBytes}
	if set.MaxMemoryBytes != nil {
		self.Budget = *set.MaxMemoryBytes
	}
	name := n.cfg.EvictionPolicy
	if set.EvictionPolicy != nil {
		name = *set.EvictionPolicy
	}
	if name == "" {
		name = DefaultEvictionPolicy
	}
	builtin := n.builtin.Load()
	if builtin == nil || (*builtin).Name() != name {
		p, err := eviction.New(name)
		if err != nil {
			n.log.Error("unknown eviction policy in force; using noeviction", "policy", name, "err", err)
			name = DefaultEvictionPolicy
			p, _ = eviction.New(name)
		}
		builtin = &p
		n.builtin.Store(builtin)
	}
	policy := n.plugins.policy(*builtin)
	used := make([]int64, len(rs.hosted))
	for i, sh := range rs.hosted {
		_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { used[i] = e.MemoryUsed() })
		self.Used += used[i]
	}
	nodes := map[string]budget.Node{n.cfg.ID: self}
	if n.gossip != nil {
		for _, mem := range n.gossip.Members() {
			if mem.ID != n.cfg.ID && mem.Status == membership.StatusAlive {
				nodes[mem.ID] = budget.Node{Used: int64(mem.Meta.MemoryUsedBytes), Budget: int64(mem.Meta.MemoryBudgetBytes)}
			}
		}
	}
	for i, sh := range rs.hosted {
		next := &shardMemory{}
		next.settings.MaxMemoryBytes, next.limitedBy = sh.budget.Budget(n.cfg.ID, used[i], v.place.Shards[sh.id].Replicas, nodes)
		next.room = nodes[next.limitedBy]
		next.settings.Policy = policy // the same as before unless changed: the evictor keeps its pool
		sh.mem.Store(next)
	}
	now := inForce{mem: self, policy: policy.Name()}
	n.memSelf.Store(&now)
	return now
}

// runMemory refreshes the memory settings every memoryInterval and gossips
// the node's memory (and, the first time, that it has a cluster map).
func (n *Node) runMemory(ctx context.Context) {
	t := time.NewTicker(memoryInterval)
	defer t.Stop()
	var (
		last      budget.Node
		lastAt    time.Time
		announced bool
		warned    bool
	)
	for {
		self := n.refreshMemory().mem
		if n.gossip != nil {
			if !announced || shouldPublish(last, self, time.Since(lastAt)) {
				meta := n.gossip.Meta()
				meta.Bootstrapped, meta.Expecting = true, false
				meta.MemoryUsedBytes, meta.MemoryBudgetBytes = uint64(self.Used), uint64(self.Budget)
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				err := n.gossip.UpdateMeta(cctx, meta)
				cancel()
				switch {
				case err == nil || errors.Is(err, membership.ErrUnconfirmed):
					// Unconfirmed: it spreads with later gossip.
					last, lastAt, announced = self, time.Now(), true
				case ctx.Err() == nil && !announced && !warned:
					warned = true
					n.log.Warn("gossip: could not announce that this node has a cluster map; retrying", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MemoryFull says, for a client, why shard id refused a write under
// noeviction: which node's budget is reached (api.Node).
func (n *Node) MemoryFull(id int) string {
	var m *shardMemory
	if rs := n.replicas().byShard; id >= 0 && id < len(rs) && rs[id] != nil {
		m = rs[id].mem.Load()
	}
	if m == nil || m.limitedBy == "" {
		return "its memory budget is reached"
	}
	return fmt.Sprintf("node %s, which holds one of its replicas, has used %d of its %d bytes (shard budget now %d bytes)", m.limitedBy, m.room.Used, m.room.Budget, m.settings.MaxMemoryBytes)
}
