package node_test

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// The tests in this file follow etcd's tests/robustness: concurrent clients
// drive Put / Get / CAS-Put / Delete against a real 3-node cluster while a
// fault is injected, every call and its outcome is recorded, and porcupine
// checks that the history is linearizable against a sequential model of one
// key (the model is partitioned by key).
//
// Recording rules (what the client learned decides what is recorded):
//   - A definite answer (including FAILED_PRECONDITION) is recorded as is.
//   - UNAVAILABLE sent by a server, a failed dial, and any error on a read had
//     no effect: the call is left out of the history.
//   - ABORTED, DEADLINE_EXCEEDED and transport errors on a write leave the
//     outcome unknown: the call is kept, its return time is moved past the end
//     of the history, and the model lets it apply or not. The client then
//     continues under a new porcupine client id, since its old one still has
//     a call in flight.
//
// Replay a run's choices with WISP_SEED=<seed>. A failing history is written
// as porcupine's HTML visualisation under $WISP_ARTIFACTS (or t.TempDir()).

// linCallTimeout bounds one client call, as a client with a per-call deadline
// would.
const linCallTimeout = 2 * time.Second

// linRetryBackoff paces a client after a call that had no effect (no leader,
// node down), so that an election does not turn into a busy loop that eats
// the op budget.
const linRetryBackoff = 20 * time.Millisecond

// linFaultTimeout bounds one fault action that has no bound of its own
// (c.Kill): a node that hangs while crashing is a bug, reported at once with
// every goroutine's stack rather than at the test binary's timeout.
const linFaultTimeout = 20 * time.Second

// linCheckTimeout bounds porcupine. Unknown (timed out) fails the test.
const linCheckTimeout = 60 * time.Second

// TestLinearizability checks a concurrent history with a leader crash in the
// middle: the leader is killed after about a third of the run and restarted
// after about two thirds.
func TestLinearizability(t *testing.T) {
	seed := linSeed(t)
	c := nodetest.Start(t, nodetest.Options{})
	cfg := linConfig{
		workers:        10,
		keys:           12,
		maxOps:         2500,
		duration:       10 * time.Second,
		readAfterWrite: 0.3,
	}
	res := linRun(t, c, cfg, seed, func(p *linProgress) {
		p.waitFraction(t, 0.3)
		old := c.Leader()
		if old < 0 {
			old = c.WaitLeader(10 * time.Second)
		}
		killedAt := p.elapsed()
		linBounded(fmt.Sprintf("c.Kill(%d)", old), func() { c.Kill(old) })
		now := c.WaitLeader(10 * time.Second)
		electedAt := p.elapsed()
		p.leaderChange = electedAt
		t.Logf("leader change: killed leader n%d at %v (after %d ops); n%d elected at %v (%v without a leader)",
			old+1, killedAt.Round(time.Millisecond), p.recorded.Load(), now+1,
			electedAt.Round(time.Millisecond), (electedAt - killedAt).Round(time.Millisecond))
		p.waitFraction(t, 0.65)
		c.Restart(old)
		t.Logf("restarted n%d at %v", old+1, p.elapsed().Round(time.Millisecond))
	})

	linRequireFaultInside(t, res)
	linRequireOk(t, res, seed)

	// The restarted node caught up: every replica holds the same state.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c.WaitConverged(ctx)
}

// TestLinearizabilitySharded checks a history over 24 keys spread across 16
// shards on 5 nodes (each key is linearizable on its own, which is what the
// model partitions by), with a crash of a node that leads some shards after
// about a third of the run and its restart after about two thirds.
func TestLinearizabilitySharded(t *testing.T) {
	seed := linSeed(t)
	c := nodetest.Start(t, nodetest.Options{Nodes: 5, Shards: 16})
	cfg := linConfig{
		workers:        10,
		keys:           24,
		maxOps:         2500,
		duration:       10 * time.Second,
		readAfterWrite: 0.3,
	}
	res := linRun(t, c, cfg, seed, func(p *linProgress) {
		p.waitFraction(t, 0.3)
		victim := c.WaitLeader(10 * time.Second) // shard 0's leader
		led := 0
		for s := range c.Shards() {
			if c.ShardLeader(s) == victim {
				led++
			}
		}
		killedAt := p.elapsed()
		linBounded(fmt.Sprintf("c.Kill(%d)", victim), func() { c.Kill(victim) })
		c.WaitLeader(10 * time.Second) // every shard
		p.leaderChange = p.elapsed()
		t.Logf("killed n%d (leader of %d shards) at %v; every shard led again at %v",
			victim+1, led, killedAt.Round(time.Millisecond), p.leaderChange.Round(time.Millisecond))
		p.waitFraction(t, 0.65)
		c.Restart(victim)
	})
	linRequireFaultInside(t, res)
	linRequireOk(t, res, seed)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	c.WaitConverged(ctx)
}

// linRequireFaultInside fails the test unless the fault (res.leaderChange)
// falls in the middle of the history, with definite ops on both sides.
func linRequireFaultInside(t *testing.T, res linResult) {
	t.Helper()
	var before, after int
	for _, op := range res.ops {
		switch {
		case op.Return < int64(res.leaderChange) && op.Return != res.end:
			before++
		case op.Call > int64(res.leaderChange) && op.Return != res.end:
			after++
		}
	}
	t.Logf("%d definite ops completed before the leader change, %d called after it", before, after)
	if before == 0 || after == 0 {
		t.Errorf("the leader change is not inside the history: %d ops before it, %d after", before, after)
	}
}

// linRequireOk fails the test unless porcupine finds the history
// linearizable; an Illegal history is written out as a visualisation.
func linRequireOk(t *testing.T, res linResult, seed uint64) {
	t.Helper()
	result, info := linCheck(t, res)
	switch result {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := linVisualize(t, info, seed)
		t.Fatalf("history is not linearizable (seed %d); visualisation: %s", seed, path)
	default:
		t.Fatalf("porcupine gave %s after %v (seed %d): an unchecked history is a failure; shrink the workload", result, linCheckTimeout, seed)
	}
}

// TestLinearizabilityCatchesStaleReads proves the check is not vacuous: reads
// go to a follower with CONSISTENCY_STALE but are recorded as linearizable
// reads, and porcupine must call the history Illegal. A client reads a key
// right after writing it through the leader, on a few hot keys, so that a
// follower that has not applied the write yet is likely to answer. No fault
// is injected: staleness needs none, and it keeps each attempt short.
func TestLinearizabilityCatchesStaleReads(t *testing.T) {
	const maxAttempts = 5
	seed := linSeed(t)
	c := nodetest.Start(t, nodetest.Options{})
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		cfg := linConfig{
			workers:        8,
			keys:           4,
			keyPrefix:      fmt.Sprintf("a%d/", attempt),
			maxOps:         800,
			duration:       3 * time.Second,
			readAfterWrite: 0.8,
			staleReads:     true,
		}
		res := linRun(t, c, cfg, seed+uint64(attempt), nil)
		result, info := linCheck(t, res)
		if result == porcupine.Illegal {
			path := linVisualize(t, info, seed+uint64(attempt))
			t.Logf("stale reads caught on attempt %d of %d; visualisation: %s", attempt, maxAttempts, path)
			return
		}
		t.Logf("attempt %d: porcupine says %s; trying again", attempt, result)
	}
	t.Fatalf("porcupine did not catch stale follower reads in %d attempts (seed %d): the check may be vacuous", maxAttempts, seed)
}

// TestLinearizabilityModel pins the model on small hand-written histories.
func TestLinearizabilityModel(t *testing.T) {
	const k = "k"
	get := func(cl int, call, ret int64, found bool, value string, version uint64) porcupine.Operation {
		return linOp(cl, call, ret, linInput{op: linGet, key: k}, linOutput{found: found, value: value, version: version})
	}
	put := func(cl int, call, ret int64, value string, version uint64) porcupine.Operation {
		return linOp(cl, call, ret, linInput{op: linPut, key: k, value: value}, linOutput{version: version})
	}
	putUnknown := func(cl int, call int64, value string) porcupine.Operation {
		return linOp(cl, call, 1000, linInput{op: linPut, key: k, value: value}, linOutput{unknown: true})
	}
	cas := func(cl int, call, ret int64, value string, ifVersion, version uint64) porcupine.Operation {
		return linOp(cl, call, ret, linInput{op: linCAS, key: k, value: value, ifVersion: ifVersion}, linOutput{version: version})
	}
	casFailed := func(cl int, call, ret int64, value string, ifVersion, current uint64) porcupine.Operation {
		return linOp(cl, call, ret, linInput{op: linCAS, key: k, value: value, ifVersion: ifVersion}, linOutput{failed: true, version: current})
	}
	casUnknown := func(cl int, call int64, value string, ifVersion uint64) porcupine.Operation {
		return linOp(cl, call, 1000, linInput{op: linCAS, key: k, value: value, ifVersion: ifVersion}, linOutput{unknown: true})
	}
	del := func(cl int, call, ret int64, existed bool, version uint64) porcupine.Operation {
		return linOp(cl, call, ret, linInput{op: linDelete, key: k}, linOutput{found: existed, version: version})
	}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"put then get", []porcupine.Operation{put(0, 0, 1, "a", 5), get(0, 2, 3, true, "a", 5)}, porcupine.Ok},
		{"get of a missing key", []porcupine.Operation{get(0, 0, 1, false, "", 0)}, porcupine.Ok},
		{"get reports another version", []porcupine.Operation{put(0, 0, 1, "a", 5), get(0, 2, 3, true, "a", 6)}, porcupine.Illegal},
		{"get sees a value never written", []porcupine.Operation{put(0, 0, 1, "a", 5), get(0, 2, 3, true, "b", 5)}, porcupine.Illegal},
		{"stale read", []porcupine.Operation{
			put(0, 0, 1, "a", 5), put(0, 2, 3, "b", 7), get(1, 4, 5, true, "a", 5),
		}, porcupine.Illegal},
		{"concurrent put may be seen", []porcupine.Operation{
			put(0, 0, 1, "a", 5), put(0, 2, 6, "b", 7), get(1, 3, 4, true, "b", 7), get(1, 4, 5, true, "b", 7),
		}, porcupine.Ok},
		{"versions must grow in linearization order", []porcupine.Operation{
			put(0, 0, 1, "a", 9), put(0, 2, 3, "b", 7),
		}, porcupine.Illegal},
		{"unknown put seen later", []porcupine.Operation{
			put(0, 0, 1, "a", 5), putUnknown(1, 2, "b"), get(0, 3, 4, true, "b", 8), get(0, 5, 6, true, "b", 8),
		}, porcupine.Ok},
		{"unknown put never seen", []porcupine.Operation{
			put(0, 0, 1, "a", 5), putUnknown(1, 2, "b"), get(0, 3, 4, true, "a", 5),
		}, porcupine.Ok},
		{"unknown put seen then unseen", []porcupine.Operation{
			put(0, 0, 1, "a", 5), putUnknown(1, 2, "b"), get(0, 3, 4, true, "b", 8), get(0, 5, 6, true, "a", 5),
		}, porcupine.Illegal},
		{"unknown put seen at an old version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), putUnknown(1, 2, "b"), get(0, 3, 4, true, "b", 4),
		}, porcupine.Illegal},
		{"unknown put seen at two versions", []porcupine.Operation{
			put(0, 0, 1, "a", 5), putUnknown(1, 2, "b"), get(0, 3, 4, true, "b", 8), get(0, 5, 6, true, "b", 9),
		}, porcupine.Illegal},
		{"cas at the current version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), cas(0, 2, 3, "b", 5, 6), get(0, 4, 5, true, "b", 6),
		}, porcupine.Ok},
		{"cas succeeds at a wrong version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), cas(0, 2, 3, "b", 4, 6),
		}, porcupine.Illegal},
		{"cas fails at the current version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), casFailed(0, 2, 3, "b", 5, 5),
		}, porcupine.Illegal},
		{"cas fails and reports the current version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), casFailed(0, 2, 3, "b", 4, 5),
		}, porcupine.Ok},
		{"cas fails and reports a wrong current version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), casFailed(0, 2, 3, "b", 4, 6),
		}, porcupine.Illegal},
		{"cas on a missing key", []porcupine.Operation{casFailed(0, 0, 1, "b", 4, 0)}, porcupine.Ok},
		{"cas learns an unknown put's version", []porcupine.Operation{
			put(0, 0, 1, "a", 5), putUnknown(1, 2, "b"), cas(0, 3, 4, "c", 8, 9), get(0, 5, 6, true, "c", 9),
		}, porcupine.Ok},
		{"unknown cas that cannot apply is seen", []porcupine.Operation{
			put(0, 0, 1, "a", 5), casUnknown(1, 2, "b", 4), get(0, 3, 4, true, "b", 8),
		}, porcupine.Illegal},
		{"unknown cas applied", []porcupine.Operation{
			put(0, 0, 1, "a", 5), casUnknown(1, 2, "b", 5), get(0, 3, 4, true, "b", 8),
		}, porcupine.Ok},
		{"delete then get", []porcupine.Operation{
			put(0, 0, 1, "a", 5), del(0, 2, 3, true, 6), get(0, 4, 5, false, "", 0),
		}, porcupine.Ok},
		{"delete of a missing key says it existed", []porcupine.Operation{del(0, 0, 1, true, 6)}, porcupine.Illegal},
		{"get after delete sees the old value", []porcupine.Operation{
			put(0, 0, 1, "a", 5), del(0, 2, 3, true, 6), get(0, 4, 5, true, "a", 5),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := porcupine.CheckOperationsTimeout(linModel, tt.history, 10*time.Second)
			if got != tt.want {
				t.Errorf("CheckOperations = %s; want %s", got, tt.want)
			}
		})
	}
}

// linBounded runs fn, and crashes the test binary with every goroutine's
// stack if fn has not returned within linFaultTimeout.
func linBounded(what string, fn func()) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(linFaultTimeout):
			debug.SetTraceback("all")
			panic(fmt.Sprintf("%s has not returned after %v: hang (the stacks of all goroutines follow)", what, linFaultTimeout))
		}
	}()
	fn()
}

func linOp(client int, call, ret int64, in linInput, out linOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

// linSeed returns the run's seed, from WISP_SEED if set, and logs it.
func linSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("WISP_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WISP_SEED=%q: %v", s, err)
		}
		t.Logf("seed %d (from WISP_SEED)", seed)
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (replay with WISP_SEED=%d)", seed, seed)
	return seed
}

// --- The model: one key, partitioned by key. ---

type linOpKind uint8

const (
	linGet linOpKind = iota
	linPut
	linCAS
	linDelete
)

// linInput is one call on one key.
type linInput struct {
	op        linOpKind
	key       string
	value     string // linPut, linCAS; unique per call
	ifVersion uint64 // linCAS
}

// linOutput is what the client learned.
type linOutput struct {
	// unknown: the call may or may not have applied (ABORTED,
	// DEADLINE_EXCEEDED, transport error on a write). Nothing else is set.
	unknown bool
	// found: linGet found the key; linDelete removed a live key.
	found bool
	value string // linGet
	// version: linGet the value's version; linPut, linCAS and linDelete the
	// write's version; a failed linCAS the key's current version (0: absent).
	version uint64
	failed  bool // linCAS: FAILED_PRECONDITION
}

// linState is one key's state in the model. Versions are Raft indexes: the
// model cannot predict them, so a write's version is taken from its answer,
// and must exceed every version written before it in the linearization.
type linState struct {
	exists bool
	value  string
	// known says whether version is the value's version. A write whose
	// outcome was unknown has an unknown version: then version is an
	// exclusive lower bound, until a read or a CAS reveals it.
	known   bool
	version uint64
	// floor is the highest version written to the key so far (including
	// deletes); every later write has a higher one.
	floor uint64
}

// matches reports whether the key exists at version v, and the state with
// v learned if the version was unknown.
func (s linState) matches(v uint64) (bool, linState) {
	switch {
	case !s.exists:
		return false, s
	case s.known:
		return s.version == v, s
	case v > s.version:
		s.known, s.version, s.floor = true, v, max(s.floor, v)
		return true, s
	}
	return false, s
}

// written is s after a write of value at version v (a put whose outcome is
// unknown passes known false and v as the lower bound).
func (s linState) written(value string, v uint64, known bool) linState {
	return linState{exists: true, value: value, known: known, version: v, floor: max(s.floor, v)}
}

// linStep returns every state the key can be in after in returned out in
// state s; none if that answer is impossible.
func linStep(s linState, in linInput, out linOutput) []linState {
	switch in.op {
	case linGet:
		if !out.found {
			if s.exists {
				return nil
			}
			return []linState{s}
		}
		if ok, s2 := s.matches(out.version); ok && s.value == out.value {
			return []linState{s2}
		}
		return nil

	case linPut:
		if out.unknown {
			return []linState{s, s.written(in.value, s.floor, false)}
		}
		if out.version <= s.floor {
			return nil
		}
		return []linState{s.written(in.value, out.version, true)}

	case linCAS:
		if out.unknown {
			next := []linState{s}
			if ok, s2 := s.matches(in.ifVersion); ok {
				next = append(next, s2.written(in.value, s2.floor, false))
			}
			return next
		}
		if out.failed {
			if out.version == 0 {
				if s.exists {
					return nil
				}
				return []linState{s}
			}
			if out.version == in.ifVersion {
				return nil
			}
			if ok, s2 := s.matches(out.version); ok {
				return []linState{s2}
			}
			return nil
		}
		ok, s2 := s.matches(in.ifVersion)
		if !ok || out.version <= s2.floor {
			return nil
		}
		return []linState{s2.written(in.value, out.version, true)}

	case linDelete:
		gone := linState{known: true, floor: s.floor}
		if out.unknown {
			return []linState{s, gone}
		}
		if out.found != s.exists || out.version <= s.floor {
			return nil
		}
		gone.floor = out.version
		return []linState{gone}
	}
	panic(fmt.Sprintf("unknown op %d", in.op))
}

var linHashSeed = maphash.MakeSeed()

var linModel = (&porcupine.NondeterministicModel{
	Partition: linPartition,
	Init:      func() []any { return []any{linState{known: true}} },
	Step: func(state, input, output any) []any {
		next := linStep(state.(linState), input.(linInput), output.(linOutput))
		out := make([]any, len(next))
		for i, s := range next {
			out[i] = s
		}
		return out
	},
	Hash:              func(state any) uint64 { return maphash.Comparable(linHashSeed, state.(linState)) },
	DescribeOperation: linDescribeOp,
	DescribeState: func(state any) string {
		s := state.(linState)
		switch {
		case !s.exists:
			return fmt.Sprintf("absent (floor v%d)", s.floor)
		case s.known:
			return fmt.Sprintf("%s@v%d", s.value, s.version)
		}
		return fmt.Sprintf("%s@>v%d", s.value, s.version)
	},
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}).ToModel()

func linPartition(history []porcupine.Operation) [][]porcupine.Operation {
	index := map[string]int{}
	var parts [][]porcupine.Operation
	for _, op := range history {
		k := op.Input.(linInput).key
		i, ok := index[k]
		if !ok {
			i = len(parts)
			index[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

func linDescribeOp(input, output any) string {
	in, out := input.(linInput), output.(linOutput)
	var call string
	switch in.op {
	case linGet:
		call = fmt.Sprintf("get(%s)", in.key)
	case linPut:
		call = fmt.Sprintf("put(%s, %s)", in.key, in.value)
	case linCAS:
		call = fmt.Sprintf("cas(%s, %s, if v%d)", in.key, in.value, in.ifVersion)
	case linDelete:
		call = fmt.Sprintf("del(%s)", in.key)
	}
	switch {
	case out.unknown:
		return call + " -> ?"
	case in.op == linGet && !out.found:
		return call + " -> absent"
	case in.op == linGet:
		return fmt.Sprintf("%s -> %s@v%d", call, out.value, out.version)
	case in.op == linCAS && out.failed && out.version == 0:
		return call + " -> failed, absent"
	case out.failed:
		return fmt.Sprintf("%s -> failed, at v%d", call, out.version)
	case in.op == linDelete:
		return fmt.Sprintf("%s -> existed=%t, v%d", call, out.found, out.version)
	}
	return fmt.Sprintf("%s -> v%d", call, out.version)
}

// --- The workload. ---

// linConfig shapes one run. Concurrency per key is what makes porcupine slow,
// so keys are many enough, and ops and time are bounded.
type linConfig struct {
	workers   int
	keys      int
	keyPrefix string
	// maxOps bounds the recorded ops; duration bounds the wall time.
	maxOps   int
	duration time.Duration
	// readAfterWrite is the probability that a client reads a key right
	// after a write to it returned.
	readAfterWrite float64
	// staleReads is the deliberately broken read path: writes go to the
	// leader, reads go to a follower with CONSISTENCY_STALE, and are still
	// recorded as linearizable reads.
	staleReads bool
}

// linProgress lets the fault schedule follow the workload. Safe for
// concurrent use, except leaderChange, which the fault function sets.
type linProgress struct {
	cfg      linConfig
	start    time.Time
	recorded atomic.Int64
	done     chan struct{} // closed when every client stopped
	// leaderChange is when the new leader was seen, since start.
	leaderChange time.Duration
}

func (p *linProgress) elapsed() time.Duration { return time.Since(p.start) }

// waitFraction waits until the run is at least f done, by recorded ops or by
// wall time, or over.
func (p *linProgress) waitFraction(t *testing.T, f float64) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for float64(p.recorded.Load()) < f*float64(p.cfg.maxOps) &&
		p.elapsed() < time.Duration(f*float64(p.cfg.duration)) {
		select {
		case <-p.done:
			t.Fatalf("the workload ended before it was %.0f%% done", f*100)
		case <-tick.C:
		}
	}
}

// linResult is a finished run.
type linResult struct {
	ops          []porcupine.Operation
	end          int64 // the return time given to ops with an unknown outcome
	leaderChange time.Duration
}

// linOutcome is what a call's answer means for the history.
type linOutcome uint8

const (
	linDefinite linOutcome = iota // record as answered
	linUnknown                    // record as maybe applied
	linDropped                    // had no effect: leave out
)

// linRun runs the workload with fault, if not nil, running on the test
// goroutine meanwhile, and returns the history.
func linRun(t *testing.T, c *nodetest.Cluster, cfg linConfig, seed uint64, fault func(*linProgress)) linResult {
	t.Helper()
	clients := linClients(t, c)
	keys := make([]string, cfg.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sk%02d", cfg.keyPrefix, i)
	}
	p := &linProgress{cfg: cfg, start: time.Now(), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(t.Context(), cfg.duration)
	// If the test goroutine exits early (t.Fatal in fault), stop the
	// clients before the cluster is torn down; each call is bounded.
	defer func() { cancel(); <-p.done }()

	var (
		wg        sync.WaitGroup
		nextID    atomic.Int64 // porcupine client ids for clients that had an unknown outcome
		histories = make([][]porcupine.Operation, cfg.workers)
		counts    = make([]map[string]int, cfg.workers)
	)
	nextID.Store(int64(cfg.workers))
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &linClient{
				c: c, cfg: cfg, p: p, keys: keys,
				rng:      rand.New(rand.NewPCG(seed, uint64(w))),
				worker:   w,
				id:       w,
				proto:    w % len(clients),
				clients:  clients,
				versions: map[string]uint64{},
				counts:   map[string]int{},
				nextID:   &nextID,
			}
			if err := cl.run(ctx); err != nil {
				t.Errorf("client %d: %v", w, err)
			}
			histories[w], counts[w] = cl.ops, cl.counts
		}()
	}
	go func() { wg.Wait(); close(p.done) }()
	if fault != nil {
		fault(p)
	}
	<-p.done

	res := linResult{leaderChange: p.leaderChange}
	total := map[string]int{}
	for w := range cfg.workers {
		res.ops = append(res.ops, histories[w]...)
		for k, n := range counts[w] {
			total[k] += n
		}
	}
	for _, op := range res.ops {
		res.end = max(res.end, op.Call, op.Return)
	}
	res.end++
	byKind := map[linOpKind]int{}
	unknown := 0
	for i := range res.ops {
		op := &res.ops[i]
		byKind[op.Input.(linInput).op]++
		if op.Output.(linOutput).unknown {
			op.Return = res.end
			unknown++
		}
	}
	t.Logf("%d ops in %v from %d clients on %d keys: %d get, %d put, %d cas, %d delete; %d with unknown outcome",
		len(res.ops), p.elapsed().Round(time.Millisecond), cfg.workers, cfg.keys,
		byKind[linGet], byKind[linPut], byKind[linCAS], byKind[linDelete], unknown)
	t.Logf("outcomes: %s", linFormatCounts(total))
	if len(res.ops) < cfg.maxOps/10 {
		t.Errorf("only %d ops recorded (budget %d): the cluster made too little progress", len(res.ops), cfg.maxOps)
	}
	return res
}

func linFormatCounts(m map[string]int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// linProtocols names the client protocols, by index into linClients' result.
var linProtocols = []string{"h1", "h2c"}

// linClients returns, per protocol (HTTP/1.1 and h2c), a Connect client per
// node.
func linClients(t *testing.T, c *nodetest.Cluster) [][]wispv1connect.KVServiceClient {
	var h1, h2c http.Protocols
	h1.SetHTTP1(true)
	h2c.SetUnencryptedHTTP2(true)
	var out [][]wispv1connect.KVServiceClient
	for _, p := range []*http.Protocols{&h1, &h2c} {
		tr := &http.Transport{Protocols: p, MaxIdleConnsPerHost: 16}
		t.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr}
		var perNode []wispv1connect.KVServiceClient
		for i := range c.Size() {
			perNode = append(perNode, wispv1connect.NewKVServiceClient(hc, c.URL(i)))
		}
		out = append(out, perNode)
	}
	return out
}

// linClient is one sequential client. Owned by its goroutine.
type linClient struct {
	c       *nodetest.Cluster
	cfg     linConfig
	p       *linProgress
	keys    []string
	rng     *rand.Rand
	worker  int
	id      int // porcupine client id; changes after an unknown outcome
	proto   int
	clients [][]wispv1connect.KVServiceClient
	nextID  *atomic.Int64
	seq     int

	versions map[string]uint64 // last version seen per key, for CAS
	ops      []porcupine.Operation
	counts   map[string]int // outcome counts, for the log
}

func (cl *linClient) run(ctx context.Context) error {
	for ctx.Err() == nil && cl.p.recorded.Load() < int64(cl.cfg.maxOps) {
		key := cl.keys[cl.rng.IntN(len(cl.keys))]
		in := linInput{key: key}
		switch r := cl.rng.IntN(100); {
		case r < 40:
			in.op = linGet
		case r < 65:
			in.op = linPut
		case r < 85:
			in.op = linCAS
			in.ifVersion = cl.versions[key]
			if in.ifVersion == 0 {
				in.ifVersion = 1 // index 1 is Raft's bootstrap entry: never a key's version
			}
		default:
			in.op = linDelete
		}
		if in.op == linPut || in.op == linCAS {
			cl.seq++
			in.value = fmt.Sprintf("c%d-%d", cl.worker, cl.seq)
		}
		outcome, err := cl.do(ctx, in)
		if err != nil {
			return err
		}
		if in.op != linGet && outcome == linDefinite && cl.rng.Float64() < cl.cfg.readAfterWrite {
			if _, err := cl.do(ctx, linInput{op: linGet, key: key}); err != nil {
				return err
			}
		}
	}
	return nil
}

// do makes one call, records it and returns its outcome. An error means the
// server broke its contract.
func (cl *linClient) do(ctx context.Context, in linInput) (linOutcome, error) {
	target := cl.rng.IntN(cl.c.Size())
	consistency := wispv1.Consistency_CONSISTENCY_LINEARIZABLE
	if cl.cfg.staleReads {
		leader := cl.c.Leader()
		if leader < 0 {
			return linDropped, nil
		}
		target = leader
		if in.op == linGet {
			target = (leader + 1 + cl.rng.IntN(cl.c.Size()-1)) % cl.c.Size()
			consistency = wispv1.Consistency_CONSISTENCY_STALE
		}
	}
	kv := cl.clients[cl.proto][target]

	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), linCallTimeout)
	defer cancel()
	call := cl.p.elapsed().Nanoseconds()
	var (
		out linOutput
		err error
	)
	switch in.op {
	case linGet:
		var resp *connect.Response[wispv1.GetResponse]
		resp, err = kv.Get(callCtx, connect.NewRequest(&wispv1.GetRequest{Key: []byte(in.key), Consistency: consistency}))
		if err == nil {
			out = linOutput{found: resp.Msg.Found, value: string(resp.Msg.Value), version: resp.Msg.Version}
		}
	case linPut, linCAS:
		var resp *connect.Response[wispv1.PutResponse]
		resp, err = kv.Put(callCtx, connect.NewRequest(&wispv1.PutRequest{Key: []byte(in.key), Value: []byte(in.value), IfVersion: in.ifVersion}))
		if err == nil {
			out = linOutput{version: resp.Msg.Version}
		}
	case linDelete:
		var resp *connect.Response[wispv1.DeleteResponse]
		resp, err = kv.Delete(callCtx, connect.NewRequest(&wispv1.DeleteRequest{Key: []byte(in.key)}))
		if err == nil {
			out = linOutput{found: resp.Msg.Deleted, version: resp.Msg.Version}
		}
	}
	ret := cl.p.elapsed().Nanoseconds()

	outcome, why := linDefinite, "ok"
	if err != nil {
		if in.op == linCAS && connect.CodeOf(err) == connect.CodeFailedPrecondition {
			current, ok := linCurrentVersion(err)
			if !ok {
				return 0, fmt.Errorf("cas(%s) on n%d: FAILED_PRECONDITION without a PreconditionFailure detail: %v", in.key, target+1, err)
			}
			out, why = linOutput{failed: true, version: current}, "cas-failed"
		} else {
			outcome, why = linClassify(err, in.op != linGet)
			if why == "unexpected" {
				return 0, fmt.Errorf("%s on n%d: unexpected error: %v", linDescribeOp(in, linOutput{unknown: true}), target+1, err)
			}
			out = linOutput{unknown: true}
		}
	}
	cl.counts[why]++

	switch outcome {
	case linDropped:
		select {
		case <-ctx.Done():
		case <-time.After(linRetryBackoff):
		}
		return outcome, nil
	case linDefinite:
		switch {
		case in.op == linDelete:
			delete(cl.versions, in.key)
		case out.failed || in.op != linGet || out.found:
			cl.versions[in.key] = out.version
		}
	}
	cl.ops = append(cl.ops, porcupine.Operation{
		ClientId: cl.id, Input: in, Call: call, Output: out, Return: ret,
		Metadata: fmt.Sprintf("n%d %s %s", target+1, linProtocols[cl.proto], why),
	})
	cl.p.recorded.Add(1)
	if outcome == linUnknown {
		// This client id keeps a call in flight to the end of the history.
		cl.id = int(cl.nextID.Add(1) - 1)
	}
	return outcome, nil
}

// linClassify says what an error other than a CAS's FAILED_PRECONDITION
// means for the history, and names why for the log ("unexpected" for codes
// the server must not send here).
func linClassify(err error, write bool) (linOutcome, string) {
	code := connect.CodeOf(err)
	wire := connect.IsWireError(err)
	var why string
	switch {
	case code == connect.CodeUnavailable && wire:
		return linDropped, "unavailable"
	case code == connect.CodeUnavailable && linIsDialError(err):
		return linDropped, "dial"
	case code == connect.CodeUnavailable:
		why = "transport"
	case code == connect.CodeAborted, code == connect.CodeDeadlineExceeded,
		code == connect.CodeCanceled, code == connect.CodeUnknown && !wire:
		why = strings.ToLower(code.String())
	case code == connect.CodeInternal && !wire:
		// connect-go's name for a response cut after its status line (the
		// node was killed mid-answer): it made the code from the HTTP
		// status because the body never came.
		why = "cut-response"
	default:
		return linDropped, "unexpected"
	}
	if !wire {
		why = "client-" + why
	}
	if !write {
		return linDropped, "read-" + why
	}
	return linUnknown, why
}

// linIsDialError reports whether err is a failed connection attempt: the
// request was never sent.
func linIsDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// linCurrentVersion returns the current version a FAILED_PRECONDITION
// carries in its PreconditionFailure detail.
func linCurrentVersion(err error) (uint64, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return 0, false
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if pf, ok := v.(*wispv1.PreconditionFailure); ok {
				return pf.CurrentVersion, true
			}
		}
	}
	return 0, false
}

// linCheck runs porcupine on a run's history and logs the result.
func linCheck(t *testing.T, res linResult) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	t.Helper()
	start := time.Now()
	result, info := porcupine.CheckOperationsVerbose(linModel, res.ops, linCheckTimeout)
	t.Logf("porcupine: %s in %v (%d ops, %d keys)", result, time.Since(start).Round(time.Millisecond),
		len(res.ops), len(linPartition(res.ops)))
	return result, info
}

// linVisualize writes porcupine's HTML visualisation of a checked history
// under $WISP_ARTIFACTS, or t.TempDir(), and returns its path.
func linVisualize(t *testing.T, info porcupine.LinearizationInfo, seed uint64) string {
	t.Helper()
	dir := os.Getenv("WISP_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts dir: %v", err)
		return ""
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	path := filepath.Join(dir, fmt.Sprintf("%s-seed%d.html", name, seed))
	if err := porcupine.VisualizePath(linModel, info, path); err != nil {
		t.Errorf("visualize: %v", err)
		return ""
	}
	return path
}
