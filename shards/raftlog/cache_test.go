package raftlog

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the GetLog calls that reach the store behind a
// Cache: a call the cache answered does not.
type countingStore struct {
	raft.LogStore
	gets atomic.Int64
}

func (s *countingStore) GetLog(index uint64, out *raft.Log) error {
	s.gets.Add(1)
	return s.LogStore.GetLog(index, out)
}

// sized returns entry i of group 0 with dataBytes of data that names it.
func sized(i uint64, dataBytes int) *raft.Log {
	l := entry(0, i, 1)
	l.Data = append(make([]byte, 0, dataBytes), l.Data...)
	l.Data = l.Data[:dataBytes]
	return l
}

// cached returns the indexes in [lo, hi] that c answers without its store,
// checking that every entry it returns is the right one.
func cached(t *testing.T, c *Cache, s *countingStore, lo, hi uint64) []uint64 {
	t.Helper()
	var out []uint64
	for i := lo; i <= hi; i++ {
		before := s.gets.Load()
		var got raft.Log
		err := c.GetLog(i, &got)
		if s.gets.Load() != before {
			continue
		}
		if err != nil || got.Index != i || !bytes.HasPrefix(got.Data, fmt.Appendf(nil, "g0/i%d/", i)) {
			t.Fatalf("cached GetLog(%d) = %+v, %v; want entry %d", i, got, err, i)
		}
		out = append(out, i)
	}
	return out
}

func indexes(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// TestCacheBounds: the cache keeps the newest contiguous run of entries
// that fits both bounds, forgets what a truncation or a gap replaces, and
// serves everything else from the store.
func TestCacheBounds(t *testing.T) {
	const kib = 1 << 10
	type step struct {
		store      []*raft.Log // stored with StoreLogs, if not nil
		deleteLo   uint64      // else DeleteRange(deleteLo, deleteHi)
		deleteHi   uint64
		wantCached []uint64 // the indexes in [1, 40] the cache answers
	}
	run := func(lo, hi uint64, dataBytes int) []*raft.Log {
		var out []*raft.Log
		for i := lo; i <= hi; i++ {
			out = append(out, sized(i, dataBytes))
		}
		return out
	}
	tests := []struct {
		name       string
		maxEntries int
		maxBytes   int64
		steps      []step
	}{
		{"entry bound", 8, 1 << 20, []step{
			{store: run(1, 5, 100), wantCached: indexes(1, 5)},
			{store: run(6, 12, 100), wantCached: indexes(5, 12)},
		}},
		{"byte bound", 100, 4*(kib+cachedEntryBytes) + 10, []step{
			{store: run(1, 3, kib), wantCached: indexes(1, 3)},
			{store: run(4, 10, kib), wantCached: indexes(7, 10)},
			{store: run(11, 11, 3*kib), wantCached: []uint64{10, 11}},
		}},
		{"an entry over the byte bound is not cached", 100, 4 * kib, []step{
			{store: run(1, 3, kib/2), wantCached: indexes(1, 3)},
			{store: run(4, 4, 8*kib), wantCached: nil},
			{store: run(5, 6, kib/2), wantCached: indexes(5, 6)},
		}},
		{"an overwrite replaces the run", 100, 1 << 20, []step{
			{store: run(1, 10, 100), wantCached: indexes(1, 10)},
			{deleteLo: 8, deleteHi: 10, wantCached: indexes(1, 7)},
			{store: run(8, 9, 100), wantCached: indexes(1, 9)},
			{store: run(5, 6, 100), wantCached: indexes(5, 6)},
		}},
		{"compaction drops a prefix", 100, 1 << 20, []step{
			{store: run(1, 10, 100), wantCached: indexes(1, 10)},
			{deleteLo: 1, deleteHi: 4, wantCached: indexes(5, 10)},
			{deleteLo: 1, deleteHi: 20, wantCached: nil},
			{store: run(21, 22, 100), wantCached: indexes(21, 22)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &countingStore{LogStore: raft.NewInmemStore()}
			c := NewCache(s, tt.maxEntries, tt.maxBytes)
			for i, st := range tt.steps {
				if st.store != nil {
					must(t, c.StoreLogs(st.store))
				} else {
					must(t, c.DeleteRange(st.deleteLo, st.deleteHi))
				}
				if got := cached(t, c, s, 1, 40); fmt.Sprint(got) != fmt.Sprint(st.wantCached) {
					t.Fatalf("step %d: cached %v; want %v", i, got, st.wantCached)
				}
				if c.n > tt.maxEntries || c.bytes > tt.maxBytes {
					t.Fatalf("step %d: %d entries, %d bytes; bounds %d, %d", i, c.n, c.bytes, tt.maxEntries, tt.maxBytes)
				}
			}
		})
	}
}

// TestCacheHammer: one goroutine appends (and now and then truncates the
// tail, like a follower resolving a conflict, or compacts a prefix), others
// read; every entry read is the right one. Run with -race.
func TestCacheHammer(t *testing.T) {
	s := &countingStore{LogStore: raft.NewInmemStore()}
	c := NewCache(s, 64, 16<<10)
	const last = 5000
	var (
		wg    sync.WaitGroup
		acked atomic.Uint64
		first atomic.Uint64 // the first index readers look at
	)
	first.Store(1)
	wg.Go(func() {
		defer acked.Store(last) // let the readers stop, even after a failure
		for next := uint64(1); next <= last; {
			n := min(last-next+1, 1+next%7)
			if err := c.StoreLogs(entries(0, next, next+n-1, 1)); err != nil {
				t.Error(err)
				return
			}
			next += n
			acked.Store(next - 1)
			if next%97 == 0 && next > 10 { // truncate the last 3 and rewrite them
				if err := c.DeleteRange(next-3, next-1); err != nil {
					t.Error(err)
					return
				}
				if err := c.StoreLogs(entries(0, next-3, next-1, 1)); err != nil {
					t.Error(err)
					return
				}
			}
			if next%501 == 0 {
				first.Store(next - 200)
				if err := c.DeleteRange(1, next-201); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	var found atomic.Int64
	for range 2 {
		wg.Go(func() {
			for {
				a := acked.Load()
				for i := max(first.Load(), a-min(a, 100)); i <= a && i > 0; i++ {
					var got raft.Log
					err := c.GetLog(i, &got)
					if err == raft.ErrLogNotFound {
						continue // truncated or compacted meanwhile
					}
					if err != nil || !logsEqual(&got, entry(0, i, 1)) {
						t.Errorf("GetLog(%d) = %+v, %v", i, got, err)
						return
					}
					found.Add(1)
				}
				if a == last {
					return
				}
			}
		})
	}
	wg.Wait()
	if found.Load() == 0 {
		t.Fatal("no reads found their entry")
	}
}
