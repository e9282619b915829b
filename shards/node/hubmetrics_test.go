package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestHubMetrics: every node's hub carries its groups' Raft traffic and
// says so in wisp_raft_hub_frames_total and wisp_raft_hub_writes_total,
// with no more writes than frames.
func TestHubMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := nodetest.Start(t, nodetest.Options{Shards: 4, Tune: func(cfg *node.Config) { cfg.Registerer = reg }})
	kv := wispv1connect.NewKVServiceClient(h2cClient(), c.URL(c.WaitLeader(5*time.Second)))
	for i := range 40 {
		if _, err := kv.Put(context.Background(), connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	frames, writes := map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		var into map[string]float64
		switch mf.GetName() {
		case "wisp_raft_hub_frames_total":
			into = frames
		case "wisp_raft_hub_writes_total":
			into = writes
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "node" {
					into[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	for i := range c.Size() {
		id := fmt.Sprintf("n%d", i+1)
		if frames[id] == 0 || writes[id] == 0 || writes[id] > frames[id] {
			t.Errorf("node %s: hub frames %v, writes %v; want both above 0, writes <= frames", id, frames[id], writes[id])
		}
	}
}
