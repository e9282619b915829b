package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	"github.com/wisp-db/wisp/gen/wisp/control/v1/controlv1connect"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/transport"
)

// The control plane: ControlService, served on the node's Raft port (group
// controlGroupID of its multiplexer) and called by the other nodes' map
// watchers and by the placement driver. See proto/wisp/control/v1.

// maxMapWait bounds a Map call's wait for a change.
const maxMapWait = time.Minute

// maxControlBytes bounds a control message: the largest of a cluster map
// and a plugin module, with room for the rest.
const maxControlBytes = max(meta.MaxMapBytes, plugins.DefaultModuleSizeBytesMax) + 64<<10

// controlCallTimeout bounds a control call other than a Map watch.
const controlCallTimeout = 10 * time.Second

// control is the node's end of the control plane: its server and its
// clients of other nodes.
type control struct {
	layer  *transport.Layer
	server *http.Server
	http   *http.Client

	mu      sync.Mutex
	clients map[string]controlv1connect.ControlServiceClient // by Raft address
}

// newControl sets up the control plane on the node's Raft port: its
// clients at once, its server when serveControl starts it.
func (n *Node) newControl() error {
	layer, err := n.mux.Group(controlGroupID)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(controlv1connect.NewControlServiceHandler(&controlService{n}, connect.WithReadMaxBytes(maxControlBytes)))
	c := &control{
		layer:   layer,
		server:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		clients: map[string]controlv1connect.ControlServiceClient{},
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			timeout := controlCallTimeout
			if dl, ok := ctx.Deadline(); ok {
				timeout = min(timeout, time.Until(dl))
			}
			return layer.Dial(raft.ServerAddress(addr), timeout)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     2 * time.Minute,
	}}
	n.ctl = c
	return nil
}

// serveControl serves the control service until ctl.close.
func (n *Node) serveControl() {
	c := n.ctl
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if err := c.server.Serve(c.layer); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.log.Debug("control plane stopped", "err", err)
		}
	}()
}

// client returns a control client of the node at Raft address addr.
func (c *control) client(addr string) controlv1connect.ControlServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.clients[addr]
	if !ok {
		cl = controlv1connect.NewControlServiceClient(c.http, "http://"+addr, connect.WithReadMaxBytes(maxControlBytes))
		c.clients[addr] = cl
	}
	return cl
}

func (c *control) close() {
	c.server.Close()
	c.layer.Close()
	c.http.CloseIdleConnections()
}

// controlService serves ControlService.
type controlService struct{ n *Node }

// Map answers from the node's meta replica, waiting for a change as asked.
// A node without one answers with the map it routes by, if that is past
// the epoch asked, at once: so a node that joins learns the cluster from
// any member, while map watchers move on to a node with a meta replica. So
// does a meta replica whose group has not committed its bootstrap yet.
func (s *controlService) Map(ctx context.Context, req *connect.Request[controlv1.MapRequest]) (*connect.Response[controlv1.MapResponse], error) {
	m := s.n.view().m
	if mr := s.n.metaGroup(); mr != nil {
		wait := min(time.Duration(req.Msg.WaitMs)*time.Millisecond, maxMapWait)
		if m.Epoch > req.Msg.AfterEpoch {
			wait = 0 // news already
		}
		held, err := mr.mapAfter(ctx, req.Msg.AfterEpoch, wait)
		if err != nil {
			return nil, controlError(connect.CodeUnavailable, err)
		}
		if held.Epoch >= m.Epoch {
			m = held
		}
	} else if m.Epoch <= req.Msg.AfterEpoch {
		return nil, controlError(connect.CodeFailedPrecondition, errors.New("this node holds no replica of the meta group"))
	}
	var buf bytes.Buffer
	if err := meta.WriteMap(&buf, m); err != nil {
		return nil, controlError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&controlv1.MapResponse{Map: buf.Bytes(), Epoch: m.Epoch}), nil
}

// mapAfter returns the replica's map once its epoch is above after, or
// when wait has passed (the map as it is then).
func (mr *metaReplica) mapAfter(ctx context.Context, after uint64, wait time.Duration) (*meta.Map, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := mr.group.Changed()
		m, _, err := mr.store.Map(ctx, raftgroup.Stale)
		if err != nil {
			return nil, err
		}
		if m.Epoch > after {
			return m, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return m, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *controlService) Replicas(ctx context.Context, _ *connect.Request[controlv1.ReplicasRequest]) (*connect.Response[controlv1.ReplicasResponse], error) {
	return connect.NewResponse(&controlv1.ReplicasResponse{Replicas: s.n.replicaStates()}), nil
}

// replicaStates reports every group this node hosts.
func (n *Node) replicaStates() []*controlv1.ReplicaState {
	var out []*controlv1.ReplicaState
	add := func(id uint64, g *raftgroup.Group) {
		st := &controlv1.ReplicaState{Group: id, AppliedIndex: g.AppliedIndex(), LastIndex: g.LastIndex()}
		st.LeaderId, _ = g.Leader()
		if c, err := g.Configuration(); err == nil {
			st.Members, st.ConfigIndex = membersProto(c), c.Index
		}
		out = append(out, st)
	}
	for _, sh := range n.replicas().hosted {
		add(uint64(sh.id), sh.group)
	}
	if mr := n.metaGroup(); mr != nil {
		add(metaGroupID, mr.group)
	}
	return out
}

func membersProto(c raftgroup.Configuration) []*controlv1.Member {
	out := make([]*controlv1.Member, 0, len(c.Members))
	for _, m := range c.Members {
		out = append(out, &controlv1.Member{NodeId: m.ID, RaftAddr: m.Addr, Voter: m.Voter})
	}
	return out
}

func (s *controlService) Reconfigure(ctx context.Context, req *connect.Request[controlv1.ReconfigureRequest]) (*connect.Response[controlv1.ReconfigureResponse], error) {
	r := req.Msg
	var g *raftgroup.Group
	switch {
	case r.Group == metaGroupID:
		if mr := s.n.metaGroup(); mr != nil {
			g = mr.group
		}
	case r.Group < uint64(s.n.cfg.Shards):
		g = s.n.Shard(int(r.Group))
	}
	if g == nil {
		return nil, controlError(connect.CodeNotFound, fmt.Errorf("no replica of group %d here", r.Group))
	}
	var err error
	switch r.Kind {
	case controlv1.ChangeKind_CHANGE_KIND_ADD_LEARNER:
		err = g.AddLearner(ctx, r.NodeId, r.RaftAddr, r.PrevIndex)
	case controlv1.ChangeKind_CHANGE_KIND_PROMOTE:
		err = g.Promote(ctx, r.NodeId, r.PrevIndex)
	case controlv1.ChangeKind_CHANGE_KIND_REMOVE:
		err = g.RemoveReplica(ctx, r.NodeId, r.PrevIndex)
	case controlv1.ChangeKind_CHANGE_KIND_TRANSFER_LEADER:
		if !g.IsLeader() {
			err = raftgroup.ErrNotLeader
		} else {
			err = g.TransferLeadership(r.NodeId, r.RaftAddr)
		}
	default:
		return nil, controlError(connect.CodeInvalidArgument, fmt.Errorf("unknown change kind %v", r.Kind))
	}
	switch {
	case errors.Is(err, raftgroup.ErrNotLeader):
		return nil, controlError(connect.CodeFailedPrecondition, fmt.Errorf("group %d: this replica does not lead", r.Group))
	case errors.Is(err, raftgroup.ErrConfigChanged):
		return nil, controlError(connect.CodeAborted, err)
	case err != nil:
		return nil, controlError(connect.CodeUnavailable, err)
	}
	c, err := g.Configuration()
	if err != nil {
		return nil, controlError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&controlv1.ReconfigureResponse{Members: membersProto(c), ConfigIndex: c.Index}), nil
}
