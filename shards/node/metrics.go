package node

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wisp-db/wisp/buildinfo"
	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// metrics are one node's Prometheus series, labelled node=<id>: its own
// (requests, forwarding, the hosted replicas' state read at scrape time),
// its replicas' groups' (raftgroup.Group.Collector, also labelled
// shard=<id>), its shared log's (raftlog.Store.Collector) and
// wisp_build_info. The request counters are resolved per call with
// WithLabelValues, as before; everything else is an atomic add where the
// event happens or is read at scrape time.
type metrics struct {
	// reg is where the series go, with the node label added: the node's own
	// registry, or Config.Registerer.
	reg prometheus.Registerer
	// handler serves the node's own registry; nil when Config.Registerer
	// was given (the caller serves that).
	handler http.Handler
	// registered is what unregister undoes: only the registrations that
	// succeeded, so a duplicate never unregisters the first's series.
	registered []registration

	requests  *prometheus.CounterVec   // by method, code
	latency   *prometheus.HistogramVec // by method
	forwarded prometheus.Counter
}

type registration struct {
	reg prometheus.Registerer
	c   prometheus.Collector
}

// newMetrics registers the node's series in reg, or, if reg is nil, in a
// registry of the node's own that also holds the Go runtime and process
// collectors, served by Node.MetricsHandler. Call it once the replicas are
// open.
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
	if reg == nil {
		own := prometheus.NewRegistry()
		own.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		m.handler = promhttp.HandlerFor(own, promhttp.HandlerOpts{})
		reg = own
	}
	m.reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": nodeID}, reg)
	m.register(m.reg, m.requests, m.latency, m.forwarded, shardCollector{n}, pluginCollector{n}, newBuildInfo())
	if n.logs != nil {
		m.register(m.reg, n.logs.Collector())
	}
	for _, sh := range n.replicas().hosted {
		m.register(prometheus.WrapRegistererWith(prometheus.Labels{"shard": shardLabel(sh.id)}, m.reg), sh.group.Collector())
	}
	return m
}

// register registers each collector in reg and remembers those that took.
// A duplicate (a node of the same id opened twice in one process on one
// Registerer) is skipped: the series keep reporting the first.
func (m *metrics) register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	for _, c := range cs {
		if reg.Register(c) == nil {
			m.registered = append(m.registered, registration{reg, c})
		}
	}
}

// newBuildInfo is wisp_build_info: 1, labelled with what buildinfo.Get
// reports, so a dashboard can tell which binary each node runs.
func newBuildInfo() prometheus.Collector {
	bi := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wisp_build_info",
		Help: "Always 1; the labels name the binary: module version, VCS revision, Go version.",
		ConstLabels: prometheus.Labels{
			"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion,
		},
	})
	g.Set(1)
	return g
}

// MetricsHandler serves the node's metrics in the Prometheus exposition
// formats; mount it at GET /metrics on the node's port. It serves the
// node's own registry: the node's series (labelled node=ID),
// wisp_build_info and the Go runtime and process collectors (go_*,
// process_*, which describe the whole process: in `wispd dev` every node
// reports the same process). With Config.Registerer set, the node has no
// registry of its own and the handler answers 404: the caller serves that
// registry. Safe for concurrent use.
func (n *Node) MetricsHandler() http.Handler {
	if n.metrics.handler == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "this node's metrics go to the Registerer it was opened with", http.StatusNotFound)
		})
	}
	return n.metrics.handler
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
	descHasLeader = prometheus.NewDesc("wisp_raft_has_leader", "1 if the local replica knows a leader of its shard. Like etcd_server_has_leader.", shardLabels, nil)
	descApplyLag  = prometheus.NewDesc("wisp_raft_apply_lag_entries", "Entries the local replica knows committed and has not applied yet (commit index minus applied index).", shardLabels, nil)
	descKeys      = prometheus.NewDesc("wisp_keys", "Keys stored in the local replica, expired ones not yet removed included.", shardLabels, nil)
	descMemUsed   = prometheus.NewDesc("wisp_memory_used_bytes", "Accounted memory of the local replica's data.", shardLabels, nil)
	descMemBudget = prometheus.NewDesc("wisp_memory_budget_bytes", "Memory budget the local replica's shard works to (what the nodes holding its replicas have room for; 0: none). Its leader's is in force.", shardLabels, nil)

	descLogCommits  = prometheus.NewDesc("wisp_raftlog_commits_total", "Transactions (each two fsyncs) the node's shared Raft log committed.", nil, nil)
	descLogRequests = prometheus.NewDesc("wisp_raftlog_requests_total", "Writes (appends, truncations, stable-store sets) from all groups those commits carried.", nil, nil)
	descLogEntries  = prometheus.NewDesc("wisp_raftlog_entries_total", "Raft log entries appended to the shared log, all groups.", nil, nil)

	descHubFrames = prometheus.NewDesc("wisp_raft_hub_frames_total", "Raft RPC messages (requests and answers) the node's hub sent, all groups.", nil, nil)
	descHubWrites = prometheus.NewDesc("wisp_raft_hub_writes_total", "Socket writes that carried them: frames/writes is how many messages share a write.", nil, nil)
)

func (shardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApplied, descCommit, descTerm, descIsLeader, descHasLeader, descApplyLag, descKeys, descMemUsed, descMemBudget, descLogCommits, descLogRequests, descLogEntries, descHubFrames, descHubWrites} {
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
	for _, sh := range c.n.replicas().hosted {
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
		hasLeader := 0.0
		if st.LeaderID != "" {
			hasLeader = 1
		}
		gauge(descHasLeader, hasLeader)
		// Status reads the applied index before the commit index, so it is
		// at most the commit index, except after a restart from a snapshot
		// until the leader tells the replica the commit index (then 0).
		gauge(descApplyLag, float64(st.CommitIndex-min(st.AppliedIndex, st.CommitIndex)))
		gauge(descKeys, float64(st.KeyCount))
		var used int64
		_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { used = e.MemoryUsed() })
		gauge(descMemUsed, float64(used))
		gauge(descMemBudget, float64(c.n.settings(sh).MaxMemoryBytes))
	}
}

func shardLabel(id int) string { return strconv.Itoa(id) }

func (m *metrics) unregister() {
	for _, r := range m.registered {
		r.reg.Unregister(r.c)
	}
	m.registered = nil
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
