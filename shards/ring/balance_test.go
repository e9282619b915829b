package ring

// The measurements of issue 3 ("Properties that must be measured and
// tested"), as tests: each asserts its bound and logs its figures with
// t.Logf (go test -v -run 'Balance|Movement|Vnodes' ./shards/ring).
// doc.go and docs/ARCHITECTURE.md quote these figures.

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// keyBalanceMargin is how far under 1.10 the default key ring must stay, so
// that the bound holds for other seeds and nearby shard counts too.
const keyBalanceMargin = 0.03

// TestKeyRingBalance: 1,000,000 random keys over 16 shards land with
// max/mean ≤ 1.10 at DefaultKeyVnodes, and DefaultKeyVnodes is the smallest
// power of two measured that stays under 1.10 − keyBalanceMargin for every
// seed. The exact column is max(share) × shards from the token arcs alone
// (what infinitely many keys would give); the seed columns count real keys.
func TestKeyRingBalance(t *testing.T) {
	const shards = 16
	keys := 1_000_000
	seeds := []uint64{1, 2, 3}
	vnodesTable := []int{16, 32, 64, 128, 256, 512, 1024, 2048}
	if raceEnabled || testing.Short() {
		// The race detector slows the lookup loop ~10×: count keys only at
		// the default, and use the exact shares elsewhere.
		vnodesTable = []int{DefaultKeyVnodes / 2, DefaultKeyVnodes}
	}
	t.Logf("%d keys (16 random bytes each, PCG seeds %v) over %d shards; max/mean keys per shard", keys, seeds, shards)
	t.Logf("%7s %7s %s", "vnodes", "exact", "per seed")
	chosen := 0
	for _, vnodes := range vnodesTable {
		r := NewKeyRing(shards, vnodes)
		exact := slices.Max(r.Shares()) * shards
		worst := exact
		var row []string
		if !raceEnabled || vnodes == DefaultKeyVnodes {
			for _, seed := range seeds {
				ratio := keyBalance(r, keys, seed)
				worst = max(worst, ratio)
				row = append(row, fmt.Sprintf("%.3f", ratio))
			}
		}
		t.Logf("%7d %7.3f %s", vnodes, exact, strings.Join(row, " "))
		if vnodes == DefaultKeyVnodes && worst > 1.10 {
			t.Errorf("vnodes %d (default): max/mean = %.3f; want <= 1.10", vnodes, worst)
		}
		if chosen == 0 && worst <= 1.10-keyBalanceMargin {
			chosen = vnodes
		}
	}
	if !raceEnabled && !testing.Short() && chosen != DefaultKeyVnodes {
		t.Errorf("smallest vnodes with max/mean <= %.2f is %d; DefaultKeyVnodes is %d", 1.10-keyBalanceMargin, chosen, DefaultKeyVnodes)
	}
}

// keyBalance returns max/mean keys per shard for n random keys.
func keyBalance(r *KeyRing, n int, seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	counts := make([]int, r.Shards())
	var key [16]byte
	for range n {
		binary.LittleEndian.PutUint64(key[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(key[8:], rng.Uint64())
		counts[r.Shard(key[:])]++
	}
	return float64(slices.Max(counts)) * float64(r.Shards()) / float64(n)
}

// TestKeyRingBalanceOtherShardCounts logs the exact balance at the default
// vnodes for other shard counts (no assertion: the 1.10 bound is asked for
// 16 shards; more shards means a larger maximum among them).
func TestKeyRingBalanceOtherShardCounts(t *testing.T) {
	t.Logf("%7s %s", "shards", "exact max/mean at default vnodes")
	for _, shards := range []int{8, 12, 16, 24, 32, 64} {
		t.Logf("%7d %.3f", shards, slices.Max(NewKeyRing(shards, 0).Shares())*float64(shards))
	}
}

// TestPlaceBalance: replicas and leaders per node stay under
// ceil(1.1 × mean) for 16 and 64 shards over 3, 5 and 10 nodes, with node
// IDs n1..nN and with 100 sets of random IDs. The plain ring (no bound)
// shows why the bound is needed.
func TestPlaceBalance(t *testing.T) {
	const replicas, trials, seed = 3, 100, 11
	t.Logf("3 replicas per shard; nodes n1..nN, then %d random ID sets (PCG seed %d)", trials, seed)
	t.Logf("%6s %5s %6s %4s %4s %4s %8s %5s %5s %25s", "shards", "nodes", "mean", "cap", "min", "max", "max/mean", "lcap", "lmax", "plain max/mean (avg, max)")
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, shards := range []int{16, 64} {
		for _, n := range []int{3, 5, 10} {
			mean := float64(replicas*shards) / float64(n)
			replicaCap, leaderCap := ceilLoad(replicas*shards, n), ceilLoad(shards, n)
			var plain []float64
			worst, worstLeaders, least := 0, 0, replicas*shards
			for trial := range trials + 1 {
				nodes := namedNodes(n)
				if trial > 0 {
					nodes = randomNodes(rng, n)
				}
				p := mustPlace(t, shards, nodes, replicas)
				maxR, maxL := maxLoads(p)
				if maxR > replicaCap || maxL > leaderCap {
					t.Errorf("%d shards on %v: max %d replicas (want <= %d), %d leaders (want <= %d)",
						shards, nodes, maxR, replicaCap, maxL, leaderCap)
				}
				if p.ReplicaCap != replicaCap || p.LeaderCap != leaderCap {
					t.Errorf("caps %d, %d; want %d, %d", p.ReplicaCap, p.LeaderCap, replicaCap, leaderCap)
				}
				worst, worstLeaders = max(worst, maxR), max(worstLeaders, maxL)
				for _, nl := range p.Nodes {
					least = min(least, nl.Replicas)
				}
				pp := mustPlace(t, shards, nodes, replicas, WithLoadFactor(float64(n)))
				maxPlain, _ := maxLoads(pp)
				plain = append(plain, float64(maxPlain)/mean)
			}
			ps := summarize(plain)
			t.Logf("%6d %5d %6.1f %4d %4d %4d %8.2f %5d %5d %19.2f, %.2f",
				shards, n, mean, replicaCap, least, worst, float64(worst)/mean, leaderCap, worstLeaders, ps.mean, ps.max)
		}
	}
}

// TestPlaceMovement measures the replicas that must be created when one
// node joins or leaves (see moved).
//
// Adding one node to N moves at most 1.3 × the ideal share 3S/(N+1) for
// S = 64, N = 5 and 10, asserted for IDs n1..nN joined by n(N+1), and logged
// over random ID sets.
//
// Removing a node moves its own replicas and, because of the load bound, a
// few more: the orphans take capacity that other shards were using, and
// where the cap rises, shards bumped earlier return to nodes they prefer.
// Strict minimality for every member list is out of reach for any balanced
// placement: it would make every addition minimal too, which forces each
// shard to take the first R members of a fixed per-shard order, that is a
// plain ring, 1.5-2.3× out of balance (TestPlaceBalance). What is asserted
// is the measured bound: extra ≤ max(3, 0.4 × 3S/N).
func TestPlaceMovement(t *testing.T) {
	const replicas, trials, seed = 3, 100, 12
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("add one node: replicas moved / ideal 3S/(N+1); n1..nN+1, then %d random ID sets (PCG seed %d)", trials, seed)
	t.Logf("%6s %5s %6s %7s %6s %6s %6s %6s   %s", "shards", "nodes", "ideal", "n1..nN", "mean", "p90", "max", ">1.3",
		"shard-order: mean, >1.3, sets over cap")
	for _, shards := range []int{16, 64} {
		for _, n := range []int{3, 5, 10} {
			ideal := float64(replicas*shards) / float64(n+1)
			var ratios, greedyRatios []float64
			over, greedyOver, greedyOverCap := 0, 0, 0
			for trial := range trials + 1 {
				nodes := namedNodes(n + 1)
				if trial > 0 {
					nodes = randomNodes(rng, n+1)
				}
				before := mustPlace(t, shards, nodes[:n], replicas)
				after := mustPlace(t, shards, nodes, replicas)
				ratio := float64(moved(before, after)) / ideal
				if trial == 0 && shards == 64 && n >= 5 && ratio > 1.3 {
					t.Errorf("%d shards, n1..n%d + n%d: moved %d replicas = %.2f × ideal %.1f; want <= 1.3",
						shards, n, n+1, moved(before, after), ratio, ideal)
				}
				if ratio > 1.3 {
					over++
				}
				ratios = append(ratios, ratio)
				if trial == 0 {
					continue
				}
				gb, overBefore := shardOrderGreedy(shards, nodes[:n], replicas)
				ga, overAfter := shardOrderGreedy(shards, nodes, replicas)
				greedyRatios = append(greedyRatios, float64(moved(gb, ga))/ideal)
				if greedyRatios[len(greedyRatios)-1] > 1.3 {
					greedyOver++
				}
				if overBefore+overAfter > 0 {
					greedyOverCap++
				}
			}
			s := summarize(ratios[1:])
			t.Logf("%6d %5d %6.1f %7.2f %6.2f %6.2f %6.2f %5.0f%%   %.2f, %.0f%%, %.0f%%",
				shards, n, ideal, ratios[0], s.mean, s.p90, s.max, 100*float64(over-boolInt(ratios[0] > 1.3))/trials,
				summarize(greedyRatios).mean, 100*float64(greedyOver)/trials, 100*float64(greedyOverCap)/trials)
		}
	}

	t.Logf("remove one node (each member in turn): replicas moved beyond the node's own; n1..nN, then %d random ID sets", trials/4)
	t.Logf("%6s %5s %9s %10s %10s %6s %13s %17s", "shards", "nodes", "own mean", "extra mean", "extra max", "bound", "exact removals", "shard-order extra")
	for _, shards := range []int{16, 64} {
		for _, n := range []int{4, 5, 10} {
			var own, extra, greedyExtra []float64
			exact := 0
			// Empirical (see the log): not a theorem.
			extraMax := max(3, 0.4*float64(replicas*shards)/float64(n))
			for trial := range trials/4 + 1 {
				nodes := namedNodes(n)
				if trial > 0 {
					nodes = randomNodes(rng, n)
				}
				before := mustPlace(t, shards, nodes, replicas)
				gb, _ := shardOrderGreedy(shards, nodes, replicas)
				for _, gone := range nodes {
					after := mustPlace(t, shards, without(nodes, gone.ID), replicas)
					mine := loadOf(before, gone.ID)
					more := moved(before, after) - mine
					if more < 0 {
						t.Fatalf("removing %s moved %d replicas, fewer than its %d", gone.ID, moved(before, after), mine)
					}
					if float64(more) > extraMax {
						t.Errorf("%d shards on %d nodes, removing %s: moved %d beyond its %d replicas; want <= %.1f",
							shards, n, gone.ID, more, mine, extraMax)
					}
					if more == 0 {
						exact++
					}
					own, extra = append(own, float64(mine)), append(extra, float64(more))
					ga, _ := shardOrderGreedy(shards, without(nodes, gone.ID), replicas)
					greedyExtra = append(greedyExtra, float64(moved(gb, ga)-loadOf(before, gone.ID)))
				}
			}
			e := summarize(extra)
			t.Logf("%6d %5d %9.1f %10.2f %10.0f %6.1f %12.0f%% %17.2f",
				shards, n, summarize(own).mean, e.mean, e.max, extraMax, 100*float64(exact)/float64(len(extra)), summarize(greedyExtra).mean)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPlaceVnodes logs how the node ring's token count affects movement
// (64 shards over 10 nodes, random ID sets), the measurement behind
// DefaultNodeVnodes. The bounded-load caps decide the balance whatever the
// count, so only the movement is shown.
func TestPlaceVnodes(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measurement only; slow under -race and -short")
	}
	const shards, n, replicas, trials, seed = 64, 10, 3, 100, 13
	ideal := float64(replicas*shards) / float64(n+1)
	t.Logf("%d shards over %d nodes (+1 / -1), %d random ID sets per row (PCG seed %d)", shards, n, trials, seed)
	t.Logf("%6s %16s %15s %6s %18s", "vnodes", "add mean/ideal", "add max/ideal", ">1.3", "remove extra mean")
	for _, vnodes := range []int{16, 32, 64, 128, 256, 512} {
		rng := rand.New(rand.NewPCG(seed, 0))
		var adds, extras []float64
		over := 0
		for range trials {
			nodes := randomNodes(rng, n+1)
			before := mustPlace(t, shards, nodes[:n], replicas, WithVnodes(vnodes))
			after := mustPlace(t, shards, nodes, replicas, WithVnodes(vnodes))
			adds = append(adds, float64(moved(before, after))/ideal)
			if adds[len(adds)-1] > 1.3 {
				over++
			}
			gone := nodes[rng.IntN(n)].ID
			removed := mustPlace(t, shards, without(nodes[:n], gone), replicas, WithVnodes(vnodes))
			extras = append(extras, float64(moved(before, removed)-loadOf(before, gone)))
		}
		a := summarize(adds)
		t.Logf("%6d %16.2f %15.2f %5.0f%% %18.2f", vnodes, a.mean, a.max, 100*float64(over)/trials, summarize(extras).mean)
	}
}
