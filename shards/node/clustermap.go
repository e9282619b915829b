package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/placement"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/ring"
)

// Reserved group ids on a node's Raft port. Shards are numbered from 0;
// the hub (transport.Hub) takes math.MaxUint64.
const (
	// metaGroupID is the meta group: the cluster map (shards/metastore).
	metaGroupID = math.MaxUint64 - 1
	// controlGroupID carries the control service (ControlService): what
	// nodes ask of each other to run the cluster.
	controlGroupID = math.MaxUint64 - 2
)

// mapFile is the last cluster map this node saw, kept in its data
// directory so that a restarted node routes, and knows its replicas,
// before it hears from the meta group.
const mapFile = "cluster-map.json"

// bootstrapCommand is the command that creates the cluster map of a
// cluster started from a static member list (--peers, `wispd dev`): the
// members, and each shard's replicas where ring.Place puts them. Every
// member computes the same command; the meta group's first leader
// proposes it.
func bootstrapCommand(cfg Config, place ring.Placement) *meta.Command {
	cmd := &meta.Command{Op: meta.OpBootstrap, Shards: cfg.Shards, KeyVnodes: cfg.KeyVnodes}
	for _, p := range cfg.Peers {
		cmd.Nodes = append(cmd.Nodes, meta.Node{ID: p.ID, URL: p.URL, RaftAddr: p.RaftAddr, Zone: p.Zone})
	}
	slices.SortFunc(cmd.Nodes, func(a, b meta.Node) int { return strings.Compare(a.ID, b.ID) })
	for _, sr := range place.Shards {
		rs := make([]meta.Replica, 0, len(sr.Replicas))
		for _, id := range sr.Replicas {
			rs = append(rs, meta.Replica{Node: id, Voter: true})
		}
		cmd.Replicas = append(cmd.Replicas, rs)
	}
	return cmd
}

// staticMap places cfg's shards on cfg's peers and returns the map the
// bootstrap command makes, with the command.
func staticMap(cfg Config) (*meta.Map, *meta.Command, error) {
	members := make([]ring.Node, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		members = append(members, ring.Node{ID: p.ID, Zone: p.Zone})
	}
	place, err := ring.Place(cfg.Shards, members, min(ReplicationFactor, len(members)))
	if err != nil {
		return nil, nil, fmt.Errorf("place shards: %w", err)
	}
	cmd := bootstrapCommand(cfg, place)
	m, err := meta.Apply(&meta.Map{}, cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster map: %w", err)
	}
	return m, cmd, nil
}

// metaPeers are the meta group's first voters: the first nodes of the
// static member list by id, as many as placement.MetaVoters wants. The
// placement driver moves them later like any replica.
func metaPeers(cfg Config) []raftgroup.Peer {
	peers := slices.Clone(cfg.Peers)
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	var out []raftgroup.Peer
	for _, p := range peers[:min(placement.MetaVoters(len(peers)), len(peers))] {
		out = append(out, raftgroup.Peer{ID: p.ID, Addr: p.RaftAddr})
	}
	return out
}

// readMapFile returns the map saved in dir, nil if there is none.
func readMapFile(dir string) (*meta.Map, error) {
	path := filepath.Join(dir, mapFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := meta.ReadMap(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}

// writeMapFile saves m in dir, atomically and durably.
func writeMapFile(dir string, m *meta.Map) error {
	var buf bytes.Buffer
	if err := meta.WriteMap(&buf, m); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, mapFile), buf.Bytes())
}

// viewOf makes the view clients and forwarding route by from map m:
// members from its nodes, each shard's voters from its replicas (learners
// do not serve), and as preferred leader the one ring.Place prefers over
// the active members, if it is a voter.
func viewOf(m *meta.Map) (*view, error) {
	v := &view{m: m, peers: make(map[string]Peer, len(m.Nodes)), epoch: m.Epoch}
	v.epochText = strconv.FormatUint(v.epoch, 10)
	var active []ring.Node
	for _, n := range m.Nodes {
		v.peers[n.ID] = Peer{ID: n.ID, URL: n.URL, RaftAddr: n.RaftAddr, Zone: n.Zone}
		if n.State == meta.Active {
			active = append(active, ring.Node{ID: n.ID, Zone: n.Zone})
		}
	}
	var want ring.Placement
	if len(active) > 0 {
		var err error
		if want, err = ring.Place(m.Shards, active, min(ReplicationFactor, len(active))); err != nil {
			return nil, fmt.Errorf("place shards: %w", err)
		}
	}
	loads := map[string]*ring.NodeLoad{}
	for _, n := range m.Nodes {
		loads[n.ID] = &ring.NodeLoad{ID: n.ID, Zone: n.Zone}
	}
	v.place.Shards = make([]ring.ShardReplicas, m.Shards)
	for s, rs := range m.Replicas {
		sr := &v.place.Shards[s]
		for _, r := range rs {
			if l := loads[r.Node]; l != nil {
				l.Replicas++
			}
			if r.Voter {
				sr.Replicas = append(sr.Replicas, r.Node)
			}
		}
		if len(want.Shards) > s && slices.Contains(sr.Replicas, want.Shards[s].Leader) {
			sr.Leader = want.Shards[s].Leader
			loads[sr.Leader].Leaders++
		}
	}
	for _, n := range m.Nodes {
		v.place.Nodes = append(v.place.Nodes, *loads[n.ID])
	}
	v.place.ReplicaCap, v.place.LeaderCap = want.ReplicaCap, want.LeaderCap
	v.target = want
	v.route = &api.Route{Epoch: v.epoch, EpochText: v.epochText, Shards: v.place.Shards, URLs: make(map[string]string, len(v.peers))}
	for id, p := range v.peers {
		v.route.URLs[id] = p.URL
	}
	return v, nil
}

// hostsShard reports whether map m gives node id a replica of shard s (of
// the meta group for meta.MetaShard): it is a member of the group, or a
// move is adding it.
func hostsShard(m *meta.Map, id string, s int) bool {
	for _, r := range m.ReplicasOf(s) {
		if r.Node == id {
			return true
		}
	}
	for _, mv := range m.Moves {
		if mv.Shard == s && mv.Node == id && mv.Kind == placement.AddLearner.String() {
			return true
		}
	}
	return false
}

// HasClusterMap reports whether dataDir holds a node's cluster map: the
// node has been part of a cluster, and restarts into it whatever its
// Config.Peers say.
func HasClusterMap(dataDir string) bool {
	return fileExists(filepath.Join(dataDir, mapFile))
}
