package node_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/node/nodetest"
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

// runLoad runs b.N calls of op from clients concurrent callers and reports
// throughput, latency percentiles and CPU per 1,000 ops.
func runLoad(b *testing.B, url string, clients int, op func(context.Context, wispv1connect.KVServiceClient, int) error) {
	b.ReportAllocs()
	kvs := make([]wispv1connect.KVServiceClient, (clients+clientsPerConn-1)/clientsPerConn)
	for i := range kvs {
		kvs[i] = wispv1connect.NewKVServiceClient(&http.Client{Transport: h2cClient().Transport}, url)
	}
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
			kv := kvs[w/clientsPerConn]
			local := make([]time.Duration, 0, b.N/clients+1)
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := op(ctx, kv, i)
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
