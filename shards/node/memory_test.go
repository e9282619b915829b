package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// The memory budget is per node: a shard may use what the nodes holding
// its replicas have room for (memory.go).

const (
	memBudget = 1 << 20
	memValue  = 60_000
	// memoryMeasure is how often a node measures its memory (memory.go).
	memoryMeasure = 500 * time.Millisecond
)

func memCluster(t *testing.T, policy string) (*nodetest.Cluster, *client.Client) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Shards: 8, Gossip: true, Tune: func(cfg *node.Config) {
		cfg.MaxMemoryBytes = memBudget
		cfg.EvictionPolicy = policy
	}})
	cli, err := client.New(c.URL(0), client.WithTimeout(5*time.Second), client.WithMaxAttempts(5))
	if err != nil {
		t.Fatal(err)
	}
	return c, cli
}

// nodesUsed returns each node's data memory as status reports it.
func nodesUsed(t *testing.T, ctx context.Context, cli *client.Client) map[string]int64 {
	t.Helper()
	st, err := cli.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, n := range st.Nodes {
		if n.MemoryBudgetBytes != memBudget {
			t.Fatalf("node %s reports a budget of %d; want the node's %d", n.Id, n.MemoryBudgetBytes, memBudget)
		}
		out[n.Id] = n.MemoryUsedBytes
	}
	return out
}

// TestMemoryBudgetPerNode: with noeviction, keys that all fall in one of
// eight shards fill most of the node budget (an equal share per replica
// would refuse them at an eighth), the refusal names the full node, and no
// node ends far past its budget.
func TestMemoryBudgetPerNode(t *testing.T) {
	c, cli := memCluster(t, "noeviction")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var keys []string
	for i := 0; len(keys) < 40; i++ {
		if k := fmt.Sprintf("k%04d", i); c.Node(0).ShardOf([]byte(k)) == 3 {
			keys = append(keys, k)
		}
	}
	value := make([]byte, memValue)
	stored := 0
	var refusal error
	for _, k := range keys {
		_, err := cli.Put(ctx, k, value)
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			// The budget grows as the nodes' measures come in: a refusal
			// stands only if it does again a few measures later.
			time.Sleep(2500 * time.Millisecond)
			_, err = cli.Put(ctx, k, value)
		}
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			refusal = err
			break
		}
		if err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		stored++
	}
	if refusal == nil {
		t.Fatalf("all %d values of %d bytes stored in one shard under a node budget of %d", stored, memValue, memBudget)
	}
	if !strings.Contains(refusal.Error(), "shard 3 is full: node n") {
		t.Errorf("refusal %q does not name the shard and the node", refusal)
	}
	share := memBudget / 8 / memValue
	if want := memBudget * 8 / 10 / memValue; stored < want {
		t.Errorf("stored %d values of %d bytes before the refusal; want at least %d (80%% of the node budget; an equal share would take %d)", stored, memValue, want, share)
	}
	for id, used := range nodesUsed(t, ctx, cli) {
		if used > memBudget+2*memValue {
			t.Errorf("node %s holds %d bytes: past its budget of %d by more than two values", id, used, memBudget)
		}
	}
	t.Logf("stored %d values of %d bytes in one shard (an equal share: %d); refusal: %v", stored, memValue, share, refusal)
}

// TestMemoryOneBigValue: a value of 60 % of the node budget goes into an
// empty cluster (the rule before took an eighth of it per replica), and a
// second one, which the nodes have no room for, is refused.
func TestMemoryOneBigValue(t *testing.T) {
	_, cli := memCluster(t, "noeviction")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	big := make([]byte, memBudget*6/10)
	if _, err := cli.Put(ctx, "big-1", big); err != nil {
		t.Fatalf("put a value of 60%% of the node budget into an empty cluster: %v", err)
	}
	time.Sleep(2 * memoryMeasure) // the nodes measure it and gossip it
	_, err := cli.Put(ctx, "big-2", big)
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("a second value the nodes have no room for = %v; want RESOURCE_EXHAUSTED", err)
	}
}

// TestMemoryEvictionPerNode: with allkeys-lru, writing three budgets' worth
// over every shard leaves each node near, not past, its budget: the shards
// evict in proportion, and not far below it either.
func TestMemoryEvictionPerNode(t *testing.T) {
	_, cli := memCluster(t, "allkeys-lru")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	value := make([]byte, memValue/4)
	for i := range 3 * memBudget / len(value) {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%05d", i), value); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	var used map[string]int64
	for {
		used = nodesUsed(t, ctx, cli)
		settled := true
		for _, u := range used {
			if u > memBudget*11/10 {
				settled = false
			}
		}
		if settled {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("nodes still past their budget of %d: %v", memBudget, used)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id, u := range used {
		if u < memBudget/2 {
			t.Errorf("node %s holds %d bytes: evicted far below its budget of %d", id, u, memBudget)
		}
	}
	t.Logf("node memory after writing %d bytes: %v (budget %d)", 3*memBudget, used, memBudget)
}
