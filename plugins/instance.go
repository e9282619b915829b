package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wisp-db/wisp/plugins/abi"
	"github.com/wisp-db/wisp/plugins/internal/wasi"
)

// instance is one instantiated guest and what the host keeps for it. It
// runs one call at a time: the pool hands it to one caller.
type instance struct {
	module api.Module
	memory api.Memory
	alloc  api.Function
	free   api.Function
	entry  api.Function
	// kind is the plugin kind the instance serves: its entry point's name
	// (for errors) and its largest valid output.
	kind  kindSpec
	state *wasi.State

	// inPtr and inCapBytes describe the guest buffer (from wisp_allocate)
	// the inputs are written to; 0 until the first call.
	inPtr, inCapBytes uint32
	// buf is the host-side encoding of an input, reused.
	buf []byte
	// stack holds the entry point's parameters and result.
	stack [2]uint64

	// calls carries each call to the instance's worker goroutine, which
	// owns the guest while it runs and answers on done, after setting output
	// and callErr. The worker keeps its goroutine stack, grown to what
	// wazero needs, from call to call. close ends it.
	calls   chan callRequest
	done    chan struct{} // capacity 1
	exited  chan struct{} // closed when the worker returns
	output  []byte
	callErr error

	// busy is true while a call is in flight. Invariant: one call at a
	// time (the pool hands the instance to one caller).
	busy atomic.Bool
}

// newInstance instantiates m, runs its _initialize, if any, and checks its
// ABI version. kind is the kind of plugin it serves.
func newInstance(ctx context.Context, r wazero.Runtime, m wazero.CompiledModule, kind kindSpec) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, instantiateTimeout)
	defer cancel()
	st := wasi.NewState()
	ctx = wasi.WithState(ctx, st)
	// An empty name lets a runtime hold many instances of a module; no
	// start function: a reactor is initialised by _initialize.
	mod, err := r.InstantiateModule(ctx, m, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, callError(ctx, "instantiate", err, st)
	}
	in := &instance{
		module: mod,
		memory: mod.ExportedMemory(abi.ExportMemory),
		alloc:  mod.ExportedFunction(abi.ExportAllocate),
		free:   mod.ExportedFunction(abi.ExportFree),
		entry:  mod.ExportedFunction(kind.entry),
		kind:   kind,
		state:  st,
		calls:  make(chan callRequest),
		done:   make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	go in.work()
	if init := mod.ExportedFunction(abi.ExportInitialize); init != nil {
		if _, err := init.Call(ctx); err != nil {
			in.close()
			return nil, callError(ctx, abi.ExportInitialize, err, st)
		}
	}
	v, err := mod.ExportedFunction(abi.ExportABIVersion).Call(ctx)
	if err != nil {
		in.close()
		return nil, callError(ctx, abi.ExportABIVersion, err, st)
	}
	if got := uint32(v[0]); got != abi.Version {
		in.close()
		return nil, fmt.Errorf("%w: %w: the module speaks %d, the host %d", ErrInvalidModule, ErrABIVersion, got, abi.Version)
	}
	return in, nil
}

// callRequest is one call for the worker.
type callRequest struct {
	ctx context.Context
	b   []byte
}

// work runs the calls sent on calls, one at a time, until calls is closed.
func (in *instance) work() {
	defer close(in.exited)
	for r := range in.calls {
		in.output, in.callErr = in.call(r.ctx, r.b)
		in.busy.Store(false)
		in.done <- struct{}{}
	}
}

// close closes the guest and ends the worker. The instance is not used
// again; no call may be in flight.
func (in *instance) close() {
	_ = in.module.Close(context.Background())
	close(in.calls)
	<-in.exited
}

// input returns a host-side buffer of n bytes for an input.
func (in *instance) input(n int) []byte {
	if cap(in.buf) < n {
		in.buf = make([]byte, n)
	}
	return in.buf[:n]
}

// call writes b into the guest's input buffer, calls the entry point, and
// returns the guest's output as a view of its memory, valid until the next
// call into the instance. ctx carries the call's deadline.
func (in *instance) call(ctx context.Context, b []byte) ([]byte, error) {
	if err := in.reserve(ctx, uint32(len(b))); err != nil {
		return nil, err
	}
	if !in.memory.Write(in.inPtr, b) {
		return nil, fmt.Errorf("%w: input buffer at %d (%d bytes) is out of memory", ErrBadAnswer, in.inPtr, len(b))
	}
	in.stack[0], in.stack[1] = uint64(in.inPtr), uint64(len(b))
	if err := in.entry.CallWithStack(ctx, in.stack[:]); err != nil {
		return nil, callError(ctx, in.kind.entry, err, in.state)
	}
	ptr, size, code, ok := abi.UnpackResult(int64(in.stack[0]))
	if !ok {
		return nil, fmt.Errorf("%w: guest error code %d", ErrBadAnswer, code)
	}
	if size > in.kind.outputSizeBytesMax {
		return nil, fmt.Errorf("%w: output of %d bytes, larger than %d", ErrBadAnswer, size, in.kind.outputSizeBytesMax)
	}
	out, ok := in.memory.Read(ptr, size)
	if !ok {
		return nil, fmt.Errorf("%w: output at %d (%d bytes) is out of memory", ErrBadAnswer, ptr, size)
	}
	return out, nil
}

// start runs call(ctx, b) on the instance's worker goroutine; done
// receives when it has returned, and output and callErr hold its results.
// The caller waits for done or for ctx, whichever comes first: wazero stops a
// guest at its deadline only at loop headers, so a guest recursing without
// end overruns the deadline until wazero's call stack ceiling stops it
// (about a second, measured), and the caller must not wait for that. An
// abandoned call keeps its instance (and its pool slot) until it returns.
func (in *instance) start(ctx context.Context, b []byte) {
	if !in.busy.CompareAndSwap(false, true) {
		panic("plugins: two calls at once on one instance")
	}
	in.calls <- callRequest{ctx, b}
}

// inputCapBytesMin is the smallest input buffer the host asks a guest for.
const inputCapBytesMin = 4 << 10

// reserve makes the guest's input buffer at least n bytes: it asks for a
// power of two, so that a growing input reallocates a few times only.
func (in *instance) reserve(ctx context.Context, n uint32) error {
	if n <= in.inCapBytes {
		return nil
	}
	c := uint32(inputCapBytesMin)
	for c < n {
		c *= 2
	}
	c = min(c, max(n, abi.InputSizeBytesMax))
	if in.inPtr != 0 {
		in.stack[0], in.stack[1] = uint64(in.inPtr), uint64(in.inCapBytes)
		if err := in.free.CallWithStack(ctx, in.stack[:]); err != nil {
			return callError(ctx, abi.ExportFree, err, in.state)
		}
		in.inPtr, in.inCapBytes = 0, 0
	}
	in.stack[0] = uint64(c)
	if err := in.alloc.CallWithStack(ctx, in.stack[:]); err != nil {
		return callError(ctx, abi.ExportAllocate, err, in.state)
	}
	ptr := uint32(in.stack[0])
	if ptr == 0 || uint64(ptr)+uint64(c) > uint64(in.memory.Size()) {
		return fmt.Errorf("%w: %s(%d) returned %d, outside its %d bytes of memory", ErrBadAnswer, abi.ExportAllocate, c, ptr, in.memory.Size())
	}
	in.inPtr, in.inCapBytes = ptr, c
	return nil
}

// callError classifies the error of a call into a guest: a deadline passed
// (ErrTimeout), the caller gave up (its context's error), or the guest
// trapped or exited (ErrTrap, with the last of what it wrote to stderr).
func callError(ctx context.Context, what string, err error, st *wasi.State) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("%w: %s: %w", ErrTimeout, what, context.DeadlineExceeded)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("plugins: %s: %w", what, context.Canceled)
		}
		return fmt.Errorf("%w: %s: exit code %d%s", ErrTrap, what, exit.ExitCode(), output(st))
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, err)
	}
	return fmt.Errorf("%w: %s: %w%s", ErrTrap, what, err, output(st))
}

// output quotes what the guest last wrote, for an error message.
func output(st *wasi.State) string {
	if st == nil || st.Output() == "" {
		return ""
	}
	return fmt.Sprintf(" (guest output: %q)", st.Output())
}
