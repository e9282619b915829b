package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine/eviction"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
	"github.com/wisp-db/wisp/shards/ring"
)

// shardID is the only shard until the keyspace is sharded.
const shardID = 0

// Node is one running server. Safe for concurrent use.
type Node struct {
	cfg     Config
	self    Peer
	limits  Limits
	log     *slog.Logger
	group   *raftgroup.Group
	peers   map[string]Peer // by id; read-only after Open
	fwd     *forwarder
	metrics *metrics
	handler http.Handler
	reclaim *reclaim.Reclaimer

	settingsCache settingsCache

	mu     sync.Mutex
	server *http.Server // guarded by mu; set by Serve

	closeOnce sync.Once
	closeErr  error
}

// Open starts the node's replicas. Call Serve to accept requests.
func Open(cfg Config) (*Node, error) {
	self, err := cfg.self()
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EvictionPolicy == "" {
		cfg.EvictionPolicy = DefaultEvictionPolicy
	}
	if _, err := eviction.New(cfg.EvictionPolicy); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if cfg.MaxMemoryBytes < 0 {
		return nil, fmt.Errorf("node config: negative memory budget %d", cfg.MaxMemoryBytes)
	}
	n := &Node{
		cfg:    cfg,
		self:   self,
		limits: cfg.Limits.withDefaults(),
		log:    cfg.Logger.With("node", cfg.ID),
		peers:  make(map[string]Peer, len(cfg.Peers)),
	}
	var voters []raftgroup.Peer
	for _, p := range cfg.Peers {
		n.peers[p.ID] = p
		voters = append(voters, raftgroup.Peer{ID: p.ID, Addr: p.RaftAddr})
	}
	n.group, err = raftgroup.Open(raftgroup.Config{
		NodeID:   cfg.ID,
		Dir:      filepath.Join(cfg.DataDir, fmt.Sprintf("shard-%d", shardID)),
		RaftAddr: self.RaftAddr,
		Peers:    voters,
		Logger:   cfg.Logger,
		Now:      cfg.Now,
		Timing:   cfg.Timing,
		NoSync:   cfg.NoSync,
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.ID, err)
	}
	n.fwd = newForwarder(cfg.ID)
	n.metrics = newMetrics(cfg.Registerer, cfg.ID, n.group, n.settings)
	n.reclaim = reclaim.Start(reclaim.Config{
		Group: n.group, Settings: n.settings, Interval: cfg.ReclaimInterval,
		Now:    func() time.Time { return time.UnixMilli(n.group.NowUnixMs()) },
		Logger: n.log, Registerer: n.metrics.reg,
	})
	n.handler = n.newHandler()
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// URL returns the node's API base URL.
func (n *Node) URL() string { return n.self.URL }

// Group returns the node's replica (tests inspect it).
func (n *Node) Group() *raftgroup.Group { return n.group }

// Handler returns the node's HTTP handler: the Connect services, /healthz
// and, if a Registerer was given, nothing else (metrics are served by the
// process, see cmd/wispd).
func (n *Node) Handler() http.Handler { return n.handler }

func (n *Node) newHandler() http.Handler {
	opts := connect.WithHandlerOptions(
		// Gzip costs ~45µs of CPU per call; small messages go uncompressed.
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithReadMaxBytes(n.limits.MaxRequestBytes),
		connect.WithInterceptors(n.metrics.interceptor()),
	)
	mux := http.NewServeMux()
	mux.Handle(wispv1connect.NewKVServiceHandler(&kvService{n}, opts))
	mux.Handle(wispv1connect.NewClusterServiceHandler(&clusterService{n}, opts))
	mux.HandleFunc("GET /healthz", n.healthz)
	return limitBody(mux, int64(n.limits.MaxRequestBytes)+bodySlackBytes)
}

// bodySlackBytes is what a body may carry beyond MaxRequestBytes (framing).
const bodySlackBytes = 64 << 10

// limitBody stops reading a request body past max bytes. Connect refuses an
// oversized message itself but then drains the rest to reuse the connection;
// with this bound it stops at max and net/http closes the connection instead.
func limitBody(h http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, max)
		h.ServeHTTP(w, r)
	})
}

// compressMinBytes is the smallest response worth compressing.
const compressMinBytes = 4 << 10

// NewHTTPServer returns a server for h that speaks HTTP/1.1 and HTTP/2
// cleartext (h2c) on one port, as Connect, gRPC and gRPC-Web clients need.
func NewHTTPServer(h http.Handler) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve accepts API requests on lis until Close. It returns nil after Close.
func (n *Node) Serve(lis net.Listener, h http.Handler) error {
	if h == nil {
		h = n.handler
	}
	srv := NewHTTPServer(h)
	n.mu.Lock()
	if n.server != nil {
		n.mu.Unlock()
		return errors.New("node: Serve called twice")
	}
	n.server = srv
	n.mu.Unlock()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("node %s: serve: %w", n.cfg.ID, err)
	}
	return nil
}

// shutdownTimeout bounds the graceful HTTP shutdown.
const shutdownTimeout = 5 * time.Second

// Close stops serving (letting in-flight requests finish, up to a bound),
// hands leadership away and stops the replicas. Safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.mu.Lock()
		srv := n.server
		n.mu.Unlock()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
			cancel()
		}
		n.reclaim.Close()
		if err := n.group.Close(); err != nil {
			errs = append(errs, err)
		}
		n.fwd.close()
		n.metrics.unregister()
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("node %s: close: %w", n.cfg.ID, err)
		}
	})
	return n.closeErr
}

// Kill stops the node abruptly, as a crash would look to its peers: no
// graceful HTTP shutdown, no leadership hand-off. Durable state is kept.
// Tests use it to inject failures.
func (n *Node) Kill() error {
	var err error
	n.closeOnce.Do(func() {
		n.mu.Lock()
		if n.server != nil {
			n.server.Close()
		}
		n.mu.Unlock()
		n.reclaim.Close()
		err = n.group.Kill()
		n.fwd.close()
		n.metrics.unregister()
	})
	return err
}

func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	leader, _ := n.group.Leader()
	if leader == "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"no leader","node":%q}`+"\n", n.cfg.ID)
		return
	}
	fmt.Fprintf(w, `{"status":"ok","node":%q,"leader":%q}`+"\n", n.cfg.ID, leader)
}

func (n *Node) shardMap() *wispv1.ShardMapResponse {
	m := &wispv1.ShardMapResponse{ShardCount: 1, KeyVnodes: ring.DefaultKeyVnodes, ReplicationFactor: uint32(len(n.peers))}
	sh := &wispv1.ShardPlacement{Id: 0}
	sh.LeaderId, _ = n.group.Leader()
	for _, p := range n.cfg.Peers {
		m.Nodes = append(m.Nodes, &wispv1.ShardMapNode{Id: p.ID, Url: p.URL})
		sh.Replicas = append(sh.Replicas, p.ID)
	}
	m.Shards = []*wispv1.ShardPlacement{sh}
	return m
}
