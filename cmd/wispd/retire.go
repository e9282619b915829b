package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
)

// Shrinking a dev cluster: `wispd dev --nodes N` on a data directory made
// with more nodes starts them all, then retires the ones past N the way an
// operator would retire a node (`wisp cluster drain`, then `wisp cluster
// remove`): the placement driver moves their replicas, and the meta
// group's, onto the others while they serve, so nothing is lost and no
// shard drops below its quorum, however many go. Then each is stopped,
// removed from the cluster map, and its data deleted.

// retirePoll is how often retire looks at the nodes it drains.
const retirePoll = 200 * time.Millisecond

// retire drains the nodes of dev listed in gone (their indexes in nodes,
// with their data directories in dirs) through the API at via, and once
// each holds no replica stops it, removes it and deletes its data.
func retire(ctx context.Context, log *slog.Logger, via string, nodes []*node.Node, dirs []string, gone []int) error {
	cli, err := client.New(via, client.WithTimeout(10*time.Second), client.WithMaxAttempts(5))
	if err != nil {
		return err
	}
	for _, i := range gone {
		id := nodes[i].ID()
		for {
			_, err := cli.DrainNode(ctx, id, false)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return err
			}
			log.Debug("dev: drain not accepted yet", "node", id, "err", err)
			sleep(ctx, retirePoll)
		}
		log.Info("dev: retiring a node past --nodes: moving its replicas to the others", "node", id)
	}
	for _, i := range gone {
		n := nodes[i]
		for holdsReplicas(n) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sleep(ctx, retirePoll)
		}
		lctx, cancel := context.WithTimeout(ctx, leaveTimeout)
		if err := n.Leave(lctx); err != nil {
			log.Debug("gossip leave not confirmed", "node", n.ID(), "err", err)
		}
		cancel()
		if err := n.Close(); err != nil {
			return fmt.Errorf("stop %s: %w", n.ID(), err)
		}
		for {
			_, err := cli.RemoveNode(ctx, n.ID())
			if err == nil {
				break
			}
			if connect.CodeOf(err) != connect.CodeFailedPrecondition && connect.CodeOf(err) != connect.CodeUnavailable || ctx.Err() != nil {
				return fmt.Errorf("remove %s: %w", n.ID(), err)
			}
			sleep(ctx, retirePoll) // gossip has not seen it leave yet
		}
		if err := os.RemoveAll(dirs[i]); err != nil {
			return fmt.Errorf("delete the data of %s: %w", n.ID(), err)
		}
		log.Info("dev: node retired: drained, removed from the cluster, its data deleted", "node", n.ID(), "data", dirs[i])
	}
	return nil
}

// holdsReplicas reports whether n still hosts a replica of a shard or of
// the meta group.
func holdsReplicas(n *node.Node) bool {
	if n.Meta() != nil {
		return true
	}
	for s := range n.Shards() {
		if n.Shard(s) != nil {
			return true
		}
	}
	return false
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
