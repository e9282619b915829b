package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// fakeServer is a single-node, in-memory Wisp API on a loopback port, for
// testing the CLI's flags and output. It is not Wisp: the real cluster is
// tested elsewhere (and, once it exists, by e2e tests through nodetest).
type fakeServer struct {
	wispv1connect.UnimplementedKVServiceHandler // Batch: the CLI has no batch command
	// GetConfig, SetConfig: covered by the e2e tests.
	wispv1connect.UnimplementedClusterServiceHandler

	URL string

	// block, if not nil, makes every call wait until it is closed. It is
	// set once, before the server starts.
	block chan struct{}

	mu          sync.Mutex
	data        map[string]*wispv1.KeyValue // guarded by mu
	version     uint64                      // guarded by mu
	consistency wispv1.Consistency          // guarded by mu; of the last read
}

func newFakeServer(t *testing.T, block chan struct{}) *fakeServer {
	t.Helper()
	s := &fakeServer{block: block, data: make(map[string]*wispv1.KeyValue)}
	mux := http.NewServeMux()
	mux.Handle(wispv1connect.NewKVServiceHandler(s))
	mux.Handle(wispv1connect.NewClusterServiceHandler(s))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *fakeServer) wait(ctx context.Context) error {
	if s.block == nil {
		return nil
	}
	select {
	case <-s.block:
		return nil
	case <-ctx.Done():
		return ctx.Err() // connect sends Canceled or DeadlineExceeded
	}
}

func (s *fakeServer) lastConsistency() wispv1.Consistency {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consistency
}

func failedPrecondition(key []byte, current uint64) error {
	err := connect.NewError(connect.CodeFailedPrecondition, errors.New("version mismatch"))
	d, derr := connect.NewErrorDetail(&wispv1.PreconditionFailure{Key: key, CurrentVersion: current})
	if derr != nil {
		panic(derr)
	}
	err.AddDetail(d)
	return err
}

func (s *fakeServer) Get(ctx context.Context, req *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consistency = req.Msg.GetConsistency()
	kv, ok := s.data[string(req.Msg.GetKey())]
	if !ok {
		return connect.NewResponse(&wispv1.GetResponse{}), nil
	}
	return connect.NewResponse(&wispv1.GetResponse{
		Found: true, Value: kv.Value, Version: kv.Version, ExpiresAtUnixMs: kv.ExpiresAtUnixMs,
	}), nil
}

func (s *fakeServer) Put(ctx context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := req.Msg
	cur, exists := s.data[string(m.GetKey())]
	if (m.GetIfAbsent() && exists) || (m.GetIfVersion() != 0 && cur.GetVersion() != m.GetIfVersion()) {
		return nil, failedPrecondition(m.GetKey(), cur.GetVersion())
	}
	s.version++
	kv := &wispv1.KeyValue{Key: m.GetKey(), Value: m.GetValue(), Version: s.version}
	if m.GetTtlMs() > 0 {
		kv.ExpiresAtUnixMs = time.Now().UnixMilli() + m.GetTtlMs()
	}
	s.data[string(m.GetKey())] = kv
	return connect.NewResponse(&wispv1.PutResponse{Version: s.version}), nil
}

func (s *fakeServer) Delete(ctx context.Context, req *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.data[string(req.Msg.GetKey())]
	if req.Msg.GetIfVersion() != 0 && cur.GetVersion() != req.Msg.GetIfVersion() {
		return nil, failedPrecondition(req.Msg.GetKey(), cur.GetVersion())
	}
	s.version++
	delete(s.data, string(req.Msg.GetKey()))
	return connect.NewResponse(&wispv1.DeleteResponse{Deleted: exists, Version: s.version}), nil
}

func (s *fakeServer) Increment(ctx context.Context, req *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if cur, ok := s.data[string(req.Msg.GetKey())]; ok {
		var err error
		if n, err = strconv.ParseInt(string(cur.Value), 10, 64); err != nil {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("value is not an integer"))
		}
	}
	n += req.Msg.GetDelta()
	s.version++
	s.data[string(req.Msg.GetKey())] = &wispv1.KeyValue{
		Key: req.Msg.GetKey(), Value: []byte(strconv.FormatInt(n, 10)), Version: s.version,
	}
	return connect.NewResponse(&wispv1.IncrementResponse{Value: n, Version: s.version}), nil
}

// Scan pages through the sorted keys; the page token is the next key.
func (s *fakeServer) Scan(ctx context.Context, req *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consistency = req.Msg.GetConsistency()
	limit := int(req.Msg.GetLimit())
	if limit == 0 {
		limit = 100
	}
	prefix := string(req.Msg.GetPrefix())
	start := max(string(req.Msg.GetStartKey()), prefix, string(req.Msg.GetPageToken()))
	var keys []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) && k >= start {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	res := &wispv1.ScanResponse{}
	for i, k := range keys {
		if i == limit {
			res.NextPageToken = []byte(k)
			break
		}
		kv := s.data[k]
		item := &wispv1.KeyValue{Key: kv.Key, Version: kv.Version, ExpiresAtUnixMs: kv.ExpiresAtUnixMs}
		if !req.Msg.GetKeysOnly() {
			item.Value = kv.Value
		}
		res.Items = append(res.Items, item)
	}
	return connect.NewResponse(res), nil
}

func (s *fakeServer) Status(ctx context.Context, _ *connect.Request[wispv1.StatusRequest]) (*connect.Response[wispv1.StatusResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(testStatus()), nil
}

func (s *fakeServer) ShardMap(ctx context.Context, _ *connect.Request[wispv1.ShardMapRequest]) (*connect.Response[wispv1.ShardMapResponse], error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(testShardMap()), nil
}

// testNodes are the members of the test cluster: five nodes in three zones.
var testNodes = []struct{ id, zone string }{{"n1", "a"}, {"n2", "a"}, {"n3", "b"}, {"n4", "b"}, {"n5", "c"}}

func testURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", 8080+i) }

// testShards is 16 shards of three replicas over testNodes, as
// ring.Place(16, testNodes, 3) places them (copied, so that the golden
// files do not change with the placement algorithm), with the current
// leaders of a cluster where n4 is down: its shards 5, 6 and 10 have moved
// their leader, shard 9 is electing one, and shard 2 has not moved back to
// its preferred leader.
var testShards = []struct {
	replicas          []string
	preferred, leader string
}{
	{[]string{"n5", "n4", "n1"}, "n5", "n5"},
	{[]string{"n5", "n1", "n3"}, "n1", "n1"},
	{[]string{"n5", "n3", "n2"}, "n3", "n2"},
	{[]string{"n1", "n3", "n5"}, "n1", "n1"},
	{[]string{"n5", "n3", "n2"}, "n2", "n2"},
	{[]string{"n4", "n5", "n2"}, "n4", "n5"},
	{[]string{"n1", "n4", "n3"}, "n4", "n1"},
	{[]string{"n3", "n2", "n5"}, "n3", "n3"},
	{[]string{"n4", "n1", "n2"}, "n2", "n2"},
	{[]string{"n4", "n5", "n2"}, "n5", ""},
	{[]string{"n4", "n3", "n2"}, "n4", "n3"},
	{[]string{"n5", "n2", "n3"}, "n5", "n5"},
	{[]string{"n4", "n1", "n2"}, "n1", "n1"},
	{[]string{"n5", "n3", "n1"}, "n3", "n3"},
	{[]string{"n4", "n3", "n2"}, "n2", "n2"},
	{[]string{"n5", "n3", "n1"}, "n5", "n5"},
}

// testShardMap is the shard map of testNodes and testShards.
func testShardMap() *wispv1.ShardMapResponse {
	m := &wispv1.ShardMapResponse{Epoch: 7, ShardCount: 16, KeyVnodes: 1024, ReplicationFactor: 3}
	for i, n := range testNodes {
		m.Nodes = append(m.Nodes, &wispv1.ShardMapNode{Id: n.id, Url: testURL(i), Zone: n.zone})
	}
	for i, s := range testShards {
		m.Shards = append(m.Shards, &wispv1.ShardPlacement{
			Id: uint32(i), Replicas: s.replicas, PreferredLeaderId: s.preferred, LeaderId: s.leader,
		})
	}
	return m
}

// testStatus is the status of testShards as n1 reports it: n4 does not
// answer, shard 9 has no leader, and shard 3 is adding n2 as a non-voting
// replica.
func testStatus() *wispv1.StatusResponse {
	st := &wispv1.StatusResponse{NodeId: "n1"}
	replicas := make(map[string]uint32)
	leaders := make(map[string]uint32)
	for i, sh := range testShards {
		id := uint32(i)
		s := &wispv1.ShardStatus{
			Id: id, LeaderId: sh.leader, KeyCount: 1000 + 37*uint64(id),
			MemoryUsedBytes: 180 * (1000 + 37*int64(id)), MemoryBudgetBytes: 4 << 20,
		}
		if id == 15 {
			s.MemoryBudgetBytes = 0 // no budget
		}
		nodes := sh.replicas
		if id == 3 {
			nodes = append(slices.Clone(nodes), "n2")
		}
		for j, n := range nodes {
			replicas[n]++
			r := &wispv1.ReplicaStatus{
				NodeId: n, State: "follower", Voter: true, Term: 2 + uint64(id%3),
				AppliedIndex: 100 + uint64(id), CommitIndex: 100 + uint64(id), LastLogIndex: 101 + uint64(id),
				KeyCount: s.KeyCount, MemoryUsedBytes: s.MemoryUsedBytes, MemoryBudgetBytes: s.MemoryBudgetBytes,
				EvictionPolicy: "allkeys-lru", ExpiredKeys: uint64(id), EvictedKeys: uint64(j),
			}
			switch {
			case n == "n4":
				r = &wispv1.ReplicaStatus{NodeId: n, State: "unknown"}
			case n == sh.leader:
				r.State = "leader"
				leaders[n]++
			case sh.leader == "" && j == 1:
				r.State, r.Term = "candidate", r.Term+1
			case id == 3 && n == "n2":
				r.Voter, r.AppliedIndex = false, 90
			}
			s.Replicas = append(s.Replicas, r)
		}
		st.Shards = append(st.Shards, s)
	}
	for i, n := range testNodes {
		ns := &wispv1.NodeStatus{
			Id: n.id, Url: testURL(i), RaftAddr: fmt.Sprintf("127.0.0.1:%d", 9080+i), Reachable: true,
			Replicas: replicas[n.id], Leaders: leaders[n.id],
		}
		if n.id == "n4" {
			ns.Reachable, ns.Error = false, "connection refused"
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st
}
