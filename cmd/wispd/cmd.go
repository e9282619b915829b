package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/access"
	"github.com/wisp-db/wisp/buildinfo"
	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/ring"
)

// serverFlags are shared by `dev` and `start`.
type serverFlags struct {
	dataDir       string
	httpAddr      string
	raftAddr      string
	maxKeyBytes   int
	maxValueBytes int
	logLevel      string
	logFormat     string
	maxMemory     string
	policy        string
	shards        int
	keyVnodes     int
	logPerGroup   bool
	netPerGroup   bool
	procs         int
	pprof         bool
	corsOrigins   []string
	allowedHosts  []string
	gossipAddr    string
	join          []string
	deadAfter     time.Duration
	maxMoves      int
	gossipKeyFile string

	operatorToken     string
	operatorTokenFile string
	dev               bool // wispd dev: a missing operator token is made
}

// gossipPortOffset: unless --gossip-addr says otherwise, a node gossips on
// its Raft host at its Raft port + gossipPortOffset.
const gossipPortOffset = 100

// devRaftOffset is how far below the API port `wispd dev` puts the Raft
// port when --raft-addr is not given: 8080 → 7080.
const devRaftOffset = 1000

// gossipAddrOf is the gossip address derived from a Raft address.
func gossipAddrOf(raftAddr string) (string, error) {
	host, port, err := splitHostPort(raftAddr, "raft address")
	if err != nil {
		return "", err
	}
	if port+gossipPortOffset > 65535 {
		return "", fmt.Errorf("raft address %s: port too high to derive a gossip port (+%d): set --gossip-addr", raftAddr, gossipPortOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+gossipPortOffset)), nil
}

func (f *serverFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "./wisp-data", "directory for Raft logs and snapshots")
	fl.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "API, /metrics and /healthz address (host:port)")
	fl.IntVar(&f.maxKeyBytes, "max-key-bytes", api.DefaultMaxKeyBytes, "largest key accepted, in bytes")
	fl.IntVar(&f.maxValueBytes, "max-value-bytes", api.DefaultMaxValueBytes, "largest value accepted, in bytes")
	fl.StringVar(&f.maxMemory, "max-memory", "0", "memory budget for data on each node, such as 512MiB (0: no limit); a cluster-wide setting (wisp config set) overrides it")
	fl.StringVar(&f.policy, "eviction-policy", node.DefaultEvictionPolicy, "what to do past --max-memory: noeviction (writes fail), allkeys-lru, allkeys-lfu, volatile-lru, volatile-lfu, volatile-ttl, allkeys-random, volatile-random")
	fl.IntVar(&f.shards, "shards", defaultShards, "number of shards (Raft groups) the keyspace is split into; fixed when the cluster is created")
	fl.IntVar(&f.keyVnodes, "key-vnodes", ring.DefaultKeyVnodes, "key-ring tokens per shard (max/mean keys per shard 1.04 at 1024, 1.28 at 128); fixed when the cluster is created")
	fl.BoolVar(&f.logPerGroup, "log-per-group", false, "give every Raft group its own raft-boltdb log file instead of the node's shared log (the benchmark baseline)")
	_ = fl.MarkHidden("log-per-group")
	fl.BoolVar(&f.netPerGroup, "raft-net-per-group", false, "send every Raft group's RPCs over its own connections instead of the node's batched hub (the benchmark baseline; every node must agree)")
	_ = fl.MarkHidden("raft-net-per-group")
	fl.IntVar(&f.procs, "gomaxprocs", 0, "Go's GOMAXPROCS (0: the GOMAXPROCS environment variable if set, else twice the CPUs Go sees: a Raft log fsync holds a Go processor while it blocks)")
	fl.BoolVar(&f.pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on every node's API port (for diagnosis; off by default)")
	fl.StringSliceVar(&f.corsOrigins, "cors-origin", nil, "an origin (scheme://host[:port]) whose web pages may call the API, repeatable; * allows any page on the web (default: none; the console is same-origin and needs none)")
	fl.StringSliceVar(&f.allowedHosts, "allowed-hosts", nil, "Host header names accepted on a loopback --http-addr besides localhost, loopback IPs and the listen address, comma-separated or repeated; * turns the check off (it guards against DNS rebinding)")
	fl.IntVar(&f.maxMoves, "max-concurrent-moves", 0, "most shards re-replicated or moved at once (0: 2)")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "`path` of the gossip encryption key: the base64 of 16, 24 or 32 random bytes (make one with wispd keygen), readable by its owner only (chmod 600), the same file on every node (default: gossip unencrypted; the Raft and API ports stay unencrypted either way)")
	fl.StringVar(&f.operatorToken, "operator-token", "", "the secret operator actions (uploading and activating plugins) need; prefer --operator-token-file, which ps does not show (default: none, and those actions are refused; `wispd dev` makes one)")
	fl.StringVar(&f.operatorTokenFile, "operator-token-file", "", "`path` of a file holding the operator token (at least 16 bytes), readable by its owner only (chmod 600)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
}

// gossipKey reads --gossip-key-file; nil without it.
func (f *serverFlags) gossipKey() ([]byte, error) {
	if f.gossipKeyFile == "" {
		return nil, nil
	}
	key, err := membership.ReadKeyFile(f.gossipKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	return key, nil
}

// logger returns the process's logger and the switch that quiets Raft's
// complaints once the process is stopping (see stopQuiet).
func (f *serverFlags) logger() (*slog.Logger, *stopQuiet, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: %w", f.logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f.logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	q := &stopQuiet{next: h, stopping: new(atomic.Bool)}
	return slog.New(q), q, nil
}

// stopQuiet is a slog.Handler that, once the process is stopping, logs
// Raft's warnings and errors at DEBUG. When the nodes of a process stop,
// their groups' peers vanish one by one and hashicorp/raft reports every
// failed heartbeat and append to them (~160 ERROR lines for a 3-node,
// 8-shard dev cluster): expected, and they would bury a real error.
type stopQuiet struct {
	next     slog.Handler
	stopping *atomic.Bool // shared with the handlers WithAttrs and WithGroup make
}

func (q *stopQuiet) stop() { q.stopping.Store(true) }

func (q *stopQuiet) Enabled(ctx context.Context, l slog.Level) bool { return q.next.Enabled(ctx, l) }

func (q *stopQuiet) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && q.stopping.Load() {
		raft := false
		r.Attrs(func(a slog.Attr) bool {
			raft = a.Key == "component" && a.Value.String() == "raft"
			return !raft
		})
		if raft {
			if !q.next.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
			r.Level = slog.LevelDebug
		}
	}
	return q.next.Handle(ctx, r)
}

func (q *stopQuiet) WithAttrs(as []slog.Attr) slog.Handler {
	return &stopQuiet{next: q.next.WithAttrs(as), stopping: q.stopping}
}

func (q *stopQuiet) WithGroup(name string) slog.Handler {
	return &stopQuiet{next: q.next.WithGroup(name), stopping: q.stopping}
}

// access returns the browser access policy. The hosts of the peers' URLs
// are accepted too: nodes forward requests to each other by them.
func (f *serverFlags) access(peers []node.Peer) (access.Policy, error) {
	for _, o := range f.corsOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return access.Policy{}, fmt.Errorf("--cors-origin %q: want an origin such as http://localhost:5173, or *", o)
		}
	}
	hosts := slices.Clone(f.allowedHosts)
	for _, p := range peers {
		if u, err := url.Parse(p.URL); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
	}
	return access.Policy{CORSOrigins: f.corsOrigins, AllowedHosts: hosts}, nil
}

func (f *serverFlags) memory() (int64, error) {
	n, err := humanize.ParseBytes(f.maxMemory)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("--max-memory %q: want a size such as 512MiB, 2GB or 0", f.maxMemory)
	}
	return int64(n), nil
}

// setProcs sets GOMAXPROCS to n, or if n is 0 and the environment does not
// set it, to twice what Go chose (the CPUs it may use). Why: a goroutine in
// a blocking system call keeps its P (Go processor) until the runtime's
// monitor takes it back, which can wait up to 10 ms while another P is
// idle, and the Raft log's fdatasync blocks ~0.2-1 ms hundreds of times a
// second; with as many Ps as cores the node then runs on fewer than its
// cores. Measured on the 3-node dev cluster, 2 cores (docs/BENCHMARKS.md,
// "Sharding, continued"): 4 Ps against 2 gave +39 to +52 % puts/s at 16
// shards; at 1 shard and for linearizable gets the difference changed sign
// from run to run (noise); 8 Ps cost 16-shard gets a third. It returns the
// value in force.
func setProcs(n int) int {
	if n == 0 {
		if os.Getenv("GOMAXPROCS") != "" { // Go applied it at start
			return runtime.GOMAXPROCS(0)
		}
		n = 2 * runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(n)
	return n
}

// defaultShards is the shard count of a new cluster: enough groups that
// leaders spread over up to 8 nodes and replicas over more, few enough that
// each group's Raft entries stay well packed. Measured on the 3-node dev
// cluster (docs/BENCHMARKS.md, "Sharding"), 8 beat 16 on every figure: 64-
// client puts 5,103/s against 4,394, linearizable gets 14,350/s against
// 13,037, idle CPU 5.6 % of a core against 9.4 %.
const defaultShards = 8

func (f *serverFlags) limits() (api.Limits, error) {
	if f.maxKeyBytes <= 0 || f.maxValueBytes <= 0 {
		return api.Limits{}, errors.New("--max-key-bytes and --max-value-bytes must be positive")
	}
	return api.Limits{MaxKeyBytes: f.maxKeyBytes, MaxValueBytes: f.maxValueBytes}, nil
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "wispd",
		Short:         "Wisp server: a replicated, programmable key-value store",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDevCmd(), newStartCmd(), newKeygenCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the server's version (module version, VCS revision, Go version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(info)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "wispd", info)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// keygenSizeBytes is the size of the keys `wispd keygen` makes: AES-256.
const keygenSizeBytes = 32

func newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip encryption key for --gossip-key-file",
		Long: `keygen prints a new random key (32 bytes from crypto/rand, base64) for
--gossip-key-file. Write it to a file only you can read, and give every node
of the cluster a copy:

  (umask 077; wispd keygen > gossip.key)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := make([]byte, keygenSizeBytes)
			rand.Read(key) // never fails (crypto/rand)
			_, err := fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(key))
			return err
		},
	}
}

func newDevCmd() *cobra.Command {
	var (
		f     serverFlags
		nodes int
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster in one process (nodes on consecutive ports)",
		Long: `dev starts --nodes nodes (default 3) in this process on loopback. Node i
(n1, n2, ...) serves the API on --http-addr's port + i-1, Raft on --raft-addr's
port + i-1 (default: --http-addr's port - 1000, so two dev clusters side by
side need only their own --http-addr and --data-dir, such as 127.0.0.1:8090),
and keeps its data in --data-dir/n<i>. The keyspace is split into
--shards shards, each replicated on 3 of the nodes. Restarting on the same
--data-dir recovers every acknowledged write; with a larger --nodes the new
nodes join, and with a smaller one the nodes past it are drained (their
replicas move to the others), removed from the cluster and their data
deleted. --gossip-key-file encrypts the
nodes' gossip (see wispd keygen).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.dev = true
			if nodes < 1 {
				return errors.New("--nodes must be at least 1")
			}
			httpHost, httpPort, err := splitHostPort(f.httpAddr, "--http-addr")
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("raft-addr") {
				if httpPort <= devRaftOffset {
					return fmt.Errorf("--http-addr %s: port too low to derive the Raft port (-%d): set --raft-addr", f.httpAddr, devRaftOffset)
				}
				f.raftAddr = net.JoinHostPort(httpHost, strconv.Itoa(httpPort-devRaftOffset))
			}
			raftHost, raftPort, err := splitHostPort(f.raftAddr, "--raft-addr")
			if err != nil {
				return err
			}
			gossipAddr := f.gossipAddr
			if gossipAddr == "" {
				if gossipAddr, err = gossipAddrOf(net.JoinHostPort(raftHost, strconv.Itoa(raftPort))); err != nil {
					return err
				}
			}
			gossipHost, gossipPort, err := splitHostPort(gossipAddr, "--gossip-addr")
			if err != nil {
				return err
			}
			// Nodes of the data directory past --nodes start too, and are
			// then retired (retire.go).
			all := nodes
			for fileExists(filepath.Join(f.dataDir, fmt.Sprintf("n%d", all+1), "cluster-map.json")) {
				all++
			}
			var peers []node.Peer
			f.join = nil
			for i := range all {
				peers = append(peers, node.Peer{
					ID:       fmt.Sprintf("n%d", i+1),
					URL:      "http://" + net.JoinHostPort(httpHost, strconv.Itoa(httpPort+i)),
					RaftAddr: net.JoinHostPort(raftHost, strconv.Itoa(raftPort+i)),
				})
				f.join = append(f.join, net.JoinHostPort(gossipHost, strconv.Itoa(gossipPort+i)))
			}
			// A data directory made with fewer nodes: its nodes keep their
			// cluster map, the new ones join the cluster (the placement
			// driver moves replicas onto them) instead of creating one.
			grown := false
			for _, p := range peers {
				grown = grown || node.HasClusterMap(filepath.Join(f.dataDir, p.ID))
			}
			var local []member
			for i, p := range peers {
				m := member{self: p, peers: peers, gossip: f.join[i]}
				if grown && !node.HasClusterMap(filepath.Join(f.dataDir, p.ID)) {
					m.peers = nil
				}
				m.retire = i >= nodes
				local = append(local, m)
			}
			err = run(cmd.Context(), &f, local)
			if mc, ok := errors.AsType[*node.MembersChangedError](err); ok {
				return fmt.Errorf("%w\n(the data directory was made by `wispd dev --nodes %d`: start with --nodes %d, or use another --data-dir)", err, len(mc.Created), len(mc.Created))
			}
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&nodes, "nodes", 3, "number of nodes")
	cmd.Flags().StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7080", "first node's Raft transport address (host:port; default: --http-addr's port - 1000)")
	cmd.Flags().StringVar(&f.gossipAddr, "gossip-addr", "", "first node's gossip address, UDP and TCP (host:port; default: --raft-addr's port + 100)")
	cmd.Flags().DurationVar(&f.deadAfter, "dead-node-timeout", 5*time.Second, "how long a node must be gone before its replicas are rebuilt on the others")
	return cmd
}

func newStartCmd() *cobra.Command {
	var (
		f      serverFlags
		nodeID string
		peers  string
		apiURL string
		zone   string
		expect int
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run one node of a cluster",
		Long: `start runs one node. Nodes find each other and detect failures by gossip,
on --gossip-addr (default: the Raft port + 100). A new cluster is created in
one of two ways:

  --bootstrap-expect N: start N nodes with it, each given --join with the
  gossip address of another (any one will do); once the N have met, they
  create the cluster together.

  --peers: every node of the new cluster is started with the same list of
  all of them, as id=URL@raft-host:port separated by commas, for example
    n1=http://10.0.0.1:8080@10.0.0.1:7080,n2=http://10.0.0.2:8080@10.0.0.2:7080,...
  and --join defaults to every peer's Raft port + 100.

A node started later with only --join (and its own --node-id, --http-addr and
--raft-addr) joins the running cluster: replicas move onto it. When a node is
gone for --dead-node-timeout, its replicas are rebuilt on the others. A node
restarted on its --data-dir rejoins with the cluster map it kept there.

--gossip-key-file encrypts and authenticates gossip: give every node the
same key file (make one with wispd keygen); a node with another key or none
is not admitted. It covers gossip only, not the Raft or API ports.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := membership.ValidateID(nodeID); err != nil {
				return fmt.Errorf("--node-id: %w", err)
			}
			var all []node.Peer
			self := node.Peer{ID: nodeID}
			if peers != "" {
				var err error
				if all, err = parsePeers(peers); err != nil {
					return err
				}
				i := slices.IndexFunc(all, func(p node.Peer) bool { return p.ID == nodeID })
				if i < 0 {
					return fmt.Errorf("--node-id %q is not in --peers", nodeID)
				}
				self = all[i]
				if zone != "" {
					return errors.New("--zone needs --join or --bootstrap-expect: every node computes a --peers cluster's map from the list, which has no zones")
				}
				if f.raftAddr != "" && f.raftAddr != self.RaftAddr {
					return fmt.Errorf("--raft-addr %s differs from this node's --peers entry (%s)", f.raftAddr, self.RaftAddr)
				}
			} else {
				if f.raftAddr == "" {
					return errors.New("--raft-addr is required without --peers")
				}
				if _, _, err := splitHostPort(f.raftAddr, "--raft-addr"); err != nil {
					return err
				}
				if err := membership.ValidateZone(zone); err != nil {
					return fmt.Errorf("--zone: %w", err)
				}
				self.RaftAddr, self.Zone = f.raftAddr, zone
				self.URL = apiURL
				if self.URL == "" {
					host, _, err := splitHostPort(f.httpAddr, "--http-addr")
					if err != nil {
						return err
					}
					if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
						return fmt.Errorf("--http-addr %s listens on every interface: give --api-url, the URL the other nodes reach this one at", f.httpAddr)
					}
					self.URL = "http://" + f.httpAddr
				}
			}
			if expect < 0 {
				return fmt.Errorf("--bootstrap-expect %d: want 0 (join only) or more", expect)
			}
			if expect > 0 && peers != "" {
				return errors.New("--bootstrap-expect and --peers are two ways to create a cluster: give one")
			}
			// The node's data lives in --data-dir itself. Before, it went to
			// --data-dir/<node-id>: keep using such a directory if it exists.
			if old := filepath.Join(f.dataDir, nodeID); fileExists(filepath.Join(old, "cluster.json")) && !fileExists(filepath.Join(f.dataDir, "cluster.json")) {
				f.dataDir = old
			}
			var err error
			if f.gossipAddr == "" {
				if f.gossipAddr, err = gossipAddrOf(self.RaftAddr); err != nil {
					return err
				}
			}
			if len(f.join) == 0 {
				for _, p := range all {
					g, err := gossipAddrOf(p.RaftAddr)
					if err != nil {
						return err
					}
					f.join = append(f.join, g)
				}
			}
			if len(all) == 0 && len(f.join) == 0 && expect == 0 && !node.HasClusterMap(f.dataDir) {
				return errors.New("--join is required: the gossip address of a node of the cluster to join (or, to create one, --bootstrap-expect)")
			}
			if !cmd.Flags().Changed("shards") && all == nil {
				f.shards = 0 // a joining node takes the cluster's; a bootstrapping one the default
				if expect > 0 {
					f.shards = defaultShards
				}
			}
			return run(cmd.Context(), &f, []member{{self: self, peers: all, gossip: f.gossipAddr, expect: expect}})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.raftAddr, "raft-addr", "", "Raft transport address (host:port); with --peers, this node's entry gives it")
	cmd.Flags().StringVar(&zone, "zone", "", "this node's failure zone (such as a rack or availability zone): a shard's replicas go to distinct zones when there are enough (letters, digits, '.', '_', '-'; not with --peers)")
	cmd.Flags().StringVar(&apiURL, "api-url", "", "URL the other nodes and clients reach this node's API at (default: http:// and --http-addr)")
	cmd.Flags().StringVar(&f.gossipAddr, "gossip-addr", "", "gossip address, UDP and TCP (host:port; default: this node's Raft port + 100)")
	cmd.Flags().StringSliceVar(&f.join, "join", nil, "gossip address of a member of the cluster, repeatable (default with --peers: every peer's Raft port + 100)")
	cmd.Flags().IntVar(&expect, "bootstrap-expect", 0, "create a new cluster once this many nodes started with it have met through gossip (0: join a cluster that exists)")
	cmd.Flags().DurationVar(&f.deadAfter, "dead-node-timeout", node.DefaultDeadNodeTimeout, "how long a node must be gone before its replicas are rebuilt on the others")
	cmd.Flags().StringVar(&nodeID, "node-id", "", "this node's id (required): letters, digits, '.', '_' and '-'")
	cmd.Flags().StringVar(&peers, "peers", "", "the members of a new cluster: id=URL@raft-addr,... (see above)")
	_ = cmd.MarkFlagRequired("node-id")
	return cmd
}

// member is one node run by this process.
type member struct {
	self   node.Peer
	peers  []node.Peer // the static member list; nil: join or bootstrap by gossip
	gossip string      // its gossip address
	expect int         // --bootstrap-expect
	retire bool        // dev: a node past --nodes, to drain and remove
}

// run starts the nodes in local (each listening on its URL's host:port, or
// alone on --http-addr) until SIGINT or SIGTERM, then shuts them down.
func run(ctx context.Context, f *serverFlags, local []member) error {
	log, quiet, err := f.logger()
	if err != nil {
		return err
	}
	limits, err := f.limits()
	if err != nil {
		return err
	}
	if f.shards < 0 || f.shards > node.MaxShards {
		return fmt.Errorf("--shards %d: need 1 to %d", f.shards, node.MaxShards)
	}
	if f.keyVnodes < 1 || max(f.shards, 1)*f.keyVnodes > 1<<24 {
		return fmt.Errorf("--key-vnodes %d: need 1 to %d in all (shards × key vnodes)", f.keyVnodes, 1<<24)
	}
	maxMemory, err := f.memory()
	if err != nil {
		return err
	}
	if f.deadAfter < time.Second {
		return fmt.Errorf("--dead-node-timeout %v: need at least 1s", f.deadAfter)
	}
	if f.maxMoves < 0 {
		return fmt.Errorf("--max-concurrent-moves %d: want 0 (default) or more", f.maxMoves)
	}
	gossipKey, err := f.gossipKey()
	if err != nil {
		return err
	}
	token, tokenFile, err := f.resolveOperatorToken(f.dev)
	if err != nil {
		return err
	}
	// LAN timing for dev too: its nodes share one process and fail
	// together, so faster detection would buy nothing, and FastTiming's
	// gossip every 50 ms cost a 3-node dev cluster ~4 % of a core idle
	// (docs/BENCHMARKS.md, "Self-healing").
	timing := membership.LANTiming()
	var known []node.Peer
	for _, m := range local {
		known = append(known, m.self)
		known = append(known, m.peers...)
	}
	policy, err := f.access(known)
	if err != nil {
		return err
	}
	if slices.Contains(policy.CORSOrigins, "*") {
		log.Warn("--cors-origin * lets every web page its users open read and write this cluster")
	}
	if f.procs < 0 {
		return fmt.Errorf("--gomaxprocs %d: want 0 (automatic) or more", f.procs)
	}
	procs := setProcs(f.procs)
	log.Debug("gomaxprocs", "n", procs)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		nodes []*node.Node
		lis   []net.Listener
	)
	closeAll := func() {
		quiet.stop()
		if len(nodes) == 1 {
			// One node of a cluster stops: tell the others it left.
			lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			if err := nodes[0].Leave(lctx); err != nil {
				log.Debug("gossip leave not confirmed", "err", err)
			}
			cancel()
		}
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.Close(); err != nil {
					log.Error("close", "node", n.ID(), "err", err)
				}
			}()
		}
		wg.Wait()
	}
	var dirs []string
	for _, m := range local {
		p := m.self
		dir := f.dataDir
		if len(local) > 1 {
			dir = filepath.Join(f.dataDir, p.ID)
		}
		u, err := url.Parse(p.URL)
		if err != nil {
			closeAll()
			return fmt.Errorf("node %s url %q: %w", p.ID, p.URL, err)
		}
		addr := u.Host
		if len(local) == 1 {
			addr = f.httpAddr
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("node %s: listen on %s: %w", p.ID, addr, err)
		}
		cfg := node.Config{
			ID: p.ID, Self: p, DataDir: dir, Peers: m.peers, BootstrapExpect: m.expect,
			Limits: limits, Shards: f.shards, KeyVnodes: f.keyVnodes,
			LogPerGroup: f.logPerGroup, RaftNetPerGroup: f.netPerGroup,
			Logger: log, MaxMemoryBytes: maxMemory, EvictionPolicy: f.policy,
			GossipAddr: m.gossip, Join: f.join, GossipTiming: timing, GossipKey: gossipKey,
			DeadNodeTimeout: f.deadAfter, MaxConcurrentMoves: f.maxMoves,
			OperatorToken: token,
		}
		if m.peers == nil && !node.HasClusterMap(dir) {
			log.Info("looking for the cluster through gossip", "node", p.ID, "join", f.join, "bootstrap_expect", m.expect)
		}
		n, err := node.OpenContext(ctx, cfg)
		if err != nil {
			l.Close()
			closeAll()
			if ctx.Err() != nil {
				log.Info("stopped")
				return nil
			}
			return err
		}
		nodes = append(nodes, n)
		lis = append(lis, l)
		dirs = append(dirs, dir)
	}

	errc := make(chan error, len(nodes))
	for i, n := range nodes {
		mux := http.NewServeMux()
		mux.Handle("/", n.Handler())
		if f.pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		}
		go func() {
			if err := n.Serve(lis[i], policy.Guard(lis[i].Addr().String(), mux)); err != nil {
				errc <- err
			}
		}()
	}
	// One line per node once it is ready, then (dev) the banner, last, so
	// that it is what the terminal shows.
	readyCtx, cancelReady := context.WithCancel(ctx)
	var ready sync.WaitGroup
	ready.Add(1)
	go func() {
		defer ready.Done()
		var gone []int
		for i, n := range nodes {
			if err := waitReady(readyCtx, log, n); err != nil {
				return
			}
			log.Info("node ready", "node", n.ID(), "api", n.URL(), "raft", local[i].self.RaftAddr, "data", dirs[i])
			if local[i].retire {
				gone = append(gone, i)
			}
		}
		if len(gone) > 0 {
			if err := retire(readyCtx, log, nodes[0].URL(), nodes, dirs, gone); err != nil {
				if readyCtx.Err() == nil {
					log.Error("dev: could not retire the nodes past --nodes; they keep running", "err", err)
				}
				return
			}
		}
		if f.dev {
			fmt.Fprintf(os.Stderr, "\nWisp dev cluster: %d nodes, %d shards. Try:\n  go run ./cmd/wisp --endpoint %s kv put greeting hello\n  go run ./cmd/wisp cluster status\nOperator token (plugin uploads), kept in %s for the CLI run here: %s\nCtrl-C stops it.\n\n", len(nodes)-len(gone), nodes[0].Shards(), nodes[0].URL(), tokenFile, token)
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if err != nil {
			log.Error("server failed", "err", err)
		}
	}
	cancelReady()
	ready.Wait()
	closeAll()
	log.Info("stopped")
	return nil
}

// waitReady waits until n is ready, saying once, after readyWarnAfter, what
// it is waiting for (the first node of a new cluster waits for the others).
func waitReady(ctx context.Context, log *slog.Logger, n *node.Node) error {
	wctx, cancel := context.WithTimeout(ctx, readyWarnAfter)
	err := n.WaitReady(wctx)
	cancel()
	if err == nil || ctx.Err() != nil {
		return err
	}
	log.Warn("node not ready yet: waiting for its shards to elect leaders (are the other nodes running?)", "node", n.ID(), "err", err)
	return n.WaitReady(ctx)
}

// leaveTimeout bounds the gossip leave of a stopping node.
const leaveTimeout = 2 * time.Second

// readyWarnAfter is how long a node may take to become ready before the
// log says what it is waiting for.
const readyWarnAfter = 10 * time.Second

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func splitHostPort(addr, flag string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: port must be 1-65535", flag, addr)
	}
	return host, p, nil
}

// parsePeers reads id=URL@raft-addr,...
func parsePeers(s string) ([]node.Peer, error) {
	var peers []node.Peer
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, rest, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--peers entry %q: want id=URL@raft-addr", part)
		}
		at := strings.LastIndexByte(rest, '@')
		if at < 0 {
			return nil, fmt.Errorf("--peers entry %q: want id=URL@raft-addr", part)
		}
		u, raftAddr := rest[:at], rest[at+1:]
		if _, err := url.ParseRequestURI(u); err != nil {
			return nil, fmt.Errorf("--peers entry %q: bad URL: %w", part, err)
		}
		if _, _, err := net.SplitHostPort(raftAddr); err != nil {
			return nil, fmt.Errorf("--peers entry %q: bad raft address: %w", part, err)
		}
		peers = append(peers, node.Peer{ID: id, URL: u, RaftAddr: raftAddr})
	}
	if len(peers) == 0 {
		return nil, errors.New("--peers is empty")
	}
	return peers, nil
}
