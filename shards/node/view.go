package node

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/wisp-db/wisp/shards/ring"
)

// view is the cluster as a node routes by it: the members, where each
// shard's replicas are and which should lead, and the epoch that names
// this layout to clients (the Wisp-Epoch header). A view is immutable: the
// node replaces the whole view when the layout changes, so a reader holds
// one consistent layout for as long as it keeps the pointer. Today the
// view is made once, at Open, from the static member list; with dynamic
// membership (issue 10) the cluster map will produce new ones.
type view struct {
	peers map[string]Peer // by id
	place ring.Placement
	epoch uint64 // hash of the layout: see layoutEpoch
	// epochText is epoch in decimal, the Wisp-Epoch header's value, made
	// once rather than on every response.
	epochText string
}

// newView places cfg's shards on cfg's peers.
func newView(cfg Config) (*view, error) {
	v := &view{peers: make(map[string]Peer, len(cfg.Peers))}
	members := make([]ring.Node, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		v.peers[p.ID] = p
		members = append(members, ring.Node{ID: p.ID, Zone: p.Zone})
	}
	var err error
	v.place, err = ring.Place(cfg.Shards, members, min(ReplicationFactor, len(members)))
	if err != nil {
		return nil, fmt.Errorf("place shards: %w", err)
	}
	v.epoch = layoutEpoch(cfg, v.place)
	v.epochText = strconv.FormatUint(v.epoch, 10)
	return v, nil
}

// view returns the node's current view.
func (n *Node) view() *view { return n.views.Load() }

// replicaSet is the replicas a node hosts. Immutable, like a view: the
// node replaces the whole set when it opens or closes a replica, so a
// reader keeps one consistent set.
type replicaSet struct {
	byShard []*shard // by shard id; nil where the node holds no replica
	hosted  []*shard // the non-nil entries of byShard, in id order
}

// with returns a copy of rs with sh added (replacing any replica of its
// shard).
func (rs *replicaSet) with(sh *shard) *replicaSet {
	next := &replicaSet{byShard: slices.Clone(rs.byShard)}
	next.byShard[sh.id] = sh
	for _, s := range next.byShard {
		if s != nil {
			next.hosted = append(next.hosted, s)
		}
	}
	return next
}

// replicas returns the replicas the node hosts now.
func (n *Node) replicas() *replicaSet { return n.reps.Load() }
