package api

import (
	"context"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine/eviction"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/membership"
)

// clusterService implements wisp.v1.ClusterService: it checks what a
// client sent, and the node does the rest.
type clusterService struct{ a *API }

var _ wispv1connect.ClusterServiceHandler = (*clusterService)(nil)

// Status reports this node's replicas and, unless local_only, every
// member's, and whether the cluster is ready.
func (s *clusterService) Status(ctx context.Context, req *connect.Request[wispv1.StatusRequest]) (*connect.Response[wispv1.StatusResponse], error) {
	return connect.NewResponse(s.a.node.Status(ctx, !req.Msg.LocalOnly)), nil
}

// ShardMap describes the two rings and the shards' leaders. Leaders of
// shards this node does not host and has not forwarded to yet are asked of
// the peers (each answers from its own replicas, without asking further).
func (s *clusterService) ShardMap(ctx context.Context, req *connect.Request[wispv1.ShardMapRequest]) (*connect.Response[wispv1.ShardMapResponse], error) {
	rt := s.a.node.Route()
	if req.Header().Get(forwardedHeader) == "" {
		s.a.learnLeaders(ctx, rt)
	}
	m := s.a.node.ShardMap()
	for _, sh := range m.Shards {
		sh.LeaderId = s.a.leaderOf(int(sh.Id))
	}
	resp := connect.NewResponse(m)
	resp.Header().Set(epochHeader, rt.EpochText)
	return resp, nil
}

// peerTimeout bounds each call to a peer that ShardMap makes.
const peerTimeout = time.Second

// learnLeaders asks peers for the leaders of the shards this node neither
// hosts nor knows a leader of: one ShardMap call per peer that hosts such a
// shard, concurrently, each bounded by peerTimeout.
func (a *API) learnLeaders(ctx context.Context, rt *Route) {
	unknown := func(s int) bool { return a.node.Replica(s) == nil && a.known.get(s) == "" }
	ask := map[string]bool{}
	for id, sr := range rt.Shards {
		if unknown(id) {
			for _, r := range sr.Replicas {
				ask[r] = true
			}
		}
	}
	var wg sync.WaitGroup
	for id := range ask {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, peerTimeout)
			defer cancel()
			r, err := a.peers.Cluster(rt.URLs[id]).ShardMap(cctx, connect.NewRequest(&wispv1.ShardMapRequest{}))
			if err != nil {
				return
			}
			for _, sh := range r.Msg.Shards {
				s := int(sh.Id)
				if s < len(rt.Shards) && a.node.Replica(s) == nil && sh.LeaderId != "" && slices.Contains(rt.Shards[s].Replicas, id) {
					if _, ok := rt.URLs[sh.LeaderId]; ok {
						a.known.set(s, sh.LeaderId)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// GetConfig reads the settings from the meta group's leader, linearizably:
// a GetConfig after a SetConfig sees it, whichever nodes answer them.
func (s *clusterService) GetConfig(ctx context.Context, req *connect.Request[wispv1.GetConfigRequest]) (*connect.Response[wispv1.GetConfigResponse], error) {
	set, eff, err := s.a.node.Settings(ctx, nil, nil)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.GetConfigResponse{Config: set, Effective: eff}), nil
}

// SetConfig validates the new settings and has the node set them in the
// cluster map; every node applies them when its map reaches that epoch
// (this one before it answers).
func (s *clusterService) SetConfig(ctx context.Context, req *connect.Request[wispv1.SetConfigRequest]) (*connect.Response[wispv1.SetConfigResponse], error) {
	c := req.Msg.Config
	if c == nil || (c.MaxMemoryBytes == nil && c.EvictionPolicy == nil) {
		return nil, invalidArgument("config sets nothing: give max_memory_bytes or eviction_policy")
	}
	if err := checkSettings(c.MaxMemoryBytes, c.EvictionPolicy); err != nil {
		return nil, err
	}
	set, eff, err := s.a.node.Settings(ctx, c.MaxMemoryBytes, c.EvictionPolicy)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.SetConfigResponse{Config: set, Effective: eff}), nil
}

// DrainNode marks a node draining, or active again with cancel. The
// placement driver moves a draining node's replicas away, and never plans
// one onto it.
func (s *clusterService) DrainNode(ctx context.Context, req *connect.Request[wispv1.DrainNodeRequest]) (*connect.Response[wispv1.DrainNodeResponse], error) {
	if err := membership.ValidateID(req.Msg.NodeId); err != nil {
		return nil, invalidArgument("%v", err)
	}
	epoch, err := s.a.node.DrainNode(ctx, req.Msg.NodeId, req.Msg.Cancel)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.DrainNodeResponse{Epoch: epoch}), nil
}

// RemoveNode forgets a node that holds no replica and is not running.
func (s *clusterService) RemoveNode(ctx context.Context, req *connect.Request[wispv1.RemoveNodeRequest]) (*connect.Response[wispv1.RemoveNodeResponse], error) {
	if err := membership.ValidateID(req.Msg.NodeId); err != nil {
		return nil, invalidArgument("%v", err)
	}
	epoch, err := s.a.node.RemoveNode(ctx, req.Msg.NodeId)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.RemoveNodeResponse{Epoch: epoch}), nil
}

// checkSettings validates settings to set.
func checkSettings(maxMemory *int64, policy *string) error {
	if maxMemory != nil && *maxMemory < 0 {
		return invalidArgument("max_memory_bytes must not be negative (got %d); 0 means no limit", *maxMemory)
	}
	if policy != nil {
		if _, err := eviction.New(*policy); err != nil {
			return invalidArgument("%v", err)
		}
	}
	return nil
}
