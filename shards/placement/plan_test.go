package placement

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/shards/ring"
)

// TestPlanSteps plans one shard per case. Over three eligible nodes the
// target is all three; over n1..n4 it is n4 n1 n2 (preferred leader n4),
// which each case restates so that a change in the ring shows here first.
//
// want is "" for no step and no Stuck entry, "KIND NODE" for a step,
// "stuck" for a Stuck entry that waits, "no-quorum" for one that cannot.
func TestPlanSteps(t *testing.T) {
	for _, c := range []struct {
		name, nodes, shard, target, want string
	}{
		{"steady", "n1 n2 n3", "n1* n2 n3", "n1 n2 n3", ""},
		{"steady leader anywhere", "n1 n2 n3", "n1 n2 n3*", "n1 n2 n3", ""},

		// Replacing a dead replica: add, catch up, promote, remove.
		{"dead: add learner", "n1 n2 n3:dead n4", "n1* n2 n3", "n4 n1 n2", "add-learner n4"},
		{"dead: learner catching up", "n1 n2 n3:dead n4", "n1* n2 n3 n4~", "n4 n1 n2", ""},
		{"dead: promote", "n1 n2 n3:dead n4", "n1* n2 n3 n4~+", "n4 n1 n2", "promote n4"},
		{"dead: remove after promotion", "n1 n2 n3:dead n4", "n1* n2 n3 n4", "n4 n1 n2", "remove n3"},
		{"dead: done", "n1 n2 n3:dead n4", "n1* n2 n4", "n4 n1 n2", ""},
		{"forgotten node is dead", "n1 n2 n4", "n1* n2 n3", "n4 n1 n2", "add-learner n4"},
		{"dead and draining is dead", "n1 n2 n3:dead,drain n4", "n1* n2 n3", "n4 n1 n2", "add-learner n4"},
		{"dead voter kept until promotion", "n1 n2 n3:dead n4", "n1* n2 n3 n4~", "n4 n1 n2", ""},
		{"dead removed when target short", "n1 n2 n3:dead", "n1* n2 n3", "n1 n2", "remove n3"},
		{"dead removed first when over-replicated", "n1 n2 n3 n4:dead n5:dead", "n1* n2 n3 n4 n5", "n1 n2 n3", "remove n4"},
		{"single voter grows", "n1 n2 n3", "n1*", "n1 n2 n3", "add-learner n2"},
		{"two voters: promote keeps majority", "n1 n2 n3", "n1* n2~+", "n1 n2 n3", "promote n2"},

		// Quorum and leaders.
		{"no quorum", "n1 n2:dead n3:dead n4", "n1* n2 n3", "n4 n1", "no-quorum"},
		{"no quorum with learner", "n1 n2:dead n3:dead n4", "n1* n2 n3 n4~+", "n4 n1", "no-quorum"},
		{"no quorum 2 of 4", "n1 n2 n3:dead n4:dead", "n1* n2 n3 n4", "n1 n2", "no-quorum"},
		{"no leader", "n1 n2 n3:dead n4", "n1 n2 n3", "n4 n1 n2", "stuck"},
		{"leader on dead node", "n1 n2 n3:dead n4", "n1 n2 n3*", "n4 n1 n2", "stuck"},
		{"leader is a learner", "n1 n2 n3", "n1 n2 n3 n4~*", "n1 n2 n3", "stuck"},
		{"leader transfer before removal", "n1 n2 n3:drain n4", "n1 n2 n3* n4", "n4 n1 n2", "transfer-leader n4"},
		{"removal after transfer", "n1 n2 n3:drain n4", "n1 n2 n3 n4*", "n4 n1 n2", "remove n3"},
		{"non-leader removed before leader", "n1 n2 n3", "n1 n2 n3* n4 n5", "n1 n2 n3", "remove n4"},
		{"transfer to target's preferred leader", "n1 n2 n3 n4", "n1 n2 n3* n4", "n4 n1 n2", "transfer-leader n4"},
		{"transfer skips dead preferred leader", "n1 n2 n3 n4:dead", "n1 n2 n3*", "n1 n2 n3", ""},

		// Suspect nodes: in the target, not destinations.
		{"suspect voter keeps its replica", "n1 n2 n3:suspect", "n1* n2 n3", "n1 n2 n3", ""},
		{"suspect target node waits", "n1 n2 n3:dead n4:suspect", "n1* n2 n3", "n4 n1 n2", "stuck"},
		{"suspect learner not promoted", "n1 n2 n3:dead n4:suspect", "n1* n2 n3 n4~+", "n4 n1 n2", "stuck"},
		{"suspect voter blocks promotion", "n1 n2:suspect n3:dead n4", "n1* n2 n3 n4~+", "n4 n1 n2", "stuck"},
		{"suspect voters block removal", "n1:suspect n2:suspect n3 n4", "n1* n2 n3 n4", "n4 n1 n2", "stuck"},
		{"suspect leader may act", "n1:suspect n2 n3:dead n4", "n1* n2 n3", "n4 n1 n2", "add-learner n4"},

		// Rebalance: a fourth node joins.
		{"rebalance: add", "n1 n2 n3 n4", "n1* n2 n3", "n4 n1 n2", "add-learner n4"},
		{"rebalance: promote", "n1 n2 n3 n4", "n1* n2 n3 n4~+", "n4 n1 n2", "promote n4"},
		{"rebalance: remove", "n1 n2 n3 n4", "n1* n2 n3 n4", "n4 n1 n2", "remove n3"},
		{"stray learner removed", "n1 n2 n3 n4", "n4* n1 n2 n3~+", "n4 n1 n2", "remove n3"},
		{"learner on forgotten node removed", "n1 n2 n3", "n1* n2 n3 n9~", "n1 n2 n3", "remove n9"},

		// A node back before it was replaced: its learner-replacement goes,
		// the shard is left alone.
		{"back: replacement learner dropped", "n1 n2 n3 n4", "n4 n1* n2 n3~", "n4 n1 n2", "remove n3"},
		{"back: members are the target", "n1 n2 n3 n4", "n4 n1* n2", "n4 n1 n2", ""},

		// Draining.
		{"drain: add first", "n1 n2 n3:drain n4", "n1 n2 n3*", "n4 n1 n2", "add-learner n4"},
		{"drain: leader leaves while learner catches up", "n1 n2 n3:drain n4", "n1 n2 n3* n4~", "n4 n1 n2", "transfer-leader n1"},
		{"drain short: replica stays, leadership leaves", "n1 n2 n3:drain", "n1 n2 n3*", "n1 n2", "transfer-leader n1"},
		{"drain short: settled", "n1 n2 n3:drain", "n1 n2* n3", "n1 n2", ""},
		{"drain short: extra removed down to R", "n1 n2 n3:drain n4:drain", "n1 n2* n3 n4", "n1 n2", "remove n3"},
		{"drain everything: leader stays", "n1:drain n2:drain n3:drain", "n1* n2 n3", "", ""},
		{"all moved away: non-leader first", "n1 n2 n3 n4:drain n5:drain n6:drain", "n1 n4* n5 n6", "n1 n2 n3", "remove n5"},
		{"all moved away: leader waits for a target voter", "n1 n2 n3 n4:drain n5:drain", "n1~ n4* n5", "n1 n2 n3", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := State{Nodes: parseNodes(t, c.nodes), Shards: []Shard{parseShard(t, c.shard)}}
			res, err := Plan(s, Options{})
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var target []string
			if len(res.Target.Shards) > 0 {
				target = res.Target.Shards[0].Replicas
			}
			if got := strings.Join(target, " "); got != c.target {
				t.Fatalf("target = %q; want %q (the case assumes it)", got, c.target)
			}
			if err := checkSteps(s, Options{}, res); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range res.Steps {
				got = append(got, st.Kind.String()+" "+st.Node)
			}
			for _, st := range res.Stuck {
				if st.Reason == "" {
					t.Errorf("%v: no reason", st)
				}
				if st.NoQuorum {
					got = append(got, "no-quorum")
				} else {
					got = append(got, "stuck")
				}
			}
			if g := strings.Join(got, "; "); g != c.want {
				t.Errorf("Plan(%s | %s) = %q; want %q\nsteps %v\nstuck %v", c.nodes, c.shard, g, c.want, res.Steps, res.Stuck)
			}
		})
	}
}

// TestPlanOrder checks that steps come most urgent first and that the move
// limit goes to the most urgent shard. The target is n1 n2 n3 for every
// shard (n4 drains, n5 and n6 are dead). Leadership goes to the preferred
// leader (n2 for shard 2) or, when that is a learner (n3 for shard 4), the
// next voter in ring order (n3 n2 n1).
func TestPlanOrder(t *testing.T) {
	s := State{
		Nodes: parseNodes(t, "n1 n2 n3 n4:drain n5:dead n6:dead"),
		Shards: []Shard{
			parseShard(t, "n1* n2 n4"),       // 0: drain, add n3
			parseShard(t, "n1* n2 n5"),       // 1: dead voter, add n3
			parseShard(t, "n1 n2 n3 n4*"),    // 2: drain, leader to move before removal
			parseShard(t, "n1* n2 n3 n4 n5"), // 3: dead voter, one more failure tolerated
			parseShard(t, "n1 n2 n3~ n4*"),   // 4: drain, learner catching up: leadership leaves
			parseShard(t, "n1* n2 n3"),       // 5: settled
			parseShard(t, "n1* n5 n6"),       // 6: no quorum
		},
	}
	for _, c := range []struct {
		moves int
		want  string
	}{
		// In motion: 2, 3, 4. Shard 1 is more urgent than shard 0.
		{5, "1:add-learner n3, 3:remove n5, 0:add-learner n3, 2:transfer-leader n2, 4:transfer-leader n2"},
		{4, "1:add-learner n3, 3:remove n5, 2:transfer-leader n2, 4:transfer-leader n2"},
		{3, "3:remove n5, 2:transfer-leader n2, 4:transfer-leader n2"},
		{1, "3:remove n5, 2:transfer-leader n2, 4:transfer-leader n2"},
	} {
		o := Options{MaxConcurrentMoves: c.moves}
		res, err := Plan(s, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkSteps(s, o, res); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range res.Steps {
			got = append(got, fmt.Sprintf("%d:%v %s", st.Shard, st.Kind, st.Node))
		}
		if g := strings.Join(got, ", "); g != c.want {
			t.Errorf("MaxConcurrentMoves %d: steps %s; want %s", c.moves, g, c.want)
		}
		if res.InMotion != 3 {
			t.Errorf("InMotion = %d; want 3", res.InMotion)
		}
		if len(res.Stuck) != 1 || res.Stuck[0].Shard != 6 || !res.Stuck[0].NoQuorum {
			t.Errorf("Stuck = %v; want shard 6 without quorum", res.Stuck)
		}
	}
}

// TestMoveLimit adds a fourth node to 3 nodes holding 16 shards: about a
// quarter of the shards move to it, at most MaxConcurrentMoves at once.
func TestMoveLimit(t *testing.T) {
	s := State{Nodes: parseNodes(t, "n1 n2 n3 n4")}
	for range 16 {
		s.Shards = append(s.Shards, parseShard(t, "n1* n2 n3"))
	}
	for _, moves := range []int{1, 2, 3, 16} {
		o := Options{MaxConcurrentMoves: moves}
		res, err := Plan(s, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkSteps(s, o, res); err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, sr := range res.Target.Shards {
			if slices.Contains(sr.Replicas, "n4") {
				want++
			}
		}
		if want < 2 {
			t.Fatalf("only %d shards move to n4; the test needs 2 or more", want)
		}
		if len(res.Steps) != min(moves, want) {
			t.Errorf("MaxConcurrentMoves %d: %d steps %v; want %d", moves, len(res.Steps), res.Steps, min(moves, want))
		}
	}
}

func TestPlanErrors(t *testing.T) {
	ok := parseShard(t, "n1* n2 n3")
	for _, c := range []struct {
		name string
		s    State
		o    Options
	}{
		{"empty node id", State{Nodes: []Node{{Health: Alive}}, Shards: []Shard{ok}}, Options{}},
		{"zero health", State{Nodes: []Node{{ID: "n1"}}, Shards: []Shard{ok}}, Options{}},
		{"bad health", State{Nodes: []Node{{ID: "n1", Health: 9}}, Shards: []Shard{ok}}, Options{}},
		{"duplicate node", State{Nodes: parseNodes(t, "n1 n2 n1"), Shards: []Shard{ok}}, Options{}},
		{"empty member", State{Nodes: parseNodes(t, "n1"), Shards: []Shard{{Members: []Member{{}}}}}, Options{}},
		{"member twice", State{Nodes: parseNodes(t, "n1 n2"), Shards: []Shard{parseShard(t, "n1* n2 n1~")}}, Options{}},
		{"negative replicas", State{Nodes: parseNodes(t, "n1"), Shards: []Shard{ok}}, Options{Replicas: -1}},
		{"too many replicas", State{Nodes: parseNodes(t, "n1"), Shards: []Shard{ok}}, Options{Replicas: 17}},
		{"negative moves", State{Nodes: parseNodes(t, "n1"), Shards: []Shard{ok}}, Options{MaxConcurrentMoves: -1}},
		{"bad ring option", State{Nodes: parseNodes(t, "n1 n2 n3"), Shards: []Shard{ok}}, Options{Ring: []ring.Option{ring.WithLoadFactor(0.5)}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Plan(c.s, c.o)
			if err == nil {
				t.Fatalf("Plan = %+v, nil; want an error", res)
			}
			if !strings.HasPrefix(err.Error(), "placement: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	_, err := Plan(State{Nodes: parseNodes(t, "n1 n1")}, Options{})
	if !errors.Is(err, ring.ErrDuplicateNode) {
		t.Errorf("duplicate node: %v; want ring.ErrDuplicateNode", err)
	}
	res, err := Plan(State{Nodes: parseNodes(t, "n1")}, Options{})
	if err != nil || len(res.Steps)+len(res.Stuck) != 0 {
		t.Errorf("no shards: %+v, %v; want an empty Result", res, err)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Alive.String(), "alive"},
		{Health(0).String(), "health(0)"},
		{Kind(0).String(), "kind(0)"},
		{Step{Kind: Promote, Shard: 3, Node: "n5", Reason: "learner caught up"}.String(), "shard 3: promote n5 (learner caught up)"},
		{Stuck{Shard: 1, Reason: "no leader"}.String(), "shard 1: stuck (no leader)"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q; want %q", c.got, c.want)
		}
	}
}
