package meta

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

func node(i int) Node {
	return Node{ID: fmt.Sprintf("n%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d", 8080+i), RaftAddr: fmt.Sprintf("127.0.0.1:%d", 7080+i)}
}

// bootstrapCmd bootstraps 8 shards on n1..n<nodes>, every shard on n1 and
// n2 (and n3 if there is one).
func bootstrapCmd(nodes int) *Command {
	var ns []Node
	for i := 1; i <= nodes; i++ {
		ns = append(ns, node(i))
	}
	var set []Replica
	for i := 1; i <= min(nodes, 3); i++ {
		set = append(set, Replica{Node: fmt.Sprintf("n%d", i), Voter: true})
	}
	cmd := &Command{Op: OpBootstrap, Shards: 8, KeyVnodes: 1024, Nodes: ns}
	for range 8 {
		cmd.Replicas = append(cmd.Replicas, set)
	}
	return cmd
}

func bootstrapped(t *testing.T, nodes int) *Map {
	t.Helper()
	m, err := Apply(&Map{}, bootstrapCmd(nodes))
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return m
}

func TestApply(t *testing.T) {
	n4 := node(4)
	moved := node(2)
	moved.RaftAddr = "127.0.0.1:9999"
	clash := node(9)
	clash.RaftAddr = node(1).RaftAddr
	tests := []struct {
		name      string
		cmd       Command
		err       error
		sameEpoch bool // a no-op: the epoch stays
		check     func(t *testing.T, m *Map)
	}{
		{name: "add a node", cmd: Command{Op: OpAddNode, Node: &n4}, check: func(t *testing.T, m *Map) {
			if n, ok := m.Node("n4"); !ok || n.State != Active || n.AddedEpoch != 2 {
				t.Errorf("Node(n4) = %+v, %v; want active, added at epoch 2", n, ok)
			}
		}},
		{name: "add a member again", cmd: Command{Op: OpAddNode, Node: ptr(node(2))}, sameEpoch: true},
		{name: "a member's id at another address", cmd: Command{Op: OpAddNode, Node: &moved}, err: ErrConflict},
		{name: "another node at a member's raft address", cmd: Command{Op: OpAddNode, Node: &clash}, err: ErrConflict},
		{name: "add with a bad id", cmd: Command{Op: OpAddNode, Node: &Node{ID: "n 1", URL: "http://a:1", RaftAddr: "a:2"}}, err: ErrInvalid},
		{name: "add with a bad url", cmd: Command{Op: OpAddNode, Node: &Node{ID: "n5", URL: "ftp://a:1", RaftAddr: "a:2"}}, err: ErrInvalid},
		{name: "add with a url without port", cmd: Command{Op: OpAddNode, Node: &Node{ID: "n5", URL: "http://a", RaftAddr: "a:2"}}, err: ErrInvalid},
		{name: "add with a bad raft address", cmd: Command{Op: OpAddNode, Node: &Node{ID: "n5", URL: "http://a:1", RaftAddr: "a"}}, err: ErrInvalid},
		{name: "add with a state", cmd: Command{Op: OpAddNode, Node: &Node{ID: "n5", URL: "http://a:1", RaftAddr: "a:2", State: Draining}}, err: ErrInvalid},
		{name: "drain", cmd: Command{Op: OpSetNodeState, NodeID: "n2", State: Draining}, check: func(t *testing.T, m *Map) {
			if n, _ := m.Node("n2"); n.State != Draining {
				t.Errorf("n2 state %q; want draining", n.State)
			}
		}},
		{name: "activate an active node", cmd: Command{Op: OpSetNodeState, NodeID: "n2", State: Active}, sameEpoch: true},
		{name: "drain an unknown node", cmd: Command{Op: OpSetNodeState, NodeID: "n7", State: Draining}, err: ErrUnknownNode},
		{name: "an unknown state", cmd: Command{Op: OpSetNodeState, NodeID: "n2", State: "gone"}, err: ErrInvalid},
		{name: "remove a node that holds replicas", cmd: Command{Op: OpRemoveNode, NodeID: "n3"}, err: ErrInUse},
		{name: "set replicas", cmd: Command{Op: OpSetReplicas, Shard: 4, Replicas: [][]Replica{{{Node: "n1", Voter: true}, {Node: "n2", Voter: true}, {Node: "n3", Voter: false}}}}, check: func(t *testing.T, m *Map) {
			if rs := m.Replicas[4]; len(rs) != 3 || rs[2].Voter {
				t.Errorf("Replicas[4] = %+v; want n3 a learner", rs)
			}
		}},
		{name: "set the same replicas", cmd: Command{Op: OpSetReplicas, Shard: 1, Replicas: [][]Replica{{{Node: "n1", Voter: true}, {Node: "n2", Voter: true}, {Node: "n3", Voter: true}}}}, sameEpoch: true},
		{name: "replicas on an unknown node", cmd: Command{Op: OpSetReplicas, Shard: 1, Replicas: [][]Replica{{{Node: "n9", Voter: true}}}}, err: ErrUnknownNode},
		{name: "replicas without a voter", cmd: Command{Op: OpSetReplicas, Shard: 1, Replicas: [][]Replica{{{Node: "n1"}}}}, err: ErrInvalid},
		{name: "a replica twice", cmd: Command{Op: OpSetReplicas, Shard: 1, Replicas: [][]Replica{{{Node: "n1", Voter: true}, {Node: "n1"}}}}, err: ErrInvalid},
		{name: "replicas past the shards", cmd: Command{Op: OpSetReplicas, Shard: 8, Replicas: [][]Replica{{{Node: "n1", Voter: true}}}}, err: ErrInvalid},
		{name: "set the meta group's replicas", cmd: Command{Op: OpSetReplicas, Shard: MetaShard, Replicas: [][]Replica{{{Node: "n1", Voter: true}, {Node: "n2", Voter: false}}}}, check: func(t *testing.T, m *Map) {
			if rs := m.ReplicasOf(MetaShard); len(rs) != 2 || rs[1].Voter || len(m.Replicas) != 8 {
				t.Errorf("Meta = %+v; want n1 a voter and n2 a learner, and the shards untouched", rs)
			}
		}},
		{name: "the meta group on an unknown node", cmd: Command{Op: OpSetReplicas, Shard: MetaShard, Replicas: [][]Replica{{{Node: "n9", Voter: true}}}}, err: ErrUnknownNode},
		{name: "replicas below the meta group", cmd: Command{Op: OpSetReplicas, Shard: -2, Replicas: [][]Replica{{{Node: "n1", Voter: true}}}}, err: ErrInvalid},
		{name: "a move of the meta group", cmd: Command{Op: OpStartMove, Move: &Move{Shard: MetaShard, Kind: "add-learner", Node: "n2"}}, check: func(t *testing.T, m *Map) {
			if mv, ok := m.Move(MetaShard); !ok || mv.Node != "n2" || m.Moves[0].Shard != MetaShard {
				t.Errorf("Move(MetaShard) = %+v, %v; moves %+v", mv, ok, m.Moves)
			}
		}},
		{name: "remove an unknown node", cmd: Command{Op: OpRemoveNode, NodeID: "n7"}, err: ErrUnknownNode},
		{name: "settings", cmd: Command{Op: OpSetSettings, Settings: &Settings{MaxMemoryBytes: ptr[int64](1 << 30), EvictionPolicy: ptr("allkeys-lru")}}, check: func(t *testing.T, m *Map) {
			if *m.Settings.MaxMemoryBytes != 1<<30 || *m.Settings.EvictionPolicy != "allkeys-lru" {
				t.Errorf("settings %+v", m.Settings)
			}
		}},
		{name: "a budget of 0: no limit, and set", cmd: Command{Op: OpSetSettings, Settings: &Settings{MaxMemoryBytes: ptr[int64](0)}}, check: func(t *testing.T, m *Map) {
			if m.Settings.MaxMemoryBytes == nil || *m.Settings.MaxMemoryBytes != 0 || m.Settings.EvictionPolicy != nil {
				t.Errorf("settings %+v; want the budget set to 0 and the policy unset", m.Settings)
			}
		}},
		{name: "settings that set nothing", cmd: Command{Op: OpSetSettings, Settings: &Settings{}}, sameEpoch: true},
		{name: "negative budget", cmd: Command{Op: OpSetSettings, Settings: &Settings{MaxMemoryBytes: ptr[int64](-1)}}, err: ErrInvalid},
		{name: "empty policy", cmd: Command{Op: OpSetSettings, Settings: &Settings{EvictionPolicy: ptr("")}}, err: ErrInvalid},
		{name: "start a move", cmd: Command{Op: OpStartMove, Move: &Move{Shard: 5, Kind: "add-learner", Node: "n1", StartedUnixMs: 42}}, check: func(t *testing.T, m *Map) {
			if mv, ok := m.Move(5); !ok || mv.Node != "n1" {
				t.Errorf("Move(5) = %+v, %v", mv, ok)
			}
		}},
		{name: "a move past the shards", cmd: Command{Op: OpStartMove, Move: &Move{Shard: 8, Kind: "add-learner", Node: "n1"}}, err: ErrInvalid},
		{name: "a move to an unknown node", cmd: Command{Op: OpStartMove, Move: &Move{Shard: 1, Kind: "add-learner", Node: "n9"}}, err: ErrUnknownNode},
		{name: "end a move that is not there", cmd: Command{Op: OpEndMove, Shard: 3}, sameEpoch: true},
		{name: "end the meta group's move that is not there", cmd: Command{Op: OpEndMove, Shard: MetaShard}, sameEpoch: true},
		{name: "bootstrap twice", cmd: *bootstrapCmd(3), err: ErrBootstrapped},
		{name: "fields of another op", cmd: Command{Op: OpRemoveNode, NodeID: "n1", State: Draining}, err: ErrInvalid},
		{name: "an unknown op", cmd: Command{Op: "explode"}, err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := bootstrapped(t, 3)
			before, _ := encodeMap(m)
			got, err := Apply(m, &tt.cmd)
			if after, _ := encodeMap(m); !bytes.Equal(before, after) {
				t.Fatalf("Apply changed its input map")
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != m {
					t.Fatalf("Apply = %v; want %v and the map unchanged", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply = %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate after Apply: %v", err)
			}
			wantEpoch := m.Epoch + 1
			if tt.sameEpoch {
				wantEpoch = m.Epoch
			}
			if got.Epoch != wantEpoch {
				t.Errorf("epoch %d; want %d", got.Epoch, wantEpoch)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestNotBootstrapped(t *testing.T) {
	if _, err := Apply(&Map{}, &Command{Op: OpAddNode, Node: ptr(node(1))}); !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("AddNode before Bootstrap = %v; want ErrNotBootstrapped", err)
	}
	twice := bootstrapCmd(1)
	twice.Nodes = append(twice.Nodes, node(1))
	if _, err := Apply(&Map{}, twice); !errors.Is(err, ErrConflict) {
		t.Errorf("Bootstrap listing a node twice = %v; want ErrConflict", err)
	}
	short := bootstrapCmd(3)
	short.Replicas = short.Replicas[:7]
	if _, err := Apply(&Map{}, short); !errors.Is(err, ErrInvalid) {
		t.Errorf("Bootstrap with 7 replica sets for 8 shards = %v; want ErrInvalid", err)
	}
}

// TestRemoveNodeDropsItsMoves: a removed node's move goes with it.
func TestRemoveNodeDropsItsMoves(t *testing.T) {
	m := bootstrapped(t, 4)
	m = mustApply(t, m, &Command{Op: OpStartMove, Move: &Move{Shard: 2, Kind: "add-learner", Node: "n4"}})
	m = mustApply(t, m, &Command{Op: OpRemoveNode, NodeID: "n4"})
	if _, ok := m.Move(2); ok {
		t.Errorf("a move to the removed node n3 is still recorded")
	}
}

// TestRemoveMetaReplicaHolder: a node that holds a replica of the meta
// group cannot be removed until the group has moved off it.
func TestRemoveMetaReplicaHolder(t *testing.T) {
	m := bootstrapped(t, 4)
	m = mustApply(t, m, &Command{Op: OpSetReplicas, Shard: MetaShard, Replicas: [][]Replica{{{Node: "n1", Voter: true}, {Node: "n4", Voter: true}}}})
	if _, err := Apply(m, &Command{Op: OpRemoveNode, NodeID: "n4"}); !errors.Is(err, ErrInUse) {
		t.Fatalf("removing a meta replica's node = %v; want ErrInUse", err)
	}
	m = mustApply(t, m, &Command{Op: OpSetReplicas, Shard: MetaShard, Replicas: [][]Replica{{{Node: "n1", Voter: true}}}})
	if _, err := Apply(m, &Command{Op: OpRemoveNode, NodeID: "n4"}); err != nil {
		t.Fatalf("removing n4 once the meta group left it = %v", err)
	}
}

// TestRandomCommands applies random commands, valid and not, and checks
// the invariants after each, the epoch (raised by one by a change, kept by
// a no-op or an error) and that the encodings round-trip. WISP_SEED replays.
func TestRandomCommands(t *testing.T) {
	seed := uint64(rand.Int64())
	if s := os.Getenv("WISP_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (WISP_SEED=%d replays)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed))
	m := bootstrapped(t, 3)
	for i := range 5000 {
		cmd := randomCommand(r)
		b, err := EncodeCommand(cmd)
		if err == nil {
			dec, derr := DecodeCommand(b)
			if derr != nil {
				t.Fatalf("step %d: DecodeCommand(EncodeCommand(%+v)) = %v", i, cmd, derr)
			}
			cmd = dec
		}
		next, err := Apply(m, cmd)
		switch {
		case err != nil && next != m:
			t.Fatalf("step %d: %+v failed (%v) but changed the map", i, cmd, err)
		case next.Epoch != m.Epoch && next.Epoch != m.Epoch+1:
			t.Fatalf("step %d: epoch %d -> %d", i, m.Epoch, next.Epoch)
		}
		if err := next.Validate(); err != nil {
			t.Fatalf("step %d: %+v: %v", i, cmd, err)
		}
		m = next
	}
	var buf bytes.Buffer
	if err := WriteMap(&buf, m); err != nil {
		t.Fatal(err)
	}
	back, err := ReadMap(&buf)
	if err != nil {
		t.Fatalf("ReadMap(WriteMap(m)) = %v", err)
	}
	a, _ := encodeMap(m)
	b, _ := encodeMap(back)
	if !bytes.Equal(a, b) {
		t.Errorf("map round trip differs:\n%s\n%s", a, b)
	}
	t.Logf("final epoch %d, %d nodes, %d moves, %d plugins", m.Epoch, len(m.Nodes), len(m.Moves), len(m.Plugins))
}

func randomCommand(r *rand.Rand) *Command {
	id := fmt.Sprintf("n%d", r.IntN(8))
	switch r.IntN(9) {
	case 8:
		return randomPluginCommand(r)
	case 0:
		n := node(r.IntN(8))
		if r.IntN(4) == 0 {
			n.RaftAddr = node(r.IntN(8)).RaftAddr
		}
		return &Command{Op: OpAddNode, Node: &n}
	case 1:
		st := Active
		if r.IntN(2) == 0 {
			st = Draining
		}
		return &Command{Op: OpSetNodeState, NodeID: id, State: st}
	case 2:
		if r.IntN(3) == 0 {
			return &Command{Op: OpRemoveNode, NodeID: id}
		}
		return &Command{Op: OpEndMove, Shard: r.IntN(11) - 1}
	case 6:
		var set []Replica
		for _, i := range r.Perm(8)[:1+r.IntN(4)] {
			set = append(set, Replica{Node: fmt.Sprintf("n%d", i), Voter: r.IntN(3) > 0})
		}
		return &Command{Op: OpSetReplicas, Shard: r.IntN(11) - 1, Replicas: [][]Replica{set}} // -1: the meta group
	case 3:
		return &Command{Op: OpSetSettings, Settings: &Settings{MaxMemoryBytes: ptr(int64(r.IntN(3)) << 20)}}
	case 4, 5:
		return &Command{Op: OpStartMove, Move: &Move{Shard: r.IntN(11) - 1, Kind: "add-learner", Node: id}}
	default:
		return bootstrapCmd(1 + r.IntN(3))
	}
}

func mustApply(t *testing.T, m *Map, cmd *Command) *Map {
	t.Helper()
	next, err := Apply(m, cmd)
	if err != nil {
		t.Fatalf("Apply(%+v) = %v", cmd, err)
	}
	return next
}

func ptr[T any](v T) *T { return &v }

// encodeMap is WriteMap into a slice (tests).
func encodeMap(m *Map) ([]byte, error) {
	var buf bytes.Buffer
	err := WriteMap(&buf, m)
	return buf.Bytes(), err
}

// TestSettingsMerge: each OpSetSettings sets the fields it gives and keeps
// the others, so two operators setting different fields lose nothing.
func TestSettingsMerge(t *testing.T) {
	m := bootstrapped(t, 3)
	m = mustApply(t, m, &Command{Op: OpSetSettings, Settings: &Settings{MaxMemoryBytes: ptr[int64](1 << 20)}})
	m = mustApply(t, m, &Command{Op: OpSetSettings, Settings: &Settings{EvictionPolicy: ptr("allkeys-lfu")}})
	if s := m.Settings; s.MaxMemoryBytes == nil || *s.MaxMemoryBytes != 1<<20 || s.EvictionPolicy == nil || *s.EvictionPolicy != "allkeys-lfu" {
		t.Fatalf("settings %+v; want both fields", s)
	}
}
