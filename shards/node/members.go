package node

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	"github.com/wisp-db/wisp/gen/wisp/control/v1/controlv1connect"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Membership changes an operator asks for (`wisp cluster drain`, `wisp
// cluster remove`): the node that gets the request (through shards/api)
// passes it to the meta
// group's leader over the control plane (ControlService.ChangeNode), which
// checks it and applies it to the cluster map. The placement driver does
// the rest: it moves a draining node's replicas away, and never plans one
// onto it.

// DrainNode marks node id draining, or active again with cancel, and
// returns the cluster map's epoch after (api.Node).
func (n *Node) DrainNode(ctx context.Context, id string, cancel bool) (uint64, error) {
	change := controlv1.NodeChange_NODE_CHANGE_DRAIN
	if cancel {
		change = controlv1.NodeChange_NODE_CHANGE_ACTIVATE
	}
	return n.changeNode(ctx, id, change)
}

// RemoveNode forgets node id, which must hold no replica and not be
// running, and returns the cluster map's epoch after (api.Node).
func (n *Node) RemoveNode(ctx context.Context, id string) (uint64, error) {
	return n.changeNode(ctx, id, controlv1.NodeChange_NODE_CHANGE_REMOVE)
}

// changeNode has the meta group's leader apply a member change and
// returns the map's epoch after it.
func (n *Node) changeNode(ctx context.Context, id string, change controlv1.NodeChange) (uint64, error) {
	var epoch uint64
	err := n.onMetaLeader(ctx, func(ctx context.Context, c controlClient) error {
		res, err := c.ChangeNode(ctx, connect.NewRequest(&controlv1.ChangeNodeRequest{NodeId: id, Change: change}))
		if err == nil {
			epoch = res.Msg.Epoch
		}
		return err
	})
	return epoch, err
}

// controlClient is the control plane's client, as onMetaLeader passes it.
type controlClient = controlv1connect.ControlServiceClient

// onMetaLeader runs call against the members in turn until one, the meta
// group's leader, does not answer UNAVAILABLE. The leader's refusals (not
// found, failed precondition, invalid argument) are written for the
// operator and passed on as they are.
func (n *Node) onMetaLeader(ctx context.Context, call func(context.Context, controlClient) error) error {
	for _, nd := range n.view().m.Nodes {
		cctx, cancel := context.WithTimeout(ctx, controlCallTimeout)
		err := call(cctx, n.ctl.client(nd.RaftAddr))
		cancel()
		if err == nil {
			return nil
		}
		switch code := connect.CodeOf(err); code {
		case connect.CodeNotFound, connect.CodeFailedPrecondition, connect.CodeInvalidArgument:
			return relayed(err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errNoMetaLeader
}

// ChangeNode applies a member change to the cluster map on the meta
// group's leader.
func (s *controlService) ChangeNode(ctx context.Context, req *connect.Request[controlv1.ChangeNodeRequest]) (*connect.Response[controlv1.ChangeNodeResponse], error) {
	n := s.n
	mr := n.metaGroup()
	if mr == nil || !mr.group.IsLeader() {
		return nil, errNotMetaLeader
	}
	id := req.Msg.NodeId
	m, _, err := mr.store.Map(ctx, raftgroup.Linearizable)
	if err != nil {
		return nil, controlError(connect.CodeUnavailable, err)
	}
	if m.Epoch == 0 {
		// A new cluster's map is made by the leader's first driver tick:
		// every member is unknown until then. The caller retries.
		return nil, controlError(connect.CodeUnavailable, errors.New("the cluster map is not made yet"))
	}
	if _, ok := m.Node(id); !ok {
		return nil, notFound("node %s is not a member of the cluster", id)
	}
	var cmd *meta.Command
	switch req.Msg.Change {
	case controlv1.NodeChange_NODE_CHANGE_DRAIN:
		cmd = &meta.Command{Op: meta.OpSetNodeState, NodeID: id, State: meta.Draining}
	case controlv1.NodeChange_NODE_CHANGE_ACTIVATE:
		cmd = &meta.Command{Op: meta.OpSetNodeState, NodeID: id, State: meta.Active}
	case controlv1.NodeChange_NODE_CHANGE_REMOVE:
		if h := n.liveness(id); h == membership.StatusAlive.String() || h == membership.StatusSuspect.String() {
			return nil, failedPrecondition("node %s is running (%s in gossip): stop it before removing it; to move its replicas off it first, drain it", id, h)
		}
		cmd = &meta.Command{Op: meta.OpRemoveNode, NodeID: id}
	default:
		return nil, invalidArgument("unknown change %v", req.Msg.Change)
	}
	if cmd.Op == meta.OpRemoveNode {
		// The map may lag the meta group's configuration by a step.
		if c, err := mr.group.Configuration(); err == nil && slices.ContainsFunc(c.Members, func(mb raftgroup.Member) bool { return mb.ID == id }) {
			return nil, errInUse(id)
		}
	}
	next, err := mr.store.Apply(ctx, cmd)
	switch {
	case errors.Is(err, meta.ErrInUse):
		return nil, errInUse(id)
	case err != nil:
		return nil, controlError(connect.CodeUnavailable, err)
	}
	n.log.Info("cluster member changed", "member", id, "change", req.Msg.Change.String(), "epoch", next.Epoch)
	return connect.NewResponse(&controlv1.ChangeNodeResponse{Epoch: next.Epoch}), nil
}

// errInUse refuses to remove a node that holds replicas.
func errInUse(id string) error {
	return failedPrecondition("node %s still holds replicas: drain it and wait until it holds none, or, if it is dead, until they are rebuilt elsewhere", id)
}
