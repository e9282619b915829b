package plugins

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Stats is a snapshot of a guarded plugin's calls (Guarded.Stats,
// GuardedTTL.Stats). The zero value describes a plugin never called.
type Stats struct {
	// Calls counts the decisions asked of the plugin, answered by it or by
	// the fallback. A call its caller abandoned (its context done) is not
	// counted: nobody used its answer.
	Calls uint64
	// Fallbacks counts the calls the plugin failed (timeout, trap, bad
	// answer, closed), which the fallback answered.
	Fallbacks uint64
	// LastError is the text of the plugin's last failure, "" if none, and
	// LastErrorAt its time (the zero time if none).
	LastError   string
	LastErrorAt time.Time
	// CallP99 is the 99th percentile of the plugin calls' durations,
	// failed ones included, over the last 3,000 to 4,000 calls (windows of
	// statsWindowCalls); 0 before any call. Recorded at 1 µs resolution and
	// two significant digits, up to 10 s (a longer call counts as 10 s).
	CallP99 time.Duration
	// Degraded is set when more than half of the plugin's last 20 calls
	// failed (at least 11 of them), and cleared when at most a quarter of
	// its last 20 calls failed (5 or fewer). The gap keeps a plugin failing
	// about half of its calls from flapping.
	//
	//
	// A failing plugin is rested: after each failed call it is not called
	// for a while, and the fallback decides meanwhile (Skipped). The rest
	// doubles with each failure among its last 20 calls: 1 s after one,
	// 2 s after two, 4 s after three, ... up to 5 min. A plugin that fails
	// now and then loses a second of decisions; one that fails most of its
	// calls is asked a few times an hour, which is how it recovers. A
	// failing call can cost its deadline, or more (a guest recursing
	// without end grows a stack of hundreds of MB before wazero stops it:
	// on three in-process nodes, enough to cost Raft leaders their leases),
	// so a plugin that keeps failing must not be called on every decision.
	Degraded bool
	// Skipped counts the decisions the fallback made without asking the
	// plugin, while it was rested; they are not in Calls.
	Skipped uint64
}

// Bounds of the statistics a guard keeps.
const (
	// degradedWindowCalls is the number of recent calls Degraded is judged
	// on; degradedEnterFailures and degradedLeaveFailures are its
	// thresholds (see Stats.Degraded).
	degradedWindowCalls   = 20
	degradedEnterFailures = 11
	degradedLeaveFailures = 5
	// statsWindowCalls and statsWindows bound the call times CallP99 is
	// computed over: a new window every statsWindowCalls calls, the last
	// statsWindows kept. Each window is a histogram of about 18 KiB.
	statsWindowCalls = 1000
	statsWindows     = 4
	// callMicrosMax is the largest call time recorded: 10 s, far past any
	// call timeout a node would set.
	callMicrosMax = 10_000_000
	// restMin and restMax bound how long a plugin is rested after a
	// failure (see Stats.Degraded).
	restMin = time.Second
	restMax = 5 * time.Minute
)

// guard keeps the statistics of a guarded plugin's calls. It is safe for
// concurrent use.
type guard struct {
	now func() time.Time // the clock of LastErrorAt: time.Now but in tests

	mu        sync.Mutex
	calls     uint64                          // guarded by mu
	fallbacks uint64                          // guarded by mu
	lastErr   string                          // guarded by mu
	lastErrAt time.Time                       // guarded by mu
	times     *hdrhistogram.WindowedHistogram // guarded by mu: call times, µs
	inWindow  int                             // guarded by mu: calls in times.Current
	// recent holds the outcomes of the last recentN calls, newest in bit
	// 0, a set bit for a failure. Invariant: recentN <= degradedWindowCalls.
	recent   uint32 // guarded by mu
	recentN  int    // guarded by mu
	degraded bool   // guarded by mu
	// restUntil is when a rested plugin is called again.
	restUntil time.Time // guarded by mu
	skipped   uint64    // guarded by mu
}

// allow reports whether the plugin is to be asked now, or rested (the
// caller then has the fallback decide, and counts it with skip).
func (g *guard) allow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.now().Before(g.restUntil)
}

// skip counts a decision the fallback made without asking the plugin.
func (g *guard) skip() {
	g.mu.Lock()
	g.skipped++
	g.mu.Unlock()
}

func newGuard() *guard {
	return &guard{now: time.Now, times: hdrhistogram.NewWindowed(statsWindows, 1, callMicrosMax, 2)}
}

// record notes one call that took took and failed with err (nil: the
// plugin answered).
func (g *guard) record(took time.Duration, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.inWindow == statsWindowCalls {
		g.times.Rotate()
		g.inWindow = 0
	}
	g.inWindow++
	us := min(max(took.Microseconds(), 1), callMicrosMax)
	_ = g.times.Current.RecordValue(us) // in range by construction
	g.recent <<= 1
	if err != nil {
		g.fallbacks++
		g.lastErr = err.Error()
		g.lastErrAt = g.now()
		g.recent |= 1
	}
	g.recent &= 1<<degradedWindowCalls - 1
	g.recentN = min(g.recentN+1, degradedWindowCalls)
	failures := popcount(g.recent)
	switch {
	case !g.degraded && failures >= degradedEnterFailures:
		g.degraded = true
	case g.degraded && failures <= degradedLeaveFailures:
		g.degraded = false
	}
	if err != nil {
		g.restUntil = g.now().Add(restFor(failures))
	}
}

// restFor is how long a plugin with failures failures among its recent
// calls (this one included) is rested: restMin, doubled for each further
// failure, at most restMax.
func restFor(failures int) time.Duration {
	if failures > 20 {
		return restMax
	}
	return min(restMin<<max(failures-1, 0), restMax)
}

// stats returns a snapshot.
func (g *guard) stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Stats{
		Calls:       g.calls,
		Fallbacks:   g.fallbacks,
		LastError:   g.lastErr,
		LastErrorAt: g.lastErrAt,
		Degraded:    g.degraded,
		Skipped:     g.skipped,
	}
	if g.calls > 0 {
		s.CallP99 = time.Duration(g.times.Merge().ValueAtQuantile(99)) * time.Microsecond
	}
	return s
}

func popcount(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
