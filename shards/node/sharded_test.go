package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestSharded runs 5 nodes × 16 shards: the placement spreads replicas and
// leaders, every node's endpoint serves every key, scans merge shards in key
// order across pages, and a batch over several shards applies per shard.
func TestSharded(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 5, Shards: 16})
	ctx := ctxT(t)

	// Placement: 48 replicas over 5 nodes, none holding everything.
	p := c.Node(0).Placement()
	total := 0
	for _, l := range p.Nodes {
		total += l.Replicas
		if l.Replicas > p.ReplicaCap || l.Replicas == 16 {
			t.Errorf("node %s holds %d replicas (cap %d, shards 16)", l.ID, l.Replicas, p.ReplicaCap)
		}
	}
	if total != 48 {
		t.Errorf("%d replicas placed; want 48", total)
	}

	// Writes through every endpoint, reads back through every other one.
	const keys = 200
	kvs := make([]wispv1connect.KVServiceClient, c.Size())
	for i := range kvs {
		kvs[i] = kvClient(c.URL(i))
	}
	shardsHit := map[int]bool{}
	for i := range keys {
		key := fmt.Sprintf("key-%03d", i)
		shardsHit[c.Node(0).ShardOf([]byte(key))] = true
		if _, err := kvs[i%len(kvs)].Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte(key), Value: []byte("v" + key)})); err != nil {
			t.Fatalf("Put(%s) via n%d: %v", key, i%len(kvs)+1, err)
		}
	}
	if len(shardsHit) != 16 {
		t.Fatalf("%d keys hit %d of 16 shards", keys, len(shardsHit))
	}
	for i := range keys {
		key := fmt.Sprintf("key-%03d", i)
		r, err := kvs[(i+2)%len(kvs)].Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: []byte(key)}))
		if err != nil || !r.Msg.Found || string(r.Msg.Value) != "v"+key {
			t.Fatalf("Get(%s) via n%d = %v, %v", key, (i+2)%len(kvs)+1, r, err)
		}
	}

	// Scan: the whole keyspace in order, in pages, through one node.
	var got []string
	var token []byte
	pages := 0
	for {
		r, err := kvs[3].Scan(ctx, connect.NewRequest(&wispv1.ScanRequest{Prefix: []byte("key-"), Limit: 37, PageToken: token, KeysOnly: true}))
		if err != nil {
			t.Fatalf("Scan page %d: %v", pages, err)
		}
		pages++
		if len(r.Msg.Items) > 37 {
			t.Fatalf("page of %d items; limit 37", len(r.Msg.Items))
		}
		for _, it := range r.Msg.Items {
			got = append(got, string(it.Key))
		}
		if token = r.Msg.NextPageToken; len(token) == 0 {
			break
		}
		if pages > 20 {
			t.Fatal("scan does not end")
		}
	}
	if len(got) != keys || !sort.StringsAreSorted(got) {
		t.Fatalf("scan returned %d keys (sorted: %v); want %d in order", len(got), sort.StringsAreSorted(got), keys)
	}
	for i, k := range got {
		if want := fmt.Sprintf("key-%03d", i); k != want {
			t.Fatalf("scan item %d = %s; want %s", i, k, want)
		}
	}

	// A batch over several shards: all results in op order.
	var ops []*wispv1.BatchOp
	for i := range 20 {
		ops = append(ops, &wispv1.BatchOp{Op: &wispv1.BatchOp_Increment{Increment: &wispv1.IncrementRequest{Key: []byte(fmt.Sprintf("ctr-%d", i)), Delta: int64(i + 1)}}})
	}
	br, err := kvs[1].Batch(ctx, connect.NewRequest(&wispv1.BatchRequest{Ops: ops}))
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	for i, r := range br.Msg.Results {
		if v := r.GetIncrement().GetValue(); v != int64(i+1) {
			t.Errorf("batch result %d = %d; want %d", i, v, i+1)
		}
	}
	// A failed precondition names the op by its index in the whole batch.
	ops[13] = &wispv1.BatchOp{Op: &wispv1.BatchOp_Put{Put: &wispv1.PutRequest{Key: []byte("ctr-13"), Value: []byte("x"), IfAbsent: true}}}
	_, err = kvs[2].Batch(ctx, connect.NewRequest(&wispv1.BatchRequest{Ops: ops}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		t.Fatalf("batch with a failing precondition: %v; want FAILED_PRECONDITION", err)
	}
	found := false
	for _, d := range ce.Details() {
		if v, _ := d.Value(); v != nil {
			if pf, ok := v.(*wispv1.PreconditionFailure); ok {
				found = true
				if pf.OpIndex != 13 || string(pf.Key) != "ctr-13" {
					t.Errorf("PreconditionFailure = op %d key %q; want op 13 key ctr-13", pf.OpIndex, pf.Key)
				}
			}
		}
	}
	if !found {
		t.Errorf("no PreconditionFailure detail in %v", err)
	}

	// Status: per node replicas and leaders, per shard a leader and keys.
	cl := wispv1connect.NewClusterServiceClient(h2cClient(), c.URL(4))
	st, err := cl.Status(ctx, connect.NewRequest(&wispv1.StatusRequest{}))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	var reps, leads uint32
	for _, n := range st.Msg.Nodes {
		reps += n.Replicas
		leads += n.Leaders
	}
	var keyCount uint64
	for _, s := range st.Msg.Shards {
		keyCount += s.KeyCount
		if s.LeaderId == "" || len(s.Replicas) != 3 {
			t.Errorf("shard %d: leader %q, %d replicas", s.Id, s.LeaderId, len(s.Replicas))
		}
	}
	if reps != 48 || leads != 16 || len(st.Msg.Shards) != 16 || keyCount != keys+20 {
		t.Errorf("status: %d replicas, %d leaders, %d shards, %d keys; want 48, 16, 16, %d", reps, leads, len(st.Msg.Shards), keyCount, keys+20)
	}

	// Leaders spread out: the nodes hand misplaced leaderships over until
	// no node leads more than the placement's cap.
	deadline := time.Now().Add(20 * time.Second)
	for {
		counts := map[int]int{}
		for s := range 16 {
			counts[c.ShardLeader(s)]++
		}
		most := 0
		for _, n := range counts {
			most = max(most, n)
		}
		if most <= p.LeaderCap && counts[-1] == 0 {
			t.Logf("leaders per node %v (cap %d)", counts, p.LeaderCap)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders per node %v after 20s; cap %d", counts, p.LeaderCap)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestShardedKillNode kills a node that leads shards while Go clients, one
// per surviving node's endpoint, keep writing: the shards it led elect new
// leaders, and every call made once they have succeeds within the client's
// retry budget. Calls in flight at the crash may end with an unknown
// outcome (the client cannot know whether the dead leader committed them);
// nothing else may fail.
func TestShardedKillNode(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 5, Shards: 16})
	victim := c.ShardLeader(0)
	led := 0
	for s := range 16 {
		if c.ShardLeader(s) == victim {
			led++
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		recovered atomic.Bool // every shard has a leader again
		okCalls   atomic.Int64
		mu        sync.Mutex
		inFlight  []string // failures of calls made before recovery
		failures  []string // failures of calls made after it
		acked     = map[string]string{}
	)
	for w := range c.Size() {
		if w == victim {
			continue // its endpoint dies with it
		}
		cli, err := client.New(c.URL(w), client.WithTimeout(5*time.Second), client.WithMaxAttempts(10))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 2000; i++ {
				key := fmt.Sprintf("w%d-%d", w, i%50)
				val := fmt.Sprintf("%d", i)
				after := recovered.Load()
				if _, err := cli.Put(ctx, key, []byte(val)); err != nil {
					mu.Lock()
					delete(acked, key) // outcome unknown until the next ack
					if after {
						failures = append(failures, fmt.Sprintf("put %s: %v", key, err))
					} else {
						inFlight = append(inFlight, fmt.Sprintf("put %s: %v", key, err))
					}
					mu.Unlock()
					continue
				}
				mu.Lock()
				acked[key] = val
				mu.Unlock()
				okCalls.Add(1)
			}
		}()
	}
	for okCalls.Load() < 200 {
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	c.Kill(victim)
	t.Logf("killed n%d, which led %d of 16 shards, after %d writes", victim+1, led, okCalls.Load())
	for s := range 16 {
		for c.ShardLeader(s) < 0 {
			if time.Since(t0) > 15*time.Second {
				t.Fatalf("shard %d has no leader 15s after the kill", s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	recovered.Store(true)
	t.Logf("every shard has a leader %v after the kill", time.Since(t0).Round(time.Millisecond))
	before := okCalls.Load()
	for okCalls.Load() < before+300 && time.Since(t0) < 30*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d calls in flight around the crash failed: %v", len(inFlight), inFlight)
	if len(inFlight) > c.Size() {
		t.Errorf("%d calls failed around the crash; at most one per client may be caught in flight", len(inFlight))
	}
	if len(failures) > 0 {
		t.Fatalf("%d calls made after recovery failed, first: %s", len(failures), failures[0])
	}
	if okCalls.Load() < before+300 {
		t.Fatalf("only %d writes after every shard had a leader again", okCalls.Load()-before)
	}

	// Status shows the dead node as unreachable, with the replicas the
	// placement gives it, each marked so.
	st, err := wispv1connect.NewClusterServiceClient(http.DefaultClient, c.URL((victim+1)%c.Size())).
		Status(ctx, connect.NewRequest(&wispv1.StatusRequest{}))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	victimID := fmt.Sprintf("n%d", victim+1)
	var placed uint32
	for _, l := range c.Node((victim + 1) % c.Size()).Placement().Nodes {
		if l.ID == victimID {
			placed = uint32(l.Replicas)
		}
	}
	for _, ns := range st.Msg.Nodes {
		if ns.Id == victimID && (ns.Reachable || ns.Replicas != placed || ns.Error == "") {
			t.Errorf("Status of the dead node = %v; want unreachable, with an error and its %d replicas", ns, placed)
		}
	}
	marked := 0
	for _, sh := range st.Msg.Shards {
		if len(sh.Replicas) != 3 {
			t.Errorf("Status shard %d lists %d replicas; want 3", sh.Id, len(sh.Replicas))
		}
		for _, r := range sh.Replicas {
			if r.NodeId == victimID {
				if r.State != node.ReplicaUnreachable {
					t.Errorf("shard %d: the dead node's replica is %q; want %q", sh.Id, r.State, node.ReplicaUnreachable)
				}
				marked++
			}
		}
	}
	if uint32(marked) != placed {
		t.Errorf("%d replicas marked unreachable; want the dead node's %d", marked, placed)
	}

	// Every acknowledged write is readable, through a surviving node.
	cli, err := client.New(c.URL((victim + 1) % c.Size()))
	if err != nil {
		t.Fatal(err)
	}
	for key, val := range acked {
		it, found, err := cli.Get(ctx, key)
		if err != nil || !found || !bytes.Equal(it.Value, []byte(val)) {
			t.Fatalf("Get(%s) = %q, %v, %v; want %q", key, it.Value, found, err, val)
		}
	}
}

// TestConfigInTheMap: settings stored in the shards by an older SetConfig
// are in force, and are moved into the cluster map when a meta leader
// takes over; SetConfig through one node is then seen by GetConfig through
// another at once, and is in force on every node.
func TestConfigInTheMap(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Shards: 4})
	ctx := ctxT(t)
	for s := range c.Shards() {
		l := c.ShardLeader(s)
		if _, err := c.Node(l).Shard(s).Propose(ctx, &engine.Command{Mutations: []engine.Mutation{
			{Op: engine.OpSetMeta, Key: []byte("eviction_policy"), Value: []byte("allkeys-lfu")},
			{Op: engine.OpSetMeta, Key: []byte("max_memory_bytes"), Value: []byte("1048576")},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	leader := -1
	for i := range c.Size() {
		if g := c.Node(i).Meta(); g != nil && g.IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no meta leader")
	}
	c.Kill(leader) // the next leader's driver moves the legacy settings into the map
	via := (leader + 1) % c.Size()
	cl := wispv1connect.NewClusterServiceClient(h2cClient(), c.URL(via))
	for {
		got, err := cl.GetConfig(ctx, connect.NewRequest(&wispv1.GetConfigRequest{}))
		if err == nil && got.Msg.Config.GetEvictionPolicy() == "allkeys-lfu" && got.Msg.Config.GetMaxMemoryBytes() == 1<<20 {
			if got.Msg.Effective.GetEvictionPolicy() != "allkeys-lfu" || got.Msg.Effective.GetMaxMemoryBytes() != 1<<20 {
				t.Fatalf("effective %v; want the migrated settings", got.Msg.Effective)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the legacy settings never reached the map: %v, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Restart(leader)

	lru := "allkeys-lru"
	if _, err := wispv1connect.NewClusterServiceClient(h2cClient(), c.URL(leader)).SetConfig(ctx, connect.NewRequest(&wispv1.SetConfigRequest{Config: &wispv1.ClusterConfig{EvictionPolicy: &lru}})); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	for i := range c.Size() {
		got, err := wispv1connect.NewClusterServiceClient(h2cClient(), c.URL(i)).GetConfig(ctx, connect.NewRequest(&wispv1.GetConfigRequest{}))
		if err != nil || got.Msg.Config.GetEvictionPolicy() != lru || got.Msg.Effective.GetEvictionPolicy() != lru || got.Msg.Config.GetMaxMemoryBytes() != 1<<20 {
			t.Fatalf("GetConfig via node %d = %v, %v; want %s set and in force, the budget kept", i, got, err, lru)
		}
	}
	bad := int64(-1)
	if _, err := cl.SetConfig(ctx, connect.NewRequest(&wispv1.SetConfigRequest{Config: &wispv1.ClusterConfig{MaxMemoryBytes: &bad}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("SetConfig of a negative budget = %v; want INVALID_ARGUMENT", err)
	}
	unknown := "most-recently-liked"
	if _, err := cl.SetConfig(ctx, connect.NewRequest(&wispv1.SetConfigRequest{Config: &wispv1.ClusterConfig{EvictionPolicy: &unknown}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("SetConfig of an unknown policy = %v; want INVALID_ARGUMENT", err)
	}
}
