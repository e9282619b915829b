package main

import (
	"fmt"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/node/nodetest"
	"github.com/wisp-db/wisp/shards/ring"
)

// TestE2EShards runs cluster ring and cluster status against 16 shards on
// 5 nodes: every shard led, 48 replicas and 16 leaders over the nodes,
// within the placement's caps, and status agreeing on the counts.
func TestE2EShards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 5-node cluster")
	}
	const nodes, shards, replicas = 5, 16, 3
	c := nodetest.Start(t, nodetest.Options{Nodes: nodes, Shards: shards})
	ep := "--endpoint=" + c.URL(nodes-1)

	// One key per shard first, through a node that hosts only some of the
	// shards: forwarding the writes teaches it the other shards' leaders,
	// which its shard map reports only once it has learnt them.
	kr := ring.NewKeyRing(shards, 0)
	perShard := make(map[int]bool)
	written := 0
	for i := 0; len(perShard) < shards; i++ {
		key := fmt.Sprintf("key/%d", i)
		perShard[kr.Shard([]byte(key))] = true
		if r := wisp(t, ep, "kv", "put", key, "v"); r.code != 0 {
			t.Fatalf("put %s: exit %d, stderr %q", key, r.code, r.stderr)
		}
		written++
	}

	v := waitRing(t, ep, shards)
	if len(v.Nodes) != nodes || v.ReplicationFactor != replicas {
		t.Errorf("cluster ring: %d nodes, %d replicas per shard; want %d, %d", len(v.Nodes), v.ReplicationFactor, nodes, replicas)
	}
	checkRingSums(t, v, replicas, shards)
	preferred := 0
	for _, n := range v.Nodes {
		preferred += n.PreferredLeaders
		if n.PreferredLeaders > v.Balance.PreferredLeaders.Cap {
			t.Errorf("cluster ring: node %s is the preferred leader of %d shards; want at most %d",
				n.ID, n.PreferredLeaders, v.Balance.PreferredLeaders.Cap)
		}
	}
	if preferred != shards {
		t.Errorf("cluster ring: %d preferred leaders; want %d", preferred, shards)
	}
	// ceil(1.1 × 3 × 16 / 5) and ceil(1.1 × 16 / 5).
	if v.Balance.Replicas.Cap != 11 || v.Balance.PreferredLeaders.Cap != 4 {
		t.Errorf("cluster ring: caps %d replicas, %d leaders; want 11, 4", v.Balance.Replicas.Cap, v.Balance.PreferredLeaders.Cap)
	}

	r := wisp(t, ep, "cluster", "ring")
	if n := len(regexp.MustCompile(`(?m)^\d+\s+\d+\.\d\d%\s+n\d n\d n\d\s+n\d\s+n\d`).FindAllString(r.stdout, -1)); r.code != 0 || n != shards {
		t.Errorf("cluster ring = exit %d, %d shard lines with a leader; want %d:\n%s", r.code, n, shards, r.stdout)
	}

	r = wisp(t, ep, "--output=json", "cluster", "status")
	var st wispv1.StatusResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("cluster status -o json = %q: %v", r.stdout, err)
	}
	var sumReplicas, sumLeaders uint32
	for _, n := range st.GetNodes() {
		sumReplicas += n.GetReplicas()
		sumLeaders += n.GetLeaders()
	}
	var sumKeys uint64
	for _, s := range st.GetShards() {
		sumKeys += s.GetKeyCount()
		if s.GetKeyCount() == 0 {
			t.Errorf("cluster status: shard %d has no keys; want one or more", s.GetId())
		}
	}
	if len(st.GetNodes()) != nodes || len(st.GetShards()) != shards || sumReplicas != replicas*shards ||
		sumLeaders != shards || sumKeys != uint64(written) {
		t.Errorf("cluster status: %d nodes with %d replicas and %d leaders, %d shards with %d keys; want %d, %d, %d, %d, %d",
			len(st.GetNodes()), sumReplicas, sumLeaders, len(st.GetShards()), sumKeys,
			nodes, replicas*shards, shards, shards, written)
	}
	r = wisp(t, ep, "cluster", "status")
	if n := len(regexp.MustCompile(`(?m)^\d+\s+n\d\s+(n\d\*? ?){3}\s+=\s+\d+\s`).FindAllString(r.stdout, -1)); r.code != 0 || n != shards {
		t.Errorf("cluster status = exit %d, %d shard lines with a leader and voters where the placement wants them; want %d:\n%s", r.code, n, shards, r.stdout)
	}
}
