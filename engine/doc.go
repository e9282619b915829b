/*
Package engine is one replica's key-value state machine. Raft hands it the
committed log in order; every replica that applies the same entries holds the
same state, byte for byte, and returns the same results.

The engine owns the keyspace: an ordered map (a copy-on-write B-tree) from key
to value, version and expiry. It does no I/O and has no goroutines, clock or
randomness: commands carry everything (the leader stamps NowUnixMs into each
one), and output never depends on map iteration order.

# Commands

A Command is a batch of mutations (put, delete, increment, expire) applied
atomically at one Raft index: Engine.Apply checks each mutation in order, the
later ones seeing the effects of the earlier ones, and if any fails it rolls
the batch back and reports why (a *PreconditionError, ErrNotInteger or
ErrInvalidCommand). The log entry is consumed either way.

# Versions and expiry

The version of a key is the Raft index of the command that last wrote it, so
versions are unique and grow with the log; version 0 means "absent" in
preconditions. Expiry times are absolute unix milliseconds (0: never). A key
whose expiry is at or before a command's NowUnixMs, or a read's nowUnixMs, is
absent to that command or read (lazy expiry), but stays stored, and counted by
Len, until a command removes or overwrites it. The leader's active-expiry loop
proposes OpExpire for such keys, so every replica drops them at the same index.

# Invariants

  - AppliedIndex only grows (Restore excepted) and every stored version is in
    [1, AppliedIndex].
  - Stored keys are non-empty and at most 64 KiB (maxKeyBytes), values at
    most 64 MiB (maxValueBytes): Apply enforces the limits Restore checks, so
    a replica can always restore its own snapshot.
  - Stored entries are never modified in place, only replaced: snapshots share
    them.

# Concurrency

An Engine is not safe for concurrent use. The caller serialises Apply,
Restore and Snapshot (which marks the tree as shared) against every other
call. Any number of Get, Scan, Len, AppliedIndex and Digest calls may run
concurrently with each other: they do not mutate anything. A *Snapshot is
immutable: its methods may run on any goroutine, concurrently with anything,
including Apply on the Engine it came from (hashicorp/raft persists snapshots
while the FSM keeps applying).

# Command encoding

AppendCommand and DecodeCommand define the bytes of a Raft log entry:

	byte    format version (1)
	varint  NowUnixMs
	uvarint mutation count (at most 10,000: maxMutations)
	per mutation:
	  byte    op
	  byte    flags: 1 IfAbsent, 2 Value, 4 Delta, 8 TTLMs, 16 IfVersion
	  uvarint key length, key bytes
	  uvarint value length, value bytes   if flag 2
	  varint  Delta                       if flag 4
	  varint  TTLMs                       if flag 8
	  uvarint IfVersion                   if flag 16

Varints are encoding/binary's (zig-zag for signed values). A flag is set iff
its field is non-zero, and varints must be minimal, so each command has exactly
one encoding and DecodeCommand accepts nothing else.

# Snapshot format

Snapshot.WriteTo writes, and Engine.Restore reads:

	"WISPSNAP"  magic
	byte        format version (1)
	uvarint     applied index
	uvarint     entry count
	per entry, keys strictly ascending:
	  uvarint key length, uvarint value length, key bytes, value bytes,
	  uvarint version, uvarint expiry (unix ms, 0: none)
	4 bytes     CRC-32C (Castagnoli) of everything before it, little-endian

Restore checks every field and the checksum, and requires the stream to end
right after it.
*/
package engine
