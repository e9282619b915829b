package placement

import (
	"fmt"

	"github.com/wisp-db/wisp/shards/ring"
)

// DefaultReplicas is the replicas per shard when Options.Replicas is 0: a
// shard tolerates the loss of one of three.
const DefaultReplicas = 3

// DefaultMaxConcurrentMoves is the bound on shards in motion when
// Options.MaxConcurrentMoves is 0. Each move streams a snapshot to the new
// replica and, until the old replica is removed, makes the shard need one
// more voter for a quorum. Two is measured (docs/BENCHMARKS.md,
// "Self-healing, third slice"): on five loopback nodes sharing two cores,
// rebuilding 217 MiB of a dead node's replicas kept a client at 0.75 of its
// rate before (median; the goal is 0.70) and healed in about 20 s, where
// four moves left it 0.63 and one move healed in 26 s.
const DefaultMaxConcurrentMoves = 2

// maxReplicas is the most replicas per shard Options may ask for; it is
// ring.Place's own limit.
const maxReplicas = 16

// Health is what failure detection (gossip) says about a node. The zero
// value is invalid: Plan refuses it, so that a node whose health was never
// set is not taken for alive.
type Health uint8

const (
	// Alive: the node answers. It may receive new replicas.
	Alive Health = iota + 1
	// Suspect: the node missed its probes recently but is not yet declared
	// dead. Plan treats it as alive for the target and for "does the shard
	// have a quorum", so a node that pauses for a GC or a short partition
	// does not make whole snapshots move (the target does not change while a
	// node is suspect). It is not a destination: Plan adds no learner on it
	// and promotes none there, since a learner on a node that then dies
	// holds the shard's move slot and a voter there may shrink the live
	// majority. Checks that a step keeps a majority count suspect voters as
	// down.
	Suspect
	// Dead: the node was suspect for longer than the dead-node timeout, or
	// left the cluster. Its replicas are replaced. A node that comes back
	// is Alive again and keeps every replica not yet removed.
	Dead
)

// String returns "alive", "suspect", "dead", or "health(N)" for an invalid
// value.
func (h Health) String() string {
	switch h {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

// live reports whether a node in health h can be counted on to vote:
// Alive or Suspect.
func (h Health) live() bool { return h == Alive || h == Suspect }

// Node is a cluster member as the placement driver sees it.
type Node struct {
	// ID names the node, as in ring.Node and in the Raft configurations;
	// non-empty and unique in State.Nodes.
	ID string
	// Zone is the node's failure domain, passed to ring.Place ("" is a zone
	// of its own).
	Zone string
	// Health is the node's liveness from gossip; the zero value is invalid.
	Health Health
	// Draining is the operator's request to move every replica off the node
	// (`wisp cluster drain`). A draining node is never in the target. Its
	// replicas leave once a replacement is a voter: a drain never takes a
	// shard below Options.Replicas voters, so with fewer than that many
	// other eligible nodes the draining replica stays (and gives up
	// leadership). A draining node that is Dead is replaced like any dead
	// node.
	Draining bool
}

// Member is one replica in a shard's current Raft configuration.
type Member struct {
	// Node is the ID of the node holding the replica. A node missing from
	// State.Nodes (forgotten by `wisp cluster remove`) counts as Dead.
	Node string
	// Learner is true for a non-voter (hashicorp/raft's Nonvoter): it
	// receives the log but does not count for a quorum. The zero value is a
	// voter.
	Learner bool
	// CaughtUp is true when a learner's log is close enough to the leader's
	// that promoting it does not stall commits (the executor decides:
	// applied index within a bound of the leader's commit index, for some
	// time, like autopilot's stabilization). Plan promotes only caught-up
	// learners. Ignored for voters.
	CaughtUp bool
}

// Shard is one shard's current Raft configuration, as its leader reports
// it.
type Shard struct {
	// Members are the shard's voters and learners, in any order; each node
	// at most once.
	Members []Member
	// Leader is the node ID of the shard's current leader, or "" if there
	// is none or it is unknown. Plan plans nothing for a shard without a
	// live leader among its voters, since only a leader changes the
	// configuration, and says so in Result.Stuck.
	Leader string
}

// State is the input of Plan: the nodes and every shard's configuration,
// taken fresh each tick.
type State struct {
	// Nodes are the known nodes, in any order.
	Nodes []Node
	// Shards holds shard i at index i, as ring.Place numbers them. Empty
	// means no shards: Plan returns an empty Result.
	Shards []Shard
}

// Options tunes Plan. The zero value is the default.
type Options struct {
	// Replicas is the voters each shard should have (the replication
	// factor): 0 selects DefaultReplicas, at most 16. With fewer eligible
	// nodes (alive or suspect, not draining) the target holds all of them.
	Replicas int
	// MaxConcurrentMoves bounds the shards Plan puts in motion: it starts a
	// move (an AddLearner on a shard not in motion) only while fewer than
	// this many shards are in motion. 0 selects DefaultMaxConcurrentMoves;
	// negative is refused. Steps of shards already in motion are never held
	// back by it (holding them would only keep their slots), so only changes
	// Plan did not make (a replica appearing, a configuration found over
	// the limit) can put more shards in motion than the bound.
	MaxConcurrentMoves int
	// Ring holds options for ring.Place (load factor, vnodes); they must be
	// the ones every node routes with. Nil means ring's defaults.
	Ring []ring.Option
}

// Kind is what a Step does. The zero value is invalid.
type Kind uint8

const (
	// AddLearner adds Step.Node to the shard as a learner (raft
	// AddNonvoter), after creating an empty replica there that the leader
	// fills by snapshot and log.
	AddLearner Kind = iota + 1
	// Promote makes the learner on Step.Node a voter (raft AddVoter on an
	// existing nonvoter). Plan promotes only a caught-up learner on an
	// Alive node.
	Promote
	// RemoveReplica removes Step.Node, voter or learner, from the shard
	// (raft RemoveServer); the node then deletes its copy. Plan never
	// removes the current leader: it plans a TransferLeader first.
	RemoveReplica
	// TransferLeader hands the shard's leadership to the voter on
	// Step.Node (raft LeadershipTransferToServer).
	TransferLeader
)

// String returns "add-learner", "promote", "remove", "transfer-leader", or
// "kind(N)" for an invalid value.
func (k Kind) String() string {
	switch k {
	case AddLearner:
		return "add-learner"
	case Promote:
		return "promote"
	case RemoveReplica:
		return "remove"
	case TransferLeader:
		return "transfer-leader"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Step is one reconfiguration of one shard: the next action toward its
// target. Steps are idempotent in intent: a step that failed, or is still
// under way when the next tick's State is taken, is planned again from that
// State (or a later one), so an executor may drop a step and rely on the
// next Plan.
type Step struct {
	Kind  Kind   // never zero in a Result
	Shard int    // index in State.Shards
	Node  string // the node added, promoted or removed, or the new leader
	// Reason says why, for status display ("replaces n3 (dead)"). Not
	// meant to be parsed.
	Reason string
}

// String formats the step for logs: "shard 3: promote n5 (learner caught up)".
func (s Step) String() string {
	return fmt.Sprintf("%s: %v %s (%s)", shardName(s.Shard), s.Kind, s.Node, s.Reason)
}

// shardName is "shard N", or "meta group" for MetaShard.
func shardName(s int) string {
	if s == MetaShard {
		return "meta group"
	}
	return fmt.Sprintf("shard %d", s)
}

// Stuck is a shard that needs a change Plan did not plan this tick, for a
// reason other than the move limit.
type Stuck struct {
	Shard int // index in State.Shards
	// NoQuorum is true when fewer than a majority of the shard's voters
	// are on live nodes: Raft cannot commit a configuration change, so
	// only an operator can recover the shard. False when the shard waits
	// for something that passes: a leader election, a suspect node's fate,
	// a learner to catch up while a suspect voter makes a promotion unsafe.
	NoQuorum bool
	// Reason says why, for status display. Not meant to be parsed.
	Reason string
}

// String formats the entry for logs: "shard 3: stuck (no quorum: ...)".
func (s Stuck) String() string {
	return fmt.Sprintf("%s: stuck (%s)", shardName(s.Shard), s.Reason)
}

// Result is the output of Plan.
type Result struct {
	// Steps are the next actions, at most one per shard, most urgent
	// first: shards with a replica on a dead node or fewer live voters than
	// their target (fewest failures from losing their quorum first), then
	// moves for balance or draining, then leader transfers off draining
	// nodes. Ties go to the lower shard index.
	Steps []Step
	// Stuck lists shards that need a change but got no step, by shard
	// index.
	Stuck []Stuck
	// Target is where the ring wants every shard's replicas, over the
	// eligible nodes (alive or suspect, not draining). When no node is
	// eligible it has no Shards.
	Target ring.Placement
	// Queued lists, by shard index, the shards whose next step is a new
	// move that waits for a slot (MaxConcurrentMoves).
	Queued []int
	// InMotion counts the shards in motion in the input State: with a
	// learner, or with more voters than Options.Replicas, and a live
	// majority (a shard without one cannot move).
	InMotion int
}

// Done reports whether no shard needs anything: no steps, nothing stuck or
// queued, and no shard in motion. No steps alone is not enough: a shard
// whose learner is catching up gets none. Done is what `wisp cluster ready`
// waits for; it holds with draining replicas kept for want of other nodes.
func (r Result) Done() bool {
	return len(r.Steps) == 0 && len(r.Stuck) == 0 && len(r.Queued) == 0 && r.InMotion == 0
}
