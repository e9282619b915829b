package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
)

// Memory. A node's budget (--max-memory, or the cluster-wide
// max_memory_bytes setting) bounds the data it holds. Only a shard's
// leader can act on it, since only its decisions reach every replica: it
// stamps a budget into each write, which the engine refuses past it on
// every replica alike (noeviction), and its reclaimer evicts down to that
// budget (any other policy). The shard's budget is where the node budgets
// meet:
//
//   - Every node measures the memory its data takes (the engines' own
//     accounting) every memoryInterval and gossips it with its budget when
//     either moved by more than publishStep, or moved at all for
//     publishQuiet.
//   - For each node r holding a voter of the shard, with U_r used, B_r its
//     budget and k_r the replicas it holds, the shard may use its used
//     bytes u plus a part of r's room: (B_r − U_r) × (u + U_r/k_r)/(2·U_r),
//     half in proportion to its size and half in equal parts, so the parts
//     of all r's replicas add up to r's room. Once r is over its budget
//     the shard may use u × B_r/U_r instead: the shards on a full node
//     shrink in proportion.
//   - The shard's budget is the least of these; nodes without a budget do
//     not limit it, and without any the shard has none.
//
// So a shard grows while every node holding it has room: a busy shard
// takes about half a node's room each measure, however unevenly keys fill
// the shards, and the node fills to within a few values of its budget. A
// full node stops its shards' writes (noeviction) or makes them evict (any
// other policy). A remote node's term is computed once per measurement it
// gossips: a leader that evicted on a figure does not evict again on the
// same, now stale, figure; the node's own term is always fresh. Since the
// parts add up to the room, a node's shards together stay within its
// budget, give or take what changed since its last measure (less than
// publishStep, or publishQuiet's worth of writes).

// memoryInterval is how often a node measures its memory and recomputes
// its shards' budgets.
const memoryInterval = 500 * time.Millisecond

// publishQuiet is how long a small change of a node's memory waits before
// it is gossiped anyway.
const publishQuiet = 2 * time.Second

// publishStep is the change of a node's memory gossiped at once: 1/64 of
// its budget, at least 64 KiB.
func publishStep(budget int64) int64 { return max(budget/64, 64<<10) }

// nodeMemory is one node's data memory and budget (0: none) as measured.
type nodeMemory struct{ used, budget int64 }

// shardMemory is the memory settings in force for a replica, as
// refreshMemory last set them.
type shardMemory struct {
	settings  reclaim.Settings
	limitedBy string     // the node whose room sets the budget; "" without one
	room      nodeMemory // that node's memory
}

// memTerm is the budget a remote node's measurement gave a shard.
type memTerm struct {
	seen  nodeMemory
	allow int64
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

// stampBudget sets the noeviction budget on a write command for sh.
func (n *Node) stampBudget(sh *shard, cmd *engine.Command) {
	s := n.settings(sh)
	if s.MaxMemoryBytes > 0 && s.Policy.Name() == "noeviction" {
		cmd.MaxMemoryBytes = s.MaxMemoryBytes
	}
}

// refreshMemory measures the node's memory, takes the other nodes' from
// gossip, and sets every hosted replica's memory settings. It returns the
// node's own measure. Called every memoryInterval, with each new map, and
// after a settings change.
func (n *Node) refreshMemory() nodeMemory {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	v, rs := n.view(), n.replicas()
	set := n.clusterSettings(v, rs)
	self := nodeMemory{budget: n.cfg.MaxMemoryBytes}
	if set.MaxMemoryBytes != nil {
		self.budget = *set.MaxMemoryBytes
	}
	name := n.cfg.EvictionPolicy
	if set.EvictionPolicy != nil {
		name = *set.EvictionPolicy
	}
	if name == "" {
		name = DefaultEvictionPolicy
	}
	used := make([]int64, len(rs.hosted))
	for i, sh := range rs.hosted {
		_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { used[i] = e.MemoryUsed() })
		self.used += used[i]
	}
	nodes := map[string]nodeMemory{n.cfg.ID: self}
	if n.gossip != nil {
		for _, mem := range n.gossip.Members() {
			if mem.ID != n.cfg.ID && mem.Status == membership.StatusAlive {
				nodes[mem.ID] = nodeMemory{used: int64(mem.Meta.MemoryUsedBytes), budget: int64(mem.Meta.MemoryBudgetBytes)}
			}
		}
	}
	held := map[string]int{}
	for _, l := range v.place.Nodes {
		held[l.ID] = l.Replicas
	}
	for i, sh := range rs.hosted {
		next := &shardMemory{}
		next.settings.MaxMemoryBytes, next.limitedBy = n.shardBudget(sh, used[i], v.place.Shards[sh.id].Replicas, nodes, held)
		next.room = nodes[next.limitedBy]
		if old := sh.mem.Load(); old != nil && old.settings.Policy.Name() == name {
			next.settings.Policy = old.settings.Policy // keeps the evictor's pool
		} else if p, err := eviction.New(name); err == nil {
			next.settings.Policy = p
		} else {
			n.log.Error("unknown eviction policy in force; using noeviction", "policy", name, "err", err)
			next.settings.Policy, _ = eviction.New(DefaultEvictionPolicy)
		}
		sh.mem.Store(next)
	}
	n.memSelf.Store(&self)
	return self
}

// shardBudget is the budget of shard sh, using used bytes with voters on
// the nodes listed (see the rule above), and the node that sets it. Called
// under memMu.
func (n *Node) shardBudget(sh *shard, used int64, voters []string, nodes map[string]nodeMemory, held map[string]int) (int64, string) {
	best, by := int64(-1), ""
	if sh.memTerms == nil {
		sh.memTerms = map[string]memTerm{}
	}
	for _, r := range voters {
		nm, ok := nodes[r]
		if !ok || nm.budget <= 0 {
			continue
		}
		allow := allowance(used, nm, held[r])
		if r != n.cfg.ID {
			if t, ok := sh.memTerms[r]; ok && t.seen == nm {
				allow = t.allow // acted on this measurement already
			} else {
				sh.memTerms[r] = memTerm{seen: nm, allow: allow}
			}
		}
		if best < 0 || allow < best {
			best, by = allow, r
		}
	}
	if best < 0 {
		return 0, ""
	}
	return max(best, 1), by // 0 would mean no budget
}

// allowance is what a shard using used bytes may use on a node with memory
// nm holding k replicas (see the rule above).
func allowance(used int64, nm nodeMemory, k int) int64 {
	k = max(k, 1)
	if nm.used > nm.budget {
		return int64(float64(used) * float64(nm.budget) / float64(nm.used))
	}
	room := float64(nm.budget - nm.used)
	if nm.used == 0 {
		return used + int64(room/float64(k))
	}
	part := (float64(used) + float64(nm.used)/float64(k)) / (2 * float64(nm.used))
	return used + int64(room*min(part, 1))
}

// runMemory refreshes the memory settings every memoryInterval and gossips
// the node's memory (and, the first time, that it has a cluster map).
func (n *Node) runMemory(ctx context.Context) {
	t := time.NewTicker(memoryInterval)
	defer t.Stop()
	var (
		last      nodeMemory
		lastAt    time.Time
		announced bool
		warned    bool
	)
	for {
		self := n.refreshMemory()
		if n.gossip != nil {
			moved := abs(self.used-last.used) > publishStep(self.budget) || self.budget != last.budget
			if !announced || moved || self != last && time.Since(lastAt) >= publishQuiet {
				meta := n.gossip.Meta()
				meta.Bootstrapped, meta.Expecting = true, false
				meta.MemoryUsedBytes, meta.MemoryBudgetBytes = uint64(self.used), uint64(self.budget)
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

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// memoryFullError refuses a write to a shard whose budget is reached
// under noeviction, naming the node whose budget sets it.
func (n *Node) memoryFullError(shard int) error {
	var m *shardMemory
	if sh := n.replicas().byShard[shard]; sh != nil {
		m = sh.mem.Load()
	}
	what := "its memory budget is reached"
	if m != nil && m.limitedBy != "" {
		what = fmt.Sprintf("node %s, which holds one of its replicas, has used %d of its %d bytes (shard budget now %d bytes)", m.limitedBy, m.room.used, m.room.budget, m.settings.MaxMemoryBytes)
	}
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"shard %d is full: %s, and the eviction policy is noeviction: delete keys, raise the budget (wisp config set max-memory), or choose an eviction policy", shard, what))
}
