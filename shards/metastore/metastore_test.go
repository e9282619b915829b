package metastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// startGroup starts three replicas of a group on loopback, bolt files in a
// temp dir, and returns them.
func startGroup(t *testing.T) []*raftgroup.Group {
	t.Helper()
	var peers []raftgroup.Peer
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, raftgroup.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: l.Addr().String()})
		l.Close()
	}
	dir := t.TempDir()
	groups := make([]*raftgroup.Group, 3)
	for i, p := range peers {
		g, err := raftgroup.Open(raftgroup.Config{
			NodeID: p.ID, Dir: filepath.Join(dir, p.ID), RaftAddr: p.Addr, Peers: peers,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatalf("open %s: %v", p.ID, err)
		}
		groups[i] = g
		t.Cleanup(func() { g.Kill() })
	}
	return groups
}

func waitLeader(t *testing.T, groups []*raftgroup.Group) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, g := range groups {
			if g != nil && g.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader within 10s")
	return -1
}

func node(i int) meta.Node {
	return meta.Node{ID: fmt.Sprintf("n%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d", 8080+i), RaftAddr: fmt.Sprintf("127.0.0.1:%d", 7080+i)}
}

func bootstrap() *meta.Command {
	cmd := &meta.Command{Op: meta.OpBootstrap, Shards: 4, KeyVnodes: 64, Nodes: []meta.Node{node(1), node(2), node(3)}}
	for range 4 {
		cmd.Replicas = append(cmd.Replicas, []meta.Replica{{Node: "n1", Voter: true}, {Node: "n2", Voter: true}, {Node: "n3", Voter: true}})
	}
	return cmd
}

// TestStore: the map is changed on the leader, read back linearizably and
// from every replica, refused on followers, and survives a leader change.
func TestStore(t *testing.T) {
	groups := startGroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	li := waitLeader(t, groups)
	stores := []*Store{New(groups[0]), New(groups[1]), New(groups[2])}

	m, v, err := stores[li].Map(ctx, raftgroup.Linearizable)
	if err != nil || v != 0 || m.Epoch != 0 {
		t.Fatalf("Map before bootstrap = epoch %d, version %d, %v; want an empty map", m.Epoch, v, err)
	}
	if _, err := stores[(li+1)%3].Apply(ctx, bootstrap()); !errors.Is(err, raftgroup.ErrNotLeader) {
		t.Errorf("Apply on a follower = %v; want ErrNotLeader", err)
	}
	if m, err = stores[li].Apply(ctx, bootstrap()); err != nil || m.Epoch != 1 {
		t.Fatalf("Apply(bootstrap) = epoch %d, %v", m.Epoch, err)
	}
	if _, err := stores[li].Apply(ctx, bootstrap()); !errors.Is(err, meta.ErrBootstrapped) {
		t.Errorf("a second bootstrap = %v; want meta.ErrBootstrapped", err)
	}
	n4 := node(4)
	if m, err = stores[li].Apply(ctx, &meta.Command{Op: meta.OpAddNode, Node: &n4}); err != nil || m.Epoch != 2 {
		t.Fatalf("Apply(add n4) = epoch %d, %v", m.Epoch, err)
	}
	same, err := stores[li].Apply(ctx, &meta.Command{Op: meta.OpAddNode, Node: &n4})
	if err != nil || same.Epoch != 2 {
		t.Errorf("adding n4 again = epoch %d, %v; want no change at epoch 2", same.Epoch, err)
	}
	_, v2, _ := stores[li].Map(ctx, raftgroup.Linearizable)

	// Every replica gets the map.
	for i, s := range stores {
		deadline := time.Now().Add(5 * time.Second)
		for {
			m, v, err := s.Map(ctx, raftgroup.Stale)
			if err == nil && v == v2 {
				if _, ok := m.Node("n4"); !ok || m.Epoch != 2 {
					t.Errorf("replica %d: map at epoch %d lacks n4", i, m.Epoch)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d at version %d (%v); want %d", i, v, err, v2)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A new leader carries on from the same map.
	groups[li].Kill()
	groups[li] = nil
	nl := waitLeader(t, groups)
	m, err = stores[nl].Apply(ctx, &meta.Command{Op: meta.OpSetNodeState, NodeID: "n4", State: meta.Draining})
	if err != nil || m.Epoch != 3 {
		t.Fatalf("Apply on the new leader = epoch %d, %v; want epoch 3", m.Epoch, err)
	}
	if n, _ := m.Node("n4"); n.State != meta.Draining {
		t.Errorf("n4 is %q; want draining", n.State)
	}
}

// TestStoreConcurrentChanges: changes made at once through two Stores on
// the leader (each with its own lock, as after a leader change) are all
// kept: a compare-and-set refused because the other committed first is
// recomputed from the new map.
func TestStoreConcurrentChanges(t *testing.T) {
	groups := startGroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	li := waitLeader(t, groups)
	a, b := New(groups[li]), New(groups[li])
	if _, err := a.Apply(ctx, bootstrap()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for w, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				n := node(10 + 10*w + i)
				if _, err := s.Apply(ctx, &meta.Command{Op: meta.OpAddNode, Node: &n}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Apply: %v", err)
	}
	m, _, err := a.Map(ctx, raftgroup.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 23 || m.Epoch != 21 {
		t.Errorf("map has %d nodes at epoch %d; want 23 at 21", len(m.Nodes), m.Epoch)
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
}

// TestModules: a module put on the leader is read back whole by every
// replica, a second put of it changes nothing, and a follower refuses puts.
func TestModules(t *testing.T) {
	groups := startGroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	wasm := make([]byte, 3<<20+5) // 13 chunks, the last a short one
	for i := range wasm {
		wasm[i] = byte(i * 7)
	}
	// A leader may lose its lease mid-put on a loaded machine; PutModule
	// finishes what an earlier one started, so the caller (ChangePlugin,
	// then the client) retries, as here.
	var (
		s      *Store
		leader int
		sum    [sha256.Size]byte
		err    error
	)
	for attempt := 1; ; attempt++ {
		leader = waitLeader(t, groups)
		s = New(groups[leader])
		if sum, err = s.PutModule(ctx, wasm); err == nil {
			break
		}
		if attempt == 5 || !(errors.Is(err, raftgroup.ErrOutcomeUnknown) || errors.Is(err, raftgroup.ErrNotLeader)) {
			t.Fatalf("PutModule, attempt %d: %v", attempt, err)
		}
		t.Logf("PutModule, attempt %d: %v; retrying", attempt, err)
	}
	if sum != sha256.Sum256(wasm) {
		t.Fatalf("PutModule returned sum %x, want the module's", sum)
	}
	if _, err := s.PutModule(ctx, wasm); err != nil {
		t.Fatalf("PutModule of a stored module: %v", err)
	}
	got, err := s.Module(ctx, raftgroup.Linearizable, sum)
	if err != nil || !bytes.Equal(got, wasm) {
		t.Fatalf("Module on the leader = %d bytes, %v; want the %d stored", len(got), err, len(wasm))
	}
	follower := groups[(leader+1)%3]
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = New(follower).Module(ctx, raftgroup.Stale, sum)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || !bytes.Equal(got, wasm) {
		t.Fatalf("Module on a follower = %d bytes, %v", len(got), err)
	}
	if _, err := New(follower).PutModule(ctx, []byte("other")); !errors.Is(err, raftgroup.ErrNotLeader) {
		t.Errorf("PutModule on a follower = %v, want ErrNotLeader", err)
	}
	if _, err := s.Module(ctx, raftgroup.Linearizable, sha256.Sum256([]byte("absent"))); !errors.Is(err, ErrNoModule) {
		t.Errorf("Module of an absent sum = %v, want ErrNoModule", err)
	}
	if _, err := s.PutModule(ctx, nil); err == nil {
		t.Error("PutModule of an empty module succeeded")
	}
}
