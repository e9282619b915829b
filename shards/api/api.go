package api

import (
	"context"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/ring"
)

// Node is the node the API serves on, as the handlers use it: where keys
// and shards are, the replicas it hosts, and the cluster operations it
// carries out. *node.Node implements it.
type Node interface {
	// ID is the node's id.
	ID() string
	// Shards is the cluster's shard count, fixed when it was created.
	Shards() int
	// ShardOf returns the shard that owns key.
	ShardOf(key []byte) int
	// Route returns the layout the node routes by now.
	Route() *Route
	// Replica returns the node's replica of shard id, or nil (a nil
	// interface) if it holds none.
	Replica(id int) Replica
	// Health reports the hosted shards that know no leader, how many
	// replicas the node hosts and how many of them lead.
	Health() (leaderless []int, replicas, leaders int)
	// MemoryFull says, for a client, why shard id refused a write under
	// noeviction: which node's budget is reached.
	MemoryFull(id int) string

	// Status reports the node's replicas, and with all the whole cluster's
	// (asking every member) and whether it is ready.
	Status(ctx context.Context, all bool) *wispv1.StatusResponse
	// ShardMap describes the rings and the placement; LeaderId is left for
	// the API to fill in.
	ShardMap() *wispv1.ShardMapResponse
	// Settings sets the cluster settings given (nil: leave as is) and
	// returns those set and those in force on this node.
	Settings(ctx context.Context, maxMemoryBytes *int64, evictionPolicy *string) (set, effective *wispv1.ClusterConfig, err error)
	// DrainNode marks node id draining (or, with cancel, active again) and
	// RemoveNode forgets it; both return the cluster map's epoch after.
	DrainNode(ctx context.Context, id string, cancel bool) (uint64, error)
	RemoveNode(ctx context.Context, id string) (uint64, error)

	// The plugin lifecycle (PluginService).
	PluginNode
}

// Replica is one of the node's shard replicas, as the handlers use it.
type Replica interface {
	// Leader returns the shard's leader as this replica knows it, "" if
	// none.
	Leader() string
	// Propose replicates muts as one command and returns their results
	// and the time stamped into it, or the command's error (a refused
	// precondition, raftgroup.ErrNotLeader, ...).
	Propose(ctx context.Context, muts []engine.Mutation) ([]engine.MutationResult, int64, error)
	// Read runs fn on the replica's engine at the given level. A replica
	// that cannot serve it answers raftgroup.ErrNotLeader.
	Read(ctx context.Context, level raftgroup.Consistency, fn func(*engine.Engine)) error
	// NowUnixMs is the shard's clock: the time reads judge expiry by.
	NowUnixMs() int64
	// Trace records an access the replica served, for the node's access
	// trace (a no-op unless one is being recorded).
	Trace(op replay.Op, key []byte, size int)
}

// Route is the layout requests are routed by: one cluster map's.
// Immutable, like the map it was made from.
type Route struct {
	// Epoch is the map's epoch and EpochText the same in decimal, the
	// Wisp-Epoch header's value, made once rather than per response.
	Epoch     uint64
	EpochText string
	// Shards holds each shard's voters and preferred leader, by shard id.
	Shards []ring.ShardReplicas
	// URLs holds every member's API base URL, by node id.
	URLs map[string]string
}

// Options configure an API.
type Options struct {
	// Limits bound what a request may carry.
	Limits Limits
	// Peers holds the clients of the other nodes' APIs; the node shares it
	// (for its own calls to them). Required.
	Peers *Peers
	// Logger gets the errors no client sees. Default slog.Default().
	Logger *slog.Logger
	// Interceptors wrap every call (the node's request metrics).
	Interceptors []connect.Interceptor
	// OnForward, if set, is called for every request forwarded to another
	// node.
	OnForward func()
	// Metrics, if set, is served at GET /metrics.
	Metrics http.Handler
	// OperatorToken is the secret the operator actions (uploading and
	// activating plugins) need; without one they are refused.
	OperatorToken string
}

// API is the Connect API one node serves: wisp.v1.KVService and
// wisp.v1.ClusterService, gRPC reflection and health, /healthz and
// /readyz. Safe for concurrent use.
type API struct {
	node      Node
	limits    Limits
	peers     *Peers
	log       *slog.Logger
	onForward func()
	known     leaderCache // leaders of shards this node does not host
	handler   http.Handler
}

// New returns the API of node n.
func New(n Node, opts Options) *API {
	a := &API{node: n, limits: opts.Limits.withDefaults(), peers: opts.Peers, log: opts.Logger, onForward: opts.OnForward}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.onForward == nil {
		a.onForward = func() {}
	}
	a.known.init(n.Shards())
	a.handler = a.newHandler(opts)
	return a
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler { return a.handler }

func (a *API) newHandler(o Options) http.Handler {
	opts := connect.WithHandlerOptions(append([]connect.HandlerOption{
		// Gzip costs ~45µs of CPU per call; small messages go uncompressed.
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithReadMaxBytes(a.limits.MaxRequestBytes),
		connect.WithInterceptors(o.Interceptors...),
	}, strictJSONCodecs...)...)
	mux := http.NewServeMux()
	mux.Handle(wispv1connect.NewKVServiceHandler(&kvService{a}, opts))
	mux.Handle(wispv1connect.NewClusterServiceHandler(&clusterService{a}, opts))
	mux.Handle(wispv1connect.NewPluginServiceHandler(&pluginService{a}, opts,
		connect.WithInterceptors(a.operatorOnly(o.OperatorToken)),
		connect.WithReadMaxBytes(maxUploadBytes)))
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	a.handleGRPCTools(mux, connect.WithReadMaxBytes(4<<10))
	return a.limitBody(mux, int64(a.limits.MaxRequestBytes)+bodySlackBytes)
}

// bodySlackBytes is what a body may carry beyond MaxRequestBytes (framing).
const bodySlackBytes = 64 << 10

// compressMinBytes is the smallest response worth compressing.
const compressMinBytes = 4 << 10

// limitBody stops reading a request body past max bytes. Connect refuses an
// oversized message itself but then drains the rest to reuse the connection;
// with this bound it stops at max and net/http closes the connection instead.
// A body whose declared length is already over the request limit is refused
// before it is read, with a message that names the limits a user can change
// (Connect's own says only "message is larger than configured max").
func (a *API) limitBody(h http.Handler, max int64) http.Handler {
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wispv1connect.PluginServiceUploadPluginProcedure {
			// A module may be larger than a value (PluginService's own
			// read limit, maxUploadBytes, refuses a larger one).
			if r.ContentLength > maxUploadBytes && errw.IsSupported(r) {
				errw.Write(w, r, moduleTooLarge(r.ContentLength))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes+bodySlackBytes)
			h.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > int64(a.limits.MaxRequestBytes) && errw.IsSupported(r) {
			errw.Write(w, r, a.requestTooLarge(r.ContentLength))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		h.ServeHTTP(w, r)
	})
}

// maxUploadBytes bounds an UploadPlugin request: the largest module the
// plugin host takes, and room for the rest of the message.
const maxUploadBytes = plugins.DefaultModuleSizeBytesMax + 4<<10
