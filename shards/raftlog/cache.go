package raftlog

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// Cache is a raft.LogStore that keeps the most recent entries of another in
// memory, bounded in entries and in bytes, and serves GetLog from them: a
// leader reads each entry back soon after appending it, to replicate it,
// and a follower to apply it. It replaces hashicorp/raft's LogCache, which
// bounds only the entry count: 1,024 entries of 256-byte commands are
// 300 KiB, but of 64 KiB values 64 MiB per group, held outside any memory
// budget (issue 9).
//
// A cached entry is the *raft.Log that StoreLogs was given, so the cache
// holds whatever that Log references: hashicorp/raft hands a leader's own
// proposal, and a follower the entry its transport decoded. Their Data must
// own their memory (not alias a bigger buffer), or the byte bound would not
// bound what the cache keeps alive; raftgroup's proposer and transport's
// codec see to that.
//
// Safe for concurrent use. GetLog copies the cached Log into out, sharing
// its Data and Extensions: callers must not modify them (hashicorp/raft
// does not).
type Cache struct {
	store      raft.LogStore
	maxEntries int
	maxBytes   int64

	mu sync.RWMutex
	// ring holds the cached entries, contiguous indexes: the one at index
	// first+i is ring[(head+i)%len(ring)] for i < n. Guarded by mu.
	// Invariant: n <= len(ring) == maxEntries, bytes <= maxBytes, and bytes
	// is the sum of cachedBytes over the n entries.
	ring  []*raft.Log
	head  int
	n     int
	first uint64
	bytes int64
}

var (
	_ raft.LogStore          = (*Cache)(nil)
	_ raft.MonotonicLogStore = (*Cache)(nil)
)

// cachedEntryBytes is what the cache counts for a cached entry besides its
// Data and Extensions: the Log struct (96 bytes), or the leader's future
// around it, and the ring slot.
const cachedEntryBytes = 128

// cachedBytes is what the cache counts for l.
func cachedBytes(l *raft.Log) int64 {
	return int64(cap(l.Data)) + int64(cap(l.Extensions)) + cachedEntryBytes
}

// NewCache returns a Cache in front of store that keeps at most maxEntries
// entries and maxBytes bytes (counting each entry's Data and Extensions
// capacity plus 128 bytes). An entry bigger than maxBytes is not cached.
// Both bounds must be positive.
func NewCache(store raft.LogStore, maxEntries int, maxBytes int64) *Cache {
	if maxEntries <= 0 || maxBytes <= 0 {
		panic(fmt.Sprintf("raftlog: cache bounds must be positive: %d entries, %d bytes", maxEntries, maxBytes))
	}
	return &Cache{store: store, maxEntries: maxEntries, maxBytes: maxBytes, ring: make([]*raft.Log, maxEntries)}
}

// IsMonotonic reports whether the underlying store is a
// raft.MonotonicLogStore that says so.
func (c *Cache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// FirstIndex returns the underlying store's first index.
func (c *Cache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex returns the underlying store's last index.
func (c *Cache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// GetLog reads the entry at index from the cache, or else from the
// underlying store.
func (c *Cache) GetLog(index uint64, out *raft.Log) error {
	c.mu.RLock()
	if index >= c.first && index-c.first < uint64(c.n) {
		*out = *c.ring[(c.head+int(index-c.first))%len(c.ring)]
		c.mu.RUnlock()
		return nil
	}
	c.mu.RUnlock()
	return c.store.GetLog(index, out)
}

// StoreLog stores one entry: see StoreLogs.
func (c *Cache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores logs in the underlying store and, if that succeeds,
// caches them, dropping the oldest cached entries to stay within the
// bounds. Entries that do not follow the cached ones (after a truncation or
// a gap) replace them all.
func (c *Cache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		size := cachedBytes(l)
		if c.n > 0 && l.Index != c.first+uint64(c.n) {
			c.dropNewest(c.n)
		}
		if size > c.maxBytes {
			c.dropNewest(c.n) // keep the cached run contiguous
			continue
		}
		for c.n > 0 && (c.n == len(c.ring) || c.bytes+size > c.maxBytes) {
			c.dropOldest()
		}
		if c.n == 0 {
			c.head, c.first = 0, l.Index
		}
		c.ring[(c.head+c.n)%len(c.ring)] = l
		c.n++
		c.bytes += size
	}
	return nil
}

// DeleteRange drops the cached entries in [lo, hi], then deletes the range
// from the underlying store.
func (c *Cache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	if c.n > 0 && lo <= hi {
		last := c.first + uint64(c.n) - 1
		switch {
		case hi < c.first || lo > last:
		case lo <= c.first: // a prefix of the cached run, or all of it
			for c.n > 0 && c.first <= hi {
				c.dropOldest()
			}
		case hi >= last: // a suffix
			c.dropNewest(int(last - lo + 1))
		default: // strictly inside: raftlog refuses it, other stores may not
			c.dropNewest(c.n)
		}
	}
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

// dropOldest drops the oldest cached entry. c.n must be positive; the
// caller holds mu.
func (c *Cache) dropOldest() {
	i := c.head
	c.bytes -= cachedBytes(c.ring[i])
	c.ring[i] = nil
	c.head = (c.head + 1) % len(c.ring)
	c.first++
	c.n--
}

// dropNewest drops the k newest cached entries (k <= c.n); the caller
// holds mu.
func (c *Cache) dropNewest(k int) {
	for range k {
		i := (c.head + c.n - 1) % len(c.ring)
		c.bytes -= cachedBytes(c.ring[i])
		c.ring[i] = nil
		c.n--
	}
}
