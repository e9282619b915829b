package engine

// This file is the engine's public contract. The raftgroup layer and the
// service layer are written against it.

import (
	"errors"
	"fmt"
)

// Op is the kind of one mutation inside a Command.
type Op uint8

const (
	// OpPut writes Value at Key, with TTLMs (0: no expiry) and CAS preconditions.
	OpPut Op = 1
	// OpDelete removes Key (optionally only at IfVersion).
	OpDelete Op = 2
	// OpIncrement adds Delta to the decimal int64 stored at Key (absent: 0).
	// The key keeps its expiry time.
	OpIncrement Op = 3
	// OpExpire removes Key if it has expired at the command's NowUnixMs and is
	// still at IfVersion (IfVersion 0: any version). Proposed by the leader's
	// active-expiry loop.
	OpExpire Op = 4
)

// Mutation is one write inside a Command.
type Mutation struct {
	Op    Op
	Key   []byte
	Value []byte // OpPut only
	Delta int64  // OpIncrement only
	// TTLMs is the time to live in milliseconds for OpPut; 0 means no expiry.
	// The absolute expiry is Command.NowUnixMs + TTLMs.
	TTLMs int64
	// IfVersion, when non-zero, requires the key to exist at this version.
	IfVersion uint64
	// IfAbsent requires the key not to exist (OpPut only).
	IfAbsent bool
}

// Command is one Raft log entry's payload: mutations applied atomically at one
// index, with the time stamped by the leader that proposed it.
type Command struct {
	// NowUnixMs is the leader's clock when it proposed the command. It is the
	// only time the engine ever sees.
	NowUnixMs int64
	Mutations []Mutation
}

// MutationResult is the outcome of one mutation.
type MutationResult struct {
	// Version is the index of the command that applied the mutation.
	Version uint64
	// Existed reports, for OpDelete and OpExpire, whether a live key was removed.
	Existed bool
	// Counter is the new value after OpIncrement.
	Counter int64
}

// Result is the outcome of applying one Command. Err is non-nil when the
// command was rejected as a whole; nothing was changed then.
type Result struct {
	Mutations []MutationResult
	Err       error
}

// Item is one live key as a read sees it. The byte slices are shared with the
// engine and must not be modified.
type Item struct {
	Key             []byte
	Value           []byte
	Version         uint64
	ExpiresAtUnixMs int64 // 0: no expiry
}

// ErrNotInteger is returned by OpIncrement when the stored value is not a
// decimal int64, or when the addition would overflow.
var ErrNotInteger = errors.New("value is not an integer or out of range")

// ErrInvalidCommand is wrapped by Decode and Apply for malformed commands.
var ErrInvalidCommand = errors.New("invalid command")

// PreconditionError reports a failed CAS check. Callers match it with errors.As.
type PreconditionError struct {
	Key            []byte
	CurrentVersion uint64 // 0: the key does not exist
	Index          int    // which mutation in the command failed
}

func (e *PreconditionError) Error() string {
	return fmt.Sprintf("precondition failed on key %q (mutation %d): current version %d", e.Key, e.Index, e.CurrentVersion)
}
