package client_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestExampleRuns runs Example, README's Go example, against a real
// cluster: the address it names, 127.0.0.1:8080, is dialed as the first
// node's. Calls the client routes to other nodes use their own addresses.
func TestExampleRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := nodetest.Start(t, nodetest.Options{})
	node0 := strings.TrimPrefix(c.URL(0), "http://")

	// The client clones http.DefaultTransport: redirect 127.0.0.1:8080
	// there. No test of this package runs in parallel.
	saved := http.DefaultTransport
	t.Cleanup(func() { http.DefaultTransport = saved })
	tr := saved.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "127.0.0.1:8080" {
			addr = node0
		}
		return d.DialContext(ctx, network, addr)
	}
	http.DefaultTransport = tr

	out := captureStdout(t, Example)
	if want := "true hello true\n"; out != want {
		t.Errorf("Example printed %q; want %q", out, want)
	}
}

// captureStdout runs f and returns what it wrote to os.Stdout.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	func() {
		defer func() { os.Stdout = saved }()
		f()
	}()
	w.Close()
	out := <-done
	r.Close()
	return out
}
