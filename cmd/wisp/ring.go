package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/ring"
)

// maxKeyTokens is the most key-ring tokens (shards × key vnodes) the CLI
// computes shares for: ring.NewKeyRing's own bound (it panics past it).
const maxKeyTokens = 1 << 24

func newRingCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ring",
		Short: "Show how keys map to shards and shards to nodes, and how even it is",
		Long: `Show the shard map of the answering node (ClusterService.ShardMap).

Per shard: its share of the key space, computed here from the key ring
(shard count and key vnodes), its replicas in ring order, the leader the
placement prefers and the leader the node knows of ("-" if none, marked
when it is not the preferred one).

Per node: the replicas it holds, the shards it is the preferred leader of,
and the shards it leads now.

Balance: the largest and the mean value of each column and their ratio,
for keys over shards (key share), replicas over nodes, and preferred and
current leaders over nodes. The placement keeps every node within a cap
of ceil(1.1 × R × S / N) replicas and ceil(1.1 × S / N) preferred
leaderships (R replicas per shard, S shards, N nodes); current leaders
follow elections and have no cap.

--output json prints the same figures as one object: the shard map's
fields with their .proto names, key_share per shard, counts per node, and
balance with max, mean, max_over_mean (and cap) per measure.`,
		Example: `  wisp cluster ring
  wisp cluster ring --output json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.client(); err != nil {
				return err // a bad --endpoint, reported as the other commands do
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			m, err := fetchShardMap(ctx, g.endpoint)
			if err != nil {
				return err
			}
			v, err := newRingView(m)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			return writeRing(cmd.OutOrStdout(), v)
		},
	}
}

// fetchShardMap asks the node at endpoint for its shard map, once. The Go
// client has no ShardMap method, so this calls the RPC directly; the node
// answers from its own state, so there is no leader to find or wait for.
func fetchShardMap(ctx context.Context, endpoint string) (*wispv1.ShardMapResponse, error) {
	c := wispv1connect.NewClusterServiceClient(http.DefaultClient, endpoint)
	res, err := c.ShardMap(ctx, connect.NewRequest(&wispv1.ShardMapRequest{}))
	if err != nil {
		return nil, fmt.Errorf("shard map: %w", err)
	}
	return res.Msg, nil
}

// ringView is a shard map with the figures wisp cluster ring derives from
// it. It is also the --output json object.
type ringView struct {
	Epoch             uint64      `json:"epoch"`
	ShardCount        int         `json:"shard_count"`
	KeyVnodes         int         `json:"key_vnodes"`
	ReplicationFactor int         `json:"replication_factor"`
	Shards            []ringShard `json:"shards"`
	Nodes             []ringNode  `json:"nodes"`
	Balance           ringBalance `json:"balance"`
}

type ringShard struct {
	ID uint32 `json:"id"`
	// KeyShare is the fraction of the hash space the shard owns; null when
	// the id is outside the key ring.
	KeyShare          *float64 `json:"key_share"`
	Replicas          []string `json:"replicas"`
	PreferredLeaderID string   `json:"preferred_leader_id"`
	LeaderID          string   `json:"leader_id"` // "": unknown
}

type ringNode struct {
	ID   string `json:"id"`
	URL  string `json:"url"`
	Zone string `json:"zone"`
	// Member is false for a node that shards name but the member list
	// does not (a broken shard map).
	Member           bool `json:"member"`
	Replicas         int  `json:"replicas"`
	PreferredLeaders int  `json:"preferred_leaders"`
	Leaders          int  `json:"leaders"`
}

type ringBalance struct {
	KeyShare         spread `json:"key_share"`
	Replicas         spread `json:"replicas"`
	PreferredLeaders spread `json:"preferred_leaders"`
	Leaders          spread `json:"leaders"`
}

// spread is how even one measure is: its largest value, its mean, and the
// placement's cap on it (0: none).
type spread struct {
	Max         float64 `json:"max"`
	Mean        float64 `json:"mean"`
	MaxOverMean float64 `json:"max_over_mean"` // 0 when the mean is 0
	Cap         int     `json:"cap,omitempty"`
}

func newSpread(values []float64) spread {
	var s spread
	if len(values) == 0 {
		return s
	}
	var sum float64
	for _, v := range values {
		s.Max = max(s.Max, v)
		sum += v
	}
	s.Mean = sum / float64(len(values))
	if s.Mean > 0 {
		s.MaxOverMean = s.Max / s.Mean
	}
	return s
}

// newRingView derives the per-shard shares, per-node counts and balance
// figures from m. It fails on a shard map it cannot compute shares for.
func newRingView(m *wispv1.ShardMapResponse) (*ringView, error) {
	shards, vnodes := int(m.GetShardCount()), int(m.GetKeyVnodes())
	if vnodes == 0 {
		vnodes = ring.DefaultKeyVnodes
	}
	if shards < 1 || shards > maxKeyTokens/vnodes {
		return nil, fmt.Errorf("shard map: %d shards of %d key vnodes: want 1 to %d tokens", shards, vnodes, maxKeyTokens)
	}
	shares := ring.NewKeyRing(shards, vnodes).Shares()
	v := &ringView{
		Epoch:             m.GetEpoch(),
		ShardCount:        shards,
		KeyVnodes:         vnodes,
		ReplicationFactor: int(m.GetReplicationFactor()),
	}

	for _, p := range m.GetShards() {
		s := ringShard{
			ID:                p.GetId(),
			Replicas:          p.GetReplicas(),
			PreferredLeaderID: p.GetPreferredLeaderId(),
			LeaderID:          p.GetLeaderId(),
		}
		if s.Replicas == nil {
			s.Replicas = []string{}
		}
		if int(s.ID) < len(shares) {
			s.KeyShare = &shares[s.ID]
		}
		v.Shards = append(v.Shards, s)
	}

	// Members first, in the map's order (sorted by id), then any node the
	// shards name but the members do not, sorted.
	byID := make(map[string]int)
	for _, n := range m.GetNodes() {
		if _, dup := byID[n.GetId()]; !dup {
			byID[n.GetId()] = len(v.Nodes)
			v.Nodes = append(v.Nodes, ringNode{ID: n.GetId(), URL: n.GetUrl(), Zone: n.GetZone(), Member: true})
		}
	}
	var strays []string
	for _, s := range v.Shards {
		for _, id := range append([]string{s.PreferredLeaderID, s.LeaderID}, s.Replicas...) {
			if _, ok := byID[id]; !ok && id != "" && !slices.Contains(strays, id) {
				strays = append(strays, id)
			}
		}
	}
	slices.Sort(strays)
	for _, id := range strays {
		byID[id] = len(v.Nodes)
		v.Nodes = append(v.Nodes, ringNode{ID: id})
	}
	for _, s := range v.Shards {
		for _, id := range s.Replicas {
			if i, ok := byID[id]; ok {
				v.Nodes[i].Replicas++
			}
		}
		if i, ok := byID[s.PreferredLeaderID]; ok && s.PreferredLeaderID != "" {
			v.Nodes[i].PreferredLeaders++
		}
		if i, ok := byID[s.LeaderID]; ok && s.LeaderID != "" {
			v.Nodes[i].Leaders++
		}
	}
	if v.Nodes == nil {
		v.Nodes = []ringNode{}
	}
	if v.Shards == nil {
		v.Shards = []ringShard{}
	}

	v.Balance.KeyShare = newSpread(shares)
	var replicas, preferred, leaders []float64
	for _, n := range v.Nodes {
		replicas = append(replicas, float64(n.Replicas))
		preferred = append(preferred, float64(n.PreferredLeaders))
		leaders = append(leaders, float64(n.Leaders))
	}
	v.Balance.Replicas = newSpread(replicas)
	v.Balance.PreferredLeaders = newSpread(preferred)
	v.Balance.Leaders = newSpread(leaders)
	if n := len(m.GetNodes()); n > 0 {
		v.Balance.Replicas.Cap = loadCap(v.ReplicationFactor*shards, n)
		v.Balance.PreferredLeaders.Cap = loadCap(shards, n)
	}
	return v, nil
}

// loadCap is ring.Place's bound on what one of n nodes holds of total:
// ceil(c × total / n) with c = ring.DefaultLoadFactor, in integers as Place
// computes it (c in thousandths, at most n).
func loadCap(total, n int) int {
	c := min(int(math.Round(ring.DefaultLoadFactor*1000)), 1000*n)
	return (c*total + 1000*n - 1) / (1000 * n)
}

// writeRing writes v as a summary line and three tables: shards, nodes and
// balance.
func writeRing(w io.Writer, v *ringView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Epoch %d: %s of %d key vnodes, %d replicas each, %s\n\n",
		v.Epoch, plural(v.ShardCount, "shard"), v.KeyVnodes, v.ReplicationFactor, plural(len(v.Nodes), "node"))

	fmt.Fprintln(tw, "SHARD\tKEY SHARE\tREPLICAS\tPREFERRED LEADER\tCURRENT LEADER")
	for _, s := range v.Shards {
		share := "-"
		if s.KeyShare != nil {
			share = percent(*s.KeyShare)
		}
		leader := orDash(s.LeaderID)
		if s.LeaderID != "" && s.PreferredLeaderID != "" && s.LeaderID != s.PreferredLeaderID {
			leader += " (not preferred)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.ID, share, orDash(strings.Join(s.Replicas, " ")), orDash(s.PreferredLeaderID), leader)
	}
	fmt.Fprintln(tw)

	fmt.Fprintln(tw, "NODE\tZONE\tURL\tREPLICAS\tPREFERRED LEADERS\tCURRENT LEADERS")
	for _, n := range v.Nodes {
		url := orDash(n.URL)
		if !n.Member {
			url = "(not a member)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", orDash(n.ID), orDash(n.Zone), url, n.Replicas, n.PreferredLeaders, n.Leaders)
	}
	fmt.Fprintln(tw)

	b := v.Balance
	fmt.Fprintln(tw, "BALANCE\tMAX\tMEAN\tMAX/MEAN\tCAP")
	fmt.Fprintf(tw, "keys -> shards (share)\t%s\t%s\t%s\t-\n", percent(b.KeyShare.Max), percent(b.KeyShare.Mean), ratio(b.KeyShare))
	for _, row := range []struct {
		name string
		s    spread
	}{
		{"replicas -> nodes", b.Replicas},
		{"preferred leaders -> nodes", b.PreferredLeaders},
		{"current leaders -> nodes", b.Leaders},
	} {
		capText := "-"
		if row.s.Cap > 0 {
			capText = fmt.Sprint(row.s.Cap)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%s\t%s\n", row.name, row.s.Max, row.s.Mean, ratio(row.s), capText)
	}
	return tw.Flush()
}

func percent(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func ratio(s spread) string {
	if s.Mean == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", s.MaxOverMean)
}
