package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// TestUnreachable: with nothing listening at the endpoint, a command says
// so within about a second instead of retrying for --timeout.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	want := "Error: cannot reach " + url + ": connection refused (is wispd running?)\n"
	for _, args := range [][]string{
		{"kv", "get", "k"},
		{"kv", "put", "k", "v"},
		{"cluster", "status"},
		{"config", "get"},
	} {
		start := time.Now()
		r := wisp(t, append([]string{"--endpoint", url}, args...)...)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("wisp %q took %v; want under 2s", args, d)
		}
		if r.code != exitFailure || r.stderr != want {
			t.Errorf("wisp %q = exit %d, stderr %q; want %d, %q", args, r.code, r.stderr, exitFailure, want)
		}
	}
}

// noQuorumServer answers every Put as a node does whose shard stayed
// leaderless through its election wait.
type noQuorumServer struct {
	wispv1connect.UnimplementedKVServiceHandler
	calls atomic.Int64
}

func (s *noQuorumServer) Put(context.Context, *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	s.calls.Add(1)
	err := connect.NewError(connect.CodeUnavailable, errors.New("shard 3 has no leader: 1 of 3 replicas reachable"))
	d, derr := connect.NewErrorDetail(&wispv1.NoLeader{Shard: 3, Replicas: 3, ReplicasReachable: 1, WaitedMs: 600})
	if derr != nil {
		return nil, derr
	}
	err.AddDetail(d)
	return nil, err
}

// TestNoQuorum: the server's message reaches the user after two attempts,
// not a deadline after --timeout.
func TestNoQuorum(t *testing.T) {
	s := &noQuorumServer{}
	mux := http.NewServeMux()
	mux.Handle(wispv1connect.NewKVServiceHandler(s))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	start := time.Now()
	r := wisp(t, "--endpoint", srv.URL, "--routing=false", "kv", "put", "k", "v")
	want := "Error: put \"k\": unavailable: shard 3 has no leader: 1 of 3 replicas reachable (after 2 attempts)\n"
	if r.code != exitFailure || r.stderr != want {
		t.Errorf("put = exit %d, stderr %q; want %d, %q", r.code, r.stderr, exitFailure, want)
	}
	if n := s.calls.Load(); n != 2 {
		t.Errorf("server saw %d attempts; want 2", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("put took %v; want it to give up after the second answer", d)
	}
}
