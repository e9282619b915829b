package main

import (
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestBench runs bench put and bench get against a real 3-node cluster
// whose nodes serve /metrics as wispd does, from this process.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	c := nodetest.Start(t, nodetest.Options{Wrap: func(h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.Handle("GET /metrics", metrics)
		return mux
	}})
	ep := "--endpoint=" + c.URL(0)
	small := []string{"--ops=300", "--clients=8", "--warmup=50", "--keys=100"}

	t.Run("put json", func(t *testing.T) {
		r := wisp(t, append([]string{ep, "--output=json", "bench", "put"}, small...)...)
		if r.code != 0 {
			t.Fatalf("bench put = exit %d, stderr %q; want 0", r.code, r.stderr)
		}
		var res benchResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("bench put output %q: %v", r.stdout, err)
		}
		checkResult(t, &res, "put")
		if res.Consistency != "" || res.Conns != 1 || res.ValueSizeBytes != 256 {
			t.Errorf("consistency %q, conns %d, value size %d; want \"\", 1, 256", res.Consistency, res.Conns, res.ValueSizeBytes)
		}
	})

	for _, consistency := range []string{"linearizable", "stale"} {
		t.Run("get json "+consistency, func(t *testing.T) {
			args := append([]string{ep, "--output=json", "--consistency=" + consistency, "bench", "get", "--conns=2"}, small...)
			r := wisp(t, args...)
			if r.code != 0 {
				t.Fatalf("bench get = exit %d, stderr %q; want 0", r.code, r.stderr)
			}
			var res benchResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("bench get output %q: %v", r.stdout, err)
			}
			checkResult(t, &res, "get")
			if res.Consistency != consistency || res.Conns != 2 {
				t.Errorf("consistency %q, conns %d; want %q, 2", res.Consistency, res.Conns, consistency)
			}
			// Every key was written before the run. A stale read may
			// miss a write its node has yet to apply.
			if consistency == "linearizable" && res.NotFound != 0 {
				t.Errorf("not found %d; want 0", res.NotFound)
			}
		})
	}

	t.Run("get text", func(t *testing.T) {
		r := wisp(t, append([]string{ep, "bench", "get"}, small...)...)
		want := regexp.MustCompile(`^bench get: 300 ops, 0 errors in \d+\.\d{3}s
  8 clients over 1 connection to http://127\.0\.0\.1:\d+, 100 keys, 256-byte values, linearizable reads
throughput  \d+ ops/s
latency ms  p50 \d+\.\d\d  p90 \d+\.\d\d  p99 \d+\.\d\d  p99\.9 \d+\.\d\d  max \d+\.\d\d
client CPU  \d+\.\d{3} s per 1000 ops
server CPU  \d+\.\d{3} s per 1000 ops
not found   0
$`)
		if r.code != 0 || !want.MatchString(r.stdout) || r.stderr != "" {
			t.Errorf("bench get = exit %d, stdout:\n%s\nstderr %q; want 0 and stdout matching\n%s", r.code, r.stdout, r.stderr, want)
		}
	})
}

// checkResult checks the figures of a run of 300 ops that all succeeded.
func checkResult(t *testing.T, res *benchResult, op string) {
	t.Helper()
	if res.Op != op || res.Ops != 300 || res.Errors != 0 || len(res.ErrorsByCode) != 0 {
		t.Errorf("op %q, ops %d, errors %d %v; want %q, 300, 0", res.Op, res.Ops, res.Errors, res.ErrorsByCode, op)
	}
	if res.Clients != 8 || res.Keys != 100 {
		t.Errorf("clients %d, keys %d; want 8, 100", res.Clients, res.Keys)
	}
	if res.ElapsedSeconds <= 0 || res.OpsPerSecond <= 0 {
		t.Errorf("elapsed %vs, %v ops/s; want both > 0", res.ElapsedSeconds, res.OpsPerSecond)
	}
	l := res.LatencyMs
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency %+v; want 0 < p50 <= p90 <= p99 <= p99.9 <= max", l)
	}
	if res.ClientCPUSecondsPer1kOps <= 0 {
		t.Errorf("client CPU %v s per 1k ops; want > 0", res.ClientCPUSecondsPer1kOps)
	}
	// The server is this process, whose CPU clock (from /proc on Linux)
	// ticks every 10ms: it may not have moved.
	if s := res.ServerCPUSecondsPer1kOps; s == nil || *s < 0 || res.ServerCPUError != "" {
		t.Errorf("server CPU %v, error %q; want a figure >= 0", s, res.ServerCPUError)
	}
}

// TestBenchErrors runs bench against a closed port: every op fails, is
// counted by code, the figures are still printed, and the exit code is 1.
func TestBenchErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()

	r := wisp(t, "--endpoint="+url, "--output=json", "bench", "put", "--ops=20", "--clients=2", "--warmup=0")
	var res benchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("bench put output %q: %v", r.stdout, err)
	}
	if r.code != 1 || res.Ops != 0 || res.Errors != 20 || res.ErrorsByCode["unavailable"] != 20 {
		t.Errorf("bench put to a closed port = exit %d, ops %d, errors %d %v; want 1, 0, 20 unavailable",
			r.code, res.Ops, res.Errors, res.ErrorsByCode)
	}
	if res.ServerCPUSecondsPer1kOps != nil || res.ServerCPUError == "" {
		t.Errorf("server CPU %v, error %q; want null and a reason", res.ServerCPUSecondsPer1kOps, res.ServerCPUError)
	}
	if want := "Error: bench put: 20 of 20 ops failed; the first: cannot reach " + url + ": connection refused (is wispd running?)\n"; r.stderr != want {
		t.Errorf("stderr %q; want prefix %q", r.stderr, want)
	}

	r = wisp(t, "--endpoint="+url, "bench", "get", "--ops=20", "--clients=2", "--keys=5", "--op-timeout=2s")
	if want := "Error: bench get: preload 5 keys: cannot reach " + url + ": connection refused (is wispd running?)\n"; r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("bench get to a closed port = exit %d, stdout %q, stderr %q; want 1 and a preload error", r.code, r.stdout, r.stderr)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "put", "--clients=0"},
		{"bench", "put", "--clients=1025"},
		{"bench", "put", "--ops=0"},
		{"bench", "get", "--duration=11m"},
		{"bench", "get", "--duration=-1s"},
		{"bench", "put", "--value-size=-1"},
		{"bench", "put", "--keys=0"},
		{"bench", "put", "--clients=4", "--conns=5"},
		{"bench", "put", "--warmup=-1"},
		{"bench", "put", "--op-timeout=-1s"},
		{"bench", "put", "extra"},
		{"bench", "del"},
	} {
		r := wisp(t, append([]string{"--endpoint=http://127.0.0.1:1"}, args...)...)
		if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "Error: ") {
			t.Errorf("wisp %q = exit %d, stdout %q, stderr %q; want %d and an error", args, r.code, r.stdout, r.stderr, exitUsage)
		}
	}
}

func TestParseProcessCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n" +
			"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.34\n", 12.34, true},
		{"go_goroutines 7\nprocess_cpu_seconds_total 1e+02\nprocess_max_fds 1024\n", 100, true},
		{`process_cpu_seconds_total{instance="a"} 3.5 1700000000000` + "\n", 3.5, true},
		{"process_cpu_seconds_total_extra 9\nprocess_cpu_seconds_total 2\n", 2, true},
		{"go_goroutines 7\n", 0, false},
		{"process_cpu_seconds_total\n", 0, false},
		{"process_cpu_seconds_total x\n", 0, false},
		{"process_cpu_seconds_total{a=\"b\"\n", 0, false},
		{"", 0, false},
	} {
		got, err := parseProcessCPU(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseProcessCPU(%q) = %v, %v; want %v, ok %t", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
