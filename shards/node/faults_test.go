package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// Cluster faults under a concurrent client history, checked by porcupine
// (linearizability_test.go): the placement driver's healing must keep every
// acknowledged write and never serve a stale read. Each test ends with every
// shard fully replicated on live nodes and the replicas' digests equal.

// faultWorkload is the client history of the fault tests: bounded by time
// rather than by ops (8,000 is about 10-15 s of ops on this machine; at
// least a tenth must complete, even under the race detector),
// so that a fault that takes seconds to set up still falls inside it.
var faultWorkload = linConfig{workers: 8, keys: 16, maxOps: 8000, duration: 15 * time.Second, readAfterWrite: 0.3}

// healCluster starts a gossiping cluster whose driver declares a node dead
// after deadAfter.
func healCluster(t *testing.T, nodes, shards int, deadAfter time.Duration) *nodetest.Cluster {
	return nodetest.Start(t, nodetest.Options{Nodes: nodes, Shards: shards, Gossip: true, Tune: func(cfg *node.Config) {
		cfg.DeadNodeTimeout = deadAfter
	}})
}

// metaLeader returns the index of the node whose placement driver reported
// last (the meta group's leader), waiting for a report.
func metaLeader(t *testing.T, ctx context.Context, c *nodetest.Cluster) int {
	t.Helper()
	for {
		for i := range c.Size() {
			if c.Node(i) == nil {
				continue
			}
			cli, err := client.New(c.URL(i), client.WithTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			st, err := cli.Status(ctx)
			if err == nil && st.Placement != nil {
				for j := range c.Size() {
					if n := c.Node(j); n != nil && n.ID() == st.Placement.LeaderId {
						return j
					}
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no placement driver reported")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHealed waits until every shard has three voters on live nodes, none
// on gone, and every node routes by the same map.
func waitHealed(t *testing.T, ctx context.Context, c *nodetest.Cluster, gone string) {
	t.Helper()
	t0 := time.Now()
	for !allHealed(c, c.Shards(), gone) || !sameEpoch(c) {
		if ctx.Err() != nil {
			t.Fatalf("not healed %v after the fault (gone: %q)", time.Since(t0), gone)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLinearizabilityMetaLeaderLoss kills the node that leads the meta group
// (and runs the placement driver) while clients run: the meta group elects
// another leader, whose driver rebuilds the dead node's replicas.
func TestLinearizabilityMetaLeaderLoss(t *testing.T) {
	seed := linSeed(t)
	c := healCluster(t, 4, 4, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	victim := metaLeader(t, ctx, c) // found before the run: finding it takes a while
	dead := c.Node(victim).ID()
	res := linRun(t, c, faultWorkload, seed, func(p *linProgress) {
		p.waitFraction(t, 0.25)
		linBounded(fmt.Sprintf("c.Kill(%d)", victim), func() { c.Kill(victim) })
		c.WaitLeader(10 * time.Second)
		p.leaderChange = p.elapsed()
		t.Logf("killed the meta leader %s at %v", dead, p.leaderChange.Round(time.Millisecond))
		waitHealed(t, ctx, c, dead)
		t.Logf("healed at %v", p.elapsed().Round(time.Millisecond))
	})
	linRequireFaultInside(t, res)
	linRequireOk(t, res, seed)
	waitHealed(t, ctx, c, dead)
	c.WaitConverged(ctx)
}

// TestLinearizabilityKillMidMove kills a node, then, as soon as the driver
// starts moving a replica onto another node, kills that one too and brings
// it back a moment later: it restarts with a half-copied replica, which the
// driver finishes or replaces.
func TestLinearizabilityKillMidMove(t *testing.T) {
	seed := linSeed(t)
	c := healCluster(t, 5, 4, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	cli, err := client.New(c.URL(0), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	const first = 4 // n5: one of the meta group's five voters
	dead := c.Node(first).ID()
	res := linRun(t, c, faultWorkload, seed, func(p *linProgress) {
		p.waitFraction(t, 0.2)
		linBounded("c.Kill(n5)", func() { c.Kill(first) })
		t.Logf("killed %s at %v", dead, p.elapsed().Round(time.Millisecond))
		mid := -1
		for mid < 0 {
			st, err := cli.Status(ctx)
			if err == nil {
				for _, mv := range st.Moves {
					for j := range c.Size() {
						if n := c.Node(j); n != nil && n.ID() == mv.NodeId && mv.Kind == "add-learner" {
							mid = j
						}
					}
				}
			}
			if ctx.Err() != nil {
				t.Fatal("no move started after the kill")
			}
			time.Sleep(10 * time.Millisecond)
		}
		id := c.Node(mid).ID()
		linBounded(fmt.Sprintf("c.Kill(%d)", mid), func() { c.Kill(mid) })
		p.leaderChange = p.elapsed()
		t.Logf("killed %s mid-move at %v", id, p.leaderChange.Round(time.Millisecond))
		time.Sleep(300 * time.Millisecond)
		c.Restart(mid)
		t.Logf("restarted %s at %v", id, p.elapsed().Round(time.Millisecond))
	})
	linRequireFaultInside(t, res)
	linRequireOk(t, res, seed)
	waitHealed(t, ctx, c, dead)
	c.WaitConverged(ctx)
}

// TestLinearizabilityWholeClusterRestart stops every node at once while
// clients run and starts them all again from their data directories.
func TestLinearizabilityWholeClusterRestart(t *testing.T) {
	seed := linSeed(t)
	c := healCluster(t, 3, 4, 5*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	epoch := c.Node(0).Epoch()
	res := linRun(t, c, faultWorkload, seed, func(p *linProgress) {
		p.waitFraction(t, 0.3)
		var wg sync.WaitGroup
		for i := range c.Size() {
			wg.Add(1)
			go func() { defer wg.Done(); c.Stop(i) }()
		}
		linBounded("stop every node", wg.Wait)
		t.Logf("stopped every node at %v", p.elapsed().Round(time.Millisecond))
		for i := range c.Size() {
			c.Restart(i)
		}
		c.WaitLeader(15 * time.Second)
		p.leaderChange = p.elapsed()
		t.Logf("every node back and every shard led at %v", p.leaderChange.Round(time.Millisecond))
	})
	linRequireFaultInside(t, res)
	linRequireOk(t, res, seed)
	waitHealed(t, ctx, c, "")
	c.WaitConverged(ctx)
	if got := c.Node(0).Epoch(); got < epoch {
		t.Errorf("map epoch went back from %d to %d over the restart", epoch, got)
	}
}

// TestLinearizabilityTwoOfFive kills two of five nodes at once while clients
// run. Shards that kept a majority are rebuilt on the three others; a shard
// with replicas on both lost its quorum and waits (the driver reports it
// stuck) until the two come back, after which every shard is whole.
func TestLinearizabilityTwoOfFive(t *testing.T) {
	seed := linSeed(t)
	c := healCluster(t, 5, 4, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	res := linRun(t, c, faultWorkload, seed, func(p *linProgress) {
		p.waitFraction(t, 0.2)
		var wg sync.WaitGroup
		for _, i := range []int{3, 4} { // n4 and n5: the meta group keeps three of its five voters
			wg.Add(1)
			go func() { defer wg.Done(); c.Kill(i) }()
		}
		linBounded("kill n4 and n5", wg.Wait)
		p.leaderChange = p.elapsed()
		t.Logf("killed n4 and n5 at %v", p.leaderChange.Round(time.Millisecond))
		time.Sleep(4 * time.Second) // dead, and the shards with a quorum rebuilt
		c.Restart(3)
		c.Restart(4)
		t.Logf("restarted n4 and n5 at %v", p.elapsed().Round(time.Millisecond))
	})
	linRequireFaultInside(t, res)
	linRequireOk(t, res, seed)
	waitHealed(t, ctx, c, "")
	c.WaitConverged(ctx)
}
