package node

import (
	"context"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// metrics are one node's Prometheus series, labelled node=<id>.
type metrics struct {
	reg        prometheus.Registerer // nil: metrics are kept but not exported
	collectors []prometheus.Collector

	requests  *prometheus.CounterVec   // by method, code
	latency   *prometheus.HistogramVec // by method
	forwarded prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, nodeID string, n *Node) *metrics {
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
			Name: "wisp_forwarded_requests_total", Help: "Requests (or parts of requests) this node forwarded to a shard leader.",
		}),
	}
	m.collectors = []prometheus.Collector{m.requests, m.latency, m.forwarded, shardCollector{n}}
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

// shardCollector reports every hosted replica's state, labelled shard=<id>,
// read at scrape time.
type shardCollector struct{ n *Node }

var (
	shardLabels   = []string{"shard"}
	descApplied   = prometheus.NewDesc("wisp_raft_applied_index", "Highest log index applied to the local replica.", shardLabels, nil)
	descCommit    = prometheus.NewDesc("wisp_raft_commit_index", "Highest log index known committed.", shardLabels, nil)
	descTerm      = prometheus.NewDesc("wisp_raft_term", "Current Raft term.", shardLabels, nil)
	descIsLeader  = prometheus.NewDesc("wisp_raft_is_leader", "1 if the local replica leads its shard.", shardLabels, nil)
	descKeys      = prometheus.NewDesc("wisp_keys", "Keys stored in the local replica, expired ones not yet removed included.", shardLabels, nil)
	descMemUsed   = prometheus.NewDesc("wisp_memory_used_bytes", "Accounted memory of the local replica's data.", shardLabels, nil)
	descMemBudget = prometheus.NewDesc("wisp_memory_budget_bytes", "Memory budget in force for the local replica (its share of the node budget; 0: none).", shardLabels, nil)

	descLogCommits  = prometheus.NewDesc("wisp_raftlog_commits_total", "Transactions (each two fsyncs) the node's shared Raft log committed.", nil, nil)
	descLogRequests = prometheus.NewDesc("wisp_raftlog_requests_total", "Writes (appends, truncations, stable-store sets) from all groups those commits carried.", nil, nil)
	descLogEntries  = prometheus.NewDesc("wisp_raftlog_entries_total", "Raft log entries appended to the shared log, all groups.", nil, nil)

	descHubFrames = prometheus.NewDesc("wisp_raft_hub_frames_total", "Raft RPC messages (requests and answers) the node's hub sent, all groups.", nil, nil)
	descHubWrites = prometheus.NewDesc("wisp_raft_hub_writes_total", "Socket writes that carried them: frames/writes is how many messages share a write.", nil, nil)
)

func (shardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApplied, descCommit, descTerm, descIsLeader, descKeys, descMemUsed, descMemBudget, descLogCommits, descLogRequests, descLogEntries, descHubFrames, descHubWrites} {
		ch <- d
	}
}

func (c shardCollector) Collect(ch chan<- prometheus.Metric) {
	if logs := c.n.logs; logs != nil {
		st := logs.Stats()
		ch <- prometheus.MustNewConstMetric(descLogCommits, prometheus.CounterValue, float64(st.Commits))
		ch <- prometheus.MustNewConstMetric(descLogRequests, prometheus.CounterValue, float64(st.Requests))
		ch <- prometheus.MustNewConstMetric(descLogEntries, prometheus.CounterValue, float64(st.Entries))
	}
	if hub := c.n.hub; hub != nil {
		st := hub.Stats()
		ch <- prometheus.MustNewConstMetric(descHubFrames, prometheus.CounterValue, float64(st.Frames))
		ch <- prometheus.MustNewConstMetric(descHubWrites, prometheus.CounterValue, float64(st.Writes))
	}
	for _, sh := range c.n.hosted {
		st := sh.group.Status()
		label := shardLabel(sh.id)
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, label)
		}
		gauge(descApplied, float64(st.AppliedIndex))
		gauge(descCommit, float64(st.CommitIndex))
		gauge(descTerm, float64(st.Term))
		leader := 0.0
		if st.State == "leader" {
			leader = 1
		}
		gauge(descIsLeader, leader)
		gauge(descKeys, float64(st.KeyCount))
		var used int64
		_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { used = e.MemoryUsed() })
		gauge(descMemUsed, float64(used))
		gauge(descMemBudget, float64(c.n.settings(sh).MaxMemoryBytes))
	}
}

func shardLabel(id int) string { return strconv.Itoa(id) }

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
