package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// clusterService implements wisp.v1.ClusterService.
type clusterService struct{ n *Node }

var _ wispv1connect.ClusterServiceHandler = (*clusterService)(nil)

// statusPeerTimeout bounds how long Status waits for each peer.
const statusPeerTimeout = time.Second

// Status reports this node's replica and, unless local_only, asks every peer
// for theirs (concurrently, each bounded by statusPeerTimeout).
func (s *clusterService) Status(ctx context.Context, req *connect.Request[wispv1.StatusRequest]) (*connect.Response[wispv1.StatusResponse], error) {
	n := s.n
	local := n.localStatus()
	if req.Msg.LocalOnly {
		return connect.NewResponse(local), nil
	}
	resp := &wispv1.StatusResponse{NodeId: n.cfg.ID}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		reports = map[string]*wispv1.StatusResponse{n.cfg.ID: local}
		errs    = map[string]error{}
	)
	for id, p := range n.peers {
		if id == n.cfg.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, statusPeerTimeout)
			defer cancel()
			c := n.fwd.cluster(p.URL)
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

	ids := make([]string, 0, len(n.peers))
	for id := range n.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	shard := &wispv1.ShardStatus{Id: shardID}
	for _, id := range ids {
		p := n.peers[id]
		ns := &wispv1.NodeStatus{Id: id, Url: p.URL, RaftAddr: p.RaftAddr, Reachable: errs[id] == nil}
		if err := errs[id]; err != nil {
			ns.Error = connect.CodeOf(err).String() + ": " + errMessage(err)
		}
		resp.Nodes = append(resp.Nodes, ns)
		r, ok := reports[id]
		if !ok {
			continue
		}
		for _, sh := range r.Shards {
			if sh.Id != shardID {
				continue
			}
			shard.Replicas = append(shard.Replicas, sh.Replicas...)
			if sh.LeaderId != "" && shard.LeaderId == "" {
				shard.LeaderId = sh.LeaderId
			}
		}
	}
	for _, rep := range shard.Replicas {
		if rep.NodeId == shard.LeaderId || shard.KeyCount == 0 {
			shard.KeyCount = rep.KeyCount
			shard.MemoryUsedBytes, shard.MemoryBudgetBytes = rep.MemoryUsedBytes, rep.MemoryBudgetBytes
		}
	}
	resp.Shards = []*wispv1.ShardStatus{shard}
	return connect.NewResponse(resp), nil
}

func errMessage(err error) string {
	if ce, ok := err.(*connect.Error); ok {
		return ce.Message()
	}
	return err.Error()
}

// localStatus is this node's own replica, as one shard with one replica.
func (n *Node) localStatus() *wispv1.StatusResponse {
	st := n.group.Status()
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
	var stats engine.Stats
	_ = n.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { stats = e.Stats() })
	set := n.settings()
	rep.MemoryUsedBytes, rep.MemoryBudgetBytes, rep.EvictionPolicy = stats.MemoryUsedBytes, set.MaxMemoryBytes, set.Policy.Name()
	rep.ExpiredKeys, rep.EvictedKeys = stats.ExpiredTotal, stats.EvictedTotal
	return &wispv1.StatusResponse{
		NodeId: n.cfg.ID,
		Nodes:  []*wispv1.NodeStatus{{Id: n.cfg.ID, Url: n.self.URL, RaftAddr: n.self.RaftAddr, Reachable: true}},
		Shards: []*wispv1.ShardStatus{{
			Id: shardID, LeaderId: st.LeaderID, KeyCount: st.KeyCount, Replicas: []*wispv1.ReplicaStatus{rep},
			MemoryUsedBytes: rep.MemoryUsedBytes, MemoryBudgetBytes: rep.MemoryBudgetBytes,
		}},
	}
}

// ShardMap describes the key ring and the placement (single shard for now).
func (s *clusterService) ShardMap(ctx context.Context, req *connect.Request[wispv1.ShardMapRequest]) (*connect.Response[wispv1.ShardMapResponse], error) {
	return connect.NewResponse(s.n.shardMap()), nil
}
