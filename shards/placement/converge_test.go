package placement

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wisp-db/wisp/shards/ring"
)

// Replay one randomized run: go test ./shards/placement -run TestConverge -seed N -runs 1.
var (
	seedFlag = flag.Uint64("seed", 0, "seed of the first run of TestConverge and TestChurn (0: WISP_SEED, else the clock)")
	runsFlag = flag.Int("runs", 0, "runs of TestConverge and TestChurn (0: 150, 40 with -short)")
)

// runSeeds returns the seeds of the runs, consecutive from -seed, WISP_SEED
// or the clock, and logs how to replay them.
func runSeeds(t *testing.T) []uint64 {
	seed := *seedFlag
	if seed == 0 {
		if s := os.Getenv("WISP_SEED"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("WISP_SEED=%q: %v", s, err)
			}
			seed = n
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	runs := *runsFlag
	if runs == 0 {
		runs = 150
		if testing.Short() {
			runs = 40
		}
	}
	t.Logf("seeds %d..%d (replay one with -seed N -runs 1)", seed, seed+uint64(runs)-1)
	seeds := make([]uint64, runs)
	for i := range seeds {
		seeds[i] = seed + uint64(i)
	}
	return seeds
}

// randomCluster returns a cluster that has been through some history: the
// shards were placed over an earlier member list (some of whose nodes are
// now gone from State.Nodes), then configurations were disturbed (extra or
// missing voters, learners caught up or not, no leader), then nodes died,
// became suspect or started draining. The options are random too. Some
// shards may have lost their quorum.
func randomCluster(rng *rand.Rand) (State, Options) {
	var s State
	o := Options{
		Replicas:           []int{3, 3, 3, 3, 1, 2, 5}[rng.IntN(7)],
		MaxConcurrentMoves: 1 + rng.IntN(8),
	}
	numNodes := 3 + rng.IntN(8)
	zones := rng.IntN(2) == 0
	for i := range numNodes {
		n := Node{ID: fmt.Sprintf("n%d", i+1), Health: Alive}
		if zones {
			n.Zone = string(rune('a' + rng.IntN(3)))
		}
		s.Nodes = append(s.Nodes, n)
	}
	var old []ring.Node
	for _, n := range s.Nodes {
		if rng.IntN(5) > 0 {
			old = append(old, ring.Node{ID: n.ID, Zone: n.Zone})
		}
	}
	if rng.IntN(3) == 0 {
		for i := range 1 + rng.IntN(2) {
			old = append(old, ring.Node{ID: fmt.Sprintf("gone%d", i+1)})
		}
	}
	if len(old) == 0 {
		old = append(old, ring.Node{ID: "n1"})
	}
	all := make([]string, 0, len(s.Nodes)+len(old))
	for _, n := range s.Nodes {
		all = append(all, n.ID)
	}
	for _, n := range old {
		if !slices.Contains(all, n.ID) {
			all = append(all, n.ID)
		}
	}

	numShards := 1 + rng.IntN(64)
	p, err := ring.Place(numShards, old, min(o.Replicas, len(old)))
	if err != nil {
		panic(err)
	}
	for _, sr := range p.Shards {
		var sh Shard
		for _, id := range sr.Replicas {
			sh.Members = append(sh.Members, Member{Node: id})
		}
		if rng.IntN(5) == 0 && len(sh.Members) > 1 {
			sh.Members = slices.Delete(sh.Members, 0, 1)
		}
		for _, learner := range []bool{false, true} {
			if rng.IntN(5) > 0 {
				continue
			}
			id := all[rng.IntN(len(all))]
			if memberIndex(sh, id) < 0 {
				sh.Members = append(sh.Members, Member{Node: id, Learner: learner, CaughtUp: learner && rng.IntN(2) == 0})
			}
		}
		if rng.IntN(10) > 0 {
			sh.Leader = sh.Members[rng.IntN(len(sh.Members))].Node // maybe a learner: no leader
		}
		rng.Shuffle(len(sh.Members), func(i, j int) { sh.Members[i], sh.Members[j] = sh.Members[j], sh.Members[i] })
		s.Shards = append(s.Shards, sh)
	}

	for i := range s.Nodes {
		switch x := rng.IntN(20); {
		case x < 3:
			s.Nodes[i].Health = Dead
		case x < 5:
			s.Nodes[i].Health = Suspect
		}
		s.Nodes[i].Draining = rng.IntN(7) == 0
	}
	return s, o
}

// shuffled returns s with its nodes and every shard's members reordered.
func shuffled(rng *rand.Rand, s State) State {
	c := cloneState(s)
	rng.Shuffle(len(c.Nodes), func(i, j int) { c.Nodes[i], c.Nodes[j] = c.Nodes[j], c.Nodes[i] })
	for _, sh := range c.Shards {
		rng.Shuffle(len(sh.Members), func(i, j int) { sh.Members[i], sh.Members[j] = sh.Members[j], sh.Members[i] })
	}
	return c
}

// elect gives every shard without a live leader a new one among its live
// voters, if they are a majority, as Raft would; otherwise the shard keeps
// its stale or empty leader.
func elect(rng *rand.Rand, s *State) {
	nodes := nodeMap(s.Nodes)
	for i := range s.Shards {
		sh := &s.Shards[i]
		var live []string
		voters := 0
		for _, m := range sh.Members {
			if m.Learner {
				continue
			}
			voters++
			if h := nodes[m.Node].Health; h == Alive || h == Suspect {
				live = append(live, m.Node)
			}
		}
		if slices.Contains(live, sh.Leader) || len(live) < voters/2+1 {
			continue
		}
		sh.Leader = live[rng.IntN(len(live))]
	}
}

// convergeRun is what one run of TestConverge measured.
type convergeRun struct {
	ticks, bound, steps, adds int
}

// TestConverge simulates the executor on random clusters with fixed nodes
// (suspects turn alive after a few ticks, which leaves the target as it
// is): every tick the simulated Raft elects missing leaders and learners
// added on the previous tick are caught up, then Plan runs, every step is
// checked (checkSteps) and carried out. Each run must end, within the
// bound below, with a Plan that returns no steps, and then:
//
//   - every shard that had a live majority has no learner and its target as
//     voters, plus only draining voters that were kept because fewer than R
//     nodes are eligible;
//   - every shard that had none is untouched and reported NoQuorum;
//   - the AddLearner steps are exactly the (shard, node) pairs of the target
//     that held no replica at the start, each once; every RemoveReplica is a
//     pair outside the target;
//   - the target never changed, and Plan gave the same Result for the State
//     with its nodes and members shuffled.
//
// The bound: a shard s needing a_s new replicas, holding e_s members
// outside its target and l_s learners in it takes at most w_s = 2a_s +
// 2e_s + 2l_s + 2 steps (add and promote per new replica, transfer and
// remove per old member, catch up and promote per learner, a leader
// transfer off a draining node, and one spare), one per tick while it can
// act. It can only be held back by the move limit, and each tick that
// happens at least MaxConcurrentMoves shards are in motion; a shard in motion
// acts every tick, so such ticks number at most Σw/M. Hence
// ticks ≤ suspect ticks + ⌈Σw/M⌉ + max w + 1 (the last tick plans nothing).
func TestConverge(t *testing.T) {
	var total, longest, closest convergeRun
	seeds := runSeeds(t)
	for _, seed := range seeds {
		r, err := converge(seed)
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./shards/placement -run TestConverge -seed %d -runs 1", seed, err, seed)
		}
		total.ticks += r.ticks
		total.steps += r.steps
		total.adds += r.adds
		if r.ticks > longest.ticks {
			longest = r
		}
		if r.bound >= 20 && (closest.bound == 0 || r.ticks*closest.bound > closest.ticks*r.bound) {
			closest = r
		}
	}
	t.Logf("%d runs: %d steps (%d add-learner), %.1f ticks a run; longest %d ticks (bound %d, %d steps); closest to its bound (of those ≥ 20) %d ticks of %d",
		len(seeds), total.steps, total.adds, float64(total.ticks)/float64(len(seeds)),
		longest.ticks, longest.bound, longest.steps, closest.ticks, closest.bound)
}

func converge(seed uint64) (convergeRun, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	s, o := randomCluster(rng)
	return settle(rng, s, o)
}

// settle runs the simulation from s with its nodes fixed until Plan has
// nothing to do, and checks what TestConverge lists. Suspect nodes turn
// alive after 1 to 4 ticks.
func settle(rng *rand.Rand, s State, o Options) (convergeRun, error) {
	s = cloneState(s)
	initial := cloneState(s)
	suspectTicks := 0
	for _, n := range s.Nodes {
		if n.Health == Suspect {
			suspectTicks = 1 + rng.IntN(4)
		}
	}
	res0, err := Plan(s, o)
	if err != nil {
		return convergeRun{}, err
	}
	nodes := nodeMap(s.Nodes)
	noQuorum := map[int]bool{}
	wantAdds := map[string]bool{} // "shard/node"
	sumW, maxW := 0, 0
	for i, sh := range s.Shards {
		c := countOf(nodes, sh)
		if c.live < c.voters/2+1 {
			noQuorum[i] = true
			continue
		}
		target := targetOf(res0, i)
		a, e, l := 0, 0, 0
		for _, id := range target {
			switch j := memberIndex(sh, id); {
			case j < 0:
				a++
				wantAdds[fmt.Sprint(i, "/", id)] = true
			case sh.Members[j].Learner:
				l++
			}
		}
		for _, m := range sh.Members {
			if !slices.Contains(target, m.Node) {
				e++
			}
		}
		w := 2*a + 2*e + 2*l + 2
		sumW += w
		maxW = max(maxW, w)
	}
	run := convergeRun{bound: suspectTicks + (sumW+o.MaxConcurrentMoves-1)/o.MaxConcurrentMoves + maxW + 1}

	added := map[string]bool{}
	last := res0
	for tick := 1; ; tick++ {
		if tick > run.bound {
			return run, fmt.Errorf("no convergence in %d ticks\nstart:\n%s\nlast tick:\n%s", run.bound, dump(initial, res0), dump(s, last))
		}
		if tick == suspectTicks+1 {
			for i := range s.Nodes {
				if s.Nodes[i].Health == Suspect {
					s.Nodes[i].Health = Alive
				}
			}
		}
		for _, sh := range s.Shards {
			for j := range sh.Members {
				sh.Members[j].CaughtUp = sh.Members[j].Learner // added last tick, or before
			}
		}
		elect(rng, &s)
		res, err := Plan(s, o)
		if err != nil {
			return run, fmt.Errorf("tick %d: %v", tick, err)
		}
		if res2, err := Plan(shuffled(rng, s), o); err != nil || !reflect.DeepEqual(res, res2) {
			return run, fmt.Errorf("tick %d: Plan of the shuffled state differs (%v):\n%v\n%v", tick, err, res, res2)
		}
		if !reflect.DeepEqual(res.Target, res0.Target) {
			return run, fmt.Errorf("tick %d: target changed", tick)
		}
		if err := checkSteps(s, o, res); err != nil {
			return run, fmt.Errorf("tick %d: %v\n%s", tick, err, dump(s, res))
		}
		run.ticks, last = tick, res
		if len(res.Steps) == 0 && tick > suspectTicks {
			if err := checkConverged(initial, s, o, res, noQuorum); err != nil {
				return run, fmt.Errorf("tick %d: %v\n%s", tick, err, dump(s, res))
			}
			if len(added) != len(wantAdds) {
				return run, fmt.Errorf("%d replicas added; want %d", len(added), len(wantAdds))
			}
			return run, nil
		}
		for _, st := range res.Steps {
			key := fmt.Sprint(st.Shard, "/", st.Node)
			switch st.Kind {
			case AddLearner:
				if !wantAdds[key] || added[key] {
					return run, fmt.Errorf("tick %d: %v: not a new target replica, or added before", tick, st)
				}
				added[key] = true
				run.adds++
			case RemoveReplica:
				if slices.Contains(targetOf(res0, st.Shard), st.Node) {
					return run, fmt.Errorf("tick %d: %v: removes a target replica", tick, st)
				}
			}
			apply(&s, st)
			run.steps++
		}
	}
}

// checkConverged asserts the end state of a run with fixed nodes.
func checkConverged(initial, s State, o Options, res Result, noQuorum map[int]bool) error {
	nodes := nodeMap(s.Nodes)
	if res.InMotion != 0 || len(res.Queued) != 0 || res.Done() != (len(noQuorum) == 0) {
		return fmt.Errorf("no steps, but %d shards in motion, %v queued, Done() = %v", res.InMotion, res.Queued, res.Done())
	}
	for _, st := range res.Stuck {
		if !st.NoQuorum || !noQuorum[st.Shard] {
			return fmt.Errorf("%v: stuck at the end", st)
		}
	}
	for i, sh := range s.Shards {
		if noQuorum[i] {
			if formatShard(sh) != formatShard(initial.Shards[i]) {
				return fmt.Errorf("shard %d without quorum changed: %s → %s", i, formatShard(initial.Shards[i]), formatShard(sh))
			}
			if !slices.ContainsFunc(res.Stuck, func(st Stuck) bool { return st.Shard == i && st.NoQuorum }) {
				return fmt.Errorf("shard %d without quorum not reported", i)
			}
			continue
		}
		target := targetOf(res, i)
		kept := 0
		for _, m := range sh.Members {
			n := nodes[m.Node]
			switch {
			case m.Learner:
				return fmt.Errorf("shard %d: learner %s left: %s", i, m.Node, formatShard(sh))
			case slices.Contains(target, m.Node):
			case n.Health == Alive && n.Draining:
				kept++
			default:
				return fmt.Errorf("shard %d: voter %s outside the target %q: %s", i, m.Node, target, formatShard(sh))
			}
		}
		for _, id := range target {
			if memberIndex(sh, id) < 0 {
				return fmt.Errorf("shard %d: target %s is not a voter: %s", i, id, formatShard(sh))
			}
		}
		if kept > 0 && (len(target) >= o.Replicas || len(sh.Members) > o.Replicas) {
			return fmt.Errorf("shard %d: %d draining voters kept with target %q: %s", i, kept, target, formatShard(sh))
		}
	}
	return nil
}

// dump formats a state and a plan for a failure message.
func dump(s State, res Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodes: %s\n", formatNodes(s.Nodes))
	for i, sh := range s.Shards {
		target := targetOf(res, i)
		fmt.Fprintf(&b, "shard %d: %s   target %s\n", i, formatShard(sh), strings.Join(target, " "))
	}
	for _, st := range res.Steps {
		fmt.Fprintf(&b, "%v\n", st)
	}
	for _, st := range res.Stuck {
		fmt.Fprintf(&b, "%v\n", st)
	}
	return b.String()
}

// targetOf returns shard i's target replicas (none if no node is eligible).
func targetOf(res Result, i int) []string {
	if res.Target.Shards == nil {
		return nil
	}
	return res.Target.Shards[i].Replicas
}
