package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spf13/cobra"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Report on the cluster and change its members",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.AddCommand(newStatusCmd(g), newReadyCmd(g), newRingCmd(g), newDrainCmd(g), newRemoveCmd(g))
	return cmd
}

func newDrainCmd(g *globals) *cobra.Command {
	var cancel bool
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Move every replica off a node, which keeps serving until it holds none",
		Long: `Mark NODE draining in the cluster map: the placement driver moves its
replicas to the other nodes, a few shards at a time (--max-concurrent-moves),
never leaving a shard below three replicas, and hands its leaderships away
first. The node keeps serving meanwhile. Watch the moves with
wisp cluster status; once the node holds no replica, stop it and forget it
with wisp cluster remove. --cancel makes the node active again.`,
		Example: `  wisp cluster drain n4
  wisp cluster drain --cancel n4`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := g.context(cmd)
			defer stop()
			epoch, err := c.DrainNode(ctx, args[0], cancel)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), struct {
					Node     string `json:"node"`
					Draining bool   `json:"draining"`
					Epoch    uint64 `json:"epoch"`
				}{args[0], !cancel, epoch})
			}
			if cancel {
				return writef(cmd.OutOrStdout(), "%s is active again (cluster map epoch %d)\n", args[0], epoch)
			}
			return writef(cmd.OutOrStdout(), "%s is draining (cluster map epoch %d): its replicas move to the other nodes; wisp cluster status shows the moves\n", args[0], epoch)
		},
	}
	cmd.Flags().BoolVar(&cancel, "cancel", false, "make the node active again")
	return cmd
}

func newRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Forget a stopped node that holds no replica",
		Long: `Remove NODE from the cluster map. The node must hold no replica (drain it
first, or, if it died, wait until its replicas are rebuilt elsewhere) and
must be stopped. A removed node started again on its data joins again.`,
		Example: `  wisp cluster drain n4    # then wait until n4 holds no replica, and stop it
  wisp cluster remove n4`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := g.context(cmd)
			defer stop()
			epoch, err := c.RemoveNode(ctx, args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), struct {
					Node    string `json:"node"`
					Removed bool   `json:"removed"`
					Epoch   uint64 `json:"epoch"`
				}{args[0], true, epoch})
			}
			return writef(cmd.OutOrStdout(), "%s removed (cluster map epoch %d)\n", args[0], epoch)
		},
	}
}

func newReadyCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "ready",
		Short: "Say whether the cluster is ready: every shard led, with all its replicas caught up",
		Long: `Say whether the cluster is ready: every node answers, every shard has a
leader, each of its replicas has caught up with that leader, and its
replicas are where the placement wants them (no moves under way or to
come, after a node joined, is draining, or died). This is
what a rolling restart waits for before it stops the next node (GET
/readyz on any node answers the same, 200 or 503). Prints "ready" and
exits 0, or prints the reasons and exits 1.

--wait keeps asking (twice a second) until the cluster is ready or the
time is up.`,
		Example: `  wisp cluster ready
  wisp cluster ready --wait 2m`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait < 0 {
				return usageErrorf("invalid --wait %v: want 0 or more", wait)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(wait)
			for {
				ctx, cancel := g.context(cmd)
				st, err := c.Status(ctx)
				cancel()
				if err != nil && time.Now().After(deadline) {
					return err
				}
				if err == nil && (st.GetReady() || time.Now().After(deadline)) {
					return writeReady(cmd.OutOrStdout(), g, st)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(readyPoll):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "keep asking until the cluster is ready or this much time has passed (0: ask once)")
	return cmd
}

// readyPoll is how often cluster ready --wait asks again.
const readyPoll = 500 * time.Millisecond

// notReadyError is a cluster that is not ready: exit 1, the reasons printed.
type notReadyError struct{ reasons []string }

func (e *notReadyError) Error() string {
	return "cluster not ready:\n  " + strings.Join(e.reasons, "\n  ")
}

func writeReady(w io.Writer, g *globals, st *wispv1.StatusResponse) error {
	if g.json() {
		if err := writeJSON(w, struct {
			Ready    bool     `json:"ready"`
			NotReady []string `json:"not_ready"`
		}{st.GetReady(), append([]string{}, st.GetNotReady()...)}); err != nil {
			return err
		}
	} else if st.GetReady() {
		if err := writef(w, "ready\n"); err != nil {
			return err
		}
	}
	if !st.GetReady() {
		return &notReadyError{st.GetNotReady()}
	}
	return nil
}

func newStatusCmd(g *globals) *cobra.Command {
	var replicas bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the nodes, the shards, their leaders and replicas",
		Long: `Show the cluster as the answering node sees it: every node, whether it
answered and how many shard replicas and leaders it holds, then one line
per shard with its leader, its replicas (* marks the leader, + a
non-voting replica, ! a replica whose node did not answer, ? one whose
state is unknown), its key count and its memory used and budget.

--replicas adds a line per replica with its Raft state: term, applied,
commit and last log index, keys, memory, eviction policy and the keys
expired and evicted since it started.

--output json prints the whole StatusResponse, replicas included, in the
protobuf JSON mapping.`,
		Example: `  wisp cluster status
  wisp cluster status --replicas
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
			return writeStatus(cmd.OutOrStdout(), st, replicas)
		},
	}
	cmd.Flags().BoolVar(&replicas, "replicas", false, "also show each replica's Raft state (text output)")
	return cmd
}

// writeStatus writes st as a summary line and two tables, nodes and
// shards, with one line per shard; withReplicas adds a third table with
// one line per replica.
func writeStatus(w io.Writer, st *wispv1.StatusResponse, withReplicas bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	unreachable, leaderless := 0, 0
	var keys uint64
	for _, n := range st.GetNodes() {
		if !n.GetReachable() {
			unreachable++
		}
	}
	for _, s := range st.GetShards() {
		if s.GetLeaderId() == "" {
			leaderless++
		}
		keys += s.GetKeyCount()
	}
	fmt.Fprintf(tw, "Reported by node %s: %s (%d unreachable), %s (%d without a leader), %s, cluster map epoch %d\n\n",
		orDash(st.GetNodeId()), plural(len(st.GetNodes()), "node"), unreachable,
		plural(len(st.GetShards()), "shard"), leaderless, plural(int(keys), "key"), st.GetEpoch())

	fmt.Fprintln(tw, "NODE\tURL\tRAFT ADDRESS\tZONE\tHEALTH\tSTATE\tREPLICAS\tLEADERS\tMEMORY USED/BUDGET\tBUILD\tREACHABLE")
	for _, n := range st.GetNodes() {
		reachable := "yes"
		if !n.GetReachable() {
			reachable = "no"
			if n.GetError() != "" {
				reachable += ": " + n.GetError()
			}
		}
		mem := "-"
		if n.GetReachable() {
			mem = memory(n.GetMemoryUsedBytes(), n.GetMemoryBudgetBytes())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", orDash(n.GetId()), orDash(n.GetUrl()), orDash(n.GetRaftAddr()),
			orDash(n.GetZone()), orDash(n.GetHealth()), orDash(n.GetState()), n.GetReplicas(), n.GetLeaders(), mem, orDash(n.GetBuild()), reachable)
	}
	fmt.Fprintln(tw)

	fmt.Fprintln(tw, "SHARD\tLEADER\tREPLICAS\tTARGET\tKEYS\tMEMORY USED/BUDGET")
	if m := st.GetMeta(); m != nil {
		fmt.Fprintf(tw, "meta\t%s\t%s\t-\t-\t-\n", orDash(m.GetLeaderId()), replicaList(m))
	}
	for _, s := range st.GetShards() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", s.GetId(), orDash(s.GetLeaderId()), replicaList(s), target(s),
			s.GetKeyCount(), memory(s.GetMemoryUsedBytes(), s.GetMemoryBudgetBytes()))
	}
	if len(st.GetShards()) > 0 {
		fmt.Fprintln(tw, "(* leader, + non-voting replica, ! its node is unreachable, ? state unknown)")
	}
	if len(st.GetMoves()) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "MOVE\tSHARD\tNODE\tSINCE\tWHY")
		for _, mv := range st.GetMoves() {
			shard := strconv.FormatUint(uint64(mv.GetShard()), 10)
			if mv.GetMetaGroup() {
				shard = "meta"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mv.GetKind(), shard, orDash(mv.GetNodeId()),
				time.UnixMilli(mv.GetStartedUnixMs()).UTC().Format(time.TimeOnly), orDash(mv.GetReason()))
		}
	}
	if p := st.GetPlacement(); p != nil {
		fmt.Fprintln(tw)
		state := "done: every shard where the placement wants it"
		if !p.GetDone() {
			state = fmt.Sprintf("%s, %s, %d queued", plural(len(p.GetSteps()), "step"), plural(len(p.GetStuck()), "stuck shard"), p.GetQueued())
		}
		fmt.Fprintf(tw, "Placement driver on %s at %s: %s\n", orDash(p.GetLeaderId()), time.UnixMilli(p.GetAtUnixMs()).UTC().Format(time.TimeOnly), state)
		for _, l := range p.GetSteps() {
			fmt.Fprintf(tw, "  step   %s\n", l)
		}
		for _, l := range p.GetStuck() {
			fmt.Fprintf(tw, "  stuck  %s\n", l)
		}
		for _, l := range p.GetErrors() {
			fmt.Fprintf(tw, "  failed %s\n", l)
		}
	}
	if !withReplicas {
		return tw.Flush()
	}

	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SHARD\tREPLICA\tSTATE\tVOTER\tTERM\tAPPLIED\tCOMMIT\tLAST LOG\tKEYS\tMEMORY USED/BUDGET\tPOLICY\tEXPIRED\tEVICTED")
	for _, s := range st.GetShards() {
		for _, r := range s.GetReplicas() {
			voter := "yes"
			if !r.GetVoter() {
				voter = "no"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\n", s.GetId(),
				orDash(r.GetNodeId()), orDash(r.GetState()), voter,
				r.GetTerm(), r.GetAppliedIndex(), r.GetCommitIndex(), r.GetLastLogIndex(), r.GetKeyCount(),
				memory(r.GetMemoryUsedBytes(), r.GetMemoryBudgetBytes()), orDash(r.GetEvictionPolicy()),
				r.GetExpiredKeys(), r.GetEvictedKeys())
		}
	}
	return tw.Flush()
}

// replicaList is s's replicas as "n1* n2+ n3?": * marks the leader, + a
// non-voting replica, ! one on a node that did not answer, ? one whose
// state is unknown; "-" if there are none.
// target is a shard's TARGET column: "=" when its voters are where the
// placement wants them, else the nodes it wants.
func target(s *wispv1.ShardStatus) string {
	want := s.GetTargetNodeIds()
	if len(want) == 0 {
		return "-"
	}
	var voters []string
	for _, r := range s.GetReplicas() {
		if r.GetVoter() {
			voters = append(voters, r.GetNodeId())
		}
	}
	slices.Sort(voters)
	if slices.Equal(voters, want) {
		return "="
	}
	return strings.Join(want, " ")
}

func replicaList(s *wispv1.ShardStatus) string {
	var b strings.Builder
	for i, r := range s.GetReplicas() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(orDash(r.GetNodeId()))
		if r.GetNodeId() != "" && r.GetNodeId() == s.GetLeaderId() {
			b.WriteByte('*')
		}
		switch {
		case r.GetState() == "unreachable": // see ReplicaStatus.state in cluster.proto
			b.WriteByte('!')
		case r.GetState() == "" || r.GetState() == "unknown":
			b.WriteByte('?')
		case !r.GetVoter():
			b.WriteByte('+')
		}
	}
	return orDash(b.String())
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
