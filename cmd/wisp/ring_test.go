package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

func TestClusterRing(t *testing.T) {
	s := newFakeServer(t, nil)
	r := wisp(t, "--endpoint="+s.URL, "cluster", "ring")
	if r.code != 0 {
		t.Fatalf("cluster ring: exit %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "ring.txt", r.stdout)

	r = wisp(t, "--endpoint="+s.URL, "--output=json", "cluster", "ring")
	if r.code != 0 {
		t.Fatalf("cluster ring -o json: exit %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "ring.json", r.stdout)
	var v ringView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("cluster ring -o json = %q: %v", r.stdout, err)
	}
}

func TestClusterRingUnreachable(t *testing.T) {
	r := wisp(t, "--endpoint=http://127.0.0.1:1", "--timeout=2s", "cluster", "ring")
	if r.code != exitFailure || !strings.HasPrefix(r.stderr, "Error: shard map: unavailable") || r.stdout != "" {
		t.Errorf("cluster ring against nothing = exit %d, stdout %q, stderr %q; want 1 and Error: shard map: unavailable...",
			r.code, r.stdout, r.stderr)
	}
}

// TestRingView checks the derived figures of testShardMap against sums and
// caps worked out by hand.
func TestRingView(t *testing.T) {
	v, err := newRingView(testShardMap())
	if err != nil {
		t.Fatal(err)
	}
	var replicas, preferred, leaders int
	for _, n := range v.Nodes {
		replicas += n.Replicas
		preferred += n.PreferredLeaders
		leaders += n.Leaders
	}
	if replicas != 48 || preferred != 16 || leaders != 15 {
		t.Errorf("node sums: %d replicas, %d preferred leaders, %d leaders; want 48, 16, 15", replicas, preferred, leaders)
	}
	var share float64
	for _, s := range v.Shards {
		share += *s.KeyShare
	}
	b := v.Balance
	tests := []struct {
		name      string
		got, want float64
	}{
		{"sum of key shares", share, 1},
		{"key share mean", b.KeyShare.Mean, 1.0 / 16},
		// shards/ring/doc.go: max(share)·S = 1.040 at S = 16, V = 1024.
		{"key share max/mean", math.Round(1000*b.KeyShare.MaxOverMean) / 1000, 1.040},
		{"replicas max", b.Replicas.Max, 11},
		{"replicas mean", b.Replicas.Mean, 9.6},
		{"replicas cap", float64(b.Replicas.Cap), 11}, // ceil(1.1 × 3 × 16 / 5) = ceil(10.56)
		{"preferred leaders max", b.PreferredLeaders.Max, 4},
		{"preferred leaders cap", float64(b.PreferredLeaders.Cap), 4}, // ceil(1.1 × 16 / 5) = ceil(3.52)
		{"leaders max", b.Leaders.Max, 4},
		{"leaders mean", b.Leaders.Mean, 3},
		{"leaders cap", float64(b.Leaders.Cap), 0},
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v; want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadCap(t *testing.T) {
	tests := []struct{ total, nodes, want int }{
		{48, 5, 11},   // 10.56
		{16, 5, 4},    // 3.52
		{48, 10, 6},   // 5.28
		{192, 10, 22}, // 21.12
		{30, 3, 11},   // 11.0 exactly
		{3, 3, 2},     // 1.1
		{1, 1, 1},     // c is at most N: 1 × 1 / 1
	}
	for _, tc := range tests {
		if got := loadCap(tc.total, tc.nodes); got != tc.want {
			t.Errorf("loadCap(%d, %d) = %d; want %d", tc.total, tc.nodes, got, tc.want)
		}
	}
}

// TestRingSingleShard renders a shard map as a one-shard server sends it:
// no epoch, zones or preferred leader, and a shard naming a node that is
// not a member.
func TestRingSingleShard(t *testing.T) {
	m := &wispv1.ShardMapResponse{
		ShardCount: 1, KeyVnodes: 1024, ReplicationFactor: 3,
		Nodes: []*wispv1.ShardMapNode{
			{Id: "n1", Url: testURL(0)}, {Id: "n2", Url: testURL(1)}, {Id: "n3", Url: testURL(2)},
		},
		Shards: []*wispv1.ShardPlacement{{Id: 0, Replicas: []string{"n1", "n2", "n9"}, LeaderId: "n2"}},
	}
	v, err := newRingView(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeRing(&buf, v); err != nil {
		t.Fatal(err)
	}
	golden(t, "ring-single.txt", buf.String())
}

func TestRingViewErrors(t *testing.T) {
	for _, m := range []*wispv1.ShardMapResponse{
		{},
		{ShardCount: 1 << 15, KeyVnodes: 1024},
	} {
		if _, err := newRingView(m); err == nil || !strings.HasPrefix(err.Error(), "shard map: ") {
			t.Errorf("newRingView(%v) = %v; want a shard map error", m, err)
		}
	}
}
