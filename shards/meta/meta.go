package meta

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Map is the cluster map. The zero Map is the state before Bootstrap.
// A Map returned by Apply shares nothing with the one it was applied to,
// so readers may keep one while the next is made.
type Map struct {
	// Epoch counts the changes applied; 0 before Bootstrap.
	Epoch uint64 `json:"epoch"`
	// Shards and KeyVnodes fix the key ring (shards/ring.NewKeyRing); set by
	// Bootstrap, never changed.
	Shards    int `json:"shards"`
	KeyVnodes int `json:"key_vnodes"`
	// Nodes are the members, sorted by ID.
	Nodes []Node `json:"nodes"`
	// Replicas lists each shard's replicas, by shard id (Shards entries),
	// as the shard's Raft configuration last committed them: what nodes
	// route by. The placement driver records every membership change here
	// once the shard's group committed it.
	Replicas [][]Replica `json:"replicas"`
	// Meta lists the meta group's replicas as its Raft configuration last
	// committed them (empty in maps made before the meta group moved: its
	// replicas are then where they were bootstrapped). Commands name the
	// meta group as shard MetaShard.
	Meta []Replica `json:"meta,omitempty"`
	// Settings are the cluster-wide settings.
	Settings Settings `json:"settings"`
	// Moves are the membership changes under way, sorted by shard, at most
	// one per shard (MetaShard's first).
	Moves []Move `json:"moves,omitempty"`
	// Plugins is the plugin registry, sorted by name (plugins.go).
	Plugins []Plugin `json:"plugins,omitempty"`
}

// NodeState is what the cluster wants of a node.
type NodeState string

const (
	// Active nodes hold replicas as the placement gives them.
	Active NodeState = "active"
	// Draining nodes keep serving while the placement driver moves every
	// replica off them; then they can be removed.
	Draining NodeState = "draining"
)

// Node is one member as the map records it. Liveness (alive, suspect,
// dead) is not here: it comes from gossip and changes too often for a log.
type Node struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`       // API base URL, http(s)://host:port
	RaftAddr string    `json:"raft_addr"` // host:port of its Raft port
	Zone     string    `json:"zone,omitempty"`
	State    NodeState `json:"state"`
	// AddedEpoch is the epoch at which the node joined the map.
	AddedEpoch uint64 `json:"added_epoch"`
}

// Replica is one member of a shard's Raft group.
type Replica struct {
	Node  string `json:"node"`
	Voter bool   `json:"voter"` // false: a learner, catching up
}

// Settings are the cluster-wide settings. A nil field was never set: each
// node then uses its flag.
type Settings struct {
	// MaxMemoryBytes is the memory budget for data on each node; 0 means
	// no limit.
	MaxMemoryBytes *int64 `json:"max_memory_bytes,omitempty"`
	// EvictionPolicy is the eviction policy's name (the node checks it).
	EvictionPolicy *string `json:"eviction_policy,omitempty"`
}

// check validates s's values.
func (s *Settings) check() error {
	if s.MaxMemoryBytes != nil && *s.MaxMemoryBytes < 0 {
		return fmt.Errorf("max_memory_bytes %d: must not be negative", *s.MaxMemoryBytes)
	}
	if s.EvictionPolicy != nil && (*s.EvictionPolicy == "" || len(*s.EvictionPolicy) > maxPolicyBytes) {
		return fmt.Errorf("eviction policy %q: want 1 to %d bytes", *s.EvictionPolicy, maxPolicyBytes)
	}
	return nil
}

// Move is one membership change of a shard under way, as the placement
// driver recorded it when it started the change.
type Move struct {
	Shard  int    `json:"shard"`
	Kind   string `json:"kind"` // the placement step, such as add-learner
	Node   string `json:"node"`
	Reason string `json:"reason,omitempty"`
	// StartedUnixMs is when the driver started it (its leader's clock).
	StartedUnixMs int64 `json:"started_unix_ms"`
}

// MetaShard is the shard number by which commands and moves name the meta
// group itself: OpSetReplicas with it sets Meta.
const MetaShard = -1

// Op is a command's kind.
type Op string

// The commands.
const (
	// OpBootstrap creates the map: Shards, KeyVnodes, the first Nodes and
	// every shard's first Replicas (all voters).
	OpBootstrap Op = "bootstrap"
	// OpAddNode adds Node (state Active). Adding a node that is already a
	// member with the same addresses changes nothing; with other addresses
	// it is refused (ErrConflict).
	OpAddNode Op = "add-node"
	// OpSetNodeState sets NodeID's state to State.
	OpSetNodeState Op = "set-node-state"
	// OpRemoveNode removes NodeID and any move naming it. A node that still
	// holds a replica, of a shard or of the meta group, is refused
	// (ErrInUse).
	OpRemoveNode Op = "remove-node"
	// OpSetReplicas sets Shard's replicas to Replicas (a committed
	// membership change of its group); Shard MetaShard sets Meta.
	OpSetReplicas Op = "set-replicas"
	// OpSetSettings sets the settings Settings gives (non-nil fields); the
	// others keep their values.
	OpSetSettings Op = "set-settings"
	// OpStartMove records Move, replacing the shard's previous one.
	OpStartMove Op = "start-move"
	// OpEndMove clears the move of Shard, if any.
	OpEndMove Op = "end-move"
	// OpAddPlugin stores a new version of plugin Plugin.Name (of
	// Plugin.Kind, with the module's SHA256 and size): the next version
	// number, or nothing if a stored version has the same SHA256.
	OpAddPlugin Op = "add-plugin"
	// OpActivatePlugin makes Plugin.Version the plugin's active version,
	// for Plugin.Prefix; the one active before becomes its previous. It is
	// refused (ErrPluginConflict) if another plugin of the kind is active
	// for the same prefix.
	OpActivatePlugin Op = "activate-plugin"
	// OpDeactivatePlugin makes the plugin inactive; its active version
	// becomes its previous.
	OpDeactivatePlugin Op = "deactivate-plugin"
	// OpRollbackPlugin swaps the plugin's active and previous versions
	// (re-activating the previous if it is inactive).
	OpRollbackPlugin Op = "rollback-plugin"
)

// Command is one entry of the meta group's log. Which fields matter
// depends on Op; the others must be zero.
type Command struct {
	Op        Op        `json:"op"`
	Shards    int       `json:"shards,omitempty"`
	KeyVnodes int       `json:"key_vnodes,omitempty"`
	Nodes     []Node    `json:"nodes,omitempty"`
	Node      *Node     `json:"node,omitempty"`
	NodeID    string    `json:"node_id,omitempty"`
	State     NodeState `json:"state,omitempty"`
	Settings  *Settings `json:"settings,omitempty"`
	Move      *Move     `json:"move,omitempty"`
	Shard     int       `json:"shard,omitempty"`
	// Replicas: for OpBootstrap, every shard's (Shards entries); for
	// OpSetReplicas, one entry, Shard's.
	Replicas [][]Replica `json:"replicas,omitempty"`
	// Plugin is the argument of the plugin ops.
	Plugin *PluginCommand `json:"plugin,omitempty"`
}

// Errors a command can fail with. A failed command changes nothing (and
// does not raise the epoch).
var (
	// ErrInvalid: the command is malformed (bad id, URL, address, state,
	// shard, or fields that do not belong to its op).
	ErrInvalid = errors.New("invalid command")
	// ErrNotBootstrapped: the map has no layout yet.
	ErrNotBootstrapped = errors.New("cluster map not bootstrapped")
	// ErrBootstrapped: Bootstrap on a map that has one.
	ErrBootstrapped = errors.New("cluster map already bootstrapped")
	// ErrUnknownNode: the command names a node that is not a member.
	ErrUnknownNode = errors.New("unknown node")
	// ErrConflict: the node id or its Raft address is taken by another
	// member with other addresses.
	ErrConflict = errors.New("node conflicts with a member")
	// ErrInUse: the node still holds replicas.
	ErrInUse = errors.New("node holds replicas")
)

// Limits on what a map may hold.
const (
	// MaxNodes bounds the members.
	MaxNodes = 1000
	// MaxShards bounds the shard count (shards/node.MaxShards).
	MaxShards = 4096
	// maxKeyVnodesTotal bounds Shards × KeyVnodes, as shards/node does.
	maxKeyVnodesTotal = 1 << 24
	maxIDBytes        = 64
	maxAddrBytes      = 256
	maxReasonBytes    = 256
	maxPolicyBytes    = 64
	// maxReplicas bounds one shard's replica set (3 voters, plus learners
	// and the voters they replace during moves).
	maxReplicas = 16
)

// Apply returns the map after cmd, or an error and m unchanged.
func Apply(m *Map, cmd *Command) (*Map, error) {
	if err := cmd.check(); err != nil {
		return m, err
	}
	if cmd.Op != OpBootstrap && m.Epoch == 0 {
		return m, ErrNotBootstrapped
	}
	next := m.clone()
	switch cmd.Op {
	case OpBootstrap:
		if m.Epoch != 0 {
			return m, ErrBootstrapped
		}
		next.Shards, next.KeyVnodes = cmd.Shards, cmd.KeyVnodes
		for _, n := range cmd.Nodes {
			n.State, n.AddedEpoch = Active, 1
			if err := next.addNode(n); err != nil {
				return m, err
			}
		}
		next.Replicas = make([][]Replica, cmd.Shards)
		for s, rs := range cmd.Replicas {
			if err := next.setReplicas(s, rs); err != nil {
				return m, err
			}
		}
	case OpAddNode:
		n := *cmd.Node
		if i, ok := next.find(n.ID); ok {
			have := next.Nodes[i]
			if have.URL == n.URL && have.RaftAddr == n.RaftAddr && have.Zone == n.Zone {
				return m, nil // already a member: no change, no new epoch
			}
			return m, fmt.Errorf("%w: %s is a member at %s (raft %s)", ErrConflict, n.ID, have.URL, have.RaftAddr)
		}
		n.State, n.AddedEpoch = Active, m.Epoch+1
		if err := next.addNode(n); err != nil {
			return m, err
		}
	case OpSetNodeState:
		i, ok := next.find(cmd.NodeID)
		if !ok {
			return m, fmt.Errorf("%w: %s", ErrUnknownNode, cmd.NodeID)
		}
		if next.Nodes[i].State == cmd.State {
			return m, nil
		}
		next.Nodes[i].State = cmd.State
	case OpRemoveNode:
		i, ok := next.find(cmd.NodeID)
		if !ok {
			return m, fmt.Errorf("%w: %s", ErrUnknownNode, cmd.NodeID)
		}
		for s, rs := range next.Replicas {
			for _, r := range rs {
				if r.Node == cmd.NodeID {
					return m, fmt.Errorf("%w: %s holds a replica of shard %d", ErrInUse, cmd.NodeID, s)
				}
			}
		}
		for _, r := range next.Meta {
			if r.Node == cmd.NodeID {
				return m, fmt.Errorf("%w: %s holds a replica of the meta group", ErrInUse, cmd.NodeID)
			}
		}
		next.Nodes = slices.Delete(next.Nodes, i, i+1)
		next.Moves = slices.DeleteFunc(next.Moves, func(mv Move) bool { return mv.Node == cmd.NodeID })
	case OpSetReplicas:
		if cmd.Shard >= next.Shards {
			return m, fmt.Errorf("%w: shard %d of %d", ErrInvalid, cmd.Shard, next.Shards)
		}
		if slices.Equal(next.ReplicasOf(cmd.Shard), cmd.Replicas[0]) {
			return m, nil
		}
		if err := next.setReplicas(cmd.Shard, cmd.Replicas[0]); err != nil {
			return m, err
		}
	case OpSetSettings:
		s := cmd.Settings
		if s.MaxMemoryBytes == nil && s.EvictionPolicy == nil {
			return m, nil
		}
		if s.MaxMemoryBytes != nil {
			v := *s.MaxMemoryBytes
			next.Settings.MaxMemoryBytes = &v
		}
		if s.EvictionPolicy != nil {
			v := *s.EvictionPolicy
			next.Settings.EvictionPolicy = &v
		}
	case OpStartMove:
		mv := *cmd.Move
		if mv.Shard >= next.Shards {
			return m, fmt.Errorf("%w: shard %d of %d", ErrInvalid, mv.Shard, next.Shards)
		}
		if _, ok := next.find(mv.Node); !ok {
			return m, fmt.Errorf("%w: %s", ErrUnknownNode, mv.Node)
		}
		i, found := slices.BinarySearchFunc(next.Moves, mv.Shard, func(a Move, s int) int { return a.Shard - s })
		if found {
			next.Moves[i] = mv
		} else {
			next.Moves = slices.Insert(next.Moves, i, mv)
		}
	case OpEndMove:
		i, found := slices.BinarySearchFunc(next.Moves, cmd.Shard, func(a Move, s int) int { return a.Shard - s })
		if !found {
			return m, nil
		}
		next.Moves = slices.Delete(next.Moves, i, i+1)
	case OpAddPlugin, OpActivatePlugin, OpDeactivatePlugin, OpRollbackPlugin:
		changed, err := next.applyPlugin(cmd.Op, cmd.Plugin, m.Epoch)
		if err != nil || !changed {
			return m, err
		}
	}
	next.Epoch = m.Epoch + 1
	return next, nil
}

// Node returns the member id.
func (m *Map) Node(id string) (Node, bool) {
	if i, ok := m.find(id); ok {
		return m.Nodes[i], true
	}
	return Node{}, false
}

// ReplicasOf returns shard s's replicas, or the meta group's for
// MetaShard. The slice is shared: callers must not modify it.
func (m *Map) ReplicasOf(s int) []Replica {
	if s == MetaShard {
		return m.Meta
	}
	return m.Replicas[s]
}

// Move returns the move under way for shard, if any.
func (m *Map) Move(shard int) (Move, bool) {
	i, found := slices.BinarySearchFunc(m.Moves, shard, func(a Move, s int) int { return a.Shard - s })
	if !found {
		return Move{}, false
	}
	return m.Moves[i], true
}

func (m *Map) find(id string) (int, bool) {
	return slices.BinarySearchFunc(m.Nodes, id, func(n Node, id string) int { return strings.Compare(n.ID, id) })
}

func (m *Map) addNode(n Node) error {
	if len(m.Nodes) >= MaxNodes {
		return fmt.Errorf("%w: more than %d nodes", ErrInvalid, MaxNodes)
	}
	i, found := m.find(n.ID)
	if found {
		return fmt.Errorf("%w: %s is listed twice", ErrConflict, n.ID)
	}
	for _, o := range m.Nodes {
		if o.RaftAddr == n.RaftAddr {
			return fmt.Errorf("%w: raft address %s is %s's", ErrConflict, n.RaftAddr, o.ID)
		}
	}
	m.Nodes = slices.Insert(m.Nodes, i, n)
	return nil
}

// setReplicas sets shard s's replicas (the meta group's for MetaShard),
// each of which must name a member. The previous slice is replaced, not
// modified: maps share them.
func (m *Map) setReplicas(s int, rs []Replica) error {
	for _, r := range rs {
		if _, ok := m.find(r.Node); !ok {
			return fmt.Errorf("%w: shard %d replica on %s", ErrUnknownNode, s, r.Node)
		}
	}
	if s == MetaShard {
		m.Meta = slices.Clone(rs)
		return nil
	}
	m.Replicas[s] = slices.Clone(rs)
	return nil
}

// clone copies m. The per-shard replica slices are shared: they are never
// modified in place, only replaced (setReplicas).
func (m *Map) clone() *Map {
	c := *m
	c.Nodes = slices.Clone(m.Nodes)
	c.Moves = slices.Clone(m.Moves)
	c.Replicas = slices.Clone(m.Replicas)
	c.Plugins = slices.Clone(m.Plugins)
	return &c
}

// check validates cmd on its own, before it meets a map.
func (c *Command) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, c.Op, fmt.Sprintf(format, args...))
	}
	// Exactly the fields of its op may be set.
	type fields struct{ shards, nodes, node, nodeID, state, settings, move, shard, replicas, plugin bool }
	has := fields{c.Shards != 0 || c.KeyVnodes != 0, c.Nodes != nil, c.Node != nil, c.NodeID != "", c.State != "", c.Settings != nil, c.Move != nil, c.Shard != 0, c.Replicas != nil, c.Plugin != nil}
	var want fields
	switch c.Op {
	case OpBootstrap:
		want = fields{shards: true, nodes: true, replicas: true}
	case OpAddNode:
		want = fields{node: true}
	case OpSetNodeState:
		want = fields{nodeID: true, state: true}
	case OpRemoveNode:
		want = fields{nodeID: true}
	case OpSetSettings:
		want = fields{settings: true}
	case OpStartMove:
		want = fields{move: true}
	case OpEndMove:
		want = fields{shard: has.shard} // shard 0 is a zero field
	case OpSetReplicas:
		want = fields{shard: has.shard, replicas: true}
	case OpAddPlugin, OpActivatePlugin, OpDeactivatePlugin, OpRollbackPlugin:
		want = fields{plugin: true}
	default:
		return bad("unknown op")
	}
	if has != want {
		return bad("fields set %+v; the op takes %+v", has, want)
	}
	switch c.Op {
	case OpBootstrap:
		if c.Shards < 1 || c.Shards > MaxShards || c.KeyVnodes < 1 || c.Shards*c.KeyVnodes > maxKeyVnodesTotal {
			return bad("%d shards × %d key vnodes: need 1..%d shards and at most %d tokens", c.Shards, c.KeyVnodes, MaxShards, maxKeyVnodesTotal)
		}
		if len(c.Nodes) == 0 || len(c.Nodes) > MaxNodes {
			return bad("%d nodes: need 1..%d", len(c.Nodes), MaxNodes)
		}
		for i := range c.Nodes {
			if err := checkNode(&c.Nodes[i]); err != nil {
				return bad("%v", err)
			}
		}
		if len(c.Replicas) != c.Shards {
			return bad("%d replica sets for %d shards", len(c.Replicas), c.Shards)
		}
		for s, rs := range c.Replicas {
			if err := checkReplicas(rs); err != nil {
				return bad("shard %d: %v", s, err)
			}
		}
	case OpAddNode:
		if err := checkNode(c.Node); err != nil {
			return bad("%v", err)
		}
	case OpSetNodeState:
		if err := checkID(c.NodeID); err != nil {
			return bad("%v", err)
		}
		if c.State != Active && c.State != Draining {
			return bad("state %q: want %s or %s", c.State, Active, Draining)
		}
	case OpRemoveNode:
		if err := checkID(c.NodeID); err != nil {
			return bad("%v", err)
		}
	case OpSetSettings:
		if err := c.Settings.check(); err != nil {
			return bad("%v", err)
		}
	case OpStartMove:
		mv := c.Move
		if mv.Shard < MetaShard || mv.Shard >= MaxShards || mv.Kind == "" || len(mv.Kind) > maxIDBytes || len(mv.Reason) > maxReasonBytes {
			return bad("move %+v", *mv)
		}
		if err := checkID(mv.Node); err != nil {
			return bad("%v", err)
		}
	case OpEndMove:
		if c.Shard < MetaShard || c.Shard >= MaxShards {
			return bad("shard %d", c.Shard)
		}
	case OpSetReplicas:
		if c.Shard < MetaShard || c.Shard >= MaxShards || len(c.Replicas) != 1 {
			return bad("shard %d with %d replica sets: want one", c.Shard, len(c.Replicas))
		}
		if err := checkReplicas(c.Replicas[0]); err != nil {
			return bad("shard %d: %v", c.Shard, err)
		}
	case OpAddPlugin, OpActivatePlugin, OpDeactivatePlugin, OpRollbackPlugin:
		if err := checkPluginCommand(c.Op, c.Plugin); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// checkReplicas validates one shard's replica set: valid, distinct node
// ids, at most maxReplicas, at least one voter.
func checkReplicas(rs []Replica) error {
	if len(rs) == 0 || len(rs) > maxReplicas {
		return fmt.Errorf("%d replicas: want 1 to %d", len(rs), maxReplicas)
	}
	voters := 0
	for i, r := range rs {
		if err := checkID(r.Node); err != nil {
			return err
		}
		for _, o := range rs[:i] {
			if o.Node == r.Node {
				return fmt.Errorf("node %s listed twice", r.Node)
			}
		}
		if r.Voter {
			voters++
		}
	}
	if voters == 0 {
		return errors.New("no voter")
	}
	return nil
}

// checkNode validates a node's identity and addresses. State and
// AddedEpoch are the map's to set and must be zero in a command.
func checkNode(n *Node) error {
	if err := checkID(n.ID); err != nil {
		return err
	}
	if n.State != "" || n.AddedEpoch != 0 {
		return fmt.Errorf("node %s: state and added_epoch are set by the map", n.ID)
	}
	if len(n.URL) > maxAddrBytes || len(n.RaftAddr) > maxAddrBytes || len(n.Zone) > maxIDBytes {
		return fmt.Errorf("node %s: address or zone too long", n.ID)
	}
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("node %s: url %q: want http(s)://host:port", n.ID, n.URL)
	}
	if host, port, err := net.SplitHostPort(n.RaftAddr); err != nil || host == "" || port == "" {
		return fmt.Errorf("node %s: raft address %q: want host:port", n.ID, n.RaftAddr)
	}
	return nil
}

// checkID validates a node id: 1 to 64 of [A-Za-z0-9._-].
func checkID(id string) error {
	if id == "" || len(id) > maxIDBytes {
		return fmt.Errorf("node id %q: want 1 to %d characters", id, maxIDBytes)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("node id %q: want letters, digits, '.', '_' or '-'", id)
		}
	}
	return nil
}

// Validate checks the map's invariants (see the package doc).
func (m *Map) Validate() error {
	if m.Epoch == 0 {
		if m.Shards != 0 || len(m.Nodes) != 0 || len(m.Moves) != 0 || len(m.Replicas) != 0 || len(m.Meta) != 0 || len(m.Plugins) != 0 {
			return errors.New("meta: unbootstrapped map has content")
		}
		return nil
	}
	if m.Shards < 1 || m.Shards > MaxShards || m.KeyVnodes < 1 || m.Shards*m.KeyVnodes > maxKeyVnodesTotal {
		return fmt.Errorf("meta: layout %d × %d", m.Shards, m.KeyVnodes)
	}
	raft := map[string]string{}
	for i, n := range m.Nodes {
		if i > 0 && m.Nodes[i-1].ID >= n.ID {
			return fmt.Errorf("meta: nodes not sorted or duplicated at %s", n.ID)
		}
		if err := checkID(n.ID); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		if n.State != Active && n.State != Draining || n.AddedEpoch == 0 || n.AddedEpoch > m.Epoch {
			return fmt.Errorf("meta: node %s state %q added at epoch %d", n.ID, n.State, n.AddedEpoch)
		}
		bare := n
		bare.State, bare.AddedEpoch = "", 0
		if err := checkNode(&bare); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		if other, dup := raft[n.RaftAddr]; dup {
			return fmt.Errorf("meta: nodes %s and %s share raft address %s", other, n.ID, n.RaftAddr)
		}
		raft[n.RaftAddr] = n.ID
	}
	if len(m.Replicas) != m.Shards {
		return fmt.Errorf("meta: %d replica sets for %d shards", len(m.Replicas), m.Shards)
	}
	for s, rs := range m.Replicas {
		if err := checkReplicas(rs); err != nil {
			return fmt.Errorf("meta: shard %d: %w", s, err)
		}
		for _, r := range rs {
			if _, ok := m.find(r.Node); !ok {
				return fmt.Errorf("meta: shard %d replica on unknown node %s", s, r.Node)
			}
		}
	}
	if len(m.Meta) > 0 {
		if err := checkReplicas(m.Meta); err != nil {
			return fmt.Errorf("meta: meta group: %w", err)
		}
		for _, r := range m.Meta {
			if _, ok := m.find(r.Node); !ok {
				return fmt.Errorf("meta: meta group replica on unknown node %s", r.Node)
			}
		}
	}
	if err := m.Settings.check(); err != nil {
		return fmt.Errorf("meta: settings: %w", err)
	}
	for i, mv := range m.Moves {
		if i > 0 && m.Moves[i-1].Shard >= mv.Shard {
			return fmt.Errorf("meta: moves not sorted or two for shard %d", mv.Shard)
		}
		if mv.Shard < MetaShard || mv.Shard >= m.Shards {
			return fmt.Errorf("meta: move for shard %d of %d", mv.Shard, m.Shards)
		}
		if _, ok := m.find(mv.Node); !ok {
			return fmt.Errorf("meta: move names unknown node %s", mv.Node)
		}
	}
	if err := m.validatePlugins(); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return nil
}
