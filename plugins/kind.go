package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wisp-db/wisp/plugins/abi"
	"github.com/wisp-db/wisp/plugins/internal/wasi"
)

// Kind is a kind of plugin: the decision it makes, its entry point and its
// input and output layouts (docs/PLUGINS.md).
type Kind string

// The kinds of plugin a host of ABI version 1 loads.
const (
	// KindEviction chooses eviction victims (LoadEviction, abi.ExportEvict).
	KindEviction Kind = "eviction"
	// KindTTL sets the TTL of a write on the shard leader (LoadTTL,
	// abi.ExportTTL).
	KindTTL Kind = "ttl"
)

// Kinds returns the kinds a Host loads, in a fixed order. The caller may
// modify the slice.
func Kinds() []Kind { return []Kind{KindEviction, KindTTL} }

// ErrUnknownKind: Validate was asked for a kind the host does not know.
var ErrUnknownKind = errors.New("plugins: unknown plugin kind")

// kindSpec is what the host needs to know of a kind to call it.
type kindSpec struct {
	kind               Kind
	entry              string // the entry point's export
	outputSizeBytesMax uint32 // the largest valid output
}

var (
	evictionSpec = kindSpec{KindEviction, abi.ExportEvict, abi.VictimsSizeBytesMax}
	ttlSpec      = kindSpec{KindTTL, abi.ExportTTL, abi.TTLOutputSizeBytesMax}
)

// Validate checks that wasm is a plugin of the given kind that this host
// would load, as LoadEviction or LoadTTL do (size, compilation, imports,
// exports, ABI version, the kind's self-test), then unloads it; the
// compiled module stays cached, so that loading it next costs no
// compilation. An error wraps ErrInvalidModule and the reason, or is
// ErrUnknownKind, ErrClosed or the context's.
func (h *Host) Validate(ctx context.Context, kind Kind, wasm []byte) error {
	switch kind {
	case KindEviction:
		e, err := h.LoadEviction(ctx, wasm)
		if err != nil {
			return err
		}
		e.Close()
	case KindTTL:
		t, err := h.LoadTTL(ctx, wasm)
		if err != nil {
			return err
		}
		t.Close()
	default:
		return fmt.Errorf("%w %q (valid: %v)", ErrUnknownKind, kind, Kinds())
	}
	return nil
}

// loaded is what a plugin of any kind holds once loaded: its compiled
// module, its pool of instances and its settings. It is safe for
// concurrent use.
type loaded struct {
	host      *Host
	compiled  *compiled
	pool      *pool
	spec      kindSpec
	timeout   time.Duration
	name      string
	closeOnce sync.Once
}

// load validates wasm up to the self-test, which the kind's loader runs
// next, and fills the pool of instances.
func (h *Host) load(ctx context.Context, wasm []byte, spec kindSpec, opts []LoadOption) (*loaded, error) {
	lc, err := newLoadConfig(wasm, opts)
	if err != nil {
		return nil, err
	}
	c, err := h.compileChecked(ctx, wasm, spec.entry)
	if err != nil {
		return nil, err
	}
	l := &loaded{host: h, compiled: c, spec: spec, timeout: h.cfg.callTimeout, name: lc.name}
	l.pool = newPool(h.cfg.instancesMax, func(ctx context.Context) (*instance, error) {
		return newInstance(ctx, h.runtime, c.module, spec)
	})
	// The instances are made here, so that a module that fails to
	// instantiate is refused for that reason, not as a failed self-test,
	// and so that calls do not wait for an instantiation.
	if err := l.pool.fill(ctx); err != nil {
		l.close()
		if errors.Is(err, ErrInvalidModule) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	return l, nil
}

// close waits for the calls in flight, closes the instances and releases
// the compiled module. Safe to call twice.
func (l *loaded) close() {
	l.closeOnce.Do(func() {
		l.pool.close()
		l.host.release(context.Background(), l.compiled)
	})
}

// call runs one decision on an instance, within the earlier of ctx's
// deadline and the call timeout: encode writes the input into the
// instance's buffer (and sets the instance's WASI clock) and returns it;
// decode checks the guest's output, a view of its memory valid only during
// decode. An instance whose call failed in any way is discarded.
func (l *loaded) call(ctx context.Context, encode func(in *instance) []byte, decode func(output []byte) error) error {
	if err := ctx.Err(); err != nil {
		return ctxError(ctx, l.spec.entry, err)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	in, err := l.pool.get(ctx)
	if err != nil {
		return ctxError(ctx, "waiting for an instance", err)
	}
	b := encode(in)
	in.start(wasi.WithState(ctx, in.state), b)
	select {
	case <-in.done:
	case <-ctx.Done():
		// The guest did not stop at the deadline (see instance.start): give
		// up on it now, and let it go when it does stop.
		go func() {
			<-in.done
			l.pool.put(in, false)
		}()
		return ctxError(ctx, l.spec.entry, ctx.Err())
	}
	if in.callErr != nil {
		l.pool.put(in, false)
		return in.callErr
	}
	err = decode(in.output)
	l.pool.put(in, err == nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	return nil
}
