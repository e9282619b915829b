package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/sdk/client"
)

// fastRetries makes retries quick so tests don't wait on backoff.
var fastRetries = client.WithBackoff(time.Millisecond, 2*time.Millisecond)

func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatalf("New(%q) = %v", url, err)
	}
	return c
}

func TestProtocols(t *testing.T) {
	s := newTestServer(t, nil)
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolGRPC, client.ProtocolGRPCWeb} {
		t.Run(p.String(), func(t *testing.T) {
			ctx := t.Context()
			c := newClient(t, s.URL, client.WithProtocol(p))
			key := "proto/" + p.String()
			version, err := c.Put(ctx, key, []byte("v-"+p.String()))
			if err != nil {
				t.Fatalf("Put(%q) = %v", key, err)
			}
			item, found, err := c.Get(ctx, key)
			if err != nil || !found {
				t.Fatalf("Get(%q) = %v, %v; want found", key, found, err)
			}
			if got, want := string(item.Value), "v-"+p.String(); got != want || item.Version != version {
				t.Errorf("Get(%q) = %q@%d; want %q@%d", key, got, item.Version, want, version)
			}
			// An error with a detail survives each protocol's error encoding.
			_, err = c.Put(ctx, key, []byte("x"), client.WithIfAbsent())
			var pe *client.PreconditionError
			if !errors.As(err, &pe) || pe.CurrentVersion != version {
				t.Errorf("Put(%q, WithIfAbsent) = %v; want PreconditionError at version %d", key, err, version)
			}
		})
	}
}

func TestOperations(t *testing.T) {
	ctx := t.Context()
	s := newTestServer(t, nil)
	c := newClient(t, s.URL)

	if _, found, err := c.Get(ctx, "missing"); err != nil || found {
		t.Errorf("Get(missing) = %v, %v; want not found, nil", found, err)
	}

	before := time.Now()
	v1, err := c.Put(ctx, "ttl", []byte("x"), client.WithTTL(time.Hour))
	if err != nil {
		t.Fatalf("Put(ttl) = %v", err)
	}
	item, found, err := c.Get(ctx, "ttl", client.WithConsistency(client.Stale))
	if err != nil || !found {
		t.Fatalf("Get(ttl) = %v, %v", found, err)
	}
	if exp := item.ExpiresAt; exp.Before(before.Add(time.Hour-time.Second)) || exp.After(time.Now().Add(time.Hour+time.Second)) {
		t.Errorf("Get(ttl).ExpiresAt = %v; want about an hour from now", exp)
	}
	if item.Key != "ttl" || item.Version != v1 {
		t.Errorf("Get(ttl) = %+v; want key ttl at version %d", item, v1)
	}

	v2, err := c.Put(ctx, "ttl", []byte("y"), client.WithIfVersion(v1))
	if err != nil || v2 <= v1 {
		t.Fatalf("Put(ttl, WithIfVersion(%d)) = %d, %v; want a version above %d", v1, v2, err, v1)
	}
	item, _, _ = c.Get(ctx, "ttl")
	if !item.ExpiresAt.IsZero() {
		t.Errorf("Get(ttl).ExpiresAt = %v after a Put without TTL; want zero", item.ExpiresAt)
	}

	deleted, _, err := c.Delete(ctx, "ttl", client.WithIfVersion(v2))
	if err != nil || !deleted {
		t.Errorf("Delete(ttl) = %v, %v; want deleted", deleted, err)
	}
	deleted, _, err = c.Delete(ctx, "ttl")
	if err != nil || deleted {
		t.Errorf("Delete(ttl) again = %v, %v; want not deleted, nil", deleted, err)
	}

	for _, want := range []int64{1, 11, 6} {
		delta := map[int64]int64{1: 1, 11: 10, 6: -5}[want]
		got, _, err := c.Increment(ctx, "counter", delta)
		if err != nil || got != want {
			t.Errorf("Increment(counter, %d) = %d, %v; want %d", delta, got, err, want)
		}
	}

	results, err := c.Batch(ctx,
		client.PutOp("b/1", []byte("one")),
		client.DeleteOp("counter"),
		client.IncrementOp("b/n", 5),
	)
	if err != nil {
		t.Fatalf("Batch = %v", err)
	}
	if len(results) != 3 || !results[1].Deleted || results[2].Value != 5 ||
		results[0].Version != results[1].Version || results[0].Version == 0 {
		t.Errorf("Batch = %+v; want 3 results at one version, deleted, value 5", results)
	}

	st, err := c.Status(ctx)
	if err != nil || st.GetNodeId() != "n1" || len(st.GetShards()) != 1 {
		t.Errorf("Status = %v, %v; want node n1 with one shard", st, err)
	}
}

func TestScan(t *testing.T) {
	ctx := t.Context()
	s := newTestServer(t, nil)
	c := newClient(t, s.URL)
	var want []string
	for i := range 25 {
		key := fmt.Sprintf("s/%02d", i)
		want = append(want, key)
		if _, err := c.Put(ctx, key, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "t/other", []byte("v")); err != nil {
		t.Fatal(err)
	}

	page, err := c.Scan(ctx, client.ScanOptions{Prefix: "s/", Limit: 10, KeysOnly: true})
	if err != nil {
		t.Fatalf("Scan = %v", err)
	}
	if len(page.Items) != 10 || page.Items[0].Key != "s/00" || page.Items[0].Value != nil || len(page.NextPageToken) == 0 {
		t.Errorf("Scan(limit 10, keys only) = %d items from %+v, token %q; want 10 keys from s/00 and a token",
			len(page.Items), page.Items[0], page.NextPageToken)
	}

	before := s.calls.Load()
	var got []string
	for item, err := range c.ScanAll(ctx, client.ScanOptions{Prefix: "s/", Limit: 10}) {
		if err != nil {
			t.Fatalf("ScanAll = %v", err)
		}
		if string(item.Value) != "v" {
			t.Errorf("ScanAll item %q value = %q; want v", item.Key, item.Value)
		}
		got = append(got, item.Key)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ScanAll(s/) = %q; want %q", got, want)
	}
	if n := s.calls.Load() - before; n != 3 {
		t.Errorf("ScanAll of 25 items by 10 made %d calls; want 3", n)
	}

	before = s.calls.Load()
	n := 0
	for range c.ScanAll(ctx, client.ScanOptions{Prefix: "s/", Start: "s/20", Limit: 2}) {
		n++
		if n == 3 {
			break
		}
	}
	if calls := s.calls.Load() - before; calls != 2 {
		t.Errorf("ScanAll stopped after 3 items by 2 made %d calls; want 2", calls)
	}
}

func TestRetryUnavailableThenSuccess(t *testing.T) {
	var failures atomic.Int64
	s := newTestServer(t, func(string) error {
		if failures.Add(1) <= 2 {
			return unavailable("")
		}
		return nil
	})
	c := newClient(t, s.URL, fastRetries)
	if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put after 2 Unavailable = %v; want success", err)
	}
	if n := s.calls.Load(); n != 3 {
		t.Errorf("server saw %d calls; want 3", n)
	}
}

func TestRetryExhausted(t *testing.T) {
	s := newTestServer(t, func(string) error { return unavailable("") })
	c := newClient(t, s.URL, fastRetries, client.WithMaxAttempts(3))
	_, err := c.Put(t.Context(), "k", []byte("v"))
	if !errors.Is(err, client.ErrUnavailable) || connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("Put = %v; want ErrUnavailable with CodeUnavailable", err)
	}
	if want := `wisp: put "k": unavailable: not the leader (after 3 attempts)`; err == nil || err.Error() != want {
		t.Errorf("Put error = %q; want %q", err, want)
	}
	if n := s.calls.Load(); n != 3 {
		t.Errorf("server saw %d calls; want 3", n)
	}

	c = newClient(t, s.URL, fastRetries, client.WithMaxAttempts(1))
	before := s.calls.Load()
	if _, _, err := c.Get(t.Context(), "k"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Get = %v; want ErrUnavailable", err)
	}
	if n := s.calls.Load() - before; n != 1 {
		t.Errorf("WithMaxAttempts(1): server saw %d calls; want 1", n)
	}
}

func TestLeaderHint(t *testing.T) {
	leader := newTestServer(t, nil)
	var hints atomic.Int64
	follower := newTestServer(t, func(string) error {
		if hints.Add(1) == 1 {
			return unavailable(leader.URL + "/")
		}
		return nil
	})
	// A retry after a hint must not sleep: with a 30s backoff, a sleep
	// would overrun the deadline.
	c := newClient(t, follower.URL, client.WithBackoff(30*time.Second, 30*time.Second))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	version, err := c.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	item, found, err := c.Get(ctx, "k")
	if err != nil || !found || item.Version != version {
		t.Errorf("Get(k) = %+v, %v, %v; want the put at version %d", item, found, err, version)
	}
	if f, l := follower.calls.Load(), leader.calls.Load(); f != 1 || l != 2 {
		t.Errorf("follower saw %d calls and leader %d; want 1 and 2", f, l)
	}

	// Without retries the call fails, but the next one goes to the leader.
	hints.Store(0)
	c = newClient(t, follower.URL, client.WithMaxAttempts(1))
	if _, err := c.Put(ctx, "k", []byte("v")); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Put with WithMaxAttempts(1) = %v; want ErrUnavailable", err)
	}
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Errorf("Put after the hint = %v; want it sent to the leader", err)
	}
	if f, l := follower.calls.Load(), leader.calls.Load(); f != 2 || l != 3 {
		t.Errorf("follower saw %d calls and leader %d; want 2 and 3", f, l)
	}
}

func TestLeaderHintForgottenOnTransportError(t *testing.T) {
	leader := newTestServer(t, nil)
	var hints atomic.Int64
	base := newTestServer(t, func(string) error {
		if hints.Add(1) == 1 {
			return unavailable(leader.URL)
		}
		return nil
	})
	c := newClient(t, base.URL, fastRetries)
	if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	leaderURL := leader.URL
	leader.stop()

	// The Get fails at the dead leader, goes back to the base URL, and is
	// answered there.
	if _, _, err := c.Get(t.Context(), "k"); err != nil {
		t.Fatalf("Get after the leader %s died = %v", leaderURL, err)
	}
	if n := base.calls.Load(); n != 2 {
		t.Errorf("base saw %d calls; want 2", n)
	}
	// A write that a hint sends to the dead leader finds its port closed:
	// nothing was sent, so it retries at the base URL and succeeds there.
	hints.Store(0)
	before := base.calls.Load()
	if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Errorf("Put redirected to the dead leader = %v; want it retried at the base URL", err)
	}
	if n := base.calls.Load() - before; n != 2 {
		t.Errorf("base saw %d calls (the hint, then the retry); want 2", n)
	}
}

func TestNoRetryOnOtherCodes(t *testing.T) {
	codes := []connect.Code{
		connect.CodeFailedPrecondition, connect.CodeInvalidArgument, connect.CodeInternal,
		connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted,
		connect.CodeAborted, connect.CodePermissionDenied, connect.CodeCanceled,
	}
	for _, code := range codes {
		t.Run(code.String(), func(t *testing.T) {
			s := newTestServer(t, func(string) error { return connect.NewError(code, errors.New("injected")) })
			c := newClient(t, s.URL, fastRetries)
			calls := []struct {
				name string
				call func() error
			}{
				{"Put", func() error { _, err := c.Put(t.Context(), "k", []byte("v")); return err }},
				{"Delete", func() error { _, _, err := c.Delete(t.Context(), "k"); return err }},
				{"Increment", func() error { _, _, err := c.Increment(t.Context(), "k", 1); return err }},
				{"Batch", func() error { _, err := c.Batch(t.Context(), client.PutOp("k", nil)); return err }},
				{"Get", func() error { _, _, err := c.Get(t.Context(), "k"); return err }},
				{"Scan", func() error { _, err := c.Scan(t.Context(), client.ScanOptions{}); return err }},
				{"Status", func() error { _, err := c.Status(t.Context()); return err }},
			}
			for _, tc := range calls {
				before := s.calls.Load()
				err := tc.call()
				if got := connect.CodeOf(err); got != code {
					t.Errorf("%s: CodeOf(%v) = %v; want %v", tc.name, err, got, code)
				}
				if n := s.calls.Load() - before; n != 1 {
					t.Errorf("%s: server saw %d calls; want 1", tc.name, n)
				}
			}
		})
	}
}

// abortServer starts a server that counts each request it receives and
// then drops every connection, so each call fails at the transport level
// after its request was sent.
func abortServer(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	var srv *httptest.Server
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		srv.CloseClientConnections()
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

func TestTransportErrors(t *testing.T) {
	url, requests := abortServer(t)
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolGRPC, client.ProtocolGRPCWeb} {
		t.Run(p.String(), func(t *testing.T) {
			// Without routing: the server drops every connection, and
			// would also drop one a background shard map fetch just
			// opened, which the next call could then pick up.
			c := newClient(t, url, fastRetries, client.WithMaxAttempts(3), client.WithProtocol(p), client.WithRouting(false))
			writes := []struct {
				name string
				call func() error
			}{
				{"Put", func() error { _, err := c.Put(t.Context(), "k", []byte("v")); return err }},
				{"Delete", func() error { _, _, err := c.Delete(t.Context(), "k"); return err }},
				{"Increment", func() error { _, _, err := c.Increment(t.Context(), "k", 1); return err }},
				{"Batch", func() error { _, err := c.Batch(t.Context(), client.PutOp("k", nil)); return err }},
			}
			for _, tc := range writes {
				before := requests.Load()
				err := tc.call()
				if !errors.Is(err, client.ErrUnavailable) || connect.IsWireError(err) {
					t.Errorf("%s: err = %v; want a client-side ErrUnavailable", tc.name, err)
				}
				if n := requests.Load() - before; n != 1 {
					t.Errorf("%s: server saw %d requests; want 1 (no retry)", tc.name, n)
				}
			}
			reads := []struct {
				name string
				call func() error
			}{
				{"Get", func() error { _, _, err := c.Get(t.Context(), "k"); return err }},
				{"Scan", func() error { _, err := c.Scan(t.Context(), client.ScanOptions{}); return err }},
				{"Status", func() error { _, err := c.Status(t.Context()); return err }},
			}
			for _, tc := range reads {
				before := requests.Load()
				if err := tc.call(); !errors.Is(err, client.ErrUnavailable) {
					t.Errorf("%s: err = %v; want ErrUnavailable", tc.name, err)
				}
				if n := requests.Load() - before; n != 3 {
					t.Errorf("%s: server saw %d requests; want 3 (retried)", tc.name, n)
				}
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	// A port nothing listens on: take one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	c := newClient(t, url, fastRetries, client.WithMaxAttempts(2))
	_, _, err = c.Get(t.Context(), "k")
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "(after 2 attempts)") {
		t.Errorf("Get = %v; want ErrUnavailable after 2 attempts", err)
	}
	// A refused connection sent nothing, so even a write retries it.
	_, err = c.Put(t.Context(), "k", nil)
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "(after 2 attempts)") {
		t.Errorf("Put = %v; want ErrUnavailable after 2 attempts", err)
	}
}

func TestContextStopsRetries(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		s := newTestServer(t, func(string) error { return unavailable("") })
		c := newClient(t, s.URL, client.WithMaxAttempts(20), client.WithBackoff(30*time.Second, 30*time.Second))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := c.Get(ctx, "k")
		// The next sleep would pass the deadline: the call returns the
		// server's error at once (TestDeadlineKeepsServerError).
		if !errors.Is(err, client.ErrUnavailable) || connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("Get = %v; want the server's Unavailable", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Get took %v; want it to stop by the 100ms deadline", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		s := newTestServer(t, func(string) error {
			cancel()
			return unavailable("")
		})
		c := newClient(t, s.URL, fastRetries, client.WithMaxAttempts(20))
		_, err := c.Put(ctx, "k", []byte("v"))
		if !errors.Is(err, context.Canceled) && connect.CodeOf(err) != connect.CodeCanceled {
			t.Errorf("Put = %v; want Canceled", err)
		}
		if n := s.calls.Load(); n != 1 {
			t.Errorf("server saw %d calls after cancel; want 1", n)
		}
	})
	t.Run("WithTimeout", func(t *testing.T) {
		release := make(chan struct{})
		s := newTestServer(t, func(string) error {
			<-release
			return nil
		})
		t.Cleanup(func() { close(release) }) // before the server's Close
		c := newClient(t, s.URL, client.WithTimeout(50*time.Millisecond))
		_, _, err := c.Get(t.Context(), "k")
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			t.Errorf("Get = %v; want DeadlineExceeded", err)
		}
		if n := s.calls.Load(); n != 1 {
			t.Errorf("server saw %d calls; want 1", n)
		}
	})
}

func TestPreconditionError(t *testing.T) {
	ctx := t.Context()
	s := newTestServer(t, nil)
	c := newClient(t, s.URL)
	v, err := c.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		call    func() error
		want    client.PreconditionError
		message string
	}{
		{
			name:    "put if version",
			call:    func() error { _, err := c.Put(ctx, "k", []byte("x"), client.WithIfVersion(v+100)); return err },
			want:    client.PreconditionError{Key: "k", CurrentVersion: v},
			message: fmt.Sprintf(`wisp: put "k": precondition failed: current version is %d`, v),
		},
		{
			name:    "put if absent",
			call:    func() error { _, err := c.Put(ctx, "k", []byte("x"), client.WithIfAbsent()); return err },
			want:    client.PreconditionError{Key: "k", CurrentVersion: v},
			message: fmt.Sprintf(`wisp: put "k": precondition failed: current version is %d`, v),
		},
		{
			name:    "put missing key",
			call:    func() error { _, err := c.Put(ctx, "nope", []byte("x"), client.WithIfVersion(3)); return err },
			want:    client.PreconditionError{Key: "nope"},
			message: `wisp: put "nope": precondition failed: key does not exist`,
		},
		{
			name:    "delete",
			call:    func() error { _, _, err := c.Delete(ctx, "k", client.WithIfVersion(v+1)); return err },
			want:    client.PreconditionError{Key: "k", CurrentVersion: v},
			message: fmt.Sprintf(`wisp: delete "k": precondition failed: current version is %d`, v),
		},
		{
			name: "batch",
			call: func() error {
				_, err := c.Batch(ctx, client.PutOp("a", nil), client.PutOp("k", nil, client.WithIfAbsent()))
				return err
			},
			want:    client.PreconditionError{Key: "k", CurrentVersion: v, OpIndex: 1},
			message: fmt.Sprintf(`wisp: batch: op 1 on "k": precondition failed: current version is %d`, v),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var pe *client.PreconditionError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v; want a *PreconditionError", err)
			}
			if pe.Key != tc.want.Key || pe.CurrentVersion != tc.want.CurrentVersion || pe.OpIndex != tc.want.OpIndex {
				t.Errorf("PreconditionError = {%q %d %d}; want {%q %d %d}",
					pe.Key, pe.CurrentVersion, pe.OpIndex, tc.want.Key, tc.want.CurrentVersion, tc.want.OpIndex)
			}
			if !errors.Is(err, client.ErrPreconditionFailed) || connect.CodeOf(err) != connect.CodeFailedPrecondition {
				t.Errorf("err = %v; want ErrPreconditionFailed with CodeFailedPrecondition", err)
			}
			if err.Error() != tc.message {
				t.Errorf("err.Error() = %q; want %q", err, tc.message)
			}
		})
	}
	// A FailedPrecondition without the detail is some other precondition,
	// not a failed compare-and-swap.
	_, _, err = c.Increment(ctx, "k", 1)
	var pe *client.PreconditionError
	if errors.As(err, &pe) || errors.Is(err, client.ErrPreconditionFailed) || connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("Increment(k) of a non-integer = %v; want CodeFailedPrecondition, not a PreconditionError", err)
	}
	if _, found, err := c.Get(ctx, "a"); err != nil || found {
		t.Errorf("Get(a) = %v, %v; want not found: the batch failed", found, err)
	}
}

func TestInvalidArgumentFailsFast(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s.URL)
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"get empty key", func() error { _, _, err := c.Get(ctx, ""); return err }},
		{"get bad consistency", func() error { _, _, err := c.Get(ctx, "k", client.WithConsistency(7)); return err }},
		{"put empty key", func() error { _, err := c.Put(ctx, "", []byte("v")); return err }},
		{"put negative ttl", func() error { _, err := c.Put(ctx, "k", nil, client.WithTTL(-time.Second)); return err }},
		{"put if version and absent", func() error {
			_, err := c.Put(ctx, "k", nil, client.WithIfVersion(1), client.WithIfAbsent())
			return err
		}},
		{"delete empty key", func() error { _, _, err := c.Delete(ctx, ""); return err }},
		{"delete ttl", func() error { _, _, err := c.Delete(ctx, "k", client.WithTTL(time.Second)); return err }},
		{"delete if absent", func() error { _, _, err := c.Delete(ctx, "k", client.WithIfAbsent()); return err }},
		{"increment empty key", func() error { _, _, err := c.Increment(ctx, "", 1); return err }},
		{"scan negative limit", func() error { _, err := c.Scan(ctx, client.ScanOptions{Limit: -1}); return err }},
		{"batch no ops", func() error { _, err := c.Batch(ctx); return err }},
		{"batch zero op", func() error { _, err := c.Batch(ctx, client.Op{}); return err }},
		{"batch empty key", func() error { _, err := c.Batch(ctx, client.PutOp("k", nil), client.IncrementOp("", 1)); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, client.ErrInvalidArgument) {
				t.Errorf("err = %v; want ErrInvalidArgument", err)
			}
		})
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("server saw %d calls; want 0", n)
	}
	if _, err := c.Put(ctx, "", nil); err == nil || err.Error() != "wisp: put: invalid argument: empty key" {
		t.Errorf("Put(\"\") = %v; want %q", err, "wisp: put: invalid argument: empty key")
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://[::1"} {
		if _, err := client.New(u); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("New(%q) = %v; want ErrInvalidArgument", u, err)
		}
	}
	if _, err := client.New("http://x", client.WithProtocol(9)); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("New(WithProtocol(9)) = %v; want ErrInvalidArgument", err)
	}
}

// TestConcurrentUse hammers one Client from many goroutines while the
// servers keep redirecting it, to let -race check the endpoint cache.
func TestConcurrentUse(t *testing.T) {
	const (
		goroutines  = 8
		calls       = 50
		maxAttempts = 20 // redirects can chain; the hammer is about races
	)
	// Each server names the other as leader on a third of its calls, at
	// random: "every third call" let goroutines fall into lockstep, one of
	// them always drawing the redirect until its attempts ran out.
	var aURL, bURL atomic.Pointer[string]
	redirect := func(to *atomic.Pointer[string]) func(string) error {
		return func(string) error {
			if rand.IntN(3) == 0 {
				return unavailable(*to.Load())
			}
			return nil
		}
	}
	a := newTestServer(t, redirect(&bURL))
	b := newTestServer(t, redirect(&aURL))
	aURL.Store(&a.URL)
	bURL.Store(&b.URL)
	c := newClient(t, b.URL, fastRetries, client.WithMaxAttempts(maxAttempts))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				key := fmt.Sprintf("g%d/%d", g, i)
				if _, err := c.Put(t.Context(), key, []byte("v")); err != nil {
					t.Errorf("Put(%q) = %v", key, err)
					return
				}
				if _, _, err := c.Get(t.Context(), key); err != nil {
					t.Errorf("Get(%q) = %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
