package placement

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestChurn is TestConverge with the world moving under the executor: for
// 20 to 60 ticks, before each Plan, nodes die, come back, are suspected (and
// then found alive or dead), start or stop draining, join, or are forgotten;
// leaders move by election; learners catch up only now and then; and the
// executor carries out each step with probability 0.8, dropping the others
// (a failed or timed-out step). Every Result must pass checkSteps against
// the State it was planned from. Then the world stops and the run must
// settle as TestConverge's do (its bound, minimal moves from there, the
// final state).
func TestChurn(t *testing.T) {
	steps, events := 0, 0
	seeds := runSeeds(t)
	for _, seed := range seeds {
		n, e, err := churn(seed)
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./shards/placement -run TestChurn -seed %d -runs 1", seed, err, seed)
		}
		steps += n
		events += e
	}
	t.Logf("%d runs: %d steps under %d events, then settled", len(seeds), steps, events)
}

func churn(seed uint64) (steps, events int, err error) {
	rng := rand.New(rand.NewPCG(seed, seed^0xc4a2))
	s, o := randomCluster(rng)
	suspectFor := map[string]int{} // ticks a suspect node stays suspect
	next := len(s.Nodes) + 1
	ticks := 20 + rng.IntN(41)
	for tick := 1; tick <= ticks; tick++ {
		ids := slices.Sorted(maps.Keys(suspectFor)) // map order would spoil the replay
		for _, id := range ids {
			if left := suspectFor[id]; left > 1 {
				suspectFor[id] = left - 1
				continue
			}
			delete(suspectFor, id)
			if i := slices.IndexFunc(s.Nodes, func(n Node) bool { return n.ID == id }); i >= 0 && s.Nodes[i].Health == Suspect {
				s.Nodes[i].Health = []Health{Alive, Alive, Dead}[rng.IntN(3)]
			}
		}
		if rng.IntN(3) == 0 {
			events++
			churnEvent(rng, &s, suspectFor, &next)
		}
		for _, sh := range s.Shards {
			for j := range sh.Members {
				if sh.Members[j].Learner && rng.IntN(5) < 3 {
					sh.Members[j].CaughtUp = true
				}
			}
		}
		for i := range s.Shards {
			if rng.IntN(20) == 0 {
				s.Shards[i].Leader = "" // an election; elect picks the winner
			}
		}
		elect(rng, &s)
		res, err := Plan(s, o)
		if err != nil {
			return steps, events, fmt.Errorf("tick %d: %v", tick, err)
		}
		if err := checkSteps(s, o, res); err != nil {
			return steps, events, fmt.Errorf("tick %d: %v\n%s", tick, err, dump(s, res))
		}
		for _, st := range res.Steps {
			if rng.IntN(5) > 0 {
				apply(&s, st)
				steps++
			}
		}
	}
	r, err := settle(rng, s, o)
	return steps + r.steps, events, err
}

// churnEvent changes one node: it dies, comes back, is suspected, starts
// or stops draining, joins (up to 12 nodes) or, if dead, is forgotten.
func churnEvent(rng *rand.Rand, s *State, suspectFor map[string]int, next *int) {
	n := &s.Nodes[rng.IntN(len(s.Nodes))]
	switch rng.IntN(7) {
	case 0:
		n.Health = Dead
	case 1:
		if n.Health == Dead {
			n.Health = Alive
		}
	case 2:
		if n.Health == Alive {
			n.Health = Suspect
			suspectFor[n.ID] = 1 + rng.IntN(3)
		}
	case 3, 4:
		n.Draining = !n.Draining
	case 5:
		if len(s.Nodes) < 12 {
			s.Nodes = append(s.Nodes, Node{ID: fmt.Sprintf("n%d", *next), Health: Alive})
			*next++
		}
	case 6:
		if n.Health == Dead && len(s.Nodes) > 1 {
			id := n.ID
			s.Nodes = slices.DeleteFunc(s.Nodes, func(n Node) bool { return n.ID == id })
		}
	}
}
