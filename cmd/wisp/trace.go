package main

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/engine/eviction/replay"
)

func newTraceCmd(g *globals) *cobra.Command {
	f := &pluginFlags{g: g}
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Record the cluster's access trace, for what-if replays",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.PersistentFlags().StringVar(&f.token, "operator-token", "", "the cluster's operator token (env "+operatorTokenEnv+")")
	cmd.AddCommand(newTraceRecordCmd(f))
	return cmd
}

func newTraceRecordCmd(f *pluginFlags) *cobra.Command {
	var (
		duration time.Duration
		sample   uint32
		out      string
	)
	cmd := &cobra.Command{
		Use:   "record --out FILE",
		Short: "Record a sampled access trace on every node and save it",
		Long: `Have every node record, for --duration, the reads and writes its replicas
serve of one key in --sample (chosen by the key's hash, so every access of
a sampled key is recorded), then collect the records, merge them by time
and write them to --out in the trace format wisp plugin whatif --trace
reads (docs/PLUGINS.md, "What-if replay"): time, op, the key's hash, the
value's size. Keys themselves are not recorded. Each node keeps at most
200,000 records; past that its trace stops early and the file says so.
An operator action.`,
		Example: `  wisp trace record --duration 60s --sample 16 --out access.trace
  wisp plugin whatif gdsf@2 --trace access.trace --budget 64MiB`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out is required")
			}
			if duration < time.Second || duration > time.Hour {
				return usageErrorf("invalid --duration %v: want 1s to 1h", duration)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			nodes, err := c.StartTrace(ctx, duration, sample)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "recording on %d nodes (%v) for %v, one key in %d...\n", len(nodes), nodes, duration, max(sample, 1))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(duration + 200*time.Millisecond):
			}
			res, err := c.GetTrace(ctx)
			if err != nil {
				return err
			}
			fh, err := os.Create(out)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(fh)
			err = replay.WriteHeader(w, int(max(res.Sample, 1)))
			if res.Truncated && err == nil {
				_, err = fmt.Fprintf(w, "# truncated: a node's buffer filled up before the end\n")
			}
			for _, r := range res.Records {
				if err != nil {
					break
				}
				err = replay.Write(w, replay.Record{UnixMs: r.UnixMs, Op: replay.Op(r.Op), Key: r.KeyHash, Size: int64(r.Size)})
			}
			if err == nil {
				err = w.Flush()
			}
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			if len(res.Missing) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "nodes %v did not answer: their records are missing\n", res.Missing)
			}
			return writef(cmd.OutOrStdout(), "%d records from %d nodes written to %s%s\n", len(res.Records), len(res.Nodes), out, truncatedNote(res.Truncated))
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", time.Minute, "how long to record (1s to 1h)")
	cmd.Flags().Uint32Var(&sample, "sample", 1, "record one key in this many (by the key's hash), 1 to 65536")
	cmd.Flags().StringVar(&out, "out", "", "the file to write the trace to")
	return cmd
}

func truncatedNote(truncated bool) string {
	if truncated {
		return " (a node's buffer filled up: its trace ends early; record for less time or with a larger --sample)"
	}
	return ""
}
