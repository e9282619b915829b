package eviction_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
)

// A shard leader's eviction step: while memory is over the budget, ask the
// Evictor for victims and apply one OpEvict command with each victim's
// version. (A real leader calls Choose with a View that takes the engine's
// read lock, so that the policy ranks outside it, and proposes the command
// through Raft instead of applying it.)
func ExampleEvictor_Select() {
	e := engine.New()
	for i := range 100 {
		put := engine.Mutation{Op: engine.OpPut, Key: fmt.Appendf(nil, "key-%03d", i), Value: make([]byte, 100)}
		e.Apply(e.AppliedIndex()+1, &engine.Command{NowUnixMs: 1, Mutations: []engine.Mutation{put}})
	}
	budget := e.MemoryUsed() / 2

	p, err := eviction.New(eviction.AllKeysLRU)
	if err != nil {
		panic(err)
	}
	ev := eviction.NewEvictor(p) // one per shard leader
	rnd := rand.New(rand.NewPCG(1, 2))
	var victims []engine.Candidate
	for used := e.MemoryUsed(); used > budget; used = e.MemoryUsed() {
		victims = ev.Select(e, 2, used-budget, 1000, rnd.IntN, victims[:0])
		if len(victims) == 0 {
			break // nothing evictable: writes must fail instead
		}
		cmd := &engine.Command{NowUnixMs: 2}
		for _, v := range victims {
			cmd.Mutations = append(cmd.Mutations, engine.Mutation{Op: engine.OpEvict, Key: v.Key, IfVersion: v.Version})
		}
		e.Apply(e.AppliedIndex()+1, cmd)
	}
	fmt.Println("keys left:", e.Len(), "within budget:", e.MemoryUsed() <= budget)
	// Output: keys left: 50 within budget: true
}
