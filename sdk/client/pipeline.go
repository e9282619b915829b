package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// Auto-pipelining (WithAutoPipeline): calls to one endpoint go out on their
// own while fewer than maxInflightCalls are in flight there; past that they
// queue, and when a call in flight returns, everything queued (up to
// maxPipelineOps) goes out as one Pipeline RPC. So a lone caller pays
// nothing, and under load the calls that would have waited for a free slot
// share one RPC instead: one request to parse, one pass through the
// server's handlers, and writes the server packs into one Raft entry per
// shard. This is what rueidis and ioredis do for Redis, with the window
// set by the calls in flight rather than by a timer.
//
// Each op keeps its own result and error, exactly as its own call would
// have returned them; the invoke loop around it (retries, leader hints) is
// the same. Ops that share a Pipeline are concurrent (each caller waits for
// its op before issuing the next), so the server may run them in any
// order: linearizability is unchanged.

// maxInflightCalls bounds the RPCs in flight per endpoint before calls
// queue for a Pipeline. HTTP/2 multiplexes them on one connection; a few in
// flight keep the server busy while the next batch gathers.
const maxInflightCalls = 8

// maxPipelineOps bounds one Pipeline RPC; the server's limit is 1,000.
const maxPipelineOps = 256

// pipeliner queues calls to one endpoint. Safe for concurrent use.
type pipeliner struct {
	kv          wispv1connect.KVServiceClient
	maxInflight int // RPCs in flight before calls queue: maxInflightCalls but in tests

	mu       sync.Mutex
	inflight int        // RPCs in flight; guarded by mu; <= maxInflight
	queue    []*pending // guarded by mu
}

// pending is one queued op and where its outcome goes.
type pending struct {
	ctx  context.Context
	op   *wispv1.PipelineOp
	done chan opOutcome // buffered: the sender never blocks
	// gone is set by a caller that stopped waiting (its ctx ended) before
	// the op was sent: the sender then leaves it out.
	gone atomic.Bool
}

type opOutcome struct {
	res any // the op's response message, such as *wispv1.GetResponse
	err error
}

// serverError is the error the server sent for one op of a Pipeline: a
// *connect.Error made on this side from the op's code, message and
// details, standing for what the op's own call would have received on the
// wire (connect.IsWireError is false for it, so invoke asks for this type
// too).
type serverError struct{ err *connect.Error }

func (e *serverError) Error() string { return e.err.Error() }
func (e *serverError) Unwrap() error { return e.err }

// do runs one op and returns its response message: alone, through its own
// RPC, if a slot is free, else queued for the next Pipeline. mkOp builds
// the op only if it queues.
func (p *pipeliner) do(ctx context.Context, mkOp func() *wispv1.PipelineOp, alone func(context.Context) (any, error)) (any, error) {
	p.mu.Lock()
	if p.inflight < p.maxInflight {
		p.inflight++
		p.mu.Unlock()
		res, err := alone(ctx)
		p.release()
		return res, err
	}
	w := &pending{ctx: ctx, op: mkOp(), done: make(chan opOutcome, 1)}
	p.queue = append(p.queue, w)
	p.mu.Unlock()
	select {
	case out := <-w.done:
		return out.res, out.err
	case <-ctx.Done():
		w.gone.Store(true)
		select {
		case out := <-w.done: // sent and answered meanwhile
			return out.res, out.err
		default:
		}
		code := connect.CodeCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = connect.CodeDeadlineExceeded
		}
		return nil, connect.NewError(code, ctx.Err())
	}
}

// release gives back an RPC slot, or hands it to the queued ops: the slot
// stays taken while a goroutine sends them.
func (p *pipeliner) release() {
	p.mu.Lock()
	if len(p.queue) == 0 {
		p.inflight--
		p.mu.Unlock()
		return
	}
	n := min(len(p.queue), maxPipelineOps)
	batch := p.queue[:n:n]
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil // let the backing array go
	}
	p.mu.Unlock()
	go p.send(batch)
}

// send sends batch as one Pipeline, hands each op its outcome, then
// releases the slot it holds. It runs on its own goroutine, which ends when
// the RPC does; the RPC is bounded by the latest of the ops' deadlines.
func (p *pipeliner) send(batch []*pending) {
	defer p.release()
	live := batch[:0:0]
	for _, w := range batch {
		if !w.gone.Load() {
			live = append(live, w)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	req := &wispv1.PipelineRequest{Ops: make([]*wispv1.PipelineOp, len(live))}
	for i, w := range live {
		req.Ops[i] = w.op
	}
	resp, err := p.kv.Pipeline(ctx, connect.NewRequest(req))
	if err == nil && len(resp.Msg.Results) != len(live) {
		err = connect.NewError(connect.CodeInternal, errors.New("pipeline: the server answered for another number of ops"))
	}
	for i, w := range live {
		if err != nil {
			w.done <- opOutcome{err: err}
			continue
		}
		r := resp.Msg.Results[i]
		if oe := r.GetError(); oe != nil {
			w.done <- opOutcome{err: &serverError{opConnectError(oe)}}
			continue
		}
		w.done <- opOutcome{res: resultMessage(r)}
	}
}

// batchContext bounds a Pipeline by the latest deadline of its ops, or by
// none if one of them has none. It ends early only if every op's caller
// gave up.
func batchContext(ops []*pending) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, w := range ops {
		d, ok := w.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// opConnectError rebuilds the *connect.Error of one op from its OpError.
// Details the client does not know are kept as they came.
func opConnectError(oe *wispv1.OpError) *connect.Error {
	ce := connect.NewError(connect.Code(oe.GetCode()), errors.New(oe.GetMessage()))
	for _, a := range oe.GetDetails() {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		if d, err := connect.NewErrorDetail(m); err == nil {
			ce.AddDetail(d)
		}
	}
	return ce
}

// call runs one single-key call on ep: through ep's pipeliner when
// auto-pipelining is on, else as its own RPC.
func call[Req, Res any](ctx context.Context, ep *endpoint, req *Req,
	unary func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
) (*Res, error) {
	alone := func(ctx context.Context) (any, error) {
		r, err := unary(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}
	var (
		out any
		err error
	)
	if ep.pipe == nil {
		out, err = alone(ctx)
	} else {
		out, err = ep.pipe.do(ctx, func() *wispv1.PipelineOp { return pipelineOp(req) }, alone)
	}
	if err != nil {
		return nil, err
	}
	if got, ok := out.(*Res); ok && got != nil {
		return got, nil
	}
	return nil, connect.NewError(connect.CodeInternal, errors.New("pipeline: the server answered an op with another kind of result"))
}

// pipelineOp wraps one call's request as a Pipeline op. Only the kinds
// endpoint's methods below send can reach it.
func pipelineOp(req any) *wispv1.PipelineOp {
	switch r := req.(type) {
	case *wispv1.GetRequest:
		return &wispv1.PipelineOp{Op: &wispv1.PipelineOp_Get{Get: r}}
	case *wispv1.PutRequest:
		return &wispv1.PipelineOp{Op: &wispv1.PipelineOp_Put{Put: r}}
	case *wispv1.DeleteRequest:
		return &wispv1.PipelineOp{Op: &wispv1.PipelineOp_Delete{Delete: r}}
	case *wispv1.IncrementRequest:
		return &wispv1.PipelineOp{Op: &wispv1.PipelineOp_Increment{Increment: r}}
	}
	panic(fmt.Sprintf("pipeline: no op for %T", req))
}

// resultMessage unwraps one op's response from a Pipeline result (nil for
// an empty or unknown result).
func resultMessage(r *wispv1.PipelineResult) any {
	switch x := r.GetResult().(type) {
	case *wispv1.PipelineResult_Get:
		return x.Get
	case *wispv1.PipelineResult_Put:
		return x.Put
	case *wispv1.PipelineResult_Delete:
		return x.Delete
	case *wispv1.PipelineResult_Increment:
		return x.Increment
	}
	return nil
}

func (ep *endpoint) get(ctx context.Context, req *wispv1.GetRequest) (*wispv1.GetResponse, error) {
	return call(ctx, ep, req, ep.kv.Get)
}

func (ep *endpoint) put(ctx context.Context, req *wispv1.PutRequest) (*wispv1.PutResponse, error) {
	return call(ctx, ep, req, ep.kv.Put)
}

func (ep *endpoint) delete(ctx context.Context, req *wispv1.DeleteRequest) (*wispv1.DeleteResponse, error) {
	return call(ctx, ep, req, ep.kv.Delete)
}

func (ep *endpoint) increment(ctx context.Context, req *wispv1.IncrementRequest) (*wispv1.IncrementResponse, error) {
	return call(ctx, ep, req, ep.kv.Increment)
}
