package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/metastore"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Replica hosting: which Raft groups run on this node. The cluster map
// decides (hostsShard); the replica folders in the data directory are the
// node's durable record of what it hosts, so a node restarts every replica
// it had, whatever map it last saw, and the map then tells it which to
// drop. Opening and dropping replicas happens at Open and in reconcile,
// one at a time (hostMu).

// metaReplica is this node's replica of the meta group.
type metaReplica struct {
	group *raftgroup.Group
	store *metastore.Store
}

// metaGroup returns this node's meta replica, nil if it hosts none. The
// replica can be dropped (reconcile) while a caller holds it: its calls
// then fail as on a closed group.
func (n *Node) metaGroup() *metaReplica { return n.metaRep.Load() }

// hasLeader reports whether the replica knows the group's leader.
func (mr *metaReplica) hasLeader() bool {
	id, _ := mr.group.Leader()
	return id != ""
}

func (n *Node) shardDir(id int) string {
	return filepath.Join(n.cfg.DataDir, fmt.Sprintf("shard-%d", id))
}

func (n *Node) metaDir() string { return filepath.Join(n.cfg.DataDir, "meta") }

// shardDirs lists the shards that have a replica folder in the data
// directory.
func (n *Node) shardDirs() ([]int, error) {
	ents, err := os.ReadDir(n.cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	var ids []int
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "shard-")
		if !ok || !e.IsDir() {
			continue
		}
		id, err := strconv.Atoi(rest)
		if err != nil || id < 0 || id >= n.cfg.Shards {
			return nil, fmt.Errorf("data directory: %s is not a replica of one of the %d shards", e.Name(), n.cfg.Shards)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// openGroup opens this node's replica of group id in dir: it bootstraps the
// group from peers if it has no state and peers are given, and otherwise
// resumes it, or starts empty and waits for the leader to add it (join).
func (n *Node) openGroup(id uint64, dir string, peers []raftgroup.Peer, deferElection bool, logger string) (*raftgroup.Group, error) {
	layer, err := n.mux.Group(id)
	if err != nil {
		return nil, err
	}
	gc := raftgroup.Config{
		NodeID:   n.cfg.ID,
		Dir:      dir,
		RaftAddr: n.self.RaftAddr,
		Peers:    peers,
		Join:     len(peers) == 0,
		Logger:   n.cfg.Logger.With("group", logger),
		Now:      n.cfg.Now,
		Timing:   n.cfg.Timing,
		NoSync:   n.cfg.NoSync,
		Stream:   layer,

		MaxInflightPacks: n.inflight,
		DeferElection:    deferElection,
	}
	if n.logs != nil {
		gc.Logs, gc.Stable = n.logs.Group(id), n.logs.Stable(id)
	}
	if n.hub != nil {
		gc.Transport = func(snapshots *raft.NetworkTransport) (raft.Transport, error) {
			return n.hub.Transport(id, snapshots)
		}
	}
	g, err := raftgroup.Open(gc)
	if err != nil {
		layer.Close()
		return nil, err
	}
	return g, nil
}

// openShard opens a replica of shard id (see openGroup) and adds it to the
// hosted set. After Open, it also starts the replica's reclaim loop.
func (n *Node) openShard(id int, peers []raftgroup.Peer, deferElection bool) error {
	g, err := n.openGroup(uint64(id), n.shardDir(id), peers, deferElection, "shard-"+strconv.Itoa(id))
	if err != nil {
		return fmt.Errorf("shard %d: %w", id, err)
	}
	sh := &shard{node: n, id: id, group: g}
	if n.metrics != nil {
		sh.startReclaim(n)
	}
	n.reps.Store(n.replicas().with(sh))
	return nil
}

// dropShard stops this node's replica of shard id and deletes its data: its
// log, its stable state and its folder. The shard's group no longer counts
// this node (the map says so), so nothing is lost.
func (n *Node) dropShard(id int) error {
	rs := n.replicas()
	sh := rs.byShard[id]
	if sh == nil {
		return nil
	}
	n.reps.Store(rs.without(id))
	if err := n.deleteGroup(uint64(id), n.shardDir(id), func() error { return sh.close(true) }); err != nil {
		return fmt.Errorf("drop shard %d: %w", id, err)
	}
	return nil
}

// deleteGroup stops a replica no longer hosted (stop) and deletes its
// data: its log and stable state in the shared log, and its folder dir.
func (n *Node) deleteGroup(id uint64, dir string, stop func() error) error {
	var errs []error
	if err := stop(); err != nil {
		errs = append(errs, err)
	}
	if n.logs != nil {
		if err := n.logs.Drop(id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// openMeta opens this node's replica of the meta group.
func (n *Node) openMeta(peers []raftgroup.Peer) error {
	g, err := n.openGroup(metaGroupID, n.metaDir(), peers, false, "meta")
	if err != nil {
		return fmt.Errorf("meta group: %w", err)
	}
	n.metaRep.Store(&metaReplica{group: g, store: metastore.New(g)})
	return nil
}

// dropMeta stops this node's meta replica and deletes its data, as
// dropShard does a shard's.
func (n *Node) dropMeta() error {
	mr := n.metaGroup()
	if mr == nil {
		return nil
	}
	n.metaRep.Store(nil)
	if err := n.deleteGroup(metaGroupID, n.metaDir(), mr.group.Kill); err != nil {
		return fmt.Errorf("drop the meta replica: %w", err)
	}
	return nil
}

// reconcile opens the replicas map m gives this node that it does not
// host, and drops the ones it hosts that m does not give it. Called by the
// map watcher only, with each new map.
func (n *Node) reconcile(m *meta.Map) {
	n.hostMu.Lock()
	defer n.hostMu.Unlock()
	if n.closing.Load() {
		return
	}
	rs := n.replicas()
	for s := range m.Replicas {
		want, have := hostsShard(m, n.cfg.ID, s), rs.byShard[s] != nil
		switch {
		case want && !have:
			if err := n.openShard(s, nil, false); err != nil {
				n.log.Error("could not open a replica the cluster map gives this node", "shard", s, "err", err)
				continue
			}
			n.log.Info("opened a replica to join its group", "shard", s, "epoch", m.Epoch)
		case !want && have:
			if err := n.dropShard(s); err != nil {
				n.log.Error("could not drop a replica", "shard", s, "err", err)
				continue
			}
			n.log.Info("dropped a replica the cluster map moved away", "shard", s, "epoch", m.Epoch)
		}
	}
	if len(m.Meta) == 0 {
		return // the meta group's replicas are not recorded yet: keep ours
	}
	want, have := hostsShard(m, n.cfg.ID, meta.MetaShard), n.metaGroup() != nil
	switch {
	case want && !have:
		if err := n.openMeta(nil); err != nil {
			n.log.Error("could not open the meta replica the cluster map gives this node", "err", err)
			return
		}
		n.log.Info("opened a meta replica to join the meta group", "epoch", m.Epoch)
	case !want && have:
		if err := n.dropMeta(); err != nil {
			n.log.Error("could not drop the meta replica", "err", err)
			return
		}
		n.log.Info("dropped the meta replica the cluster map moved away", "epoch", m.Epoch)
	}
}
