package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisp-db/wisp/shards/node/nodetest"
)

type readyzAnswer struct {
	code     int
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready"`
}

func getReadyz(t *testing.T, url string) readyzAnswer {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a readyzAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("/readyz body %q: %v", b, err)
	}
	a.code = resp.StatusCode
	return a
}

// waitReadyz polls url's /readyz until its answer is ready == want.
func waitReadyz(t *testing.T, url string, want bool, timeout time.Duration) readyzAnswer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a := getReadyz(t, url)
		if a.Ready == want {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %+v after %v; want ready=%v", a, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReadyz: the cluster is ready once every shard is led with all its
// replicas caught up; a dead node makes it not ready (503, naming the
// node), and its return makes it ready again, as a rolling restart needs.
func TestReadyz(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Shards: 4})
	if a := waitReadyz(t, c.URL(0), true, 10*time.Second); a.code != http.StatusOK || len(a.NotReady) != 0 {
		t.Errorf("/readyz of a healthy cluster = %+v; want 200 and no reasons", a)
	}
	c.Kill(2)
	a := waitReadyz(t, c.URL(0), false, 10*time.Second)
	if a.code != http.StatusServiceUnavailable || !strings.Contains(strings.Join(a.NotReady, "\n"), "node n3 is unreachable") {
		t.Errorf("/readyz with n3 down = %+v; want 503 naming n3", a)
	}
	c.Restart(2)
	waitReadyz(t, c.URL(1), true, 20*time.Second)
}
