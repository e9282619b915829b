package node

import (
	"context"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
)

// metrics are one node's Prometheus series, labelled node=<id>.
type metrics struct {
	reg        prometheus.Registerer // nil: metrics are kept but not exported
	collectors []prometheus.Collector

	requests  *prometheus.CounterVec   // by method, code
	latency   *prometheus.HistogramVec // by method
	forwarded prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, nodeID string, g *raftgroup.Group, settings func() reclaim.Settings) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_requests_total", Help: "API requests served, by method and Connect code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wisp_request_duration_seconds",
			Help:    "API request latency, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. ~3.3s
		}, []string{"method"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_forwarded_requests_total", Help: "Requests this node forwarded to a shard leader.",
		}),
	}
	gauge := func(name, help string, f func(raftgroup.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(g.Status()) })
	}
	m.collectors = []prometheus.Collector{
		m.requests, m.latency, m.forwarded,
		gauge("wisp_raft_applied_index", "Highest log index applied to the local replica.", func(s raftgroup.Status) float64 { return float64(s.AppliedIndex) }),
		gauge("wisp_raft_commit_index", "Highest log index known committed.", func(s raftgroup.Status) float64 { return float64(s.CommitIndex) }),
		gauge("wisp_raft_term", "Current Raft term.", func(s raftgroup.Status) float64 { return float64(s.Term) }),
		gauge("wisp_raft_is_leader", "1 if the local replica leads its shard.", func(s raftgroup.Status) float64 {
			if s.State == "leader" {
				return 1
			}
			return 0
		}),
		gauge("wisp_keys", "Keys stored in the local replica, expired ones not yet removed included.", func(s raftgroup.Status) float64 { return float64(s.KeyCount) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wisp_memory_used_bytes", Help: "Accounted memory of the local replica's data.",
		}, func() float64 {
			var used int64
			g.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { used = e.MemoryUsed() })
			return float64(used)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wisp_memory_budget_bytes", Help: "Memory budget in force for the local replica's shard (0: none).",
		}, func() float64 { return float64(settings().MaxMemoryBytes) }),
	}
	if reg != nil {
		m.reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": nodeID}, reg)
		for _, c := range m.collectors {
			// A duplicate registration (a node reopened in one process)
			// replaces nothing; the series keep working for the first.
			_ = m.reg.Register(c)
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

// interceptor counts and times every unary call.
func (m *metrics) interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			resp, err := next(ctx, req)
			method := req.Spec().Procedure
			if i := strings.LastIndexByte(method, '/'); i >= 0 {
				method = method[i+1:]
			}
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			m.requests.WithLabelValues(method, code).Inc()
			m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
			return resp, err
		}
	})
}
