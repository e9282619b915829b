package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

type opKind uint8

const (
	opAppend opKind = iota + 1
	opDelete
	opSetStable
	opDrop
)

// kv is one key and value to put; both stay untouched until the request is
// done (bbolt keeps references to them until the commit).
type kv struct{ key, val []byte }

// request is one call handed to the writer goroutine.
type request struct {
	op opKind
	g  *groupState // opAppend, opDelete, opDrop
	id uint64      // opSetStable, opDrop: the group

	first, last uint64 // opAppend: the indexes of kvs; opDelete: the range asked for
	kvs         []kv   // opAppend: one per entry, in index order; opSetStable: one
	bytes       int    // bytes in kvs

	err  error      // a rejection (nothing written); owned by the writer
	done chan error // capacity 1: the outcome, once durable or failed
}

// run is the writer goroutine: it takes what has queued (within
// maxBatchEntries and maxBatchBytes), commits it in one transaction and
// answers every caller in it. Callers that arrive meanwhile queue for the
// next commit: that is the group commit.
func (s *Store) run() {
	defer close(s.writerDone)
	var carry *request // taken from the queue but over the last batch's bounds
	batch := make([]*request, 0, 64)
	perCommit := 1.0 // moving average of the requests per commit
	for {
		select {
		case <-s.stop:
			if carry != nil {
				carry.done <- ErrClosed
			}
			s.drain()
			return
		default:
		}
		r := carry
		carry = nil
		if r == nil {
			select {
			case r = <-s.queue:
			case <-s.stop:
				s.drain()
				return
			}
		}
		batch = append(batch[:0], r)
		entries, bytes := s.cost(r), r.bytes
	fill:
		for entries < maxBatchEntries && bytes < maxBatchBytes {
			select {
			case r := <-s.queue:
				c := s.cost(r)
				if entries+c > maxBatchEntries || bytes+r.bytes > maxBatchBytes {
					carry = r
					break fill
				}
				batch = append(batch, r)
				entries += c
				bytes += r.bytes
			default:
				break fill
			}
		}
		// Hold the commit open only while several writers are active
		// (recent commits carried more than one request on average): a
		// lone writer would only wait, since nothing else is coming.
		if s.wait.max > 0 && carry == nil && len(batch) < s.wait.target && perCommit >= lingerAbove {
			batch, carry = s.linger(batch, entries, bytes)
		}
		perCommit += (float64(len(batch)) - perCommit) / 8
		s.commit(batch)
		clear(batch) // drop references to the requests' buffers
	}
}

// lingerAbove is the average requests per commit above which the writer
// holds commits open: a lone writer averages 1.0; several writers average
// more even without waiting, and waiting makes it grow.
const lingerAbove = 1.2

// linger adds requests to batch as they arrive, within the batch bounds,
// until it holds wait.target requests, none has come for wait.gap, or
// wait.max has passed. It returns the batch and a request that did not fit.
func (s *Store) linger(batch []*request, entries, bytes int) ([]*request, *request) {
	deadline := time.NewTimer(s.wait.max)
	defer deadline.Stop()
	gap := time.NewTimer(s.wait.gap)
	defer gap.Stop()
	for len(batch) < s.wait.target {
		select {
		case r := <-s.queue:
			c := s.cost(r)
			if entries+c > maxBatchEntries || bytes+r.bytes > maxBatchBytes {
				return batch, r
			}
			batch = append(batch, r)
			entries += c
			bytes += r.bytes
			gap.Reset(s.wait.gap)
		case <-gap.C:
			return batch, nil
		case <-deadline.C:
			return batch, nil
		case <-s.stop:
			return batch, nil // commit what we hold; run drains the rest
		}
	}
	return batch, nil
}

// drain fails everything still queued once Close has set closed: no caller
// can enqueue any more, so the queue's content is final.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.queue:
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// cost is how many keys r writes or deletes, as far as the committed span
// tells; a request bigger than the bounds gets a commit of its own.
func (s *Store) cost(r *request) int {
	switch r.op {
	case opAppend, opSetStable:
		return len(r.kvs)
	case opDelete:
		sp := r.g.span()
		lo, hi := max(r.first, sp.first), min(r.last, sp.last)
		if sp.last == 0 || lo > hi {
			return 0
		}
		return int(min(hi-lo+1, maxBatchEntries))
	case opDrop:
		return 1 // one bucket deletion, however long the log
	}
	panic(fmt.Sprintf("raftlog: unknown op %d", r.op))
}

// commit applies batch in one read-write transaction, commits it (fsync
// unless NoSync), publishes the new spans and answers every request. A
// failed commit fails the whole batch and every later write: after a failed
// fsync nothing is known about what reached the disk.
func (s *Store) commit(batch []*request) {
	if s.failed != nil {
		for _, r := range batch {
			r.done <- s.failed
		}
		return
	}
	start := time.Now()
	tx, err := s.db.Begin(true)
	if err != nil {
		s.failed = fmt.Errorf("raftlog: begin: %w", err)
		for _, r := range batch {
			r.done <- s.failed
		}
		return
	}
	clear(s.pending)
	clear(s.buckets)
	clear(s.stables)
	var appended uint64
	for _, r := range batch {
		r.err = nil
		var err error
		switch r.op {
		case opAppend:
			err = s.applyAppend(tx, r)
			if err == nil && r.err == nil {
				appended += uint64(len(r.kvs))
			}
		case opDelete:
			err = s.applyDelete(tx, r)
		case opSetStable:
			err = s.applySet(tx, r)
		case opDrop:
			err = s.applyDrop(tx, r)
		}
		if err != nil {
			// bbolt refused a change: nothing reached the disk, so the
			// store stays usable, but this transaction is lost.
			tx.Rollback()
			err = fmt.Errorf("raftlog: write: %w", err)
			for _, r := range batch {
				r.done <- err
			}
			return
		}
	}
	if err := tx.Commit(); err != nil {
		s.failed = fmt.Errorf("raftlog: commit: %w", err)
		for _, r := range batch {
			r.done <- s.failed
		}
		return
	}
	// tx's stats outlive its Commit: WriteTime is bbolt's write and
	// fdatasync time.
	txStats := tx.Stats()
	s.metrics.committed(time.Since(start), txStats.GetWriteTime())
	for g, sp := range s.pending {
		g.mu.Lock()
		g.sp = sp
		g.mu.Unlock()
	}
	s.commits.Add(1)
	s.requests.Add(uint64(len(batch)))
	s.entries.Add(appended)
	for _, r := range batch {
		r.done <- r.err
	}
}

// spanOf is g's span as the batch being built leaves it.
func (s *Store) spanOf(g *groupState) span {
	if sp, ok := s.pending[g]; ok {
		return sp
	}
	return g.span()
}

// logBucket returns g's log bucket in tx, creating it if create is set;
// nil if it does not exist and create is not set.
func (s *Store) logBucket(tx *bolt.Tx, g *groupState, create bool) (*bolt.Bucket, error) {
	if b, ok := s.buckets[g]; ok {
		return b, nil
	}
	logs := tx.Bucket(bucketLogs)
	b := logs.Bucket(g.key[:])
	if b == nil {
		if !create {
			return nil, nil
		}
		var err error
		if b, err = logs.CreateBucket(g.key[:]); err != nil {
			return nil, fmt.Errorf("group %d: create bucket: %w", g.id, err)
		}
	}
	b.FillPercent = appendFillPercent
	s.buckets[g] = b
	return b, nil
}

// applyAppend writes r's entries into tx. Where they go relative to the
// group's span [first, last]:
//
//   - empty log, or at last+1: appended;
//   - inside [first, last]: the entries from there on are replaced (Raft's
//     rule: a new entry at index i supersedes i and everything after it);
//   - after last+1 (a gap): the old log is dropped in the same transaction.
//     hashicorp/raft leaves a gap only after a snapshot that covers
//     everything before it (a crash between installing a snapshot and
//     clearing the log can cause that); dropping keeps the log contiguous;
//   - before first: rejected with ErrNotContiguous.
//
// A rejection sets r.err; a returned error is bbolt's and aborts tx.
func (s *Store) applyAppend(tx *bolt.Tx, r *request) error {
	sp := s.spanOf(r.g)
	first := sp.first
	b, err := s.logBucket(tx, r.g, true)
	if err != nil {
		return err
	}
	switch {
	case sp.last == 0:
		first = r.first
	case r.first == sp.last+1:
	case r.first > sp.last+1:
		if err := deleteKeys(b, sp.first, sp.last); err != nil {
			return fmt.Errorf("group %d: drop log before gap: %w", r.g.id, err)
		}
		first = r.first
	case r.first >= sp.first:
		if err := deleteKeys(b, r.first, sp.last); err != nil {
			return fmt.Errorf("group %d: truncate suffix: %w", r.g.id, err)
		}
	default:
		r.err = fmt.Errorf("append at %d, before the log's first index %d: %w", r.first, sp.first, ErrNotContiguous)
		return nil
	}
	for _, e := range r.kvs {
		if err := b.Put(e.key, e.val); err != nil {
			return fmt.Errorf("group %d: put: %w", r.g.id, err)
		}
	}
	s.pending[r.g] = span{first: first, last: r.last}
	return nil
}

// applyDelete deletes the part of [r.first, r.last] that the group's log
// holds. It must be a prefix, a suffix or all of the log; a range strictly
// inside it is rejected with ErrNotContiguous.
func (s *Store) applyDelete(tx *bolt.Tx, r *request) error {
	sp := s.spanOf(r.g)
	lo, hi := max(r.first, sp.first), min(r.last, sp.last)
	if sp.last == 0 || lo > hi {
		return nil
	}
	var next span
	switch {
	case lo == sp.first && hi == sp.last:
	case lo == sp.first:
		next = span{first: hi + 1, last: sp.last}
	case hi == sp.last:
		next = span{first: sp.first, last: lo - 1}
	default:
		r.err = fmt.Errorf("delete [%d, %d] inside the log [%d, %d]: %w", r.first, r.last, sp.first, sp.last, ErrNotContiguous)
		return nil
	}
	b, err := s.logBucket(tx, r.g, false)
	if err != nil {
		return err
	}
	if b == nil {
		panic(fmt.Sprintf("raftlog: group %d has span [%d, %d] but no bucket", r.g.id, sp.first, sp.last))
	}
	if err := deleteKeys(b, lo, hi); err != nil {
		return fmt.Errorf("group %d: %w", r.g.id, err)
	}
	s.pending[r.g] = next
	return nil
}

// deleteKeys deletes the entries at indexes [lo, hi], all of which exist
// (the log is contiguous). Delete does not keep the key, so one buffer does.
func deleteKeys(b *bolt.Bucket, lo, hi uint64) error {
	var k [8]byte
	for i := lo; i <= hi && i != 0; i++ {
		binary.BigEndian.PutUint64(k[:], i)
		if err := b.Delete(k[:]); err != nil {
			return fmt.Errorf("delete %d: %w", i, err)
		}
	}
	return nil
}

// applyDrop deletes group r.id's log and stable store.
func (s *Store) applyDrop(tx *bolt.Tx, r *request) error {
	delete(s.buckets, r.g)
	delete(s.stables, r.id)
	if err := tx.Bucket(bucketLogs).DeleteBucket(r.g.key[:]); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return fmt.Errorf("group %d: drop log: %w", r.id, err)
	}
	if err := tx.Bucket(bucketStable).DeleteBucket(r.g.key[:]); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return fmt.Errorf("group %d: drop stable store: %w", r.id, err)
	}
	s.pending[r.g] = span{}
	return nil
}

// applySet writes a stable-store key of group r.id.
func (s *Store) applySet(tx *bolt.Tx, r *request) error {
	b, ok := s.stables[r.id]
	if !ok {
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], r.id)
		var err error
		if b, err = tx.Bucket(bucketStable).CreateBucketIfNotExists(key[:]); err != nil {
			return fmt.Errorf("group %d: create stable bucket: %w", r.id, err)
		}
		s.stables[r.id] = b
	}
	if err := b.Put(r.kvs[0].key, r.kvs[0].val); err != nil {
		return fmt.Errorf("group %d: stable put: %w", r.id, err)
	}
	return nil
}
