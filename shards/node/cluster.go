package node

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/buildinfo"
	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// statusPeerTimeout bounds how long Status waits for each peer.
const statusPeerTimeout = time.Second

// Status reports this node's replicas and, with all, asks every peer for
// theirs (concurrently, each bounded by statusPeerTimeout), merges them and
// judges readiness (api.Node).
func (n *Node) Status(ctx context.Context, all bool) *wispv1.StatusResponse {
	if !all {
		return n.localStatus()
	}
	return n.clusterStatus(ctx)
}

// clusterStatus merges every node's replica reports (concurrently, each
// bounded by statusPeerTimeout) and judges readiness.
func (n *Node) clusterStatus(ctx context.Context) *wispv1.StatusResponse {
	v := n.view()
	local := n.localStatus()
	resp := &wispv1.StatusResponse{NodeId: n.cfg.ID, Epoch: v.epoch}
	for _, mv := range v.m.Moves {
		ms := &wispv1.MoveStatus{Kind: mv.Kind, NodeId: mv.Node, Reason: mv.Reason, StartedUnixMs: mv.StartedUnixMs}
		if mv.Shard == meta.MetaShard {
			ms.MetaGroup = true
		} else {
			ms.Shard = uint32(mv.Shard)
		}
		resp.Moves = append(resp.Moves, ms)
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		reports = map[string]*wispv1.StatusResponse{n.cfg.ID: local}
		errs    = map[string]error{}
	)
	for id, p := range v.peers {
		if id == n.cfg.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, statusPeerTimeout)
			defer cancel()
			c := n.peers.Cluster(p.URL)
			r, err := c.Status(cctx, connect.NewRequest(&wispv1.StatusRequest{LocalOnly: true}))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
				return
			}
			reports[id] = r.Msg
		}()
	}
	wg.Wait()

	ids := make([]string, 0, len(v.peers))
	for id := range v.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	shards := make([]*wispv1.ShardStatus, n.cfg.Shards)
	for id := range shards {
		shards[id] = &wispv1.ShardStatus{Id: uint32(id)}
		if id < len(v.target.Shards) {
			shards[id].TargetNodeIds = sorted(v.target.Shards[id].Replicas)
		}
	}
	for _, id := range ids {
		p := v.peers[id]
		ns := &wispv1.NodeStatus{Id: id, Url: p.URL, RaftAddr: p.RaftAddr, Reachable: errs[id] == nil, Health: n.liveness(id)}
		if nd, ok := v.m.Node(id); ok {
			ns.State = string(nd.State)
		}
		if err := errs[id]; err != nil {
			ns.Error = connect.CodeOf(err).String() + ": " + errMessage(err)
		}
		resp.Nodes = append(resp.Nodes, ns)
		r, ok := reports[id]
		if !ok {
			// Report what the placement puts on it, marked unreachable,
			// rather than leaving the node and its replicas out.
			for s, sr := range v.place.Shards {
				if slices.Contains(sr.Replicas, id) {
					ns.Replicas++
					shards[s].Replicas = append(shards[s].Replicas, &wispv1.ReplicaStatus{NodeId: id, State: ReplicaUnreachable, Voter: true})
				}
			}
			if i := slices.IndexFunc(v.m.Meta, func(r meta.Replica) bool { return r.Node == id }); i >= 0 {
				if resp.Meta == nil {
					resp.Meta = &wispv1.ShardStatus{}
				}
				resp.Meta.Replicas = append(resp.Meta.Replicas, &wispv1.ReplicaStatus{NodeId: id, State: ReplicaUnreachable, Voter: v.m.Meta[i].Voter})
			}
			continue
		}
		if len(r.Nodes) > 0 {
			rn := r.Nodes[0]
			ns.Replicas, ns.Leaders, ns.Zone, ns.Build = rn.Replicas, rn.Leaders, rn.Zone, rn.Build
			ns.MemoryUsedBytes, ns.MemoryBudgetBytes = rn.MemoryUsedBytes, rn.MemoryBudgetBytes
		}
		if r.Meta != nil {
			if resp.Meta == nil {
				resp.Meta = &wispv1.ShardStatus{}
			}
			resp.Meta.Replicas = append(resp.Meta.Replicas, r.Meta.Replicas...)
			if resp.Meta.LeaderId == "" {
				resp.Meta.LeaderId = r.Meta.LeaderId
			}
		}
		for _, sh := range r.Shards {
			if int(sh.Id) >= len(shards) {
				continue // a peer with another layout: its status says so
			}
			agg := shards[sh.Id]
			agg.Replicas = append(agg.Replicas, sh.Replicas...)
			for _, rep := range sh.Replicas {
				if rep.State == "leader" {
					agg.LeaderId = rep.NodeId
				}
			}
			if agg.LeaderId == "" {
				agg.LeaderId = sh.LeaderId
			}
		}
	}
	for _, sh := range shards {
		for _, rep := range sh.Replicas {
			if rep.NodeId == sh.LeaderId || sh.KeyCount == 0 {
				sh.KeyCount = rep.KeyCount
				sh.MemoryUsedBytes, sh.MemoryBudgetBytes = rep.MemoryUsedBytes, rep.MemoryBudgetBytes
			}
		}
	}
	resp.Shards = shards
	for _, r := range reports {
		if r.Placement != nil && (resp.Placement == nil || r.Placement.AtUnixMs > resp.Placement.AtUnixMs) {
			resp.Placement = r.Placement
		}
	}
	resp.NotReady = notReady(v, resp)
	resp.Ready = len(resp.NotReady) == 0
	return resp
}

// readyLagEntries is how far behind its leader's commit index a replica may
// be and still count as caught up: a follower under load trails by the
// entries in flight; one that is restoring or replaying trails by far more.
const readyLagEntries = 1000

// notReady says why the cluster in st is not ready: a node did not answer,
// a shard has no leader, one of its replicas is missing or behind, a node
// holds a replica the map does not count as a voter (a learner, or a
// replica it has not dropped yet), or the shard's replicas are not yet
// where the placement wants them (moves under way or to come: a node
// joined, is draining, or died and is still a member).
func notReady(v *view, st *wispv1.StatusResponse) []string {
	var why []string
	for _, ns := range st.Nodes {
		if !ns.Reachable {
			why = append(why, fmt.Sprintf("node %s is unreachable (%s)", ns.Id, ns.Error))
		}
	}
	why = append(why, metaNotReady(v, st.Meta)...)
	for _, sh := range st.Shards {
		if sh.LeaderId == "" {
			why = append(why, fmt.Sprintf("shard %d has no leader", sh.Id))
			continue
		}
		var commit uint64
		for _, r := range sh.Replicas {
			if r.NodeId == sh.LeaderId {
				commit = r.CommitIndex
			}
		}
		placed := v.place.Shards[sh.Id].Replicas
		if int(sh.Id) < len(v.target.Shards) {
			if want := v.target.Shards[sh.Id].Replicas; !sameSet(placed, want) {
				why = append(why, fmt.Sprintf("shard %d: replicas on %s, the placement wants %s (moves to come)", sh.Id, strings.Join(sorted(placed), " "), strings.Join(sorted(want), " ")))
			}
		}
		for _, r := range sh.Replicas {
			if !slices.Contains(placed, r.NodeId) && r.State != ReplicaUnreachable {
				why = append(why, fmt.Sprintf("shard %d: %s holds a replica the cluster map does not count (a learner, or one not dropped yet)", sh.Id, r.NodeId))
			}
		}
		for _, id := range placed {
			i := slices.IndexFunc(sh.Replicas, func(r *wispv1.ReplicaStatus) bool { return r.NodeId == id })
			switch {
			case i < 0:
				why = append(why, fmt.Sprintf("shard %d: no replica reported on %s", sh.Id, id))
			case sh.Replicas[i].State == ReplicaUnreachable:
				// The node's own line says it is unreachable.
			case sh.Replicas[i].AppliedIndex+readyLagEntries < commit:
				why = append(why, fmt.Sprintf("shard %d: the replica on %s has applied %d of %d entries", sh.Id, id, sh.Replicas[i].AppliedIndex, commit))
			}
		}
	}
	return why
}

// metaNotReady says why the meta group is not ready: as for a shard, its
// leader, its replicas where the map records them, all voters, and caught
// up. A map that does not record the meta group's replicas yet (no
// placement driver, or one that has not ticked) is not judged.
func metaNotReady(v *view, st *wispv1.ShardStatus) []string {
	if len(v.m.Meta) == 0 {
		return nil
	}
	if st == nil || st.LeaderId == "" {
		return []string{"the meta group has no leader"}
	}
	var why []string
	var commit uint64
	for _, r := range st.Replicas {
		if r.NodeId == st.LeaderId {
			commit = r.CommitIndex
		}
	}
	for _, want := range v.m.Meta {
		i := slices.IndexFunc(st.Replicas, func(r *wispv1.ReplicaStatus) bool { return r.NodeId == want.Node })
		switch {
		case !want.Voter:
			why = append(why, fmt.Sprintf("meta group: the replica on %s is a learner (a move under way)", want.Node))
		case i < 0:
			why = append(why, fmt.Sprintf("meta group: no replica reported on %s", want.Node))
		case st.Replicas[i].State == ReplicaUnreachable:
			// The node's own line says it is unreachable.
		case st.Replicas[i].AppliedIndex+readyLagEntries < commit:
			why = append(why, fmt.Sprintf("meta group: the replica on %s has applied %d of %d entries", want.Node, st.Replicas[i].AppliedIndex, commit))
		}
	}
	for _, r := range st.Replicas {
		if !slices.ContainsFunc(v.m.Meta, func(rp meta.Replica) bool { return rp.Node == r.NodeId }) {
			why = append(why, fmt.Sprintf("meta group: %s holds a replica the cluster map does not count (one not dropped yet)", r.NodeId))
		}
	}
	return why
}

// sameSet reports whether a and b hold the same ids.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(id string) bool { return !slices.Contains(b, id) })
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// ReplicaUnreachable is the state Status gives the replicas of a node that
// did not answer it.
const ReplicaUnreachable = "unreachable"

// localStatus reports this node's replicas, one shard each.
func (n *Node) localStatus() *wispv1.StatusResponse {
	self := &wispv1.NodeStatus{
		Id: n.cfg.ID, Url: n.self.URL, RaftAddr: n.self.RaftAddr, Reachable: true, Replicas: uint32(len(n.replicas().hosted)),
		Zone: n.self.Zone, Build: buildinfo.Get().Version,
	}
	if m := n.memSelf.Load(); m != nil {
		self.MemoryBudgetBytes = m.mem.Budget
	}
	resp := &wispv1.StatusResponse{NodeId: n.cfg.ID, Nodes: []*wispv1.NodeStatus{self}, Placement: n.placementStatus()}
	if mr := n.metaGroup(); mr != nil {
		st := mr.group.Status()
		resp.Meta = &wispv1.ShardStatus{LeaderId: st.LeaderID, Replicas: []*wispv1.ReplicaStatus{n.replicaStatus(st)}}
	}
	for _, sh := range n.replicas().hosted {
		st := sh.group.Status()
		rep := n.replicaStatus(st)
		if st.State == "leader" {
			self.Leaders++
		}
		var stats engine.Stats
		_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { stats = e.Stats() })
		set := n.settings(sh)
		rep.MemoryUsedBytes, rep.MemoryBudgetBytes, rep.EvictionPolicy = stats.MemoryUsedBytes, set.MaxMemoryBytes, set.Policy.Name()
		rep.ExpiredKeys, rep.EvictedKeys = stats.ExpiredTotal, stats.EvictedTotal
		self.MemoryUsedBytes += rep.MemoryUsedBytes
		resp.Shards = append(resp.Shards, &wispv1.ShardStatus{
			Id: uint32(sh.id), LeaderId: st.LeaderID, KeyCount: st.KeyCount, Replicas: []*wispv1.ReplicaStatus{rep},
			MemoryUsedBytes: rep.MemoryUsedBytes, MemoryBudgetBytes: rep.MemoryBudgetBytes,
		})
	}
	return resp
}

// replicaStatus reports this node's replica of a group from its status.
func (n *Node) replicaStatus(st raftgroup.Status) *wispv1.ReplicaStatus {
	rep := &wispv1.ReplicaStatus{
		NodeId: n.cfg.ID, State: st.State, Voter: true, Term: st.Term,
		AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex,
		LastLogIndex: st.LastLogIndex, KeyCount: st.KeyCount,
	}
	for _, m := range st.Members {
		if m.ID == n.cfg.ID {
			rep.Voter = m.Voter
		}
	}
	return rep
}

// ShardMap describes the two rings and the placement, without the
// leaders, which shards/api fills in (api.Node).
func (n *Node) ShardMap() *wispv1.ShardMapResponse {
	v := n.view()
	m := &wispv1.ShardMapResponse{
		Epoch: v.epoch, ShardCount: uint32(n.cfg.Shards), KeyVnodes: uint32(n.cfg.KeyVnodes),
		ReplicationFactor: uint32(min(ReplicationFactor, len(v.peers))),
	}
	for _, l := range v.place.Nodes {
		p := v.peers[l.ID]
		m.Nodes = append(m.Nodes, &wispv1.ShardMapNode{Id: p.ID, Url: p.URL, Zone: p.Zone})
	}
	for id, sr := range v.place.Shards {
		m.Shards = append(m.Shards, &wispv1.ShardPlacement{
			Id: uint32(id), Replicas: sr.Replicas, PreferredLeaderId: sr.Leader,
		})
	}
	return m
}
