package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// freeRange returns a base port p such that p..p+n-1 were all free.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// buildWispd builds the wispd binary into dir.
func buildWispd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "wispd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// checkQuietLog checks what a user sees of a clean start and stop: no
// ERROR, a short log, and one "stopped" line at the end.
func checkQuietLog(t *testing.T, logs string, maxLines int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if strings.Contains(logs, "level=ERROR") || len(lines) > maxLines || !strings.Contains(lines[len(lines)-1], "msg=stopped") {
		t.Errorf("log of a clean start and stop: %d lines (want at most %d, no ERROR, ending with msg=stopped):\n%s", len(lines), maxLines, logs)
	}
}

// TestDevRestartKeepsWrites runs the real wispd binary: `wispd dev`, writes,
// SIGTERM (must exit within seconds), start again on the same data dir with
// a fourth node, which joins and takes replicas, and every acknowledged
// write is there, read through every node.
func TestDevRestartKeepsWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wispd")
	}
	dir := t.TempDir()
	bin := buildWispd(t, dir)
	httpBase, raftBase, gossipBase := freeRange(t, 4), freeRange(t, 4), freeRange(t, 4)
	gossip := fmt.Sprintf("127.0.0.1:%d", gossipBase)
	data := filepath.Join(dir, "data")
	start := func(extra ...string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(bin, append([]string{"dev", "--data-dir", data,
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpBase),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftBase), "--gossip-addr", gossip}, extra...)...)
		logs := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, logs
	}
	stop := func(cmd *exec.Cmd, logs *lockedBuffer) {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("wispd exited with %v\n%s", err, logs)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("wispd did not exit within 10s of SIGTERM\n%s", logs)
		}
	}
	urls := []string{}
	for i := range 3 {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", httpBase+i))
	}
	waitHealthy := func(logs *lockedBuffer) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for _, u := range urls {
			for {
				resp, err := http.Get(u + "/healthz")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s not healthy: %v\n%s", u, err, logs)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}

	cmd, logs := start()
	waitHealthy(logs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]uint64{}
	for i := range 50 {
		kv := wispv1connect.NewKVServiceClient(http.DefaultClient, urls[i%3])
		key := fmt.Sprintf("k%02d", i)
		resp, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte(key), Value: []byte("v" + key)}))
		if err != nil {
			t.Fatalf("Put(%q) via %s: %v", key, urls[i%3], err)
		}
		want[key] = resp.Msg.Version
	}
	// Every node's port serves its own series only, so scraping all three
	// counts nothing twice.
	resp, err := http.Get(urls[1] + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`wisp_requests_total{code="ok",method="Put",node="n2"}`,
		`wisp_memory_used_bytes{node="n2",shard="`, `wisp_memory_budget_bytes{node="n2",shard="`,
		`wisp_raft_is_leader{node="n2",shard="`, `wisp_expiry_lag_seconds_bucket{node="n2"`,
		"wisp_build_info{", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics of n2 lacks %s", want)
		}
	}
	if strings.Contains(string(body), `node="n1"`) || strings.Contains(string(body), `node="n3"`) {
		t.Errorf("/metrics of n2 serves other nodes' series")
	}

	t0 := time.Now()
	stop(cmd, logs)
	t.Logf("SIGTERM to exit: %v", time.Since(t0))
	checkQuietLog(t, logs.String(), 12)
	if os.Getenv("WISP_TEST_LOG") != "" {
		t.Log(logs.String())
	}

	for _, f := range []string{"cluster.json", "cluster-map.json", "raft-log.db", "shard-7"} {
		if _, err := os.Stat(filepath.Join(data, "n1", f)); err != nil {
			t.Errorf("data layout: %v", err)
		}
	}

	// Restarted with a fourth node: n1-n3 come back from their cluster
	// maps, n4 joins and the placement driver moves replicas onto it.
	cmd, logs = start("--nodes", "4")
	urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", httpBase+3))
	waitHealthy(logs)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get(urls[3] + "/healthz")
		var health struct{ Replicas int }
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
		}
		if health.Replicas > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n4 holds no replica 60s after joining: %v\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, u := range urls {
		kv := wispv1connect.NewKVServiceClient(http.DefaultClient, u)
		for key, version := range want {
			resp, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: []byte(key)}))
			if err != nil {
				t.Fatalf("Get(%q) via node %d after restart: %v", key, i+1, err)
			}
			if !resp.Msg.Found || string(resp.Msg.Value) != "v"+key || resp.Msg.Version != version {
				t.Fatalf("Get(%q) after restart = %v; want v%s at version %d", key, resp.Msg, key, version)
			}
		}
	}
	stop(cmd, logs)

	// Restarted with three nodes again: n4 starts, is drained (its
	// replicas move back to n1-n3), removed from the cluster and its data
	// deleted; every write is still there.
	cmd, logs = start()
	urls = urls[:3]
	ctx, cancel = context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for deadline := time.Now().Add(90 * time.Second); !strings.Contains(logs.String(), "node retired"); {
		if time.Now().After(deadline) {
			t.Fatalf("n4 not retired 90s after the restart with --nodes 3:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, "n4")); !os.IsNotExist(err) {
		t.Errorf("n4's data directory after its retirement: %v; want it gone", err)
	}
	for { // n1's map may trail the meta leader's by a moment
		st, err := wispv1connect.NewClusterServiceClient(http.DefaultClient, urls[0]).Status(ctx, connect.NewRequest(&wispv1.StatusRequest{}))
		if err == nil && len(st.Msg.Nodes) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("status after retiring n4: %v, %v; want three nodes", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for key, version := range want {
		resp, err := wispv1connect.NewKVServiceClient(http.DefaultClient, urls[1]).Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: []byte(key)}))
		if err != nil || !resp.Msg.Found || resp.Msg.Version != version {
			t.Fatalf("Get(%q) after retiring n4 = %v, %v; want version %d", key, resp, err, version)
		}
	}
	stop(cmd, logs)
	// The shard count is fixed when a cluster is created.
	out, err := exec.Command(bin, "dev", "--data-dir", data, "--shards", "4",
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpBase), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftBase), "--gossip-addr", gossip).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "fixed when a cluster is created") {
		t.Errorf("restart with --shards 4 on an 8-shard data dir: err %v, output:\n%s", err, out)
	}
}

// TestDevSideBySide: two dev clusters run at once given only their own
// --http-addr and --data-dir: Raft and gossip ports follow the API port.
func TestDevSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wispd")
	}
	dir := t.TempDir()
	bin := buildWispd(t, dir)
	base := 0
	for try := 0; try < 50 && base == 0; try++ {
		b := freeRange(t, 13)
		if b-devRaftOffset < 1024 {
			continue
		}
		free := true
		for _, start := range []int{b - devRaftOffset, b - devRaftOffset + gossipPortOffset} {
			for i := range 13 {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", start+i))
				if err != nil {
					free = false
					break
				}
				l.Close()
			}
		}
		if free {
			base = b
		}
	}
	if base == 0 {
		t.Fatal("no free ports for two dev clusters")
	}
	var logs []*lockedBuffer
	for c := range 2 {
		out := &lockedBuffer{}
		cmd := exec.Command(bin, "dev", "--data-dir", filepath.Join(dir, fmt.Sprint("data", c)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", base+10*c))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
		logs = append(logs, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for c := range 2 {
		url := fmt.Sprintf("http://127.0.0.1:%d", base+10*c)
		cl := wispv1connect.NewClusterServiceClient(http.DefaultClient, url)
		for {
			st, err := cl.Status(ctx, connect.NewRequest(&wispv1.StatusRequest{}))
			if err == nil && st.Msg.Ready {
				want := fmt.Sprintf("127.0.0.1:%d", base+10*c-devRaftOffset)
				if len(st.Msg.Nodes) != 3 || st.Msg.Nodes[0].RaftAddr != want {
					t.Fatalf("cluster %d: status %v; want 3 nodes, n1's Raft on %s", c, st.Msg.Nodes, want)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("cluster %d at %s not ready: %v\n%s", c, url, err, logs[c])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	kv0 := wispv1connect.NewKVServiceClient(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d", base))
	kv1 := wispv1connect.NewKVServiceClient(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d", base+10))
	if _, err := kv0.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("only-in-0"), Value: []byte("v")})); err != nil {
		t.Fatal(err)
	}
	if got, err := kv1.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: []byte("only-in-0")})); err != nil || got.Msg.Found {
		t.Errorf("the second cluster sees the first's key: %v, %v", got, err)
	}
}
