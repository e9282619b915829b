package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wisp-db/wisp/plugins/abi"
)

// TTL is a loaded ttl plugin: it decides the TTL of each write the shard
// leader is about to propose, for instance a default TTL by key prefix,
// with jitter so that keys written together do not expire together. The
// leader stamps the answer into the Put it proposes, so replicas never run
// the plugin and cannot disagree. A TTL is safe for concurrent use; at most
// WithInstancesMax calls run at once.
type TTL struct {
	*loaded
}

// LoadTTL validates a ttl plugin and loads it, as LoadEviction does an
// eviction plugin: the module must pass the same checks, export wisp_ttl
// instead of wisp_evict, and answer the self-test writes (TTLSelfTest)
// validly within the call timeout. An error wraps ErrInvalidModule and the
// reason. Close the TTL when done.
func (h *Host) LoadTTL(ctx context.Context, wasm []byte, opts ...LoadOption) (*TTL, error) {
	l, err := h.load(ctx, wasm, ttlSpec, opts)
	if err != nil {
		return nil, err
	}
	t := &TTL{l}
	for _, w := range TTLSelfTest() {
		if _, err := t.TTL(ctx, w.Key, int(w.ValueSizeBytes), w.RequestedTTLMs, w.NowUnixMs); err != nil {
			t.Close()
			return nil, fmt.Errorf("%w: %w: key %q: %w", ErrInvalidModule, ErrSelfTest, w.Key, err)
		}
	}
	return t, nil
}

// SHA256 returns the SHA-256 of the module's bytes.
func (t *TTL) SHA256() [32]byte { return t.compiled.sum }

// Name returns the name the plugin was loaded with (WithName).
func (t *TTL) Name() string { return t.name }

// Close waits for the calls in flight (each bounded by its deadline), then
// closes the instances; later calls fail with ErrClosed. Safe to call twice.
func (t *TTL) Close() { t.close() }

// TTL asks the plugin for the TTL of a write of key, with a value of
// valueLen bytes, for which the client asked requestedTTLMs (0: none), at
// nowUnixMs, the leader's time. It returns the TTL to apply, in
// milliseconds from nowUnixMs: 0 for none, at most abi.TTLMsMax (ten
// years); requestedTTLMs itself if the plugin answered
// abi.TTLKeepRequested. It fails, returning 0, if the call passed its
// deadline (ErrTimeout), the guest trapped (ErrTrap), its answer was
// invalid (ErrBadAnswer; out of range: abi.ErrTTLOutOfRange), the plugin
// was closed (ErrClosed), or the arguments are out of bounds (ErrBadWrite:
// an empty key or one longer than abi.TTLKeySizeBytesMax, a negative
// requested TTL or value size). The caller then keeps the client's TTL, as
// GuardedTTL does.
func (t *TTL) TTL(ctx context.Context, key []byte, valueLen int, requestedTTLMs, nowUnixMs int64) (int64, error) {
	if len(key) == 0 || len(key) > abi.TTLKeySizeBytesMax || valueLen < 0 || requestedTTLMs < 0 {
		return 0, fmt.Errorf("%w: key of %d bytes, value of %d, requested ttl %d ms", ErrBadWrite, len(key), valueLen, requestedTTLMs)
	}
	w := abi.TTLInput{
		NowUnixMs:      nowUnixMs,
		RequestedTTLMs: requestedTTLMs,
		ValueSizeBytes: uint32(min(valueLen, 1<<32-1)),
		Key:            key,
	}
	var ttl int64
	err := t.call(ctx, func(in *instance) []byte {
		in.buf = abi.AppendTTLInput(in.buf[:0], &w)
		in.state.NowUnixMs = nowUnixMs
		in.state.ResetOutput()
		return in.buf
	}, func(output []byte) error {
		var err error
		ttl, err = abi.DecodeTTLOutput(output)
		return err
	})
	if err != nil {
		return 0, err
	}
	if ttl == abi.TTLKeepRequested {
		return requestedTTLMs, nil
	}
	return ttl, nil
}

// TTLSelfTest returns the writes LoadTTL asks a plugin to answer before
// accepting it: keys with and without a prefix, short and long, small and
// large values, with and without a requested TTL, at a fixed time. Any
// valid answer passes. A new slice each call.
func TTLSelfTest() []abi.TTLInput {
	const now = 1_767_225_600_000 // 2026-01-01T00:00:00Z
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	return []abi.TTLInput{
		{NowUnixMs: now, Key: []byte("wisp/self-test/0"), ValueSizeBytes: 100},
		{NowUnixMs: now, Key: []byte("session:wisp-self-test"), ValueSizeBytes: 2 << 20, RequestedTTLMs: 60_000},
		{NowUnixMs: now, Key: []byte("k"), RequestedTTLMs: 1},
		{NowUnixMs: now, Key: long, ValueSizeBytes: 64 << 20, RequestedTTLMs: abi.TTLMsMax},
	}
}

// GuardedTTL asks a ttl plugin and, whenever the call fails, keeps the TTL
// the client asked for, so that writes go on whatever the plugin does. It
// records its calls as Guarded does (Stats). It is safe for concurrent use.
type GuardedTTL struct {
	plugin *TTL
	guard  *guard
}

// NewGuardedTTL returns plugin guarded. plugin must not be nil.
func NewGuardedTTL(plugin *TTL) *GuardedTTL {
	if plugin == nil {
		panic("plugins: NewGuardedTTL with a nil plugin")
	}
	return &GuardedTTL{plugin: plugin, guard: newGuard()}
}

// Name returns the plugin's name.
func (g *GuardedTTL) Name() string { return g.plugin.Name() }

// TTL returns the plugin's TTL for the write (see TTL.TTL), or
// requestedTTLMs if the plugin fails; the failure is counted and kept as
// the last error. Only when ctx is done (the caller gave up on the write)
// does it return an error, ctx's, without counting the call; an argument
// out of bounds is the caller's error too, returned and not counted.
func (g *GuardedTTL) TTL(ctx context.Context, key []byte, valueLen int, requestedTTLMs, nowUnixMs int64) (int64, error) {
	start := time.Now()
	ttl, err := g.plugin.TTL(ctx, key, valueLen, requestedTTLMs, nowUnixMs)
	took := time.Since(start)
	switch {
	case err == nil:
		g.guard.record(took, nil)
		return ttl, nil
	case ctx.Err() != nil:
		return 0, fmt.Errorf("plugins: %s: %w", g.Name(), ctx.Err())
	case errors.Is(err, ErrBadWrite):
		return 0, err
	}
	g.guard.record(took, err)
	return requestedTTLMs, nil
}

// Stats returns a snapshot of the plugin's calls.
func (g *GuardedTTL) Stats() Stats { return g.guard.stats() }
