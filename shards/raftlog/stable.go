package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// ErrKeyNotFound is what a stable store's Get returns for a key never set.
// Its text is exactly "not found" because hashicorp/raft v1.8.0 tells a
// missing key from a failure by comparing err.Error() with that string.
var ErrKeyNotFound = errors.New("not found")

// maxStableKeyBytes and maxStableValueBytes bound a stable-store entry.
// hashicorp/raft keeps a few short keys with 8-byte values there (term,
// vote); the bounds keep the bucket small.
const (
	maxStableKeyBytes   = 1 << 10
	maxStableValueBytes = 1 << 20
)

// Stable returns group id's stable store (current term, vote) in the same
// file, written through the same writer: Set returns once the value is
// durable, and since the writer commits in order, a term or vote is durable
// before any log entry stored after it. Optional: a group may keep its
// stable store elsewhere (see doc.go for the ordering that store must give).
// Safe for concurrent use.
func (s *Store) Stable(id uint64) raft.StableStore {
	st := &stableStore{s: s, id: id}
	binary.BigEndian.PutUint64(st.key[:], id)
	return st
}

type stableStore struct {
	s   *Store
	id  uint64
	key [8]byte // be64(id): the group's stable bucket
}

var _ raft.StableStore = (*stableStore)(nil)

// Set stores val under key, durably. Both are copied.
func (st *stableStore) Set(key, val []byte) error {
	if len(key) == 0 || len(key) > maxStableKeyBytes || len(val) > maxStableValueBytes {
		return fmt.Errorf("raftlog group %d: stable set: key of %d bytes (1 to %d), value of %d (up to %d)",
			st.id, len(key), maxStableKeyBytes, len(val), maxStableValueBytes)
	}
	buf := make([]byte, 0, len(key)+len(val))
	buf = append(append(buf, key...), val...)
	r := &request{
		op:    opSetStable,
		id:    st.id,
		kvs:   []kv{{key: buf[:len(key):len(key)], val: buf[len(key):]}},
		bytes: len(buf),
		done:  make(chan error, 1),
	}
	if err := st.s.do(r); err != nil {
		return fmt.Errorf("raftlog group %d: stable set %q: %w", st.id, key, err)
	}
	return nil
}

// Get returns a copy of the value under key, or ErrKeyNotFound (unwrapped).
func (st *stableStore) Get(key []byte) ([]byte, error) {
	var val []byte
	err := st.s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStable).Bucket(st.key[:])
		if b == nil {
			return ErrKeyNotFound
		}
		v := b.Get(key)
		if v == nil {
			return ErrKeyNotFound
		}
		val = append([]byte{}, v...)
		return nil
	})
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return nil, ErrKeyNotFound
	case err != nil:
		return nil, fmt.Errorf("raftlog group %d: stable get %q: %w", st.id, key, err)
	}
	return val, nil
}

// SetUint64 stores val under key as 8 big-endian bytes.
func (st *stableStore) SetUint64(key []byte, val uint64) error {
	return st.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value SetUint64 stored under key, or ErrKeyNotFound.
func (st *stableStore) GetUint64(key []byte) (uint64, error) {
	v, err := st.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftlog group %d: stable get %q: %w: %d bytes, want 8", st.id, key, ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
