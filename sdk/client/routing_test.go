package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/ring"
)

// fakeCluster is a few in-process nodes over one shared store, each serving
// ShardMap, Get, Put and Scan: enough to see where the client sends its
// calls, not to test Wisp (the e2e tests do that). Every node serves every
// key; for a key of a shard it does not lead it answers like a forwarding
// node, with Wisp-Leader naming the leader, and counts the call as
// forwarded. Every KV response carries Wisp-Epoch.
type fakeCluster struct {
	nodes []*fakeNode

	mu sync.Mutex
	// The layout. guarded by mu.
	ring    *ring.KeyRing
	leaders []int  // node index per shard
	epoch   uint64 // what ShardMap reports
	// headerEpoch is what Wisp-Epoch says; normally epoch. guarded by mu.
	headerEpoch uint64
	// hook, if set, runs before a keyed call on node for shard; a non-nil
	// error is returned instead. guarded by mu.
	hook func(node, shard int) error
	data map[string][]byte // guarded by mu
	// version is the last version handed out. guarded by mu.
	version uint64
}

// fakeNode is one node of a fakeCluster.
type fakeNode struct {
	wispv1connect.UnimplementedKVServiceHandler
	wispv1connect.UnimplementedClusterServiceHandler
	c   *fakeCluster
	i   int
	url string
	srv *httptest.Server

	keyed     atomic.Int64 // keyed calls received
	forwarded atomic.Int64 // keyed calls for a shard it does not lead
	unkeyed   atomic.Int64 // Scan calls received
	mapCalls  atomic.Int64
}

// newFakeCluster starts n nodes and a layout of shards shards, shard s led
// by node s % n, at epoch 1.
func newFakeCluster(t *testing.T, n, shards int) *fakeCluster {
	t.Helper()
	c := &fakeCluster{data: make(map[string][]byte)}
	c.relayout(shards, func(s int) int { return s % n })
	for i := range n {
		fn := &fakeNode{c: c, i: i}
		mux := http.NewServeMux()
		opt := connect.WithInterceptors(connect.UnaryInterceptorFunc(fn.intercept))
		mux.Handle(wispv1connect.NewKVServiceHandler(fn, opt))
		mux.Handle(wispv1connect.NewClusterServiceHandler(fn, opt))
		fn.srv = httptest.NewServer(mux)
		fn.url = fn.srv.URL
		t.Cleanup(fn.srv.Close)
		c.nodes = append(c.nodes, fn)
	}
	return c
}

// relayout installs a layout of shards shards, shard s led by node
// leader(s), at the next epoch.
func (c *fakeCluster) relayout(shards int, leader func(s int) int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = ring.NewKeyRing(shards, 64)
	c.leaders = make([]int, shards)
	for s := range shards {
		c.leaders[s] = leader(s)
	}
	c.epoch++
	c.headerEpoch = c.epoch
}

// setLeader moves the leadership of shard to node without changing the
// epoch, as an election does.
func (c *fakeCluster) setLeader(shard, node int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaders[shard] = node
}

func (c *fakeCluster) setHook(hook func(node, shard int) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = hook
}

// shardOf returns key's shard and its leader under the current layout.
func (c *fakeCluster) shardOf(key string) (shard, leader int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.ring.Shard([]byte(key))
	return s, c.leaders[s]
}

// keyFor returns a key, with prefix, of a shard led by node, and its shard.
func (c *fakeCluster) keyFor(t *testing.T, prefix string, node int) (string, int) {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("%s%d", prefix, i)
		if s, l := c.shardOf(k); l == node {
			return k, s
		}
	}
	t.Fatalf("no key led by node %d", node)
	return "", 0
}

// keyInShard returns a key, with prefix, of shard.
func (c *fakeCluster) keyInShard(t *testing.T, prefix string, shard int) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("%s%d", prefix, i)
		if s, _ := c.shardOf(k); s == shard {
			return k
		}
	}
	t.Fatalf("no key in shard %d", shard)
	return ""
}

// counts returns the keyed and forwarded calls summed over the nodes.
func (c *fakeCluster) counts() (keyed, forwarded int64) {
	for _, n := range c.nodes {
		keyed += n.keyed.Load()
		forwarded += n.forwarded.Load()
	}
	return keyed, forwarded
}

// mapCalls returns the ShardMap calls summed over the nodes.
func (c *fakeCluster) mapCalls() (n int64) {
	for _, fn := range c.nodes {
		n += fn.mapCalls.Load()
	}
	return n
}

func (n *fakeNode) intercept(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		k, keyed := req.Any().(interface{ GetKey() []byte })
		if !keyed {
			return next(ctx, req)
		}
		n.keyed.Add(1)
		c := n.c
		c.mu.Lock()
		shard := c.ring.Shard(k.GetKey())
		leader, hook, epoch := c.leaders[shard], c.hook, c.headerEpoch
		c.mu.Unlock()
		if hook != nil {
			if err := hook(n.i, shard); err != nil {
				return nil, err
			}
		}
		resp, err := next(ctx, req)
		if err != nil {
			return nil, err
		}
		resp.Header().Set("Wisp-Epoch", strconv.FormatUint(epoch, 10))
		if leader != n.i {
			n.forwarded.Add(1)
			resp.Header().Set("Wisp-Leader", c.nodes[leader].url)
		}
		return resp, nil
	}
}

func (n *fakeNode) ShardMap(context.Context, *connect.Request[wispv1.ShardMapRequest]) (*connect.Response[wispv1.ShardMapResponse], error) {
	n.mapCalls.Add(1)
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	res := &wispv1.ShardMapResponse{
		Epoch:             c.epoch,
		ShardCount:        uint32(c.ring.Shards()),
		KeyVnodes:         uint32(c.ring.Vnodes()),
		ReplicationFactor: 1,
	}
	for i, fn := range c.nodes {
		res.Nodes = append(res.Nodes, &wispv1.ShardMapNode{Id: nodeID(i), Url: fn.url})
	}
	for s, l := range c.leaders {
		res.Shards = append(res.Shards, &wispv1.ShardPlacement{
			Id: uint32(s), Replicas: []string{nodeID(l)}, LeaderId: nodeID(l), PreferredLeaderId: nodeID(l),
		})
	}
	return connect.NewResponse(res), nil
}

func nodeID(i int) string { return fmt.Sprintf("n%d", i+1) }

func (n *fakeNode) Get(_ context.Context, req *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	v, ok := n.c.data[string(req.Msg.GetKey())]
	return connect.NewResponse(&wispv1.GetResponse{Found: ok, Value: v}), nil
}

func (n *fakeNode) Put(_ context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	n.c.version++
	n.c.data[string(req.Msg.GetKey())] = req.Msg.GetValue()
	return connect.NewResponse(&wispv1.PutResponse{Version: n.c.version}), nil
}

func (n *fakeNode) Scan(context.Context, *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
	n.unkeyed.Add(1)
	return connect.NewResponse(&wispv1.ScanResponse{}), nil
}

// waitMap makes a keyed call, which starts the background fetch of the
// shard map, and waits until the client holds the map at epoch.
func waitMap(t *testing.T, c *client.Client, fc *fakeCluster, epoch uint64) {
	t.Helper()
	// A key the base URL leads, so that no forwarded answer moves the
	// preferred endpoint before the map lands.
	key, _ := fc.keyFor(t, "warm/", 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, err := c.Get(t.Context(), key); err != nil {
			t.Fatalf("Get(%q) = %v", key, err)
		}
		if e, ok := client.MapEpoch(c); ok && e == epoch {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shard map at epoch %d within 5s", epoch)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRoutingSendsKeysToLeaders(t *testing.T) {
	fc := newFakeCluster(t, 5, 16)
	c := newClient(t, fc.nodes[0].url)
	waitMap(t, c, fc, 1)
	keyed0, fwd0 := fc.counts()
	const n = 200
	want := make([]int64, len(fc.nodes))
	for i, fn := range fc.nodes {
		want[i] = fn.keyed.Load()
	}
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if _, err := c.Put(t.Context(), key, []byte(key)); err != nil {
			t.Fatalf("Put(%q) = %v", key, err)
		}
		_, l := fc.shardOf(key)
		want[l]++
	}
	keyed, fwd := fc.counts()
	if keyed-keyed0 != n || fwd != fwd0 {
		t.Errorf("%d puts: %d keyed calls, %d forwarded; want %d and 0", n, keyed-keyed0, fwd-fwd0, n)
	}
	for i, fn := range fc.nodes {
		if got := fn.keyed.Load(); got != want[i] {
			t.Errorf("node %d: %d keyed calls; want %d", i, got, want[i])
		}
	}
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if item, found, err := c.Get(t.Context(), key, client.WithConsistency(client.Stale)); err != nil || !found || string(item.Value) != key {
			t.Fatalf("Get(%q) = %q, %v, %v; want %q", key, item.Value, found, err, key)
		}
	}
	if _, fwd = fc.counts(); fwd != fwd0 {
		t.Errorf("gets: %d forwarded; want 0", fwd-fwd0)
	}
	// Scan is not keyed: it goes to the base URL.
	if _, err := c.Scan(t.Context(), client.ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := fc.nodes[0].unkeyed.Load(); got != 1 {
		t.Errorf("node 0 saw %d scans; want 1", got)
	}
	if got := fc.mapCalls(); got != 1 || fc.nodes[0].mapCalls.Load() != 1 {
		t.Errorf("ShardMap called %d times (%d on the base URL); want once, there", got, fc.nodes[0].mapCalls.Load())
	}
}

func TestRoutingOff(t *testing.T) {
	fc := newFakeCluster(t, 5, 16)
	c := newClient(t, fc.nodes[0].url, client.WithRouting(false))
	const n = 100
	var notLed int64
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if _, err := c.Put(t.Context(), key, nil); err != nil {
			t.Fatal(err)
		}
		if _, l := fc.shardOf(key); l != 0 {
			notLed++
		}
	}
	// The first forwarded answer makes its leader preferred, as before
	// routing; after that, the calls go where it is.
	keyed, _ := fc.counts()
	if keyed != n || fc.nodes[0].mapCalls.Load() != 0 {
		t.Errorf("keyed calls %d, ShardMap calls %d; want %d and 0", keyed, fc.nodes[0].mapCalls.Load(), n)
	}
	if _, fwd := fc.counts(); fwd < notLed/2 {
		t.Errorf("forwarded %d of %d; want most of the %d not led by the first node", fwd, n, notLed)
	}
}

// TestRoutingLearnsLeaderPerShard: a forwarded answer (Wisp-Leader) moves
// only its shard, not the other shards nor the unkeyed calls.
func TestRoutingLearnsLeaderPerShard(t *testing.T) {
	fc := newFakeCluster(t, 3, 6)
	c := newClient(t, fc.nodes[0].url)
	waitMap(t, c, fc, 1)
	key, shard := fc.keyFor(t, "a/", 1)
	other, _ := fc.keyFor(t, "b/", 2)
	fc.setLeader(shard, 2) // an election the map does not show

	for range 3 {
		if _, err := c.Put(t.Context(), key, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := fc.nodes[1].keyed.Load(); got != 1 {
		t.Errorf("the old leader saw %d keyed calls; want 1 (the first put, forwarded)", got)
	}
	before := fc.nodes[2].keyed.Load()
	if _, err := c.Put(t.Context(), other, nil); err != nil {
		t.Fatal(err)
	}
	if got := fc.nodes[2].keyed.Load() - before; got != 1 {
		t.Errorf("a key of another shard led by node 2: %d calls there; want 1", got)
	}
	if _, err := c.Scan(t.Context(), client.ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := fc.nodes[0].unkeyed.Load(); got != 1 {
		t.Errorf("Scan went to node 0 %d times; want 1 (the preferred endpoint stays)", got)
	}
}

// TestRoutingFollowsLeaderHintPerShard: a LeaderHint moves its shard at
// once, without sleeping, and only that shard.
func TestRoutingFollowsLeaderHintPerShard(t *testing.T) {
	fc := newFakeCluster(t, 3, 6)
	// With a 30s backoff, a sleep would overrun the test's deadline.
	c := newClient(t, fc.nodes[0].url, client.WithBackoff(30*time.Second, 30*time.Second))
	waitMap(t, c, fc, 1)
	key, shard := fc.keyFor(t, "a/", 1)
	other := fc.keyInShard(t, "b/", (shard+3)%6) // node 1 leads shards 1 and 4
	fc.setLeader(shard, 2)
	fc.setHook(func(node, s int) error {
		if node == 1 && s == shard {
			return hintErr(fc.nodes[2].url, shard)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	before1, before2 := fc.nodes[1].keyed.Load(), fc.nodes[2].keyed.Load()
	for range 3 {
		if _, err := c.Put(ctx, key, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d1, d2 := fc.nodes[1].keyed.Load()-before1, fc.nodes[2].keyed.Load()-before2; d1 != 1 || d2 != 3 {
		t.Errorf("old leader saw %d calls and new %d; want 1 (the hint) and 3", d1, d2)
	}
	before1 = fc.nodes[1].keyed.Load()
	if _, err := c.Put(ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	if d1 := fc.nodes[1].keyed.Load() - before1; d1 != 1 {
		t.Errorf("a key of another shard led by node 1: %d calls there; want 1", d1)
	}
	if _, fwd := fc.counts(); fwd != 0 {
		t.Errorf("%d calls forwarded; want 0", fwd)
	}
}

func hintErr(url string, shard int) error {
	err := connect.NewError(connect.CodeUnavailable, errors.New("not the leader"))
	d, derr := connect.NewErrorDetail(&wispv1.LeaderHint{Url: url, Shard: uint32(shard)})
	if derr != nil {
		panic(derr)
	}
	err.AddDetail(d)
	return err
}

// TestRoutingForgetsDeadLeader: a transport error to a shard's leader sends
// the call (a read, retried) to the base URL, whose forwarded answer names
// the new leader.
func TestRoutingForgetsDeadLeader(t *testing.T) {
	fc := newFakeCluster(t, 3, 6)
	c := newClient(t, fc.nodes[0].url, fastRetries)
	waitMap(t, c, fc, 1)
	key, shard := fc.keyFor(t, "a/", 1)
	fc.nodes[1].srv.Close()
	fc.setLeader(shard, 2)
	before0, before2 := fc.nodes[0].keyed.Load(), fc.nodes[2].keyed.Load()
	for range 3 {
		if _, _, err := c.Get(t.Context(), key); err != nil {
			t.Fatalf("Get after the leader died = %v", err)
		}
	}
	// Get 1: dead leader, then node 0 (forwards, names node 2); Gets 2, 3:
	// node 2.
	if d0, d2 := fc.nodes[0].keyed.Load()-before0, fc.nodes[2].keyed.Load()-before2; d0 != 1 || d2 != 2 {
		t.Errorf("node 0 saw %d calls and node 2 %d; want 1 and 2", d0, d2)
	}
}

// TestRoutingRefreshesOnEpoch: a response at another epoch makes the client
// fetch the map again; here the shard count changes, which only a new map
// can tell.
func TestRoutingRefreshesOnEpoch(t *testing.T) {
	fc := newFakeCluster(t, 3, 6)
	c := newClient(t, fc.nodes[0].url)
	waitMap(t, c, fc, 1)
	fc.relayout(8, func(s int) int { return (s + 1) % 3 })
	// Any keyed answer carries the new epoch.
	waitMap(t, c, fc, 2)
	if got := fc.nodes[0].mapCalls.Load(); got != 2 {
		t.Errorf("ShardMap called %d times; want 2", got)
	}
	_, fwd0 := fc.counts()
	for i := range 50 {
		if _, err := c.Put(t.Context(), fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, fwd := fc.counts(); fwd != fwd0 {
		t.Errorf("after the refresh, %d of 50 puts forwarded; want 0", fwd-fwd0)
	}
}

// TestRoutingRefreshRateLimited: nodes that keep reporting an epoch the map
// never reaches cause a fetch per mapRefreshInterval (500ms) at most.
func TestRoutingRefreshRateLimited(t *testing.T) {
	fc := newFakeCluster(t, 3, 6)
	fc.mu.Lock()
	fc.headerEpoch = 99
	fc.mu.Unlock()
	c := newClient(t, fc.nodes[0].url)
	const d = 1200 * time.Millisecond
	start := time.Now()
	var calls int
	for time.Since(start) < d {
		if _, _, err := c.Get(t.Context(), fmt.Sprintf("k%d", calls)); err != nil {
			t.Fatal(err)
		}
		calls++
	}
	// Fetches may start at 0, 0.5+ and 1.0+ seconds, each at the
	// preferred endpoint of the moment.
	if got := fc.mapCalls(); got < 2 || got > 3 {
		t.Errorf("%d calls in %v at a mismatched epoch made %d ShardMap calls; want 2 or 3", calls, d, got)
	}
}

// TestRoutingOldServer: a server without ShardMap (Unimplemented) gets
// every call, as before routing, and one ShardMap call, not one per call.
func TestRoutingOldServer(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.URL)
	for i := range 50 {
		key := fmt.Sprintf("k%d", i)
		if _, err := c.Put(t.Context(), key, nil); err != nil {
			t.Fatal(err)
		}
		for i == 0 && s.mapCalls.Load() == 0 {
			time.Sleep(time.Millisecond) // the background fetch
		}
	}
	if calls, maps := s.calls.Load(), s.mapCalls.Load(); calls != 50 || maps != 1 {
		t.Errorf("server saw %d calls and %d ShardMap calls; want 50 and 1", calls, maps)
	}
}
