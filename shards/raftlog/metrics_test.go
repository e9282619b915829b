package raftlog

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCommitHistograms: every commit is observed once in each histogram,
// with a positive duration, and the disk time is part of the whole.
func TestCommitHistograms(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "log.db"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	logs := s.Group(1)
	for i := uint64(1); i <= 20; i++ {
		if err := logs.StoreLogs(entries(1, i, i, 1)); err != nil {
			t.Fatalf("StoreLogs(%d): %v", i, err)
		}
	}
	commits := s.Stats().Commits
	if commits < 20 {
		t.Fatalf("Stats().Commits = %d after 20 lone appends; want >= 20", commits)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		h := mf.GetMetric()[0].GetHistogram()
		if got := h.GetSampleCount(); got != commits {
			t.Errorf("%s count = %d; want %d (one per commit)", mf.GetName(), got, commits)
		}
		if h.GetSampleSum() <= 0 {
			t.Errorf("%s sum = %v; want > 0", mf.GetName(), h.GetSampleSum())
		}
		sums[mf.GetName()] = h.GetSampleSum()
	}
	fsync, commit := sums["wisp_raftlog_fsync_duration_seconds"], sums["wisp_raftlog_commit_duration_seconds"]
	if len(sums) != 2 || fsync > commit {
		t.Errorf("histogram sums %v; want fsync and commit, fsync <= commit", sums)
	}
}
