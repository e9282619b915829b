package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// namedNodes returns nodes n1..nN without zones, the IDs `wispd dev` uses.
func namedNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("n%d", i+1)}
	}
	return nodes
}

// randomNodes returns n nodes with random distinct IDs.
func randomNodes(rng *rand.Rand, n int) []Node {
	nodes := make([]Node, 0, n)
	seen := map[string]bool{}
	for len(nodes) < n {
		id := fmt.Sprintf("node-%08x", rng.Uint32())
		if !seen[id] {
			seen[id] = true
			nodes = append(nodes, Node{ID: id})
		}
	}
	return nodes
}

// without returns nodes minus the one with the given ID.
func without(nodes []Node, id string) []Node {
	return slices.DeleteFunc(slices.Clone(nodes), func(n Node) bool { return n.ID == id })
}

func mustPlace(t testing.TB, shards int, nodes []Node, replicas int, opts ...Option) Placement {
	t.Helper()
	p, err := Place(shards, nodes, replicas, opts...)
	if err != nil {
		t.Fatalf("Place(%d, %d nodes, %d): %v", shards, len(nodes), replicas, err)
	}
	checkPlacement(t, p, shards, nodes, replicas)
	return p
}

// checkPlacement asserts the invariants every Placement keeps.
func checkPlacement(t testing.TB, p Placement, shards int, nodes []Node, replicas int) {
	t.Helper()
	if len(p.Shards) != shards {
		t.Fatalf("%d shards placed; want %d", len(p.Shards), shards)
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	slices.Sort(ids)
	replicasOf, leadersOf := map[string]int{}, map[string]int{}
	for s, sr := range p.Shards {
		if len(sr.Replicas) != replicas {
			t.Fatalf("shard %d has replicas %q; want %d", s, sr.Replicas, replicas)
		}
		for i, id := range sr.Replicas {
			if _, ok := slices.BinarySearch(ids, id); !ok {
				t.Fatalf("shard %d: replica %q is not a member", s, id)
			}
			if slices.Contains(sr.Replicas[:i], id) {
				t.Fatalf("shard %d: replica %q twice in %q", s, id, sr.Replicas)
			}
			replicasOf[id]++
		}
		if !slices.Contains(sr.Replicas, sr.Leader) {
			t.Fatalf("shard %d: leader %q not among replicas %q", s, sr.Leader, sr.Replicas)
		}
		leadersOf[sr.Leader]++
	}
	if len(p.Nodes) != len(ids) {
		t.Fatalf("%d node loads; want %d", len(p.Nodes), len(ids))
	}
	for i, nl := range p.Nodes {
		if nl.ID != ids[i] {
			t.Fatalf("Nodes[%d].ID = %q; want %q (sorted)", i, nl.ID, ids[i])
		}
		if nl.Replicas != replicasOf[nl.ID] || nl.Leaders != leadersOf[nl.ID] {
			t.Fatalf("node %q: counts %d replicas, %d leaders; placement has %d, %d",
				nl.ID, nl.Replicas, nl.Leaders, replicasOf[nl.ID], leadersOf[nl.ID])
		}
		if nl.Replicas > p.ReplicaCap || nl.Leaders > p.LeaderCap {
			t.Fatalf("node %q: %d replicas (cap %d), %d leaders (cap %d)",
				nl.ID, nl.Replicas, p.ReplicaCap, nl.Leaders, p.LeaderCap)
		}
	}
}

// moved counts the replicas that must be created to go from placement a to
// b: per shard, the nodes in b that were not in a. A replica that keeps its
// node but changes its position in the list does not count.
func moved(a, b Placement) int {
	n := 0
	for s := range a.Shards {
		for _, id := range b.Shards[s].Replicas {
			if !slices.Contains(a.Shards[s].Replicas, id) {
				n++
			}
		}
	}
	return n
}

// loadOf returns the replicas node id holds in p.
func loadOf(p Placement, id string) int {
	for _, nl := range p.Nodes {
		if nl.ID == id {
			return nl.Replicas
		}
	}
	return 0
}

func maxLoads(p Placement) (replicas, leaders int) {
	for _, nl := range p.Nodes {
		replicas = max(replicas, nl.Replicas)
		leaders = max(leaders, nl.Leaders)
	}
	return replicas, leaders
}

// ceilLoad returns ceil(1.1 × x / y) in integers.
func ceilLoad(x, y int) int { return (11*x + 10*y - 1) / (10 * y) }

// stats summarizes a sample.
type stats struct{ mean, p90, max float64 }

func summarize(xs []float64) stats {
	s := slices.Clone(xs)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return stats{mean: sum / float64(len(s)), p90: s[(len(s)*9)/10], max: s[len(s)-1]}
}

// plainWalk is the reference for a plain ring (no load bound): each shard's
// replicas are the first distinct nodes clockwise from its point.
func plainWalk(shards int, nodes []Node, replicas, vnodes int) [][]string {
	type token struct {
		hash uint64
		id   string
	}
	var ring []token
	for _, n := range nodes {
		for v := range vnodes {
			ring = append(ring, token{NodeToken(n.ID, v), n.ID})
		}
	}
	sort.Slice(ring, func(i, j int) bool {
		if ring[i].hash != ring[j].hash {
			return ring[i].hash < ring[j].hash
		}
		return ring[i].id < ring[j].id
	})
	out := make([][]string, shards)
	for s := range out {
		h := ShardPoint(s)
		i := sort.Search(len(ring), func(i int) bool { return ring[i].hash >= h })
		for k := 0; len(out[s]) < replicas; k++ {
			id := ring[(i+k)%len(ring)].id
			if !slices.Contains(out[s], id) {
				out[s] = append(out[s], id)
			}
		}
	}
	return out
}

// shardOrderGreedy is the textbook sequential form of bounded loads, kept
// to compare with Place: shards in ID order, each walking clockwise and
// skipping nodes at the cap. When the walk runs out of nodes under the cap
// (it can, near the end), the shard takes the next distinct nodes anyway;
// overCap counts those.
func shardOrderGreedy(shards int, nodes []Node, replicas int) (p Placement, overCap int) {
	walk := plainWalk(shards, nodes, len(nodes), DefaultNodeVnodes) // full ring order per shard
	capacity := ceilLoad(replicas*shards, len(nodes))
	load := map[string]int{}
	p.Shards = make([]ShardReplicas, shards)
	for s, order := range walk {
		var reps []string
		for _, id := range order {
			if len(reps) < replicas && load[id] < capacity {
				reps = append(reps, id)
			}
		}
		for _, id := range order {
			if len(reps) < replicas && !slices.Contains(reps, id) {
				reps = append(reps, id)
				overCap++
			}
		}
		for _, id := range reps {
			load[id]++
		}
		p.Shards[s].Replicas = reps
	}
	return p, overCap
}
