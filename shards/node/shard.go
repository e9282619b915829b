package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/shards/budget"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
)

// shard is this node's replica of one shard: its Raft group, the leader's
// expiry and eviction loop, and its memory settings in force.
type shard struct {
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

// leaderCache remembers the last known leader of each shard, for shards this
// node does not host (for hosted ones the replica itself knows). Safe for
// concurrent use.
type leaderCache struct {
	mu      sync.Mutex
	leaders []string // guarded by mu: node id per shard, "" if unknown
}

func (c *leaderCache) init(shards int) { c.leaders = make([]string, shards) }

func (c *leaderCache) get(shard int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaders[shard]
}

func (c *leaderCache) set(shard int, id string) {
	c.mu.Lock()
	c.leaders[shard] = id
	c.mu.Unlock()
}

// forget clears the shard's leader if it is still id.
func (c *leaderCache) forget(shard int, id string) {
	c.mu.Lock()
	if c.leaders[shard] == id {
		c.leaders[shard] = ""
	}
	c.mu.Unlock()
}
