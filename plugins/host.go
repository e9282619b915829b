package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wisp-db/wisp/plugins/abi"
	"github.com/wisp-db/wisp/plugins/internal/wasi"
)

// Host runs plugins: one wazero runtime, configured so that every guest is
// bounded (memory pages, a deadline per call, close on context done), the
// deterministic WASI stubs of plugins/internal/wasi, and a cache of compiled
// modules keyed by their SHA-256. A Host is safe for concurrent use.
type Host struct {
	cfg     config
	runtime wazero.Runtime
	cache   wazero.CompilationCache // nil without WithCompilationCacheDir

	mu       sync.Mutex
	compiled map[[32]byte]*compiled // guarded by mu
	useClock uint64                 // guarded by mu: orders the idle compiled modules
	closed   bool                   // guarded by mu
}

// compiled is a compiled module and the plugins that use it.
type compiled struct {
	sum     [32]byte
	module  wazero.CompiledModule
	refs    int    // guarded by Host.mu: loaded plugins using it
	lastUse uint64 // guarded by Host.mu
}

// NewHost returns a Host with the given options. Close it when done.
func NewHost(ctx context.Context, opts ...Option) (*Host, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(cfg.memoryLimitPages).
		WithCoreFeatures(api.CoreFeaturesV2)
	var cache wazero.CompilationCache
	if cfg.cacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.cacheDir); err != nil {
			return nil, fmt.Errorf("plugins: compilation cache: %w", err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	if err := wasi.Instantiate(ctx, r); err != nil {
		_ = r.Close(ctx)
		if cache != nil {
			_ = cache.Close(ctx)
		}
		return nil, err
	}
	return &Host{cfg: cfg, runtime: r, cache: cache, compiled: map[[32]byte]*compiled{}}, nil
}

// Close closes the runtime and with it every instance and compiled module.
// Close the plugins first: calls after Close fail. Safe to call twice.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.compiled = nil
	h.mu.Unlock()
	err := h.runtime.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	return err
}

// compile returns the compiled module of wasm, whose SHA-256 is sum, from the
// cache or compiled now, with one more reference. Release it with release.
func (h *Host) compile(ctx context.Context, sum [32]byte, wasm []byte) (*compiled, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if c, ok := h.compiled[sum]; ok {
		c.refs++
		h.mu.Unlock()
		return c, nil
	}
	h.mu.Unlock()
	// Compile outside the lock: a Go guest takes about half a second. Two
	// loads of the same new module may both compile; the second keeps the
	// first's.
	m, err := h.runtime.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidModule, ErrCompile, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if c, ok := h.compiled[sum]; ok {
		c.refs++
		_ = m.Close(ctx)
		return c, nil
	}
	c := &compiled{sum: sum, module: m, refs: 1}
	h.compiled[sum] = c
	return c, nil
}

// release drops a reference to c. The Host keeps the compiled modules no
// plugin uses, up to compiledIdleMax, and closes the least recently used
// beyond that.
func (h *Host) release(ctx context.Context, c *compiled) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.refs--
	if c.refs < 0 {
		panic("plugins: compiled module released more often than taken")
	}
	if h.closed || c.refs > 0 {
		return
	}
	h.useClock++
	c.lastUse = h.useClock
	var idle []*compiled
	for _, o := range h.compiled {
		if o.refs == 0 {
			idle = append(idle, o)
		}
	}
	for len(idle) > compiledIdleMax {
		oldest := 0
		for i, o := range idle {
			if o.lastUse < idle[oldest].lastUse {
				oldest = i
			}
		}
		o := idle[oldest]
		delete(h.compiled, o.sum)
		_ = o.module.Close(ctx)
		idle = append(idle[:oldest], idle[oldest+1:]...)
	}
}

// compileChecked returns the compiled module of wasm, with one more
// reference, if it passes the checks before instantiation: its size, that
// it compiles, and its imports and exports for the entry point entry.
func (h *Host) compileChecked(ctx context.Context, wasm []byte, entry string) (*compiled, error) {
	if len(wasm) > h.cfg.moduleSizeBytesMax {
		return nil, fmt.Errorf("%w: %w: %d bytes, at most %d", ErrInvalidModule, ErrModuleTooLarge, len(wasm), h.cfg.moduleSizeBytesMax)
	}
	c, err := h.compile(ctx, moduleSum(wasm), wasm)
	if err != nil {
		return nil, err
	}
	if err := check(c.module, entry); err != nil {
		h.release(ctx, c)
		return nil, err
	}
	return c, nil
}

// check refuses a module that does not have the exports ABI version 1
// requires, with entry as the kind's entry point, or that imports what the
// host does not offer.
func check(m wazero.CompiledModule, entry string) error {
	for _, d := range m.ImportedFunctions() {
		mod, name, _ := d.Import()
		if !wasi.Offers(mod, name, d.ParamTypes(), d.ResultTypes()) {
			return fmt.Errorf("%w: %w: function %s.%s%s", ErrInvalidModule, ErrImportNotOffered, mod, name, signature(d))
		}
	}
	for _, d := range m.ImportedMemories() {
		mod, name, _ := d.Import()
		return fmt.Errorf("%w: %w: memory %s.%s (a guest defines its own)", ErrInvalidModule, ErrImportNotOffered, mod, name)
	}
	if _, ok := m.ExportedMemories()[abi.ExportMemory]; !ok {
		return fmt.Errorf("%w: %w: memory %q", ErrInvalidModule, ErrMissingExport, abi.ExportMemory)
	}
	want := []struct {
		name            string
		params, results []api.ValueType
	}{
		{abi.ExportABIVersion, nil, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportAllocate, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportFree, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil},
		{entry, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	}
	exports := m.ExportedFunctions()
	for _, w := range want {
		d, ok := exports[w.name]
		if !ok {
			return fmt.Errorf("%w: %w: function %q", ErrInvalidModule, ErrMissingExport, w.name)
		}
		if string(d.ParamTypes()) != string(w.params) || string(d.ResultTypes()) != string(w.results) {
			return fmt.Errorf("%w: %w: function %q has type %s, want %s", ErrInvalidModule, ErrMissingExport,
				w.name, signature(d), typeString(w.params, w.results))
		}
	}
	if d, ok := exports[abi.ExportInitialize]; ok && (len(d.ParamTypes()) != 0 || len(d.ResultTypes()) != 0) {
		return fmt.Errorf("%w: %w: function %q has type %s, want ()", ErrInvalidModule, ErrMissingExport, abi.ExportInitialize, signature(d))
	}
	return nil
}

func signature(d api.FunctionDefinition) string { return typeString(d.ParamTypes(), d.ResultTypes()) }

func typeString(params, results []api.ValueType) string {
	s := "("
	for i, t := range params {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(t)
	}
	s += ")"
	if len(results) > 0 {
		s += " ->"
		for _, t := range results {
			s += " " + api.ValueTypeName(t)
		}
	}
	return s
}

// moduleSum returns the SHA-256 of a module's bytes, its identity in the
// cache (and, later, in the registry).
func moduleSum(wasm []byte) [32]byte { return sha256.Sum256(wasm) }
