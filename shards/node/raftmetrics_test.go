package node_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
)

// TestMain, with WISP_RAFT_METRICS=1, collects hashicorp/raft's own timings
// (go-metrics, in memory) while the tests or benchmarks run and prints each
// one's count and mean at the end: where a commit's time goes (the leader's
// log write, the append round trip, the follower's log write, heartbeat
// round trips). For example
//
//	WISP_RAFT_METRICS=1 go test -run '^$' -bench 'BenchmarkShardsPut/shards=16$/net=hub/nosync=false' -benchtime 20000x ./shards/node
func TestMain(m *testing.M) {
	var sink *metrics.InmemSink
	if os.Getenv("WISP_RAFT_METRICS") != "" {
		sink = metrics.NewInmemSink(time.Hour, time.Hour)
		cfg := metrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false
		if _, err := metrics.NewGlobal(cfg, sink); err != nil {
			fmt.Fprintln(os.Stderr, "raft metrics:", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if sink != nil {
		for _, iv := range sink.Data() {
			names := make([]string, 0, len(iv.Samples))
			for k := range iv.Samples {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names {
				s := iv.Samples[k]
				fmt.Printf("%-72s n=%8d mean=%9.3f ms\n", k, s.Count, s.Sum/float64(s.Count))
			}
		}
	}
	os.Exit(code)
}
