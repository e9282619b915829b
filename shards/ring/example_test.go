package ring_test

import (
	"fmt"

	"github.com/wisp-db/wisp/shards/ring"
)

func ExampleKeyRing() {
	keys := ring.NewKeyRing(16, 0) // 16 shards, DefaultKeyVnodes tokens each
	fmt.Println(keys.Shard([]byte("user:1")), keys.Shard([]byte("user:2")))
	// Output: 2 4
}

func ExamplePlace() {
	nodes := []ring.Node{
		{ID: "n1", Zone: "a"}, {ID: "n2", Zone: "a"},
		{ID: "n3", Zone: "b"}, {ID: "n4", Zone: "b"},
		{ID: "n5", Zone: "c"}, {ID: "n6", Zone: "c"},
	}
	p, err := ring.Place(4, nodes, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	for s, sr := range p.Shards {
		fmt.Println("shard", s, sr.Replicas, "leader", sr.Leader)
	}
	for _, n := range p.Nodes {
		fmt.Println(n.ID, n.Replicas, "replicas,", n.Leaders, "leaders")
	}
	_, err = ring.Place(4, nodes[:2], 3)
	fmt.Println(err)
	// Output:
	// shard 0 [n5 n4 n1] leader n5
	// shard 1 [n5 n1 n3] leader n1
	// shard 2 [n5 n3 n2] leader n3
	// shard 3 [n1 n3 n6] leader n6
	// n1 3 replicas, 1 leaders
	// n2 1 replicas, 0 leaders
	// n3 3 replicas, 1 leaders
	// n4 1 replicas, 0 leaders
	// n5 3 replicas, 1 leaders
	// n6 1 replicas, 1 leaders
	// ring: place 3 replicas per shard on 2 nodes: fewer nodes than replicas
}
