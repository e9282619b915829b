package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/api"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

func kvClient(url string, opts ...connect.ClientOption) wispv1connect.KVServiceClient {
	return wispv1connect.NewKVServiceClient(h2cClient(), url, opts...)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAPIErrors checks that every documented error case returns its code.
func TestAPIErrors(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Limits: api.Limits{MaxValueBytes: 1024}})
	kv := kvClient(c.URL(0))
	ctx := ctxT(t)
	put, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: []byte("v")}))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	v := put.Msg.Version

	big := bytes.Repeat([]byte("x"), 4097)
	tests := []struct {
		name string
		call func() error
		code connect.Code
	}{
		{"get empty key", func() error {
			_, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{}))
			return err
		}, connect.CodeInvalidArgument},
		{"get key over 4 KiB", func() error {
			_, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: big}))
			return err
		}, connect.CodeInvalidArgument},
		{"put empty key", func() error {
			_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Value: []byte("v")}))
			return err
		}, connect.CodeInvalidArgument},
		{"put value over limit", func() error {
			_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: make([]byte, 1025)}))
			return err
		}, connect.CodeInvalidArgument},
		{"put negative ttl", func() error {
			_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), TtlMs: -1}))
			return err
		}, connect.CodeInvalidArgument},
		{"put if_version and if_absent", func() error {
			_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), IfVersion: 1, IfAbsent: true}))
			return err
		}, connect.CodeInvalidArgument},
		{"put cas mismatch", func() error {
			_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: []byte("w"), IfVersion: v + 100}))
			return err
		}, connect.CodeFailedPrecondition},
		{"put if_absent on existing", func() error {
			_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), IfAbsent: true}))
			return err
		}, connect.CodeFailedPrecondition},
		{"delete cas mismatch", func() error {
			_, err := kv.Delete(ctx, connect.NewRequest(&wispv1.DeleteRequest{Key: []byte("k"), IfVersion: v + 100}))
			return err
		}, connect.CodeFailedPrecondition},
		{"increment non-integer", func() error {
			_, err := kv.Increment(ctx, connect.NewRequest(&wispv1.IncrementRequest{Key: []byte("k"), Delta: 1}))
			return err
		}, connect.CodeFailedPrecondition},
		{"get unknown consistency", func() error {
			_, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: []byte("k"), Consistency: 99}))
			return err
		}, connect.CodeInvalidArgument},
		{"empty batch", func() error {
			_, err := kv.Batch(ctx, connect.NewRequest(&wispv1.BatchRequest{}))
			return err
		}, connect.CodeInvalidArgument},
		{"batch with empty op", func() error {
			_, err := kv.Batch(ctx, connect.NewRequest(&wispv1.BatchRequest{Ops: []*wispv1.BatchOp{{}}}))
			return err
		}, connect.CodeInvalidArgument},
		{"deadline exceeded", func() error {
			dctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
			defer cancel()
			time.Sleep(time.Millisecond)
			_, err := kv.Put(dctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: []byte("v")}))
			return err
		}, connect.CodeDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := connect.CodeOf(err); got != tt.code {
				t.Errorf("code = %v (%v); want %v", got, err, tt.code)
			}
		})
	}

	// The CAS failure carries the current version.
	_, err = kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), IfVersion: v + 1}))
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("CAS error %v is not a connect error", err)
	}
	var found bool
	for _, d := range ce.Details() {
		m, derr := d.Value()
		if pf, ok := m.(*wispv1.PreconditionFailure); derr == nil && ok {
			found = true
			if pf.CurrentVersion != v || string(pf.Key) != "k" {
				t.Errorf("PreconditionFailure = %v; want key k at version %d", pf, v)
			}
		}
	}
	if !found {
		t.Errorf("CAS error has no PreconditionFailure detail: %v", err)
	}
}

// TestUnavailableCarriesLeaderHint: a request already forwarded once that
// reaches a follower is refused with UNAVAILABLE and the leader's URL.
func TestUnavailableCarriesLeaderHint(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(5 * time.Second)
	f := (l + 1) % c.Size()
	kv := kvClient(c.URL(f))
	req := connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: []byte("v")})
	req.Header().Set("Wisp-Forwarded", "test")
	_, err := kv.Put(ctxT(t), req)
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("Put on follower with forwarded header: %v; want UNAVAILABLE", err)
	}
	var ce *connect.Error
	errors.As(err, &ce)
	var hint *wispv1.LeaderHint
	for _, d := range ce.Details() {
		if m, err := d.Value(); err == nil {
			if h, ok := m.(*wispv1.LeaderHint); ok {
				hint = h
			}
		}
	}
	if hint == nil || hint.Url != c.URL(l) {
		t.Errorf("LeaderHint = %v; want url %s", hint, c.URL(l))
	}
}

// TestEveryNodeServesEveryProtocol: Connect (binary and JSON), gRPC and
// gRPC-Web clients on every node, followers forwarding to the leader.
func TestEveryNodeServesEveryProtocol(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	ctx := ctxT(t)
	protocols := map[string][]connect.ClientOption{
		"connect":      nil,
		"connect-json": {connect.WithProtoJSON()},
		"grpc":         {connect.WithGRPC()},
		"grpc-web":     {connect.WithGRPCWeb()},
	}
	for i := range c.Size() {
		for name, opts := range protocols {
			t.Run(fmt.Sprintf("n%d/%s", i+1, name), func(t *testing.T) {
				kv := kvClient(c.URL(i), opts...)
				key := []byte(fmt.Sprintf("%s/%d", name, i))
				put, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: key, Value: []byte("v"), TtlMs: 60000}))
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				get, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: key}))
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if !get.Msg.Found || string(get.Msg.Value) != "v" || get.Msg.Version != put.Msg.Version || get.Msg.ExpiresAtUnixMs == 0 {
					t.Errorf("Get(%q) = %v; want v at version %d with an expiry", key, get.Msg, put.Msg.Version)
				}
			})
		}
	}
}

// TestCurlJSON is the README's curl example: Connect JSON over HTTP/1.1.
func TestCurlJSON(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	post := func(path, body string) (int, string) {
		resp, err := http.Post(c.URL(1)+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/wisp.v1.KVService/Put", `{"key":"Z3JlZXRpbmc=","value":"aGVsbG8="}`); code != 200 {
		t.Fatalf("Put: %d %s", code, body)
	}
	code, body := post("/wisp.v1.KVService/Get", `{"key":"Z3JlZXRpbmc="}`)
	if code != 200 || !strings.Contains(body, `"value":"aGVsbG8="`) {
		t.Errorf("Get = %d %s; want the value aGVsbG8=", code, body)
	}
	code, body = post("/wisp.v1.KVService/Get", `{"key":""}`)
	if code != 400 || !strings.Contains(body, "invalid_argument") {
		t.Errorf("Get empty key = %d %s; want 400 invalid_argument", code, body)
	}
}

// countingReader yields n bytes of a JSON-ish body and counts what was read.
type countingReader struct {
	left int
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	for i := range p[:n] {
		p[i] = 'a'
	}
	r.left -= n
	r.read.Add(int64(n))
	return n, nil
}

// countingBody counts the bytes the server reads from a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestHugeBodyRefused: a 10 MiB request is refused, and the server stops
// reading it long before the end (it never buffers it whole).
func TestHugeBodyRefused(t *testing.T) {
	var serverRead atomic.Int64
	c := nodetest.Start(t, nodetest.Options{Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = &countingBody{r.Body, &serverRead}
			h.ServeHTTP(w, r)
		})
	}})
	const size = 10 << 20
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			serverRead.Store(0)
			body := &countingReader{left: size}
			req, err := http.NewRequest("POST", c.URL(0)+"/wisp.v1.KVService/Put", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/proto")
			if !chunked {
				req.ContentLength = size
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close the connection mid-upload.
				t.Logf("request error (server closed early): %v", err)
			} else {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Fatalf("10 MiB body accepted")
				}
				t.Logf("status %d", resp.StatusCode)
			}
			// The limit is the default 1 MiB value plus 1 MiB of slack.
			if got := serverRead.Load(); got > 3<<20 {
				t.Errorf("server read %d bytes of a %d-byte body; want it to stop past the limit", got, size)
			}
			t.Logf("server read %d bytes", serverRead.Load())
		})
	}
}
