package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM is a trivial state machine: how many commands it applied and a
// running hash of them, so replicas that applied the same commands in the
// same order agree.
type countFSM struct {
	mu   sync.Mutex
	n    uint64 // guarded by mu
	hash uint64 // guarded by mu
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := fnv.New64a()
	h.Write(binary.BigEndian.AppendUint64(nil, f.hash))
	h.Write(l.Data)
	f.hash = h.Sum64()
	f.n++
	return f.n
}

func (f *countFSM) state() (n, hash uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.hash
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	n, h := f.state()
	return countSnapshot{n, h}, nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.hash = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return nil
}

type countSnapshot struct{ n, hash uint64 }

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	b := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, s.n), s.hash)
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// replica is one member of one group on one node.
type replica struct {
	raft  *raft.Raft
	fsm   *countFSM
	trans *raft.NetworkTransport
}

func (r *replica) stop() {
	r.raft.Shutdown().Error()
	r.trans.Close()
}

// TestRaftCluster runs 3 nodes × 4 groups of real hashicorp/raft over
// loopback TCP, each node's groups sharing one Store for their logs and
// stable stores. Snapshots and log compaction happen along the way, and one
// node restarts from its store halfway through. All replicas must end with
// the same state, and every log must be contiguous.
func TestRaftCluster(t *testing.T) {
	const nodes, groups = 3, 4
	perGroup := 200
	if testing.Short() {
		perGroup = 60
	}
	dir := t.TempDir()
	storePath := func(n int) string { return filepath.Join(dir, fmt.Sprintf("node%d.db", n)) }
	stores := make([]*Store, nodes)
	for n := range nodes {
		stores[n] = openStore(t, storePath(n))
	}
	var reps [groups][nodes]*replica
	t.Cleanup(func() {
		for g := range groups {
			for n := range nodes {
				if reps[g][n] != nil {
					reps[g][n].stop()
				}
			}
		}
	})

	config := func(n int) *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(fmt.Sprintf("n%d", n))
		c.Logger = hclog.NewNullLogger()
		c.HeartbeatTimeout = 500 * time.Millisecond
		c.ElectionTimeout = 500 * time.Millisecond
		c.LeaderLeaseTimeout = 250 * time.Millisecond
		c.CommitTimeout = 10 * time.Millisecond
		c.SnapshotThreshold = 32
		c.SnapshotInterval = 100 * time.Millisecond
		c.TrailingLogs = 16
		return c
	}
	start := func(g, n int, addr string, bootstrap *raft.Configuration) {
		t.Helper()
		trans, err := raft.NewTCPTransport(addr, nil, 3, 5*time.Second, io.Discard)
		must(t, err)
		// raftgroup's cache in front of the store, small enough to drop
		// entries while the cluster runs.
		logs := NewCache(stores[n].Group(uint64(g)), 64, 4<<10)
		stable := stores[n].Stable(uint64(g))
		snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, fmt.Sprintf("snaps-n%d-g%d", n, g)), 1, io.Discard)
		must(t, err)
		if bootstrap != nil {
			must(t, raft.BootstrapCluster(config(n), logs, stable, snaps, trans, *bootstrap))
		}
		fsm := &countFSM{}
		r, err := raft.NewRaft(config(n), fsm, logs, stable, snaps, trans)
		must(t, err)
		reps[g][n] = &replica{raft: r, fsm: fsm, trans: trans}
	}

	// Listen first, so each group's configuration names real addresses.
	addrs := make([][nodes]string, groups)
	for g := range groups {
		var conf raft.Configuration
		for n := range nodes {
			trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 5*time.Second, io.Discard)
			must(t, err)
			addrs[g][n] = string(trans.LocalAddr())
			trans.Close()
			conf.Servers = append(conf.Servers, raft.Server{
				Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("n%d", n)), Address: raft.ServerAddress(addrs[g][n]),
			})
		}
		for n := range nodes {
			start(g, n, addrs[g][n], &conf)
		}
	}

	apply := func(from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, groups)
		for g := range groups {
			wg.Go(func() {
				var futures []raft.ApplyFuture
				for i := from; i < to; i++ {
					leader := waitLeader(t, reps[g][:])
					futures = append(futures, leader.Apply(fmt.Appendf(nil, "g%d cmd %d", g, i), 5*time.Second))
				}
				for i, f := range futures {
					if err := f.Error(); err != nil {
						errs <- fmt.Errorf("group %d: apply %d: %w", g, from+i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	converge := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for g := range groups {
			for {
				n0, h0 := reps[g][0].fsm.state()
				agree := n0 == uint64(want)
				for n := 1; n < nodes; n++ {
					if ni, hi := reps[g][n].fsm.state(); ni != n0 || hi != h0 {
						agree = false
					}
				}
				if agree {
					break
				}
				if time.Now().After(deadline) {
					for n := range nodes {
						ni, hi := reps[g][n].fsm.state()
						t.Logf("group %d node %d: %d commands, hash %x", g, n, ni, hi)
					}
					t.Fatalf("group %d: replicas did not converge on %d commands", g, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	half := perGroup / 2
	apply(0, half)
	converge(half)

	// Restart node 2 from its store: its groups resume from their logs and
	// stable stores (term, vote) and catch up.
	for g := range groups {
		reps[g][2].stop()
	}
	must(t, stores[2].Close())
	// Not openStore: its cleanup would run before the one above that stops
	// the replicas (cleanups run last first), and a replica still running
	// on a closed store panics in hashicorp/raft if it must save a term.
	reopened, err := Open(storePath(2))
	must(t, err)
	stores[2] = reopened
	for g := range groups {
		start(g, 2, addrs[g][2], nil)
	}
	defer func() {
		for g := range groups {
			reps[g][2].stop()
			reps[g][2] = nil // stopped: the cleanup skips them
		}
		reopened.Close()
	}()

	apply(half, perGroup)
	converge(perGroup)

	for n := range nodes {
		for g := range groups {
			l := stores[n].Group(uint64(g))
			first, _ := l.FirstIndex()
			last, _ := l.LastIndex()
			if last == 0 {
				// A replica that caught up by installing a snapshot has
				// an empty log: the store reports itself monotonic, so
				// hashicorp/raft deletes the whole log after the install.
				// Its FSM converged above, which is what matters.
				t.Logf("node %d group %d: empty log (caught up from a snapshot)", n, g)
				continue
			}
			var prevTerm uint64
			for i := first; i <= last; i++ {
				var e raft.Log
				if err := l.GetLog(i, &e); err != nil {
					t.Fatalf("node %d group %d: GetLog(%d) in [%d, %d]: %v", n, g, i, first, last, err)
				}
				if e.Term < prevTerm {
					t.Fatalf("node %d group %d: term %d at %d after term %d", n, g, e.Term, i, prevTerm)
				}
				prevTerm = e.Term
			}
			t.Logf("node %d group %d: log [%d, %d]", n, g, first, last)
		}
		st := stores[n].Stats()
		t.Logf("node %d: %d commits, %d entries, %d requests since open", n, st.Commits, st.Entries, st.Requests)
	}
}

// waitLeader returns the group's leader, polling until one is elected.
func waitLeader(t *testing.T, reps []*replica) *raft.Raft {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range reps {
			if r.raft.State() == raft.Leader {
				return r.raft
			}
		}
		if time.Now().After(deadline) {
			t.Error(errors.New("no leader elected within 10s"))
			return reps[0].raft
		}
		time.Sleep(10 * time.Millisecond)
	}
}
