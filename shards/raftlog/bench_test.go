package raftlog

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// benchAppenders is the number of concurrent appenders (C), spread evenly
// over the groups.
const benchAppenders = 64

// benchEntryBytes is the size of each entry's Data.
const benchEntryBytes = 256

// benchMaxAppendEntries caps what the raft-like per-group loop stores in
// one call (raftgroup's MaxAppendEntries).
const benchMaxAppendEntries = 256

// BenchmarkAppend measures durable appends (fsync on) with 1, 4 and 16
// groups and 64 concurrent appenders, comparing the shared Store (group
// commit) with one raft-boltdb/v2 file per group (the baseline). One op is
// one 256-byte entry made durable.
//
// calls=single: every appender stores its own entry with one StoreLogs
// call, so only the store can batch (the shared Store commits all waiting
// calls together; raft-boltdb commits each call by itself).
//
// calls=raftlike: each group has one loop, like hashicorp/raft's leader,
// that stores whatever its appenders queued while its previous StoreLogs
// was in flight (up to 256 entries) in one call.
//
// Metrics: appends/s; entries/fsync (entries per bbolt commit, which
// fdatasyncs twice: data pages, then the meta page); cpu-s/1k-appends
// (getrusage: user + system CPU of the whole process).
func BenchmarkAppend(b *testing.B) {
	for _, calls := range []string{"single", "raftlike"} {
		for _, groups := range []int{1, 4, 16} {
			for _, store := range []string{"shared", "boltdb"} {
				b.Run(fmt.Sprintf("calls=%s/groups=%d/store=%s", calls, groups, store), func(b *testing.B) {
					benchAppend(b, calls, groups, store)
				})
			}
		}
	}
}

// benchLog is one group's log under test: append stores one entry of the
// single-call mode, storeLogs a raft-like batch.
type benchLog struct {
	mu   sync.Mutex
	next uint64 // guarded by mu: the next index to hand out

	shared *Store
	g      *groupState
	bolt   *raftboltdb.BoltStore
	calls  atomic.Uint64 // StoreLogs calls on bolt
}

// append stores the next entry durably. For the shared store the index is
// taken and the request queued under mu, so the writer sees this group's
// requests in index order, while the wait for the commit happens outside
// it; raft-boltdb does not care about order.
func (l *benchLog) append(data []byte) error {
	if l.shared != nil {
		l.mu.Lock()
		r, err := newAppend(l.g, []*raft.Log{{Index: l.next, Term: 1, Data: data, AppendedAt: time.Now()}})
		if err == nil {
			err = l.shared.submit(r)
		}
		l.next++
		l.mu.Unlock()
		if err != nil {
			return err
		}
		return <-r.done
	}
	l.mu.Lock()
	i := l.next
	l.next++
	l.mu.Unlock()
	l.calls.Add(1)
	return l.bolt.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: data, AppendedAt: time.Now()}})
}

// storeLogs stores es (consecutive, from the one raft-like loop).
func (l *benchLog) storeLogs(es []*raft.Log) error {
	if l.shared != nil {
		return (&groupLog{s: l.shared, g: l.g}).StoreLogs(es)
	}
	l.calls.Add(1)
	return l.bolt.StoreLogs(es)
}

func benchAppend(b *testing.B, calls string, groups int, store string) {
	b.ReportAllocs()
	dir := b.TempDir()
	logs := make([]*benchLog, groups)
	var shared *Store
	if store == "shared" {
		var err error
		if shared, err = Open(filepath.Join(dir, "raftlog.db")); err != nil {
			b.Fatal(err)
		}
		defer shared.Close()
	}
	for g := range logs {
		l := &benchLog{next: 1}
		if shared != nil {
			l.shared, l.g = shared, shared.group(uint64(g))
		} else {
			bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, fmt.Sprintf("group%d.db", g))})
			if err != nil {
				b.Fatal(err)
			}
			defer bs.Close()
			l.bolt = bs
		}
		logs[g] = l
	}
	data := make([]byte, benchEntryBytes)
	for i := range data {
		data[i] = byte(i)
	}

	var raftlike []chan chan error // per group: the appenders' requests
	var loops sync.WaitGroup
	if calls == "raftlike" {
		for g := range logs {
			ch := make(chan chan error, benchAppenders)
			raftlike = append(raftlike, ch)
			loops.Go(func() { raftLoop(logs[g], ch, data) })
		}
	}

	var todo atomic.Int64
	todo.Store(int64(b.N))
	cpu0 := cpuTime()
	commits0 := uint64(0)
	if shared != nil {
		commits0 = shared.Stats().Commits
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchAppenders)
	for a := range benchAppenders {
		g := a % groups
		wg.Go(func() {
			done := make(chan error, 1)
			for todo.Add(-1) >= 0 {
				var err error
				if raftlike != nil {
					raftlike[g] <- done
					err = <-done
				} else {
					err = logs[g].append(data)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	for _, ch := range raftlike {
		close(ch)
	}
	loops.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	var commits uint64
	if shared != nil {
		commits = shared.Stats().Commits - commits0
	} else {
		for _, l := range logs {
			commits += l.calls.Load()
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(float64(b.N)/float64(commits), "entries/fsync")
	b.ReportMetric(cpu.Seconds()/float64(b.N)*1000, "cpu-s/1k-appends")
}

// raftLoop stores what the group's appenders queued, as hashicorp/raft's
// leader does: everything waiting when the previous write finished, up to
// benchMaxAppendEntries, in one StoreLogs call.
func raftLoop(l *benchLog, ch chan chan error, data []byte) {
	var waiting []chan error
	var batch []*raft.Log
	for first := range ch {
		waiting = append(waiting[:0], first)
	fill:
		for len(waiting) < benchMaxAppendEntries {
			select {
			case w, ok := <-ch:
				if !ok {
					break fill
				}
				waiting = append(waiting, w)
			default:
				break fill
			}
		}
		batch = batch[:0]
		now := time.Now()
		for range waiting {
			batch = append(batch, &raft.Log{Index: l.next, Term: 1, Data: data, AppendedAt: now})
			l.next++
		}
		err := l.storeLogs(batch)
		for _, w := range waiting {
			w <- err
		}
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompact measures one compaction of a snapshot's worth of entries
// (raftgroup's SnapshotThreshold, 8192 entries of 256 bytes): a single
// DeleteRange, during which the writer commits nothing else.
func BenchmarkCompact(b *testing.B) {
	const n = 8192
	b.ReportAllocs()
	s, err := Open(filepath.Join(b.TempDir(), "raftlog.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := s.Group(1)
	data := make([]byte, benchEntryBytes)
	next := uint64(1)
	for b.Loop() {
		b.StopTimer()
		first := next
		for next < first+n {
			batch := make([]*raft.Log, 0, benchMaxAppendEntries)
			for range benchMaxAppendEntries {
				batch = append(batch, &raft.Log{Index: next, Term: 1, Data: data})
				next++
			}
			if err := l.StoreLogs(batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := l.DeleteRange(first, next-1); err != nil {
			b.Fatal(err)
		}
	}
}
