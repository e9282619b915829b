package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wisp-db/wisp/plugins/abi"
)

// TTL is a loaded ttl plugin: it decides the TTL of the writes the shard
// leader is about to propose, for instance a default TTL by key prefix,
// with jitter so that keys written together do not expire together. One
// call decides a batch of writes (TTLs), never one call per key. The leader
// stamps the answers into the Puts it proposes, so replicas never run the
// plugin and cannot disagree. A TTL is safe for concurrent use; at most
// WithInstancesMax calls run at once.
type TTL struct {
	*loaded
}

// TTLWrite is one write whose TTL a ttl plugin decides: a Put the shard
// leader is about to propose.
type TTLWrite struct {
	// Key is the key written: 1 to abi.TTLKeySizeBytesMax bytes.
	Key []byte
	// ValueLen is the size of the value written, in bytes; never negative
	// (the guest sees it saturated at 2^32-1).
	ValueLen int
	// RequestedTTLMs is the TTL the client asked for, in milliseconds; 0
	// for none; never negative.
	RequestedTTLMs int64
}

// LoadTTL validates a ttl plugin and loads it, as LoadEviction does an
// eviction plugin: the module must pass the same checks, export wisp_ttl
// instead of wisp_evict, and answer the self-test batch (TTLSelfTest)
// validly within the call timeout. An error wraps ErrInvalidModule and the
// reason. Close the TTL when done.
func (h *Host) LoadTTL(ctx context.Context, wasm []byte, opts ...LoadOption) (*TTL, error) {
	l, err := h.load(ctx, wasm, ttlSpec, opts)
	if err != nil {
		return nil, err
	}
	t := &TTL{l}
	now, writes := TTLSelfTest()
	if _, err := t.TTLs(ctx, now, writes, nil); err != nil {
		t.Close()
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidModule, ErrSelfTest, err)
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

// TTL asks the plugin for the TTL of one write of key, with a value of
// valueLen bytes, for which the client asked requestedTTLMs (0: none), at
// nowUnixMs, the leader's time: TTLs with a batch of one. Prefer TTLs for
// several writes: one call decides them all.
func (t *TTL) TTL(ctx context.Context, key []byte, valueLen int, requestedTTLMs, nowUnixMs int64) (int64, error) {
	w := [1]TTLWrite{{Key: key, ValueLen: valueLen, RequestedTTLMs: requestedTTLMs}}
	var out [1]int64
	got, err := t.TTLs(ctx, nowUnixMs, w[:], out[:0])
	if err != nil {
		return 0, err
	}
	return got[0], nil
}

// TTLs asks the plugin, in one call, for the TTLs of writes at nowUnixMs,
// the leader's time, and appends them to out in the order of writes: one
// per write, in milliseconds from nowUnixMs, 0 for none, at most
// abi.TTLMsMax (ten years); the write's RequestedTTLMs itself where the
// plugin answered abi.TTLKeepRequested. An empty writes appends nothing,
// and the guest is not called.
//
// writes must fit in one call: at most abi.TTLWritesMax writes, their keys
// at most abi.TTLKeysSizeBytesMax bytes in all (TTLBatchLen says how many
// do), each write valid (see TTLWrite). Otherwise TTLs fails with
// ErrBadWrite, the caller's error, without calling the guest.
//
// The batch succeeds or fails as one: it returns out unchanged and an error
// if the call passed its deadline (ErrTimeout), the guest trapped
// (ErrTrap), any of its answers was invalid (ErrBadAnswer: the wrong number
// of answers, or one out of range, abi.ErrTTLOutOfRange), or the plugin was
// closed (ErrClosed). The caller then keeps the clients' TTLs for the whole
// batch, as GuardedTTL does. TTLs does not modify or retain writes.
func (t *TTL) TTLs(ctx context.Context, nowUnixMs int64, writes []TTLWrite, out []int64) ([]int64, error) {
	if len(writes) == 0 {
		return out, nil
	}
	keysSize, err := checkTTLWrites(writes)
	if err != nil {
		return out, err
	}
	start := len(out)
	err = t.call(ctx, func(in *instance) []byte {
		return encodeTTLs(in, nowUnixMs, writes, keysSize)
	}, func(output []byte) error {
		var err error
		out, err = abi.DecodeTTLOutput(output, len(writes), out)
		return err
	})
	if err != nil {
		return out[:start], err
	}
	for i, ttl := range out[start:] {
		if ttl == abi.TTLKeepRequested {
			out[start+i] = writes[i].RequestedTTLMs
		}
	}
	return out, nil
}

// TTLBatchLen returns how many of writes, from the first, one TTLs call
// can carry: at most abi.TTLWritesMax, their keys at most
// abi.TTLKeysSizeBytesMax bytes in all. It is at least 1 if writes is not
// empty (a write whose key alone is too long then fails TTLs with
// ErrBadWrite), so that a caller packing writes[:TTLBatchLen(writes)]
// into calls, one after the other, always moves on.
func TTLBatchLen(writes []TTLWrite) int {
	n, keysSize := 0, 0
	for n < len(writes) && n < abi.TTLWritesMax {
		keysSize += len(writes[n].Key)
		if keysSize > abi.TTLKeysSizeBytesMax && n > 0 {
			break
		}
		n++
	}
	return n
}

// checkTTLWrites checks that writes fit in one call, and returns the size
// of their keys in all, or an error wrapping ErrBadWrite.
func checkTTLWrites(writes []TTLWrite) (keysSizeBytes int, err error) {
	if len(writes) > abi.TTLWritesMax {
		return 0, fmt.Errorf("%w: %d writes in one call, at most %d", ErrBadWrite, len(writes), abi.TTLWritesMax)
	}
	for i := range writes {
		w := &writes[i]
		if len(w.Key) == 0 || len(w.Key) > abi.TTLKeySizeBytesMax || w.ValueLen < 0 || w.RequestedTTLMs < 0 {
			return 0, fmt.Errorf("%w: write %d: key of %d bytes, value of %d, requested ttl %d ms", ErrBadWrite, i, len(w.Key), w.ValueLen, w.RequestedTTLMs)
		}
		keysSizeBytes += len(w.Key)
	}
	if keysSizeBytes > abi.TTLKeysSizeBytesMax {
		return 0, fmt.Errorf("%w: keys of %d bytes in one call, at most %d", ErrBadWrite, keysSizeBytes, abi.TTLKeysSizeBytesMax)
	}
	return keysSizeBytes, nil
}

// encodeTTLs writes the input of a batch into the instance's buffer and
// returns it, and hands the time to the instance's WASI state. writes have
// been checked (checkTTLWrites) and their keys add up to keysSizeBytes.
func encodeTTLs(in *instance, nowUnixMs int64, writes []TTLWrite, keysSizeBytes int) []byte {
	b := in.input(abi.TTLInputSizeBytes(len(writes), keysSizeBytes))
	abi.PutTTLHeader(b, nowUnixMs, len(writes), keysSizeBytes)
	keys := b[abi.TTLHeaderSizeBytes+len(writes)*abi.TTLWriteSizeBytes:]
	off := 0
	for i := range writes {
		w := &writes[i]
		abi.PutTTLWrite(b[abi.TTLHeaderSizeBytes+i*abi.TTLWriteSizeBytes:], &abi.TTLWrite{
			RequestedTTLMs: w.RequestedTTLMs,
			ValueSizeBytes: uint32(min(w.ValueLen, 1<<32-1)),
			Key:            w.Key,
		}, off)
		off += copy(keys[off:], w.Key)
	}
	in.state.NowUnixMs = nowUnixMs
	in.state.ResetOutput()
	return b
}

// TTLSelfTest returns the batch LoadTTL asks a plugin to answer, in one
// call, before accepting it: at a fixed time, writes of keys with and
// without a prefix, short and long, small and large values, with and
// without a requested TTL. Any valid answer passes. A new slice each call.
func TTLSelfTest() (nowUnixMs int64, writes []TTLWrite) {
	const now = 1_767_225_600_000 // 2026-01-01T00:00:00Z
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	return now, []TTLWrite{
		{Key: []byte("wisp/self-test/0"), ValueLen: 100},
		{Key: []byte("session:wisp-self-test"), ValueLen: 2 << 20, RequestedTTLMs: 60_000},
		{Key: []byte("k"), RequestedTTLMs: 1},
		{Key: long, ValueLen: 64 << 20, RequestedTTLMs: abi.TTLMsMax},
	}
}

// GuardedTTL asks a ttl plugin and, whenever a call fails, keeps the TTLs
// the clients asked for, for every write of that call, so that writes go
// on whatever the plugin does. It records its calls as Guarded does
// (Stats): one call, and at most one fallback, per batch. It is safe for
// concurrent use.
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

// TTL returns the plugin's TTL for one write (see TTL.TTL), or
// requestedTTLMs if the plugin fails: TTLs with a batch of one.
func (g *GuardedTTL) TTL(ctx context.Context, key []byte, valueLen int, requestedTTLMs, nowUnixMs int64) (int64, error) {
	w := [1]TTLWrite{{Key: key, ValueLen: valueLen, RequestedTTLMs: requestedTTLMs}}
	var out [1]int64
	got, err := g.TTLs(ctx, nowUnixMs, w[:], out[:0])
	if err != nil {
		return 0, err
	}
	return got[0], nil
}

// TTLs appends the plugin's TTLs for writes to out (see TTL.TTLs) or, if
// the plugin fails, every write's RequestedTTLMs: the whole batch falls
// back, counted as one call and one fallback, the error kept as the last.
// Only when ctx is done (the caller gave up on the writes) does it return
// out unchanged and ctx's error, without counting the call; a batch out of
// bounds (ErrBadWrite) is the caller's error too, returned and not
// counted. An empty writes is not a call.
func (g *GuardedTTL) TTLs(ctx context.Context, nowUnixMs int64, writes []TTLWrite, out []int64) ([]int64, error) {
	if len(writes) == 0 {
		return out, nil
	}
	if !g.guard.allow() {
		if _, err := checkTTLWrites(writes); err != nil {
			return out, err // the caller's mistake, rested plugin or not
		}
		g.guard.skip()
		for i := range writes {
			out = append(out, writes[i].RequestedTTLMs)
		}
		return out, nil
	}
	start := time.Now()
	got, err := g.plugin.TTLs(ctx, nowUnixMs, writes, out)
	took := time.Since(start)
	switch {
	case err == nil:
		g.guard.record(took, nil)
		return got, nil
	case ctx.Err() != nil:
		return out, fmt.Errorf("plugins: %s: %w", g.Name(), ctx.Err())
	case errors.Is(err, ErrBadWrite):
		return out, err
	}
	g.guard.record(took, err)
	for i := range writes {
		out = append(out, writes[i].RequestedTTLMs)
	}
	return out, nil
}

// Stats returns a snapshot of the plugin's calls: one per batch.
func (g *GuardedTTL) Stats() Stats { return g.guard.stats() }
