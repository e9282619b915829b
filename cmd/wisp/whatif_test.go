package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
