package api

import (
	"context"
	"errors"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// maxManyOps bounds the keys of a GetMany and the ops of a Pipeline.
const maxManyOps = 1000

// GetMany reads every shard's keys with one read (one read index for a
// linearizable read), the shards concurrently, and answers in key order.
func (s *kvService) GetMany(ctx context.Context, req *connect.Request[wispv1.GetManyRequest]) (*connect.Response[wispv1.GetManyResponse], error) {
	a, m := s.a, req.Msg
	switch {
	case len(m.Keys) == 0:
		return nil, invalidArgument("no keys")
	case len(m.Keys) > maxManyOps:
		return nil, invalidArgument("%d keys; the limit is %d", len(m.Keys), maxManyOps)
	}
	for _, k := range m.Keys {
		if err := a.checkKey(k); err != nil {
			return nil, err
		}
	}
	level, err := consistency(m.Consistency)
	if err != nil {
		return nil, err
	}
	one := func(ctx context.Context, id int, part *connect.Request[wispv1.GetManyRequest]) (*connect.Response[wispv1.GetManyResponse], error) {
		return serve(ctx, a, id, part, true, func(r Replica) (*wispv1.GetManyResponse, error) {
			resp := &wispv1.GetManyResponse{Items: make([]*wispv1.GetResponse, len(part.Msg.Keys))}
			now := r.NowUnixMs()
			err := r.Read(ctx, level, func(e *engine.Engine) {
				for i, k := range part.Msg.Keys {
					resp.Items[i] = getResponse(e, k, now)
				}
			})
			if err == nil {
				for i, k := range part.Msg.Keys {
					r.Trace(replay.Get, k, len(resp.Items[i].Value))
				}
			}
			return resp, err
		}, func(ctx context.Context, url string, fr *connect.Request[wispv1.GetManyRequest]) (*connect.Response[wispv1.GetManyResponse], error) {
			return a.peers.kv(url).GetMany(ctx, fr)
		})
	}
	if id, ok := targetShard(req.Header(), a.node.Shards()); ok {
		return one(ctx, id, req) // one shard's part of another node's GetMany
	}

	// Split by shard, keeping each key's place in the request.
	type part struct {
		keys []int // indexes into m.Keys
		resp *connect.Response[wispv1.GetManyResponse]
		err  error
	}
	parts := map[int]*part{}
	for i, k := range m.Keys {
		id := a.node.ShardOf(k)
		p := parts[id]
		if p == nil {
			p = &part{}
			parts[id] = p
		}
		p.keys = append(p.keys, i)
	}
	var wg sync.WaitGroup
	for id, p := range parts {
		sub := &wispv1.GetManyRequest{Keys: make([][]byte, len(p.keys)), Consistency: m.Consistency}
		for j, i := range p.keys {
			sub.Keys[j] = m.Keys[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.resp, p.err = one(ctx, id, connect.NewRequest(sub))
		}()
	}
	wg.Wait()
	out := &wispv1.GetManyResponse{Items: make([]*wispv1.GetResponse, len(m.Keys))}
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		if len(p.resp.Msg.Items) != len(p.keys) {
			return nil, a.connectError(0, errors.New("getmany: a shard answered for another number of keys"))
		}
		for j, i := range p.keys {
			out.Items[i] = p.resp.Msg.Items[j]
		}
	}
	resp := connect.NewResponse(out)
	resp.Header().Set(epochHeader, a.node.Route().EpochText)
	return resp, nil
}

// getResponse reads key from e as Get answers it.
func getResponse(e *engine.Engine, key []byte, now int64) *wispv1.GetResponse {
	resp := &wispv1.GetResponse{}
	if it, ok := e.Get(key, now); ok {
		resp.Found, resp.Value, resp.Version, resp.ExpiresAtUnixMs = true, it.Value, it.Version, it.ExpiresAtUnixMs
		if it.ExpiresAtUnixMs != 0 {
			resp.TtlMs = it.ExpiresAtUnixMs - now
		}
	}
	return resp
}

// Pipeline runs each op as its own call would run, all at once: the
// proposer packs the concurrent writes into shared Raft entries and the
// linearizable reads share read-index rounds, so a pipeline costs about
// what its ops cost in one call each, less the per-call overhead.
func (s *kvService) Pipeline(ctx context.Context, req *connect.Request[wispv1.PipelineRequest]) (*connect.Response[wispv1.PipelineResponse], error) {
	ops := req.Msg.Ops
	switch {
	case len(ops) == 0:
		return nil, invalidArgument("no ops")
	case len(ops) > maxManyOps:
		return nil, invalidArgument("%d ops; the limit is %d", len(ops), maxManyOps)
	}
	out := &wispv1.PipelineResponse{Results: make([]*wispv1.PipelineResult, len(ops))}
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Results[i] = s.pipelineOp(ctx, op)
		}()
	}
	wg.Wait()
	resp := connect.NewResponse(out)
	resp.Header().Set(epochHeader, s.a.node.Route().EpochText)
	return resp, nil
}

// pipelineOp runs one op of a Pipeline through its own handler.
func (s *kvService) pipelineOp(ctx context.Context, op *wispv1.PipelineOp) *wispv1.PipelineResult {
	var (
		res *wispv1.PipelineResult
		err error
	)
	switch o := op.GetOp().(type) {
	case *wispv1.PipelineOp_Get:
		var r *connect.Response[wispv1.GetResponse]
		if r, err = s.Get(ctx, connect.NewRequest(o.Get)); err == nil {
			res = &wispv1.PipelineResult{Result: &wispv1.PipelineResult_Get{Get: r.Msg}}
		}
	case *wispv1.PipelineOp_Put:
		var r *connect.Response[wispv1.PutResponse]
		if r, err = s.Put(ctx, connect.NewRequest(o.Put)); err == nil {
			res = &wispv1.PipelineResult{Result: &wispv1.PipelineResult_Put{Put: r.Msg}}
		}
	case *wispv1.PipelineOp_Delete:
		var r *connect.Response[wispv1.DeleteResponse]
		if r, err = s.Delete(ctx, connect.NewRequest(o.Delete)); err == nil {
			res = &wispv1.PipelineResult{Result: &wispv1.PipelineResult_Delete{Delete: r.Msg}}
		}
	case *wispv1.PipelineOp_Increment:
		var r *connect.Response[wispv1.IncrementResponse]
		if r, err = s.Increment(ctx, connect.NewRequest(o.Increment)); err == nil {
			res = &wispv1.PipelineResult{Result: &wispv1.PipelineResult_Increment{Increment: r.Msg}}
		}
	default:
		err = invalidArgument("an empty op")
	}
	if err != nil {
		return &wispv1.PipelineResult{Result: &wispv1.PipelineResult_Error{Error: opError(err)}}
	}
	return res
}

// opError carries a handler's *connect.Error inside a Pipeline result. The
// handlers return only Connect errors (connectError); anything else is
// reported as INTERNAL without its text.
func opError(err error) *wispv1.OpError {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return &wispv1.OpError{Code: int32(connect.CodeInternal), Message: "internal error; see the server log"}
	}
	oe := &wispv1.OpError{Code: int32(ce.Code()), Message: ce.Message()}
	for _, d := range ce.Details() {
		oe.Details = append(oe.Details, &anypb.Any{TypeUrl: "type.googleapis.com/" + d.Type(), Value: d.Bytes()})
	}
	return oe
}
