package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// testServer is a single-node, in-memory KVService and ClusterService on a
// loopback port, serving Connect, gRPC and gRPC-Web over HTTP/1.1 and h2c.
// It exists to exercise the client's logic (retries, redirects, error
// decoding), not Wisp's semantics; the real server is tested elsewhere.
// Like a server older than the shard map, it answers ShardMap with
// Unimplemented, so the client does not route.
type testServer struct {
	// Expire, Persist, GetConfig, SetConfig: covered by the e2e tests.
	wispv1connect.UnimplementedKVServiceHandler
	wispv1connect.UnimplementedClusterServiceHandler

	URL string
	srv *httptest.Server

	// hook, if not nil, runs before every RPC; a non-nil error is
	// returned instead of calling the handler. It is set once, before the
	// server starts.
	hook func(procedure string) error
	// calls counts the RPCs that reached the server, hooked or not, but
	// ShardMap, which the client calls in the background.
	calls atomic.Int64
	// mapCalls counts the ShardMap calls. They are not hooked.
	mapCalls atomic.Int64

	mu      sync.Mutex
	data    map[string]*wispv1.KeyValue // guarded by mu
	version uint64                      // guarded by mu; the last version handed out
}

// newTestServer starts a testServer with hook (which may be nil) and stops
// it when the test ends.
func newTestServer(t *testing.T, hook func(procedure string) error) *testServer {
	t.Helper()
	s := &testServer{hook: hook, data: make(map[string]*wispv1.KeyValue)}
	interceptor := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().Procedure == wispv1connect.ClusterServiceShardMapProcedure {
				s.mapCalls.Add(1)
				return next(ctx, req)
			}
			s.calls.Add(1)
			if s.hook != nil {
				if err := s.hook(req.Spec().Procedure); err != nil {
					return nil, err
				}
			}
			return next(ctx, req)
		}
	})
	mux := http.NewServeMux()
	mux.Handle(wispv1connect.NewKVServiceHandler(s, connect.WithInterceptors(interceptor)))
	mux.Handle(wispv1connect.NewClusterServiceHandler(s, connect.WithInterceptors(interceptor)))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.srv = srv
	return s
}

// stop closes the server before the test ends; later connections to its
// port are refused.
func (s *testServer) stop() { s.srv.Close() }

// unavailable returns an Unavailable error, with a LeaderHint naming url if
// url is not empty.
func unavailable(url string) error {
	err := connect.NewError(connect.CodeUnavailable, errors.New("not the leader"))
	if url != "" {
		d, derr := connect.NewErrorDetail(&wispv1.LeaderHint{NodeId: "n2", Url: url})
		if derr != nil {
			panic(derr)
		}
		err.AddDetail(d)
	}
	return err
}

func preconditionFailed(key []byte, current uint64, opIndex int) error {
	err := connect.NewError(connect.CodeFailedPrecondition, errors.New("version mismatch"))
	d, derr := connect.NewErrorDetail(&wispv1.PreconditionFailure{Key: key, CurrentVersion: current, OpIndex: uint32(opIndex)})
	if derr != nil {
		panic(derr)
	}
	err.AddDetail(d)
	return err
}

// live returns key's entry if it exists and has not expired. s.mu is held.
func (s *testServer) live(key []byte) *wispv1.KeyValue {
	kv, ok := s.data[string(key)]
	if !ok {
		return nil
	}
	if kv.ExpiresAtUnixMs != 0 && kv.ExpiresAtUnixMs <= time.Now().UnixMilli() {
		delete(s.data, string(key))
		return nil
	}
	return kv
}

func (s *testServer) checkPut(req *wispv1.PutRequest, opIndex int) error {
	if len(req.GetKey()) == 0 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("empty key"))
	}
	cur := s.live(req.GetKey())
	switch {
	case req.GetIfAbsent() && cur != nil:
		return preconditionFailed(req.GetKey(), cur.Version, opIndex)
	case req.GetIfVersion() != 0 && (cur == nil || cur.Version != req.GetIfVersion()):
		return preconditionFailed(req.GetKey(), cur.GetVersion(), opIndex)
	}
	return nil
}

func (s *testServer) checkDelete(req *wispv1.DeleteRequest, opIndex int) error {
	if len(req.GetKey()) == 0 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("empty key"))
	}
	cur := s.live(req.GetKey())
	if req.GetIfVersion() != 0 && (cur == nil || cur.Version != req.GetIfVersion()) {
		return preconditionFailed(req.GetKey(), cur.GetVersion(), opIndex)
	}
	return nil
}

func (s *testServer) checkIncrement(req *wispv1.IncrementRequest) (int64, error) {
	if len(req.GetKey()) == 0 {
		return 0, connect.NewError(connect.CodeInvalidArgument, errors.New("empty key"))
	}
	var n int64
	if cur := s.live(req.GetKey()); cur != nil {
		var err error
		if n, err = strconv.ParseInt(string(cur.Value), 10, 64); err != nil {
			return 0, connect.NewError(connect.CodeFailedPrecondition, errors.New("value is not an integer"))
		}
	}
	return n + req.GetDelta(), nil
}

func (s *testServer) applyPut(req *wispv1.PutRequest, version uint64) {
	kv := &wispv1.KeyValue{Key: req.GetKey(), Value: req.GetValue(), Version: version}
	if req.GetTtlMs() > 0 {
		kv.ExpiresAtUnixMs = time.Now().UnixMilli() + req.GetTtlMs()
	}
	s.data[string(req.GetKey())] = kv
}

func (s *testServer) Get(_ context.Context, req *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv := s.live(req.Msg.GetKey())
	if kv == nil {
		return connect.NewResponse(&wispv1.GetResponse{}), nil
	}
	return connect.NewResponse(&wispv1.GetResponse{
		Found: true, Value: kv.Value, Version: kv.Version, ExpiresAtUnixMs: kv.ExpiresAtUnixMs,
	}), nil
}

func (s *testServer) Put(_ context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPut(req.Msg, 0); err != nil {
		return nil, err
	}
	s.version++
	s.applyPut(req.Msg, s.version)
	return connect.NewResponse(&wispv1.PutResponse{Version: s.version}), nil
}

func (s *testServer) Delete(_ context.Context, req *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkDelete(req.Msg, 0); err != nil {
		return nil, err
	}
	s.version++
	existed := s.live(req.Msg.GetKey()) != nil
	delete(s.data, string(req.Msg.GetKey()))
	return connect.NewResponse(&wispv1.DeleteResponse{Deleted: existed, Version: s.version}), nil
}

func (s *testServer) Increment(_ context.Context, req *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.checkIncrement(req.Msg)
	if err != nil {
		return nil, err
	}
	s.version++
	s.data[string(req.Msg.GetKey())] = &wispv1.KeyValue{
		Key: req.Msg.GetKey(), Value: []byte(strconv.FormatInt(n, 10)), Version: s.version,
	}
	return connect.NewResponse(&wispv1.IncrementResponse{Value: n, Version: s.version}), nil
}

// Scan pages through the sorted keys; the page token is the next key.
func (s *testServer) Scan(_ context.Context, req *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := int(req.Msg.GetLimit())
	if limit == 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	prefix := string(req.Msg.GetPrefix())
	start := max(string(req.Msg.GetStartKey()), prefix, string(req.Msg.GetPageToken()))
	var keys []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) && k >= start && s.live([]byte(k)) != nil {
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

func (s *testServer) Batch(_ context.Context, req *connect.Request[wispv1.BatchRequest]) (*connect.Response[wispv1.BatchResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, op := range req.Msg.GetOps() {
		var err error
		switch op := op.GetOp().(type) {
		case *wispv1.BatchOp_Put:
			err = s.checkPut(op.Put, i)
		case *wispv1.BatchOp_Delete:
			err = s.checkDelete(op.Delete, i)
		case *wispv1.BatchOp_Increment:
			_, err = s.checkIncrement(op.Increment)
		default:
			err = connect.NewError(connect.CodeInvalidArgument, errors.New("empty op"))
		}
		if err != nil {
			return nil, err
		}
	}
	s.version++
	res := &wispv1.BatchResponse{}
	for _, op := range req.Msg.GetOps() {
		switch op := op.GetOp().(type) {
		case *wispv1.BatchOp_Put:
			s.applyPut(op.Put, s.version)
			res.Results = append(res.Results, &wispv1.BatchResult{Result: &wispv1.BatchResult_Put{
				Put: &wispv1.PutResponse{Version: s.version},
			}})
		case *wispv1.BatchOp_Delete:
			existed := s.live(op.Delete.GetKey()) != nil
			delete(s.data, string(op.Delete.GetKey()))
			res.Results = append(res.Results, &wispv1.BatchResult{Result: &wispv1.BatchResult_Delete{
				Delete: &wispv1.DeleteResponse{Deleted: existed, Version: s.version},
			}})
		case *wispv1.BatchOp_Increment:
			n, _ := s.checkIncrement(op.Increment)
			s.data[string(op.Increment.GetKey())] = &wispv1.KeyValue{
				Key: op.Increment.GetKey(), Value: []byte(strconv.FormatInt(n, 10)), Version: s.version,
			}
			res.Results = append(res.Results, &wispv1.BatchResult{Result: &wispv1.BatchResult_Increment{
				Increment: &wispv1.IncrementResponse{Value: n, Version: s.version},
			}})
		}
	}
	return connect.NewResponse(res), nil
}

func (s *testServer) Status(context.Context, *connect.Request[wispv1.StatusRequest]) (*connect.Response[wispv1.StatusResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return connect.NewResponse(&wispv1.StatusResponse{
		NodeId: "n1",
		Nodes:  []*wispv1.NodeStatus{{Id: "n1", Url: s.URL, RaftAddr: "127.0.0.1:0", Reachable: true}},
		Shards: []*wispv1.ShardStatus{{
			Id: 0, LeaderId: "n1", KeyCount: uint64(len(s.data)),
			Replicas: []*wispv1.ReplicaStatus{{
				NodeId: "n1", State: "leader", Voter: true, Term: 1,
				AppliedIndex: s.version, CommitIndex: s.version, LastLogIndex: s.version,
				KeyCount: uint64(len(s.data)),
			}},
		}},
	}), nil
}
