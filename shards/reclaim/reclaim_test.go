package reclaim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// singleReplica starts a one-replica group (its own quorum) on loopback.
func singleReplica(t *testing.T) *raftgroup.Group {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g, err := raftgroup.Open(raftgroup.Config{
		NodeID: "n1", Dir: t.TempDir(), RaftAddr: addr,
		Peers:  []raftgroup.Peer{{ID: "n1", Addr: addr}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !g.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

func putN(t *testing.T, g *raftgroup.Group, n int, ttlMs int64, value []byte) {
	t.Helper()
	for i := range n {
		cmd := &engine.Command{Mutations: []engine.Mutation{{Op: engine.OpPut, Key: fmt.Appendf(nil, "k%05d", i), Value: value, TTLMs: ttlMs}}}
		if res, err := g.Propose(context.Background(), cmd); err != nil || res.Err != nil {
			t.Fatalf("put %d: %v %v", i, err, res.Err)
		}
	}
}

func stats(g *raftgroup.Group) engine.Stats {
	var s engine.Stats
	g.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { s = e.Stats() })
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestActiveExpiry(t *testing.T) {
	g := singleReplica(t)
	putN(t, g, 2500, 50, []byte("v")) // more than two Expire entries' worth
	reg := prometheus.NewRegistry()
	r := Start(Config{Group: g, Settings: func() Settings { return Settings{} }, Interval: 10 * time.Millisecond, Registerer: reg})
	defer r.Close()
	// The reclaimer counts a batch after its Expire entry applies, so the
	// last count can trail the keys' removal by a moment: wait for both.
	waitFor(t, "all keys expired and counted", func() bool {
		return stats(g).Keys == 0 && testutil.ToFloat64(r.metrics.expired) >= 2500
	})
	if got := testutil.ToFloat64(r.metrics.expired); got != 2500 {
		t.Errorf("wisp_expired_keys_total = %v; want 2500", got)
	}
	if n := testutil.CollectAndCount(reg, "wisp_expiry_lag_seconds"); n != 1 {
		t.Errorf("lag histogram series = %d; want 1", n)
	}
}

func TestEvictionToBudget(t *testing.T) {
	g := singleReplica(t)
	putN(t, g, 1000, 0, make([]byte, 200))
	used := stats(g).MemoryUsedBytes
	policy, err := eviction.New("allkeys-lru")
	if err != nil {
		t.Fatal(err)
	}
	budget := used / 2
	r := Start(Config{Group: g, Settings: func() Settings { return Settings{MaxMemoryBytes: budget, Policy: policy} }, Interval: 10 * time.Millisecond})
	defer r.Close()
	waitFor(t, "memory under budget", func() bool { return stats(g).MemoryUsedBytes <= budget })
	s := stats(g)
	if low := budget / 100 * (LowWatermarkPercent - 3); s.MemoryUsedBytes < low {
		t.Errorf("memory %d after eviction; want near the budget %d, not far below (%d)", s.MemoryUsedBytes, budget, low)
	}
	if s.EvictedTotal == 0 || s.Keys >= 1000 {
		t.Errorf("stats %+v; want evictions", s)
	}
}

func TestNoEvictionDoesNotEvict(t *testing.T) {
	g := singleReplica(t)
	putN(t, g, 200, 0, make([]byte, 200))
	policy, _ := eviction.New("noeviction")
	r := Start(Config{Group: g, Settings: func() Settings { return Settings{MaxMemoryBytes: 1, Policy: policy} }, Interval: 5 * time.Millisecond})
	time.Sleep(100 * time.Millisecond) // many cycles; none may evict
	r.Close()
	if s := stats(g); s.Keys != 200 || s.EvictedTotal != 0 {
		t.Errorf("stats %+v; want all 200 keys, no evictions under noeviction", s)
	}
	r.Close() // safe twice
}

// writingPolicy is allkeys-lru, but each call first writes a key through
// Raft and waits for the write to apply. Applying takes the engine's write
// lock, so if the policy ran under the read lock, the write could not
// apply and the call would fail.
type writingPolicy struct {
	eviction.Policy
	g      *raftgroup.Group
	writes atomic.Int64
	failed atomic.Int64
}

func (p *writingPolicy) Victims(ctx context.Context, now int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n := p.writes.Add(1)
	cmd := &engine.Command{Mutations: []engine.Mutation{{Op: engine.OpPut, Key: fmt.Appendf(nil, "written-during-policy-%d", n), Value: []byte("v")}}}
	if res, err := p.g.Propose(wctx, cmd); err != nil || res.Err != nil {
		p.failed.Add(1)
		return out, fmt.Errorf("write during the policy call: %v %v", err, res.Err)
	}
	return p.Policy.Victims(ctx, now, cands, max, out)
}

// TestPolicyOutsideReadLock: the reclaimer calls the policy with the
// engine's lock released, so writes apply while a policy (a plugin, up to
// its timeout) decides.
func TestPolicyOutsideReadLock(t *testing.T) {
	g := singleReplica(t)
	putN(t, g, 1000, 0, make([]byte, 200))
	lru, err := eviction.New(eviction.AllKeysLRU)
	if err != nil {
		t.Fatal(err)
	}
	p := &writingPolicy{Policy: lru, g: g}
	budget := stats(g).MemoryUsedBytes / 2
	r := Start(Config{Group: g, Settings: func() Settings { return Settings{MaxMemoryBytes: budget, Policy: p} }, Interval: 10 * time.Millisecond})
	defer r.Close()
	waitFor(t, "memory under budget", func() bool { return stats(g).MemoryUsedBytes <= budget })
	r.Close()
	if p.writes.Load() == 0 || p.failed.Load() != 0 {
		t.Errorf("%d policy calls, %d of whose writes failed to apply; want calls, all writes applied", p.writes.Load(), p.failed.Load())
	}
	// 500 keys' worth of victims in Selects of up to 1,000: a few policy
	// calls, not one per victim.
	if n := p.writes.Load(); n > 50 {
		t.Errorf("%d policy calls to evict about half of 1,000 keys; want a few per Select", n)
	}
	t.Logf("%d policy calls, %d keys evicted", p.writes.Load(), stats(g).EvictedTotal)
}
