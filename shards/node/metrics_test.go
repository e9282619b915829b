package node_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestNodeMetrics runs a 3-node cluster whose nodes keep their own
// registries (Config.Registerer nil, as in wispd), each served on the node's
// port as wispd does. After writes, a leadership hand-off and more writes,
// it scrapes every node's /metrics over HTTP and checks that each reports
// only its own node, wisp_build_info, and sane Raft, proposal and disk
// series.
func TestNodeMetrics(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{
		// No balancer: the hand-off below is the only one.
		Tune: func(cfg *node.Config) { cfg.BalanceInterval = -1 },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const writes = 20
	put := func(leader, from int) {
		t.Helper()
		kv := wispv1connect.NewKVServiceClient(h2cClient(), c.URL(leader))
		for i := from; i < from+writes; i++ {
			if _, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})); err != nil {
				t.Fatalf("Put(k%d) on node %d: %v", i, leader, err)
			}
		}
	}
	first := c.WaitLeader(5 * time.Second)
	put(first, 0)

	// Hand shard 0's leadership to another replica.
	g := c.Node(first).Shard(0)
	var to node.Peer
	for _, m := range g.Status().Members {
		if m.ID != c.Node(first).ID() {
			to = node.Peer{ID: m.ID, RaftAddr: m.Addr}
			break
		}
	}
	if err := g.TransferLeadership(to.ID, to.RaftAddr); err != nil {
		t.Fatal(err)
	}
	second := -1
	for deadline := time.Now().Add(10 * time.Second); second < 0 || second == first; second = c.Leader() {
		if time.Now().After(deadline) {
			t.Fatalf("shard 0 still led by node %d after the hand-off to %s", first, to.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	put(second, writes)
	c.WaitConverged(ctx)

	for i := range c.Size() {
		id := c.Node(i).ID()
		mfs := scrapeMetrics(t, c.URL(i)+"/metrics")
		// Every wisp_ series is this node's; the process-wide go_ and
		// process_ ones carry no node label.
		for name, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got, ok := label(m, "node")
				if strings.HasPrefix(name, "wisp_") && got != id || !strings.HasPrefix(name, "wisp_") && ok {
					t.Errorf("node %s serves %s{node=%q}", id, name, got)
				}
			}
		}
		if mfs["go_goroutines"] == nil {
			t.Errorf("node %s: no go_goroutines", id)
		}

		bi := mfs["wisp_build_info"].GetMetric()
		if len(bi) != 1 || bi[0].GetGauge().GetValue() != 1 {
			t.Errorf("node %s: wisp_build_info %v; want one series of value 1", id, bi)
		} else if v, _ := label(bi[0], "goversion"); v != runtime.Version() {
			t.Errorf("node %s: wisp_build_info goversion %q; want %q", id, v, runtime.Version())
		} else if _, ok := label(bi[0], "version"); !ok {
			t.Errorf("node %s: wisp_build_info has no version label", id)
		} else if _, ok := label(bi[0], "revision"); !ok {
			t.Errorf("node %s: wisp_build_info has no revision label", id)
		}

		v := func(name string) float64 {
			t.Helper()
			for _, m := range mfs[name].GetMetric() {
				if s, ok := label(m, "shard"); ok && s != "0" {
					continue
				}
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				case m.GetHistogram() != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
			t.Errorf("node %s: no %s", id, name)
			return -1
		}
		// Every replica saw the first leader and the second.
		if got := v("wisp_raft_leader_changes_seen_total"); got < 2 {
			t.Errorf("node %s: leader changes seen %v; want >= 2", id, got)
		}
		if got := v("wisp_raft_proposals_applied_total"); got < 2*writes {
			t.Errorf("node %s: proposals applied %v; want >= %d", id, got, 2*writes)
		}
		committed, failed := v("wisp_raft_proposals_committed_total"), v("wisp_raft_proposals_failed_total")
		if (i == first || i == second) && committed < writes || failed != 0 {
			t.Errorf("node %s (leader first %v, second %v): proposals committed %v, failed %v; want >= %d, 0",
				id, i == first, i == second, committed, failed, writes)
		}
		if got := v("wisp_raft_proposals_pending"); got != 0 {
			t.Errorf("node %s: proposals pending %v; want 0", id, got)
		}
		if got := v("wisp_raft_has_leader"); got != 1 {
			t.Errorf("node %s: has leader %v; want 1", id, got)
		}
		if got := v("wisp_raft_apply_lag_entries"); got < 0 || got > 2*writes {
			t.Errorf("node %s: apply lag %v entries; want 0 to %d", id, got, 2*writes)
		}
		contact := v("wisp_raft_last_contact_seconds")
		if i == second && contact != 0 || contact < 0 || contact > 5 {
			t.Errorf("node %s (leader %v): last contact %v s; want 0 on the leader, at most 5 s", id, i == second, contact)
		}
		if got := v("wisp_raftlog_fsync_duration_seconds"); got <= 0 {
			t.Errorf("node %s: %v fsyncs observed; want > 0", id, got)
		}
		if got := v("wisp_raftlog_commit_duration_seconds"); got <= 0 {
			t.Errorf("node %s: %v commits observed; want > 0", id, got)
		}
		for _, name := range []string{"wisp_raft_snapshot_persist_duration_seconds", "wisp_raft_snapshot_restore_duration_seconds", "wisp_raft_snapshot_failures_total"} {
			v(name) // present, even at 0
		}
	}
}

// TestMetricsHandlerWithRegisterer: a node given a Registerer puts its
// series there (with wisp_build_info, labelled by node) and keeps no
// registry of its own to serve.
func TestMetricsHandlerWithRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := nodetest.Start(t, nodetest.Options{Nodes: 1, Tune: func(cfg *node.Config) { cfg.Registerer = reg }})
	rec := &statusRecorder{header: http.Header{}}
	c.Node(0).MetricsHandler().ServeHTTP(rec, &http.Request{Method: "GET"})
	if rec.code != http.StatusNotFound {
		t.Errorf("MetricsHandler with a Registerer: status %d; want 404", rec.code)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "wisp_build_info" {
			node, _ := label(mf.GetMetric()[0], "node")
			found = node == "n1"
		}
	}
	if !found {
		t.Error("the Registerer has no wisp_build_info{node=\"n1\"}")
	}
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.code = code }

// scrapeMetrics GETs url in Prometheus's delimited protobuf format and
// returns the metric families by name.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "protobuf") {
		t.Fatalf("GET %s: %s, Content-Type %q; want 200, protobuf", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	out := map[string]*dto.MetricFamily{}
	r := bufio.NewReader(resp.Body)
	for {
		mf := &dto.MetricFamily{}
		if err := protodelim.UnmarshalFrom(r, mf); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
		out[mf.GetName()] = mf
	}
}

// label returns m's value for the label name and whether m has it.
func label(m *dto.Metric, name string) (string, bool) {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue(), true
		}
	}
	return "", false
}
