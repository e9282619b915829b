package raftlog

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// crashEnv names the store file TestCrashChild writes to; unset, the test
// is skipped (it only runs as TestCrash's child).
const crashEnv = "WISP_RAFTLOG_CRASH_DB"

// crashSeedEnv carries the child's random seed.
const crashSeedEnv = "WISP_RAFTLOG_CRASH_SEED"

const (
	crashGroups = 8
	// crashKeep is how many entries the child's compaction keeps behind
	// the last one, like raft's TrailingLogs.
	crashKeep = 50
	// crashChildLimit ends a child nobody killed (the parent died).
	crashChildLimit = 30 * time.Second
)

// TestCrash kills a writer with SIGKILL in the middle of a write burst over
// 8 groups, reopens the file and checks that every entry the writer saw
// acknowledged is there, in every group, and that no group's log has a
// hole. The child appends to what earlier rounds left, so later rounds also
// check recovery after a crash. Each round kills at a random number of
// acknowledgements; the seed replays the run.
//
// SIGKILL loses what the process held, not what the kernel held: this
// tests that StoreLogs acknowledges only committed transactions and that a
// torn transaction is invisible after reopening, not power loss.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("running as the child")
	}
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	path := filepath.Join(t.TempDir(), "raftlog.db")
	acked := make([]uint64, crashGroups)   // highest acknowledged index per group
	deleted := make([]uint64, crashGroups) // highest index a compaction may have removed
	for round := range rounds {
		killAfter := 200 + rng.IntN(1500)
		acks := crashRound(t, path, seed+uint64(round), killAfter, acked, deleted)
		s, err := Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for g := range uint64(crashGroups) {
			l := s.Group(g)
			first, _ := l.FirstIndex()
			last, _ := l.LastIndex()
			if last < acked[g] {
				t.Errorf("round %d group %d: last index %d; %d was acknowledged", round, g, last, acked[g])
			}
			if acked[g] > 0 && first > max(deleted[g]+1, 1) {
				t.Errorf("round %d group %d: first index %d; entries after %d were never deleted", round, g, first, deleted[g])
			}
			for i := first; i <= last && first > 0; i++ {
				var e raft.Log
				if err := l.GetLog(i, &e); err != nil {
					t.Errorf("round %d group %d: GetLog(%d) in [%d, %d]: %v", round, g, i, first, last, err)
					break
				}
				if want := entry(g, i, 1); !logsEqual(&e, want) {
					t.Errorf("round %d group %d: GetLog(%d) = %q; want %q", round, g, i, e.Data, want.Data)
					break
				}
			}
			// What was written but not acknowledged may or may not be
			// there; the child's next round continues after it.
			acked[g] = last
		}
		t.Logf("round %d: killed after %d acknowledgements (%d read)", round, killAfter, acks)
		must(t, s.Close())
		if t.Failed() {
			return
		}
	}
}

// crashRound runs one child and SIGKILLs it once it has printed killAfter
// acknowledgements; it reads everything the child printed before it died
// and raises acked and deleted accordingly. It returns how many
// acknowledgements it read.
func crashRound(t *testing.T, path string, seed uint64, killAfter int, acked, deleted []uint64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path, crashSeedEnv+"="+strconv.FormatUint(seed, 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	acks := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var kind string
		var g, i uint64
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d %d", &kind, &g, &i); n != 3 || g >= crashGroups {
			continue // the test framework's own output
		}
		switch kind {
		case "ack": // StoreLogs of entries up to i returned
			acked[g] = max(acked[g], i)
			acks++
		case "del": // a DeleteRange up to i is about to start
			deleted[g] = max(deleted[g], i)
		}
		if acks == killAfter && !killed {
			must(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	must(t, sc.Err())
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before %d acknowledgements (%d): %v", killAfter, acks, err)
	}
	return acks
}

// TestCrashChild is TestCrash's child: it appends to 8 groups at once
// until killed, printing "ack g i" as soon as StoreLogs of entries up to i
// returns and "del g i" before compacting up to i.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("runs only as TestCrash's child")
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	must(t, err)
	s, err := Open(path)
	must(t, err)
	var mu sync.Mutex // one line per write to stdout
	say := func(kind string, g, i uint64) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s %d %d\n", kind, g, i)
	}
	deadline := time.Now().Add(crashChildLimit)
	var wg sync.WaitGroup
	for g := range uint64(crashGroups) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, g))
			l := s.Group(g)
			last, _ := l.LastIndex()
			for time.Now().Before(deadline) {
				n := 1 + uint64(rng.IntN(4))
				if err := l.StoreLogs(entries(g, last+1, last+n, 1)); err != nil {
					t.Errorf("group %d: %v", g, err)
					return
				}
				last += n
				say("ack", g, last)
				if first, _ := l.FirstIndex(); last > first+2*crashKeep && rng.IntN(4) == 0 {
					say("del", g, last-crashKeep)
					if err := l.DeleteRange(first, last-crashKeep); err != nil {
						t.Errorf("group %d: %v", g, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	s.Close()
}
