package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	mathrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	// hdrhistogram-go records latencies in fixed memory (~140 KiB here)
	// with 3 significant digits from 1µs to a minute, however many ops a
	// run makes, and reads any percentile from that. It is the Go port of
	// Gil Tene's HdrHistogram, used by wrk2 and others, and has no
	// dependencies outside the standard library. Sorting every latency
	// would take memory in proportion to --ops.
	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/sdk/client"
)

// Bounds on bench. Every loop in bench runs at most one of these.
const (
	// benchMaxDuration caps --duration, and separately the setup (preload
	// and warm-up), so that a run with a huge --ops still ends.
	benchMaxDuration = 10 * time.Minute
	// benchDrainGrace is how long ops still in flight when the run stops
	// may take before they are canceled (and counted as errors), for
	// --timeout 0.
	benchDrainGrace = 30 * time.Second
	// benchMaxClients caps --clients (goroutines, each with one op in
	// flight), and so --conns.
	benchMaxClients = 1024
	// benchMaxOps caps --ops and benchMaxWarmupOps caps --warmup.
	benchMaxOps       = 100_000_000
	benchMaxWarmupOps = 1_000_000
	// benchMaxKeys caps --keys: get writes every key once before it runs,
	// and the key names are made up front (~25 MiB at this bound).
	benchMaxKeys = 1_000_000
	// benchMaxValueBytes caps --value-size at the server's default value
	// limit (node.DefaultMaxValueBytes).
	benchMaxValueBytes = 1 << 20
	// benchClientsPerConn is the default clients per HTTP/2 connection.
	benchClientsPerConn = 8
	// benchLatencyMax is the highest latency the histogram tells apart;
	// longer ones are recorded as this.
	benchLatencyMax = time.Minute

	// metricsTimeout bounds a scrape of /metrics and metricsMaxBytes the
	// body read (a node's /metrics is tens of KiB).
	metricsTimeout  = 5 * time.Second
	metricsMaxBytes = 16 << 20
	// processCPUMetric is the Prometheus process collector's CPU counter.
	processCPUMetric = "process_cpu_seconds_total"
)

// benchConfig is one bench run, from the flags.
type benchConfig struct {
	op             string // "put" or "get"
	clients        int    // in [1, benchMaxClients]
	conns          int    // in [1, clients]
	ops            int    // in [1, benchMaxOps]
	duration       time.Duration
	valueSizeBytes int // in [0, benchMaxValueBytes]
	keys           int // in [1, benchMaxKeys]
	warmupOps      int // in [0, benchMaxWarmupOps]
	consistency    client.Consistency
	opTimeout      time.Duration // 0: none
	routing        bool          // clients route keys to shard leaders
}

// benchFlags are the flags shared by bench put and bench get.
type benchFlags struct {
	clients, conns, ops, valueSizeBytes, keys, warmupOps int
	duration, opTimeout                                  time.Duration
}

func (f *benchFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.IntVar(&f.clients, "clients", 64, "concurrent clients, each with one op in flight")
	pf.IntVar(&f.ops, "ops", 20000, "ops to run in all")
	pf.DurationVar(&f.duration, "duration", 0, "stop after this long if the ops are not done (0: no limit but the cap, 10m)")
	pf.IntVar(&f.valueSizeBytes, "value-size", 256, "bytes per value written")
	pf.IntVar(&f.keys, "keys", 10000, `distinct keys, "bench/00000000" on`)
	pf.IntVar(&f.conns, "conns", 0, "HTTP/2 connections to spread the clients over (0: clients/8 rounded up)")
	pf.IntVar(&f.warmupOps, "warmup", 1000, "unmeasured ops to run first")
	pf.DurationVar(&f.opTimeout, "op-timeout", defaultTimeout, "time limit for each op (0: none)")
}

// config checks the flags and returns the run's configuration.
func (f *benchFlags) config(op string, g *globals) (benchConfig, error) {
	switch {
	case f.clients < 1 || f.clients > benchMaxClients:
		return benchConfig{}, usageErrorf("invalid --clients %d: want 1 to %d", f.clients, benchMaxClients)
	case f.ops < 1 || f.ops > benchMaxOps:
		return benchConfig{}, usageErrorf("invalid --ops %d: want 1 to %d", f.ops, benchMaxOps)
	case f.duration < 0 || f.duration > benchMaxDuration:
		return benchConfig{}, usageErrorf("invalid --duration %v: want 0 (until the ops are done) to %v", f.duration, benchMaxDuration)
	case f.valueSizeBytes < 0 || f.valueSizeBytes > benchMaxValueBytes:
		return benchConfig{}, usageErrorf("invalid --value-size %d: want 0 to %d", f.valueSizeBytes, benchMaxValueBytes)
	case f.keys < 1 || f.keys > benchMaxKeys:
		return benchConfig{}, usageErrorf("invalid --keys %d: want 1 to %d", f.keys, benchMaxKeys)
	case f.conns < 0 || f.conns > f.clients:
		return benchConfig{}, usageErrorf("invalid --conns %d: want 0 (default) to --clients (%d)", f.conns, f.clients)
	case f.warmupOps < 0 || f.warmupOps > benchMaxWarmupOps:
		return benchConfig{}, usageErrorf("invalid --warmup %d: want 0 to %d", f.warmupOps, benchMaxWarmupOps)
	case f.opTimeout < 0:
		return benchConfig{}, usageErrorf("invalid --op-timeout %v: want 0 (none) or more", f.opTimeout)
	}
	cfg := benchConfig{
		op:             op,
		clients:        f.clients,
		conns:          f.conns,
		ops:            f.ops,
		duration:       f.duration,
		valueSizeBytes: f.valueSizeBytes,
		keys:           f.keys,
		warmupOps:      f.warmupOps,
		consistency:    g.readConsistency(),
		opTimeout:      f.opTimeout,
		routing:        g.routing,
	}
	if cfg.conns == 0 {
		cfg.conns = (cfg.clients + benchClientsPerConn - 1) / benchClientsPerConn
	}
	return cfg, nil
}

func newBenchCmd(g *globals) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load the cluster and report throughput, latency and CPU per op",
		Long: `Run --ops puts or gets (or as many as fit in --duration) from --clients
concurrent clients against --endpoint, and report throughput, latency
percentiles, and the CPU seconds per 1,000 ops of this process and of the
server (from process_cpu_seconds_total at --endpoint/metrics, before and after;
"n/a" if that cannot be read).

Each op is tried once, so failures show: they are counted by Connect code, and
a run with any prints its figures and then exits 1. --op-timeout bounds each
op. The measured run stops after --duration, or 10 minutes at most; the
global --timeout bounds the whole command only if given.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	f.register(cmd)
	for _, op := range []struct{ name, short, long string }{
		{"put", "Write random keys", `Write --value-size byte values to keys chosen at random among --keys, after
--warmup unmeasured writes.`},
		{"get", "Read random keys at --consistency", `Write every one of --keys keys once, then run --warmup unmeasured reads, then
read keys chosen at random at --consistency. A key that is not found counts as
a miss, not an error (a stale read on a follower may not see it yet).`},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:     op.name,
			Short:   op.short,
			Long:    op.long,
			Example: fmt.Sprintf("  wisp bench %s\n  wisp bench %s --clients 100 --ops 50000 --output json", op.name, op.name),
			Args:    exactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := f.config(op.name, g)
				if err != nil {
					return err
				}
				return runBench(cmd, g, cfg)
			},
		})
	}
	return cmd
}

// runBench runs cfg against --endpoint and writes the report.
func runBench(cmd *cobra.Command, g *globals, cfg benchConfig) error {
	b, err := newBencher(g.endpoint, cfg)
	if err != nil {
		return err
	}
	defer b.close()
	ctx := cmd.Context()
	if cmd.Flags().Changed("timeout") && g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	res := b.run(ctx)
	out := cmd.OutOrStdout()
	if g.json() {
		err = writeJSON(out, res)
	} else {
		err = res.writeText(out)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if res.Errors > 0 {
		return fmt.Errorf("bench %s: %d of %d ops failed; the first: %s", cfg.op, res.Errors, res.Ops+res.Errors, errorMessage(res.firstErr))
	}
	return nil
}

// bencher holds a run's clients. Its methods are called from one goroutine;
// they start the client goroutines and wait for them.
type bencher struct {
	cfg      benchConfig
	endpoint string
	keys     []string // keys[i] is "bench/%08d" of i; read-only
	value    []byte   // every put's value; read-only
	readOpt  client.ReadOption

	transports []*http.Transport // one per connection
	// measured[i] and setup[i] use transports[i]. measured tries each op
	// once; setup retries, for the preload.
	measured, setupClients []*client.Client
	metrics                *http.Client // for /metrics, HTTP/1.1
}

func newBencher(endpoint string, cfg benchConfig) (*bencher, error) {
	b := &bencher{
		cfg:      cfg,
		endpoint: strings.TrimRight(endpoint, "/"),
		keys:     make([]string, cfg.keys),
		value:    make([]byte, cfg.valueSizeBytes),
		readOpt:  client.WithConsistency(cfg.consistency),
		metrics:  &http.Client{Timeout: metricsTimeout},
	}
	for i := range b.keys {
		b.keys[i] = fmt.Sprintf("bench/%08d", i)
	}
	rand.Read(b.value) // random, so that compression gains nothing
	for range cfg.conns {
		t := newBenchTransport()
		hc := &http.Client{Transport: t}
		m, err := client.New(endpoint, client.WithHTTPClient(hc), client.WithMaxAttempts(1), client.WithTimeout(cfg.opTimeout), client.WithRouting(cfg.routing))
		if err != nil {
			return nil, usageErrorf("invalid --endpoint %q: want a URL such as %s", endpoint, defaultEndpoint)
		}
		s, err := client.New(endpoint, client.WithHTTPClient(hc), client.WithMaxAttempts(maxAttempts), client.WithTimeout(cfg.opTimeout), client.WithRouting(cfg.routing))
		if err != nil {
			return nil, usageErrorf("invalid --endpoint %q: want a URL such as %s", endpoint, defaultEndpoint)
		}
		b.transports = append(b.transports, t)
		b.measured = append(b.measured, m)
		b.setupClients = append(b.setupClients, s)
	}
	return b, nil
}

// newBenchTransport returns a transport that speaks only HTTP/2: over
// cleartext (h2c) to http:// URLs, over TLS to https://. HTTP/2 carries all
// the calls of a transport on one connection, until the server's stream
// limit (250 for Go servers) is reached.
func newBenchTransport() *http.Transport {
	t, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		t = t.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	t.Protocols = &p
	return t
}

func (b *bencher) close() {
	for _, t := range b.transports {
		t.CloseIdleConnections()
	}
	b.metrics.CloseIdleConnections()
}

// clientFor returns client i's client among cs: clients are dealt round
// robin over the connections.
func clientFor(cs []*client.Client, i int) *client.Client { return cs[i%len(cs)] }

// setup preloads the keys for get and runs the warm-up, within
// benchMaxDuration.
func (b *bencher) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, benchMaxDuration)
	defer cancel()
	if b.cfg.op == "get" {
		if err := b.preload(ctx); err != nil {
			return err
		}
	}
	b.loop(ctx, ctx.Done(), b.measured, b.cfg.warmupOps, nil)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench %s: warm-up: %w", b.cfg.op, err)
	}
	return nil
}

// preload writes every key once, with retries, from the clients.
func (b *bencher) preload(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next atomic.Int64 // keys claimed
		wg   sync.WaitGroup
	)
	for i := range b.cfg.clients {
		c := clientFor(b.setupClients, i)
		wg.Go(func() {
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= int64(len(b.keys)) {
					return
				}
				if _, err := c.Put(ctx, b.keys[k], b.value); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("bench get: preload %d keys: %w", len(b.keys), err)
	}
	return nil
}

// op runs one put or get of key. found is false for a get of a missing key.
func (b *bencher) op(ctx context.Context, c *client.Client, key string) (found bool, err error) {
	if b.cfg.op == "put" {
		_, err = c.Put(ctx, key, b.value)
		return true, err
	}
	_, found, err = c.Get(ctx, key, b.readOpt)
	return found, err
}

// loop runs up to n ops from b.cfg.clients goroutines over cs, until stop
// is closed, and records each in rec unless rec is nil. It returns when the
// goroutines have.
func (b *bencher) loop(ctx context.Context, stop <-chan struct{}, cs []*client.Client, n int, rec *recorder) {
	var (
		next atomic.Int64 // ops claimed
		wg   sync.WaitGroup
	)
	for i := range b.cfg.clients {
		c := clientFor(cs, i)
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				select {
				case <-stop:
					return
				default:
				}
				key := b.keys[mathrand.IntN(len(b.keys))]
				start := time.Now()
				found, err := b.op(ctx, c, key)
				if rec != nil {
					rec.record(time.Since(start), found, err)
				}
			}
		})
	}
	wg.Wait()
}

// run runs the measured ops and returns the figures. If ctx ends, the ops
// it cuts short are not counted.
func (b *bencher) run(ctx context.Context) *benchResult {
	runFor := b.cfg.duration
	if runFor == 0 {
		runFor = benchMaxDuration
	}
	stopCtx, stop := context.WithTimeout(ctx, runFor)
	defer stop()
	opCtx, cancel := context.WithTimeout(ctx, runFor+benchDrainGrace)
	defer cancel()

	rec := newRecorder(ctx)
	serverBefore, serverErr := b.scrapeCPU(ctx)
	clientBefore := processCPU()
	start := time.Now()
	b.loop(opCtx, stopCtx.Done(), b.measured, b.cfg.ops, rec)
	elapsed := time.Since(start)
	clientCPU := processCPU() - clientBefore
	var serverCPU time.Duration
	if serverErr == nil {
		var serverAfter time.Duration
		serverAfter, serverErr = b.scrapeCPU(ctx)
		serverCPU = serverAfter - serverBefore
	}
	return rec.result(b, elapsed, clientCPU, serverCPU, serverErr)
}

// scrapeCPU returns the server process's CPU time so far, from the
// endpoint's /metrics.
func (b *bencher) scrapeCPU(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	url := b.endpoint + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.metrics.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	s, err := parseProcessCPU(io.LimitReader(resp.Body, metricsMaxBytes))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// parseProcessCPU returns the value of the first process_cpu_seconds_total
// sample in r, a Prometheus text exposition.
func parseProcessCPU(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // lines are short; a label may be long
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), processCPUMetric)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric, or a comment
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, fmt.Errorf("bad %s line %q", processCPUMetric, sc.Text())
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest) // value [timestamp]
		if len(fields) == 0 {
			return 0, fmt.Errorf("bad %s line %q", processCPUMetric, sc.Text())
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("bad %s line %q: %w", processCPUMetric, sc.Text(), err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s", processCPUMetric)
}

// recorder collects the outcomes of the measured ops. It is safe for
// concurrent use. Recording takes well under a microsecond under mu, next
// to an RPC of 100µs or more, so one lock for all clients does not skew
// the figures.
type recorder struct {
	interrupted context.Context // ops that fail once it is done are not counted

	mu       sync.Mutex
	hist     *hdrhistogram.Histogram // µs, of ops that succeeded; guarded by mu
	notFound int64                   // guarded by mu
	errs     map[connect.Code]int64  // guarded by mu
	firstErr error                   // guarded by mu
}

func newRecorder(interrupted context.Context) *recorder {
	return &recorder{
		interrupted: interrupted,
		hist:        hdrhistogram.New(1, benchLatencyMax.Microseconds(), 3),
		errs:        make(map[connect.Code]int64),
	}
}

func (r *recorder) record(latency time.Duration, found bool, err error) {
	if err != nil && r.interrupted.Err() != nil {
		return
	}
	us := min(max(latency.Microseconds(), 1), benchLatencyMax.Microseconds())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[connect.CodeOf(err)]++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	if !found {
		r.notFound++
	}
	if rerr := r.hist.RecordValue(us); rerr != nil {
		panic(rerr) // us is in range
	}
}

// benchResult is bench's report; --output json prints it as is.
type benchResult struct {
	Op          string `json:"op"`
	Endpoint    string `json:"endpoint"`
	Consistency string `json:"consistency,omitempty"` // get only
	Clients     int    `json:"clients"`
	Conns       int    `json:"conns"`
	// ValueSizeBytes is the size of every value written (get: preloaded).
	ValueSizeBytes int `json:"value_size_bytes"`
	Keys           int `json:"keys"`

	// Ops is the ops that succeeded, NotFound (get only) those of them that
	// found no key, and Errors the ops that failed, by Connect code in
	// ErrorsByCode.
	Ops          int64            `json:"ops"`
	NotFound     int64            `json:"not_found"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"`

	ElapsedSeconds float64 `json:"elapsed_s"`
	OpsPerSecond   float64 `json:"ops_per_s"` // Ops / ElapsedSeconds
	// LatencyMs is of the ops that succeeded.
	LatencyMs latencyMs `json:"latency_ms"`

	// ClientCPUSecondsPer1kOps is this process's CPU time per 1,000 ops,
	// failed ones included; ServerCPUSecondsPer1kOps is the server's, null
	// if /metrics could not be read, and then ServerCPUError says why.
	ClientCPUSecondsPer1kOps float64  `json:"client_cpu_s_per_1k_ops"`
	ServerCPUSecondsPer1kOps *float64 `json:"server_cpu_s_per_1k_ops"`
	ServerCPUError           string   `json:"server_cpu_error,omitempty"`

	firstErr error
}

type latencyMs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// result returns the report. Call it after the ops have ended.
func (r *recorder) result(b *bencher, elapsed, clientCPU, serverCPU time.Duration, serverErr error) *benchResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &benchResult{
		Op:             b.cfg.op,
		Endpoint:       b.endpoint,
		Clients:        b.cfg.clients,
		Conns:          b.cfg.conns,
		ValueSizeBytes: b.cfg.valueSizeBytes,
		Keys:           b.cfg.keys,
		Ops:            r.hist.TotalCount(),
		NotFound:       r.notFound,
		ErrorsByCode:   make(map[string]int64, len(r.errs)),
		ElapsedSeconds: elapsed.Seconds(),
		firstErr:       r.firstErr,
	}
	if b.cfg.op == "get" {
		res.Consistency = b.cfg.consistency.String()
	}
	for code, n := range r.errs {
		res.Errors += n
		res.ErrorsByCode[code.String()] = n
	}
	if elapsed > 0 {
		res.OpsPerSecond = float64(res.Ops) / elapsed.Seconds()
	}
	ms := func(us int64) float64 { return float64(us) / 1e3 }
	res.LatencyMs = latencyMs{
		P50:  ms(r.hist.ValueAtQuantile(50)),
		P90:  ms(r.hist.ValueAtQuantile(90)),
		P99:  ms(r.hist.ValueAtQuantile(99)),
		P999: ms(r.hist.ValueAtQuantile(99.9)),
		Max:  ms(r.hist.Max()),
	}
	if done := res.Ops + res.Errors; done > 0 {
		per1k := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(done) }
		res.ClientCPUSecondsPer1kOps = per1k(clientCPU)
		if serverErr == nil {
			s := per1k(serverCPU)
			res.ServerCPUSecondsPer1kOps = &s
		}
	}
	if serverErr != nil {
		res.ServerCPUError = serverErr.Error()
	}
	return res
}

// writeText writes the report for people:
//
//	bench put: 20000 ops, 0 errors in 4.210s
//	  64 clients over 8 connections to http://127.0.0.1:8080, 10000 keys, 256-byte values
//	throughput  4751 ops/s
//	latency ms  p50 12.51  p90 20.03  p99 31.46  p99.9 45.02  max 52.30
//	client CPU  0.213 s per 1000 ops
//	server CPU  1.020 s per 1000 ops
func (res *benchResult) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bench %s: %d ops, %d errors in %.3fs\n", res.Op, res.Ops, res.Errors, res.ElapsedSeconds)
	fmt.Fprintf(&b, "  %s over %s to %s, %s, %d-byte values",
		plural(res.Clients, "client"), plural(res.Conns, "connection"), res.Endpoint, plural(res.Keys, "key"), res.ValueSizeBytes)
	if res.Consistency != "" {
		fmt.Fprintf(&b, ", %s reads", res.Consistency)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "throughput  %.0f ops/s\n", res.OpsPerSecond)
	l := res.LatencyMs
	fmt.Fprintf(&b, "latency ms  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
	fmt.Fprintf(&b, "client CPU  %.3f s per 1000 ops\n", res.ClientCPUSecondsPer1kOps)
	if res.ServerCPUSecondsPer1kOps != nil {
		fmt.Fprintf(&b, "server CPU  %.3f s per 1000 ops\n", *res.ServerCPUSecondsPer1kOps)
	} else {
		fmt.Fprintf(&b, "server CPU  n/a (%s)\n", res.ServerCPUError)
	}
	if res.Op == "get" {
		fmt.Fprintf(&b, "not found   %d\n", res.NotFound)
	}
	if len(res.ErrorsByCode) > 0 {
		b.WriteString("errors     ")
		for _, code := range slices.Sorted(maps.Keys(res.ErrorsByCode)) {
			fmt.Fprintf(&b, " %s=%d", code, res.ErrorsByCode[code])
		}
		b.WriteString("\n")
	}
	return writef(w, "%s", b.String())
}

// plural returns "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
