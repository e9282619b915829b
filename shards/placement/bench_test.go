package placement

import (
	"fmt"
	"testing"

	"github.com/wisp-db/wisp/shards/ring"
)

// benchState returns 64 shards placed on n1..n10 as the ring wants them,
// then, if dead, n3 dead: about a fifth of the shards need a new replica.
func benchState(b *testing.B, dead bool) State {
	var s State
	var nodes []ring.Node
	for i := range 10 {
		id := fmt.Sprintf("n%d", i+1)
		s.Nodes = append(s.Nodes, Node{ID: id, Health: Alive})
		nodes = append(nodes, ring.Node{ID: id})
	}
	p, err := ring.Place(64, nodes, 3)
	if err != nil {
		b.Fatal(err)
	}
	for _, sr := range p.Shards {
		sh := Shard{Leader: sr.Leader}
		for _, id := range sr.Replicas {
			sh.Members = append(sh.Members, Member{Node: id})
		}
		s.Shards = append(s.Shards, sh)
	}
	if dead {
		s.Nodes[2].Health = Dead
	}
	return s
}

// BenchmarkPlan measures one tick of the meta leader's loop for 64 shards ×
// 3 replicas over 10 nodes: all in place, and with one node dead (a
// replacement for each of its replicas, MaxConcurrentMoves of them
// started). Most of it is ring.Place (BenchmarkPlace in shards/ring).
func BenchmarkPlan(b *testing.B) {
	for _, dead := range []bool{false, true} {
		b.Run(fmt.Sprintf("shards=64/nodes=10/dead=%v", dead), func(b *testing.B) {
			s := benchState(b, dead)
			b.ReportAllocs()
			steps := 0
			for b.Loop() {
				res, err := Plan(s, Options{})
				if err != nil {
					b.Fatal(err)
				}
				steps = len(res.Steps)
			}
			b.ReportMetric(float64(steps), "steps/op")
		})
	}
}
