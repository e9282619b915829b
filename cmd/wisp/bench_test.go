package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

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

	t.Run("mixed json", func(t *testing.T) {
		r := wisp(t, append([]string{ep, "--output=json", "bench", "mixed", "--read-ratio=0.5"}, small...)...)
		res := benchJSON(t, r)
		checkResult(t, &res, "mixed")
		if res.ReadRatio == nil || *res.ReadRatio != 0.5 || res.Consistency != "linearizable" || res.Dist != "uniform" {
			t.Errorf("read ratio %v, consistency %q, dist %q; want 0.5, linearizable, uniform", res.ReadRatio, res.Consistency, res.Dist)
		}
		// 300 draws at 0.5: fewer than 75 of either is a 1-in-10^19 event.
		if res.Gets+res.Puts != 300 || res.Gets < 75 || res.Puts < 75 || res.NotFound != 0 {
			t.Errorf("gets %d, puts %d, not found %d; want 300 in all, each >= 75, 0 not found", res.Gets, res.Puts, res.NotFound)
		}
		for _, kind := range []string{"get", "put"} {
			if l, ok := res.LatencyMsByOp[kind]; !ok || !(0 < l.P50 && l.P50 <= l.Max && l.Max <= res.LatencyMs.Max) {
				t.Errorf("latency_ms_by_op[%q] = %+v, %t; want 0 < p50 <= max <= %v", kind, l, ok, res.LatencyMs.Max)
			}
		}
	})

	t.Run("zipf text", func(t *testing.T) {
		r := wisp(t, append([]string{ep, "--consistency=stale", "bench", "zipf", "--zipf-s=1.5"}, small...)...)
		want := regexp.MustCompile(`^bench zipf: 300 ops, 0 errors in \d+\.\d{3}s
  8 clients over 1 connection to http://127\.0\.0\.1:\d+, 100 keys, 256-byte values, zipf keys \(s 1\.5\), stale reads
throughput  \d+ ops/s
latency ms  p50 `)
		if r.code != 0 || !want.MatchString(r.stdout) || r.stderr != "" {
			t.Errorf("bench zipf = exit %d, stdout:\n%s\nstderr %q; want 0 and stdout matching\n%s", r.code, r.stdout, r.stderr, want)
		}
	})

	t.Run("duration without ops", func(t *testing.T) {
		r := wisp(t, ep, "--output=json", "bench", "put", "--duration=300ms", "--clients=4", "--warmup=0", "--keys=100")
		res := benchJSON(t, r)
		if res.OpsLimit != benchMaxOps || res.Ops == 0 || res.ElapsedSeconds < 0.3 || res.ElapsedSeconds > 5 {
			t.Errorf("ops limit %d, ops %d, elapsed %vs; want %d, > 0, 0.3s and a little more", res.OpsLimit, res.Ops, res.ElapsedSeconds, benchMaxOps)
		}
	})

	t.Run("no progress off a terminal", func(t *testing.T) {
		// Stderr is a file, as under CI: the bar must not be drawn.
		f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var stdout strings.Builder
		code := run(t.Context(), append([]string{ep, "bench", "put"}, small...), strings.NewReader(""), &stdout, f)
		stderr, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 || len(stderr) != 0 || !strings.HasPrefix(stdout.String(), "bench put: 300 ops") {
			t.Errorf("bench put = exit %d, stdout %q, stderr %q; want 0, a report and no stderr", code, stdout.String(), stderr)
		}
	})

	t.Run("batch out and plot", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "batch.json")
		r := wisp(t, append([]string{ep, "--output=json", "bench", "batch", "--batch-size=7", "--out=" + out}, small...)...)
		res := benchJSON(t, r)
		checkResult(t, &res, "batch")
		// 300 keys in calls of 7: 42 full calls and one of 6.
		if res.BatchSize != 7 || res.Calls != 43 || res.Puts != 300 || res.Gets != 0 || res.Consistency != "" {
			t.Errorf("batch size %d, calls %d, puts %d, gets %d, consistency %q; want 7, 43, 300, 0, \"\"",
				res.BatchSize, res.Calls, res.Puts, res.Gets, res.Consistency)
		}
		if want := res.OpsPerSecond / 300 * 43; res.CallsPerSecond < want*0.99 || res.CallsPerSecond > want*1.01 {
			t.Errorf("calls/s %v; want %v", res.CallsPerSecond, want)
		}
		if res.Series != nil || res.Percentiles != nil {
			t.Errorf("stdout has series or percentiles; want them in --out only")
		}
		file := checkOutFile(t, out, &res)

		// A second run, put, to compare on one chart.
		out2 := filepath.Join(dir, "put.json")
		if r := wisp(t, append([]string{ep, "bench", "put", "--out=" + out2}, small...)...); r.code != 0 {
			t.Fatalf("bench put --out = exit %d, stderr %q", r.code, r.stderr)
		}
		svgPath := filepath.Join(dir, "cmp.svg")
		r = wisp(t, "bench", "plot", out, out2, "--svg="+svgPath)
		if r.code != 0 || r.stdout != "wrote "+svgPath+"\n" {
			t.Fatalf("bench plot = exit %d, stdout %q, stderr %q; want 0, \"wrote %s\"", r.code, r.stdout, r.stderr, svgPath)
		}
		svg, err := os.ReadFile(svgPath)
		if err != nil {
			t.Fatal(err)
		}
		lines := svgSeries(t, svg)
		for _, run := range []string{"batch", "put"} {
			for _, series := range []string{"ops/s", "p50", "p99", "latency by percentile"} {
				if n := lines[run+" "+series]; n == 0 {
					t.Errorf("SVG has no points for %s %s; lines: %v", run, series, lines)
				}
			}
		}
		if n := lines["batch latency by percentile"]; n != len(file.Percentiles) {
			t.Errorf("SVG batch percentile line has %d points; want %d", n, len(file.Percentiles))
		}

		// The default name is the first file's, with .svg.
		r = wisp(t, "bench", "plot", out)
		if want := filepath.Join(dir, "batch.svg"); r.code != 0 || r.stdout != "wrote "+want+"\n" {
			t.Errorf("bench plot = exit %d, stdout %q, stderr %q; want 0, \"wrote %s\"", r.code, r.stdout, r.stderr, want)
		}
	})
}

// benchJSON decodes the --output json report of a run that must succeed.
func benchJSON(t *testing.T, r result) benchResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("bench = exit %d, stderr %q; want 0", r.code, r.stderr)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("bench output %q: %v", r.stdout, err)
	}
	return res
}

// checkOutFile checks the --out file at path against the run's report and
// returns it.
func checkOutFile(t *testing.T, path string, want *benchResult) benchResult {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("--out file %s: %v", path, err)
	}
	for _, field := range []string{"op", "clients", "keys", "value_size_bytes", "dist", "ops_limit", "started_at",
		"ops", "calls", "errors", "elapsed_s", "ops_per_s", "latency_ms", "server_cpu_s_per_1k_ops", "series", "percentiles"} {
		if _, ok := raw[field]; !ok {
			t.Errorf("--out file has no %q", field)
		}
	}
	var got benchResult
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Op != want.Op || got.Ops != want.Ops || got.Calls != want.Calls || got.LatencyMs != want.LatencyMs {
		t.Errorf("--out file: op %q, ops %d, calls %d, latency %+v; want the report's %q, %d, %d, %+v",
			got.Op, got.Ops, got.Calls, got.LatencyMs, want.Op, want.Ops, want.Calls, want.LatencyMs)
	}
	var ops int64
	for i, p := range got.Series {
		ops += p.Ops
		if p.Second != i || !(p.Seconds > 0 && p.Seconds <= 1) || (p.Ops > 0) != (p.P50Ms > 0) || p.P50Ms > p.P99Ms {
			t.Errorf("series[%d] = %+v; want t_s %d, 0 < dur_s <= 1, 0 < p50 <= p99 if ops", i, p, i)
		}
	}
	if len(got.Series) == 0 || ops != got.Ops {
		t.Errorf("series %+v: %d ops; want %d", got.Series, ops, got.Ops)
	}
	ps := got.Percentiles
	if len(ps) < 2 || ps[0].Percentile != 0 || ps[len(ps)-1] != (benchPercentile{100, got.LatencyMs.Max}) {
		t.Errorf("percentiles %+v; want from 0 to 100 at max %v", ps, got.LatencyMs.Max)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Percentile <= ps[i-1].Percentile || ps[i].LatencyMs < ps[i-1].LatencyMs {
			t.Errorf("percentiles[%d:%d] = %+v; want both increasing", i-1, i+1, ps[i-1:i+1])
		}
	}
	return got
}

// svgSeries parses svg as XML and returns the point count of each
// polyline, by "RUN SERIES".
func svgSeries(t *testing.T, svg []byte) map[string]int {
	t.Helper()
	lines := make(map[string]int)
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	root := true
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v\n%s", err, svg)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root && (el.Name.Local != "svg" || el.Name.Space != "http://www.w3.org/2000/svg") {
			t.Fatalf("SVG root is %v; want svg in the SVG namespace", el.Name)
		}
		root = false
		if el.Name.Local != "polyline" {
			continue
		}
		attr := make(map[string]string)
		for _, a := range el.Attr {
			attr[a.Name.Local] = a.Value
		}
		lines[attr["data-run"]+" "+attr["data-series"]] += len(strings.Fields(attr["points"]))
	}
	return lines
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
		{"bench", "put", "--dist=pareto"},
		{"bench", "zipf", "--zipf-s=1"},
		{"bench", "zipf", "--dist=uniform"},
		{"bench", "mixed", "--read-ratio=1.5"},
		{"bench", "mixed", "--read-ratio=-0.1"},
		{"bench", "batch", "--batch-size=0"},
		{"bench", "batch", "--batch-size=1001"},
		{"bench", "batch", "--keys=4", "--batch-size=8"},
		{"bench", "plot"},
		{"bench", "plot", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"},
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

// TestBenchPlotErrors: a missing file, a file that is not JSON and a
// report without series fail with the file's name.
func TestBenchPlotErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	summary := filepath.Join(dir, "summary.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(summary, []byte(`{"op":"put","ops":300}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.json"), "no such file"},
		{bad, bad + ": unexpected end of JSON input"},
		{summary, summary + " has no series or percentiles: write it with wisp bench --out"},
	} {
		r := wisp(t, "bench", "plot", tc.path)
		if r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("bench plot %s = exit %d, stderr %q; want 1 and %q", tc.path, r.code, r.stderr, tc.want)
		}
	}
}

// TestBenchRecorderSeries records calls at set times and checks the
// per-second series, the totals and the percentile spectrum.
func TestBenchRecorderSeries(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	rec := newRecorder(context.Background(), t0, true)
	rec.record(callGet, 1, at(0.1), at(0.11), true, nil) // 10ms in second 0
	rec.record(callPut, 1, at(0.2), at(0.23), true, nil) // 30ms in second 0
	rec.record(callGet, 1, at(2.0), at(2.2), false, nil) // 200ms in second 2
	rec.record(callPut, 1, at(2.3), at(2.4), true, connect.NewError(connect.CodeUnavailable, errors.New("no leader")))
	b := &bencher{cfg: benchConfig{workload: "mixed", reads: true, dist: distUniform, readRatio: 0.5, batchSize: 1, clients: 1, conns: 1, keys: 10, ops: 4}}
	res := rec.result(b, t0, 2500*time.Millisecond, 0, 0, errors.New("no metrics"))

	want := []benchPoint{
		{Second: 0, Seconds: 1, Ops: 2, OpsPerSecond: 2, P50Ms: 10, P99Ms: 30},
		{Second: 1, Seconds: 1},
		{Second: 2, Seconds: 0.5, Ops: 1, Errors: 1, OpsPerSecond: 2, P50Ms: 200, P99Ms: 200},
	}
	if len(res.Series) != len(want) {
		t.Fatalf("series = %+v; want %+v", res.Series, want)
	}
	for i, p := range res.Series {
		// The window histogram has 2 significant digits.
		if p.Second != want[i].Second || p.Seconds != want[i].Seconds || p.Ops != want[i].Ops || p.Errors != want[i].Errors ||
			p.OpsPerSecond != want[i].OpsPerSecond || !near(p.P50Ms, want[i].P50Ms, 0.01) || !near(p.P99Ms, want[i].P99Ms, 0.01) {
			t.Errorf("series[%d] = %+v; want %+v", i, p, want[i])
		}
	}
	if res.Ops != 3 || res.Calls != 3 || res.Gets != 2 || res.Puts != 1 || res.NotFound != 1 || res.Errors != 1 || res.ErrorsByCode["unavailable"] != 1 {
		t.Errorf("ops %d, calls %d, gets %d, puts %d, not found %d, errors %v; want 3, 3, 2, 1, 1, unavailable=1",
			res.Ops, res.Calls, res.Gets, res.Puts, res.NotFound, res.ErrorsByCode)
	}
	if get, put := res.LatencyMsByOp["get"], res.LatencyMsByOp["put"]; !near(get.Max, 200, 0.001) || !near(put.Max, 30, 0.001) {
		t.Errorf("latency by op: get max %v, put max %v; want 200, 30", get.Max, put.Max)
	}
	// 3 calls: percentiles 0 to 66.6 (while a third of the calls lies
	// beyond), then 100.
	ps := res.Percentiles
	if len(ps) != 9 || !near(ps[0].LatencyMs, 10, 0.001) || ps[0].Percentile != 0 || ps[7].Percentile != 62.107086 || ps[8] != (benchPercentile{100, res.LatencyMs.Max}) {
		t.Errorf("percentiles = %+v; want 9 from {0 10} to {62.107086 ...}, then {100 max}", ps)
	}
}

// near reports whether got is within rel of want, relatively.
func near(got, want, rel float64) bool {
	if want == 0 {
		return got == 0
	}
	d := (got - want) / want
	return -rel <= d && d <= rel
}

// TestBenchProgress: the bar is drawn only on a terminal, and draws what it
// says.
func TestBenchProgress(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for name, w := range map[string]io.Writer{"buffer": new(strings.Builder), "file": f, "null": null, "pipe": pw} {
		if isTerminal(w) {
			t.Errorf("isTerminal(%s) = true; want false", name)
		}
	}

	for _, tc := range []struct {
		done, total    int64
		elapsed, limit time.Duration
		want           string
	}{
		{0, 20000, 0, 0, "bench put [..............................]   0%  0/20000 ops  0 ops/s  0.0s"},
		{9000, 20000, 2 * time.Second, 0, "bench put [#############.................]  45%  9000/20000 ops  4500 ops/s  2.0s"},
		{1000, 20000, 5 * time.Second, 10 * time.Second, "bench put [###############...............]  50%  1000/20000 ops  200 ops/s  5.0s/10.0s"},
		{1000, 0, 2500 * time.Millisecond, 10 * time.Second, "bench put [#######.......................]  25%  1000 ops  400 ops/s  2.5s/10.0s"},
		{20000, 20000, 4 * time.Second, 0, "bench put [##############################] 100%  20000/20000 ops  5000 ops/s  4.0s"},
	} {
		if got := renderProgress("bench put", tc.done, tc.total, tc.elapsed, tc.limit); got != tc.want {
			t.Errorf("renderProgress(%d, %d, %v, %v) =\n%q; want\n%q", tc.done, tc.total, tc.elapsed, tc.limit, got, tc.want)
		}
	}

	// Stopping clears the line, and may be done twice; a nil bar is a no-op.
	var buf strings.Builder
	bar := startProgress(&buf, "x", 10, 0, func() int64 { return 1 })
	bar.stop()
	bar.stop()
	if got := buf.String(); !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("progress output %q; want it to end with the line cleared", got)
	}
	if bar := startProgress(nil, "x", 10, 0, nil); bar != nil {
		t.Errorf("startProgress(nil, ...) = %v; want nil", bar)
	}
	if bar := startProgress(&buf, "x", 0, 0, nil); bar != nil {
		t.Errorf("startProgress with no total or limit = %v; want nil", bar)
	}
	(*progressBar)(nil).stop()
}

// TestBenchPlotGolden draws two runs recorded with bench --out (put, and
// zipf at stale) and compares the SVG with testdata/bench-plot.svg (-update
// rewrites it; docs/BENCHMARKS.md shows it).
func TestBenchPlotGolden(t *testing.T) {
	r := wisp(t, "bench", "plot", "testdata/bench-put.json", "testdata/bench-zipf.json", "--svg=-")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("bench plot = exit %d, stderr %q; want 0", r.code, r.stderr)
	}
	golden(t, "bench-plot.svg", r.stdout)
	lines := svgSeries(t, []byte(r.stdout))
	if len(lines) != 8 {
		t.Errorf("SVG lines %v; want 4 for each of 2 runs", lines)
	}
}
