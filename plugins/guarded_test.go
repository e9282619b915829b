package plugins

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wisp-db/wisp/engine/eviction"
)

// The decisions' times that make gohostile.wasm misbehave (see
// testdata/gohostile): any other time gets the first VictimsMax candidates.
const (
	hostilePanic   = 1
	hostileUnknown = 7
	hostileOK      = 1000
)

// TestGuardedFallsBack drives the Go guest gohostile through a Guarded with
// allkeys-lru as the fallback: a good answer is the plugin's, a panic or a
// bad answer is replaced by allkeys-lru's, counted, and kept as the last
// error; a majority of failures among the last 20 calls sets Degraded, and
// enough good calls clear it.
func TestGuardedFallsBack(t *testing.T) {
	h, err := NewHost(context.Background(), WithCallTimeout(time.Second)) // as TestHostileCalls: -race in CI
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	lru, err := eviction.New(eviction.AllKeysLRU)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuarded(load(t, h, "gohostile.wasm"), lru)
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	g.guard.now = func() time.Time { return clock }
	ctx := context.Background()
	cands := randomCandidates(rand.New(rand.NewPCG(21, 22)), 50, hostileOK)
	byLRU, _ := lru.Victims(ctx, hostilePanic, cands, 5, nil)

	decide := func(now int64) []int {
		t.Helper()
		got, err := g.Victims(ctx, now, cands, 5, []int{-1})
		if err != nil {
			t.Fatalf("Guarded.Victims(mode %d) = %v; want no error, ever", now, err)
		}
		return got[1:]
	}
	// ask decides once any rest is over, so that the plugin is asked.
	ask := func(now int64) []int {
		t.Helper()
		clock = clock.Add(restMax)
		return decide(now)
	}
	if got := ask(hostileOK); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Errorf("a good call = %v; want the plugin's [0 1 2 3 4]", got)
	}
	if got := ask(hostilePanic); !slices.Equal(got, byLRU) {
		t.Errorf("a panicking call = %v; want allkeys-lru's %v", got, byLRU)
	}
	s := g.Stats()
	if s.Calls != 2 || s.Fallbacks != 1 || !strings.Contains(s.LastError, "panic") || !s.LastErrorAt.Equal(clock) || s.Degraded {
		t.Errorf("Stats = %+v; want 2 calls, 1 fallback, the panic as last error at %v, not degraded", s, clock)
	}
	if s.CallP99 <= 0 || s.CallP99 > 2*time.Second {
		t.Errorf("CallP99 = %v; want the time of a call", s.CallP99)
	}

	// 10 bad answers: 11 failures in the last 12 calls.
	for i := range 10 {
		if got := ask(hostileUnknown); !slices.Equal(got, byLRU) {
			t.Fatalf("bad answer %d = %v; want allkeys-lru's %v", i, got, byLRU)
		}
		if g.Stats().Degraded != (i == 9) {
			t.Fatalf("after %d failures of %d calls, Degraded = %v", i+2, i+3, !(i == 9))
		}
	}
	if s := g.Stats(); !errors.Is(errBadAnswerText(s.LastError), ErrBadAnswer) {
		t.Errorf("LastError = %q; want the bad answer", s.LastError)
	}
	// After a failure the plugin is rested: the fallback decides without
	// asking it.
	if got := decide(hostileOK); !slices.Equal(got, byLRU) {
		t.Errorf("a decision while rested = %v; want allkeys-lru's %v", got, byLRU)
	}
	if s := g.Stats(); s.Skipped != 1 || s.Calls != 12 {
		t.Errorf("while rested: Stats = %+v; want 1 skipped, the calls still 12", s)
	}

	// Good calls push the failures out of the window: degraded until at
	// most 5 of the last 20 failed.
	good := 0
	for g.Stats().Degraded {
		if good++; good > degradedWindowCalls {
			t.Fatalf("still degraded after %d good calls", good)
		}
		if got := ask(hostileOK); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("good call %d after the rest = %v; want the plugin's", good, got)
		}
	}
	if want := degradedWindowCalls - degradedLeaveFailures; good != want {
		t.Errorf("Degraded cleared after %d good calls; want %d (5 failures left in the last 20)", good, want)
	}
	if s := g.Stats(); s.Calls != uint64(12+good) || s.Fallbacks != 11 {
		t.Errorf("Stats = %+v; want %d calls, 11 fallbacks", s, 12+good)
	}
}

// errBadAnswerText maps an error's text back to ErrBadAnswer, for a
// Stats.LastError.
func errBadAnswerText(s string) error {
	if strings.HasPrefix(s, ErrBadAnswer.Error()) {
		return ErrBadAnswer
	}
	return errors.New(s)
}

// TestGuardedTimeout: flaky99 loops from its 99th answer on; the Guarded
// call returns at the call timeout with the fallback's decision, and the
// p99 of call time shows the timeout. A closed plugin falls back too, and
// a caller that gives up gets its context's error, uncounted.
func TestGuardedTimeout(t *testing.T) {
	ctx := context.Background()
	const timeout = 50 * time.Millisecond
	h, err := NewHost(ctx, WithInstancesMax(1), WithCallTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	random, err := eviction.New(eviction.AllKeysRandom)
	if err != nil {
		t.Fatal(err)
	}
	e := load(t, h, "flaky99.wasm")
	g := NewGuarded(e, random)
	// Each call is asked of the plugin: the clock jumps past any rest.
	clock := time.Now()
	g.guard.now = func() time.Time { clock = clock.Add(restMax + time.Second); return clock }
	cands := randomCandidates(rand.New(rand.NewPCG(23, 24)), 8, 0)
	for i := range 98 {
		if got, err := g.Victims(ctx, 0, cands, 3, nil); err != nil || !slices.Equal(got, []int{0}) {
			t.Fatalf("call %d = %v, %v; want the plugin's [0]", i+1, got, err)
		}
	}
	start := time.Now()
	got, err := g.Victims(ctx, 0, cands, 3, nil)
	took := time.Since(start)
	if err != nil || len(got) != 3 {
		t.Errorf("the looping call = %v, %v; want 3 victims from allkeys-random", got, err)
	}
	if took > timeout+500*time.Millisecond {
		t.Errorf("the looping call took %v; want about the %v timeout", took, timeout)
	}
	s := g.Stats()
	if s.Calls != 99 || s.Fallbacks != 1 || !strings.Contains(s.LastError, ErrTimeout.Error()) {
		t.Errorf("Stats = %+v; want 99 calls, 1 fallback, a timeout", s)
	}
	if s.CallP99 <= 0 || s.CallP99 >= timeout {
		t.Errorf("CallP99 = %v over 99 calls, one of them at the %v timeout; want the fast calls' (TestGuardP99 checks the slow tail)", s.CallP99, timeout)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := g.Victims(canceled, 0, cands, 3, []int{9}); !errors.Is(err, context.Canceled) || !slices.Equal(got, []int{9}) {
		t.Errorf("Victims(canceled) = %v, %v; want [9] and context.Canceled", got, err)
	}

	e.Close()
	if got, err := g.Victims(ctx, 0, cands, 3, nil); err != nil || len(got) != 3 {
		t.Errorf("Victims after the plugin's Close = %v, %v; want allkeys-random's 3 victims", got, err)
	}
	if s := g.Stats(); s.Calls != 100 || s.Fallbacks != 2 || !strings.Contains(s.LastError, ErrClosed.Error()) {
		t.Errorf("Stats = %+v; want 100 calls (the canceled one not counted), 2 fallbacks, ErrClosed last", s)
	}
}

// TestGuardHammer records and reads statistics from many goroutines (run
// it with -race): the counts add up.
func TestGuardHammer(t *testing.T) {
	g := newGuard()
	const goroutines, each = 8, 2000
	done := make(chan struct{})
	for i := range goroutines {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := range each {
				var err error
				if (i+k)%3 == 0 {
					err = ErrTrap
				}
				g.record(time.Duration(k)*time.Microsecond, err)
				if k%100 == 0 {
					g.stats()
				}
			}
		}()
	}
	for range goroutines {
		<-done
	}
	s := g.stats()
	if s.Calls != goroutines*each || s.Fallbacks == 0 || s.Fallbacks >= s.Calls || s.CallP99 <= 0 {
		t.Errorf("Stats = %+v; want %d calls, some fallbacks", s, goroutines*each)
	}
}

// TestGuardP99: the p99 of call time sees a slow tail of 2 %, and forgets
// it once statsWindows windows of fast calls have passed.
func TestGuardP99(t *testing.T) {
	g := newGuard()
	for i := range 100 {
		took := time.Millisecond
		if i%50 == 0 {
			took = 100 * time.Millisecond
		}
		g.record(took, nil)
	}
	near := func(got, want time.Duration) bool { return got >= want*98/100 && got <= want*102/100 }
	if got := g.stats().CallP99; !near(got, 100*time.Millisecond) {
		t.Errorf("CallP99 = %v with 2 %% of calls at 100 ms; want 100 ms", got)
	}
	for range statsWindows * statsWindowCalls {
		g.record(time.Millisecond, nil)
	}
	if got := g.stats().CallP99; !near(got, time.Millisecond) {
		t.Errorf("CallP99 = %v after %d calls of 1 ms; want 1 ms, the slow ones forgotten", got, statsWindows*statsWindowCalls)
	}
	if got := newGuard().stats(); got != (Stats{}) {
		t.Errorf("a new guard's Stats = %+v; want the zero value", got)
	}
}

// TestRestLengthens: after a failure the plugin is rested, restMin for
// one failure among its recent calls, twice as long for each further one,
// up to restMax; a success does not shorten a rest already begun.
func TestRestLengthens(t *testing.T) {
	g := newGuard()
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return clock }
	fail := errors.New("failed")
	if !g.allow() {
		t.Fatal("a new plugin is rested")
	}
	want := restMin
	for i := range degradedWindowCalls {
		g.record(time.Millisecond, fail)
		if g.allow() {
			t.Fatalf("failure %d: allowed at once", i+1)
		}
		clock = clock.Add(want - time.Millisecond)
		if g.allow() {
			t.Fatalf("failure %d: allowed before its rest of %v ended", i+1, want)
		}
		clock = clock.Add(time.Millisecond)
		if !g.allow() {
			t.Fatalf("failure %d: not allowed after its rest of %v", i+1, want)
		}
		want = min(2*want, restMax)
	}
	if want != restMax {
		t.Errorf("after %d failures the rest is %v; want the cap %v", degradedWindowCalls, want, restMax)
	}
	g.record(time.Millisecond, nil)
	if !g.allow() {
		t.Error("a success rested the plugin")
	}
}
