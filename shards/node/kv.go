package node

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// kvService implements wisp.v1.KVService.
type kvService struct{ n *Node }

var _ wispv1connect.KVServiceHandler = (*kvService)(nil)

func (s *kvService) Get(ctx context.Context, req *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
	m := req.Msg
	if err := s.n.checkKey(m.Key); err != nil {
		return nil, err
	}
	level, err := consistency(m.Consistency)
	if err != nil {
		return nil, err
	}
	resp := &wispv1.GetResponse{}
	now := s.n.now()
	err = s.n.group.Read(ctx, level, func(e *engine.Engine) {
		if it, ok := e.Get(m.Key, now); ok {
			resp.Found, resp.Value, resp.Version, resp.ExpiresAtUnixMs = true, it.Value, it.Version, it.ExpiresAtUnixMs
		}
	})
	if err != nil {
		if c, ok := s.n.leaderClient(err, req.Header()); ok {
			return c.Get(ctx, connect.NewRequest(m))
		}
		return nil, s.n.connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *kvService) Put(ctx context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	mut, err := s.n.putMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	res, err := s.n.propose(ctx, mut)
	if err != nil {
		if c, ok := s.n.leaderClient(err, req.Header()); ok {
			return c.Put(ctx, connect.NewRequest(req.Msg))
		}
		return nil, s.n.connectError(err)
	}
	return connect.NewResponse(&wispv1.PutResponse{Version: res[0].Version}), nil
}

func (s *kvService) Delete(ctx context.Context, req *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
	mut, err := s.n.deleteMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	res, err := s.n.propose(ctx, mut)
	if err != nil {
		if c, ok := s.n.leaderClient(err, req.Header()); ok {
			return c.Delete(ctx, connect.NewRequest(req.Msg))
		}
		return nil, s.n.connectError(err)
	}
	return connect.NewResponse(&wispv1.DeleteResponse{Deleted: res[0].Existed, Version: res[0].Version}), nil
}

func (s *kvService) Increment(ctx context.Context, req *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
	mut, err := s.n.incrementMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	res, err := s.n.propose(ctx, mut)
	if err != nil {
		if c, ok := s.n.leaderClient(err, req.Header()); ok {
			return c.Increment(ctx, connect.NewRequest(req.Msg))
		}
		return nil, s.n.connectError(err)
	}
	return connect.NewResponse(&wispv1.IncrementResponse{Value: res[0].Counter, Version: res[0].Version}), nil
}

func (s *kvService) Scan(ctx context.Context, req *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
	m := req.Msg
	level, err := consistency(m.Consistency)
	if err != nil {
		return nil, err
	}
	if len(m.Prefix) > s.n.limits.MaxKeyBytes || len(m.StartKey) > s.n.limits.MaxKeyBytes || len(m.PageToken) > s.n.limits.MaxKeyBytes+1 {
		return nil, invalidArgument("prefix, start_key and page_token must each be at most %d bytes", s.n.limits.MaxKeyBytes)
	}
	limit := int(m.Limit)
	switch {
	case limit == 0:
		limit = defaultScanLimit
	case limit > maxScanLimit:
		limit = maxScanLimit
	}
	start := m.StartKey
	if len(m.PageToken) > 0 {
		start = m.PageToken
	}
	resp := &wispv1.ScanResponse{}
	now := s.n.now()
	err = s.n.group.Read(ctx, level, func(e *engine.Engine) {
		items, next := e.Scan(start, m.Prefix, limit, now)
		size := 0
		for i, it := range items {
			size += len(it.Key)
			if !m.KeysOnly {
				size += len(it.Value)
			}
			if size > s.n.limits.MaxScanBytes && i > 0 {
				// Page is full by bytes: resume at this key.
				next = it.Key
				break
			}
			kv := &wispv1.KeyValue{Key: it.Key, Version: it.Version, ExpiresAtUnixMs: it.ExpiresAtUnixMs}
			if !m.KeysOnly {
				kv.Value = it.Value
			}
			resp.Items = append(resp.Items, kv)
		}
		resp.NextPageToken = next
	})
	if err != nil {
		if c, ok := s.n.leaderClient(err, req.Header()); ok {
			return c.Scan(ctx, connect.NewRequest(m))
		}
		return nil, s.n.connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *kvService) Batch(ctx context.Context, req *connect.Request[wispv1.BatchRequest]) (*connect.Response[wispv1.BatchResponse], error) {
	ops := req.Msg.Ops
	if len(ops) == 0 {
		return nil, invalidArgument("batch has no ops")
	}
	if len(ops) > s.n.limits.MaxBatchOps {
		return nil, invalidArgument("batch has %d ops; the limit is %d", len(ops), s.n.limits.MaxBatchOps)
	}
	muts := make([]engine.Mutation, len(ops))
	for i, op := range ops {
		var (
			mut []engine.Mutation
			err error
		)
		switch o := op.Op.(type) {
		case *wispv1.BatchOp_Put:
			mut, err = s.n.putMutation(o.Put)
		case *wispv1.BatchOp_Delete:
			mut, err = s.n.deleteMutation(o.Delete)
		case *wispv1.BatchOp_Increment:
			mut, err = s.n.incrementMutation(o.Increment)
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
	res, err := s.n.propose(ctx, muts)
	if err != nil {
		if c, ok := s.n.leaderClient(err, req.Header()); ok {
			return c.Batch(ctx, connect.NewRequest(req.Msg))
		}
		return nil, s.n.connectError(err)
	}
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
	return connect.NewResponse(resp), nil
}

// propose replicates muts as one command and returns their results, or the
// command's error (a rejected precondition, not leader, ...).
func (n *Node) propose(ctx context.Context, muts []engine.Mutation) ([]engine.MutationResult, error) {
	cmd := engine.Command{Mutations: muts}
	res, err := n.group.Propose(ctx, &cmd)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Mutations, nil
}

// leaderClient returns a client for the shard's leader when err says this
// replica cannot serve the request and the request may still be forwarded.
func (n *Node) leaderClient(err error, h http.Header) (wispv1connect.KVServiceClient, bool) {
	if !errors.Is(err, raftgroup.ErrNotLeader) || h.Get(forwardedHeader) != "" {
		return nil, false
	}
	id, _ := n.group.Leader()
	p, ok := n.peers[id]
	if !ok || id == n.cfg.ID {
		return nil, false
	}
	n.metrics.forwarded.Inc()
	return n.fwd.client(p.URL), true
}

func (n *Node) now() int64 { return n.cfg.Now().UnixMilli() }

func consistency(c wispv1.Consistency) (raftgroup.Consistency, error) {
	switch c {
	case wispv1.Consistency_CONSISTENCY_UNSPECIFIED, wispv1.Consistency_CONSISTENCY_LINEARIZABLE:
		return raftgroup.Linearizable, nil
	case wispv1.Consistency_CONSISTENCY_STALE:
		return raftgroup.Stale, nil
	}
	return 0, invalidArgument("unknown consistency %d", c)
}

func (n *Node) checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return invalidArgument("key is empty")
	case len(key) > n.limits.MaxKeyBytes:
		return invalidArgument("key is %d bytes; the limit is %d", len(key), n.limits.MaxKeyBytes)
	}
	return nil
}

func (n *Node) putMutation(m *wispv1.PutRequest) ([]engine.Mutation, error) {
	if err := n.checkKey(m.Key); err != nil {
		return nil, err
	}
	switch {
	case len(m.Value) > n.limits.MaxValueBytes:
		return nil, invalidArgument("value is %d bytes; the limit is %d (--max-value-bytes)", len(m.Value), n.limits.MaxValueBytes)
	case m.TtlMs < 0:
		return nil, invalidArgument("ttl_ms is negative (%d)", m.TtlMs)
	case m.IfVersion != 0 && m.IfAbsent:
		return nil, invalidArgument("if_version and if_absent cannot both be set")
	}
	return []engine.Mutation{{Op: engine.OpPut, Key: m.Key, Value: m.Value, TTLMs: m.TtlMs, IfVersion: m.IfVersion, IfAbsent: m.IfAbsent}}, nil
}

func (n *Node) deleteMutation(m *wispv1.DeleteRequest) ([]engine.Mutation, error) {
	if err := n.checkKey(m.Key); err != nil {
		return nil, err
	}
	return []engine.Mutation{{Op: engine.OpDelete, Key: m.Key, IfVersion: m.IfVersion}}, nil
}

func (n *Node) incrementMutation(m *wispv1.IncrementRequest) ([]engine.Mutation, error) {
	if err := n.checkKey(m.Key); err != nil {
		return nil, err
	}
	return []engine.Mutation{{Op: engine.OpIncrement, Key: m.Key, Delta: m.Delta}}, nil
}
