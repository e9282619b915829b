package node

import (
	"slices"

	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/ring"
)

// view is the cluster as a node routes by it: the members, where each
// shard's replicas are and which should lead, and the epoch that names
// this layout to clients (the Wisp-Epoch header). A view is immutable: the
// node replaces the whole view when the layout changes, so a reader holds
// one consistent layout for as long as it keeps the pointer. Each new
// cluster map makes a new view (viewOf).
type view struct {
	m     *meta.Map       // the cluster map it was made from
	peers map[string]Peer // by id
	place ring.Placement
	// target is where the ring wants the replicas over the active members
	// (what the placement driver moves them toward); place differs from it
	// while moves are under way or to come.
	target ring.Placement
	epoch  uint64 // the map's epoch
	// epochText is epoch in decimal, the Wisp-Epoch header's value, made
	// once rather than on every response.
	epochText string
	// route is the layout as shards/api routes requests by it.
	route *api.Route
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

// without returns a copy of rs without shard id's replica.
func (rs *replicaSet) without(id int) *replicaSet { return rs.replaced(id, nil) }

// with returns a copy of rs with sh added (replacing any replica of its
// shard).
func (rs *replicaSet) with(sh *shard) *replicaSet { return rs.replaced(sh.id, sh) }

// replaced returns a copy of rs with shard id's replica set to sh (nil:
// none).
func (rs *replicaSet) replaced(id int, sh *shard) *replicaSet {
	next := &replicaSet{byShard: slices.Clone(rs.byShard)}
	next.byShard[id] = sh
	for _, s := range next.byShard {
		if s != nil {
			next.hosted = append(next.hosted, s)
		}
	}
	return next
}

// replicas returns the replicas the node hosts now.
func (n *Node) replicas() *replicaSet { return n.reps.Load() }
