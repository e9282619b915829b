package client

import (
	"context"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// DrainNode marks node id draining: the cluster moves every replica off it,
// a few shards at a time, while it keeps serving. With cancel it is active
// again. It returns the cluster map's epoch after the change; Status shows
// the moves and the node's state.
func (c *Client) DrainNode(ctx context.Context, id string, cancel bool) (epoch uint64, err error) {
	const op = "drain node"
	ctx, stop := c.withTimeout(ctx)
	defer stop()
	req := &wispv1.DrainNodeRequest{NodeId: id, Cancel: cancel}
	res, attempts, err := invoke(ctx, c, writeCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.DrainNodeResponse, error) {
		r, err := ep.cluster.DrainNode(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return 0, wrapError(op, "", attempts, err)
	}
	return res.Epoch, nil
}

// RemoveNode forgets node id, which must hold no replica (drained, or dead
// and rebuilt elsewhere) and be stopped. It returns the cluster map's epoch
// after the change.
func (c *Client) RemoveNode(ctx context.Context, id string) (epoch uint64, err error) {
	const op = "remove node"
	ctx, stop := c.withTimeout(ctx)
	defer stop()
	req := &wispv1.RemoveNodeRequest{NodeId: id}
	res, attempts, err := invoke(ctx, c, writeCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.RemoveNodeResponse, error) {
		r, err := ep.cluster.RemoveNode(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return 0, wrapError(op, "", attempts, err)
	}
	return res.Epoch, nil
}
