package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	"github.com/wisp-db/wisp/plugins"
)

// whatifFlags are wisp plugin whatif's flags.
type whatifFlags struct {
	budget   string
	trace    string
	compare  []string
	reads    int
	keys     int
	skew     float64
	minValue string
	maxValue string
}

func newPluginWhatifCmd(pf *pluginFlags) *cobra.Command {
	g := pf.g
	f := &whatifFlags{}
	cmd := &cobra.Command{
		Use:   "whatif (MODULE.wasm | NAME@VERSION)",
		Short: "Replay a trace through an eviction plugin and the built-ins, offline",
		Long: `Replay an access trace through an eviction plugin (the module in
MODULE.wasm, or version VERSION of plugin NAME, fetched from the cluster)
and through built-in policies (--compare), and for NAME@VERSION the
cluster-wide eviction plugin active now, each on a simulated cache of
--budget bytes, and print each one's hit ratio and byte hit ratio side by
side. It runs here, in this process (the same wazero host and evictor a
node uses); only NAME@VERSION asks the cluster, for the module, the active
plugin and, without --trace, the trace it recorded last (wisp trace
record).

Otherwise the trace is --trace FILE, lines of "unix_ms op key_hash size" (op get,
put or del; the key's hash in hex; the value's size in bytes: see
docs/PLUGINS.md, "What-if replay"), or without --trace a synthetic one:
--reads reads of --keys keys chosen by a Zipf distribution of exponent
--skew, each key's value of a fixed size between --min-value and
--max-value (log-uniform). A read that misses loads the value. A trace
wisp trace record made of one key in N is replayed on a cache of --budget/N
bytes, so that --budget is the cache size to judge.`,
		Example: `  wisp plugin whatif examples/plugins/gdsf/gdsf.wasm --budget 16MiB
  wisp trace record --duration 60s --sample 16 --out access.trace
  wisp plugin whatif gdsf@2 --trace access.trace --budget 64MiB --compare allkeys-lru,allkeys-lfu,volatile-ttl`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			budget, err := humanize.ParseBytes(f.budget)
			if err != nil || budget == 0 {
				return usageErrorf("invalid --budget %q: want a size such as 64MiB", f.budget)
			}
			minV, err1 := humanize.ParseBytes(f.minValue)
			maxV, err2 := humanize.ParseBytes(f.maxValue)
			switch {
			case err1 != nil || err2 != nil || minV > maxV || maxV > replay.MaxValueBytes:
				return usageErrorf("invalid --min-value %q or --max-value %q: want sizes, the first not above the second, at most 1MiB", f.minValue, f.maxValue)
			case f.reads < 1 || f.keys < 2 || f.skew <= 1:
				return usageErrorf("want --reads at least 1, --keys at least 2 and --skew above 1")
			}
			var policies []eviction.Policy
			for _, name := range f.compare {
				p, err := eviction.New(name)
				if err != nil {
					return usageErrorf("--compare: %v", err)
				}
				policies = append(policies, p)
			}
			// A replay takes as long as the trace: --timeout bounds it only
			// when given.
			ctx, stop := context.WithCancel(cmd.Context())
			if cmd.Flag("timeout").Changed {
				ctx, stop = g.context(cmd)
			}
			defer stop()
			wasm, name, err := whatifModule(ctx, pf, args[0])
			if err != nil {
				return err
			}
			sample := 1
			var recorded []replay.Record // the cluster's trace, for NAME@VERSION without --trace
			switch {
			case f.trace != "":
				if sample, err = traceSample(f.trace); err != nil {
					return err
				}
			case fromCluster(args[0]):
				c, err := pf.client()
				if err != nil {
					return err
				}
				if tr, err := c.GetTrace(ctx); err == nil && len(tr.Records) > 0 {
					for _, r := range tr.Records {
						recorded = append(recorded, replay.Record{UnixMs: r.UnixMs, Op: replay.Op(r.Op), Key: r.KeyHash, Size: int64(r.Size)})
					}
					sample = int(max(tr.Sample, 1))
					fmt.Fprintf(cmd.ErrOrStderr(), "replaying the trace the cluster recorded last: %d accesses from %v\n", len(recorded), tr.Nodes)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "the cluster holds no recorded trace (wisp trace record; %v): replaying a synthetic one\n", errOrNone(err))
				}
			}
			if sample > 1 {
				budget /= uint64(sample)
				fmt.Fprintf(cmd.ErrOrStderr(), "the trace holds one key in %d: replaying on a cache of %s\n", sample, humanize.IBytes(budget))
			}
			host, err := plugins.NewHost(ctx)
			if err != nil {
				return err
			}
			defer host.Close(context.WithoutCancel(ctx))
			mod, err := host.LoadEviction(ctx, wasm, plugins.WithName(name))
			if err != nil {
				return err
			}
			defer mod.Close()
			fallback, _ := eviction.New(eviction.AllKeysLRU)
			guarded := plugins.NewGuarded(mod, fallback)
			policies = append([]eviction.Policy{guarded}, policies...)
			if fromCluster(args[0]) {
				// The cluster-wide eviction plugin in force, beside the candidate.
				if active, err := activeEviction(ctx, pf, host, name); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "the active eviction plugin is left out: %v\n", err)
				} else if active != nil {
					defer active.Close()
					policies = append(policies, plugins.NewGuarded(active, fallback))
				}
			}

			trace := func() (func() (replay.Record, error), func(), error) {
				if recorded != nil {
					i := 0
					return func() (replay.Record, error) {
						if i == len(recorded) {
							return replay.Record{}, io.EOF
						}
						i++
						return recorded[i-1], nil
					}, func() {}, nil
				}
				if f.trace == "" {
					return replay.Zipf(1, f.reads, f.keys, f.skew, int64(minV), int64(maxV), time.Now().UnixMilli()), func() {}, nil
				}
				fh, err := os.Open(f.trace)
				if err != nil {
					return nil, nil, err
				}
				return replay.NewReader(bufio.NewReaderSize(fh, 1<<16)).Next, func() { fh.Close() }, nil
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "POLICY\tHIT RATIO\tBYTE HIT RATIO\tEVICTED\tFALLBACKS\tTIME\n")
			for i, p := range policies {
				next, done, err := trace()
				if err != nil {
					return err
				}
				start := time.Now()
				res, err := replay.Run(ctx, next, int64(budget), p)
				done()
				if err != nil {
					return err
				}
				fallbacks := "-"
				if i == 0 {
					fallbacks = fmt.Sprint(guarded.Stats().Fallbacks)
				}
				if i == 0 && res.Reads == 0 {
					return fmt.Errorf("the trace has no reads: nothing to compare")
				}
				fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%d\t%s\t%v\n", res.Policy, res.HitRatio(), res.ByteHitRatio(), res.Evicted, fallbacks, time.Since(start).Round(10*time.Millisecond))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if s := guarded.Stats(); s.Fallbacks > 0 {
				return writef(out, "\n%d of the plugin's %d calls failed (last: %s); allkeys-lru decided those.\n", s.Fallbacks, s.Calls, s.LastError)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.budget, "budget", "16MiB", "the simulated cache's memory budget")
	fl.StringVar(&f.trace, "trace", "", "a trace file (default: a synthetic Zipf trace)")
	fl.StringSliceVar(&f.compare, "compare", []string{eviction.AllKeysLRU, eviction.AllKeysLFU}, "built-in policies to replay beside the plugin")
	fl.IntVar(&f.reads, "reads", 200_000, "synthetic trace: reads")
	fl.IntVar(&f.keys, "keys", 20_000, "synthetic trace: distinct keys")
	fl.Float64Var(&f.skew, "skew", 1.1, "synthetic trace: Zipf exponent (above 1; higher is more skewed)")
	fl.StringVar(&f.minValue, "min-value", "100B", "synthetic trace: smallest value")
	fl.StringVar(&f.maxValue, "max-value", "64KiB", "synthetic trace: largest value")
	return cmd
}

// fromCluster reports whether whatif's argument names a plugin version
// in the cluster (NAME@VERSION) rather than a file.
func fromCluster(arg string) bool {
	return !strings.HasSuffix(arg, ".wasm") && strings.Contains(arg, "@")
}

func errOrNone(err error) string {
	if err != nil {
		return err.Error()
	}
	return "none recorded"
}

// activeEviction loads the cluster-wide eviction plugin active now, if any
// and if it is not the candidate itself; nil if none.
func activeEviction(ctx context.Context, pf *pluginFlags, host *plugins.Host, candidate string) (*plugins.Eviction, error) {
	c, err := pf.client()
	if err != nil {
		return nil, err
	}
	list, err := c.ListPlugins(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range list.Plugins {
		if p.Kind != "eviction" || p.Active == 0 || p.Prefix != "" {
			continue
		}
		name := fmt.Sprintf("%s@%d (active)", p.Name, p.Active)
		if fmt.Sprintf("%s@%d", p.Name, p.Active) == candidate {
			return nil, nil
		}
		res, err := c.GetPluginModule(ctx, p.Name, p.Active)
		if err != nil {
			return nil, err
		}
		return host.LoadEviction(ctx, res.Module, plugins.WithName(name))
	}
	return nil, nil
}

// whatifModule returns the module whatif replays: the file arg names, or,
// for NAME@VERSION, that version fetched from the cluster; and its name.
func whatifModule(ctx context.Context, pf *pluginFlags, arg string) ([]byte, string, error) {
	if !fromCluster(arg) {
		wasm, err := readModule(arg)
		return wasm, strings.TrimSuffix(filepath.Base(arg), ".wasm"), err
	}
	name, version, err := parseVersioned(arg)
	if err != nil {
		return nil, "", err
	}
	c, err := pf.client()
	if err != nil {
		return nil, "", err
	}
	res, err := c.GetPluginModule(ctx, name, version)
	if err != nil {
		return nil, "", err
	}
	if res.Kind != "eviction" {
		return nil, "", fmt.Errorf("%s is a %s plugin: a what-if replay judges eviction plugins", arg, res.Kind)
	}
	return res.Module, arg, nil
}

// traceSample reads a trace file's sampling from its header.
func traceSample(path string) (int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	r := replay.NewReader(bufio.NewReader(io.LimitReader(fh, 4<<10)))
	if _, err := r.Next(); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return r.Sample(), nil
}
