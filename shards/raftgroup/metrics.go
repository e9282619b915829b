package raftgroup

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/engine"
)

// groupMetrics are the group's counters and histograms, updated where the
// events happen (the proposer, the FSM, raft's leader observations) with an
// atomic add each, and read at scrape time through Group.Collector. Counts
// are since Open. The caller adds the labels (node, shard).
type groupMetrics struct {
	packs    atomic.Uint64 // entries proposed by the proposer
	commands atomic.Uint64 // commands they carried

	// Commands whose entry raft reported committed (and applied here), or
	// failed; inflight is the commands proposed and not yet either.
	committed atomic.Uint64
	failed    atomic.Uint64
	inflight  atomic.Int64
	// applied counts commands the local FSM applied, on every replica.
	applied atomic.Uint64
	// leaderChanges counts the leaders this replica has learnt of.
	leaderChanges atomic.Uint64

	persist, restore             prometheus.Histogram // successful ones only
	persistFailed, restoreFailed atomic.Uint64
}

// snapshotBuckets span 1 ms to about 4 minutes, ×4: a snapshot streams
// the whole keyspace, from kilobytes to gigabytes.
var snapshotBuckets = prometheus.ExponentialBuckets(0.001, 4, 10)

func (m *groupMetrics) init() {
	m.persist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wisp_raft_snapshot_persist_duration_seconds",
		Help:    "Time to write one snapshot of the replica's state to disk, durably; the count is the snapshots taken.",
		Buckets: snapshotBuckets,
	})
	m.restore = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wisp_raft_snapshot_restore_duration_seconds",
		Help:    "Time to replace the replica's state with a snapshot (at start, or one sent by the leader); the count is the restores.",
		Buckets: snapshotBuckets,
	})
}

func (m *groupMetrics) packed(n int) {
	m.packs.Add(1)
	m.commands.Add(uint64(n))
	m.inflight.Add(int64(n))
}

// settled records the outcome of a pack of n commands: err is the raft
// future's.
func (m *groupMetrics) settled(n int, err error) {
	if err != nil {
		m.failed.Add(uint64(n))
	} else {
		m.committed.Add(uint64(n))
	}
	m.inflight.Add(-int64(n))
}

// observer counts leader changes. Its filter runs on raft's goroutines for
// every observation and sends nothing: a counter needs no channel.
func (m *groupMetrics) observer() *raft.Observer {
	return raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if l, ok := o.Data.(raft.LeaderObservation); ok && l.LeaderID != "" {
			m.leaderChanges.Add(1)
		}
		return false
	})
}

// measuredFSM is the fsm as raft sees it: it counts applied commands and
// times snapshots, and leaves the fsm itself alone.
type measuredFSM struct {
	*fsm
	m *groupMetrics
}

var _ raft.BatchingFSM = measuredFSM{}

func (f measuredFSM) ApplyBatch(logs []*raft.Log) []any {
	out := f.fsm.ApplyBatch(logs)
	var n uint64
	for _, r := range out {
		switch r := r.(type) {
		case engine.Result: // one command (or an entry that did not decode)
			n++
		case []engine.Result: // a pack
			n += uint64(len(r))
		}
	}
	f.m.applied.Add(n)
	return out
}

func (f measuredFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f measuredFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.fsm.Snapshot()
	if err != nil {
		return nil, err
	}
	return measuredSnapshot{s, f.m}, nil
}

func (f measuredFSM) Restore(rc io.ReadCloser) error {
	start := time.Now()
	if err := f.fsm.Restore(rc); err != nil {
		f.m.restoreFailed.Add(1)
		return err
	}
	f.m.restore.Observe(time.Since(start).Seconds())
	return nil
}

type measuredSnapshot struct {
	raft.FSMSnapshot
	m *groupMetrics
}

func (s measuredSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	if err := s.FSMSnapshot.Persist(sink); err != nil {
		s.m.persistFailed.Add(1)
		return err
	}
	s.m.persist.Observe(time.Since(start).Seconds())
	return nil
}

// PackStats returns how many entries the proposer has proposed and how many
// commands they carried: commands/packs is the packing factor.
func (g *Group) PackStats() (packs, commands uint64) {
	return g.metrics.packs.Load(), g.metrics.commands.Load()
}

var (
	descProposalsCommitted = prometheus.NewDesc("wisp_raft_proposals_committed_total",
		"Commands this replica proposed as leader that committed and were applied (whatever the engine's verdict). Like etcd_server_proposals_committed_total, but a count of commands.", nil, nil)
	descProposalsFailed = prometheus.NewDesc("wisp_raft_proposals_failed_total",
		"Commands this replica proposed as leader that raft failed: leadership lost, a hand-off under way or shutdown while in flight (the command may still apply), or raft's apply queue full for 10 s (not proposed). Like etcd_server_proposals_failed_total.", nil, nil)
	descProposalsPending = prometheus.NewDesc("wisp_raft_proposals_pending",
		"Commands waiting for the proposer or proposed and not yet committed or failed. Like etcd_server_proposals_pending.", nil, nil)
	descProposalsApplied = prometheus.NewDesc("wisp_raft_proposals_applied_total",
		"Commands the local replica applied, whoever proposed them; an entry that failed to decode counts as one.", nil, nil)
	descProposalPacks = prometheus.NewDesc("wisp_raft_proposal_entries_total",
		"Raft entries the proposer proposed; commands committed and failed per entry is the packing factor.", nil, nil)
	descLeaderChanges = prometheus.NewDesc("wisp_raft_leader_changes_seen_total",
		"Leaders this replica has learnt of (an election or hand-off it saw, the first one included). Like etcd_server_leader_changes_seen_total.", nil, nil)
	descLastContact = prometheus.NewDesc("wisp_raft_last_contact_seconds",
		"Seconds since this follower last heard from its leader (0 on the leader; absent until first contact).", nil, nil)
	descSnapshotFailures = prometheus.NewDesc("wisp_raft_snapshot_failures_total",
		"Snapshots that failed to persist (op=persist) or restore (op=restore).", []string{"op"}, nil)
)

// Collector returns the group's own series for a Prometheus registry, read
// at scrape time. They carry no labels: the caller adds node and shard
// (prometheus.WrapRegistererWith). Register it in at most one registry at
// a time.
func (g *Group) Collector() prometheus.Collector { return groupCollector{g} }

type groupCollector struct{ g *Group }

func (c groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProposalsCommitted, descProposalsFailed, descProposalsPending, descProposalsApplied,
		descProposalPacks, descLeaderChanges, descLastContact, descSnapshotFailures} {
		ch <- d
	}
	c.g.metrics.persist.Describe(ch)
	c.g.metrics.restore.Describe(ch)
}

func (c groupCollector) Collect(ch chan<- prometheus.Metric) {
	g, m := c.g, &c.g.metrics
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descProposalsCommitted, m.committed.Load())
	counter(descProposalsFailed, m.failed.Load())
	counter(descProposalsApplied, m.applied.Load())
	counter(descProposalPacks, m.packs.Load())
	counter(descLeaderChanges, m.leaderChanges.Load())
	counter(descSnapshotFailures, m.persistFailed.Load(), "persist")
	counter(descSnapshotFailures, m.restoreFailed.Load(), "restore")
	pending := float64(len(g.proposals)) + float64(max(m.inflight.Load(), 0))
	ch <- prometheus.MustNewConstMetric(descProposalsPending, prometheus.GaugeValue, pending)
	if g.raft.State() == raft.Leader {
		ch <- prometheus.MustNewConstMetric(descLastContact, prometheus.GaugeValue, 0)
	} else if last := g.raft.LastContact(); !last.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastContact, prometheus.GaugeValue, time.Since(last).Seconds())
	}
	m.persist.Collect(ch)
	m.restore.Collect(ch)
}
