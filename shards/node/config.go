package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Peer is one node of the cluster as the others know it.
type Peer struct {
	ID       string // unique node id
	URL      string // API base URL, such as http://127.0.0.1:8080
	RaftAddr string // host:port of the node's Raft port (all its groups)
	// Zone is the node's failure domain; a shard's replicas go to distinct
	// zones when there are enough. Empty: a zone of its own.
	Zone string
}

// Config describes one node.
type Config struct {
	// ID is this node's id.
	ID string
	// Self is this node's addresses (ID, URL, RaftAddr, Zone) when Peers
	// does not list it: a node that joins a running cluster or bootstraps
	// one with others (BootstrapExpect). Ignored when Peers lists ID.
	Self Peer
	// DataDir holds the node's shared Raft log, cluster.json and one folder
	// of snapshots per hosted shard.
	DataDir string
	// Peers lists the nodes a new cluster is created with, this one
	// included: every one of them computes the same cluster map from the
	// list (shards placed by shards/ring.Place) and bootstraps its groups.
	// Once a node has a cluster map (DataDir/cluster-map.json) the map
	// decides and Peers only names the node. A node that Peers does not
	// list finds the cluster through gossip (Join) and is added to it.
	Peers []Peer
	// BootstrapExpect, for a node without Peers or a cluster map: create a
	// new cluster once this many nodes started with it have met in gossip
	// (the one with the smallest id computes the map, the others take it).
	// 0: only join a cluster that exists.
	BootstrapExpect int
	// Shards is the number of shards of a new cluster; default 1. It is
	// fixed when the cluster is created (stored in DataDir/cluster.json):
	// keys map to shards by it. A node that joins, or restarts with a
	// cluster map, may leave it 0 to take the cluster's.
	Shards int
	// KeyVnodes is the number of key-ring tokens per shard; default
	// ring.DefaultKeyVnodes. Fixed at creation like Shards.
	KeyVnodes int
	// LogPerGroup gives every group its own raft-boltdb file instead of the
	// node's shared log: the baseline the shared log is measured against.
	LogPerGroup bool
	// RaftNetPerGroup sends every group's Raft RPCs over hashicorp/raft's
	// own NetworkTransport, connections per group, instead of the node's
	// hub (transport.Hub: one batched connection per peer node for all
	// groups): the baseline the hub is measured against. Every node of a
	// cluster must agree on it.
	RaftNetPerGroup bool
	// Limits bound requests.
	Limits api.Limits
	// Timing overrides the Raft timeouts.
	Timing raftgroup.Timing
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the node's metrics, labelled node=ID
	// (several nodes may share one); the caller serves it, and
	// Node.MetricsHandler answers 404. Nil: the node keeps a registry of
	// its own, with the Go runtime and process collectors too, served by
	// Node.MetricsHandler, so each node of `wispd dev` serves only its own
	// series on its own port.
	Registerer prometheus.Registerer
	// Now is the clock the leader stamps into writes. Default time.Now.
	Now func() time.Time
	// NoSync turns off fsync of the Raft log. Unsafe: benchmarks only.
	NoSync bool
	// MaxMemoryBytes is the node's memory budget for data (0: none), used
	// unless set cluster-wide (ClusterService/SetConfig). Each shard's
	// leader works to what the nodes holding its replicas have room for:
	// see memory.go.
	MaxMemoryBytes int64
	// EvictionPolicy is used unless set cluster-wide; default noeviction.
	EvictionPolicy string
	// ReclaimInterval is the period of the leader's expiry and eviction
	// cycle; default reclaim.DefaultInterval.
	ReclaimInterval time.Duration
	// GossipAddr is the gossip address (ip:port, UDP and TCP) the node
	// listens on for membership and failure detection
	// (shards/membership). Empty: no gossip, so no failure detection and
	// no re-replication; the cluster map still routes.
	GossipAddr string
	// Join lists gossip addresses of other members; the node keeps trying
	// them in the background until one answers.
	Join []string
	// GossipTiming sets gossip's probe and suspicion intervals; the zero
	// value is membership.LANTiming.
	GossipTiming membership.Timing
	// OperatorToken is the secret the operator actions need (PluginService's
	// uploads and activations); empty: they are refused.
	OperatorToken string
	// GossipKey encrypts and authenticates gossip (membership.Config's
	// SecretKey): 16, 24 or 32 bytes, the same on every node; a member
	// with another key or none is not admitted. It covers gossip only, not
	// the Raft or API ports. nil: gossip in plain text. Ignored without
	// GossipAddr.
	GossipKey []byte
	// DeadNodeTimeout is how long a member must be gone before the
	// placement driver rebuilds its replicas elsewhere; default
	// DefaultDeadNodeTimeout.
	DeadNodeTimeout time.Duration
	// MaxConcurrentMoves bounds the shards being re-replicated or moved at
	// once; 0 is placement.DefaultMaxConcurrentMoves.
	MaxConcurrentMoves int
	// BalanceInterval is how often the node hands leaderships it holds
	// against the placement's preference to the preferred replica; default
	// balance.DefaultInterval, negative turns balancing off.
	BalanceInterval time.Duration
}

// ReplicationFactor is the number of replicas per shard (fewer if the
// cluster has fewer nodes).
const ReplicationFactor = 3

// MaxShards bounds Config.Shards.
const MaxShards = 4096

func (c *Config) self() (Peer, error) {
	if c.ID == "" {
		return Peer{}, errors.New("node id is empty")
	}
	seen := map[string]bool{}
	var self Peer
	for _, p := range c.Peers {
		if p.ID == "" || p.URL == "" || p.RaftAddr == "" {
			return Peer{}, fmt.Errorf("peer %+v: id, url and raft address are all required", p)
		}
		if seen[p.ID] {
			return Peer{}, fmt.Errorf("peer id %q appears twice", p.ID)
		}
		seen[p.ID] = true
		if p.ID == c.ID {
			self = p
		}
	}
	if self.ID == "" {
		self = c.Self
		self.ID = c.ID
		if self.URL == "" || self.RaftAddr == "" {
			return Peer{}, fmt.Errorf("node %q is not in its peer list, and its own url and raft address are not given", c.ID)
		}
	}
	return self, nil
}
