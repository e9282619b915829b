package transport

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchTiming is raftgroup's default timing.
var benchTiming = timing{heartbeat: 600 * time.Millisecond, election: 600 * time.Millisecond, lease: 300 * time.Millisecond, commit: 50 * time.Millisecond}

// BenchmarkRaftApply compares 16 groups × 3 replicas over one Mux per node
// (3 ports) with the same groups over one raft.NewTCPTransport per replica
// (48 ports, as raftgroup does today). Logs are raft.InmemStore (no fsync),
// so the transport's cost is not hidden behind the disk. 64 appliers, each
// bound to one group, apply 256-byte commands through the group's leader;
// b.N is the total number of applies. Use a fixed count:
//
//	go test ./shards/transport -run '^$' -bench RaftApply -benchtime 20000x -count 3
func BenchmarkRaftApply(b *testing.B) {
	for _, tc := range []struct {
		name string
		mode netMode
	}{{"hub", netHub}, {"mux", netMux}, {"tcp-per-group", netTCP}} {
		b.Run(tc.name, func(b *testing.B) { benchApply(b, tc.mode) })
	}
}

func benchApply(b *testing.B, mode netMode) {
	const (
		nodes    = 3
		groups   = 16
		appliers = 64
		cmdBytes = 256
	)
	c := startCluster(b, nodes, groups, mode, benchTiming)
	defer c.shutdown()
	all := []int{0, 1, 2}
	c.waitLeaders(b, all, 30*time.Second)
	cmd := make([]byte, cmdBytes)
	for g := range groups { // open the connections before measuring
		if err := c.apply(g, all, cmd); err != nil {
			b.Fatal(err)
		}
	}

	b.ReportAllocs()
	cpu0 := cpuTime()
	start := time.Now()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range appliers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := c.apply(w%groups, all, cmd); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "applies/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N)*1000, "cpu-s/1k-applies")
	ports := make(map[uint64]bool)
	for _, trs := range c.trans {
		for _, tr := range trs {
			_, port, _ := net.SplitHostPort(string(tr.LocalAddr()))
			p, _ := strconv.ParseUint(port, 10, 16)
			ports[p] = true
		}
	}
	b.ReportMetric(float64(establishedTo(b, ports)), "tcp-conns")
	b.ReportMetric(float64(len(ports)), "ports")
	b.ReportMetric(0, "ns/op") // b.N applies run 64 at a time: ns/op misleads
}

// cpuTime is the user plus system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// establishedTo counts the established TCP connections whose server end is
// one of ports (Linux, IPv4). Each connection counts once, and connections
// left over from an earlier cluster in the same process (hashicorp/raft's
// NetworkTransport.Close leaves its pooled connections to the garbage
// collector) do not count, since their ports differ.
func establishedTo(tb testing.TB, ports map[uint64]bool) int {
	data, err := os.ReadFile("/proc/self/net/tcp")
	if err != nil {
		tb.Skipf("count connections: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line) // sl local_address rem_address st ...
		if len(f) < 4 || f[3] != "01" {
			continue
		}
		_, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(port, 16, 16); err == nil && ports[p] {
			n++
		}
	}
	return n
}
