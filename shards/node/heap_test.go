package node_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// liveHeapBytes returns the live heap after a full collection.
func liveHeapBytes() uint64 {
	runtime.GC()
	runtime.GC() // the first may leave finalizer-held objects for the second
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// nodeMemoryUsed sums MemoryUsed over the shards node n hosts.
func nodeMemoryUsed(n *node.Node) int64 {
	var used int64
	for s := range n.Shards() {
		if g := n.Shard(s); g != nil {
			g.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) { used += e.MemoryUsed() })
		}
	}
	return used
}

const mib = 1 << 20

// TestHeapWithinBudget: a 3-node cluster with a memory budget under
// allkeys-lru, filled with six times its budget in 64 KiB values, keeps a
// live heap close to what its engines account (issue 9: stored values kept
// whole Raft entries and transport payloads alive, 388 MiB of live heap for
// 47 MiB accounted).
//
// The bound: growth of the live heap since the test began <=
// 1.5 × the budgets + heapOverheadPerNode per node. The engines' accounting
// matches the heap within a few percent for values this size; the factor
// leaves room for B-tree fill and the collector. The fixed overhead per node
// covers its Raft log caches (at most 1 MiB per group, raftlog.Cache; 4
// here), the hub's send and receive buffers, and the nodes' own structures
// (3 MiB for the 3 idle nodes). Measured: 69 MiB of live heap for 47 MiB
// accounted against a bound of 96 MiB, so the margin is about 28 MiB: a
// buffer that pins several evicted values per survivor, or a log cache
// bounded only in entries (64 MiB per group at these values), fails it.
//
// Set WISP_HEAP_PROFILE to a file name to write a heap profile at the end
// (go tool pprof -sample_index=inuse_space -top FILE).
func TestHeapWithinBudget(t *testing.T) {
	const (
		budget              = 16 * mib // per node
		heapOverheadPerNode = 8 * mib
		valueBytes          = 64 << 10
		written             = 100 * mib
		keys                = written / valueBytes
		workers             = 8
	)
	before := liveHeapBytes()
	c := nodetest.Start(t, nodetest.Options{Shards: 4, Tune: memoryTune(budget, "allkeys-lru")})
	started := liveHeapBytes()

	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Int64
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			cl := newClient(t, c.URL(w%c.Size()))
			value := make([]byte, valueBytes)
			for {
				i := next.Add(1) - 1
				if i >= keys {
					return
				}
				value[0] = byte(i)
				if _, err := cl.Put(context.Background(), fmt.Sprintf("k%05d", i), value); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d puts of %d bytes in %v (%d failed)", keys, valueBytes, time.Since(start).Round(time.Millisecond), failed.Load())

	// Eviction settles on every replica (followers apply the evictions a
	// commit timeout or two after the leader).
	var accounted int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		accounted = 0
		over := false
		for i := range c.Size() {
			used := nodeMemoryUsed(c.Node(i))
			accounted += used
			over = over || used > budget
		}
		if !over {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engines still over their %d-byte budget after 10 s: %d bytes in all", budget, accounted)
		}
		time.Sleep(20 * time.Millisecond)
	}

	live := liveHeapBytes()
	growth := int64(live) - int64(before)
	limit := int64(c.Size()) * (budget*3/2 + heapOverheadPerNode)
	t.Logf("live heap: %.1f MiB before, %.1f MiB with the cluster started, %.1f MiB after (growth %.1f MiB, bound %.1f MiB); engines account %.1f MiB",
		float64(before)/mib, float64(started)/mib, float64(live)/mib, float64(growth)/mib, float64(limit)/mib, float64(accounted)/mib)
	if p := os.Getenv("WISP_HEAP_PROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if growth > limit {
		t.Errorf("live heap grew by %.1f MiB; want at most %.1f MiB (1.5 × %d nodes × %d MiB budget + %d MiB per node)",
			float64(growth)/mib, float64(limit)/mib, c.Size(), budget/mib, heapOverheadPerNode/mib)
	}
}
