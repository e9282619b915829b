package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

func memoryTune(budget int64, policy string) func(*node.Config) {
	return func(c *node.Config) {
		c.MaxMemoryBytes = budget
		c.EvictionPolicy = policy
		c.ReclaimInterval = 20 * time.Millisecond
	}
}

func newClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithMaxAttempts(20), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func stats(n *node.Node) engine.Stats {
	var s engine.Stats
	n.Shard(0).Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { s = e.Stats() })
	return s
}

// TestReplicasAgreeUnderTTLAndEvictionChurn: heavy TTL and eviction churn with
// a leader change in the middle; afterwards every replica's digest is equal.
// minChurnPuts is enough puts of 200-byte values, half of them without a
// TTL, to fill a 64 KiB budget about twice over.
const minChurnPuts = 800

func TestReplicasAgreeUnderTTLAndEvictionChurn(t *testing.T) {
	const budget = 64 << 10 // about 200 keys of the 5,000 written
	c := nodetest.Start(t, nodetest.Options{Tune: memoryTune(budget, "allkeys-lru")})
	seed := rand.Uint64()
	t.Logf("seed %d", seed)

	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		puts atomic.Int64
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, uint64(w)))
			cl := newClient(t, c.URL(w%c.Size()))
			value := make([]byte, 200)
			for i := 0; i < 20000 && !stop.Load(); i++ {
				key := fmt.Sprintf("k%05d", rnd.IntN(5000))
				var opts []client.WriteOption
				if rnd.IntN(2) == 0 {
					opts = append(opts, client.WithTTL(time.Duration(20+rnd.IntN(400))*time.Millisecond))
				}
				if _, err := cl.Put(context.Background(), key, value, opts...); err == nil {
					puts.Add(1)
				}
				if rnd.IntN(4) == 0 {
					cl.Get(context.Background(), key)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	old := c.WaitLeader(5 * time.Second)
	c.Kill(old)
	t.Logf("killed leader n%d after %d puts", old+1, puts.Load())
	time.Sleep(1500 * time.Millisecond)
	c.Restart(old)
	time.Sleep(time.Second)
	// Eviction needs more persistent keys than the budget holds (about
	// 200): on a slow machine (-race, a loaded CI box) the writers may not
	// have made them yet. Keep writing until they have, bounded.
	for deadline := time.Now().Add(60 * time.Second); puts.Load() < minChurnPuts && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	// Let the last TTLs pass and the leader expire and evict them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := c.WaitLeader(10 * time.Second)
	for {
		s := stats(c.Node(l))
		if s.VolatileKeys == 0 && s.MemoryUsedBytes <= budget {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("leader still holds %d volatile keys, %d bytes (budget %d)", s.VolatileKeys, s.MemoryUsedBytes, budget)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.WaitConverged(ctx)
	var expired, evicted uint64
	for i := range c.Size() {
		s := stats(c.Node(i))
		expired += s.ExpiredTotal
		evicted += s.EvictedTotal
	}
	t.Logf("%d puts; expired %d, evicted %d (summed over replicas)", puts.Load(), expired, evicted)
	if expired == 0 || evicted == 0 {
		t.Errorf("expired %d, evicted %d; want both to have happened", expired, evicted)
	}
}

// TestEvictSurvivesRewrite: a key rewritten between candidate sampling and
// the apply of the Evict entry survives it.
func TestEvictSurvivesRewrite(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(5 * time.Second)
	g := c.Node(l).Shard(0)
	ctx := context.Background()
	for i := range 50 {
		cmd := &engine.Command{Mutations: []engine.Mutation{{Op: engine.OpPut, Key: fmt.Appendf(nil, "k%02d", i), Value: []byte("old")}}}
		if _, err := g.Propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	policy, err := eviction.New("allkeys-lru")
	if err != nil {
		t.Fatal(err)
	}
	ev := eviction.NewEvictor(policy)
	var victims []engine.Candidate
	g.Read(ctx, raftgroup.Stale, func(e *engine.Engine) {
		victims = ev.Select(e, time.Now().UnixMilli(), 1<<30, 50, rand.IntN, nil)
	})
	if len(victims) < 10 {
		t.Fatalf("got %d victims; want at least 10", len(victims))
	}
	// Rewrite the first victim after sampling, before the Evict entry.
	rewritten := string(victims[0].Key)
	if _, err := g.Propose(ctx, &engine.Command{Mutations: []engine.Mutation{{Op: engine.OpPut, Key: []byte(rewritten), Value: []byte("new")}}}); err != nil {
		t.Fatal(err)
	}
	cmd := &engine.Command{}
	for _, v := range victims {
		cmd.Mutations = append(cmd.Mutations, engine.Mutation{Op: engine.OpEvict, Key: v.Key, IfVersion: v.Version})
	}
	res, err := g.Propose(ctx, cmd)
	if err != nil || res.Err != nil {
		t.Fatalf("evict: %v %v", err, res.Err)
	}
	if res.Mutations[0].Existed {
		t.Errorf("the rewritten key %q was evicted", rewritten)
	}
	for i, m := range res.Mutations[1:] {
		if !m.Existed {
			t.Errorf("victim %q (not rewritten) was not evicted", victims[i+1].Key)
		}
	}
	item, found, err := newClient(t, c.URL(0)).Get(ctx, rewritten)
	if err != nil || !found || string(item.Value) != "new" {
		t.Errorf("Get(%q) = %q, %v, %v; want the rewritten value", rewritten, item.Value, found, err)
	}
	c.WaitConverged(ctx)
}

// TestNoEviction: past the budget writes fail with RESOURCE_EXHAUSTED,
// nothing stored is lost, memory stays within 5% of the budget, and deletes
// keep working (and make room).
func TestNoEviction(t *testing.T) {
	const budget = 128 << 10
	c := nodetest.Start(t, nodetest.Options{Tune: memoryTune(budget, "noeviction")})
	cl := newClient(t, c.URL(1))
	ctx := context.Background()
	value := make([]byte, 300)
	var stored []string
	for i := 0; ; i++ {
		key := fmt.Sprintf("k%05d", i)
		_, err := cl.Put(ctx, key, value)
		if err != nil {
			if connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Fatalf("Put(%q): %v; want RESOURCE_EXHAUSTED once full", key, err)
			}
			t.Logf("full after %d keys: %v", len(stored), err)
			break
		}
		stored = append(stored, key)
		if i > 10000 {
			t.Fatal("never refused a write")
		}
	}
	for i := range c.Size() {
		if used := stats(c.Node(i)).MemoryUsedBytes; used > budget*105/100 {
			t.Errorf("n%d: memory used %d; want within 5%% of the budget %d", i+1, used, budget)
		}
	}
	for _, key := range stored {
		if _, found, err := cl.Get(ctx, key); err != nil || !found {
			t.Fatalf("Get(%q) = %v, %v; stored before the budget filled", key, found, err)
		}
	}
	if _, _, err := cl.Delete(ctx, stored[0]); err != nil {
		t.Fatalf("Delete when full: %v", err)
	}
	if _, err := cl.Put(ctx, "after-delete", value); err != nil {
		t.Errorf("Put after a delete made room: %v", err)
	}
}

// TestExpiryKeepsAbsoluteTime: a key's expiry stays at its original time
// across a leader change and across a full restart of every node.
func TestExpiryKeepsAbsoluteTime(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Tune: memoryTune(0, "noeviction")})
	ctx := context.Background()
	cl := newClient(t, c.URL(0))

	check := func(key string, expiresAt time.Time) {
		t.Helper()
		// Still there shortly before its time...
		if d := time.Until(expiresAt) - 300*time.Millisecond; d > 0 {
			time.Sleep(d)
		}
		// Ask a running node: the one cl was made for may have been killed.
		live := newClient(t, c.URL(c.WaitLeader(5*time.Second)))
		if _, found, err := live.Get(ctx, key); err != nil || !found {
			t.Fatalf("Get(%q) 300ms before expiry: found=%v err=%v", key, found, err)
		}
		// ...and removed from memory within a few reclaim cycles after it.
		deadline := expiresAt.Add(time.Second)
		for {
			l := c.WaitLeader(5 * time.Second)
			var stored bool
			c.Node(l).Shard(0).Read(ctx, raftgroup.Stale, func(e *engine.Engine) { stored = e.Len() > 0 })
			if !stored {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %q still stored 1s after its expiry time", key)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if late := time.Since(expiresAt); late < -50*time.Millisecond {
			t.Errorf("key %q removed %v before its expiry time", key, -late)
		}
		t.Logf("%s removed %v after its expiry time", key, time.Since(expiresAt).Round(time.Millisecond))
	}

	// Leader change.
	start := time.Now()
	if _, err := cl.Put(ctx, "a", []byte("1"), client.WithTTL(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	expiresAt := start.Add(3 * time.Second)
	time.Sleep(time.Second)
	old := c.WaitLeader(5 * time.Second)
	c.Kill(old)
	c.WaitLeader(5 * time.Second)
	check("a", expiresAt)
	c.Restart(old)

	// Full restart.
	// Stopping and restarting every node takes 1-6 s on a busy machine
	// (each graceful HTTP shutdown waits for its HTTP/2 connections); the
	// TTL leaves room for it.
	start = time.Now()
	if _, err := cl.Put(ctx, "b", []byte("1"), client.WithTTL(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	expiresAt = start.Add(10 * time.Second)
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range c.Size() {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(i) }()
	}
	wg.Wait()
	for i := range c.Size() {
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	t.Logf("stopped and restarted every node; a leader %v after the first stop", time.Since(t0).Round(time.Millisecond))
	check("b", expiresAt)
}
