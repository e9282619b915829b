package raftlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// TestHammer runs 16 groups at once, each like a hashicorp/raft replica:
// one goroutine appending batches (StoreLogs one at a time), one compacting
// a prefix now and then (the snapshot goroutine's DeleteRange, concurrent
// with the appends), and one reading. Odd groups compact, even ones keep
// everything. Afterwards, and after a reopen, every group holds exactly
// its own entries.
func TestHammer(t *testing.T) {
	seed := testSeed(t)
	const groups = 16
	perGroup := uint64(1000)
	if testing.Short() {
		perGroup = 200
	}
	path := filepath.Join(t.TempDir(), "raftlog.db")
	s := openStore(t, path)

	var wg sync.WaitGroup
	errs := make(chan error, 3*groups)
	for g := range uint64(groups) {
		l := s.Group(g)
		appended := make(chan uint64, 1) // latest acked index, for the others
		stopped := make(chan struct{})
		wg.Go(func() { // appender
			defer close(stopped)
			rng := rand.New(rand.NewPCG(seed, g))
			for next := uint64(1); next <= perGroup; {
				n := min(perGroup-next+1, 1+uint64(rng.IntN(8)))
				if err := l.StoreLogs(entries(g, next, next+n-1, 1)); err != nil {
					errs <- fmt.Errorf("group %d: %w", g, err)
					return
				}
				next += n
				select {
				case <-appended:
				default:
				}
				appended <- next - 1
			}
		})
		wg.Go(func() { // compactor and reader
			rng := rand.New(rand.NewPCG(seed, g+groups))
			var last uint64
			for {
				select {
				case last = <-appended:
				case <-stopped:
					return
				}
				first, _ := l.FirstIndex()
				if g%2 == 1 && last > first+20 {
					if err := l.DeleteRange(first, last-10); err != nil {
						errs <- fmt.Errorf("group %d: %w", g, err)
						return
					}
				}
				i := last - min(last-1, uint64(rng.IntN(10)))
				var e raft.Log
				err := l.GetLog(i, &e)
				switch {
				case errors.Is(err, raft.ErrLogNotFound) && g%2 == 1:
					// compacted meanwhile
				case err != nil:
					errs <- fmt.Errorf("group %d: GetLog(%d): %w", g, i, err)
					return
				case !logsEqual(&e, entry(g, i, 1)):
					errs <- fmt.Errorf("group %d: GetLog(%d) = %q; want %q", g, i, e.Data, entry(g, i, 1).Data)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	check := func(s *Store) {
		t.Helper()
		for g := range uint64(groups) {
			first := uint64(1)
			if g%2 == 1 {
				first, _ = s.Group(g).FirstIndex()
				if first < 1 || first > perGroup-9 {
					t.Fatalf("group %d: first = %d; want within [1, %d]", g, first, perGroup-9)
				}
			}
			checkLog(t, s.Group(g), entries(g, first, perGroup, 1))
		}
	}
	check(s)
	st := s.Stats()
	t.Logf("%d commits, %d requests, %d entries: %.1f entries and %.1f requests per commit",
		st.Commits, st.Requests, st.Entries, float64(st.Entries)/float64(st.Commits), float64(st.Requests)/float64(st.Commits))
	if st.Entries != groups*perGroup {
		t.Fatalf("Stats().Entries = %d; want %d", st.Entries, groups*perGroup)
	}
	must(t, s.Close())
	check(openStore(t, path))
}
