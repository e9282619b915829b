package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

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
	return serve(ctx, s.n, req, true, func() (*wispv1.GetResponse, error) {
		resp := &wispv1.GetResponse{}
		now := s.n.now()
		err := s.n.group.Read(ctx, level, func(e *engine.Engine) {
			if it, ok := e.Get(m.Key, now); ok {
				resp.Found, resp.Value, resp.Version, resp.ExpiresAtUnixMs = true, it.Value, it.Version, it.ExpiresAtUnixMs
				if it.ExpiresAtUnixMs != 0 {
					resp.TtlMs = it.ExpiresAtUnixMs - now
				}
			}
		})
		return resp, err
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
		return s.n.fwd.kv(url).Get(ctx, r)
	})
}

func (s *kvService) Put(ctx context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	mut, err := s.n.putMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, req, false, func() (*wispv1.PutResponse, error) {
		res, err := s.n.propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.PutResponse{Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
		return s.n.fwd.kv(url).Put(ctx, r)
	})
}

func (s *kvService) Delete(ctx context.Context, req *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
	mut, err := s.n.deleteMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, req, false, func() (*wispv1.DeleteResponse, error) {
		res, err := s.n.propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.DeleteResponse{Deleted: res[0].Existed, Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
		return s.n.fwd.kv(url).Delete(ctx, r)
	})
}

func (s *kvService) Increment(ctx context.Context, req *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
	mut, err := s.n.incrementMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, req, false, func() (*wispv1.IncrementResponse, error) {
		res, err := s.n.propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.IncrementResponse{Value: res[0].Counter, Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
		return s.n.fwd.kv(url).Increment(ctx, r)
	})
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
	return serve(ctx, s.n, req, true, func() (*wispv1.ScanResponse, error) {
		resp := &wispv1.ScanResponse{}
		err := s.n.group.Read(ctx, level, func(e *engine.Engine) { s.n.scanPage(e, m, start, limit, resp) })
		return resp, err
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
		return s.n.fwd.kv(url).Scan(ctx, r)
	})
}

// scanPage fills resp with one page, bounded by limit items and MaxScanBytes.
func (n *Node) scanPage(e *engine.Engine, m *wispv1.ScanRequest, start []byte, limit int, resp *wispv1.ScanResponse) {
	items, next := e.Scan(start, m.Prefix, limit, n.now())
	size := 0
	for i, it := range items {
		size += len(it.Key)
		if !m.KeysOnly {
			size += len(it.Value)
		}
		if size > n.limits.MaxScanBytes && i > 0 {
			next = it.Key // the page is full by bytes: resume at this key
			break
		}
		kv := &wispv1.KeyValue{Key: it.Key, Version: it.Version, ExpiresAtUnixMs: it.ExpiresAtUnixMs}
		if !m.KeysOnly {
			kv.Value = it.Value
		}
		resp.Items = append(resp.Items, kv)
	}
	resp.NextPageToken = next
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
	return serve(ctx, s.n, req, false, func() (*wispv1.BatchResponse, error) {
		res, err := s.n.propose(ctx, muts)
		if err != nil {
			return nil, err
		}
		return batchResponse(ops, res), nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.BatchRequest]) (*connect.Response[wispv1.BatchResponse], error) {
		return s.n.fwd.kv(url).Batch(ctx, r)
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

// propose replicates muts as one command and returns their results, or the
// command's error (a rejected precondition, not leader, ...).
func (n *Node) propose(ctx context.Context, muts []engine.Mutation) ([]engine.MutationResult, error) {
	res, _, err := n.proposeAt(ctx, muts)
	return res, err
}

// proposeAt is propose that also returns the time stamped into the command.
func (n *Node) proposeAt(ctx context.Context, muts []engine.Mutation) ([]engine.MutationResult, int64, error) {
	cmd := engine.Command{Mutations: muts}
	n.stampBudget(&cmd)
	res, err := n.group.Propose(ctx, &cmd)
	if err != nil {
		return nil, 0, err
	}
	if res.Err != nil {
		return nil, 0, res.Err
	}
	return res.Mutations, cmd.NowUnixMs, nil
}

// serve answers req with local, the handler's own logic, when this replica
// can; when it is not the leader it waits (bounded) for one to be known and
// forwards req there with remote, or retries locally if it has become the
// leader itself. Requests already forwarded are never forwarded again.
//
// read says req has no side effects: a forward that fails in transit is then
// UNAVAILABLE (retry), while for a write it is ABORTED (outcome unknown).
func serve[Req, Res any](
	ctx context.Context, n *Node, req *connect.Request[Req], read bool,
	local func() (*Res, error),
	remote func(ctx context.Context, url string, req *connect.Request[Req]) (*connect.Response[Res], error),
) (*connect.Response[Res], error) {
	var unreachable string // a leader the last forward could not reach
	for attempt := 1; ; attempt++ {
		res, err := local()
		if err == nil {
			return connect.NewResponse(res), nil
		}
		if !errors.Is(err, raftgroup.ErrNotLeader) || req.Header().Get(forwardedHeader) != "" || attempt > maxServeAttempts {
			return nil, n.connectError(err)
		}
		id := n.awaitLeader(ctx, unreachable)
		if id == "" {
			return nil, n.connectError(err)
		}
		if id == n.cfg.ID {
			continue // became the leader meanwhile: serve locally
		}
		n.metrics.forwarded.Inc()
		resp, ferr := remote(ctx, n.peers[id].URL, connect.NewRequest(req.Msg))
		switch {
		case ferr == nil:
			// Tell the client where the leader is, so it can go there next.
			resp.Header().Set(leaderHeader, n.peers[id].URL)
			return resp, nil
		case connect.IsWireError(ferr):
			return nil, ferr // the leader's own error
		case isDialError(ferr):
			unreachable = id // nothing was sent: wait for another leader
			continue
		case ctx.Err() != nil:
			return nil, n.connectError(ctx.Err())
		case read:
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("forward to leader %s failed; retry", id))
		default:
			n.log.Warn("forward failed in transit", "leader", id, "err", ferr)
			return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("connection to leader %s failed with the write in flight; it may or may not have been applied", id))
		}
	}
}

// leaderHeader carries the leader's API base URL on a response this node got
// by forwarding; leader-aware clients send their next requests there.
const leaderHeader = "Wisp-Leader"

// isDialError reports whether err is a failure to connect, before anything
// of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// maxServeAttempts bounds how often serve goes round: retrying locally after
// this node became the leader, or forwarding again after the leader it chose
// could not be reached.
const maxServeAttempts = 3

// leaderWait bounds how long a request waits for an election to finish.
const leaderWait = 2 * time.Second

// awaitLeader returns the leader's id, waiting up to leaderWait (and ctx)
// while none is known or the known one is not: "" if none appeared.
func (n *Node) awaitLeader(ctx context.Context, not string) string {
	deadline := time.Now().Add(leaderWait)
	for {
		if id, _ := n.group.Leader(); id != "" && id != not {
			if _, ok := n.peers[id]; ok {
				return id
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// now is the time reads judge expiry by: see raftgroup.Group.NowUnixMs.
func (n *Node) now() int64 { return n.group.NowUnixMs() }

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
