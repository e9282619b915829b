// Package nodetest starts real Wisp clusters on loopback for tests: real Raft
// groups over TCP, real bolt files in t.TempDir(), real HTTP servers.
package nodetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wisp-db/wisp/access"
	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Options tune a test cluster. The zero value is a 3-node cluster.
type Options struct {
	// Nodes is the cluster size. Default 3.
	Nodes int
	// Shards is the shard count. Default 1.
	Shards int
	// Limits are passed to every node.
	Limits api.Limits
	// Timing overrides the Raft timeouts.
	Timing raftgroup.Timing
	// Now is every node's clock. Default time.Now.
	Now func() time.Time
	// Tune, if set, adjusts every node's config before it opens (memory
	// budget, eviction policy, reclaim interval, ...).
	Tune func(*node.Config)
	// Wrap, if set, wraps every node's HTTP handler (tests observe requests).
	Wrap func(http.Handler) http.Handler
	// Access is every node's browser access policy (default: none but
	// same-origin, Host checked).
	Access access.Policy
	// Gossip runs membership and failure detection (fast timing, each
	// node joining the others), so the placement driver heals the cluster.
	Gossip bool
	// Verbose sends the nodes' logs to stderr (default: discarded unless
	// the WISP_TEST_LOG environment variable is set).
	Verbose bool
}

// Cluster is a running test cluster. Methods must be called from the test
// goroutine unless noted.
type Cluster struct {
	t      testing.TB
	opts   Options
	dir    string
	peers  []node.Peer
	gossip []string // gossip addresses, by node; nil without Options.Gossip

	mu    sync.Mutex
	nodes []*node.Node // nil for a stopped node; guarded by mu
}

// Start starts a cluster and waits until it has a leader. It is stopped by
// t.Cleanup.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	c := &Cluster{t: t, opts: opts, dir: t.TempDir(), nodes: make([]*node.Node, opts.Nodes)}
	addrs := freeAddrs(t, 3*opts.Nodes)
	for i := range opts.Nodes {
		c.peers = append(c.peers, node.Peer{
			ID:       fmt.Sprintf("n%d", i+1),
			URL:      "http://" + addrs[3*i],
			RaftAddr: addrs[3*i+1],
		})
		if opts.Gossip {
			c.gossip = append(c.gossip, addrs[3*i+2])
		}
	}
	t.Cleanup(c.Close)
	for i := range opts.Nodes {
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	c.waitLeaderKnown(10 * time.Second)
	return c
}

// waitLeaderKnown waits until every running replica knows its leader.
func (c *Cluster) waitLeaderKnown(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for i := range c.peers {
		for {
			n := c.Node(i)
			if n == nil {
				break
			}
			known := true
			for s := range n.Shards() {
				if g := n.Shard(s); g != nil {
					if id, _ := g.Leader(); id == "" {
						known = false
					}
				}
			}
			if known {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node %s does not know the leader after %v", n.ID(), timeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// freeAddrs returns n distinct loopback addresses with ports that were free
// a moment ago: all n listeners are open at once, so no port is handed out
// twice.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

func (c *Cluster) logger() *slog.Logger {
	if c.opts.Verbose || os.Getenv("WISP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Join starts a new node that is not in the static member list: it finds
// the cluster through gossip, the placement driver adds it and moves
// replicas onto it. It needs Options.Gossip and returns the node's index.
func (c *Cluster) Join() int {
	c.t.Helper()
	if c.gossip == nil {
		c.t.Fatal("nodetest: Join needs Options.Gossip")
	}
	addrs := freeAddrs(c.t, 3)
	c.mu.Lock()
	i := len(c.peers)
	c.peers = append(c.peers, node.Peer{ID: fmt.Sprintf("n%d", i+1), URL: "http://" + addrs[0], RaftAddr: addrs[1]})
	c.gossip = append(c.gossip, addrs[2])
	c.nodes = append(c.nodes, nil)
	c.mu.Unlock()
	c.Restart(i)
	return i
}

// Restart starts node i (stopped or never started) on its old data and ports.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	p := c.peers[i]
	peers, seeds := c.peers[:c.opts.Nodes], c.gossip
	c.mu.Unlock()
	var (
		n   *node.Node
		lis net.Listener
		err error
	)
	// The ports were free when chosen, but a just-closed listener or
	// another test may hold one briefly: retry for a bounded time.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg := node.Config{
			ID: p.ID, DataDir: filepath.Join(c.dir, p.ID), Peers: peers, Shards: c.opts.Shards,
			Limits: c.opts.Limits, Timing: c.opts.Timing, Logger: c.logger(), Now: c.opts.Now,
		}
		if i >= c.opts.Nodes { // joined: not in the static list
			cfg.Peers, cfg.Self, cfg.Shards = nil, p, 0
		}
		if seeds != nil {
			cfg.GossipAddr, cfg.Join, cfg.GossipTiming = seeds[i], seeds[:c.opts.Nodes], membership.FastTiming()
		}
		if c.opts.Tune != nil {
			c.opts.Tune(&cfg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err = node.OpenContext(ctx, cfg)
		cancel()
		if err == nil {
			lis, err = net.Listen("tcp", p.URL[len("http://"):])
			if err == nil {
				break
			}
			n.Kill()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("start node %s: %v", p.ID, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h := c.opts.Access.Guard(lis.Addr().String(), n.Handler())
	if c.opts.Wrap != nil {
		h = c.opts.Wrap(h)
	}
	go n.Serve(lis, h)
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
}

// Kill crashes node i: no graceful shutdown, no leadership hand-off.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		if err := n.Kill(); err != nil {
			c.t.Logf("kill %s: %v", n.ID(), err)
		}
	}
}

// Stop shuts node i down gracefully. Safe for concurrent use.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		// A slow graceful shutdown (an HTTP request outliving the 5 s
		// bound on a loaded machine) is not what these tests check: log it.
		if err := n.Close(); err != nil {
			c.t.Logf("close %s: %v", n.ID(), err)
		}
	}
}

// Close stops every node. Safe to call twice.
func (c *Cluster) Close() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = make([]*node.Node, len(nodes))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
}

// Node returns node i, or nil if it is stopped. Safe for concurrent use.
func (c *Cluster) Node(i int) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// URL returns node i's API base URL. Safe for concurrent use.
func (c *Cluster) URL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[i].URL
}

// URLs returns every node's API base URL.
func (c *Cluster) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.peers))
	for i, p := range c.peers {
		urls[i] = p.URL
	}
	return urls
}

// Seeds returns the gossip addresses of the static members (nil without
// Options.Gossip).
func (c *Cluster) Seeds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gossip == nil {
		return nil
	}
	return slices.Clone(c.gossip[:c.opts.Nodes])
}

// Size is the number of nodes.
func (c *Cluster) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peers)
}

// Leader returns the index of the running node that leads shard 0, or -1.
// Safe for concurrent use.
func (c *Cluster) Leader() int { return c.ShardLeader(0) }

// ShardLeader returns the index of the running node that leads shard s, or
// -1. Safe for concurrent use.
func (c *Cluster) ShardLeader(s int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		if g := n.Shard(s); g != nil && g.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitBalanced waits up to timeout until every shard is led by the replica
// the placement prefers: the nodes hand leaderships over after the first
// elections, and tests that count forwarded requests wait for the moves to
// end first.
func (c *Cluster) WaitBalanced(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for s := range c.Shards() {
		for {
			i := c.ShardLeader(s)
			n := c.Node(max(i, 0))
			if i >= 0 && n != nil && n.Placement().Shards[s].Leader == n.ID() {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("shard %d is not led by its preferred replica after %v", s, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Shards is the cluster's shard count.
func (c *Cluster) Shards() int { return max(1, c.opts.Shards) }

// WaitLeader waits up to timeout until every shard has a leader and returns
// the index of shard 0's.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for s := c.Shards() - 1; s >= 0; s-- {
		for c.ShardLeader(s) < 0 {
			if time.Now().After(deadline) {
				c.t.Fatalf("shard %d has no leader within %v", s, timeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return c.Leader()
}

// WaitConverged waits until, in every shard, the running replicas have
// applied the same index and have the same state digest, and returns the
// digest of shard 0.
func (c *Cluster) WaitConverged(ctx context.Context) [32]byte {
	c.t.Helper()
	var first [32]byte
	for s := range c.Shards() {
		d := c.waitShardConverged(ctx, s)
		if s == 0 {
			first = d
		}
	}
	return first
}

func (c *Cluster) waitShardConverged(ctx context.Context, s int) [32]byte {
	for {
		var (
			digests = map[[32]byte]bool{}
			indexes = map[uint64]bool{}
			d       [32]byte
		)
		c.mu.Lock()
		for _, n := range c.nodes {
			if n == nil || n.Shard(s) == nil {
				continue
			}
			g := n.Shard(s)
			indexes[g.AppliedIndex()] = true
			d = g.Digest()
			digests[d] = true
		}
		c.mu.Unlock()
		if len(digests) == 1 && len(indexes) == 1 {
			return d
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("shard %d: replicas did not converge: %d distinct digests, applied indexes %v", s, len(digests), indexes)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
