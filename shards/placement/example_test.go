package placement_test

import (
	"fmt"
	"slices"

	"github.com/wisp-db/wisp/shards/placement"
)

// ExamplePlan replaces the replica a shard lost with node n3, as the
// executor would: one Plan per tick, its steps carried out, the learner
// reported caught up on the tick after it was added.
func ExamplePlan() {
	s := placement.State{
		Nodes: []placement.Node{
			{ID: "n1", Health: placement.Alive},
			{ID: "n2", Health: placement.Alive},
			{ID: "n3", Health: placement.Dead},
			{ID: "n4", Health: placement.Alive},
		},
		Shards: []placement.Shard{{
			Members: []placement.Member{{Node: "n1"}, {Node: "n2"}, {Node: "n3"}},
			Leader:  "n1",
		}},
	}
	sh := &s.Shards[0]
	for tick := 1; ; tick++ {
		for i := range sh.Members {
			sh.Members[i].CaughtUp = true // the executor measures this
		}
		res, err := placement.Plan(s, placement.Options{})
		if err != nil {
			fmt.Println(err)
			return
		}
		if res.Done() {
			fmt.Printf("tick %d: done, target %v\n", tick, res.Target.Shards[0].Replicas)
			return
		}
		for _, st := range res.Steps {
			fmt.Printf("tick %d: %v\n", tick, st)
			switch st.Kind {
			case placement.AddLearner:
				sh.Members = append(sh.Members, placement.Member{Node: st.Node, Learner: true})
			case placement.Promote:
				sh.Members[slices.IndexFunc(sh.Members, func(m placement.Member) bool { return m.Node == st.Node })].Learner = false
			case placement.RemoveReplica:
				sh.Members = slices.DeleteFunc(sh.Members, func(m placement.Member) bool { return m.Node == st.Node })
			case placement.TransferLeader:
				sh.Leader = st.Node
			}
		}
	}
	// Output:
	// tick 1: shard 0: add-learner n4 (in the target; replaces n3 (dead))
	// tick 2: shard 0: promote n4 (learner caught up)
	// tick 3: shard 0: remove n3 (dead, 3 voters remain)
	// tick 4: done, target [n4 n1 n2]
}
