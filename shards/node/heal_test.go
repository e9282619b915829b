package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestHealAfterNodeLoss: a node is killed; after the dead-node timeout the
// placement driver rebuilds each of its replicas on a live node (learner,
// catch-up, promote, remove the dead one), every acknowledged write stays
// readable, and the replicas of every shard converge.
func TestHealAfterNodeLoss(t *testing.T) {
	const shards = 4
	c := nodetest.Start(t, nodetest.Options{Nodes: 4, Shards: shards, Gossip: true, Tune: func(cfg *node.Config) {
		cfg.DeadNodeTimeout = 2 * time.Second
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cli, err := client.New(c.URL(0), client.WithTimeout(5*time.Second), client.WithMaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	const keys = 200
	for i := range keys {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	const victim = 3
	held := 0
	for s := range shards {
		if c.Node(victim).Shard(s) != nil {
			held++
		}
	}
	if held == 0 {
		t.Fatal("the victim holds no replica: the test would prove nothing")
	}
	t0 := time.Now()
	c.Kill(victim)
	dead := c.Node(0).Placement().Nodes[victim].ID
	t.Logf("killed %s, which held %d of %d shards", dead, held, shards)

	for s := range shards {
		for {
			if healed(c, s, dead) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("shard %d not rebuilt %v after the kill: voters %v", s, time.Since(t0), c.Node(0).Placement().Shards[s].Replicas)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("every shard has 3 voters on live nodes %v after the kill", time.Since(t0).Round(time.Millisecond))
	for i := range keys {
		it, found, err := cli.Get(ctx, fmt.Sprintf("k%03d", i))
		if err != nil || !found || string(it.Value) != fmt.Sprint(i) {
			t.Fatalf("get k%03d after healing = %q, %v, %v; want %d", i, it.Value, found, err, i)
		}
	}
	c.WaitConverged(ctx)
}

// healed reports whether shard s has, in its leader's configuration and in
// every live node's view, three voters, none of them dead, and no learner.
func healed(c *nodetest.Cluster, s int, dead string) bool {
	for i := range c.Size() {
		n := c.Node(i)
		if n == nil {
			continue
		}
		voters := n.Placement().Shards[s].Replicas
		if len(voters) != 3 || slices.Contains(voters, dead) {
			return false
		}
		g := n.Shard(s)
		if slices.Contains(voters, n.ID()) != (g != nil) {
			return false // hosts what the map does not give it, or not yet what it does
		}
		if g == nil || !g.IsLeader() {
			continue
		}
		conf, err := g.Configuration()
		if err != nil || len(conf.Members) != 3 {
			return false
		}
		for _, m := range conf.Members {
			if !m.Voter || m.ID == dead {
				return false
			}
		}
	}
	return true
}
