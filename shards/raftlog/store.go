package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Sentinel errors callers branch on.
var (
	// ErrClosed means the Store was closed before the call's write committed;
	// nothing of it is durable.
	ErrClosed = errors.New("raftlog: store closed")
	// ErrNotContiguous means a write would leave a hole in a group's log
	// (entries of one call not consecutive, or a DeleteRange strictly inside
	// the log). Nothing was written.
	ErrNotContiguous = errors.New("log would not be contiguous")
)

// formatVersion is the on-disk layout (doc.go), stored under meta/format.
const formatVersion = 1

// Bucket and key names of the layout (doc.go).
var (
	bucketMeta   = []byte("meta")
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")
	keyFormat    = []byte("format")
)

// Bounds of the group commit.
const (
	// maxBatchEntries bounds the entries (appended or deleted) one commit
	// takes from the queue: one full hashicorp/raft append (MaxAppendEntries,
	// 256 in raftgroup) from each of 16 groups. Larger batches would only
	// make the callers at the front wait longer for their fsync.
	maxBatchEntries = 4096
	// maxBatchBytes bounds the encoded bytes one commit takes from the
	// queue: about 1,000 pages, a few tens of ms of writing on the disks we
	// measured, which bounds how long a small append can wait behind a big
	// one and how many dirty pages one transaction holds in memory.
	maxBatchBytes = 4 << 20
	// maxQueuedRequests bounds the writer's queue. hashicorp/raft has at most
	// one StoreLogs and one DeleteRange in flight per group (plus a rare
	// stable-store write), so this covers a few hundred groups; beyond it
	// callers block until the writer catches up (backpressure), and queued
	// memory stays bounded.
	maxQueuedRequests = 1024
	// openLockTimeout bounds how long Open waits for the file lock that
	// another process (another wispd on the same data dir) holds.
	openLockTimeout = 2 * time.Second
	// appendFillPercent is how full bbolt packs the leaf pages of a group's
	// log bucket when they split. Keys are appended in order, so a split page
	// is never written again: fill it (bbolt's default of 0.5 leaves half of
	// every page empty).
	appendFillPercent = 0.9
)

// Option configures Open.
type Option func(*options)

type options struct {
	noSync bool
	wait   commitWait
}

// commitWait is the writer's group-commit window: see WithCommitWait.
type commitWait struct {
	max    time.Duration // 0: commit what is queued at once
	gap    time.Duration
	target int
}

// WithCommitWait lets the writer hold a commit open for more requests: after
// taking the first, it waits for others until the commit carries target
// requests, no request has arrived for gap, or max has passed since the
// first. Each commit costs two fsyncs whatever it carries, so when many
// groups write at once (each at most one request at a time), a short wait
// gathers their requests into one commit and divides the fsyncs per entry.
// It waits only while recent commits carried more than one request on
// average, so a lone writer does not wait. Default: no wait.
func WithCommitWait(max, gap time.Duration, target int) Option {
	return func(o *options) { o.wait = commitWait{max: max, gap: gap, target: target} }
}

// WithNoSync turns off fsync on commit when noSync is true: writes are then
// durable only once the OS flushes them, and a machine crash can lose
// acknowledged entries. Unsafe: for benchmarks only. Default false (every
// commit is fsynced).
func WithNoSync(noSync bool) Option {
	return func(o *options) { o.noSync = noSync }
}

// Store is one node's Raft log store: one bbolt file holding the logs (and
// optionally the stable stores) of all the node's groups, written by one
// goroutine that commits whatever has queued in one transaction and one
// fsync. Safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	wait commitWait

	// submitMu orders submissions against Close: submitters hold it shared
	// while they check closed and enqueue; Close takes it exclusively to set
	// closed, so nothing is enqueued after the writer's final drain.
	submitMu sync.RWMutex
	closed   bool // guarded by submitMu

	queue      chan *request // bounded by maxQueuedRequests
	stop       chan struct{} // closed by Close once closed is set
	writerDone chan struct{} // closed when the writer goroutine exits

	groupsMu sync.Mutex
	groups   map[uint64]*groupState // guarded by groupsMu; entries never removed

	// Owned by the writer goroutine.
	failed  error                        // sticky: the first commit that failed
	pending map[*groupState]span         // spans changed by the batch being built
	buckets map[*groupState]*bolt.Bucket // the batch's open log buckets
	stables map[uint64]*bolt.Bucket      // the batch's open stable buckets

	commits  atomic.Uint64
	requests atomic.Uint64
	entries  atomic.Uint64
	metrics  *metrics // observed by the writer

	closeOnce sync.Once
	closeErr  error
}

// span is the index range a group's log holds: [first, last], empty when
// last == 0 (then first == 0 too).
//
// Invariant: every index in [first, last] has an entry, and no other index
// does.
type span struct{ first, last uint64 }

// groupState is one group's cached span, loaded on Open and changed only by
// the writer after a commit.
type groupState struct {
	id  uint64
	key [8]byte // be64(id): the group's bucket name

	mu sync.Mutex
	sp span // guarded by mu
}

func (g *groupState) span() span {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sp
}

// Open opens (creating it if missing) the store at path and starts its
// writer goroutine. It fails if another process has the file open (after
// openLockTimeout), if the file is not a raftlog store of this format, or if
// a group's log has a hole.
func Open(path string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: openLockTimeout,
		// Like etcd: do not write the freelist on every commit (fewer pages
		// per fsync); Open rebuilds it by scanning, which is cheap for a log
		// kept short by compaction.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         o.noSync,
	})
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", path, err)
	}
	s := &Store{
		wait:       o.wait,
		db:         db,
		path:       path,
		queue:      make(chan *request, maxQueuedRequests),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		groups:     make(map[uint64]*groupState),
		pending:    make(map[*groupState]span),
		buckets:    make(map[*groupState]*bolt.Bucket),
		stables:    make(map[uint64]*bolt.Bucket),
		metrics:    newMetrics(),
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("raftlog: open %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// load creates the top-level buckets of a new file, checks the format of an
// existing one and reads every group's span.
func (s *Store) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketLogs) != nil || tx.Bucket(bucketStable) != nil {
				return errors.New("not a raftlog file: no meta bucket")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, []byte{formatVersion}); err != nil {
				return err
			}
		}
		if v := meta.Get(keyFormat); len(v) != 1 || v[0] != formatVersion {
			return fmt.Errorf("format %v, want [%d]", v, formatVersion)
		}
		logs, err := tx.CreateBucketIfNotExists(bucketLogs)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketStable); err != nil {
			return err
		}
		return logs.ForEachBucket(func(k []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("group bucket name %x: want 8 bytes", k)
			}
			id := binary.BigEndian.Uint64(k)
			sp, err := loadSpan(logs.Bucket(k))
			if err != nil {
				return fmt.Errorf("group %d: %w", id, err)
			}
			g := s.group(id)
			g.sp = sp
			return nil
		})
	})
}

// loadSpan reads a group's first and last index and checks that the log in
// between has no hole (bbolt counts the keys page by page).
func loadSpan(b *bolt.Bucket) (span, error) {
	c := b.Cursor()
	fk, _ := c.First()
	lk, _ := c.Last()
	if fk == nil {
		return span{}, nil
	}
	if len(fk) != 8 || len(lk) != 8 {
		return span{}, fmt.Errorf("%w: key of %d or %d bytes, want 8", ErrCorrupt, len(fk), len(lk))
	}
	sp := span{first: binary.BigEndian.Uint64(fk), last: binary.BigEndian.Uint64(lk)}
	if sp.first == 0 {
		return span{}, fmt.Errorf("%w: entry at index 0", ErrCorrupt)
	}
	if n := uint64(b.Stats().KeyN); n != sp.last-sp.first+1 {
		return span{}, fmt.Errorf("%w: %d entries in [%d, %d]: the log has a hole", ErrNotContiguous, n, sp.first, sp.last)
	}
	return sp, nil
}

// group returns the state of group id, creating an empty one.
func (s *Store) group(id uint64) *groupState {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		g = &groupState{id: id}
		binary.BigEndian.PutUint64(g.key[:], id)
		s.groups[id] = g
	}
	return g
}

// Group returns group id's log: a raft.LogStore whose entries no other
// group sees. Any id is valid; a group without entries has an empty log.
// The returned store is safe for concurrent use, with one rule that
// hashicorp/raft follows: a group's StoreLogs and its suffix DeleteRange
// calls come one at a time, since their order decides the log. Calls for
// different groups run concurrently and share commits.
//
// It also implements raft.MonotonicLogStore (true): the log never has a
// gap, so hashicorp/raft clears it after installing a snapshot.
func (s *Store) Group(id uint64) raft.LogStore {
	return &groupLog{s: s, g: s.group(id)}
}

// Drop deletes group id's log and stable store, durably, as if the group
// had never stored anything. The group must not be running: close its Raft
// first. A node drops a replica it no longer hosts.
func (s *Store) Drop(id uint64) error {
	return s.do(&request{op: opDrop, g: s.group(id), id: id, done: make(chan error, 1)})
}

// Stats counts the store's work since Open.
type Stats struct {
	// Commits is the number of bbolt transactions committed: one fsync of
	// the data pages and one of the meta page each.
	Commits uint64
	// Requests is the number of calls (StoreLogs, DeleteRange, stable-store
	// Set) those commits completed.
	Requests uint64
	// Entries is the number of log entries appended.
	Entries uint64
}

// Stats returns the counters. Entries / Commits is the group-commit factor.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Requests: s.requests.Load(), Entries: s.entries.Load()}
}

// Close fails every queued write with ErrClosed, waits for the commit in
// flight (its callers get its outcome), stops the writer and closes the
// file. Safe to call twice; later calls return the first result. Calls on
// the store's groups after Close return ErrClosed (writes) or an error
// (reads).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.submitMu.Lock()
		s.closed = true
		s.submitMu.Unlock()
		close(s.stop)
		<-s.writerDone
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("raftlog: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// do hands r to the writer and waits until it is durable (or failed).
func (s *Store) do(r *request) error {
	if err := s.submit(r); err != nil {
		return err
	}
	return <-r.done
}

// submit queues r for the writer without waiting for it. Requests queued
// one after another are applied in that order.
func (s *Store) submit(r *request) error {
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	// May block while the queue is full; the writer keeps draining it until
	// Close, which waits for this send before it stops the writer.
	s.queue <- r
	return nil
}
