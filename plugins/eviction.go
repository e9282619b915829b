package plugins

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/plugins/abi"
)

// Eviction is a loaded eviction plugin: a validated, compiled module and its
// pool of instances. It is an engine/eviction.Policy, like the built-ins:
// an Evictor can run it, and Guarded runs it with a built-in to fall back
// on when a call fails. An Eviction is safe for concurrent use; at most
// WithInstancesMax calls run at once.
type Eviction struct {
	*loaded
}

var _ eviction.Policy = (*Eviction)(nil)

// LoadEviction validates an eviction plugin and loads it: the module must be
// at most WithModuleSizeBytesMax bytes, compile, import nothing the host does
// not offer, export memory, wisp_abi_version (returning abi.Version),
// wisp_allocate, wisp_free and wisp_evict with the ABI's types, and answer a
// self-test decision (SelfTestInput) validly within the call timeout. An
// error wraps ErrInvalidModule and the reason (see errors.go). The compiled
// module is cached by SHA-256, so loading the same bytes again does not
// compile them again. Close the Eviction when done.
//
// WithName names it (Name); the default is "wasm:" and the first 12 hex
// digits of the module's SHA-256.
func (h *Host) LoadEviction(ctx context.Context, wasm []byte, opts ...LoadOption) (*Eviction, error) {
	l, err := h.load(ctx, wasm, evictionSpec, opts)
	if err != nil {
		return nil, err
	}
	e := &Eviction{l}
	st := SelfTestInput()
	if _, err := e.Victims(ctx, st.NowUnixMs, st.Candidates, st.VictimsMax, nil); err != nil {
		e.Close()
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidModule, ErrSelfTest, err)
	}
	return e, nil
}

// SHA256 returns the SHA-256 of the module's bytes.
func (e *Eviction) SHA256() [32]byte { return e.compiled.sum }

// Name returns the name the plugin was loaded with (WithName), as
// eviction.Policy asks: what logs, stats and the node's settings call it.
func (e *Eviction) Name() string { return e.name }

// VolatileOnly reports false: a plugin is offered every key, with its
// expiry, and chooses for itself (eviction.Policy).
func (e *Eviction) VolatileOnly() bool { return false }

// Close waits for the calls in flight (each bounded by its deadline), then
// closes the instances; later calls fail with ErrClosed. The compiled module
// stays in the host's cache for a while. Safe to call twice.
func (e *Eviction) Close() { e.close() }

// Victims asks the plugin which of cands to evict at nowUnixMs, the leader's
// time, and appends their indexes to out, best victim first: at most max of
// them (none if max <= 0 or cands is empty: then the guest is not called),
// each an index into cands, each at most once. It returns out unchanged and
// an error if the call fails: it passed its deadline (the earlier of ctx's
// and WithCallTimeout: ErrTimeout), the guest trapped (ErrTrap), its answer
// was invalid (ErrBadAnswer), the plugin was closed (ErrClosed), or cands
// has more than abi.CandidatesMax entries (ErrTooManyCandidates). The caller
// then falls back to its built-in policy.
//
// One call carries the whole batch. The guest sees each candidate's key
// only as its XXH64 hash. Victims does not modify or retain cands.
func (e *Eviction) Victims(ctx context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	if max <= 0 || len(cands) == 0 {
		return out, nil
	}
	if len(cands) > abi.CandidatesMax {
		return out, fmt.Errorf("%w: %d, at most %d", ErrTooManyCandidates, len(cands), abi.CandidatesMax)
	}
	max = min(max, len(cands))
	start := len(out)
	err := e.call(ctx, func(in *instance) []byte {
		return e.encode(in, nowUnixMs, cands, max)
	}, func(output []byte) error {
		var err error
		out, err = abi.DecodeVictims(output, len(cands), max, out)
		return err
	})
	if err != nil {
		return out[:start], err
	}
	return out, nil
}

// encode writes the input of a decision into the instance's buffer and
// returns it, and hands the time to the instance's WASI state.
func (e *Eviction) encode(in *instance, nowUnixMs int64, cands []engine.Candidate, max int) []byte {
	b := in.input(abi.EvictionInputSizeBytes(len(cands)))
	var clock uint64
	for i := range cands {
		c := &cands[i]
		clock = maxU64(clock, c.LastAccess)
		abi.PutCandidate(b[abi.EvictionHeaderSizeBytes+i*abi.CandidateSizeBytes:], &abi.Candidate{
			KeyHash:         xxhash.Sum64(c.Key),
			Version:         c.Version,
			LastAccess:      c.LastAccess,
			ExpiresAtUnixMs: c.ExpiresAtUnixMs,
			SizeBytes:       uint32(min(c.SizeBytes, math.MaxUint32)),
			Frequency:       uint32(c.Frequency),
		})
	}
	// The engine does not hand out its access clock yet: the largest
	// LastAccess is a lower bound of it (abi.EvictionInput.AccessClock).
	abi.PutEvictionHeader(b, nowUnixMs, clock, len(cands), max)
	in.state.NowUnixMs = nowUnixMs
	in.state.ResetOutput()
	return b
}

// ctxError describes err, which ended what at ctx's end: a timeout
// (ErrTimeout) if ctx passed its deadline, the caller's cancellation
// otherwise. Errors not due to ctx pass unchanged.
func ctxError(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, err)
	case ctx.Err() != nil:
		return fmt.Errorf("plugins: %s: %w", what, err)
	}
	return err
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// SelfTestInput returns the decision LoadEviction asks a plugin to answer
// before accepting it: 16 candidates with every field set (some expired,
// some without expiry, sizes from bytes to megabytes), of which at most 4
// may be chosen, at a fixed time. Any valid answer passes. A new slice each
// call.
func SelfTestInput() SelfTest {
	const now = 1_767_225_600_000 // 2026-01-01T00:00:00Z
	cands := make([]engine.Candidate, 16)
	for i := range cands {
		c := &cands[i]
		c.Key = fmt.Appendf(nil, "wisp/self-test/%02d", i)
		c.Version = uint64(1000 + 7*i)
		c.SizeBytes = int64(64) << (i % 16)
		c.LastAccess = uint64(5000 - 13*i*(i%5))
		c.Frequency = uint8(i * 17 % 256)
		switch i % 4 {
		case 1:
			c.ExpiresAtUnixMs = now - int64(i)*1000 // expired
		case 2:
			c.ExpiresAtUnixMs = now + int64(i)*60_000
		}
	}
	return SelfTest{NowUnixMs: now, Candidates: cands, VictimsMax: 4}
}

// SelfTest is a self-test decision: see SelfTestInput.
type SelfTest struct {
	NowUnixMs  int64
	Candidates []engine.Candidate
	VictimsMax int
}
