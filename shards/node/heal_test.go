package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"

	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
	"github.com/wisp-db/wisp/shards/ring"
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
			if healed(c, s, dead) && sameEpoch(c) {
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

	// The dead node comes back after its replicas were rebuilt elsewhere:
	// it drops the stale ones (the map no longer gives them to it), and
	// the driver moves replicas back onto it for balance.
	t1 := time.Now()
	c.Restart(victim)
	for s := range shards {
		for !healed(c, s, "") || !sameEpoch(c) || !holdsAny(c.Node(victim)) {
			if ctx.Err() != nil {
				t.Fatalf("shard %d not settled %v after %s came back: voters %v", s, time.Since(t1), dead, c.Node(0).Placement().Shards[s].Replicas)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	holds := 0
	for s := range shards {
		if c.Node(victim).Shard(s) != nil {
			holds++
		}
	}
	if holds == 0 {
		t.Errorf("%s came back but holds no replica: nothing was rebalanced onto it", dead)
	}
	t.Logf("%s back: holds %d shards, settled %v after its restart", dead, holds, time.Since(t1).Round(time.Millisecond))
	for i := range keys {
		if it, found, err := cli.Get(ctx, fmt.Sprintf("k%03d", i)); err != nil || !found || string(it.Value) != fmt.Sprint(i) {
			t.Fatalf("get k%03d after the return = %q, %v, %v; want %d", i, it.Value, found, err, i)
		}
	}
	c.WaitConverged(ctx)
}

// sameEpoch reports whether every live node routes by the same map.
func sameEpoch(c *nodetest.Cluster) bool {
	epochs := map[uint64]bool{}
	for i := range c.Size() {
		if n := c.Node(i); n != nil {
			epochs[n.Epoch()] = true
		}
	}
	return len(epochs) == 1
}

func holdsAny(n *node.Node) bool {
	for s := range n.Shards() {
		if n.Shard(s) != nil {
			return true
		}
	}
	return false
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

// TestJoinRunningCluster: a node that is not in the static member list
// finds the running cluster through gossip; the placement driver adds it
// to the cluster map and moves replicas onto it (learner, catch-up,
// promote, remove one elsewhere), every acknowledged write stays readable
// through every node, the newcomer included, and the replicas converge.
func TestJoinRunningCluster(t *testing.T) {
	const shards = 6
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Shards: shards, Gossip: true})
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
	t0 := time.Now()
	j := c.Join()
	joined := c.Node(j)
	if joined.Shards() != shards {
		t.Fatalf("the joined node has %d shards; want the cluster's %d", joined.Shards(), shards)
	}
	// The newcomer ends with the shards the ring gives it among 4 nodes.
	target, err := ring.Place(shards, []ring.Node{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "n4"}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, sh := range target.Shards {
		if slices.Contains(sh.Replicas, joined.ID()) {
			want++
		}
	}
	for {
		holds := 0
		for s := range shards {
			if joined.Shard(s) != nil {
				holds++
			}
		}
		settled := sameEpoch(c)
		for s := range shards {
			settled = settled && healed(c, s, "")
		}
		if settled && holds == want {
			t.Logf("%s joined: holds %d of %d shards, settled %v after it started", joined.ID(), holds, shards, time.Since(t0).Round(time.Millisecond))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s holds %d shards %v after it started (settled %v); want %d", joined.ID(), holds, time.Since(t0), settled, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Status shows the placement driver's last tick, done once settled.
	for {
		st, err := cli.Status(ctx)
		if err == nil && st.Placement != nil && st.Placement.Done && st.Ready {
			for _, ns := range st.Nodes {
				if ns.Build == "" || ns.MemoryUsedBytes <= 0 {
					t.Errorf("status of %s: build %q, memory used %d; want both reported", ns.Id, ns.Build, ns.MemoryUsedBytes)
				}
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("status after the join: placement %v, ready %v, %v", st.GetPlacement(), st.GetNotReady(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	via, err := client.New(c.URL(j), client.WithTimeout(5*time.Second), client.WithMaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		for _, cl := range []*client.Client{cli, via} {
			if it, found, err := cl.Get(ctx, fmt.Sprintf("k%03d", i)); err != nil || !found || string(it.Value) != fmt.Sprint(i) {
				t.Fatalf("get k%03d after the join = %q, %v, %v; want %d", i, it.Value, found, err, i)
			}
		}
	}
	c.WaitConverged(ctx)

	// A joining node given another shard count is refused, and leaves no
	// layout behind that would refuse it the next time.
	addrs := freeLoopback(t, 3)
	dir := t.TempDir()
	octx, ocancel := context.WithTimeout(ctx, 15*time.Second)
	_, err = node.OpenContext(octx, node.Config{
		ID: "n9", Self: node.Peer{URL: "http://" + addrs[0], RaftAddr: addrs[1]}, DataDir: dir, Shards: shards + 1,
		GossipAddr: addrs[2], Join: c.Seeds(), GossipTiming: membership.FastTiming(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ocancel()
	if err == nil || !strings.Contains(err.Error(), "fixed when a cluster is created") {
		t.Errorf("join with %d shards into a %d-shard cluster = %v; want refused", shards+1, shards, err)
	}
	if node.HasClusterMap(dir) || fileExists(filepath.Join(dir, "cluster.json")) {
		t.Errorf("a refused join left its layout in %s", dir)
	}

	// Restarted, the joined node comes back from its own cluster map.
	c.Stop(j)
	c.Restart(j)
	if _, found, err := via.Get(ctx, "k007"); err != nil || !found {
		t.Fatalf("get via the restarted joined node = %v, %v", found, err)
	}
}

// TestDrainAndRemove: a drained node's replicas move to the others while it
// serves; a running node, a meta voter and an unknown node cannot be
// removed; once stopped, the drained node is forgotten.
func TestDrainAndRemove(t *testing.T) {
	const shards = 4
	c := nodetest.Start(t, nodetest.Options{Nodes: 4, Shards: shards, Gossip: true})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cli, err := client.New(c.URL(1), client.WithTimeout(5*time.Second), client.WithMaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	const keys = 100
	for i := range keys {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	const drained = 0 // n1: a meta voter, so the meta group moves too
	id := c.Node(drained).ID()
	if !holdsAny(c.Node(drained)) || c.Node(drained).Meta() == nil {
		t.Fatalf("%s holds no shard or meta replica: draining it would prove less", id)
	}
	if _, err := cli.DrainNode(ctx, "nobody", false); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("drain an unknown node = %v; want NotFound", err)
	}
	t0 := time.Now()
	if _, err := cli.DrainNode(ctx, id, false); err != nil {
		t.Fatalf("drain %s: %v", id, err)
	}
	for holdsAny(c.Node(drained)) || c.Node(drained).Meta() != nil || !sameEpoch(c) || !allHealed(c, shards, id) || !metaOn(c, id, 3) {
		if ctx.Err() != nil {
			t.Fatalf("%s still holds replicas %v after the drain began", id, time.Since(t0))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s drained in %v", id, time.Since(t0).Round(time.Millisecond))
	via, err := client.New(c.URL(drained), client.WithTimeout(5*time.Second), client.WithMaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if it, found, err := via.Get(ctx, fmt.Sprintf("k%03d", i)); err != nil || !found || string(it.Value) != fmt.Sprint(i) {
			t.Fatalf("get k%03d via the drained node = %q, %v, %v", i, it.Value, found, err)
		}
	}

	if _, err := cli.RemoveNode(ctx, id); connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "running") {
		t.Errorf("remove a running node = %v; want FailedPrecondition saying it runs", err)
	}
	if _, err := cli.RemoveNode(ctx, c.Node(3).ID()); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("remove a running meta voter = %v; want FailedPrecondition", err)
	}
	c.Stop(drained)
	for {
		_, err := cli.RemoveNode(ctx, id)
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || ctx.Err() != nil {
			t.Fatalf("remove the stopped %s: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond) // gossip has not seen it go yet
	}
	for {
		st, err := cli.Status(ctx)
		if err == nil && len(st.Nodes) == 3 && !slices.ContainsFunc(st.Nodes, func(n *wispv1.NodeStatus) bool { return n.Id == id }) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("status still lists %s after its removal: %v, %v", id, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := cli.RemoveNode(ctx, id); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("remove %s twice = %v; want NotFound", id, err)
	}
}

// metaOn reports whether the meta group has settled on voters live nodes
// other than gone, with no learner, in its leader's configuration, in the
// map of every live node, and hosted by exactly those nodes.
func metaOn(c *nodetest.Cluster, gone string, voters int) bool {
	var conf []string
	for i := range c.Size() {
		n := c.Node(i)
		if n == nil || n.Meta() == nil || !n.Meta().IsLeader() {
			continue
		}
		cf, err := n.Meta().Configuration()
		if err != nil {
			return false
		}
		for _, m := range cf.Members {
			if !m.Voter || m.ID == gone {
				return false
			}
			conf = append(conf, m.ID)
		}
	}
	if len(conf) != voters {
		return false
	}
	for i := range c.Size() {
		n := c.Node(i)
		if n == nil {
			continue
		}
		if slices.Contains(conf, n.ID()) != (n.Meta() != nil) {
			return false
		}
		var recorded []string
		for _, r := range n.ClusterMap().Meta {
			if !r.Voter {
				return false
			}
			recorded = append(recorded, r.Node)
		}
		slices.Sort(recorded)
		slices.Sort(conf)
		if !slices.Equal(recorded, conf) {
			return false
		}
	}
	return true
}

// allHealed reports whether every shard is healed (see healed) with no
// replica on node gone.
func allHealed(c *nodetest.Cluster, shards int, gone string) bool {
	for s := range shards {
		if !healed(c, s, gone) {
			return false
		}
	}
	return true
}

// TestImpostorRefused: after a member dies, a new process that claims its
// id (with other addresses) is refused at start, and does not stop the
// cluster from rebuilding the dead member's replicas elsewhere.
func TestImpostorRefused(t *testing.T) {
	const shards = 4
	c := nodetest.Start(t, nodetest.Options{Nodes: 4, Shards: shards, Gossip: true, Tune: func(cfg *node.Config) {
		cfg.DeadNodeTimeout = 2 * time.Second
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const victim = 3
	id := c.Node(victim).ID()
	c.Kill(victim)

	impostor(t, ctx, c, id)
	for !allHealed(c, shards, id) || !sameEpoch(c) {
		if ctx.Err() != nil {
			t.Fatalf("%s's replicas not rebuilt after an impostor claimed its id", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	impostor(t, ctx, c, id) // now that the members count it dead
}

// impostor starts a new node claiming member id's id, with addresses of
// its own, and checks that it is refused.
func impostor(t *testing.T, ctx context.Context, c *nodetest.Cluster, id string) {
	t.Helper()
	addrs := freeLoopback(t, 3)
	octx, ocancel := context.WithTimeout(ctx, 15*time.Second)
	imp, err := node.OpenContext(octx, node.Config{
		ID: id, Self: node.Peer{URL: "http://" + addrs[0], RaftAddr: addrs[1]}, DataDir: t.TempDir(),
		GossipAddr: addrs[2], Join: c.Seeds(), GossipTiming: membership.FastTiming(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ocancel()
	if err == nil {
		imp.Close()
		t.Fatalf("a new node claiming the dead member's id %s opened", id)
	}
	// Gossip refuses the id while the members still count its owner live;
	// once they count it dead, the cluster map still names the id at
	// another Raft address.
	if !errors.Is(err, membership.ErrIDTaken) && !strings.Contains(err.Error(), "is a member of the cluster with Raft address") {
		t.Errorf("impostor refused with %v; want membership.ErrIDTaken or the map's refusal", err)
	}
	t.Logf("impostor refused: %v", err)
}

// freeLoopback returns n loopback addresses whose ports were free a moment
// ago.
func freeLoopback(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestMetaGroupHeals: the node leading the meta group is killed. The
// others elect a new leader, whose placement driver rebuilds the meta
// group's lost replica on the fourth node (learner, catch-up, promote,
// remove the dead one) as it does the shards' replicas. Once no replica is
// left on it, the dead node can be removed, and the cluster is ready.
func TestMetaGroupHeals(t *testing.T) {
	const shards = 2
	c := healCluster(t, 4, shards, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for !metaOn(c, "", 3) {
		if ctx.Err() != nil {
			t.Fatal("the meta group's replicas were never recorded in the cluster map")
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim := metaLeader(t, ctx, c)
	dead := c.Node(victim).ID()
	spare := -1
	for i := range c.Size() {
		if c.Node(i).Meta() == nil {
			spare = i
		}
	}
	if spare < 0 {
		t.Fatal("every node holds a meta replica: nothing to heal onto")
	}
	t0 := time.Now()
	c.Kill(victim)
	live := (victim + 1) % c.Size()
	cli, err := client.New(c.URL(live), client.WithTimeout(5*time.Second), client.WithMaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	for !metaOn(c, dead, 3) || c.Node(spare).Meta() == nil || !sameEpoch(c) {
		if ctx.Err() != nil {
			t.Fatalf("the meta group not rebuilt %v after its leader %s died", time.Since(t0), dead)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("meta group rebuilt on %s %v after its leader %s died", c.Node(spare).ID(), time.Since(t0).Round(time.Millisecond), dead)
	waitHealed(t, ctx, c, dead)
	for {
		_, err := cli.RemoveNode(ctx, dead)
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || ctx.Err() != nil {
			t.Fatalf("remove the dead %s: %v", dead, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		st, err := cli.Status(ctx)
		if err == nil && st.Ready {
			if st.Meta == nil || len(st.Meta.Replicas) != 3 || st.Meta.LeaderId == "" {
				t.Fatalf("status reports the meta group as %v; want three replicas and a leader", st.Meta)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not ready after removing %s: %v %v", dead, st.GetNotReady(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := cli.Put(ctx, "after", []byte("heal")); err != nil {
		t.Fatalf("put after the meta group healed: %v", err)
	}
}
