package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPlanMeta plans the meta group per case. want is as in TestPlanSteps;
// target is the meta target, in the order PlanMeta lists it.
func TestPlanMeta(t *testing.T) {
	for _, c := range []struct {
		name, nodes, group, target, want string
	}{
		{"steady", "n1 n2 n3 n4", "n1* n2 n3", "n1 n2 n3", ""},
		{"kept where it is, not moved for balance", "n1 n2 n3 n4", "n2 n3* n4", "n2 n3 n4", ""},

		// A meta voter's node dies: replaced, make before break.
		{"dead: add learner", "n1 n2 n3:dead n4", "n1* n2 n3", "n1 n2 n4", "add-learner n4"},
		{"dead: catching up", "n1 n2 n3:dead n4", "n1* n2 n3 n4~", "n1 n2 n4", ""},
		{"dead: promote", "n1 n2 n3:dead n4", "n1* n2 n3 n4~+", "n1 n2 n4", "promote n4"},
		{"dead: remove", "n1 n2 n3:dead n4", "n1* n2 n3 n4", "n1 n2 n4", "remove n3"},
		{"dead without a spare: removed", "n1 n2 n3:dead", "n1* n2 n3", "n1 n2", "remove n3"},
		{"dead leader waits for an election", "n1 n2 n3:dead n4", "n1 n2 n3*", "n1 n2 n4", "stuck"},
		{"two of three dead: no quorum", "n1 n2:dead n3:dead n4", "n1* n2 n3", "n1 n4", "no-quorum"},

		// Size: 3 voters, 5 from five nodes that are not draining.
		{"five nodes: grows", "n1 n2 n3 n4 n5", "n1* n2 n3", "n1 n2 n3 n4 n5", "add-learner n4"},
		{"five nodes: steady", "n1 n2 n3 n4 n5 n6", "n1* n2 n3 n4 n5", "n1 n2 n3 n4 n5", ""},
		{"five nodes, one draining: shrinks", "n1 n2 n3 n4 n5:drain", "n1* n2 n3 n4 n5", "n1 n2 n3", "remove n4"},
		{"four nodes: shrinks to three", "n1 n2 n3 n4", "n1 n2 n3* n4", "n1 n2 n3", "remove n4"},
		{"five of which one dead: four live voters", "n1 n2 n3 n4 n5:dead", "n1* n2 n3 n4 n5", "n1 n2 n3 n4", "remove n5"},

		// Draining: leadership first, then the replica, once replaced.
		{"draining leader hands over", "n1:drain n2 n3 n4", "n1* n2 n3", "n2 n3 n4", "add-learner n4"},
		{"draining leader: replacement promoted", "n1:drain n2 n3 n4", "n1* n2 n3 n4~+", "n2 n3 n4", "promote n4"},
		{"draining leader: transfer", "n1:drain n2 n3 n4", "n1* n2 n3 n4", "n2 n3 n4", "transfer-leader n2"},
		{"draining: removed", "n1:drain n2 n3 n4", "n1 n2* n3 n4", "n2 n3 n4", "remove n1"},

		// Zones: one replica per zone before a second in any.
		{"zones: spread", "n1@a n2@a n3@a n4@b n5@c", "n1* n2 n3", "n1 n4 n5 n2 n3", "add-learner n4"},
		{"zones, four nodes", "n1@a n2@a n3@a n4@b", "n1* n2 n3", "n1 n4 n2", "add-learner n4"},
		{"draining learner removed", "n1 n2 n3:dead n4 n5:drain", "n1* n2 n3 n5~", "n1 n2 n4", "remove n5"},
		{"learner preferred to a newcomer", "n1 n2 n3:dead n4 n5", "n1* n2 n3 n5~", "n1 n2 n5 n4", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes, group := parseNodes(t, c.nodes), parseShard(t, c.group)
			res, err := PlanMeta(nodes, group)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			switch {
			case len(res.Steps) == 1:
				if res.Steps[0].Shard != MetaShard {
					t.Errorf("step %v: want shard MetaShard", res.Steps[0])
				}
				got = res.Steps[0].Kind.String() + " " + res.Steps[0].Node
			case len(res.Stuck) == 1 && res.Stuck[0].NoQuorum:
				got = "no-quorum"
			case len(res.Stuck) == 1:
				got = "stuck"
			case len(res.Steps)+len(res.Stuck) > 1:
				t.Fatalf("%d steps and %d stuck: want at most one", len(res.Steps), len(res.Stuck))
			}
			if got != c.want {
				t.Errorf("PlanMeta(%s | %s) = %q (%v %v); want %q", c.nodes, c.group, got, res.Steps, res.Stuck, c.want)
			}
			if tg := strings.Join(res.Target.Shards[0].Replicas, " "); tg != c.target {
				t.Errorf("target %q; want %q", tg, c.target)
			}
		})
	}
}

// TestPlanMetaConverges drives the meta group of random clusters (3 to 9
// nodes, some dead, suspect or draining, in up to three zones) with
// PlanMeta's steps until it is done, checking every step as Plan's are
// checked (no lost majority, the leader never removed), and at the end:
// the size MetaVoters wants (or every eligible node, if fewer), only
// eligible voters, and no learner. WISP_SEED replays one seed.
func TestPlanMetaConverges(t *testing.T) {
	for _, seed := range runSeeds(t) {
		rng := rand.New(rand.NewPCG(seed, seed))
		if err := convergeMeta(rng); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func convergeMeta(rng *rand.Rand) error {
	var nodes []Node
	for i := range 3 + rng.IntN(7) {
		n := Node{ID: fmt.Sprintf("n%d", i+1), Health: Alive, Zone: string(rune('a' + rng.IntN(3)))}
		switch rng.IntN(8) {
		case 0:
			n.Health = Dead
		case 1:
			n.Draining = true
		}
		nodes = append(nodes, n)
	}
	// The group starts as bootstrapped: the first three nodes, one of
	// them alive leading (a group whose leader is gone waits for an
	// election, which this simulation does not run).
	s := State{Nodes: nodes, Shards: []Shard{{}}}
	for _, n := range nodes[:3] {
		s.Shards[0].Members = append(s.Shards[0].Members, Member{Node: n.ID})
	}
	var live []string
	for _, n := range nodes[:3] {
		if n.Health == Alive {
			live = append(live, n.ID)
		}
	}
	if len(live) < 2 {
		return nil // no quorum from the start: nothing to plan
	}
	s.Shards[0].Leader = live[rng.IntN(len(live))]
	idx := nodeMap(nodes)
	eligible, members := 0, 0
	for _, n := range nodes {
		if !n.Draining {
			members++
			if n.Health != Dead {
				eligible++
			}
		}
	}
	size := MetaVoters(members)
	for range 60 {
		res, err := PlanMeta(nodes, s.Shards[0])
		if err != nil {
			return err
		}
		// checkSteps knows the group as shard 0.
		plain := res
		plain.Steps = slices.Clone(res.Steps)
		for i := range plain.Steps {
			plain.Steps[i].Shard = 0
		}
		if err := checkSteps(s, Options{Replicas: size, MaxConcurrentMoves: 1 << 20}, plain); err != nil {
			return fmt.Errorf("%s | %s: %w", formatNodes(nodes), formatShard(s.Shards[0]), err)
		}
		if len(res.Steps) == 0 {
			if len(res.Stuck) > 0 || res.InMotion > 0 {
				// Waiting for a learner to catch up: it does now. Stuck
				// with every learner caught up is a failure.
				waiting := false
				for i, m := range s.Shards[0].Members {
					if m.Learner && !m.CaughtUp {
						s.Shards[0].Members[i].CaughtUp, waiting = true, true
					}
				}
				if !waiting {
					return fmt.Errorf("%s | %s: no step: stuck %v, in motion %d", formatNodes(nodes), formatShard(s.Shards[0]), res.Stuck, res.InMotion)
				}
				continue
			}
			want := min(size, eligible)
			// Draining voters stay only while the group would otherwise
			// fall below its size.
			kept, draining := 0, 0
			for _, m := range s.Shards[0].Members {
				n := idx[m.Node]
				switch {
				case m.Learner || n.Health == Dead:
					return fmt.Errorf("%s | %s: done with %s a learner or dead", formatNodes(nodes), formatShard(s.Shards[0]), m.Node)
				case n.Draining:
					draining++
				default:
					kept++
				}
			}
			if kept != want || draining > 0 && kept+draining > size {
				return fmt.Errorf("%s | %s: done with %d voters and %d draining; want %d", formatNodes(nodes), formatShard(s.Shards[0]), kept, draining, want)
			}
			return nil
		}
		apply(&s, Step{Kind: res.Steps[0].Kind, Shard: 0, Node: res.Steps[0].Node})
	}
	return fmt.Errorf("%s | %s: not done after 60 steps", formatNodes(nodes), formatShard(s.Shards[0]))
}
