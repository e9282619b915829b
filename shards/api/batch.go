package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Batch applies several writes. The ops of one shard apply atomically, as
// one command; a batch that spans shards is split, and each shard's part
// applies atomically and independently of the others (concurrently).
func (s *kvService) Batch(ctx context.Context, req *connect.Request[wispv1.BatchRequest]) (*connect.Response[wispv1.BatchResponse], error) {
	a, ops := s.a, req.Msg.Ops
	if len(ops) == 0 {
		return nil, invalidArgument("batch has no ops")
	}
	if len(ops) > a.limits.MaxBatchOps {
		return nil, invalidArgument("batch has %d ops; the limit is %d", len(ops), a.limits.MaxBatchOps)
	}
	muts := make([]engine.Mutation, len(ops))
	for i, op := range ops {
		var (
			mut []engine.Mutation
			err error
		)
		switch o := op.Op.(type) {
		case *wispv1.BatchOp_Put:
			mut, err = a.putMutation(o.Put)
		case *wispv1.BatchOp_Delete:
			mut, err = a.deleteMutation(o.Delete)
		case *wispv1.BatchOp_Increment:
			mut, err = a.incrementMutation(o.Increment)
		default:
			return nil, invalidArgument("batch op %d is empty", i)
		}
		if err != nil {
			var ce *connect.Error
			errors.As(err, &ce)
			return nil, invalidArgument("batch op %d: %s", i, ce.Message())
		}
		muts[i] = mut[0]
	}

	// Split by shard, keeping each op's index in the whole batch.
	parts := map[int][]int{}
	var order []int // shards in order of their first op
	for i, m := range muts {
		id := a.node.ShardOf(m.Key)
		if _, ok := parts[id]; !ok {
			order = append(order, id)
		}
		parts[id] = append(parts[id], i)
	}
	if len(order) == 1 {
		return a.batchOnShard(ctx, order[0], req, muts)
	}

	type outcome struct {
		resp *connect.Response[wispv1.BatchResponse]
		err  error
	}
	outcomes := make([]outcome, len(order))
	done := make(chan struct{}, len(order))
	for k, id := range order {
		idx := parts[id]
		sub := &wispv1.BatchRequest{Ops: make([]*wispv1.BatchOp, len(idx))}
		subMuts := make([]engine.Mutation, len(idx))
		for j, i := range idx {
			sub.Ops[j], subMuts[j] = ops[i], muts[i]
		}
		subReq := connect.NewRequest(sub)
		if f := req.Header().Get(forwardedHeader); f != "" {
			subReq.Header().Set(forwardedHeader, f)
		}
		go func() {
			resp, err := a.batchOnShard(ctx, id, subReq, subMuts)
			outcomes[k] = outcome{resp, remapBatchError(err, idx)}
			done <- struct{}{}
		}()
	}
	for range order {
		<-done
	}
	out := &wispv1.BatchResponse{Results: make([]*wispv1.BatchResult, len(ops))}
	for k, id := range order {
		o := outcomes[k]
		if o.err != nil {
			// order is by first op, so this is the failed part with the
			// lowest op index.
			return nil, withMessage(o.err, fmt.Sprintf(
				"%s (the batch spans %d shards and is atomic within each shard only: the ops of the other shards may have been applied)",
				errMessage(o.err), len(order)))
		}
		for j, i := range parts[id] {
			out.Results[i] = o.resp.Msg.Results[j]
		}
	}
	resp := connect.NewResponse(out)
	resp.Header().Set(epochHeader, a.node.Route().EpochText)
	return resp, nil
}

// batchOnShard applies a batch whose ops all belong to shard id, as one
// command.
func (a *API) batchOnShard(ctx context.Context, id int, req *connect.Request[wispv1.BatchRequest], muts []engine.Mutation) (*connect.Response[wispv1.BatchResponse], error) {
	return serve(ctx, a, id, req, false, func(r Replica) (*wispv1.BatchResponse, error) {
		res, _, err := r.Propose(ctx, muts)
		if err != nil {
			return nil, err
		}
		for _, m := range muts {
			switch m.Op {
			case engine.OpPut:
				r.Trace(replay.Put, m.Key, len(m.Value))
			case engine.OpDelete:
				r.Trace(replay.Delete, m.Key, 0)
			}
		}
		return batchResponse(req.Msg.Ops, res), nil
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.BatchRequest]) (*connect.Response[wispv1.BatchResponse], error) {
		return a.peers.kv(url).Batch(ctx, fr)
	})
}

func batchResponse(ops []*wispv1.BatchOp, res []engine.MutationResult) *wispv1.BatchResponse {
	resp := &wispv1.BatchResponse{Results: make([]*wispv1.BatchResult, len(ops))}
	for i, op := range ops {
		r := res[i]
		switch op.Op.(type) {
		case *wispv1.BatchOp_Put:
			resp.Results[i] = &wispv1.BatchResult{Result: &wispv1.BatchResult_Put{Put: &wispv1.PutResponse{Version: r.Version}}}
		case *wispv1.BatchOp_Delete:
			resp.Results[i] = &wispv1.BatchResult{Result: &wispv1.BatchResult_Delete{Delete: &wispv1.DeleteResponse{Deleted: r.Existed, Version: r.Version}}}
		case *wispv1.BatchOp_Increment:
			resp.Results[i] = &wispv1.BatchResult{Result: &wispv1.BatchResult_Increment{Increment: &wispv1.IncrementResponse{Value: r.Counter, Version: r.Version}}}
		}
	}
	return resp
}
