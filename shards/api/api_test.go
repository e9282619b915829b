package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/ring"
)

// These tests drive the API through api.Node alone: two nodes over real
// HTTP on loopback, each with real engines behind a replica that stands in
// for a Raft group (it applies a proposal at once, and refuses what its
// leader must serve when it does not lead). The Raft side is covered by
// shards/node's tests; here what is checked is the edge: validation,
// routing, forwarding, merging and the codes clients see.

const shards = 2

// replica is one shard's state on one node: an engine and the leader it
// believes in. Safe for concurrent use.
type replica struct {
	self string

	mu     sync.Mutex
	e      *engine.Engine
	index  uint64
	leader string
	fail   error // if set, every call fails with it
}

func (r *replica) Leader() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (r *replica) Propose(_ context.Context, muts []engine.Mutation) ([]engine.MutationResult, int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, 0, r.fail
	}
	if r.leader != r.self {
		return nil, 0, raftgroup.ErrNotLeader
	}
	r.index++
	cmd := &engine.Command{Mutations: muts, NowUnixMs: 1000}
	res := r.e.Apply(r.index, cmd)
	if res.Err != nil {
		return nil, 0, res.Err
	}
	return res.Mutations, cmd.NowUnixMs, nil
}

func (r *replica) Read(_ context.Context, level raftgroup.Consistency, fn func(*engine.Engine)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if level == raftgroup.Linearizable && r.leader != r.self {
		return raftgroup.ErrNotLeader
	}
	fn(r.e)
	return nil
}

func (r *replica) NowUnixMs() int64 { return 1000 }

func (r *replica) Trace(replay.Op, []byte, int) {}

// fakeNode is an api.Node with the replicas it is given.
type fakeNode struct {
	id    string
	keys  *ring.KeyRing
	route *api.Route
	reps  map[int]*replica
}

func (n *fakeNode) ID() string             { return n.id }
func (n *fakeNode) Shards() int            { return shards }
func (n *fakeNode) ShardOf(key []byte) int { return n.keys.Shard(key) }
func (n *fakeNode) Route() *api.Route      { return n.route }
func (n *fakeNode) Replica(id int) api.Replica {
	if r, ok := n.reps[id]; ok {
		return r
	}
	return nil
}
func (n *fakeNode) Health() ([]int, int, int)          { return nil, len(n.reps), 0 }
func (n *fakeNode) MemoryFull(int) string              { return "node test is full" }
func (n *fakeNode) ShardMap() *wispv1.ShardMapResponse { return &wispv1.ShardMapResponse{} }
func (n *fakeNode) Status(context.Context, bool) *wispv1.StatusResponse {
	return &wispv1.StatusResponse{NodeId: n.id, Ready: true}
}
func (n *fakeNode) Settings(context.Context, *int64, *string) (*wispv1.ClusterConfig, *wispv1.ClusterConfig, error) {
	return nil, nil, errors.New("not in this test")
}
func (n *fakeNode) DrainNode(context.Context, string, bool) (uint64, error) {
	return 0, errors.New("not in this test")
}
func (n *fakeNode) RemoveNode(context.Context, string) (uint64, error) {
	return 0, errors.New("not in this test")
}

// The plugin calls record that they were reached (the token check is in
// front of them).
func (n *fakeNode) UploadPlugin(_ context.Context, name, kind string, wasm []byte) (*wispv1.UploadPluginResponse, error) {
	return &wispv1.UploadPluginResponse{Version: 1, Epoch: 8}, nil
}
func (n *fakeNode) ActivatePlugin(context.Context, string, uint32, string) (uint64, error) {
	return 9, nil
}
func (n *fakeNode) DeactivatePlugin(context.Context, string) (uint64, error) { return 10, nil }
func (n *fakeNode) RollbackPlugin(context.Context, string) (uint32, uint64, error) {
	return 1, 11, nil
}
func (n *fakeNode) ListPlugins(context.Context) *wispv1.ListPluginsResponse {
	return &wispv1.ListPluginsResponse{Epoch: 7}
}
func (n *fakeNode) GetPluginModule(context.Context, string, uint32) (*wispv1.GetPluginModuleResponse, error) {
	return nil, errors.New("not in this test")
}
func (n *fakeNode) StartTrace(context.Context, time.Duration, uint32) []string { return []string{n.id} }
func (n *fakeNode) GetTrace(context.Context) *wispv1.GetTraceResponse {
	return &wispv1.GetTraceResponse{}
}

// pair is two nodes: a hosts shard 0 (and leads it) and a follower of
// shard 1, which b hosts and leads.
type pair struct {
	a, b       *fakeNode
	urlA, urlB string
	clientA    wispv1connect.KVServiceClient
}

func newPair(t *testing.T) *pair {
	t.Helper()
	keys := ring.NewKeyRing(shards, ring.DefaultKeyVnodes)
	route := &api.Route{Epoch: 7, EpochText: "7", Shards: []ring.ShardReplicas{
		{Replicas: []string{"a"}, Leader: "a"},
		{Replicas: []string{"a", "b"}, Leader: "b"},
	}, URLs: map[string]string{}}
	p := &pair{
		a: &fakeNode{id: "a", keys: keys, route: route, reps: map[int]*replica{
			0: {self: "a", e: engine.New(), leader: "a"},
			1: {self: "a", e: engine.New(), leader: "b"},
		}},
		b: &fakeNode{id: "b", keys: keys, route: route, reps: map[int]*replica{
			1: {self: "b", e: engine.New(), leader: "b"},
		}},
	}
	serve := func(n *fakeNode) string {
		peers := api.NewPeers(n.id)
		t.Cleanup(peers.Close)
		srv := httptest.NewUnstartedServer(api.New(n, api.Options{Peers: peers}).Handler())
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	p.urlA, p.urlB = serve(p.a), serve(p.b)
	route.URLs["a"], route.URLs["b"] = p.urlA, p.urlB
	p.clientA = wispv1connect.NewKVServiceClient(http.DefaultClient, p.urlA)
	return p
}

// keyOf returns a key of shard s.
func (p *pair) keyOf(t *testing.T, s int, prefix string) []byte {
	t.Helper()
	for i := range 1000 {
		k := []byte(prefix + strings.Repeat("k", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		if p.a.keys.Shard(k) == s {
			return k
		}
	}
	t.Fatalf("no key of shard %d", s)
	return nil
}

func TestForwardToLeader(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	key := p.keyOf(t, 1, "fwd/")

	put, err := p.clientA.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: key, Value: []byte("v1")}))
	if err != nil {
		t.Fatalf("put through a, shard 1 led by b: %v", err)
	}
	if got := put.Header().Get("Wisp-Leader"); got != p.urlB {
		t.Errorf("Wisp-Leader = %q, want b's URL %q", got, p.urlB)
	}
	if got := put.Header().Get("Wisp-Epoch"); got != "7" {
		t.Errorf("Wisp-Epoch = %q, want 7", got)
	}
	if _, ok := p.b.reps[1].e.Get(key, 1000); !ok {
		t.Fatal("the write did not reach b's replica")
	}
	if _, ok := p.a.reps[1].e.Get(key, 1000); ok {
		t.Fatal("a's follower replica applied a write it does not lead")
	}

	// A linearizable read goes to the leader too; a stale one is served by
	// a's own (empty, lagging) replica.
	get, err := p.clientA.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: key}))
	if err != nil || !get.Msg.Found || string(get.Msg.Value) != "v1" {
		t.Fatalf("linearizable get through a = %v, %v; want v1 from b", get, err)
	}
	stale, err := p.clientA.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: key, Consistency: wispv1.Consistency_CONSISTENCY_STALE}))
	if err != nil || stale.Msg.Found {
		t.Fatalf("stale get through a = %v, %v; want a's own replica's answer (not found)", stale, err)
	}
}

// A forwarded request that meets a node that does not lead is refused with
// a hint, not forwarded again.
func TestForwardedOnceWithHint(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	key := p.keyOf(t, 0, "hint/")
	c := wispv1connect.NewKVServiceClient(http.DefaultClient, p.urlB)
	// b holds no replica of shard 0: it forwards to a, which serves it.
	if _, err := c.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: key, Value: []byte("x")})); err != nil {
		t.Fatalf("put through b for shard 0: %v", err)
	}
	// A request marked forwarded that reaches b for shard 0 is refused.
	req := connect.NewRequest(&wispv1.PutRequest{Key: key, Value: []byte("y")})
	req.Header().Set("Wisp-Forwarded", "a")
	_, err := c.Put(ctx, req)
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("forwarded put to a node without the shard = %v, want UNAVAILABLE", err)
	}
}

func TestScanMergesShards(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	var want []string
	for s := range shards {
		for i := range 3 {
			k := p.keyOf(t, s, "scan/"+string(rune('a'+i)))
			want = append(want, string(k))
			if _, err := p.clientA.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: k, Value: k})); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := p.clientA.Scan(ctx, connect.NewRequest(&wispv1.ScanRequest{Prefix: []byte("scan/")}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, it := range res.Msg.Items {
		got = append(got, string(it.Key))
		if i > 0 && bytes.Compare(res.Msg.Items[i-1].Key, it.Key) >= 0 {
			t.Errorf("scan out of order at %d: %q then %q", i, res.Msg.Items[i-1].Key, it.Key)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("scan found %d keys %q, want the %d written on both shards", len(got), got, len(want))
	}
}

// A batch across shards fails by its lowest failed op, numbered in the
// whole batch, and says the other shards' parts may have applied.
func TestBatchAcrossShardsNumbersOps(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	k0, k1 := p.keyOf(t, 0, "batch/"), p.keyOf(t, 1, "batch/")
	put := func(k []byte, ifVersion uint64) *wispv1.BatchOp {
		return &wispv1.BatchOp{Op: &wispv1.BatchOp_Put{Put: &wispv1.PutRequest{Key: k, Value: []byte("v"), IfVersion: ifVersion}}}
	}
	_, err := p.clientA.Batch(ctx, connect.NewRequest(&wispv1.BatchRequest{Ops: []*wispv1.BatchOp{put(k0, 0), put(k1, 99)}}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("batch with a failed precondition on op 1 = %v, want FAILED_PRECONDITION", err)
	}
	var ce *connect.Error
	errors.As(err, &ce)
	if !strings.Contains(ce.Message(), "spans 2 shards") {
		t.Errorf("message %q does not say the batch spans shards", ce.Message())
	}
	var op int = -1
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if pf, ok := v.(*wispv1.PreconditionFailure); ok {
				op = int(pf.OpIndex)
			}
		}
	}
	if op != 1 {
		t.Errorf("PreconditionFailure.op_index = %d, want 1 (the op's place in the whole batch)", op)
	}
}

// Bad input is refused with INVALID_ARGUMENT; an unexpected error reaches
// the client as INTERNAL without its text.
func TestErrorsAtTheEdge(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	if _, err := p.clientA.Put(ctx, connect.NewRequest(&wispv1.PutRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("put without a key = %v, want INVALID_ARGUMENT", err)
	}
	if _, err := p.clientA.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), TtlMs: -1})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("put with a negative TTL = %v, want INVALID_ARGUMENT", err)
	}
	resp, err := http.Post(p.urlA+"/wisp.v1.KVService/Put", "application/json", strings.NewReader(`{"key":"aw==","ttl":"30s"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON put with an unknown field: HTTP %d, want 400 (INVALID_ARGUMENT)", resp.StatusCode)
	}

	key := p.keyOf(t, 0, "internal/")
	p.a.reps[0].mu.Lock()
	p.a.reps[0].fail = errors.New("bolt: secret internal detail")
	p.a.reps[0].mu.Unlock()
	_, err = p.clientA.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: key}))
	if connect.CodeOf(err) != connect.CodeInternal || strings.Contains(err.Error(), "secret") {
		t.Errorf("get on a failing replica = %v, want INTERNAL without the internal text", err)
	}
}

// serveOne serves a single node's API with the given operator token.
func serveOne(t *testing.T, token string) string {
	t.Helper()
	p := newPair(t)
	peers := api.NewPeers("a")
	t.Cleanup(peers.Close)
	srv := httptest.NewServer(api.New(p.a, api.Options{Peers: peers, OperatorToken: token}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// The operator actions need the operator token; listing does not; a node
// without a token refuses them all.
func TestOperatorToken(t *testing.T) {
	ctx := context.Background()
	url := serveOne(t, "s3cret")
	c := wispv1connect.NewPluginServiceClient(http.DefaultClient, url)
	upload := func(auth string) error {
		req := connect.NewRequest(&wispv1.UploadPluginRequest{Name: "lru", Kind: "eviction", Module: []byte("\x00asm")})
		if auth != "" {
			req.Header().Set("Authorization", auth)
		}
		_, err := c.UploadPlugin(ctx, req)
		return err
	}
	if err := upload(""); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("upload without a token = %v, want UNAUTHENTICATED", err)
	}
	if err := upload("Bearer wrong"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("upload with a wrong token = %v, want UNAUTHENTICATED", err)
	}
	if err := upload("s3cret"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("upload with the token but no Bearer = %v, want UNAUTHENTICATED", err)
	}
	if err := upload("Bearer s3cret"); err != nil {
		t.Errorf("upload with the token = %v", err)
	}
	act := connect.NewRequest(&wispv1.ActivatePluginRequest{Name: "lru", Version: 1})
	if _, err := c.ActivatePlugin(ctx, act); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("activate without a token = %v, want UNAUTHENTICATED", err)
	}
	if _, err := c.ListPlugins(ctx, connect.NewRequest(&wispv1.ListPluginsRequest{})); err != nil {
		t.Errorf("list without a token = %v, want it served", err)
	}

	open := wispv1connect.NewPluginServiceClient(http.DefaultClient, serveOne(t, ""))
	req := connect.NewRequest(&wispv1.RollbackPluginRequest{Name: "lru"})
	req.Header().Set("Authorization", "Bearer ")
	if _, err := open.RollbackPlugin(ctx, req); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("rollback on a node without a token = %v, want PERMISSION_DENIED", err)
	}
}

// Bad plugin requests are refused before they reach the node.
func TestPluginRequestChecks(t *testing.T) {
	ctx := context.Background()
	c := wispv1connect.NewPluginServiceClient(http.DefaultClient, serveOne(t, "t"))
	auth := func(r connect.AnyRequest) { r.Header().Set("Authorization", "Bearer t") }
	for name, msg := range map[string]*wispv1.UploadPluginRequest{
		"bad name":     {Name: "Bad", Kind: "eviction", Module: []byte("x")},
		"unknown kind": {Name: "ok", Kind: "hotkey", Module: []byte("x")},
		"no module":    {Name: "ok", Kind: "ttl"},
	} {
		req := connect.NewRequest(msg)
		auth(req)
		if _, err := c.UploadPlugin(ctx, req); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: upload = %v, want INVALID_ARGUMENT", name, err)
		}
	}
	req := connect.NewRequest(&wispv1.ActivatePluginRequest{Name: "ok"})
	auth(req)
	if _, err := c.ActivatePlugin(ctx, req); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("activate without a version = %v, want INVALID_ARGUMENT", err)
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A 100 MiB upload is refused from its declared length, before its body
// is read: RESOURCE_EXHAUSTED naming the module limit.
func TestHugeUploadRefused(t *testing.T) {
	url := serveOne(t, "a-token-for-this-test")
	const size = 100 << 20
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/wisp.v1.PluginService/UploadPlugin", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer a-token-for-this-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "at most 8388608 bytes") {
		t.Errorf("100 MiB upload: HTTP %d %s; want 429 (RESOURCE_EXHAUSTED) naming the module limit", resp.StatusCode, body)
	}
}
