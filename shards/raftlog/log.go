package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// groupLog is one group's view of the Store: a raft.LogStore.
type groupLog struct {
	s *Store
	g *groupState
}

var (
	_ raft.LogStore          = (*groupLog)(nil)
	_ raft.MonotonicLogStore = (*groupLog)(nil)
)

// FirstIndex returns the group's first index, 0 if its log is empty. It
// reads the span cached in memory, not the file.
func (l *groupLog) FirstIndex() (uint64, error) { return l.g.span().first, nil }

// LastIndex returns the group's last index, 0 if its log is empty. It reads
// the span cached in memory, not the file.
func (l *groupLog) LastIndex() (uint64, error) { return l.g.span().last, nil }

// IsMonotonic reports true: the log never has a gap (raft.MonotonicLogStore).
func (l *groupLog) IsMonotonic() bool { return true }

// GetLog reads the entry at index into out. It returns raft.ErrLogNotFound
// (unwrapped: hashicorp/raft compares with ==) if the group has no entry
// there, and an error wrapping ErrCorrupt if the stored entry is damaged.
func (l *groupLog) GetLog(index uint64, out *raft.Log) error {
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], index)
	err := l.s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs).Bucket(l.g.key[:])
		if b == nil {
			return raft.ErrLogNotFound
		}
		v := b.Get(key[:])
		if v == nil {
			return raft.ErrLogNotFound
		}
		return decodeEntry(v, out)
	})
	switch {
	case errors.Is(err, raft.ErrLogNotFound):
		return raft.ErrLogNotFound
	case err != nil:
		return fmt.Errorf("raftlog group %d: get %d: %w", l.g.id, index, err)
	case out.Index != index:
		return fmt.Errorf("raftlog group %d: get %d: %w: entry says index %d", l.g.id, index, ErrCorrupt, out.Index)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (l *groupLog) StoreLog(e *raft.Log) error {
	return l.StoreLogs([]*raft.Log{e})
}

// StoreLogs stores entries, whose indexes must be consecutive, and returns
// once they are durable (or failed: then none of them is stored). Appended
// after the last entry they extend the log; starting inside the log they
// replace its suffix; starting after a gap they replace the whole log (see
// doc.go). Data and Extensions are limited to maxEntryBytes each.
//
// The entries are encoded here, in the caller's goroutine, so the writer
// only copies bytes into the transaction.
func (l *groupLog) StoreLogs(entries []*raft.Log) error {
	if len(entries) == 0 {
		return nil
	}
	r, err := newAppend(l.g, entries)
	if err != nil {
		return err
	}
	if err := l.s.do(r); err != nil {
		return fmt.Errorf("raftlog group %d: store [%d, %d]: %w", l.g.id, r.first, r.last, err)
	}
	return nil
}

// newAppend checks and encodes a non-empty StoreLogs call.
func newAppend(g *groupState, entries []*raft.Log) (*request, error) {
	first := entries[0]
	if first == nil {
		return nil, fmt.Errorf("raftlog group %d: store: nil entry", g.id)
	}
	size := 0
	for i, e := range entries {
		switch {
		case e == nil:
			return nil, fmt.Errorf("raftlog group %d: store: nil entry", g.id)
		case e.Index == 0 || e.Index != first.Index+uint64(i):
			return nil, fmt.Errorf("raftlog group %d: store: entry %d of the call has index %d after %d: %w",
				g.id, i, e.Index, first.Index, ErrNotContiguous)
		case len(e.Data) > maxEntryBytes || len(e.Extensions) > maxEntryBytes:
			return nil, fmt.Errorf("raftlog group %d: store %d: %d data and %d extension bytes, limit %d each",
				g.id, e.Index, len(e.Data), len(e.Extensions), maxEntryBytes)
		}
		size += 8 + encodedSize(e)
	}
	r := &request{
		op:    opAppend,
		g:     g,
		first: first.Index,
		last:  entries[len(entries)-1].Index,
		kvs:   make([]kv, len(entries)),
		done:  make(chan error, 1),
	}
	buf := make([]byte, 0, size) // never grows: the slices below stay put
	for i, e := range entries {
		start := len(buf)
		buf = binary.BigEndian.AppendUint64(buf, e.Index)
		mid := len(buf)
		buf = appendEntry(buf, e)
		r.kvs[i] = kv{key: buf[start:mid:mid], val: buf[mid:len(buf):len(buf)]}
	}
	r.bytes = len(buf)
	return r, nil
}

// DeleteRange deletes the entries at [lo, hi] (inclusive) that the log
// holds, and returns once that is durable. The range must cover a prefix, a
// suffix or all of the log (as hashicorp/raft's compaction and conflict
// truncation do); a range strictly inside it would leave a hole and fails
// with ErrNotContiguous. A range outside the log does nothing.
func (l *groupLog) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	r := &request{op: opDelete, g: l.g, first: lo, last: hi, done: make(chan error, 1)}
	if err := l.s.do(r); err != nil {
		return fmt.Errorf("raftlog group %d: delete [%d, %d]: %w", l.g.id, lo, hi, err)
	}
	return nil
}
