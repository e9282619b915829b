package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/balance"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/raftlog"
	"github.com/wisp-db/wisp/shards/ring"
	"github.com/wisp-db/wisp/shards/transport"
)

// Node is one running server: the replicas of the shards the placement puts
// on it, all over one Raft port and one shared log. Safe for concurrent use.
type Node struct {
	cfg  Config
	self Peer
	log  *slog.Logger

	// keys is the key ring (docs/ARCHITECTURE.md): keys to shards. Fixed.
	keys *ring.KeyRing
	// views holds the current view: members, placement, epoch.
	views atomic.Pointer[view]

	mux      *transport.Mux              // the node's one Raft port
	hub      *transport.Hub              // its groups' batched RPCs; nil with RaftNetPerGroup
	logs     *raftlog.Store              // the shared Raft log; nil with LogPerGroup
	reps     atomic.Pointer[replicaSet]  // the replicas the node hosts
	hostMu   sync.Mutex                  // serialises changes of reps after Open
	inflight int                         // MaxInflightPacks of the node's groups
	metaRep  atomic.Pointer[metaReplica] // this node's meta replica; nil if it hosts none (see reconcile)
	plugins  *pluginHost                 // the plugins the map activates; nil until startBackground
	trace    tracer                      // the access trace, when one is recorded
	boot     *meta.Command               // the command that bootstraps the cluster map
	ctl      *control                    // the control plane (ControlService)
	gossip   *membership.Membership      // nil without Config.GossipAddr
	idTaken  atomic.Pointer[error]       // set if gossip refused this node's id (membership.ErrIDTaken)
	driver   *driver
	memMu    sync.Mutex                      // serialises refreshMemory
	memSelf  atomic.Pointer[inForce]         // the node's memory and policy as last measured
	builtin  atomic.Pointer[eviction.Policy] // the built-in eviction policy in force, made once per name

	// bg owns the background loops (map watch, placement driver, gossip
	// join, control server): stop cancels them, Close waits for them.
	bg      sync.WaitGroup
	stop    context.CancelFunc
	closing atomic.Bool
	peers   *api.Peers // clients of the other nodes' APIs
	balance *balance.Balancer

	metrics *metrics
	api     *api.API

	mu     sync.Mutex
	server *http.Server // guarded by mu; set by Serve

	closeOnce sync.Once
	closeErr  error
}

// Open starts the node's replicas. Call Serve to accept requests. See
// OpenContext for a node that must find its cluster first.
func Open(cfg Config) (*Node, error) { return OpenContext(context.Background(), cfg) }

// OpenContext starts the node's replicas. A node with a cluster map in its
// data directory, or listed in Config.Peers, opens at once. Any other node
// first finds its cluster through gossip (Config.Join): it takes the map
// of a member that has one, or with Config.BootstrapExpect creates a new
// cluster with the nodes it meets; it waits for that until ctx ends.
func OpenContext(ctx context.Context, cfg Config) (*Node, error) {
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
	if cfg.KeyVnodes == 0 {
		cfg.KeyVnodes = ring.DefaultKeyVnodes
	}
	switch {
	case cfg.Shards < 0 || cfg.Shards > MaxShards:
		return nil, fmt.Errorf("node config: %d shards: need 1 to %d", cfg.Shards, MaxShards)
	case cfg.KeyVnodes < 1 || max(cfg.Shards, 1)*cfg.KeyVnodes > 1<<24:
		return nil, fmt.Errorf("node config: %d key vnodes per shard: need 1 to %d in all", cfg.KeyVnodes, 1<<24)
	case cfg.MaxMemoryBytes < 0:
		return nil, fmt.Errorf("node config: negative memory budget %d", cfg.MaxMemoryBytes)
	case cfg.BootstrapExpect < 0:
		return nil, fmt.Errorf("node config: bootstrap-expect %d", cfg.BootstrapExpect)
	}
	if _, err := eviction.New(cfg.EvictionPolicy); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	n := &Node{
		cfg:  cfg,
		self: self,
		log:  cfg.Logger.With("node", cfg.ID),
	}
	if cfg.DeadNodeTimeout <= 0 {
		n.cfg.DeadNodeTimeout = DefaultDeadNodeTimeout
	}
	n.reps.Store(&replicaSet{})
	if err := n.open(ctx); err != nil {
		n.stopBackground()
		n.closeReplicas(true)
		return nil, fmt.Errorf("node %s: %w", cfg.ID, err)
	}
	n.log.Debug("node open", "shards", n.cfg.Shards, "replicas", len(n.replicas().hosted), "raft", n.mux.Addr().String())
	return n, nil
}

// open does OpenContext's work: the Raft port and gossip, the first cluster
// map, the replicas, then the API and the background loops.
func (n *Node) open(ctx context.Context) error {
	saved, err := readMapFile(n.cfg.DataDir)
	if err != nil {
		return err
	}
	if n.mux, err = transport.Listen(n.self.RaftAddr, transport.WithLogger(n.log)); err != nil {
		return fmt.Errorf("raft port: %w", err)
	}
	if !n.cfg.RaftNetPerGroup {
		if n.hub, err = transport.NewHub(n.mux, raftgroup.TransportTimeout); err != nil {
			return fmt.Errorf("raft port: %w", err)
		}
	}
	bg, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	listed := slices.ContainsFunc(n.cfg.Peers, func(p Peer) bool { return p.ID == n.cfg.ID })
	if err := n.newControl(); err != nil {
		return err
	}
	if n.cfg.GossipAddr != "" {
		if err := n.startGossip(bg, saved != nil || listed); err != nil {
			return err
		}
	}
	// The first map: the saved one; or the one the static member list
	// makes; or the cluster's, found through gossip. A bootstrap map (epoch
	// 1) that names this node is the static case again, with the members
	// it lists.
	m := saved
	if m == nil && !listed {
		if n.gossip == nil || (len(n.cfg.Join) == 0 && n.cfg.BootstrapExpect == 0) {
			return errors.New("not in the member list (--peers), and no gossip address and --join seeds to find a cluster by")
		}
		found, err := n.discover(ctx)
		if err != nil {
			return err
		}
		nd, named := found.Node(n.cfg.ID)
		switch {
		case named && nd.RaftAddr != n.self.RaftAddr:
			return fmt.Errorf("node id %s is a member of the cluster with Raft address %s, not %s: give a new node an id of its own, or restart %s on its own data directory", n.cfg.ID, nd.RaftAddr, n.self.RaftAddr, n.cfg.ID)
		case named && found.Epoch == 1:
			n.cfg.Peers = peersOf(found)
			n.cfg.Shards, n.cfg.KeyVnodes = found.Shards, found.KeyVnodes
		default:
			m = found
		}
	}
	bootstrap := m == nil
	layoutPeers := n.cfg.Peers
	if bootstrap {
		if n.cfg.Shards == 0 {
			n.cfg.Shards = 1
		}
		if m, n.boot, err = staticMap(n.cfg); err != nil {
			return err
		}
	} else {
		if n.cfg.Shards == 0 {
			n.cfg.Shards, n.cfg.KeyVnodes = m.Shards, m.KeyVnodes
		}
		if m.Epoch == 1 {
			n.boot = bootstrapCommandOf(m)
		}
		layoutPeers = nil // the map decides
	}
	if m.Shards != n.cfg.Shards || m.KeyVnodes != n.cfg.KeyVnodes {
		return fmt.Errorf("the cluster has %d shards and %d key vnodes, not the %d and %d given: both are fixed when a cluster is created (leave --shards and --key-vnodes out to take the cluster's)", m.Shards, m.KeyVnodes, n.cfg.Shards, n.cfg.KeyVnodes)
	}
	if err := checkLayout(n.cfg.DataDir, n.cfg.Shards, n.cfg.KeyVnodes, layoutPeers); err != nil {
		return err
	}
	n.keys = ring.NewKeyRing(n.cfg.Shards, n.cfg.KeyVnodes)
	n.reps.Store(&replicaSet{byShard: make([]*shard, n.cfg.Shards)})
	if err := n.openReplicas(m, bootstrap); err != nil {
		return err
	}
	if saved == nil {
		if err := writeMapFile(n.cfg.DataDir, m); err != nil {
			return err
		}
	}
	n.peers = api.NewPeers(n.cfg.ID)
	n.metrics = newMetrics(n.cfg.Registerer, n.cfg.ID, n)
	for _, sh := range n.replicas().hosted {
		sh.startReclaim(n)
	}
	n.balance = balance.Start(balanceNode{n}, n.cfg.BalanceInterval, n.log)
	n.api = api.New(n, api.Options{
		Limits:       n.cfg.Limits,
		Peers:        n.peers,
		Logger:       n.log,
		Interceptors: []connect.Interceptor{n.metrics.interceptor()},
		OnForward:    n.metrics.forwarded.Inc,
		Metrics:      n.metrics.handler,

		OperatorToken: n.cfg.OperatorToken,
	})
	plugins, err := n.newPluginHost(bg)
	if err != nil {
		return err
	}
	n.plugins = plugins
	n.startBackground(bg)
	return nil
}

// openReplicas opens the shared log and the replicas the node hosts: every
// replica folder in its data directory, and when bootstrapping (the first
// start of a node of a new cluster) the replicas map m gives it, with their
// groups' first configurations, and the meta group's if it is one of its
// first voters.
func (n *Node) openReplicas(m *meta.Map, bootstrap bool) error {
	v, err := viewOf(m)
	if err != nil {
		return err
	}
	n.views.Store(v)
	hosting := 0
	for _, l := range v.place.Nodes {
		if l.ID == n.cfg.ID {
			hosting = l.Replicas
		}
	}
	if !n.cfg.LogPerGroup {
		opts := []raftlog.Option{raftlog.WithNoSync(n.cfg.NoSync)}
		if hosting > 1 {
			// Many groups write at once: hold each commit open briefly so
			// their appends share its fsyncs (docs/BENCHMARKS.md, Sharding).
			opts = append(opts, raftlog.WithCommitWait(commitWaitMax, commitWaitGap, hosting))
		}
		n.logs, err = raftlog.Open(filepath.Join(n.cfg.DataDir, "raft-log.db"), opts...)
		if err != nil {
			return err
		}
	}
	if hosting > 1 {
		// Each group sees a share of the clients: one pack in flight at a
		// time makes the others wait and pack into the next entry.
		n.inflight = 1
	}
	deferElection := func(s int) bool {
		sr := v.place.Shards[s]
		return len(sr.Replicas) > 1 && sr.Leader != "" && sr.Leader != n.cfg.ID
	}
	if bootstrap {
		for s := range m.Replicas {
			if !hostsShard(m, n.cfg.ID, s) {
				continue
			}
			var voters []raftgroup.Peer
			for _, r := range m.Replicas[s] {
				voters = append(voters, raftgroup.Peer{ID: r.Node, Addr: v.peers[r.Node].RaftAddr})
			}
			// The preferred leader stands for election first.
			if err := n.openShard(s, voters, deferElection(s)); err != nil {
				return err
			}
		}
		if peers := metaPeers(n.cfg); slices.ContainsFunc(peers, func(p raftgroup.Peer) bool { return p.ID == n.cfg.ID }) {
			if err := n.openMeta(peers); err != nil {
				return err
			}
		}
	}
	dirs, err := n.shardDirs()
	if err != nil {
		return err
	}
	for _, s := range dirs {
		if n.replicas().byShard[s] == nil {
			if err := n.openShard(s, nil, deferElection(s)); err != nil {
				return err
			}
		}
	}
	if n.metaGroup() == nil && fileExists(n.metaDir()) {
		if err := n.openMeta(nil); err != nil {
			return err
		}
	}
	return nil
}

// startBackground serves the control plane and starts the memory loop
// (which also tells gossip, started before, that the node has a cluster
// map), the map watcher and the placement driver, owned by ctx's cancel
// (n.stop) and n.bg.
func (n *Node) startBackground(ctx context.Context) {
	n.serveControl()
	n.bg.Add(4)
	go func() {
		defer n.bg.Done()
		n.plugins.run(ctx)
	}()
	go func() {
		defer n.bg.Done()
		n.runMemory(ctx)
	}()
	go func() {
		defer n.bg.Done()
		n.watchMaps(ctx)
	}()
	n.driver = &driver{n: n, downSince: map[string]time.Time{}, refused: map[string]time.Time{}}
	go func() {
		defer n.bg.Done()
		n.runDriver(ctx, n.driver)
	}()
}

// Leave tells the other members through gossip that this node is stopping,
// so that they record it left rather than failed: no suspicion period, and
// status says "left". Call it before Close for a planned stop of one node;
// its replicas are rebuilt elsewhere only after the dead-node timeout, as
// for a failure, so a restart within it rejoins. Nodes that stop together
// (`wispd dev`) need not. It waits for the word to go out, until ctx ends.
func (n *Node) Leave(ctx context.Context) error {
	if n.gossip == nil {
		return nil
	}
	if err := n.gossip.Leave(ctx); err != nil {
		return fmt.Errorf("node %s: leave: %w", n.cfg.ID, err)
	}
	return nil
}

// stopBackground stops what startBackground started and waits for it.
func (n *Node) stopBackground() {
	n.closing.Store(true)
	if n.stop != nil {
		n.stop()
	}
	if n.gossip != nil {
		n.gossip.Close()
	}
	if n.ctl != nil {
		n.ctl.close()
	}
	n.hostMu.Lock() // wait for a reconcile in flight
	n.hostMu.Unlock()
	n.bg.Wait()
}

// The shared log's group-commit window on a node hosting several groups:
// see raftlog.WithCommitWait.
const (
	commitWaitMax = time.Millisecond
	commitWaitGap = 200 * time.Microsecond
)

// closeReplicas stops every replica (killing them, or closing them with a
// leadership hand-off), then the Raft port and the shared log.
func (n *Node) closeReplicas(kill bool) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, sh := range n.replicas().hosted {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sh.close(kill); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("shard %d: %w", sh.id, err))
				mu.Unlock()
			}
		}()
	}
	if mr := n.metaGroup(); mr != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			close := mr.group.Close
			if kill {
				close = mr.group.Kill
			}
			if err := close(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("meta group: %w", err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n.hub != nil {
		if err := n.hub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft hub: %w", err))
		}
	}
	if n.mux != nil {
		if err := n.mux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft port: %w", err))
		}
	}
	if n.logs != nil {
		if err := n.logs.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// DataDir returns the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// URL returns the node's API base URL.
func (n *Node) URL() string { return n.self.URL }

// Shards is the cluster's shard count.
func (n *Node) Shards() int { return n.cfg.Shards }

// Shard returns the node's replica of shard id, nil if it holds none.
func (n *Node) Shard(id int) *raftgroup.Group {
	if id < 0 || id >= len(n.replicas().byShard) || n.replicas().byShard[id] == nil {
		return nil
	}
	return n.replicas().byShard[id].group
}

// Meta returns the node's replica of the meta group (the cluster map's
// group), nil if it holds none.
func (n *Node) Meta() *raftgroup.Group {
	if mr := n.metaGroup(); mr != nil {
		return mr.group
	}
	return nil
}

// ShardOf returns the shard that owns key.
func (n *Node) ShardOf(key []byte) int { return n.keys.Shard(key) }

// Epoch returns the epoch of the cluster map the node routes by.
func (n *Node) Epoch() uint64 { return n.view().epoch }

// ClusterMap returns the cluster map the node routes by. It is shared:
// callers must not modify it.
func (n *Node) ClusterMap() *meta.Map { return n.view().m }

// Placement returns where the shards' replicas live.
func (n *Node) Placement() ring.Placement { return n.view().place }

// Handler returns the node's HTTP handler (shards/api): the Connect
// services (with gRPC reflection and health), /healthz, /readyz and, when
// the node keeps its own registry (Config.Registerer nil), GET /metrics
// (MetricsHandler).
func (n *Node) Handler() http.Handler { return n.api.Handler() }

// Route returns the layout the node routes by (api.Node).
func (n *Node) Route() *api.Route { return n.view().route }

// Replica returns the node's replica of shard id, nil if it holds none
// (api.Node).
func (n *Node) Replica(id int) api.Replica {
	if sh := n.replicas().byShard[id]; sh != nil {
		return sh
	}
	return nil
}

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
		h = n.Handler()
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
// hands leaderships away and stops the replicas. Safe to call twice.
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
		n.balance.Close()
		n.stopBackground()
		if err := n.closeReplicas(false); err != nil {
			errs = append(errs, err)
		}
		n.peers.Close()
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
		n.balance.Close()
		n.stopBackground()
		err = n.closeReplicas(true)
		n.peers.Close()
		n.metrics.unregister()
	})
	return err
}
