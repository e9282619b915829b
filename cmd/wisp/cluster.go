package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dustin/go-humanize"

	"github.com/spf13/cobra"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Report on the cluster",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.AddCommand(newStatusCmd(g))
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the nodes, the shards, their leaders and replicas",
		Long: `Show the cluster as the answering node sees it: every node and whether it
answered, and every shard with its leader and each replica's Raft state.`,
		Example: `  wisp cluster status
  wisp cluster status --output json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if g.json() {
				return writeProtoJSON(cmd.OutOrStdout(), st)
			}
			return writeStatus(cmd.OutOrStdout(), st)
		},
	}
}

// writeStatus writes st as two tables, nodes and shards, with one row per
// replica and the shard's columns only on its first replica.
func writeStatus(w io.Writer, st *wispv1.StatusResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Reported by node %s\n\n", orDash(st.GetNodeId()))

	fmt.Fprintln(tw, "NODE\tURL\tRAFT ADDRESS\tREACHABLE")
	for _, n := range st.GetNodes() {
		reachable := "yes"
		if !n.GetReachable() {
			reachable = "no"
			if n.GetError() != "" {
				reachable += ": " + n.GetError()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", orDash(n.GetId()), orDash(n.GetUrl()), orDash(n.GetRaftAddr()), reachable)
	}
	fmt.Fprintln(tw)

	fmt.Fprintln(tw, "SHARD\tLEADER\tKEYS\tREPLICA\tSTATE\tVOTER\tTERM\tAPPLIED\tCOMMIT\tLAST LOG\tMEMORY USED/BUDGET\tPOLICY\tEXPIRED\tEVICTED")
	for _, s := range st.GetShards() {
		shard := fmt.Sprintf("%d\t%s\t%d", s.GetId(), orDash(s.GetLeaderId()), s.GetKeyCount())
		if len(s.GetReplicas()) == 0 {
			fmt.Fprintf(tw, "%s\t-\n", shard)
		}
		for i, r := range s.GetReplicas() {
			if i > 0 {
				shard = "\t\t"
			}
			voter := "yes"
			if !r.GetVoter() {
				voter = "no"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\n", shard,
				orDash(r.GetNodeId()), orDash(r.GetState()), voter,
				r.GetTerm(), r.GetAppliedIndex(), r.GetCommitIndex(), r.GetLastLogIndex(),
				memory(r.GetMemoryUsedBytes(), r.GetMemoryBudgetBytes()), orDash(r.GetEvictionPolicy()),
				r.GetExpiredKeys(), r.GetEvictedKeys())
		}
	}
	return tw.Flush()
}

// memory formats used/budget, such as "1.2 MiB/512 MiB" or "1.2 MiB/-".
func memory(used, budget int64) string {
	b := "-"
	if budget > 0 {
		b = humanize.IBytes(uint64(budget))
	}
	return humanize.IBytes(uint64(max(used, 0))) + "/" + b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
