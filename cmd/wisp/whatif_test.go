package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestPluginWhatif replays a trace file through the test LRU plugin and
// the built-ins: a plugin that ranks as allkeys-lru does gets its hit
// ratio, and bad input is a usage error or names the trace's line.
func TestPluginWhatif(t *testing.T) {
	lru := filepath.Join("..", "..", "plugins", "testdata", "lru.wasm")
	// Keys 0-9 read round robin, then key 0 again and again: with room
	// for a few keys, LRU keeps key 0 once it is hot.
	var b strings.Builder
	ms := 1
	for range 20 {
		for k := range 10 {
			fmt.Fprintf(&b, "%d get %x 1000\n", ms, k)
			ms++
		}
	}
	for range 100 {
		fmt.Fprintf(&b, "%d get 0 1000\n", ms)
		ms++
	}
	trace := filepath.Join(t.TempDir(), "t.trace")
	if err := os.WriteFile(trace, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := wisp(t, "plugin", "whatif", lru, "--trace", trace, "--budget", "5KiB", "--compare", "allkeys-lru")
	if r.code != exitOK {
		t.Fatalf("whatif = exit %d, %s", r.code, r.stderr)
	}
	ratios := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ratios[f[0]] = v
	}
	if len(ratios) != 2 || ratios["lru"] != ratios["allkeys-lru"] || ratios["lru"] < 0.3 {
		t.Errorf("hit ratios %v: want the LRU plugin's equal to allkeys-lru's, and key 0's repeats hit\n%s", ratios, r.stdout)
	}

	for _, args := range [][]string{
		{"--budget", "lots"},
		{"--compare", "nosuch"},
		{"--skew", "0.5"},
	} {
		r := wisp(t, append([]string{"plugin", "whatif", lru}, args...)...)
		if r.code != exitUsage {
			t.Errorf("whatif %v = exit %d, want %d (usage)", args, r.code, exitUsage)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.trace")
	if err := os.WriteFile(bad, []byte("1 get 0 10\n2 fetch 0 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := wisp(t, "plugin", "whatif", lru, "--trace", bad); r.code != exitFailure || !strings.Contains(r.stderr, "trace line 2") {
		t.Errorf("whatif on a bad trace = exit %d, %q; want a failure naming line 2", r.code, r.stderr)
	}
}

// TestTraceRecordThenWhatif: wisp trace record saves the cluster's
// accesses, and wisp plugin whatif NAME@VERSION replays them through a
// plugin fetched from the cluster.
func TestTraceRecordThenWhatif(t *testing.T) {
	const token = "the-trace-test-operator-token"
	c := nodetest.Start(t, nodetest.Options{Shards: 4, Tune: func(cfg *node.Config) { cfg.OperatorToken = token }})
	t.Setenv(endpointEnv, c.URL(0))
	t.Setenv(operatorTokenEnv, token)
	lru := filepath.Join("..", "..", "plugins", "testdata", "lru.wasm")
	if r := wisp(t, "plugin", "upload", lru, "--kind", "eviction", "--name", "lru"); r.code != exitOK {
		t.Fatalf("upload = exit %d, %s", r.code, r.stderr)
	}
	cli, err := client.New(c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			k := fmt.Sprintf("k%d", i%30)
			if i%3 == 0 {
				cli.Put(t.Context(), k, make([]byte, 1000))
			} else {
				cli.Get(t.Context(), k)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	trace := filepath.Join(t.TempDir(), "access.trace")
	r := wisp(t, "trace", "record", "--duration", "2s", "--out", trace)
	<-done
	if r.code != exitOK || !strings.Contains(r.stdout, "records from 3 nodes") {
		t.Fatalf("trace record = exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(trace)
	if err != nil || !strings.HasPrefix(string(b), "# wisp-trace sample=1\n") || strings.Count(string(b), " get ") < 50 {
		t.Fatalf("trace file (%v):\n%.300s", err, b)
	}
	r = wisp(t, "plugin", "whatif", "lru@1", "--trace", trace, "--budget", "8KiB", "--compare", "allkeys-lru")
	if r.code != exitOK || !strings.Contains(r.stdout, "lru@1") || !strings.Contains(r.stdout, "allkeys-lru") {
		t.Fatalf("whatif lru@1 = exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}

	// Without --trace, a version in the cluster is replayed on the trace the
	// cluster recorded, beside the eviction plugin active now.
	if r := wisp(t, "plugin", "activate", "lru@1"); r.code != exitOK {
		t.Fatalf("activate = exit %d, %s", r.code, r.stderr)
	}
	victim0 := filepath.Join("..", "..", "plugins", "testdata", "victim0.wasm")
	if r := wisp(t, "plugin", "upload", victim0, "--kind", "eviction", "--name", "first"); r.code != exitOK {
		t.Fatalf("upload = exit %d, %s", r.code, r.stderr)
	}
	r = wisp(t, "plugin", "whatif", "first@1", "--budget", "8KiB", "--compare", "allkeys-lru")
	if r.code != exitOK || !strings.Contains(r.stdout, "first@1") || !strings.Contains(r.stdout, "lru@1 (active)") ||
		!strings.Contains(r.stderr, "the trace the cluster recorded last") {
		t.Fatalf("whatif first@1 = exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
}
