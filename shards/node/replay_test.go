package node_test

import (
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestStaleReadAfterRestart: a restarted node must not answer STALE reads
// from older data than it had before it stopped. Right after a restart a
// follower holds only its last snapshot until the leader tells it what is
// committed; reads in that window go to the leader instead.
func TestStaleReadAfterRestart(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	ctx := ctxT(t)
	leader := c.ShardLeader(0)
	follower := (leader + 1) % c.Size()
	kv := kvClient(c.URL(leader))
	const keys = 100
	for i := range keys {
		if _, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "k%03d", i), Value: []byte("v")})); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	// The follower has applied every write before it stops: its reads saw
	// all of them.
	want := c.Node(leader).Shard(0).AppliedIndex()
	deadline := time.Now().Add(5 * time.Second)
	for c.Node(follower).Shard(0).AppliedIndex() < want {
		if time.Now().After(deadline) {
			t.Fatalf("follower at %d, leader at %d", c.Node(follower).Shard(0).AppliedIndex(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Stop(follower)
	c.Restart(follower)

	stale := kvClient(c.URL(follower))
	read := func(i int) {
		t.Helper()
		key := fmt.Appendf(nil, "k%03d", i%keys)
		resp, err := stale.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: key, Consistency: wispv1.Consistency_CONSISTENCY_STALE}))
		if err != nil {
			t.Fatalf("STALE Get(%s) on the restarted node: %v", key, err)
		}
		if !resp.Msg.Found {
			t.Fatalf("STALE Get(%s) on the restarted node, read %d: not found; it was written and applied before the restart", key, i)
		}
	}
	g := c.Node(follower).Shard(0)
	deadline = time.Now().Add(10 * time.Second)
	early := 0
	for ; !g.Replayed(); early++ {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted replica has not caught up after 10s (applied %d)", g.AppliedIndex())
		}
		read(early)
	}
	for i := range keys {
		read(i)
	}
	t.Logf("%d reads while the restarted replica caught up", early)
}
