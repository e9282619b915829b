package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"os"
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
	// benchMaxKeys caps --keys: reading workloads write every key once
	// before they run, and the key names are made up front (~25 MiB at
	// this bound).
	benchMaxKeys = 1_000_000
	// benchMaxValueBytes caps --value-size at the server's default value
	// limit (api.DefaultMaxValueBytes).
	benchMaxValueBytes = 1 << 20
	// benchMaxBatchSize caps --batch-size at the server's default limit on
	// the ops of one Batch (api.DefaultMaxBatchOps).
	benchMaxBatchSize = 1000
	// benchClientsPerConn is the default clients per HTTP/2 connection.
	benchClientsPerConn = 8
	// benchLatencyMax is the highest latency the histogram tells apart;
	// longer ones are recorded as this.
	benchLatencyMax = time.Minute
	// benchWindowDigits is the precision of the per-second histogram of
	// the time series: 2 significant digits, ~20 KiB, reused every second.
	benchWindowDigits = 2
	// benchMaxSpectrumPoints bounds the percentile spectrum of --out.
	benchMaxSpectrumPoints = 100

	// metricsTimeout bounds a scrape of /metrics and metricsMaxBytes the
	// body read (a node's /metrics is tens of KiB).
	metricsTimeout  = 5 * time.Second
	metricsMaxBytes = 16 << 20
	// processCPUMetric is the Prometheus process collector's CPU counter.
	processCPUMetric = "process_cpu_seconds_total"
)

// Key distributions, for --dist.
const (
	distUniform = "uniform"
	distZipf    = "zipf"
)

// benchWorkload is one bench subcommand.
type benchWorkload struct {
	name, short, long string
	reads             bool // the keys are written once before the run
}

// benchWorkloads are bench's workloads, in the order of its help.
var benchWorkloads = []benchWorkload{
	{name: "put", short: "Write random keys", long: `Write --value-size byte values to keys chosen among --keys (--dist), after
--warmup unmeasured writes.`},
	{name: "get", reads: true, short: "Read random keys at --consistency", long: `Write every one of --keys keys once, then run --warmup unmeasured reads, then
read keys chosen among them (--dist) at --consistency. A key that is not found
counts as a miss, not an error (a stale read on a follower may not see it yet).`},
	{name: "mixed", reads: true, short: "Read and write random keys, --read-ratio of them reads", long: `Write every one of --keys keys once, then run ops that are each a get (at
--consistency) with probability --read-ratio (default 0.9) and a put
otherwise, on keys chosen among --keys (--dist). Latency is reported for all
ops and for gets and puts apart.`},
	{name: "zipf", reads: true, short: "Read keys chosen by a Zipf distribution (get --dist zipf)", long: `bench get with --dist zipf: key i of --keys is read with probability
proportional to (1+i)^-s, s being --zipf-s (default 1.1: with 10,000 keys
the hottest key takes ~15% of the reads and the hottest 100 ~60%). For a mix
of reads and writes on Zipf keys use bench mixed --dist zipf.`},
	{name: "batch", short: "Write --batch-size keys per Batch call", long: `Write --ops keys in Batch calls of --batch-size puts each (default 16; the
last call may be smaller), on distinct keys that follow a key chosen among
--keys (--dist). Throughput is reported in ops (keys) and calls per second;
latency is per call. A batch over several shards applies per shard.`},
}

// benchConfig is one bench run, from the flags.
type benchConfig struct {
	workload       string // a name in benchWorkloads
	reads          bool   // the workload reads: preload the keys
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
	dist           string        // distUniform or distZipf
	zipfS          float64       // > 1; used when dist is distZipf
	readRatio      float64       // mixed: in [0, 1]; 1 for get and zipf, 0 for put and batch
	batchSize      int           // batch: in [1, min(keys, benchMaxBatchSize)]; 1 otherwise
	outPath        string        // --out; "" for none
	progress       bool          // draw a progress bar if stderr is a terminal
	autoPipeline   bool          // the measured clients combine concurrent calls into Pipeline RPCs
}

// benchFlags are the flags shared by bench's workloads.
type benchFlags struct {
	clients, conns, ops, valueSizeBytes, keys, warmupOps, batchSize int
	duration, opTimeout                                             time.Duration
	dist, outPath                                                   string
	zipfS, readRatio                                                float64
	progress, autoPipeline                                          bool
}

func (f *benchFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.IntVar(&f.clients, "clients", 64, "concurrent clients, each with one op in flight")
	fs.IntVar(&f.ops, "ops", 20000, "ops to run in all (batch: keys written); with --duration and no --ops, 100000000")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long if the ops are not done (0: no limit but the cap, 10m)")
	fs.IntVar(&f.valueSizeBytes, "value-size", 256, "bytes per value written")
	fs.IntVar(&f.keys, "keys", 10000, `distinct keys, "bench/00000000" on`)
	fs.StringVar(&f.dist, "dist", distUniform, "how keys are chosen: uniform or zipf")
	fs.Float64Var(&f.zipfS, "zipf-s", 1.1, "exponent s of --dist zipf, > 1 (larger: hotter hot keys)")
	fs.Float64Var(&f.readRatio, "read-ratio", 0.9, "mixed: the share of ops that are gets, 0 to 1")
	fs.IntVar(&f.batchSize, "batch-size", 16, "batch: puts per Batch call")
	fs.IntVar(&f.conns, "conns", 0, "HTTP/2 connections to spread the clients over (0: clients/8 rounded up)")
	fs.IntVar(&f.warmupOps, "warmup", 1000, "unmeasured ops to run first")
	fs.DurationVar(&f.opTimeout, "op-timeout", defaultTimeout, "time limit for each op (0: none)")
	fs.StringVar(&f.outPath, "out", "", "write the report with a per-second series and the percentile spectrum to this JSON file (for bench plot)")
	fs.BoolVar(&f.progress, "progress", true, "draw a progress bar on stderr when it is a terminal")
	fs.BoolVar(&f.autoPipeline, "auto-pipeline", true, "let the Go client combine the calls a connection's clients make at once into Pipeline RPCs (the SDK's default); with --conns 1 all clients share one")
}

// config checks the flags and returns the run's configuration.
func (f *benchFlags) config(w benchWorkload, cmd *cobra.Command, g *globals) (benchConfig, error) {
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
	case f.dist != distUniform && f.dist != distZipf:
		return benchConfig{}, usageErrorf("invalid --dist %q: want uniform or zipf", f.dist)
	case !(f.zipfS > 1) || math.IsInf(f.zipfS, 0):
		return benchConfig{}, usageErrorf("invalid --zipf-s %v: want a number > 1", f.zipfS)
	case !(f.readRatio >= 0 && f.readRatio <= 1):
		return benchConfig{}, usageErrorf("invalid --read-ratio %v: want 0 to 1", f.readRatio)
	case w.name == "batch" && (f.batchSize < 1 || f.batchSize > benchMaxBatchSize):
		return benchConfig{}, usageErrorf("invalid --batch-size %d: want 1 to %d", f.batchSize, benchMaxBatchSize)
	case w.name == "batch" && f.batchSize > f.keys:
		return benchConfig{}, usageErrorf("invalid --batch-size %d: want at most --keys (%d), for distinct keys per batch", f.batchSize, f.keys)
	case w.name == "zipf" && f.dist != distZipf && cmd.Flags().Changed("dist"):
		return benchConfig{}, usageErrorf("invalid --dist %q for bench zipf: use bench get for uniform keys", f.dist)
	}
	cfg := benchConfig{
		workload:       w.name,
		reads:          w.reads,
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
		dist:           f.dist,
		zipfS:          f.zipfS,
		batchSize:      1,
		outPath:        f.outPath,
		progress:       f.progress,
		autoPipeline:   f.autoPipeline,
	}
	switch w.name {
	case "get":
		cfg.readRatio = 1
	case "zipf":
		cfg.readRatio = 1
		cfg.dist = distZipf
	case "mixed":
		cfg.readRatio = f.readRatio
	case "batch":
		cfg.batchSize = f.batchSize
	}
	if cfg.conns == 0 {
		cfg.conns = (cfg.clients + benchClientsPerConn - 1) / benchClientsPerConn
	}
	if cfg.duration > 0 && !cmd.Flags().Changed("ops") {
		cfg.ops = benchMaxOps // --duration alone: run for that long
	}
	return cfg, nil
}

func newBenchCmd(g *globals) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load the cluster and report throughput, latency and CPU per op",
		Long: `Run --ops ops of a workload (or as many as fit in --duration; --duration
without --ops runs for that long) from --clients
concurrent clients against --endpoint, and report throughput, latency
percentiles, and the CPU seconds per 1,000 ops of this process and of the
server (from process_cpu_seconds_total at --endpoint/metrics, before and after;
"n/a" if that cannot be read).

Workloads: put, get, mixed (--read-ratio gets, the rest puts), zipf (get with
--dist zipf) and batch (--batch-size puts per call). --dist zipf chooses keys
by a Zipf distribution in any workload. Reads are at --consistency.

Each op is tried once, so failures show: they are counted by Connect code, and
a run with any prints its figures and then exits 1. --op-timeout bounds each
op. The measured run stops after --duration, or 10 minutes at most; the
global --timeout bounds the whole command only if given.

On a terminal a progress bar on stderr shows the ops done, ops/s and the time
so far. --out FILE writes the report as JSON with a per-second series (ops,
p50, p99) and the latency by percentile; bench plot draws them as SVG.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	for _, w := range benchWorkloads {
		sub := &cobra.Command{
			Use:     w.name,
			Short:   w.short,
			Long:    w.long,
			Example: fmt.Sprintf("  wisp bench %s\n  wisp bench %s --clients 100 --ops 50000 --out %s.json", w.name, w.name, w.name),
			Args:    exactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := f.config(w, cmd, g)
				if err != nil {
					return err
				}
				return runBench(cmd, g, cfg)
			},
		}
		f.register(sub)
		cmd.AddCommand(sub)
	}
	cmd.AddCommand(newBenchPlotCmd(g))
	return cmd
}

// runBench runs cfg against --endpoint and writes the report, and the
// --out file if asked.
func runBench(cmd *cobra.Command, g *globals, cfg benchConfig) error {
	b, err := newBencher(g.endpoint, cfg)
	if err != nil {
		return err
	}
	defer b.close()
	if cfg.progress && isTerminal(cmd.ErrOrStderr()) {
		b.progressTo = cmd.ErrOrStderr()
	}
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
	summary := *res
	summary.Series, summary.Percentiles = nil, nil // --out only
	if g.json() {
		err = writeJSON(out, &summary)
	} else {
		err = summary.writeText(out)
	}
	if err != nil {
		return err
	}
	if cfg.outPath != "" {
		if err := writeResultFile(cfg.outPath, res); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if res.Errors > 0 {
		return fmt.Errorf("bench %s: %d of %d ops failed; the first: %s", cfg.workload, res.Errors, res.Ops+res.Errors, errorMessage(res.firstErr))
	}
	return nil
}

// writeResultFile writes res as indented JSON to path.
func writeResultFile(path string, res *benchResult) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench --out: %w", err)
	}
	if err := writeJSON(f, res); err != nil {
		f.Close()
		return fmt.Errorf("bench --out: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench --out: %w", err)
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
	progressTo             io.Writer    // a terminal for the progress bar, or nil
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
		m, err := client.New(endpoint, client.WithHTTPClient(hc), client.WithMaxAttempts(1), client.WithTimeout(cfg.opTimeout),
			client.WithRouting(cfg.routing), client.WithAutoPipeline(cfg.autoPipeline))
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

// setup preloads the keys for a reading workload and runs the warm-up,
// within benchMaxDuration.
func (b *bencher) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, benchMaxDuration)
	defer cancel()
	if b.cfg.reads {
		if err := b.preload(ctx); err != nil {
			return err
		}
	}
	var done atomic.Int64
	bar := startProgress(b.progressTo, "warm-up", int64(b.cfg.warmupOps), 0, done.Load)
	b.loop(ctx, ctx.Done(), b.measured, b.cfg.warmupOps, nil, &done)
	bar.stop()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench %s: warm-up: %w", b.cfg.workload, err)
	}
	return nil
}

// preload writes every key once, with retries, from the clients.
func (b *bencher) preload(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next atomic.Int64 // keys claimed
		done atomic.Int64 // keys written
		wg   sync.WaitGroup
	)
	bar := startProgress(b.progressTo, "preload", int64(len(b.keys)), 0, done.Load)
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
				done.Add(1)
			}
		})
	}
	wg.Wait()
	bar.stop()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("bench %s: preload %d keys: %w", b.cfg.workload, len(b.keys), err)
	}
	return nil
}

// Kinds of call, for the recorder.
const (
	callGet   = "get"
	callPut   = "put"
	callBatch = "batch"
)

// keyPicker returns a function that picks key indexes in [0, len(b.keys))
// by --dist from rng. Neither is safe for concurrent use.
func (b *bencher) keyPicker(rng *mathrand.Rand) func() int {
	if b.cfg.dist == distZipf {
		z := mathrand.NewZipf(rng, b.cfg.zipfS, 1, uint64(len(b.keys)-1))
		return func() int { return int(z.Uint64()) }
	}
	n := len(b.keys)
	return func() int { return rng.IntN(n) }
}

// call runs one call of the workload: a put or get of a key from pick, or
// for batch a Batch of n puts on the n keys from one picked. It says which
// kind of call it was; found is false for a get of a missing key.
func (b *bencher) call(ctx context.Context, c *client.Client, rng *mathrand.Rand, pick func() int, n int) (kind string, found bool, err error) {
	switch {
	case b.cfg.workload == "batch":
		first := pick()
		ops := make([]client.Op, n)
		for j := range ops {
			ops[j] = client.PutOp(b.keys[(first+j)%len(b.keys)], b.value) // distinct: n <= len(b.keys)
		}
		_, err = c.Batch(ctx, ops...)
		return callBatch, true, err
	case b.cfg.readRatio == 1 || (b.cfg.readRatio > 0 && rng.Float64() < b.cfg.readRatio):
		_, found, err = c.Get(ctx, b.keys[pick()], b.readOpt)
		return callGet, found, err
	default:
		_, err = c.Put(ctx, b.keys[pick()], b.value)
		return callPut, true, err
	}
}

// loop runs up to n ops (in calls of up to b.cfg.batchSize ops) from
// b.cfg.clients goroutines over cs, until stop is closed, records each call
// in rec unless rec is nil, and adds the ops of each call to done. It
// returns when the goroutines have.
func (b *bencher) loop(ctx context.Context, stop <-chan struct{}, cs []*client.Client, n int, rec *recorder, done *atomic.Int64) {
	per := b.cfg.batchSize
	calls := int64((n + per - 1) / per)
	var (
		next atomic.Int64 // calls claimed
		wg   sync.WaitGroup
	)
	for i := range b.cfg.clients {
		c := clientFor(cs, i)
		rng := mathrand.New(mathrand.NewPCG(mathrand.Uint64(), mathrand.Uint64())) // owned by goroutine i
		pick := b.keyPicker(rng)
		wg.Go(func() {
			for {
				k := next.Add(1) - 1
				if k >= calls {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				size := min(per, n-int(k)*per)
				start := time.Now()
				kind, found, err := b.call(ctx, c, rng, pick, size)
				end := time.Now()
				if rec != nil {
					rec.record(kind, size, start, end, found, err)
				}
				done.Add(int64(size))
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
	serverBefore, serverErr := b.scrapeCPU(ctx)
	clientBefore := processCPU()
	start := time.Now()
	stopCtx, stop := context.WithDeadline(ctx, start.Add(runFor))
	defer stop()
	opCtx, cancel := context.WithDeadline(ctx, start.Add(runFor+benchDrainGrace))
	defer cancel()
	rec := newRecorder(ctx, start, b.cfg.workload == "mixed")
	var done atomic.Int64
	total := int64(b.cfg.ops)
	if b.cfg.duration > 0 && b.cfg.ops == benchMaxOps {
		total = 0 // the time limit is the goal
	}
	bar := startProgress(b.progressTo, "bench "+b.cfg.workload, total, b.cfg.duration, done.Load)
	b.loop(opCtx, stopCtx.Done(), b.measured, b.cfg.ops, rec, &done)
	elapsed := time.Since(start)
	bar.stop()
	clientCPU := processCPU() - clientBefore
	var serverCPU time.Duration
	if serverErr == nil {
		var serverAfter time.Duration
		serverAfter, serverErr = b.scrapeCPU(ctx)
		serverCPU = serverAfter - serverBefore
	}
	return rec.result(b, start, elapsed, clientCPU, serverCPU, serverErr)
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

// recorder collects the outcomes of the measured calls. It is safe for
// concurrent use. Recording takes well under a microsecond under mu, next
// to an RPC of 100µs or more, so one lock for all clients does not skew
// the figures.
type recorder struct {
	interrupted context.Context // calls that fail once it is done are not counted
	start       time.Time       // of the measured run; the series counts seconds from it

	mu       sync.Mutex
	hist     *hdrhistogram.Histogram            // µs per call that succeeded; guarded by mu
	byKind   map[string]*hdrhistogram.Histogram // mixed: hist per kind of call; guarded by mu
	ops      int64                              // ops of calls that succeeded; guarded by mu
	gets     int64                              // guarded by mu
	puts     int64                              // guarded by mu (batch: the keys)
	notFound int64                              // guarded by mu
	errs     map[connect.Code]int64             // ops failed by code; guarded by mu
	firstErr error                              // guarded by mu

	// The per-second series. window holds the calls that ended in second
	// windowSecond of the run (or earlier, if they took the lock late);
	// each second, it is summed up into series and reset. All guarded by mu.
	// Invariant: len(series) == windowSecond.
	window       *hdrhistogram.Histogram
	windowSecond int
	windowOps    int64
	windowErrs   int64
	series       []benchPoint
}

func newRecorder(interrupted context.Context, start time.Time, byKind bool) *recorder {
	r := &recorder{
		interrupted: interrupted,
		start:       start,
		hist:        newLatencyHist(3),
		errs:        make(map[connect.Code]int64),
		window:      newLatencyHist(benchWindowDigits),
	}
	if byKind {
		r.byKind = map[string]*hdrhistogram.Histogram{callGet: newLatencyHist(3), callPut: newLatencyHist(3)}
	}
	return r
}

// newLatencyHist returns a histogram of µs from 1 to benchLatencyMax.
func newLatencyHist(digits int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, benchLatencyMax.Microseconds(), digits)
}

// record records a call of kind that ran n ops from start to end.
func (r *recorder) record(kind string, n int, start, end time.Time, found bool, err error) {
	if err != nil && r.interrupted.Err() != nil {
		return
	}
	us := min(max(end.Sub(start).Microseconds(), 1), benchLatencyMax.Microseconds())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(int(end.Sub(r.start) / time.Second))
	if err != nil {
		r.errs[connect.CodeOf(err)] += int64(n)
		r.windowErrs += int64(n)
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.ops += int64(n)
	r.windowOps += int64(n)
	switch kind {
	case callGet:
		r.gets += int64(n)
		if !found {
			r.notFound++
		}
	default:
		r.puts += int64(n)
	}
	for _, h := range []*hdrhistogram.Histogram{r.hist, r.window, r.byKind[kind]} {
		if h == nil {
			continue
		}
		if rerr := h.RecordValue(us); rerr != nil {
			panic(rerr) // us is in range
		}
	}
}

// advance closes the seconds of the series before second. Call it with mu
// held.
func (r *recorder) advance(second int) {
	for r.windowSecond < second {
		r.closeWindow(1)
	}
}

// closeWindow appends the current second, which lasted seconds, to the
// series and starts the next. Call it with mu held.
func (r *recorder) closeWindow(seconds float64) {
	p := benchPoint{
		Second:       r.windowSecond,
		Seconds:      seconds,
		Ops:          r.windowOps,
		Errors:       r.windowErrs,
		OpsPerSecond: float64(r.windowOps) / seconds,
	}
	if r.window.TotalCount() > 0 {
		p.P50Ms = msOf(r.window.ValueAtPercentile(50))
		p.P99Ms = msOf(r.window.ValueAtPercentile(99))
	}
	r.series = append(r.series, p)
	r.window.Reset()
	r.windowSecond++
	r.windowOps, r.windowErrs = 0, 0
}

// msOf returns µs as ms.
func msOf(us int64) float64 { return float64(us) / 1e3 }

// benchResult is bench's report; --output json prints it without Series
// and Percentiles, and --out writes all of it.
type benchResult struct {
	Op          string `json:"op"` // the workload: put, get, mixed, zipf or batch
	Endpoint    string `json:"endpoint"`
	Consistency string `json:"consistency,omitempty"` // reading workloads only
	Clients     int    `json:"clients"`
	Conns       int    `json:"conns"`
	// ValueSizeBytes is the size of every value written (or preloaded).
	ValueSizeBytes int `json:"value_size_bytes"`
	Keys           int `json:"keys"`
	// Dist is how keys were chosen, uniform or zipf, and ZipfS the zipf
	// exponent (0 for uniform).
	Dist  string  `json:"dist"`
	ZipfS float64 `json:"zipf_s,omitempty"`
	// ReadRatio is the share of gets asked for (mixed only), BatchSize the
	// puts per Batch call (batch only).
	ReadRatio *float64 `json:"read_ratio,omitempty"`
	BatchSize int      `json:"batch_size,omitempty"`
	// OpsLimit, DurationLimitSeconds (0: none) and WarmupOps are --ops,
	// --duration and --warmup; Routing is --routing.
	OpsLimit             int       `json:"ops_limit"`
	DurationLimitSeconds float64   `json:"duration_limit_s"`
	WarmupOps            int       `json:"warmup_ops"`
	Routing              bool      `json:"routing"`
	AutoPipeline         bool      `json:"auto_pipeline"`
	StartedAt            time.Time `json:"started_at"`

	// Ops is the ops that succeeded (batch: keys written), Calls the RPCs
	// that did (equal to Ops but for batch), Gets and Puts the Ops by
	// kind, NotFound the gets that found no key, and Errors the ops that
	// failed, by Connect code in ErrorsByCode.
	Ops          int64            `json:"ops"`
	Calls        int64            `json:"calls"`
	Gets         int64            `json:"gets"`
	Puts         int64            `json:"puts"`
	NotFound     int64            `json:"not_found"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"`

	ElapsedSeconds float64 `json:"elapsed_s"`
	OpsPerSecond   float64 `json:"ops_per_s"`   // Ops / ElapsedSeconds
	CallsPerSecond float64 `json:"calls_per_s"` // Calls / ElapsedSeconds
	// LatencyMs is of the calls that succeeded (batch: per Batch call);
	// for mixed, LatencyMsByOp has it for "get" and "put" apart.
	LatencyMs     latencyMs            `json:"latency_ms"`
	LatencyMsByOp map[string]latencyMs `json:"latency_ms_by_op,omitempty"`

	// ClientCPUSecondsPer1kOps is this process's CPU time per 1,000 ops,
	// failed ones included; ServerCPUSecondsPer1kOps is the server's, null
	// if /metrics could not be read, and then ServerCPUError says why.
	ClientCPUSecondsPer1kOps float64  `json:"client_cpu_s_per_1k_ops"`
	ServerCPUSecondsPer1kOps *float64 `json:"server_cpu_s_per_1k_ops"`
	ServerCPUError           string   `json:"server_cpu_error,omitempty"`

	// Series has one point per second of the run (the last may be
	// shorter), and Percentiles the latency at percentiles spaced as in
	// HdrHistogram's percentile output (5 per halving of the distance to
	// 100), ending with the max at 100. --out only.
	Series      []benchPoint      `json:"series,omitempty"`
	Percentiles []benchPercentile `json:"percentiles,omitempty"`

	firstErr error
}

type latencyMs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func latencyOf(h *hdrhistogram.Histogram) latencyMs {
	return latencyMs{
		P50:  msOf(h.ValueAtPercentile(50)),
		P90:  msOf(h.ValueAtPercentile(90)),
		P99:  msOf(h.ValueAtPercentile(99)),
		P999: msOf(h.ValueAtPercentile(99.9)),
		Max:  msOf(h.Max()),
	}
}

// benchPoint is one second of a run: the calls that ended in
// [Second, Second+Seconds) seconds from its start. P50Ms and P99Ms are 0
// when no call succeeded.
type benchPoint struct {
	Second       int     `json:"t_s"`
	Seconds      float64 `json:"dur_s"`
	Ops          int64   `json:"ops"`
	Errors       int64   `json:"errors"`
	OpsPerSecond float64 `json:"ops_per_s"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
}

// benchPercentile is a point of the latency spectrum: Percentile percent
// of the calls took at most LatencyMs.
type benchPercentile struct {
	Percentile float64 `json:"percentile"`
	LatencyMs  float64 `json:"latency_ms"`
}

// spectrum returns h's latency at percentiles 0, 12.9, 24.2, ... (5 steps
// per halving of the distance to 100, as HdrHistogram prints them) while
// the distance is more than one call in h, then 100 (the max).
func spectrum(h *hdrhistogram.Histogram) []benchPercentile {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	var out []benchPercentile
	for k := 0; k < benchMaxSpectrumPoints-1; k++ {
		rest := math.Pow(0.5, float64(k)/5) // 1 - p/100
		if rest*float64(n) < 1 {
			break
		}
		p := math.Round(1e6*100*(1-rest)) / 1e6 // 6 decimals: 99.999999
		// ValueAtPercentile gives 0 below the first call; that call is
		// the min.
		out = append(out, benchPercentile{p, msOf(max(h.ValueAtPercentile(p), h.Min()))})
	}
	return append(out, benchPercentile{100, msOf(h.Max())})
}

// result returns the report. Call it after the calls have ended.
func (r *recorder) result(b *bencher, start time.Time, elapsed, clientCPU, serverCPU time.Duration, serverErr error) *benchResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &benchResult{
		Op:                   b.cfg.workload,
		Endpoint:             b.endpoint,
		Clients:              b.cfg.clients,
		Conns:                b.cfg.conns,
		ValueSizeBytes:       b.cfg.valueSizeBytes,
		Keys:                 b.cfg.keys,
		Dist:                 b.cfg.dist,
		OpsLimit:             b.cfg.ops,
		DurationLimitSeconds: b.cfg.duration.Seconds(),
		WarmupOps:            b.cfg.warmupOps,
		Routing:              b.cfg.routing,
		AutoPipeline:         b.cfg.autoPipeline,
		StartedAt:            start.UTC().Round(time.Millisecond),
		Ops:                  r.ops,
		Calls:                r.hist.TotalCount(),
		Gets:                 r.gets,
		Puts:                 r.puts,
		NotFound:             r.notFound,
		ErrorsByCode:         make(map[string]int64, len(r.errs)),
		ElapsedSeconds:       elapsed.Seconds(),
		LatencyMs:            latencyOf(r.hist),
		Percentiles:          spectrum(r.hist),
		firstErr:             r.firstErr,
	}
	if b.cfg.dist == distZipf {
		res.ZipfS = b.cfg.zipfS
	}
	if b.cfg.reads {
		res.Consistency = b.cfg.consistency.String()
	}
	if b.cfg.workload == "mixed" {
		ratio := b.cfg.readRatio
		res.ReadRatio = &ratio
		res.LatencyMsByOp = make(map[string]latencyMs, len(r.byKind))
		for kind, h := range r.byKind {
			res.LatencyMsByOp[kind] = latencyOf(h)
		}
	}
	if b.cfg.workload == "batch" {
		res.BatchSize = b.cfg.batchSize
	}
	for code, n := range r.errs {
		res.Errors += n
		res.ErrorsByCode[code.String()] = n
	}
	if elapsed > 0 {
		res.OpsPerSecond = float64(res.Ops) / elapsed.Seconds()
		res.CallsPerSecond = float64(res.Calls) / elapsed.Seconds()
	}
	// The series: every whole second, then the part of a second the run
	// ended in.
	r.advance(int(elapsed / time.Second))
	if last := elapsed.Seconds() - float64(r.windowSecond); last > 0 || r.windowOps+r.windowErrs > 0 {
		r.closeWindow(max(last, 0.001))
	}
	res.Series = slices.Clone(r.series)
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
//
// mixed adds the gets and puts and their latency, batch the calls, a
// reading workload the keys not found.
func (res *benchResult) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bench %s: %d ops", res.Op, res.Ops)
	switch {
	case res.BatchSize > 0:
		fmt.Fprintf(&b, " in %s", plural(int(res.Calls), "call"))
	case res.ReadRatio != nil:
		fmt.Fprintf(&b, " (%d gets, %d puts)", res.Gets, res.Puts)
	}
	fmt.Fprintf(&b, ", %d errors in %.3fs\n", res.Errors, res.ElapsedSeconds)
	fmt.Fprintf(&b, "  %s over %s to %s, %s, %d-byte values",
		plural(res.Clients, "client"), plural(res.Conns, "connection"), res.Endpoint, plural(res.Keys, "key"), res.ValueSizeBytes)
	if res.Dist == distZipf {
		fmt.Fprintf(&b, ", zipf keys (s %g)", res.ZipfS)
	}
	if res.BatchSize > 0 {
		fmt.Fprintf(&b, ", %d puts per batch", res.BatchSize)
	}
	if res.ReadRatio != nil {
		fmt.Fprintf(&b, ", %g%% gets", 100*(*res.ReadRatio))
	}
	if res.Consistency != "" {
		fmt.Fprintf(&b, ", %s reads", res.Consistency)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "throughput  %.0f ops/s", res.OpsPerSecond)
	if res.BatchSize > 0 {
		fmt.Fprintf(&b, ", %.0f calls/s", res.CallsPerSecond)
	}
	b.WriteString("\n")
	latency := func(name string, l latencyMs) {
		fmt.Fprintf(&b, "%-12sp50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", name, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	name := "latency ms"
	if res.BatchSize > 0 {
		name = "ms per call"
	}
	latency(name, res.LatencyMs)
	for _, kind := range slices.Sorted(maps.Keys(res.LatencyMsByOp)) {
		latency("  "+kind+"s", res.LatencyMsByOp[kind])
	}
	fmt.Fprintf(&b, "client CPU  %.3f s per 1000 ops\n", res.ClientCPUSecondsPer1kOps)
	if res.ServerCPUSecondsPer1kOps != nil {
		fmt.Fprintf(&b, "server CPU  %.3f s per 1000 ops\n", *res.ServerCPUSecondsPer1kOps)
	} else {
		fmt.Fprintf(&b, "server CPU  n/a (%s)\n", res.ServerCPUError)
	}
	if res.Consistency != "" {
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
