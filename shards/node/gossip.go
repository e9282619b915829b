package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/wisp-db/wisp/shards/membership"
)

// startGossip joins the cluster's gossip (shards/membership): the node
// announces its id and addresses, whether it has a cluster map
// (bootstrapped) or expects to create one (Config.BootstrapExpect), and
// learns which members answer. Seeds (Config.Join) are tried in the
// background until one answers, so nodes may start in any order.
func (n *Node) startGossip(ctx context.Context, bootstrapped bool) error {
	g, err := membership.Start(ctx, membership.Config{
		NodeID:   n.cfg.ID,
		BindAddr: n.cfg.GossipAddr,
		Meta: membership.Meta{
			NodeID: n.cfg.ID, APIURL: n.self.URL, RaftAddr: n.self.RaftAddr, Zone: n.self.Zone,
			MemoryBudgetBytes: uint64(max(n.cfg.MaxMemoryBytes, 0)),
			Bootstrapped:      bootstrapped, Expecting: !bootstrapped && n.cfg.BootstrapExpect > 0,
		},
		Logger:    n.cfg.Logger,
		Timing:    n.cfg.GossipTiming,
		SecretKey: n.cfg.GossipKey,
	})
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	n.gossip = g
	if len(n.cfg.Join) > 0 {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			if _, err := g.Join(ctx, n.cfg.Join...); err != nil && ctx.Err() == nil {
				if errors.Is(err, membership.ErrIDTaken) {
					n.idTaken.Store(&err) // a node still looking for its cluster gives up
				}
				n.log.Warn("could not join the cluster's gossip", "seeds", n.cfg.Join, "err", err)
			}
		}()
	}
	return nil
}

// liveness is node id's health in gossip as this node sees it ("alive",
// "suspect", "dead", "left"); "" without gossip, "unknown" for a member
// gossip has not seen.
func (n *Node) liveness(id string) string {
	if n.gossip == nil {
		return ""
	}
	if id == n.cfg.ID {
		return membership.StatusAlive.String()
	}
	m, ok := n.gossip.Member(id)
	if !ok {
		return "unknown"
	}
	return m.Status.String()
}
