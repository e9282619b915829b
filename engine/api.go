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
	// MaxMemoryBytes, when non-zero, is the memory budget stamped by the
	// leader under the noeviction policy: a command that would leave
	// MemoryUsed above it fails with ErrMemoryFull, unless it does not grow
	// MemoryUsed. Negative is invalid. Zero keeps the command in the
	// original log encoding (format version 1).
	MaxMemoryBytes int64
	Mutations      []Mutation
}

// MutationResult is the outcome of one mutation.
type MutationResult struct {
	// Version is the index of the command that applied the mutation.
	Version uint64
	// Existed reports, for OpDelete, whether a live key was removed; for
	// OpExpire and OpEvict, whether the stored key was removed; for OpSetTTL
	// and OpPersist, whether the key was live (and so rewritten); for
	// OpSetMeta, whether the setting was set before.
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

// ---- TTL, memory and eviction (issue 4). ----

const (
	// OpSetTTL sets Key's expiry to NowUnixMs + TTLMs (TTLMs > 0) if the key
	// is live (and at IfVersion, if set); the key gets a new version. An
	// absent key is not an error: Existed reports whether it was live.
	OpSetTTL Op = 5
	// OpPersist removes Key's expiry if the key is live (and at IfVersion,
	// if set); the key gets a new version. Existed as for OpSetTTL.
	OpPersist Op = 6
	// OpEvict removes Key if it is stored at exactly IfVersion (required,
	// non-zero): a key rewritten since the leader sampled it survives.
	// Existed reports whether it was removed. Proposed by the leader's
	// eviction loop; never an error.
	OpEvict Op = 7
	// OpSetMeta stores Value under the name Key in the engine's small
	// replicated settings map (not the keyspace); an empty Value deletes it.
	// Used for cluster settings such as the memory budget and the eviction
	// policy until the meta group holds them. Names are at most 256 bytes,
	// values at most 64 KiB, and at most 256 settings exist: beyond that
	// the command is invalid. IfVersion is invalid (settings have no
	// versions); Existed reports whether the setting was set before.
	OpSetMeta Op = 8
)

// ErrMemoryFull is returned by Apply when Command.MaxMemoryBytes is set and
// the command would leave MemoryUsed above it. Mutations that do not grow
// memory (deletes, expiry, eviction, persist, shrinking puts) always apply.
var ErrMemoryFull = errors.New("memory budget exhausted")

// Candidate describes one stored key to an eviction policy.
type Candidate struct {
	// Key is shared with the engine: do not modify or retain it past the
	// policy call (copy it if needed).
	Key             []byte
	Version         uint64
	SizeBytes       int64 // what removing the key frees, as MemoryUsed counts it
	ExpiresAtUnixMs int64 // 0: no expiry
	// LastAccess is the engine's access clock at the key's last read or
	// write: a logical counter that grows by one per access, so a smaller
	// value means less recently used. Not replicated: each replica has its
	// own.
	LastAccess uint64
	// Frequency is the key's approximate logarithmic access counter (0-255,
	// Redis-style: it grows with the log of the access count and decays
	// with idle time), as of the sampling time.
	Frequency uint8
}

// Stats are one replica's counters. Keys, VolatileKeys and MemoryUsedBytes
// describe the replicated state; ExpiredTotal and EvictedTotal are metrics
// of this replica since New or its last Restore, not snapshot state.
type Stats struct {
	// Keys is the number of stored keys, expired ones included (Len).
	Keys int
	// VolatileKeys is the number of stored keys with an expiry.
	VolatileKeys int
	// MemoryUsedBytes is MemoryUsed.
	MemoryUsedBytes int64
	// ExpiredTotal counts the keys removed by OpExpire.
	ExpiredTotal uint64
	// EvictedTotal counts the keys removed by OpEvict.
	EvictedTotal uint64
}
