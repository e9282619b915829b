package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/ring"
)

// TestStartThreeProcesses runs a real cluster as three `wispd start`
// processes: it serves, keeps each node's data in its --data-dir itself,
// logs one ready line per node, and a clean stop logs no ERROR.
func TestStartThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wispd")
	}
	dir := t.TempDir()
	bin := buildWispd(t, dir)
	httpBase, raftBase, gossipBase := freeRange(t, 3), freeRange(t, 3), freeRange(t, 3)
	var peers, join []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("n%d=http://127.0.0.1:%d@127.0.0.1:%d", i+1, httpBase+i, raftBase+i))
		join = append(join, fmt.Sprintf("127.0.0.1:%d", gossipBase+i))
	}
	type proc struct {
		cmd  *exec.Cmd
		logs *lockedBuffer
		url  string
		data string
	}
	var procs []proc
	for i := range 3 {
		p := proc{logs: &lockedBuffer{}, url: fmt.Sprintf("http://127.0.0.1:%d", httpBase+i), data: filepath.Join(dir, fmt.Sprintf("d%d", i+1))}
		p.cmd = exec.Command(bin, "start", "--node-id", fmt.Sprintf("n%d", i+1), "--data-dir", p.data,
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpBase+i), "--peers", strings.Join(peers, ","), "--shards", "4",
			"--gossip-addr", join[i], "--join", strings.Join(join, ","))
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		procs = append(procs, p)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range procs {
		for {
			resp, err := http.Get(p.url + "/healthz")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not healthy: %v\n%s", p.url, err, p.logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Each logs its ready line once it sees every shard led: a moment
	// after /healthz may already say so.
	for _, p := range procs {
		for !strings.Contains(p.logs.String(), "msg=\"node ready\"") {
			if time.Now().After(deadline) {
				t.Fatalf("%s logged no ready line:\n%s", p.url, p.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	put, err := wispv1connect.NewKVServiceClient(http.DefaultClient, procs[0].url).Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: []byte("v")}))
	if err != nil {
		t.Fatalf("Put via n1: %v", err)
	}
	get, err := wispv1connect.NewKVServiceClient(http.DefaultClient, procs[2].url).Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: []byte("k")}))
	if err != nil || string(get.Msg.Value) != "v" || get.Msg.Version != put.Msg.Version {
		t.Fatalf("Get via n3 = %v, %v; want v at version %d", get, err, put.Msg.Version)
	}

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- p.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s exited with %v", p.url, err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("%s did not exit within 15s of SIGTERM", p.url)
			}
		}()
	}
	wg.Wait()
	for _, p := range procs {
		if _, err := os.Stat(filepath.Join(p.data, "cluster.json")); err != nil {
			t.Errorf("data layout: %v", err)
		}
		if want := "data=" + p.data + "\n"; !strings.Contains(p.logs.String(), "msg=\"node ready\"") || !strings.Contains(p.logs.String(), want) {
			t.Errorf("log lacks a ready line with %s:\n%s", want, p.logs)
		}
		// The three stop together, yet one may stop a millisecond before
		// another: a leader logs a WARN or two for a peer already gone.
		checkQuietLog(t, p.logs.String(), 8)
	}
}

// TestStartHealsAfterKill runs four `wispd start` processes, kills one with
// SIGKILL, and waits until the survivors have rebuilt its replicas: every
// shard has three replicas again, none on the dead node, and every write
// acknowledged before the kill reads back.
func TestStartHealsAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wispd")
	}
	const nodes, shards = 4, 4
	dir := t.TempDir()
	bin := buildWispd(t, dir)
	httpBase, raftBase, gossipBase := freeRange(t, nodes), freeRange(t, nodes), freeRange(t, nodes)
	var peers, join []string
	for i := range nodes {
		peers = append(peers, fmt.Sprintf("n%d=http://127.0.0.1:%d@127.0.0.1:%d", i+1, httpBase+i, raftBase+i))
		join = append(join, fmt.Sprintf("127.0.0.1:%d", gossipBase+i))
	}
	var cmds []*exec.Cmd
	var logs []*strings.Builder
	for i := range nodes {
		out := &strings.Builder{}
		cmd := exec.Command(bin, "start", "--node-id", fmt.Sprintf("n%d", i+1), "--data-dir", filepath.Join(dir, fmt.Sprintf("d%d", i+1)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpBase+i), "--peers", strings.Join(peers, ","), "--shards", fmt.Sprint(shards),
			"--gossip-addr", join[i], "--join", strings.Join(join, ","), "--dead-node-timeout", "2s")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		cmds, logs = append(cmds, cmd), append(logs, out)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", httpBase)
	kv := wispv1connect.NewKVServiceClient(http.DefaultClient, url)
	cluster := wispv1connect.NewClusterServiceClient(http.DefaultClient, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := 0; i < 100; {
		_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}))
		switch {
		case err == nil:
			i++
		case ctx.Err() != nil:
			t.Fatalf("put k%d: %v\n%s", i, err, logs[0])
		default:
			time.Sleep(50 * time.Millisecond) // still starting
		}
	}
	cmds[3].Process.Kill()
	cmds[3].Wait()
	t0 := time.Now()
	for {
		res, err := cluster.ShardMap(ctx, connect.NewRequest(&wispv1.ShardMapRequest{}))
		healed := err == nil && len(res.Msg.Shards) == shards
		for _, sh := range res.Msg.GetShards() {
			healed = healed && len(sh.Replicas) == 3 && !slices.Contains(sh.Replicas, "n4")
		}
		if healed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not healed %v after the kill: %v, %v\n%s", time.Since(t0), res, err, logs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every shard has 3 replicas on live nodes %v after kill -9", time.Since(t0).Round(time.Millisecond))
	for i := range 100 {
		get, err := kv.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: fmt.Appendf(nil, "k%d", i)}))
		if err != nil || string(get.Msg.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("get k%d after healing = %v, %v", i, get, err)
		}
	}
}

// TestStartBootstrapExpectThenJoin creates a cluster without a member list:
// three `wispd start --bootstrap-expect 3` processes, each told only one
// other's gossip address, create it together; a fourth with only --join
// joins it later, takes over replicas and serves every write.
func TestStartBootstrapExpectThenJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wispd")
	}
	const shards = 8
	dir := t.TempDir()
	bin := buildWispd(t, dir)
	httpBase, raftBase, gossipBase := freeRange(t, 4), freeRange(t, 4), freeRange(t, 4)
	var logs []*strings.Builder
	start := func(i int, extra ...string) {
		out := &strings.Builder{}
		args := append([]string{"start", "--node-id", fmt.Sprintf("n%d", i+1), "--data-dir", filepath.Join(dir, fmt.Sprintf("d%d", i+1)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpBase+i), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftBase+i),
			"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", gossipBase+i)}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		logs = append(logs, out)
	}
	// n1 knows no one; n2 and n3 each know one other.
	start(0, "--bootstrap-expect", "3", "--shards", fmt.Sprint(shards), "--zone", "z1")
	start(1, "--bootstrap-expect", "3", "--shards", fmt.Sprint(shards), "--zone", "z2", "--join", fmt.Sprintf("127.0.0.1:%d", gossipBase))
	start(2, "--bootstrap-expect", "3", "--shards", fmt.Sprint(shards), "--zone", "z3", "--join", fmt.Sprintf("127.0.0.1:%d", gossipBase+1))

	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", httpBase+i) }
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	kv := wispv1connect.NewKVServiceClient(http.DefaultClient, url(2))
	for i := 0; i < 50; {
		_, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}))
		switch {
		case err == nil:
			i++
		case ctx.Err() != nil:
			t.Fatalf("put k%d: %v\nn1:\n%s\nn3:\n%s", i, err, logs[0], logs[2])
		default:
			time.Sleep(50 * time.Millisecond) // still starting
		}
	}
	cluster := wispv1connect.NewClusterServiceClient(http.DefaultClient, url(0))
	res, err := cluster.ShardMap(ctx, connect.NewRequest(&wispv1.ShardMapRequest{}))
	if err != nil || len(res.Msg.Shards) != shards {
		t.Fatalf("ShardMap = %v, %v; want %d shards", res, err, shards)
	}

	// n4 joins through n2's gossip address, with no --shards: it takes the
	// cluster's.
	start(3, "--join", fmt.Sprintf("127.0.0.1:%d", gossipBase+1), "--zone", "z1")
	t0 := time.Now()
	// The shards the ring gives n4 among four nodes in three zones
	// (ring.Place spreads a shard over zones where each node's load bound
	// allows, and bounds that load loosely for few shards).
	target, err := ring.Place(shards, []ring.Node{{ID: "n1", Zone: "z1"}, {ID: "n2", Zone: "z2"}, {ID: "n3", Zone: "z3"}, {ID: "n4", Zone: "z1"}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, sh := range target.Shards {
		if slices.Contains(sh.Replicas, "n4") {
			want++
		}
	}
	for {
		res, err := cluster.ShardMap(ctx, connect.NewRequest(&wispv1.ShardMapRequest{}))
		holds, full := 0, err == nil
		var got []*wispv1.ShardPlacement
		if err == nil {
			got = res.Msg.Shards
		}
		for _, sh := range got {
			if slices.Contains(sh.Replicas, "n4") {
				holds++
			}
			full = full && len(sh.Replicas) == 3
		}
		if full && holds == want {
			t.Logf("n4 joined and holds %d of %d shards %v after it started", holds, shards, time.Since(t0).Round(time.Millisecond))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("n4 holds %d shards, not %d, %v after it started: %v, %v\nn4:\n%s\nn1:\n%s", holds, want, time.Since(t0), got, err, logs[3], logs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Once ready, status reports the zones, and every shard's voters are
	// where ring.Place puts them given the zones the nodes gossiped.
	var st *connect.Response[wispv1.StatusResponse]
	for {
		st, err = cluster.Status(ctx, connect.NewRequest(&wispv1.StatusRequest{}))
		if err == nil && st.Msg.Ready {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not ready after n4 joined: %v, %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range st.Msg.Nodes {
		if want := map[string]string{"n1": "z1", "n2": "z2", "n3": "z3", "n4": "z1"}[n.Id]; n.Zone != want {
			t.Errorf("status: %s in zone %q; want %q", n.Id, n.Zone, want)
		}
	}
	for _, sh := range st.Msg.Shards {
		var ids []string
		for _, r := range sh.Replicas {
			if r.Voter {
				ids = append(ids, r.NodeId)
			}
		}
		want := slices.Clone(target.Shards[sh.Id].Replicas)
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("shard %d: voters %v; ring.Place with zones wants %v", sh.Id, ids, want)
		}
	}
	via := wispv1connect.NewKVServiceClient(http.DefaultClient, url(3))
	for i := range 50 {
		get, err := via.Get(ctx, connect.NewRequest(&wispv1.GetRequest{Key: fmt.Appendf(nil, "k%d", i)}))
		if err != nil || string(get.Msg.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("get k%d via n4 = %v, %v", i, get, err)
		}
	}
	for _, l := range logs {
		if strings.Contains(l.String(), "level=ERROR") {
			t.Errorf("a node logged an ERROR:\n%s", l)
		}
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
