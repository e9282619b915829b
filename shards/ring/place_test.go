package ring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestPlaceErrors(t *testing.T) {
	three := namedNodes(3)
	for _, tc := range []struct {
		name     string
		shards   int
		nodes    []Node
		replicas int
		opts     []Option
		is       error // nil: any error
	}{
		{"zero shards", 0, three, 3, nil, nil},
		{"negative shards", -1, three, 3, nil, nil},
		{"too many shards", maxShards + 1, three, 3, nil, nil},
		{"zero replicas", 16, three, 0, nil, nil},
		{"too many replicas", 16, namedNodes(maxReplicas + 1), maxReplicas + 1, nil, nil},
		{"fewer nodes than replicas", 16, namedNodes(2), 3, nil, ErrTooFewNodes},
		{"no nodes", 16, nil, 3, nil, ErrTooFewNodes},
		{"duplicate node", 16, []Node{{ID: "a"}, {ID: "b"}, {ID: "a", Zone: "z"}}, 3, nil, ErrDuplicateNode},
		{"empty id", 16, []Node{{ID: "a"}, {ID: ""}, {ID: "b"}}, 3, nil, nil},
		{"load factor below 1", 16, three, 3, []Option{WithLoadFactor(0.99)}, nil},
		{"load factor NaN", 16, three, 3, []Option{WithLoadFactor(math.NaN())}, nil},
		{"zero vnodes", 16, three, 3, []Option{WithVnodes(0)}, nil},
		{"too many shards × nodes", maxShards, namedNodes(maxPairs/maxShards + 1), 3, nil, nil},
		{"too many vnodes", 16, three, 3, []Option{WithVnodes(maxNodeTokens/3 + 1)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Place(tc.shards, tc.nodes, tc.replicas, tc.opts...)
			if err == nil {
				t.Fatalf("Place(%d, %d nodes, %d) = %v; want an error", tc.shards, len(tc.nodes), tc.replicas, p)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Place(%d, %d nodes, %d) error = %v; want %v", tc.shards, len(tc.nodes), tc.replicas, err, tc.is)
			}
		})
	}
}

// TestPlaceEdges covers the smallest valid inputs.
func TestPlaceEdges(t *testing.T) {
	for _, tc := range []struct {
		shards, nodes, replicas int
	}{
		{1, 1, 1}, {1, 3, 3}, {2, 3, 3}, {16, 3, 3}, {1, 10, 3}, {3, 10, 1}, {100, 4, 4}, {7, 16, 5},
	} {
		mustPlace(t, tc.shards, namedNodes(tc.nodes), tc.replicas)
	}
	// Load factors at the edges: exactly 1 (perfect balance) and huge (no
	// bound).
	for _, c := range []float64{1, 1.0004, 1e300, math.Inf(1)} {
		mustPlace(t, 64, namedNodes(10), 3, WithLoadFactor(c))
	}
	p := mustPlace(t, 64, namedNodes(10), 3, WithLoadFactor(1))
	if maxR, maxL := maxLoads(p); maxR != 20 || maxL != 7 {
		t.Errorf("c = 1: max %d replicas, %d leaders; want ceil(19.2) = 20, ceil(6.4) = 7", maxR, maxL)
	}
}

// TestPlaceDeterminism: the same members in any order, with zones or
// without, give the same placement.
func TestPlaceDeterminism(t *testing.T) {
	const seed = 21
	rng := rand.New(rand.NewPCG(seed, 0))
	zoned := make([]Node, 9)
	for i := range zoned {
		zoned[i] = Node{ID: fmt.Sprintf("n%d", i+1), Zone: string(rune('a' + i%3))}
	}
	for _, nodes := range [][]Node{namedNodes(5), namedNodes(10), randomNodes(rng, 7), zoned} {
		want := mustPlace(t, 64, nodes, 3)
		for range 5 {
			shuffled := slices.Clone(nodes)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if got := mustPlace(t, 64, shuffled, 3); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: Place(64, %v) differs from Place(64, %v)", seed, shuffled, nodes)
			}
		}
	}
	// The input slice is not modified.
	nodes := []Node{{ID: "c"}, {ID: "a"}, {ID: "b"}}
	mustPlace(t, 4, nodes, 3)
	if nodes[0].ID != "c" || nodes[1].ID != "a" {
		t.Errorf("Place reordered its input: %v", nodes)
	}
}

// TestPlacePlainRing: with the bound lifted (c ≥ N), Place is the plain ring
// walk, checked against the naive reference.
func TestPlacePlainRing(t *testing.T) {
	const seed = 22
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, n := range []int{3, 4, 10, 17} {
		nodes := randomNodes(rng, n)
		for _, vnodes := range []int{1, 7, DefaultNodeVnodes} {
			p := mustPlace(t, 40, nodes, 3, WithLoadFactor(float64(n)), WithVnodes(vnodes))
			want := plainWalk(40, nodes, 3, vnodes)
			for s := range want {
				if !slices.Equal(p.Shards[s].Replicas, want[s]) {
					t.Fatalf("seed %d, %d nodes, vnodes %d: shard %d replicas %q; plain ring walk gives %q",
						seed, n, vnodes, s, p.Shards[s].Replicas, want[s])
				}
			}
		}
	}
}

// TestPlaceZones: 6 nodes in 3 zones, 16 shards: every shard's replicas are
// in 3 distinct zones, for IDs n1..n6 and random ones. With 2 zones every
// shard spans both; with lopsided zones the cap still holds and zones are
// spread as far as the cap allows.
func TestPlaceZones(t *testing.T) {
	const seed = 23
	rng := rand.New(rand.NewPCG(seed, 0))
	zoneOf := func(p Placement) map[string]string {
		m := map[string]string{}
		for _, nl := range p.Nodes {
			m[nl.ID] = nl.Zone
		}
		return m
	}
	spread := func(p Placement, s int) int {
		zones := zoneOf(p)
		var seen []string
		for _, id := range p.Shards[s].Replicas {
			if !slices.Contains(seen, zones[id]) {
				seen = append(seen, zones[id])
			}
		}
		return len(seen)
	}
	withZones := func(nodes []Node, zones ...string) []Node {
		out := slices.Clone(nodes)
		for i := range out {
			out[i].Zone = zones[i%len(zones)]
		}
		return out
	}
	for trial := range 51 {
		nodes := namedNodes(6)
		if trial > 0 {
			nodes = randomNodes(rng, 6)
		}
		for _, tc := range []struct {
			shards int
			nodes  []Node
			want   int // zones per shard
		}{
			{16, withZones(nodes, "a", "b", "c"), 3},
			{64, withZones(nodes, "a", "b", "c"), 3},
			{16, withZones(nodes, "a", "b"), 2},
			{16, withZones(nodes[:4], "a", "b"), 2},
		} {
			p := mustPlace(t, tc.shards, tc.nodes, 3)
			for s := range p.Shards {
				if got := spread(p, s); got != tc.want {
					t.Fatalf("seed %d, %d shards on %v: shard %d replicas %q span %d zones; want %d",
						seed, tc.shards, tc.nodes, s, p.Shards[s].Replicas, got, tc.want)
				}
			}
		}
	}
	// Lopsided: zone a has one node. Every shard in 3 zones would put all 16
	// shards on it, over its cap of ceil(1.1 × 48/6) = 9; the cap wins, so
	// 9 shards span 3 zones and the rest 2.
	lopsided := []Node{{"n1", "a"}, {"n2", "b"}, {"n3", "b"}, {"n4", "c"}, {"n5", "c"}, {"n6", "c"}}
	p := mustPlace(t, 16, lopsided, 3)
	three := 0
	for s := range p.Shards {
		switch spread(p, s) {
		case 3:
			three++
		case 2:
		default:
			t.Errorf("lopsided zones: shard %d replicas %q span %d zones; want 2 or 3", s, p.Shards[s].Replicas, spread(p, s))
		}
	}
	if three != p.ReplicaCap {
		t.Errorf("lopsided zones: %d shards span 3 zones; want %d (zone a's cap)", three, p.ReplicaCap)
	}
	// Nodes without a zone are each a zone of their own: four zones here, so
	// no shard needs both zone-a nodes.
	mixed := []Node{{"n1", "a"}, {"n2", "a"}, {"n3", ""}, {"n4", ""}, {"n5", ""}}
	p = mustPlace(t, 16, mixed, 3)
	for s := range p.Shards {
		if slices.Contains(p.Shards[s].Replicas, "n1") && slices.Contains(p.Shards[s].Replicas, "n2") {
			t.Errorf("mixed zones: shard %d has both zone-a nodes: %q", s, p.Shards[s].Replicas)
		}
	}
}

// TestPlaceRandomInputs checks the invariants (checkPlacement: replicas
// distinct and on members, leader among them, counts right, both caps kept)
// on random shapes, zones and load factors.
func TestPlaceRandomInputs(t *testing.T) {
	const seed = 24
	rng := rand.New(rand.NewPCG(seed, 0))
	trials := 300
	if raceEnabled || testing.Short() {
		trials = 60
	}
	for range trials {
		shards := 1 + rng.IntN(80)
		replicas := 1 + rng.IntN(5)
		nodes := randomNodes(rng, 1+rng.IntN(16))
		zones := rng.IntN(5) // 0: no zones
		for i := range nodes {
			if zones > 0 && rng.IntN(8) > 0 {
				nodes[i].Zone = fmt.Sprintf("z%d", rng.IntN(zones))
			}
		}
		c := 1 + rng.Float64()*rng.Float64()
		p, err := Place(shards, nodes, replicas, WithLoadFactor(c), WithVnodes(1+rng.IntN(200)))
		if len(nodes) < replicas {
			if !errors.Is(err, ErrTooFewNodes) {
				t.Fatalf("seed %d: Place(%d, %d nodes, %d) error = %v; want ErrTooFewNodes", seed, shards, len(nodes), replicas, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: Place(%d, %v, %d, c=%v): %v", seed, shards, nodes, replicas, c, err)
		}
		checkPlacement(t, p, shards, nodes, replicas)
	}
}

// TestPlaceTightCap drives the augmenting-path repairs: with c = 1 every
// node must end at ceil(mean) or less, which the nearest-first pass alone
// rarely achieves.
func TestPlaceTightCap(t *testing.T) {
	const seed = 25
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 40 {
		n := 3 + rng.IntN(10)
		nodes := randomNodes(rng, n)
		for i := range nodes {
			nodes[i].Zone = fmt.Sprintf("z%d", i%3)
		}
		shards := 1 + rng.IntN(64)
		p := mustPlace(t, shards, nodes, 3, WithLoadFactor(1))
		if want := (3*shards + n - 1) / n; p.ReplicaCap != want {
			t.Fatalf("seed %d: ReplicaCap = %d; want %d", seed, p.ReplicaCap, want)
		}
	}
}
