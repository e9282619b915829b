package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrape reads g's Collector: counters and gauges by name (a label value,
// if any, after a slash), histograms as their sample count.
func scrape(t *testing.T, g *Group) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, lp := range m.GetLabel() {
				name += "/" + lp.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestGroupMetrics follows one group through writes, a snapshot, a restart
// from it and a proposal that fails when the leader loses its quorum, and
// checks each count the group exports.
func TestGroupMetrics(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := context.Background()
	l := c.waitLeader(5 * time.Second)
	const writes = 50
	for i := range writes {
		if _, err := c.groups[l].Propose(ctx, put(fmt.Sprintf("k%d", i), "v")); err != nil {
			t.Fatalf("Propose(k%d): %v", i, err)
		}
	}
	c.waitConverged(10 * time.Second)
	m := scrape(t, c.groups[l])
	if m["wisp_raft_proposals_committed_total"] != writes || m["wisp_raft_proposals_failed_total"] != 0 || m["wisp_raft_proposals_pending"] != 0 {
		t.Errorf("leader: committed %v, failed %v, pending %v; want %d, 0, 0", m["wisp_raft_proposals_committed_total"],
			m["wisp_raft_proposals_failed_total"], m["wisp_raft_proposals_pending"], writes)
	}
	if e := m["wisp_raft_proposal_entries_total"]; e < 1 || e > writes {
		t.Errorf("leader: %v entries for %d commands; want 1 to %d", e, writes, writes)
	}
	if m["wisp_raft_last_contact_seconds"] != 0 {
		t.Errorf("leader: last contact %v; want 0", m["wisp_raft_last_contact_seconds"])
	}
	for i, g := range c.groups {
		m := scrape(t, g)
		if m["wisp_raft_proposals_applied_total"] != writes {
			t.Errorf("replica %d: applied %v; want %d", i, m["wisp_raft_proposals_applied_total"], writes)
		}
		if m["wisp_raft_leader_changes_seen_total"] < 1 {
			t.Errorf("replica %d: leader changes %v; want >= 1", i, m["wisp_raft_leader_changes_seen_total"])
		}
		if contact, ok := m["wisp_raft_last_contact_seconds"]; !ok || contact > 5 {
			t.Errorf("replica %d: last contact %v (present %v); want 0 to 5 s", i, contact, ok)
		}
	}

	// A snapshot, then a restart that restores it.
	f := (l + 1) % 3
	if err := c.groups[f].Snapshot(); err != nil {
		t.Fatal(err)
	}
	if m := scrape(t, c.groups[f]); m["wisp_raft_snapshot_persist_duration_seconds"] != 1 || m["wisp_raft_snapshot_failures_total/persist"] != 0 {
		t.Errorf("after Snapshot: %v persisted, %v failed; want 1, 0", m["wisp_raft_snapshot_persist_duration_seconds"], m["wisp_raft_snapshot_failures_total/persist"])
	}
	c.stop(f)
	c.start(f)
	if m := scrape(t, c.groups[f]); m["wisp_raft_snapshot_restore_duration_seconds"] != 1 || m["wisp_raft_snapshot_failures_total/restore"] != 0 {
		t.Errorf("after restart: %v restored, %v failed; want 1, 0", m["wisp_raft_snapshot_restore_duration_seconds"], m["wisp_raft_snapshot_failures_total/restore"])
	}

	// The followers die; the leader's next proposal fails when it steps
	// down for want of a quorum.
	l = c.waitLeader(5 * time.Second)
	leader := c.groups[l]
	for i := range c.groups {
		if i != l {
			c.kill(i)
		}
	}
	_, err := leader.Propose(ctx, put("lost", "v"))
	wantFailed := 1.0
	switch {
	case errors.Is(err, ErrOutcomeUnknown):
	case errors.Is(err, ErrNotLeader):
		// The leader stepped down before the proposal reached raft (a
		// slow kill outlasted its lease): nothing was proposed.
		wantFailed = 0
	default:
		t.Fatalf("Propose without a quorum: %v; want ErrOutcomeUnknown or ErrNotLeader", err)
	}
	m = scrape(t, leader)
	if m["wisp_raft_proposals_failed_total"] != wantFailed || m["wisp_raft_proposals_pending"] != 0 {
		t.Errorf("without a quorum (%v): failed %v, pending %v; want %v, 0", err, m["wisp_raft_proposals_failed_total"], m["wisp_raft_proposals_pending"], wantFailed)
	}
}
