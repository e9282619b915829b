package raftlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's duration histograms, observed by the writer
// goroutine once per successful commit (an atomic add each, no allocation)
// and read by a Prometheus registry through Store.Collector.
type metrics struct {
	fsync  prometheus.Histogram
	commit prometheus.Histogram
}

// diskBuckets span 100µs (a fast NVMe fdatasync) to about 3.3 s (a disk in
// trouble), doubling.
var diskBuckets = prometheus.ExponentialBuckets(0.0001, 2, 16)

func newMetrics() *metrics {
	return &metrics{
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wisp_raftlog_fsync_duration_seconds",
			Help: "Disk time of one shared-log commit: bbolt writing its dirty pages and meta page " +
				"and the two fdatasyncs (data, then meta) that make it durable. Like etcd_disk_wal_fsync_duration_seconds.",
			Buckets: diskBuckets,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wisp_raftlog_commit_duration_seconds",
			Help: "Time of one shared-log commit from the transaction's start to its durable end: " +
				"applying the batch's writes, then the disk time. Like etcd_disk_backend_commit_duration_seconds.",
			Buckets: diskBuckets,
		}),
	}
}

// committed records one successful commit: its whole duration and bbolt's
// disk time in it.
func (m *metrics) committed(total, disk time.Duration) {
	m.commit.Observe(total.Seconds())
	m.fsync.Observe(disk.Seconds())
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.fsync.Describe(ch)
	m.commit.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.fsync.Collect(ch)
	m.commit.Collect(ch)
}

// Collector returns the store's histograms for a Prometheus registry:
// wisp_raftlog_fsync_duration_seconds and
// wisp_raftlog_commit_duration_seconds, one observation per commit since
// Open (failed commits are not observed). Stats has the counters. Register
// it in at most one registry at a time.
func (s *Store) Collector() prometheus.Collector { return s.metrics }
