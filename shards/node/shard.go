package node

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/budget"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
)

// shard is this node's replica of one shard: its Raft group, the leader's
// expiry and eviction loop, and its memory settings in force.
type shard struct {
	node    *Node
	id      int
	group   *raftgroup.Group
	reclaim *reclaim.Reclaimer // nil until startReclaim
	mem     atomic.Pointer[shardMemory]
	budget  budget.Shard // guarded by Node.memMu
}

// startReclaim starts the shard's expiry and eviction loop (it works only
// while the replica leads).
func (sh *shard) startReclaim(n *Node) {
	var reg prometheus.Registerer
	if n.metrics.reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"shard": shardLabel(sh.id)}, n.metrics.reg)
	}
	sh.reclaim = reclaim.Start(reclaim.Config{
		Group:    sh.group,
		Settings: func() reclaim.Settings { return n.settings(sh) },
		Interval: n.cfg.ReclaimInterval,
		Now:      func() time.Time { return time.UnixMilli(sh.group.NowUnixMs()) },
		Logger:   n.log.With("shard", sh.id), Registerer: reg,
	})
}

// close stops the reclaimer, then the replica: abruptly (kill) or with a
// leadership hand-off.
func (sh *shard) close(kill bool) error {
	if sh.reclaim != nil {
		sh.reclaim.Close()
	}
	if kill {
		return sh.group.Kill()
	}
	return sh.group.Close()
}

// The shard as shards/api uses it: api.Replica.

// Leader returns the shard's leader as this replica knows it.
func (sh *shard) Leader() string {
	id, _ := sh.group.Leader()
	return id
}

// Propose replicates muts as one command, stamped with the shard's memory
// budget and policy, and returns their results and the command's time.
// TTL rules (plugins) set the TTL of the puts they cover first.
func (sh *shard) Propose(ctx context.Context, muts []engine.Mutation) ([]engine.MutationResult, int64, error) {
	sh.node.plugins.applyTTLRules(ctx, muts, sh.group.NowUnixMs())
	cmd := engine.Command{Mutations: muts}
	sh.node.stampBudget(sh, &cmd)
	res, err := sh.group.Propose(ctx, &cmd)
	if err != nil {
		return nil, 0, err
	}
	if res.Err != nil {
		return nil, 0, res.Err
	}
	return res.Mutations, cmd.NowUnixMs, nil
}

// Read runs fn on the replica at the given level. A STALE read from a
// replica still catching up after a restart would go back in time from
// what it served before (raftgroup.Group.Replayed): a follower then refuses
// it as ErrNotLeader, so that the API sends it to the leader, and a leader
// serves it at the linearizable level, which waits for its term barrier.
func (sh *shard) Read(ctx context.Context, level raftgroup.Consistency, fn func(*engine.Engine)) error {
	if level == raftgroup.Stale && !sh.group.Replayed() {
		if !sh.group.IsLeader() {
			return errReplaying
		}
		level = raftgroup.Linearizable
	}
	return sh.group.Read(ctx, level, fn)
}

var errReplaying = fmt.Errorf("%w: replica still catching up after a restart", raftgroup.ErrNotLeader)

// NowUnixMs is the shard's clock.
func (sh *shard) NowUnixMs() int64 { return sh.group.NowUnixMs() }
