package client

import (
	"errors"
	"fmt"
	"strconv"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Sentinel errors that callers branch on with errors.Is. Errors from the
// server also keep their *connect.Error in the chain, so connect.CodeOf and
// errors.As(err, new(*connect.Error)) work on every error a method returns.
var (
	// ErrInvalidArgument means an argument was rejected: by the Client
	// before anything was sent (empty key, WithIfVersion with WithIfAbsent,
	// negative TTL or limit), or by the server with
	// connect.CodeInvalidArgument (a key or value over the size limit).
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrPreconditionFailed means a compare-and-swap condition (WithIfVersion,
	// WithIfAbsent) did not hold and nothing was written. The error is a
	// *PreconditionError that says the key's current version.
	ErrPreconditionFailed = errors.New("precondition failed")

	// ErrUnavailable means the cluster had no leader or no quorum for the
	// key, or could not be reached, on every attempt. For a server-sent
	// connect.CodeUnavailable the operation was not applied. For a transport
	// failure during a write (Put, Delete, Increment, Batch) the outcome is
	// unknown; such writes are never retried.
	ErrUnavailable = errors.New("unavailable")
)

// UnreachableError is the cause of a call whose last attempt could not
// connect to a node: nothing was sent. It is wrapped in a *connect.Error
// with connect.CodeUnavailable (and ErrUnavailable), so errors.As finds it
// in the error of any method. Its text names the URL, such as
// "cannot reach http://127.0.0.1:8080: connection refused".
type UnreachableError struct {
	// URL is the base URL of the node the Client tried to reach.
	URL string
	// Err is why the connection failed, such as syscall.ECONNREFUSED or a
	// *net.DNSError.
	Err error
}

// Error returns "cannot reach URL: CAUSE".
func (e *UnreachableError) Error() string { return "cannot reach " + e.URL + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *UnreachableError) Unwrap() error { return e.Err }

// errEmptyKey is the error for an empty key, found before any network call.
var errEmptyKey = fmt.Errorf("%w: empty key", ErrInvalidArgument)

// PreconditionError is the error of a write whose compare-and-swap condition
// did not hold. errors.Is(err, ErrPreconditionFailed) reports true for it,
// and it wraps the server's *connect.Error (connect.CodeFailedPrecondition).
// Its fields come from the wisp.v1.PreconditionFailure error detail; a
// connect.CodeFailedPrecondition without that detail (such as Increment of
// a key that does not hold an integer) is not a PreconditionError.
type PreconditionError struct {
	// Key is the key whose condition failed.
	Key string
	// CurrentVersion is the key's version when the condition was checked,
	// or 0 if the key did not exist.
	CurrentVersion uint64
	// OpIndex is the index of the failing op within a Batch; 0 otherwise.
	OpIndex int

	op  string
	err error
}

// Error says which key failed and its current version, such as
// `wisp: put "k": precondition failed: current version is 7`.
func (e *PreconditionError) Error() string {
	var where string
	if e.op == "batch" {
		where = "wisp: batch: op " + strconv.Itoa(e.OpIndex) + " on " + quoteKey(e.Key)
	} else {
		where = "wisp: " + e.op + " " + quoteKey(e.Key)
	}
	if e.CurrentVersion == 0 {
		return where + ": precondition failed: key does not exist"
	}
	return where + ": precondition failed: current version is " + strconv.FormatUint(e.CurrentVersion, 10)
}

// Is reports whether target is ErrPreconditionFailed.
func (e *PreconditionError) Is(target error) bool { return target == ErrPreconditionFailed }

// Unwrap returns the server's *connect.Error.
func (e *PreconditionError) Unwrap() error { return e.err }

// opError is a failed call: the operation, its key (if any), the Connect
// error, and the sentinel for its code (if any).
type opError struct {
	op       string
	key      string // empty for scan, batch and status
	attempts int
	sentinel error // nil, ErrInvalidArgument or ErrUnavailable
	err      error
}

func (e *opError) Error() string {
	s := "wisp: " + e.op
	if e.key != "" {
		s += " " + quoteKey(e.key)
	}
	s += ": " + e.err.Error()
	if e.attempts > 1 {
		s += " (after " + strconv.Itoa(e.attempts) + " attempts)"
	}
	return s
}

func (e *opError) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.err}
	}
	return []error{e.sentinel, e.err}
}

// wrapError turns the error of an RPC (or a client-side check) into the
// error a method returns. key is the request's key, empty if it has none.
func wrapError(op, key string, attempts int, err error) error {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		// A client-side check; it already wraps its sentinel.
		return &opError{op: op, key: key, err: err}
	}
	switch cerr.Code() {
	case connect.CodeFailedPrecondition:
		if pf := precondition(cerr); pf != nil {
			return &PreconditionError{
				Key:            string(pf.GetKey()),
				CurrentVersion: pf.GetCurrentVersion(),
				OpIndex:        int(pf.GetOpIndex()),
				op:             op,
				err:            err,
			}
		}
		// Some other precondition, such as incrementing a key that does
		// not hold an integer: not a failed compare-and-swap.
		return &opError{op: op, key: key, attempts: attempts, err: err}
	case connect.CodeUnavailable:
		return &opError{op: op, key: key, attempts: attempts, sentinel: ErrUnavailable, err: err}
	case connect.CodeInvalidArgument:
		return &opError{op: op, key: key, attempts: attempts, sentinel: ErrInvalidArgument, err: err}
	default:
		return &opError{op: op, key: key, attempts: attempts, err: err}
	}
}

// precondition returns the PreconditionFailure detail of err, or nil.
func precondition(err *connect.Error) *wispv1.PreconditionFailure {
	for _, d := range err.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if pf, ok := v.(*wispv1.PreconditionFailure); ok {
			return pf
		}
	}
	return nil
}

// noLeader returns the NoLeader detail of err, or nil.
func noLeader(err *connect.Error) *wispv1.NoLeader {
	for _, d := range err.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if nl, ok := v.(*wispv1.NoLeader); ok {
			return nl
		}
	}
	return nil
}

// leaderHint returns the leader URL in err's LeaderHint detail, or "".
func leaderHint(err *connect.Error) string {
	for _, d := range err.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if lh, ok := v.(*wispv1.LeaderHint); ok && lh.GetUrl() != "" {
			return lh.GetUrl()
		}
	}
	return ""
}

// quoteKey quotes a key for an error message, cut to its first
// maxQuotedKeyBytes bytes: a 4 KiB key must not fill the terminal.
func quoteKey(key string) string {
	if len(key) <= maxQuotedKeyBytes {
		return strconv.Quote(key)
	}
	return strconv.Quote(key[:maxQuotedKeyBytes]) + "... (" + strconv.Itoa(len(key)) + " bytes)"
}

// maxQuotedKeyBytes bounds how much of a key an error message quotes.
const maxQuotedKeyBytes = 64
