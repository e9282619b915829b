package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/meta"
)

// Finding the cluster: a node that neither has a cluster map nor is in the
// static member list learns the cluster through gossip. It takes the map of
// any member that has one (Bootstrapped in its gossip metadata), and the
// placement driver then adds it to the map and moves replicas onto it. With
// Config.BootstrapExpect it may instead create a new cluster, with the
// other nodes started the same way, as Consul's -bootstrap-expect does.

// discoverPoll is how often a node finding its cluster looks at gossip.
const discoverPoll = 200 * time.Millisecond

// discoverWarnAfter is how long a node looks before it logs what it is
// waiting for.
const discoverWarnAfter = 10 * time.Second

// discover waits until it can return the cluster map to start from: a
// member's, or with BootstrapExpect a new cluster's once that many nodes
// expecting it (Expecting in their gossip metadata, this one included) are
// alive. Of those, the one with the smallest id makes the map, from their
// gossiped addresses and its own shard count; the others take it from that
// node, which gossips Bootstrapped once it has opened. A map of epoch 1
// (a new cluster's) that names this node is then opened as a static one.
//
// Nodes must agree on which nodes expect: start exactly BootstrapExpect of
// them with it. If two nodes each saw themselves as the smallest of a
// different set, there would be two clusters (Consul has the same limit).
func (n *Node) discover(ctx context.Context) (*meta.Map, error) {
	warnAt := time.Now().Add(discoverWarnAfter)
	var last error
	for {
		var expecting []membership.Member
		for _, mem := range n.gossip.Members() { // sorted by id
			if mem.Status != membership.StatusAlive {
				continue
			}
			switch {
			case mem.ID != n.cfg.ID && mem.Meta.Bootstrapped:
				m, err := n.fetchMap(ctx, mem.Meta.RaftAddr)
				if err == nil {
					n.log.Info("found the cluster", "via", mem.ID, "epoch", m.Epoch, "shards", m.Shards, "nodes", len(m.Nodes))
					return m, nil
				}
				last = fmt.Errorf("cluster map from %s: %w", mem.ID, err)
			case mem.Meta.Expecting:
				expecting = append(expecting, mem)
			}
		}
		if e := n.cfg.BootstrapExpect; e > 0 && len(expecting) >= e && expecting[0].ID == n.cfg.ID {
			cfg := n.cfg
			cfg.Peers = nil
			ids := make([]string, 0, len(expecting))
			for _, mem := range expecting {
				cfg.Peers = append(cfg.Peers, Peer{ID: mem.ID, URL: mem.Meta.APIURL, RaftAddr: mem.Meta.RaftAddr, Zone: mem.Meta.Zone})
				ids = append(ids, mem.ID)
			}
			if cfg.Shards == 0 {
				cfg.Shards = 1
			}
			m, _, err := staticMap(cfg)
			if err != nil {
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
			n.log.Info("creating a new cluster", "nodes", ids, "shards", cfg.Shards)
			return m, nil
		}
		if !warnAt.IsZero() && time.Now().After(warnAt) {
			warnAt = time.Time{}
			args := []any{"seeds", n.cfg.Join, "members_seen", len(n.gossip.Members())}
			if n.cfg.BootstrapExpect > 0 {
				args = append(args, "expecting", fmt.Sprintf("%d of %d", len(expecting), n.cfg.BootstrapExpect))
			}
			if last != nil {
				args = append(args, "err", last)
			}
			n.log.Warn("still looking for the cluster: no member with a cluster map has answered yet", args...)
		}
		if err := n.idTaken.Load(); err != nil {
			return nil, fmt.Errorf("find the cluster: %w", *err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("find the cluster: %w", ctx.Err())
		case <-time.After(discoverPoll):
		}
	}
}

// fetchMap asks the node at Raft address addr for its cluster map.
func (n *Node) fetchMap(ctx context.Context, addr string) (*meta.Map, error) {
	ctx, cancel := context.WithTimeout(ctx, controlCallTimeout)
	defer cancel()
	res, err := n.ctl.client(addr).Map(ctx, connect.NewRequest(&controlv1.MapRequest{}))
	if err != nil {
		return nil, err
	}
	m, err := meta.ReadMap(bytes.NewReader(res.Msg.Map))
	if err != nil {
		return nil, err
	}
	if m.Epoch == 0 {
		return nil, errors.New("no cluster map yet")
	}
	return m, nil
}

// peersOf lists map m's nodes as peers.
func peersOf(m *meta.Map) []Peer {
	out := make([]Peer, 0, len(m.Nodes))
	for _, nd := range m.Nodes {
		out = append(out, Peer{ID: nd.ID, URL: nd.URL, RaftAddr: nd.RaftAddr, Zone: nd.Zone})
	}
	return out
}

// bootstrapCommandOf returns the command that made map m, a map at epoch 1
// (just bootstrapped): what the meta group's first leader proposes if it
// has not committed it yet.
func bootstrapCommandOf(m *meta.Map) *meta.Command {
	cmd := &meta.Command{Op: meta.OpBootstrap, Shards: m.Shards, KeyVnodes: m.KeyVnodes, Replicas: m.Replicas}
	for _, nd := range m.Nodes {
		nd.State, nd.AddedEpoch = "", 0
		cmd.Nodes = append(cmd.Nodes, nd)
	}
	return cmd
}
