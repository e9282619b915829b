package plugins

import "errors"

// Validation errors. Every error LoadEviction or LoadTTL returns for a module it
// refuses wraps ErrInvalidModule and one of the others, so that a caller can
// branch on the reason (errors.Is) and show the wrapped detail.
var (
	// ErrInvalidModule: the module was refused; nothing was loaded.
	ErrInvalidModule = errors.New("plugins: invalid module")
	// ErrModuleTooLarge: the module is larger than WithModuleSizeBytesMax.
	ErrModuleTooLarge = errors.New("module too large")
	// ErrCompile: the bytes are not a WebAssembly module wazero compiles.
	ErrCompile = errors.New("does not compile")
	// ErrMissingExport: an export the ABI requires is missing or has the
	// wrong type.
	ErrMissingExport = errors.New("missing export")
	// ErrImportNotOffered: the module imports something the host does not
	// offer (see plugins/internal/wasi).
	ErrImportNotOffered = errors.New("import not offered")
	// ErrABIVersion: the module's wisp_abi_version is not abi.Version.
	ErrABIVersion = errors.New("unsupported ABI version")
	// ErrSelfTest: the module failed its self-test call; the error also
	// wraps the call's error (ErrTimeout, ErrTrap or ErrBadAnswer).
	ErrSelfTest = errors.New("self-test failed")
)

// Call errors. A failed call wraps one of these; the caller falls back to
// its built-in policy for that decision.
var (
	// ErrTimeout: the call (or the instantiation before it) passed its
	// deadline, the caller's or WithCallTimeout's, and was stopped.
	ErrTimeout = errors.New("plugins: call timed out")
	// ErrTrap: the guest trapped (unreachable, out-of-bounds access, stack
	// overflow), exited (a Go guest's panic or fatal error, such as running
	// out of memory) or could not be instantiated.
	ErrTrap = errors.New("plugins: guest trapped")
	// ErrBadAnswer: the guest answered, but not validly: an error code, an
	// output out of bounds or larger than the kind's largest output
	// (abi.VictimsSizeBytesMax, abi.TTLOutputSizeBytesMax); for eviction,
	// more victims than allowed, an unknown index or a duplicate; for ttl,
	// not one TTL per write, or a TTL out of range (abi.ErrTTLOutOfRange).
	// The error also wraps the abi error when there is one.
	ErrBadAnswer = errors.New("plugins: bad answer")
	// ErrClosed: the plugin or its host was closed.
	ErrClosed = errors.New("plugins: closed")
	// ErrTooManyCandidates: the caller passed more than abi.CandidatesMax
	// candidates.
	ErrTooManyCandidates = errors.New("plugins: too many candidates")
	// ErrBadWrite: the caller passed TTL.TTL or TTL.TTLs a write the ABI
	// cannot carry (an empty key or one longer than abi.TTLKeySizeBytesMax,
	// a negative value size or requested TTL), or a batch too large for one
	// call (more than abi.TTLWritesMax writes, or keys of more than
	// abi.TTLKeysSizeBytesMax bytes in all: see TTLBatchLen).
	ErrBadWrite = errors.New("plugins: bad write")
)
