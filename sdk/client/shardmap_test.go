package client

import (
	"fmt"
	"strings"
	"testing"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// mapResponse is a valid ShardMapResponse: shards shards over nodes nodes
// (n1.. at http://n1.test..), shard s led by node s % nodes.
func mapResponse(shards, nodes int) *wispv1.ShardMapResponse {
	res := &wispv1.ShardMapResponse{Epoch: 7, ShardCount: uint32(shards), KeyVnodes: 64, ReplicationFactor: 1}
	for i := range nodes {
		res.Nodes = append(res.Nodes, &wispv1.ShardMapNode{Id: fmt.Sprintf("n%d", i+1), Url: fmt.Sprintf("http://n%d.test", i+1)})
	}
	for s := range shards {
		id := fmt.Sprintf("n%d", s%nodes+1)
		res.Shards = append(res.Shards, &wispv1.ShardPlacement{Id: uint32(s), Replicas: []string{id}, LeaderId: id, PreferredLeaderId: id})
	}
	return res
}

func TestNewShardMapRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*wispv1.ShardMapResponse)
		want string
	}{
		{"no shards", func(r *wispv1.ShardMapResponse) { r.ShardCount, r.Shards = 0, nil }, "tokens"},
		{"too many tokens", func(r *wispv1.ShardMapResponse) { r.KeyVnodes = maxMapTokens/4 + 1 }, "tokens"},
		{"huge vnodes", func(r *wispv1.ShardMapResponse) { r.KeyVnodes = 1<<32 - 1 }, "tokens"},
		{"shards missing", func(r *wispv1.ShardMapResponse) { r.Shards = r.Shards[:3] }, "listed"},
		{"shards out of order", func(r *wispv1.ShardMapResponse) { r.Shards[1], r.Shards[2] = r.Shards[2], r.Shards[1] }, "at index"},
		{"too many nodes", func(r *wispv1.ShardMapResponse) {
			r.Nodes = mapResponse(1, maxMapNodes+1).Nodes
		}, "nodes"},
	}
	c, err := New("http://base.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mapResponse(4, 3)
			tc.edit(res)
			if m, err := c.newShardMap(res, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newShardMap = %v, %v; want an error about %q", m, err, tc.want)
			}
		})
	}
}

func TestNewShardMap(t *testing.T) {
	c, err := New("http://base.test")
	if err != nil {
		t.Fatal(err)
	}
	res := mapResponse(4, 3)
	res.Shards[1].LeaderId = ""          // unknown: the preferred leader
	res.Shards[2].LeaderId = "n9"        // not a listed node
	res.Nodes[0].Url = "ftp://n1.test/"  // unusable: shards 0 and 3
	res.Nodes[2].Url = "http://n3.test/" // normalized
	m, err := c.newShardMap(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range m.leaders {
		u := "-"
		if ep := m.leaders[i].Load(); ep != nil {
			u = ep.url
		}
		got = append(got, u)
	}
	if want := "- http://n2.test - -"; strings.Join(got, " ") != want {
		t.Errorf("leaders = %v; want %v", got, want)
	}
	if m.epoch != 7 || m.ring.Shards() != 4 || m.ring.Vnodes() != 64 {
		t.Errorf("map = epoch %d, %d shards × %d vnodes; want 7, 4 × 64", m.epoch, m.ring.Shards(), m.ring.Vnodes())
	}
	// The same layout reuses the ring; another builds a new one.
	if m2, err := c.newShardMap(mapResponse(4, 3), m); err != nil || m2.ring != m.ring {
		t.Errorf("same shards and vnodes: ring reused = %v (%v); want true", err == nil && m2.ring == m.ring, err)
	}
	if m3, err := c.newShardMap(mapResponse(5, 3), m); err != nil || m3.ring == m.ring || m3.ring.Shards() != 5 {
		t.Errorf("another shard count: %v, %v; want a new ring of 5 shards", m3, err)
	}
	// vnodes 0 means the ring's default.
	res = mapResponse(2, 2)
	res.KeyVnodes = 0
	if m, err := c.newShardMap(res, nil); err != nil || m.ring.Vnodes() != 1024 {
		t.Errorf("vnodes 0: %v, %v; want the default, 1024", m, err)
	}
}

// TestRouteDoesNotAllocate pins the hot path of a keyed call: from key to
// endpoint, with a map and a known leader, nothing is allocated.
func TestRouteDoesNotAllocate(t *testing.T) {
	c, m := routedClient(t)
	key := []byte("user/12345/profile")
	ep, rt := c.route(key)
	if rt.m != m || ep != m.leaders[rt.shard].Load() || ep == nil {
		t.Fatalf("route = %v, %+v; want the shard's leader", ep, rt)
	}
	if n := testing.AllocsPerRun(100, func() { c.route(key) }); n != 0 {
		t.Errorf("route allocates %v times per call; want 0", n)
	}
	// Unknown leader: the preferred endpoint.
	m.leaders[rt.shard].Store(nil)
	if ep, _ := c.route(key); ep != c.current() {
		t.Errorf("route with no leader = %v; want the preferred endpoint", ep.url)
	}
}

// routedClient returns a Client holding a 16-shard map over 5 nodes.
func routedClient(tb testing.TB) (*Client, *shardMap) {
	c, err := New("http://base.test")
	if err != nil {
		tb.Fatal(err)
	}
	res := mapResponse(16, 5)
	res.KeyVnodes = 0 // the default, as a real cluster
	m, err := c.newShardMap(res, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c.shards.Store(m)
	return c, m
}

// BenchmarkRoute measures the hot path of a keyed call, key to endpoint, at
// 16 shards × 1,024 vnodes.
func BenchmarkRoute(b *testing.B) {
	c, _ := routedClient(b)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user/%d/profile", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.route(keys[i%len(keys)])
		i++
	}
}
