package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/cespare/xxhash/v2"

	"github.com/wisp-db/wisp/engine/eviction/replay"
	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Access traces, for what-if replays of eviction plugins (docs/PLUGINS.md,
// "What-if replay"): on request (StartTrace) every node records, for a
// while, the reads and writes its replicas serve of a sample of the keys,
// chosen by their hash, so that every access of a sampled key is in the
// trace (what a cache simulation needs: SHARDS, Waldspurger et al.,
// FAST '15). Off, it costs an atomic load per access.

// traceRecordsMax bounds a node's trace: about 5 MB.
const traceRecordsMax = 200_000

// Bounds of a recording.
const (
	traceDurationMax = time.Hour
	traceSampleMax   = 1 << 16
)

// tracer is a node's access trace. Safe for concurrent use.
type tracer struct {
	on atomic.Bool

	mu        sync.Mutex
	sample    uint64    // guarded by mu
	until     time.Time // guarded by mu
	recs      []*wispv1.TraceRecord
	truncated bool
}

// start begins a new trace, dropping the last.
func (t *tracer) start(d time.Duration, sample uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sample, t.until = uint64(max(sample, 1)), time.Now().Add(d)
	t.recs, t.truncated = nil, false
	t.on.Store(true)
}

// record adds an access if a trace is on and key is in its sample.
func (t *tracer) record(op replay.Op, key []byte, size int, nowUnixMs int64) {
	if !t.on.Load() {
		return
	}
	h := xxhash.Sum64(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case !t.on.Load() || h%t.sample != 0:
		return
	case time.Now().After(t.until):
		t.on.Store(false)
		return
	case len(t.recs) >= traceRecordsMax:
		t.on.Store(false)
		t.truncated = true
		return
	}
	t.recs = append(t.recs, &wispv1.TraceRecord{UnixMs: nowUnixMs, Op: uint32(op), KeyHash: h, Size: uint32(size)})
}

// collect returns the trace so far.
func (t *tracer) collect() (sample uint32, recs []*wispv1.TraceRecord, truncated bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return uint32(t.sample), slices.Clone(t.recs), t.truncated
}

// Trace records an access to this replica (api.Replica).
func (sh *shard) Trace(op replay.Op, key []byte, size int) {
	if sh.node.trace.on.Load() { // off, an access costs this load only
		sh.node.trace.record(op, key, size, sh.group.NowUnixMs())
	}
}

// StartTrace has every member start recording (api.Node); it returns the
// nodes that did.
func (n *Node) StartTrace(ctx context.Context, d time.Duration, sample uint32) []string {
	var (
		mu      sync.Mutex
		started []string
	)
	n.eachMember(ctx, func(ctx context.Context, id string, c controlClient) {
		if _, err := c.Trace(ctx, connect.NewRequest(&controlv1.TraceRequest{DurationMs: uint32(d.Milliseconds()), Sample: sample})); err == nil {
			mu.Lock()
			started = append(started, id)
			mu.Unlock()
		}
	})
	slices.Sort(started)
	return started
}

// GetTrace collects every member's trace, merged by time (api.Node).
func (n *Node) GetTrace(ctx context.Context) *wispv1.GetTraceResponse {
	res := &wispv1.GetTraceResponse{}
	var mu sync.Mutex
	n.eachMember(ctx, func(ctx context.Context, id string, c controlClient) {
		r, err := c.Trace(ctx, connect.NewRequest(&controlv1.TraceRequest{}))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Missing = append(res.Missing, id)
			return
		}
		res.Nodes = append(res.Nodes, id)
		res.Sample = max(res.Sample, r.Msg.Sample)
		res.Truncated = res.Truncated || r.Msg.Truncated
		res.Records = append(res.Records, r.Msg.Records...)
	})
	slices.SortStableFunc(res.Records, func(a, b *wispv1.TraceRecord) int { return int(a.UnixMs - b.UnixMs) })
	slices.Sort(res.Nodes)
	slices.Sort(res.Missing)
	return res
}

// eachMember calls call with every member's control client, concurrently,
// each bounded by 2 × statusPeerTimeout, and waits for them.
func (n *Node) eachMember(ctx context.Context, call func(ctx context.Context, id string, c controlClient)) {
	var wg sync.WaitGroup
	for _, nd := range n.view().m.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*statusPeerTimeout)
			defer cancel()
			call(cctx, nd.ID, n.ctl.client(nd.RaftAddr))
		}()
	}
	wg.Wait()
}

// Trace starts this node's trace, or returns it.
func (s *controlService) Trace(_ context.Context, req *connect.Request[controlv1.TraceRequest]) (*connect.Response[controlv1.TraceResponse], error) {
	r := req.Msg
	if r.DurationMs > 0 {
		d := time.Duration(r.DurationMs) * time.Millisecond
		s.n.trace.start(min(d, traceDurationMax), min(r.Sample, traceSampleMax))
		s.n.log.Info("access trace started", "duration", d, "sample", max(r.Sample, 1))
		return connect.NewResponse(&controlv1.TraceResponse{}), nil
	}
	sample, recs, truncated := s.n.trace.collect()
	return connect.NewResponse(&controlv1.TraceResponse{Sample: sample, Records: recs, Truncated: truncated}), nil
}
