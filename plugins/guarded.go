package plugins

import (
	"context"
	"fmt"
	"time"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/plugins/abi"
)

// Guarded is an eviction policy that asks a plugin and, whenever the call
// fails (it timed out, trapped, answered badly, or the plugin is closed),
// answers that decision with a built-in fallback policy instead, so that
// eviction goes on whatever the plugin does. It records its calls (Stats):
// how many, how many fell back, the last error, a p99 of call time, and
// whether the plugin is degraded.
//
// It lives here, not in shards/reclaim, because what it watches is the
// plugin's failure modes, and because the node reads its Stats beside the
// plugin's: the reclaimer sees one more eviction.Policy that never fails.
//
// A Guarded is safe for concurrent use. Closing the plugin does not stop it:
// every later decision comes from the fallback.
type Guarded struct {
	plugin   *Eviction
	fallback eviction.Policy
	guard    *guard
}

var _ eviction.Policy = (*Guarded)(nil)

// An Evictor's batches fit in one plugin call: a compile-time check that
// eviction.BatchSizeMax <= abi.CandidatesMax (a negative constant does not
// convert to uint), so that Guarded never counts ErrTooManyCandidates, the
// caller's error, as the plugin's failure.
const _ = uint(abi.CandidatesMax - eviction.BatchSizeMax)

// NewGuarded returns plugin guarded by fallback, typically the built-in
// policy the node would run without the plugin. Neither may be nil.
func NewGuarded(plugin *Eviction, fallback eviction.Policy) *Guarded {
	if plugin == nil || fallback == nil {
		panic("plugins: NewGuarded with a nil plugin or fallback")
	}
	return &Guarded{plugin: plugin, fallback: fallback, guard: newGuard()}
}

// Name returns the plugin's name.
func (g *Guarded) Name() string { return g.plugin.Name() }

// VolatileOnly returns the plugin's (false): the Evictor samples every key.
// A volatile fallback ignores the keys without an expiry it is offered.
func (g *Guarded) VolatileOnly() bool { return g.plugin.VolatileOnly() }

// Fallback returns the built-in that answers when the plugin fails.
func (g *Guarded) Fallback() eviction.Policy { return g.fallback }

// Victims asks the plugin (see Eviction.Victims). If the plugin fails, the
// fallback decides, and Victims returns its answer and a nil error; the
// failure is counted and kept as the last error. Only when ctx is done
// (the caller gave up) does Victims return out unchanged and ctx's error,
// without counting the call.
func (g *Guarded) Victims(ctx context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	if max <= 0 || len(cands) == 0 {
		return out, nil // no decision: the plugin is not called either
	}
	if !g.guard.allow() {
		g.guard.skip()
		return g.fallback.Victims(ctx, nowUnixMs, cands, max, out)
	}
	start := time.Now()
	got, err := g.plugin.Victims(ctx, nowUnixMs, cands, max, out)
	took := time.Since(start)
	if err == nil {
		g.guard.record(took, nil)
		return got, nil
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("plugins: %s: %w", g.Name(), ctx.Err())
	}
	g.guard.record(took, err)
	got, err = g.fallback.Victims(ctx, nowUnixMs, cands, max, out)
	if err != nil {
		return out, fmt.Errorf("plugins: %s failed, and so did its fallback %s: %w", g.Name(), g.fallback.Name(), err)
	}
	return got, nil
}

// Stats returns a snapshot of the plugin's calls.
func (g *Guarded) Stats() Stats { return g.guard.stats() }
