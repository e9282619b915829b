package node_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
	"github.com/wisp-db/wisp/shards/ring"
)

// The API benchmarks run a real 3-node cluster (fsync on) and the load
// generator in this one process, over loopback, and report ops/s, p50/p99
// latency and CPU-ms per 1,000 ops (process user+system time: server and
// load generator together). Run them with a fixed op count, for example
//
//	go test -run '^$' -bench 'BenchmarkAPI' -benchtime 20000x ./shards/node

// clientsPerConn is how many concurrent callers share one HTTP/2 connection.
const clientsPerConn = 8

func BenchmarkAPIPut(b *testing.B) {
	c := nodetest.Start(b, nodetest.Options{})
	value := make([]byte, 256)
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			url := c.URL(c.WaitLeader(5 * time.Second))
			runLoad(b, url, clients, func(ctx context.Context, kv wispv1connect.KVServiceClient, i int) error {
				_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "bench/%08d", i), Value: value}))
				return err
			})
		})
	}
}

func BenchmarkAPIGet(b *testing.B) {
	c := nodetest.Start(b, nodetest.Options{})
	url := c.URL(c.WaitLeader(5 * time.Second))
	kv := wispv1connect.NewKVServiceClient(h2cClient(), url)
	const keys = 10000
	for i := range keys {
		if _, err := kv.Put(context.Background(), connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "bench/%08d", i), Value: make([]byte, 256)})); err != nil {
			b.Fatal(err)
		}
	}
	for _, level := range []wispv1.Consistency{wispv1.Consistency_CONSISTENCY_LINEARIZABLE, wispv1.Consistency_CONSISTENCY_STALE} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", level, clients), func(b *testing.B) {
				runLoad(b, url, clients, func(ctx context.Context, kv wispv1connect.KVServiceClient, i int) error {
					resp, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: fmt.Appendf(nil, "bench/%08d", i%keys), Consistency: level}))
					if err == nil && !resp.Msg.Found {
						return fmt.Errorf("key %d not found", i%keys)
					}
					return err
				})
			})
		}
	}
}

// runLoad runs b.N calls of op from clients concurrent callers sending to
// url and reports throughput, latency percentiles and CPU per 1,000 ops.
func runLoad(b *testing.B, url string, clients int, op func(context.Context, wispv1connect.KVServiceClient, int) error) {
	kvs := make([]wispv1connect.KVServiceClient, (clients+clientsPerConn-1)/clientsPerConn)
	for i := range kvs {
		kvs[i] = wispv1connect.NewKVServiceClient(&http.Client{Transport: h2cClient().Transport}, url)
	}
	runCallers(b, clients, func(ctx context.Context, w, i int) error { return op(ctx, kvs[w/clientsPerConn], i) })
}

// BenchmarkShardsPut compares 1 and 16 shards on 3 nodes, with fsync and
// without (to separate the log's cost from the rest), 64 clients through the
// routing Go client (each call straight to its shard's leader):
//
//	go test -run '^$' -bench BenchmarkShardsPut -benchtime 20000x -count 3 ./shards/node
//
// net=per-group is the baseline of the hub (node.Config.RaftNetPerGroup).
func BenchmarkShardsPut(b *testing.B) {
	value := make([]byte, 256)
	for _, shards := range []int{1, 16} {
		for _, net := range []string{"hub", "per-group"} {
			for _, noSync := range []bool{false, true} {
				b.Run(fmt.Sprintf("shards=%d/net=%s/nosync=%v", shards, net, noSync), func(b *testing.B) {
					benchShardsPut(b, shards, net == "per-group", noSync, value)
				})
			}
		}
	}
}

func benchShardsPut(b *testing.B, shards int, netPerGroup, noSync bool, value []byte) {
	c := nodetest.Start(b, nodetest.Options{Shards: shards, Tune: func(cfg *node.Config) {
		cfg.NoSync = noSync
		cfg.RaftNetPerGroup = netPerGroup
	}})
	c.WaitBalanced(30 * time.Second)
	const clients = 64
	clis := make([]*client.Client, (clients+clientsPerConn-1)/clientsPerConn)
	for i := range clis {
		cli, err := client.New(c.URL(0), client.WithHTTPClient(&http.Client{Transport: h2cClient().Transport}), client.WithMaxAttempts(1))
		if err != nil {
			b.Fatal(err)
		}
		// The first keyed call fetches the shard map: warm up.
		for k := range 50 {
			if _, err := cli.Put(context.Background(), fmt.Sprintf("warm/%d", k), value); err != nil {
				b.Fatal(err)
			}
		}
		clis[i] = cli
	}
	runCallers(b, clients, func(ctx context.Context, w, i int) error {
		_, err := clis[w/clientsPerConn].Put(ctx, fmt.Sprintf("bench/%08d", i%10000), value)
		return err
	})
	reportPacking(b, c)
}

// reportPacking reports the commands per Raft entry that the cluster's
// shard leaders proposed (warm-up included).
func reportPacking(b *testing.B, c *nodetest.Cluster) {
	var packs, commands uint64
	for i := range c.Size() {
		for s := range c.Shards() {
			if g := c.Node(i).Shard(s); g != nil {
				p, n := g.PackStats()
				packs, commands = packs+p, commands+n
			}
		}
	}
	if packs > 0 {
		b.ReportMetric(float64(commands)/float64(packs), "cmds/entry")
	}
}

// runCallers runs b.N calls of op (given the caller's number and the op's)
// from clients concurrent callers and reports throughput, latency
// percentiles and CPU per 1,000 ops.
func runCallers(b *testing.B, clients int, op func(ctx context.Context, caller, i int) error) {
	b.ReportAllocs()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		lat     = make([]time.Duration, 0, b.N)
		errs    atomic.Int64
		lastErr atomic.Value
	)
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/clients+1)
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := op(ctx, w, i)
				local = append(local, time.Since(t0))
				cancel()
				if err != nil {
					errs.Add(1)
					lastErr.Store(err)
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if n := errs.Load(); n > 0 {
		b.Fatalf("%d of %d ops failed; last: %v", n, b.N, lastErr.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(cpu.Seconds()/float64(b.N)*1000, "cpu-s/1k-ops")
}

// cpuTime is this process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExpiryLag loads 1,000,000 volatile keys that all expire within
// one minute, keeps a write load running while they expire, and reports the
// expiry lag (expiry time → the leader applies the Expire entry that
// removes the key) from the wisp_expiry_lag_seconds histogram. Run it once:
//
//	go test -run '^$' -bench BenchmarkExpiryLag -benchtime 1x -timeout 20m ./shards/node
func BenchmarkExpiryLag(b *testing.B) {
	const (
		keys      = 1_000_000
		batchSize = 1000
		window    = 60 * time.Second
		lead      = 15 * time.Second // loading takes a while; the first keys expire after this
		writers   = 16
	)
	reg := prometheus.NewRegistry()
	c := nodetest.Start(b, nodetest.Options{Tune: func(cfg *node.Config) { cfg.Registerer = reg }})
	url := c.URL(c.WaitLeader(5 * time.Second))
	kv := wispv1connect.NewKVServiceClient(h2cClient(), url)
	ctx := context.Background()

	start := time.Now()
	expiryStart := start.Add(lead)
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		loadErr atomic.Value
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(batchSize)) - batchSize
				if first >= keys {
					return
				}
				req := &wispv1.BatchRequest{}
				for i := first; i < first+batchSize; i++ {
					expiresAt := expiryStart.Add(time.Duration(i) * window / keys)
					ttl := max(time.Until(expiresAt).Milliseconds(), 1)
					req.Ops = append(req.Ops, &wispv1.BatchOp{Op: &wispv1.BatchOp_Put{Put: &wispv1.PutRequest{
						Key: fmt.Appendf(nil, "vol/%08d", i), Value: []byte("0123456789abcdef"), TtlMs: ttl,
					}}})
				}
				if _, err := kv.Batch(ctx, connect.NewRequest(req)); err != nil {
					loadErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := loadErr.Load(); err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Logf("loaded %d volatile keys in %v", keys, time.Since(start).Round(time.Millisecond))

	// A write load (non-volatile keys) while the keys expire.
	var (
		stop   atomic.Bool
		writes atomic.Int64
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := make([]byte, 256)
			for i := 0; !stop.Load(); i++ {
				if _, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "load/%02d/%06d", w, i%100000), Value: value})); err == nil {
					writes.Add(1)
				}
			}
		}()
	}
	loadStart := time.Now()
	leader := c.Node(c.WaitLeader(5 * time.Second))
	deadline := expiryStart.Add(window + 60*time.Second)
	for stats(leader).VolatileKeys > 0 {
		if time.Now().After(deadline) {
			stop.Store(true)
			wg.Wait()
			b.Fatalf("%d volatile keys left a minute after the last expiry time", stats(leader).VolatileKeys)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	writeRate := float64(writes.Load()) / time.Since(loadStart).Seconds()

	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var h *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() != "wisp_expiry_lag_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetHistogram().GetSampleCount() > h.GetSampleCount() {
				h = m.GetHistogram()
			}
		}
	}
	if h.GetSampleCount() < keys*9/10 {
		b.Fatalf("lag histogram has %d samples; want about %d", h.GetSampleCount(), keys)
	}
	b.ReportMetric(histQuantile(h, 0.50), "lag-p50-s")
	b.ReportMetric(histQuantile(h, 0.99), "lag-p99-s")
	b.ReportMetric(float64(h.GetSampleCount()), "expired")
	b.ReportMetric(writeRate, "writes/s")
}

// histQuantile returns the upper bound of the bucket holding quantile q.
func histQuantile(h *dto.Histogram, q float64) float64 {
	want := uint64(q * float64(h.GetSampleCount()))
	for _, bk := range h.GetBucket() {
		if bk.GetCumulativeCount() >= want {
			return bk.GetUpperBound()
		}
	}
	return math.Inf(1)
}

// BenchmarkJoinSixthNode measures what a join moves: a sixth node joins five
// holding 64 shards (192 replicas), and the benchmark waits until the
// cluster is ready (every shard where the placement wants it). It reports
// the replicas added across all nodes (moved), the newcomer's share, the
// ideal 3·64/6 = 32, and the seconds to settle. Run it once:
//
//	go test ./shards/node -run '^$' -bench JoinSixthNode -benchtime 1x
func BenchmarkJoinSixthNode(b *testing.B) {
	const shards = 64
	for range b.N {
		c := nodetest.Start(b, nodetest.Options{Nodes: 5, Shards: shards, Gossip: true})
		ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
		cli, err := client.New(c.URL(0), client.WithTimeout(10*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		before := replicaPairs(c.Node(0).Placement())
		t0 := time.Now()
		j := c.Join()
		for {
			st, err := cli.Status(ctx)
			if err == nil && st.Ready && len(st.Nodes) == 6 {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("not ready after the join: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		settled := time.Since(t0)
		after := replicaPairs(c.Node(0).Placement())
		moved, mine := 0, 0
		for p := range after {
			if !before[p] {
				moved++
			}
			if p.node == c.Node(j).ID() {
				mine++
			}
		}
		b.ReportMetric(float64(moved), "replicas-moved")
		b.ReportMetric(float64(mine), "newcomer-replicas")
		b.ReportMetric(float64(3*shards)/6, "ideal")
		b.ReportMetric(settled.Seconds(), "s-to-settle")
		cancel()
		c.Close()
	}
}

type replicaPair struct {
	shard int
	node  string
}

func replicaPairs(p ring.Placement) map[replicaPair]bool {
	out := map[replicaPair]bool{}
	for s, sh := range p.Shards {
		for _, id := range sh.Replicas {
			out[replicaPair{s, id}] = true
		}
	}
	return out
}

// BenchmarkHeal256MiB measures healing with data: five nodes holding
// 256 MiB (4,096 values of 64 KiB over 8 shards, 768 MiB with the
// replicas), one killed without warning (n5, not a meta voter), dead-node
// timeout 5 s. A probe client meanwhile puts and gets 100-byte values in a
// loop. It reports the seconds from the kill until every shard has three
// voters on live nodes (goal: timeout + 60 s), the data the dead node held
// (what was copied again), and the probe's ops/s and p99 during the heal
// against the 5 s before the kill (goal: at least 70 %). Run it once:
//
//	go test ./shards/node -run '^$' -bench Heal256MiB -benchtime 1x -timeout 30m
func BenchmarkHeal256MiB(b *testing.B) {
	for _, moves := range []int{4, 2, 1} { // --max-concurrent-moves
		b.Run(fmt.Sprintf("moves=%d", moves), func(b *testing.B) { benchmarkHeal(b, moves) })
	}
}

func benchmarkHeal(b *testing.B, moves int) {
	const (
		shards    = 8
		valueSize = 64 << 10
		values    = 4096
		deadAfter = 5 * time.Second
		victim    = 4
	)
	for range b.N {
		c := nodetest.Start(b, nodetest.Options{Nodes: 5, Shards: shards, Gossip: true, Tune: func(cfg *node.Config) {
			cfg.DeadNodeTimeout = deadAfter
			cfg.MaxConcurrentMoves = moves
		}})
		ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
		cli, err := client.New(c.URL(0), client.WithTimeout(10*time.Second), client.WithMaxAttempts(10))
		if err != nil {
			b.Fatal(err)
		}
		value := make([]byte, valueSize)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < values && ctx.Err() == nil; i = next.Add(1) - 1 {
					if _, err := cli.Put(ctx, fmt.Sprintf("big-%05d", i), value); err != nil {
						b.Errorf("load: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		st, err := cli.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		dead := c.Node(victim).ID()
		var held int64
		for _, sh := range st.Shards {
			for _, r := range sh.Replicas {
				if r.NodeId == dead {
					held += sh.MemoryUsedBytes
				}
			}
		}

		// The probe: sequential small puts and gets, latencies by phase.
		type sample struct {
			at  time.Time
			lat time.Duration
		}
		var (
			mu      sync.Mutex
			samples []sample
		)
		probeCtx, stopProbe := context.WithCancel(ctx)
		probeDone := make(chan struct{})
		go func() {
			defer close(probeDone)
			small := make([]byte, 100)
			for i := 0; probeCtx.Err() == nil && i < 1_000_000; i++ {
				key := fmt.Sprintf("probe-%03d", i%500)
				t0 := time.Now()
				var err error
				if i%2 == 0 {
					_, err = cli.Put(probeCtx, key, small)
				} else {
					_, _, err = cli.Get(probeCtx, key)
				}
				if err == nil {
					mu.Lock()
					samples = append(samples, sample{t0, time.Since(t0)})
					mu.Unlock()
				}
			}
		}()
		time.Sleep(5 * time.Second)
		killed := time.Now()
		c.Kill(victim)
		for !allHealed(c, shards, dead) || !sameEpoch(c) {
			if ctx.Err() != nil {
				b.Fatalf("not healed %v after the kill", time.Since(killed))
			}
			time.Sleep(100 * time.Millisecond)
		}
		healed := time.Now()
		stopProbe()
		<-probeDone
		rate := func(from, to time.Time) (float64, time.Duration) {
			var lats []time.Duration
			mu.Lock()
			for _, s := range samples {
				if !s.at.Before(from) && s.at.Before(to) {
					lats = append(lats, s.lat)
				}
			}
			mu.Unlock()
			if len(lats) == 0 {
				return 0, 0
			}
			slices.Sort(lats)
			return float64(len(lats)) / to.Sub(from).Seconds(), lats[len(lats)*99/100]
		}
		beforeRate, beforeP99 := rate(killed.Add(-5*time.Second), killed)
		// The heal proper: after the dead-node timeout, while replicas copy.
		duringRate, duringP99 := rate(killed.Add(deadAfter), healed)
		b.ReportMetric(healed.Sub(killed).Seconds(), "s-to-heal")
		b.ReportMetric(float64(held)/(1<<20), "MiB-held-by-dead")
		b.ReportMetric(beforeRate, "probe-ops/s-before")
		b.ReportMetric(duringRate, "probe-ops/s-healing")
		b.ReportMetric(duringRate/max(beforeRate, 1e-9), "healing/before")
		b.ReportMetric(float64(beforeP99.Microseconds())/1000, "p99-ms-before")
		b.ReportMetric(float64(duringP99.Microseconds())/1000, "p99-ms-healing")
		cancel()
		c.Close()
	}
}
