package plugins

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// BenchmarkTTLs is the cost per write of a batched ttl call, for batches of
// 1, 16 and 256 writes, by the example plugins of one rule: the Go guest
// (examples/plugins/ttlprefix-go, with the SDK) and the C guest
// (examples/plugins/ttlprefix-c, on the bare ABI). It reports ns/write, the
// figure that matters for a Batch of puts: the call's fixed cost shared by
// the writes of the batch.
//
//	go test -run '^$' -bench BenchmarkTTLs ./plugins/
func BenchmarkTTLs(b *testing.B) {
	const now = 1_767_225_600_000
	for _, guest := range []struct{ name, path string }{
		{"go", "../examples/plugins/ttlprefix-go/ttlprefix.wasm"},
		{"c", "../examples/plugins/ttlprefix-c/ttlprefix.wasm"},
	} {
		wasm, err := os.ReadFile(guest.path)
		if err != nil {
			b.Fatal(err)
		}
		p, err := sharedHost(b).LoadTTL(context.Background(), wasm, WithName("ttlprefix-"+guest.name))
		if err != nil {
			b.Fatalf("LoadTTL(%s) = %v", guest.path, err)
		}
		b.Cleanup(p.Close)
		for _, n := range []int{1, 16, 256} {
			// Keys under each rule of the example: session/, cache/ and
			// others, as a Batch of a mixed workload would carry.
			writes := make([]TTLWrite, n)
			for i := range writes {
				prefix := [...]string{"session/", "cache/", "user/"}[i%3]
				writes[i] = TTLWrite{Key: fmt.Appendf(nil, "%s%010d", prefix, i), ValueLen: 100}
			}
			out := make([]int64, 0, n)
			b.Run(fmt.Sprintf("guest=%s/writes=%d", guest.name, n), func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if out, err = p.TTLs(ctx, now, writes, out[:0]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/write")
			})
		}
	}
}
