package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wisp-db/wisp/engine"
)

// TestReplaceReplica is the step sequence the placement driver runs when a
// node dies: a new replica joins as a learner and catches up from a
// snapshot plus the log (the leader has compacted the log past what the
// newcomer lacks), is promoted, and the dead voter is removed. The group
// serves writes throughout, ends with three voters, and every replica has
// the same state.
func TestReplaceReplica(t *testing.T) {
	c := newTunedCluster(t, 3, func(_ int, cfg *Config) { cfg.TrailingLogs = 64 })
	li := c.waitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			g := c.leader()
			if g == nil {
				t.Fatalf("no leader at write %d", i)
			}
			if res, err := g.Propose(ctx, put(fmt.Sprintf("k%05d", i), "v")); err != nil || res.Err != nil {
				t.Fatalf("Propose(k%05d) = %v, %v", i, err, res.Err)
			}
		}
	}
	write(0, 1500) // past SnapshotThreshold (512): the log is compacted to 64 entries
	if err := c.groups[li].Snapshot(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}

	// A fourth replica, empty, joins.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := filepath.Join(c.dir, "n4")
	joiner, err := Open(Config{NodeID: "n4", Dir: dir, RaftAddr: addr, Join: true, Logger: testLogger(), SnapshotThreshold: 512, TrailingLogs: 64})
	if err != nil {
		t.Fatalf("Open joining replica: %v", err)
	}
	defer joiner.Close()
	if id, _ := joiner.Leader(); id != "" {
		t.Errorf("a joining replica knows leader %q before it was added", id)
	}

	leader := c.leader()
	conf, err := leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.AddLearner(ctx, "n4", addr, conf.Index-1); !errors.Is(err, ErrConfigChanged) {
		t.Errorf("AddLearner from a stale configuration index = %v; want ErrConfigChanged", err)
	}
	if err := c.groups[(li+1)%3].AddLearner(ctx, "n4", addr, 0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("AddLearner on a follower = %v; want ErrNotLeader", err)
	}
	if err := leader.AddLearner(ctx, "n4", addr, conf.Index); err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	write(1500, 1600)
	waitApplied(t, joiner, leader.AppliedIndex(), 20*time.Second)
	if d, want := joiner.Digest(), leader.Digest(); d != want && joiner.AppliedIndex() == leader.AppliedIndex() {
		t.Fatalf("learner digest differs from the leader's at the same index")
	}
	var m dto.Metric
	if err := joiner.metrics.restore.Write(&m); err != nil || m.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("the learner restored %d snapshots (%v); want 1: the leader's log was compacted past what it lacked", m.GetHistogram().GetSampleCount(), err)
	}
	conf, err = leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(conf.Members, Member{ID: "n4", Addr: addr, Voter: false}) {
		t.Errorf("configuration %+v; want n4 as a learner", conf.Members)
	}

	// Promote it, then the voter it replaces dies and is removed.
	if err := leader.Promote(ctx, "n4", conf.Index); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	victim := (li + 1) % 3
	victimID := c.peers[victim].ID
	c.kill(victim)
	write(1600, 1700) // three of four voters are live: a quorum
	conf, err = leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.RemoveReplica(ctx, victimID, conf.Index); err != nil {
		t.Fatalf("RemoveReplica(%s): %v", victimID, err)
	}
	write(1700, 1800)
	conf, err = leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	var voters []string
	for _, m := range conf.Members {
		if m.Voter {
			voters = append(voters, m.ID)
		}
	}
	slices.Sort(voters)
	want := []string{c.peers[li].ID, c.peers[(li+2)%3].ID, "n4"}
	slices.Sort(want)
	if !slices.Equal(voters, want) || len(conf.Members) != 3 {
		t.Errorf("voters %v (members %+v); want %v", voters, conf.Members, want)
	}
	waitApplied(t, joiner, leader.AppliedIndex(), 10*time.Second)
	c.mu.Lock()
	c.groups[victim] = joiner // waitConverged compares every running replica
	c.mu.Unlock()
	c.waitConverged(10 * time.Second)
	c.mu.Lock()
	c.groups[victim] = nil
	c.mu.Unlock()
	var found bool
	joiner.Read(ctx, Stale, func(e *engine.Engine) { _, found = e.Get([]byte("k00000"), time.Now().UnixMilli()) })
	if !found {
		t.Errorf("k00000, written before n4 joined, is missing on n4")
	}
	if os.Getenv("WISP_TEST_LOG") != "" {
		t.Logf("final configuration %+v", conf)
	}
}

func waitApplied(t *testing.T, g *Group, index uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for g.AppliedIndex() < index {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s applied %d; want %d within %v", g.cfg.NodeID, g.AppliedIndex(), index, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
