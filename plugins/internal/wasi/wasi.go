package wasi

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// ModuleName is the import module of WASI preview1.
const ModuleName = "wasi_snapshot_preview1"

// WASI errno values the stubs return.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
)

// outputHeadBytes bounds State.Output: enough for a Go panic's first lines.
const outputHeadBytes = 1024

// monotonicStepNs is how far the monotonic clock moves per read, so that
// code timing itself sees time pass without reading a real clock.
const monotonicStepNs = 1000

// randomSeed seeds random_get's sequence: fixed, so that guests are
// deterministic.
const randomSeed = 0x5157_4953_5045_5250

// State is one module instance's view of the stubs: the time the host hands
// in, its fake monotonic clock and random sequence, and the head of what it
// wrote. Instances run one call at a time, and so use their State; it is not
// safe for concurrent use.
type State struct {
	// NowUnixMs is the current call's time, what the realtime clock reads.
	// The host sets it before each call.
	NowUnixMs int64

	monotonicNs uint64
	random      uint64
	head        []byte // the first outputHeadBytes written to fd 1 or 2 since ResetOutput
}

// NewState returns the state of a new instance.
func NewState() *State { return &State{random: randomSeed} }

// Output returns the first bytes (at most 1 KiB) the instance wrote to
// stdout or stderr since ResetOutput: a Go guest's panic message, for
// instance, which comes before its goroutine dump.
func (s *State) Output() string { return string(s.head) }

// ResetOutput forgets what the instance wrote; the host calls it before
// each call, so that Output describes that call.
func (s *State) ResetOutput() { s.head = s.head[:0] }

type stateKey struct{}

// WithState returns ctx carrying s: the stubs called during a call or an
// instantiation made with that context use s.
func WithState(ctx context.Context, s *State) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

func state(ctx context.Context) *State {
	if s, ok := ctx.Value(stateKey{}).(*State); ok {
		return s
	}
	// A call without a state gets a fresh one: still deterministic.
	return NewState()
}

// Function is one offered WASI function.
type Function struct {
	Name    string
	Params  []api.ValueType
	Results []api.ValueType
	fn      api.GoModuleFunc
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// Functions lists what the host offers under ModuleName, in a fixed order.
func Functions() []Function {
	return []Function{
		{"args_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, zeroes},
		{"args_sizes_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, sizesGet},
		{"environ_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, zeroes},
		{"environ_sizes_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, sizesGet},
		{"clock_time_get", []api.ValueType{i32, i64, i32}, []api.ValueType{i32}, clockTimeGet},
		{"random_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, randomGet},
		{"fd_write", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, fdWrite},
		{"poll_oneoff", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, pollOneoff},
		{"proc_exit", []api.ValueType{i32}, nil, procExit},
		{"sched_yield", nil, []api.ValueType{i32}, zeroes},
		{"fd_close", []api.ValueType{i32}, []api.ValueType{i32}, badf},
		{"fd_fdstat_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, badf},
		{"fd_fdstat_set_flags", []api.ValueType{i32, i32}, []api.ValueType{i32}, badf},
		{"fd_prestat_get", []api.ValueType{i32, i32}, []api.ValueType{i32}, badf},
		{"fd_prestat_dir_name", []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, badf},
	}
}

// Offers reports whether the host offers a function module.name with these
// parameter and result types.
func Offers(module, name string, params, results []api.ValueType) bool {
	if module != ModuleName {
		return false
	}
	for _, f := range Functions() {
		if f.Name == name {
			return string(f.Params) == string(params) && string(f.Results) == string(results)
		}
	}
	return false
}

// Instantiate adds the host module ModuleName to r. Call it once per
// runtime, before instantiating guests.
func Instantiate(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(ModuleName)
	for _, f := range Functions() {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.Params, f.Results).Export(f.Name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("wasi: instantiate %s: %w", ModuleName, err)
	}
	return nil
}

// zeroes succeeds without writing (args_get, environ_get: there are none;
// sched_yield).
func zeroes(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoSuccess }

// badf fails: no file descriptor exists.
func badf(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoBadf }

// sizesGet reports no arguments or variables: (count_ptr, buf_size_ptr).
func sizesGet(_ context.Context, mod api.Module, stack []uint64) {
	mem := mod.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), 0) || !mem.WriteUint32Le(uint32(stack[1]), 0) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// clockTimeGet: (id, precision, result_ptr). Realtime (0) is the call's
// time; monotonic (1) the instance's counter; the CPU-time clocks do not
// exist.
func clockTimeGet(ctx context.Context, mod api.Module, stack []uint64) {
	s := state(ctx)
	var ns uint64
	switch uint32(stack[0]) {
	case 0:
		ns = uint64(s.NowUnixMs) * 1e6
	case 1:
		s.monotonicNs += monotonicStepNs
		ns = s.monotonicNs
	default:
		stack[0] = errnoInval
		return
	}
	if !mod.Memory().WriteUint64Le(uint32(stack[2]), ns) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// randomGet: (buf, len), filled from a splitmix64 sequence.
func randomGet(ctx context.Context, mod api.Module, stack []uint64) {
	s := state(ctx)
	buf, ok := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		stack[0] = errnoFault
		return
	}
	for len(buf) > 0 {
		s.random += 0x9e3779b97f4a7c15
		z := s.random
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], z)
		buf = buf[copy(buf, w[:]):]
	}
	stack[0] = errnoSuccess
}

// fdWrite: (fd, iovs, iovs_len, nwritten_ptr). Writes to stdout and stderr
// are reported written, their first bytes kept (State.Output); other fds are
// EBADF.
func fdWrite(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, iovsLen, nwrittenPtr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if fd != 1 && fd != 2 {
		stack[0] = errnoBadf
		return
	}
	s := state(ctx)
	mem := mod.Memory()
	var n uint32
	for i := range iovsLen {
		ptr, ok1 := mem.ReadUint32Le(iovs + 8*i)
		size, ok2 := mem.ReadUint32Le(iovs + 8*i + 4)
		b, ok3 := mem.Read(ptr, size)
		if !ok1 || !ok2 || !ok3 {
			stack[0] = errnoFault
			return
		}
		s.keep(b)
		n += size
	}
	if !mem.WriteUint32Le(nwrittenPtr, n) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// keep appends b to the head, up to outputHeadBytes; the rest is dropped.
func (s *State) keep(b []byte) {
	s.head = append(s.head, b[:min(len(b), outputHeadBytes-len(s.head))]...)
}

// Layout of poll_oneoff's subscriptions and events.
const (
	subscriptionSizeBytes = 48
	eventSizeBytes        = 32
	eventTypeClock        = 0
	subscriptionAbstime   = 1
)

// pollOneoff: (in, out, nsubscriptions, nevents_ptr). Every clock
// subscription fires at once, its timeout added to the monotonic clock (an
// absolute one moves the clock to it); fd subscriptions fail with EBADF.
func pollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	in, out, n, neventsPtr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if n == 0 {
		stack[0] = errnoInval
		return
	}
	if uint64(n)*subscriptionSizeBytes > math.MaxUint32 {
		stack[0] = errnoFault
		return
	}
	mem := mod.Memory()
	subs, ok1 := mem.Read(in, n*subscriptionSizeBytes)
	events, ok2 := mem.Read(out, n*eventSizeBytes)
	if !ok1 || !ok2 {
		stack[0] = errnoFault
		return
	}
	s := state(ctx)
	// Read every subscription before writing an event: the two may overlap.
	type event struct {
		userdata uint64
		errno    uint16
		typ      uint8
	}
	evs := make([]event, n)
	for i := range n {
		sub := subs[i*subscriptionSizeBytes:]
		e := event{userdata: binary.LittleEndian.Uint64(sub), typ: sub[8]}
		if e.typ == eventTypeClock {
			timeout := binary.LittleEndian.Uint64(sub[24:])
			if binary.LittleEndian.Uint16(sub[40:])&subscriptionAbstime != 0 {
				s.monotonicNs = max(s.monotonicNs, timeout)
			} else {
				s.monotonicNs += timeout
			}
		} else {
			e.errno = errnoBadf
		}
		evs[i] = e
	}
	for i, e := range evs {
		ev := events[i*eventSizeBytes : (i+1)*eventSizeBytes]
		clear(ev)
		binary.LittleEndian.PutUint64(ev, e.userdata)
		binary.LittleEndian.PutUint16(ev[8:], e.errno)
		ev[10] = e.typ
	}
	if !mem.WriteUint32Le(neventsPtr, n) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// procExit: (code). Closes the module, as wazero's own WASI does, so that no
// guest code runs after it.
func procExit(ctx context.Context, mod api.Module, stack []uint64) {
	code := uint32(stack[0])
	_ = mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}
