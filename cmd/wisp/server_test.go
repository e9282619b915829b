package main

import (
	"context"
	"errors"
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

// testStatus is a three-node cluster with one node down and a shard
// without a leader.
func testStatus() *wispv1.StatusResponse {
	return &wispv1.StatusResponse{
		NodeId: "n1",
		Nodes: []*wispv1.NodeStatus{
			{Id: "n1", Url: "http://127.0.0.1:8080", RaftAddr: "127.0.0.1:9080", Reachable: true},
			{Id: "n2", Url: "http://127.0.0.1:8081", RaftAddr: "127.0.0.1:9081", Reachable: true},
			{Id: "n3", Url: "http://127.0.0.1:8082", RaftAddr: "127.0.0.1:9082", Error: "connection refused"},
		},
		Shards: []*wispv1.ShardStatus{
			{
				Id: 0, LeaderId: "n1", KeyCount: 42,
				Replicas: []*wispv1.ReplicaStatus{
					{NodeId: "n1", State: "leader", Voter: true, Term: 3, AppliedIndex: 120, CommitIndex: 120, LastLogIndex: 121, KeyCount: 42},
					{NodeId: "n2", State: "follower", Voter: true, Term: 3, AppliedIndex: 118, CommitIndex: 120, LastLogIndex: 121, KeyCount: 41},
					{NodeId: "n3", State: "unknown"},
				},
			},
			{
				Id: 1, KeyCount: 7,
				Replicas: []*wispv1.ReplicaStatus{
					{NodeId: "n2", State: "candidate", Voter: true, Term: 5, AppliedIndex: 30, CommitIndex: 30, LastLogIndex: 31, KeyCount: 7},
					{NodeId: "n1", State: "follower", Voter: false, Term: 4, AppliedIndex: 30, CommitIndex: 30, LastLogIndex: 30, KeyCount: 7},
				},
			},
		},
	}
}
