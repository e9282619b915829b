package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM is a trivial FSM: it counts applied commands.
type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any { return f.n.Add(1) }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot(f.n.Load()), nil }

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.n.Store(binary.BigEndian.Uint64(b[:]))
	return nil
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(s))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// timing is a set of Raft timeouts.
type timing struct{ heartbeat, election, lease, commit time.Duration }

// testTiming is short enough for quick elections and long enough for 24
// replicas under -race on two shared cores.
var testTiming = timing{heartbeat: 500 * time.Millisecond, election: 500 * time.Millisecond, lease: 250 * time.Millisecond, commit: 20 * time.Millisecond}

// raftCluster is nodes × groups Raft replicas in one process: replica
// [n][g] is node n's member of group g.
type raftCluster struct {
	muxes []*Mux // one per node; nil when every replica has its own TCP port
	hubs  []*Hub // one per node in netHub mode, else nil
	trans [][]*raft.NetworkTransport
	rafts [][]*raft.Raft
	fsms  [][]*countFSM
}

// netMode is how a test cluster's groups reach each other.
type netMode int

const (
	netTCP netMode = iota // one raft.NewTCPTransport per replica
	netMux                // NetworkTransport per group over one Mux per node
	netHub                // every group's RPCs over one Hub per node
)

// maxPoolTest and netTimeout match raftgroup's transport settings.
const (
	maxPoolTest = 4
	netTimeout  = 10 * time.Second
)

// startCluster starts the replicas, reaching each other as mode says.
func startCluster(tb testing.TB, nodes, groups int, mode netMode, tm timing) *raftCluster {
	tb.Helper()
	logger := hclog.NewNullLogger()
	c := &raftCluster{}
	mux := mode != netTCP
	if mux {
		for range nodes {
			m, err := Listen("127.0.0.1:0", quiet)
			if err != nil {
				tb.Fatal(err)
			}
			c.muxes = append(c.muxes, m)
			if mode == netHub {
				h, err := NewHub(m, netTimeout)
				if err != nil {
					tb.Fatal(err)
				}
				c.hubs = append(c.hubs, h)
			}
		}
	}
	c.trans = make([][]*raft.NetworkTransport, nodes)
	for n := range nodes {
		for g := range groups {
			var tr *raft.NetworkTransport
			if mux {
				l, err := c.muxes[n].Group(uint64(g))
				if err != nil {
					tb.Fatal(err)
				}
				tr = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
					Stream: l, MaxPool: maxPoolTest, Timeout: netTimeout, Logger: logger,
				})
			} else {
				var err error
				tr, err = raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, maxPoolTest, netTimeout, logger)
				if err != nil {
					tb.Fatal(err)
				}
			}
			c.trans[n] = append(c.trans[n], tr)
		}
	}
	c.rafts = make([][]*raft.Raft, nodes)
	c.fsms = make([][]*countFSM, nodes)
	for n := range nodes {
		for g := range groups {
			var conf raft.Configuration
			for p := range nodes {
				conf.Servers = append(conf.Servers, raft.Server{
					Suffrage: raft.Voter, ID: nodeID(p), Address: c.trans[p][g].LocalAddr(),
				})
			}
			rc := raft.DefaultConfig()
			rc.LocalID = nodeID(n)
			rc.Logger = logger
			rc.HeartbeatTimeout = tm.heartbeat
			rc.ElectionTimeout = tm.election
			rc.LeaderLeaseTimeout = tm.lease
			rc.CommitTimeout = tm.commit
			rc.BatchApplyCh = true
			rc.MaxAppendEntries = 256
			store := raft.NewInmemStore()
			snaps := raft.NewInmemSnapshotStore()
			var tr raft.Transport = c.trans[n][g]
			if mode == netHub {
				ht, err := c.hubs[n].Transport(uint64(g), c.trans[n][g])
				if err != nil {
					tb.Fatal(err)
				}
				tr = ht
			}
			if err := raft.BootstrapCluster(rc, store, store, snaps, tr, conf); err != nil {
				tb.Fatal(err)
			}
			fsm := &countFSM{}
			r, err := raft.NewRaft(rc, fsm, store, store, snaps, tr)
			if err != nil {
				tb.Fatal(err)
			}
			c.rafts[n] = append(c.rafts[n], r)
			c.fsms[n] = append(c.fsms[n], fsm)
		}
	}
	return c
}

func nodeID(n int) raft.ServerID { return raft.ServerID(fmt.Sprintf("node-%d", n)) }

// leader returns the node that leads group g among the nodes in alive, or
// -1.
func (c *raftCluster) leader(g int, alive []int) int {
	for _, n := range alive {
		if c.rafts[n][g].State() == raft.Leader {
			return n
		}
	}
	return -1
}

// waitLeaders waits until every group has a leader among alive and returns
// them.
func (c *raftCluster) waitLeaders(tb testing.TB, alive []int, timeout time.Duration) []int {
	tb.Helper()
	leaders := make([]int, len(c.rafts[0]))
	waitFor(tb, "a leader in every group", timeout, func() bool {
		for g := range leaders {
			if leaders[g] = c.leader(g, alive); leaders[g] < 0 {
				return false
			}
		}
		return true
	})
	return leaders
}

// applyRetryFor bounds how long apply retries while leadership moves: a few
// election rounds, even on a loaded 2-core machine.
const applyRetryFor = 15 * time.Second

// apply applies one command to group g through its current leader among
// alive, retrying while leadership moves (bounded by applyRetryFor). A
// command whose leader was lost mid-flight may be applied twice.
func (c *raftCluster) apply(g int, alive []int, cmd []byte) error {
	deadline := time.Now().Add(applyRetryFor)
	for {
		err := errors.New("no leader")
		if n := c.leader(g, alive); n >= 0 {
			if err = c.rafts[n][g].Apply(cmd, 5*time.Second).Error(); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group %d: apply: %w", g, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shutdown stops every replica, then every mux.
func (c *raftCluster) shutdown() {
	var wg sync.WaitGroup
	for _, rs := range c.rafts {
		for _, r := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.Shutdown().Error()
			}()
		}
	}
	wg.Wait()
	for _, h := range c.hubs {
		h.Close() // closes its group transports and so c.trans
	}
	for _, rs := range c.trans {
		for _, tr := range rs {
			tr.Close()
		}
	}
	for _, m := range c.muxes {
		m.Close()
	}
}

// TestRaftGroupsOverMux runs 3 nodes × 8 groups of real hashicorp/raft over
// three Muxes (three ports in all): every group elects a leader and applies
// 100 commands; then one node's Mux is closed (to its peers the node
// crashed) and the groups it led elect new leaders among the other two and
// keep applying. Nothing leaks after shutdown.
func TestRaftGroupsOverMux(t *testing.T) { testRaftGroups(t, netMux) }

// TestRaftGroupsOverHub is the same over one Hub per node: every group's
// RPCs share one connection per pair of nodes.
func TestRaftGroupsOverHub(t *testing.T) { testRaftGroups(t, netHub) }

func testRaftGroups(t *testing.T, mode netMode) {
	const (
		nodes    = 3
		groups   = 8
		commands = 100
	)
	base := runtime.NumGoroutine()
	c := startCluster(t, nodes, groups, mode, testTiming)
	stopped := false
	defer func() {
		if !stopped {
			c.shutdown()
		}
	}()
	all := []int{0, 1, 2}
	c.waitLeaders(t, all, 20*time.Second)

	applyAll := func(alive []int, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, groups)
		for g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					if err := c.apply(g, alive, binary.BigEndian.AppendUint64(nil, uint64(i))); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	applyAll(all, commands)
	// Every replica of every group reaches the leader's count.
	for g := range groups {
		waitFor(t, fmt.Sprintf("group %d replicas to converge", g), 10*time.Second, func() bool {
			want := c.fsms[c.leader(g, all)][g].n.Load()
			for n := range nodes {
				if c.fsms[n][g].n.Load() != want {
					return false
				}
			}
			return want >= commands
		})
	}

	// Crash the node that leads the most groups.
	leaders := c.waitLeaders(t, all, 10*time.Second)
	led := make([]int, nodes)
	for _, n := range leaders {
		led[n]++
	}
	victim := 0
	for n := range nodes {
		if led[n] > led[victim] {
			victim = n
		}
	}
	var survivors []int
	for n := range nodes {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	terms := make([]uint64, groups)
	for g := range groups {
		terms[g] = c.rafts[leaders[g]][g].CurrentTerm()
	}
	t.Logf("closing node %d's mux; it leads %d of %d groups", victim, led[victim], groups)
	start := time.Now()
	if mode == netHub {
		// The hub's goroutines stop with it; to the peers, closing the
		// hub and the mux looks like a crash either way.
		if err := c.hubs[victim].Close(); err != nil {
			t.Fatalf("Hub.Close: %v", err)
		}
	}
	if err := c.muxes[victim].Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	newLeaders := c.waitLeaders(t, survivors, 20*time.Second)
	t.Logf("all groups led by the survivors after %v", time.Since(start))
	for g := range groups {
		if leaders[g] == victim {
			if term := c.rafts[newLeaders[g]][g].CurrentTerm(); term <= terms[g] {
				t.Errorf("group %d: new leader's term %d; want above %d", g, term, terms[g])
			}
		}
	}
	applyAll(survivors, 10)
	if s := c.muxes[victim].Stats(); s.OpenConns != 0 || s.Groups != 0 {
		t.Errorf("closed mux Stats() = %+v; want nothing open", s)
	}

	c.shutdown()
	stopped = true
	for _, m := range c.muxes {
		if s := m.Stats(); s.OpenConns != 0 {
			t.Errorf("Stats().OpenConns = %d after shutdown; want 0", s.OpenConns)
		}
	}
	checkGoroutines(t, base)
}
