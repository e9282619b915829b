package node

import (
	"context"
	"fmt"
	"time"
)

// Health reports the hosted shards that know no leader, how many replicas
// the node hosts and how many of them lead. A node is healthy when every
// replica it hosts knows its shard's leader: then every request it takes
// can be served or forwarded (/healthz).
func (n *Node) Health() (leaderless []int, replicas, leaders int) {
	hosted := n.replicas().hosted
	for _, sh := range hosted {
		id, _ := sh.group.Leader()
		switch id {
		case "":
			leaderless = append(leaderless, sh.id)
		case n.cfg.ID:
			leaders++
		}
	}
	return leaderless, len(hosted), leaders
}

// WaitReady blocks until the node is healthy (every replica it hosts knows
// its shard's leader, as /healthz reports) or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		leaderless, _, _ := n.Health()
		if len(leaderless) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: shards %v have no leader: %w", n.cfg.ID, leaderless, ctx.Err())
		case <-t.C:
		}
	}
}

// readyPoll is how often WaitReady looks.
const readyPoll = 20 * time.Millisecond
