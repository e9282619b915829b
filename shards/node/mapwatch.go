package node

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	"github.com/wisp-db/wisp/shards/meta"
)

// The map watcher keeps the node's view on the latest cluster map: from its
// own meta replica if it has one that hears from a leader (woken by each
// apply), otherwise from a node that has one, by long poll
// (ControlService.Map). A replica the group removed hears from no leader,
// so its node learns from the others that it is to drop it. Every new map
// is saved in the data directory, becomes the view, and decides which
// replicas the node hosts (reconcile).

// mapWatchWait is how long one Map call waits for a change.
const mapWatchWait = 30 * time.Second

// localWatchWait is how long one wait on the node's own meta replica
// lasts, so that a replica that lost its leader is noticed.
const localWatchWait = 5 * time.Second

// mapRetry is the pause after a failed watch before the next attempt.
const mapRetry = time.Second

func (n *Node) watchMaps(ctx context.Context) {
	next := 0 // index into the view's nodes: the next one to ask
	for ctx.Err() == nil {
		var (
			m   *meta.Map
			err error
		)
		after := n.view().epoch
		if mr := n.metaGroup(); mr != nil && mr.hasLeader() {
			m, err = mr.mapAfter(ctx, after, localWatchWait)
		} else {
			m, next, err = n.remoteMap(ctx, after, next)
		}
		if err != nil {
			if ctx.Err() == nil {
				n.log.Debug("cluster map watch failed; retrying", "err", err)
				sleep(ctx, mapRetry)
			}
			continue
		}
		n.install(m)
	}
}

// remoteMap asks the view's nodes in turn, from index from, for a map past
// epoch after; it returns the index of the node that answered.
func (n *Node) remoteMap(ctx context.Context, after uint64, from int) (*meta.Map, int, error) {
	nodes := n.view().m.Nodes
	var last error
	for i := range nodes {
		k := (from + i) % len(nodes)
		if nodes[k].ID == n.cfg.ID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, mapWatchWait+controlCallTimeout)
		res, err := n.ctl.client(nodes[k].RaftAddr).Map(cctx, connect.NewRequest(&controlv1.MapRequest{
			AfterEpoch: after, WaitMs: uint32(mapWatchWait / time.Millisecond),
		}))
		cancel()
		if err != nil {
			last = err
			continue
		}
		if len(res.Msg.Map) == 0 {
			return nil, k, fmt.Errorf("node %s has no cluster map yet", nodes[k].ID)
		}
		m, err := meta.ReadMap(bytes.NewReader(res.Msg.Map))
		if err != nil {
			return nil, k, fmt.Errorf("cluster map from %s: %w", nodes[k].ID, err)
		}
		return m, k, nil
	}
	return nil, from, fmt.Errorf("no node answered with the cluster map: %w", last)
}

// install makes m the node's view if it is newer than the current one,
// saves it, and opens or drops replicas to match it.
func (n *Node) install(m *meta.Map) {
	if m.Epoch <= n.view().epoch || m.Shards != n.cfg.Shards {
		return
	}
	v, err := viewOf(m)
	if err != nil {
		n.log.Error("cannot route by the new cluster map", "epoch", m.Epoch, "err", err)
		return
	}
	if err := writeMapFile(n.cfg.DataDir, m); err != nil {
		n.log.Error("cannot save the cluster map", "epoch", m.Epoch, "err", err)
		return
	}
	n.views.Store(v)
	n.log.Debug("cluster map changed", "epoch", m.Epoch)
	n.reconcile(m)
	n.refreshMemory() // settings or replicas may have changed
	n.plugins.sync()  // so may the plugins
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
