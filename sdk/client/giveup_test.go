package client_test

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/sdk/client"
)

// noLeaderError is what a node answers when a shard stayed leaderless
// through its election wait.
func noLeaderError(waitedMs uint32) error {
	err := connect.NewError(connect.CodeUnavailable, errors.New("shard 3 has no leader: 1 of 3 replicas reachable"))
	d, derr := connect.NewErrorDetail(&wispv1.NoLeader{Shard: 3, Replicas: 3, ReplicasReachable: 1, WaitedMs: waitedMs})
	if derr != nil {
		panic(derr)
	}
	err.AddDetail(d)
	return err
}

// TestNoLeader: a NoLeader answer after an election wait allows one more
// attempt, and the caller gets the server's message, not a deadline.
func TestNoLeader(t *testing.T) {
	const msg = "unavailable: shard 3 has no leader: 1 of 3 replicas reachable"
	tests := []struct {
		name     string
		answers  []error // the server's answers in turn; the last repeats
		attempts int
		want     string // the error after `wisp: put "k": `
	}{
		{"waited", []error{noLeaderError(600)}, 2, msg + " (after 2 attempts)"},
		{"after plain unavailable", []error{unavailable(""), unavailable(""), noLeaderError(600)}, 4, msg + " (after 4 attempts)"},
		{"then not the leader", []error{noLeaderError(600), unavailable("")}, 2, "unavailable: not the leader (after 2 attempts)"},
		{"then success", []error{noLeaderError(600), nil}, 2, ""},
		// Without a wait the server says nothing about an election: the
		// usual retries apply.
		{"no wait", []error{noLeaderError(0)}, 5, msg + " (after 5 attempts)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			s := newTestServer(t, func(string) error {
				i := int(n.Add(1)) - 1
				return tc.answers[min(i, len(tc.answers)-1)]
			})
			c := newClient(t, s.URL, fastRetries, client.WithMaxAttempts(5), client.WithRouting(false))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := c.Put(ctx, "k", []byte("v"))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Put took %v; want it to give up without waiting for the deadline", d)
			}
			if calls := int(s.calls.Load()); calls != tc.attempts {
				t.Errorf("server saw %d attempts; want %d", calls, tc.attempts)
			}
			if tc.want == "" {
				if err != nil {
					t.Errorf("Put = %v; want success", err)
				}
				return
			}
			if want := `wisp: put "k": ` + tc.want; err == nil || err.Error() != want {
				t.Errorf("Put error = %q; want %q", err, want)
			}
			if !errors.Is(err, client.ErrUnavailable) || connect.CodeOf(err) != connect.CodeUnavailable {
				t.Errorf("Put = %v; want ErrUnavailable with CodeUnavailable", err)
			}
		})
	}

	// Reads, which also retry transport errors, stop the same way.
	s := newTestServer(t, func(string) error { return noLeaderError(600) })
	c := newClient(t, s.URL, fastRetries, client.WithMaxAttempts(20))
	_, _, err := c.Get(t.Context(), "k")
	if want := `wisp: get "k": ` + msg + " (after 2 attempts)"; err == nil || err.Error() != want {
		t.Errorf("Get error = %q; want %q", err, want)
	}
	if calls := s.calls.Load(); calls != 2 {
		t.Errorf("Get: server saw %d attempts; want 2", calls)
	}
}

// TestDeadlineKeepsServerError: a call whose next backoff would run past
// its deadline returns the server's error, not DeadlineExceeded; only an
// attempt the deadline cut short reports the deadline, with the error
// before it.
func TestDeadlineKeepsServerError(t *testing.T) {
	t.Run("backoff past the deadline", func(t *testing.T) {
		s := newTestServer(t, func(string) error { return unavailable("") })
		c := newClient(t, s.URL, client.WithMaxAttempts(20), client.WithBackoff(time.Hour, time.Hour))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Put(ctx, "k", []byte("v"))
		// The first sleep, random in [0, 30s], most likely passes the
		// deadline; if not, the client sleeps and tries again.
		want := regexp.MustCompile(`^wisp: put "k": unavailable: not the leader( \(after \d+ attempts\))?$`)
		if err == nil || !want.MatchString(err.Error()) {
			t.Errorf("Put error = %q; want it to match %s", err, want)
		}
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("CodeOf(%v) = %v; want unavailable", err, connect.CodeOf(err))
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Put took %v; want it back by the 2s deadline", d)
		}
	})
	t.Run("attempt cut short", func(t *testing.T) {
		release := make(chan struct{})
		var n atomic.Int64
		s := newTestServer(t, func(string) error {
			if n.Add(1) == 1 {
				return unavailable("")
			}
			<-release
			return nil
		})
		t.Cleanup(func() { close(release) }) // before the server's Close
		c := newClient(t, s.URL, fastRetries, client.WithRouting(false))
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Put(ctx, "k", []byte("v"))
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Put = %v; want DeadlineExceeded", err)
		}
		if want := "(last error: unavailable: not the leader) (after 2 attempts)"; err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("Put error = %q; want it to end with %q", err, want)
		}
	})
}

// TestMaxDialFailures: with nothing listening, a client that allows one
// failure to connect gives up at once and names the URL.
func TestMaxDialFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		fails    int
		attempts string
	}{{1, ""}, {2, " (after 2 attempts)"}} {
		c := newClient(t, url, client.WithMaxAttempts(20), client.WithMaxDialFailures(tc.fails))
		start := time.Now()
		_, err := c.Put(t.Context(), "k", []byte("v"))
		if d := time.Since(start); d > time.Second {
			t.Errorf("WithMaxDialFailures(%d): Put took %v; want it back at once", tc.fails, d)
		}
		want := `wisp: put "k": unavailable: cannot reach ` + url + ": connection refused" + tc.attempts
		if err == nil || err.Error() != want {
			t.Errorf("WithMaxDialFailures(%d): Put error = %q; want %q", tc.fails, err, want)
		}
		var ue *client.UnreachableError
		if !errors.As(err, &ue) || ue.URL != url || !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("WithMaxDialFailures(%d): Put = %v; want an UnreachableError for %s wrapping ECONNREFUSED", tc.fails, err, url)
		}
	}
}
