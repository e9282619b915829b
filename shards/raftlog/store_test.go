package raftlog

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// seedFlag replays a randomized run: go test ./shards/raftlog -run Differential -seed N.
var seedFlag = flag.Uint64("seed", 0, "seed for TestGroupsDifferential, TestHammer and TestCrash (0: random)")

// testSeed returns the seed to use and logs it.
func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed %d)", seed, seed)
	return seed
}

// openStore opens a store at path and closes it when the test ends.
func openStore(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// entry makes the entry of group g at index i in term; its data names both,
// so an entry read from the wrong group or index shows.
func entry(g, i, term uint64) *raft.Log {
	return &raft.Log{Index: i, Term: term, Type: raft.LogCommand,
		Data: fmt.Appendf(nil, "g%d/i%d/t%d", g, i, term), AppendedAt: time.Unix(int64(i), 0)}
}

func entries(g, lo, hi, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := lo; i <= hi; i++ {
		out = append(out, entry(g, i, term))
	}
	return out
}

// checkLog checks that l holds exactly want, in order and contiguous.
func checkLog(t testing.TB, l raft.LogStore, want []*raft.Log) {
	t.Helper()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	var wantFirst, wantLast uint64
	if len(want) > 0 {
		wantFirst, wantLast = want[0].Index, want[len(want)-1].Index
	}
	if first != wantFirst || last != wantLast {
		t.Fatalf("span = [%d, %d]; want [%d, %d]", first, last, wantFirst, wantLast)
	}
	for _, w := range want {
		var got raft.Log
		if err := l.GetLog(w.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", w.Index, err)
		}
		if !logsEqual(&got, w) {
			t.Fatalf("GetLog(%d) = %+v; want %+v", w.Index, got, *w)
		}
	}
	for _, i := range []uint64{0, wantFirst - 1, wantLast + 1, math.MaxUint64} {
		if i >= wantFirst && i <= wantLast && len(want) > 0 {
			continue
		}
		var got raft.Log
		if err := l.GetLog(i, &got); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) = %v; want raft.ErrLogNotFound", i, err)
		}
	}
}

// TestLogStoreContract walks one group through hashicorp/raft's LogStore
// contract and this store's contiguity rules, step by step, then reopens.
func TestLogStoreContract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raftlog.db")
	s := openStore(t, path)
	l := s.Group(1)
	if m, ok := l.(raft.MonotonicLogStore); !ok || !m.IsMonotonic() {
		t.Fatalf("Group does not report a monotonic log store")
	}
	steps := []struct {
		name    string
		do      func(raft.LogStore) error
		wantErr error
		want    []*raft.Log // the whole log afterwards
	}{
		{"empty", func(raft.LogStore) error { return nil }, nil, nil},
		{"store nothing", func(l raft.LogStore) error { return l.StoreLogs(nil) }, nil, nil},
		{"store one", func(l raft.LogStore) error { return l.StoreLog(entry(1, 1, 1)) }, nil, entries(1, 1, 1, 1)},
		{"store many", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 2, 10, 1)) }, nil, entries(1, 1, 10, 1)},
		{"not consecutive in one call", func(l raft.LogStore) error {
			return l.StoreLogs([]*raft.Log{entry(1, 11, 1), entry(1, 13, 1)})
		}, ErrNotContiguous, entries(1, 1, 10, 1)},
		{"delete prefix", func(l raft.LogStore) error { return l.DeleteRange(1, 3) }, nil, entries(1, 4, 10, 1)},
		{"delete prefix from below first", func(l raft.LogStore) error { return l.DeleteRange(0, 4) }, nil, entries(1, 5, 10, 1)},
		{"delete suffix", func(l raft.LogStore) error { return l.DeleteRange(9, 10) }, nil, entries(1, 5, 8, 1)},
		{"delete inside", func(l raft.LogStore) error { return l.DeleteRange(6, 7) }, ErrNotContiguous, entries(1, 5, 8, 1)},
		{"delete outside", func(l raft.LogStore) error { return l.DeleteRange(20, 30) }, nil, entries(1, 5, 8, 1)},
		{"delete empty range", func(l raft.LogStore) error { return l.DeleteRange(8, 5) }, nil, entries(1, 5, 8, 1)},
		{"append", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 9, 12, 1)) }, nil, entries(1, 5, 12, 1)},
		{"replace suffix", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 7, 8, 2)) },
			nil, append(entries(1, 5, 6, 1), entries(1, 7, 8, 2)...)},
		{"replace all", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 5, 6, 3)) }, nil, entries(1, 5, 6, 3)},
		{"before first", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 2, 4, 3)) }, ErrNotContiguous, entries(1, 5, 6, 3)},
		{"gap drops the old log", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 100, 101, 4)) }, nil, entries(1, 100, 101, 4)},
		{"delete all", func(l raft.LogStore) error { return l.DeleteRange(0, math.MaxUint64) }, nil, nil},
		{"start anywhere when empty", func(l raft.LogStore) error { return l.StoreLogs(entries(1, 500, 600, 5)) }, nil, entries(1, 500, 600, 5)},
		{"index 0", func(l raft.LogStore) error { return l.StoreLog(entry(1, 0, 5)) }, ErrNotContiguous, entries(1, 500, 600, 5)},
		{"nil entry", func(l raft.LogStore) error { return l.StoreLogs([]*raft.Log{entry(1, 601, 5), nil}) }, nil, entries(1, 500, 600, 5)},
	}
	for _, st := range steps {
		err := st.do(l)
		switch {
		case st.name == "nil entry":
			if err == nil {
				t.Fatalf("%s: err = nil; want an error", st.name)
			}
		case !errors.Is(err, st.wantErr):
			t.Fatalf("%s: err = %v; want %v", st.name, err, st.wantErr)
		}
		checkLog(t, l, st.want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path)
	checkLog(t, s.Group(1), entries(1, 500, 600, 5))
	checkLog(t, s.Group(2), nil)
}

// refLog is the naive reference for one group's log: a sorted slice.
type refLog []*raft.Log

func (r refLog) span() (uint64, uint64) {
	if len(r) == 0 {
		return 0, 0
	}
	return r[0].Index, r[len(r)-1].Index
}

func (r refLog) store(es []*raft.Log) (refLog, error) {
	first, last := r.span()
	start := es[0].Index
	switch {
	case len(r) == 0 || start == last+1:
	case start > last+1:
		r = nil
	case start >= first:
		r = r[:start-first]
	default:
		return r, ErrNotContiguous
	}
	return append(slices.Clip(r), es...), nil
}

func (r refLog) delete(lo, hi uint64) (refLog, error) {
	first, last := r.span()
	lo, hi = max(lo, first), min(hi, last)
	switch {
	case len(r) == 0 || lo > hi:
		return r, nil
	case lo == first:
		return r[hi-first+1:], nil
	case hi == last:
		return r[:lo-first], nil
	}
	return r, ErrNotContiguous
}

// TestGroupsDifferential runs random appends, suffix replacements, gaps
// and deletes on interleaved groups, checks every group against the naive
// reference after each step, and reopens the store now and then.
func TestGroupsDifferential(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	const groups = 8
	steps := 400
	if testing.Short() {
		steps = 100
	}
	path := filepath.Join(t.TempDir(), "raftlog.db")
	s := openStore(t, path)
	ref := make([]refLog, groups)
	term := uint64(1)
	for step := range steps {
		g := uint64(rng.IntN(groups))
		l := s.Group(g)
		first, last := ref[g].span()
		var err, wantErr error
		var op string
		switch k := rng.IntN(10); {
		case k < 5: // append
			n := uint64(1 + rng.IntN(20))
			op = fmt.Sprintf("append %d at %d", n, last+1)
			es := entries(g, last+1, last+n, term)
			ref[g], wantErr = ref[g].store(es)
			err = l.StoreLogs(es)
		case k < 7: // replace from somewhere near the end, or leave a gap
			term++
			start := uint64(max(1, int64(last)+1+int64(rng.IntN(5))-int64(rng.IntN(10))))
			es := entries(g, start, start+uint64(rng.IntN(5)), term)
			op = fmt.Sprintf("store [%d, %d] term %d", start, es[len(es)-1].Index, term)
			ref[g], wantErr = ref[g].store(es)
			err = l.StoreLogs(es)
		case k < 9: // delete a prefix, a suffix or something in between
			lo := first + uint64(rng.IntN(int(last-first+3))) - 1
			hi := lo + uint64(rng.IntN(10))
			if rng.IntN(2) == 0 {
				lo = 0
			}
			op = fmt.Sprintf("delete [%d, %d]", lo, hi)
			ref[g], wantErr = ref[g].delete(lo, hi)
			err = l.DeleteRange(lo, hi)
		default:
			op = "reopen"
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, path)
		}
		if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
			t.Fatalf("step %d group %d %s: err = %v; want %v", step, g, op, err, wantErr)
		}
		for g := range uint64(groups) {
			checkLog(t, s.Group(g), ref[g])
		}
	}
}

func TestStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raftlog.db")
	s := openStore(t, path)
	a, b := s.Stable(1), s.Stable(2)
	if _, err := a.Get([]byte("k")); err != ErrKeyNotFound || err.Error() != "not found" {
		t.Fatalf("Get(missing) = %v; want ErrKeyNotFound reading \"not found\" (hashicorp/raft compares the text)", err)
	}
	if _, err := a.GetUint64([]byte("CurrentTerm")); err != ErrKeyNotFound {
		t.Fatalf("GetUint64(missing) = %v; want ErrKeyNotFound", err)
	}
	must(t, a.Set([]byte("k"), []byte("v1")))
	must(t, b.Set([]byte("k"), []byte("v2")))
	must(t, a.SetUint64([]byte("CurrentTerm"), 42))
	must(t, a.Set([]byte("empty"), nil))
	if err := a.Set(nil, []byte("v")); err == nil {
		t.Fatalf("Set(empty key) = nil; want an error")
	}
	check := func(s *Store) {
		t.Helper()
		for _, tc := range []struct {
			st   raft.StableStore
			key  string
			want string
		}{{s.Stable(1), "k", "v1"}, {s.Stable(2), "k", "v2"}, {s.Stable(1), "empty", ""}} {
			got, err := tc.st.Get([]byte(tc.key))
			if err != nil || string(got) != tc.want {
				t.Fatalf("Get(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
			}
		}
		if got, err := s.Stable(1).GetUint64([]byte("CurrentTerm")); got != 42 || err != nil {
			t.Fatalf("GetUint64(CurrentTerm) = %d, %v; want 42", got, err)
		}
		if _, err := s.Stable(2).GetUint64([]byte("CurrentTerm")); err != ErrKeyNotFound {
			t.Fatalf("group 2 GetUint64(CurrentTerm) = %v; want ErrKeyNotFound", err)
		}
		if _, err := s.Stable(1).GetUint64([]byte("k")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetUint64 of a 2-byte value = %v; want ErrCorrupt", err)
		}
	}
	check(s)
	must(t, s.Close())
	check(openStore(t, path))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "raftlog.db"))
	l := s.Group(1)
	must(t, l.StoreLogs(entries(1, 1, 3, 1)))
	must(t, s.Close())
	must(t, s.Close())
	if err := l.StoreLog(entry(1, 4, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLog after Close = %v; want ErrClosed", err)
	}
	if err := l.DeleteRange(1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteRange after Close = %v; want ErrClosed", err)
	}
	if err := s.Stable(1).Set([]byte("k"), []byte("v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close = %v; want ErrClosed", err)
	}
	var e raft.Log
	if err := l.GetLog(1, &e); err == nil {
		t.Fatalf("GetLog after Close = nil; want an error")
	}
}

// TestCloseWhileWriting closes the store under concurrent writers: each
// call either succeeds (and is durable) or fails with ErrClosed, and none
// hangs.
func TestCloseWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raftlog.db")
	s := openStore(t, path)
	const groups = 8
	acked := make([]uint64, groups)
	done := make(chan error, groups)
	for g := range uint64(groups) {
		go func() {
			l := s.Group(g)
			for i := uint64(1); ; i++ {
				err := l.StoreLog(entry(g, i, 1))
				if errors.Is(err, ErrClosed) {
					done <- nil
					return
				}
				if err != nil {
					done <- err
					return
				}
				acked[g] = i
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Entries < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	must(t, s.Close())
	for range groups {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, path)
	for g := range uint64(groups) {
		last, _ := s.Group(g).LastIndex()
		if last < acked[g] || last > acked[g]+1 {
			t.Fatalf("group %d: last = %d after %d acked; want %d (or one more, committed as Close began)", g, last, acked[g], acked[g])
		}
	}
}

// TestOpenRejects checks that Open refuses files it does not understand or
// whose logs have a hole, and reports damaged entries on read.
func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()

	other := filepath.Join(dir, "raft-boltdb.db")
	bs, err := raftboltdb.New(raftboltdb.Options{Path: other})
	must(t, err)
	must(t, bs.StoreLog(entry(1, 1, 1)))
	must(t, bs.Close())
	if s, err := Open(other); err == nil {
		s.Close()
		t.Fatalf("Open(raft-boltdb file) = nil error; want one")
	}

	holed := filepath.Join(dir, "holed.db")
	s := openStore(t, holed)
	must(t, s.Group(3).StoreLogs(entries(3, 1, 10, 1)))
	must(t, s.Close())
	editBolt(t, holed, func(b *bolt.Bucket) error { return b.Delete(binary.BigEndian.AppendUint64(nil, 5)) })
	if s, err := Open(holed); !errors.Is(err, ErrNotContiguous) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open(log with a hole) = %v; want ErrNotContiguous", err)
	}

	damaged := filepath.Join(dir, "damaged.db")
	s = openStore(t, damaged)
	must(t, s.Group(3).StoreLogs(entries(3, 1, 10, 1)))
	must(t, s.Close())
	editBolt(t, damaged, func(b *bolt.Bucket) error {
		k := binary.BigEndian.AppendUint64(nil, 4)
		v := append([]byte{}, b.Get(k)...)
		v[len(v)/2] ^= 0x40
		return b.Put(k, v)
	})
	s = openStore(t, damaged)
	var e raft.Log
	if err := s.Group(3).GetLog(4, &e); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetLog(damaged) = %v; want ErrCorrupt", err)
	}
	must(t, s.Group(3).GetLog(5, &e))
}

// editBolt changes group 3's log bucket behind the store's back.
func editBolt(t *testing.T, path string, fn func(*bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error {
		return fn(tx.Bucket(bucketLogs).Bucket(binary.BigEndian.AppendUint64(nil, 3)))
	}))
	must(t, db.Close())
}

// TestCommitWait: with a commit window, writers that keep appending
// together share commits (the window waits for the others), and a lone
// writer never waits for the window.
func TestCommitWait(t *testing.T) {
	const (
		window  = 2 * time.Second
		gap     = 300 * time.Millisecond
		writers = 8
		rounds  = 5
	)
	s := openStore(t, filepath.Join(t.TempDir(), "log.db"), WithCommitWait(window, gap, writers))

	// A lone writer: ten appends in a row, each committed at once.
	start := time.Now()
	for i := range uint64(10) {
		must(t, s.Group(100).StoreLogs(entries(100, i+1, i+1, 1)))
	}
	if took := time.Since(start); took >= 10*gap {
		t.Errorf("10 lone appends took %v: they waited for the window", took)
	}

	// Writers appending together: once a commit carries more than one
	// request, each commit waits for all of them. The window opens only
	// after recent commits carried more than one request each (the lone
	// appends above carried one), so the first rounds may take a few
	// commits more; without the window it would be up to one per append
	// (40).
	before := s.Stats().Commits
	var wg sync.WaitGroup
	startLine := make(chan struct{})
	for g := range uint64(writers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startLine
			for r := range uint64(rounds) {
				must(t, s.Group(g).StoreLogs(entries(g, r+1, r+1, 1)))
			}
		}()
	}
	close(startLine)
	wg.Wait()
	commits := s.Stats().Commits - before
	t.Logf("%d writers × %d appends: %d commits", writers, rounds, commits)
	if commits > 2*rounds {
		t.Errorf("%d writers × %d appends took %d commits; want about one per round, at most %d", writers, rounds, commits, 2*rounds)
	}
	for g := range uint64(writers) {
		checkLog(t, s.Group(g), entries(g, 1, rounds, 1))
	}
}

// TestDrop: a dropped group has no log and no stable state, now and after a
// reopen, and can store again from any index; its neighbours keep theirs.
func TestDrop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	s := openStore(t, path)
	for _, g := range []uint64{1, 2} {
		if err := s.Group(g).StoreLogs(entries(g, 1, 10, 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.Stable(g).SetUint64([]byte("CurrentTerm"), 7); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Drop(1); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if err := s.Drop(99); err != nil {
		t.Fatalf("Drop of a group that never stored: %v", err)
	}
	check := func(s *Store) {
		t.Helper()
		if last, _ := s.Group(1).LastIndex(); last != 0 {
			t.Errorf("dropped group's last index = %d; want 0", last)
		}
		if v, err := s.Stable(1).GetUint64([]byte("CurrentTerm")); err == nil && v != 0 {
			t.Errorf("dropped group's term = %d; want none", v)
		}
		checkLog(t, s.Group(2), entries(2, 1, 10, 1))
		if v, err := s.Stable(2).GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
			t.Errorf("neighbour's term = %d, %v; want 7", v, err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path)
	check(s)
	if err := s.Group(1).StoreLogs(entries(1, 50, 52, 3)); err != nil {
		t.Fatalf("store after drop: %v", err)
	}
	checkLog(t, s.Group(1), entries(1, 50, 52, 3))
}
