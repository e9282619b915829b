/*
Package engine is one replica's key-value state machine. Raft hands it the
committed log in order; every replica that applies the same entries holds the
same state, byte for byte, and returns the same results.

The engine owns the keyspace: an ordered map (a copy-on-write B-tree) from key
to value, version and expiry, with a second B-tree indexing the keys that
have an expiry by expiry time; and a small settings map beside it. It does no
I/O and has no goroutines, clock or randomness: commands carry everything
(the leader stamps NowUnixMs into each one), and output never depends on map
iteration order.

# Commands

A Command is a batch of mutations (put, delete, increment, expire, set ttl,
persist, evict, set setting) applied atomically at one Raft index:
Engine.Apply checks each mutation in order, the later ones seeing the effects
of the earlier ones, and if any fails it rolls the batch back and reports why
(a *PreconditionError, ErrNotInteger, ErrInvalidCommand or ErrMemoryFull).
The log entry is consumed either way.

# Versions and expiry

The version of a key is the Raft index of the command that last wrote it, so
versions are unique and grow with the log; version 0 means "absent" in
preconditions. Expiry times are absolute unix milliseconds (0: never). A key
whose expiry is at or before a command's NowUnixMs, or a read's nowUnixMs, is
absent to that command or read (lazy expiry), but stays stored, and counted by
Len and MemoryUsed, until a command removes or overwrites it. The leader's
active-expiry loop reads Engine.Expired (the TTL index, earliest first) and
proposes OpExpire for those keys, so every replica drops them at the same
index. OpSetTTL and OpPersist rewrite a live key's expiry, and its version.

# Memory and eviction

MemoryUsed estimates the Go heap the stored keys cost. It is kept up to date
on every write, delete, rollback and restore, never by walking the tree, as
the sum over the stored keys of

	footprint = bufferBytes(len(key) + len(value))   key and value share one buffer
	          + 48                                   the entry: size class of its 48 bytes
	          + 48                                   its 32-byte slot in the key tree
	          + 48 if the key has an expiry          its 32-byte item in the TTL index

where bufferBytes rounds up to the Go runtime's malloc size class (a table
copied from the runtime, checked against it by TestAllocBytes; whole 8 KiB
pages above 32 KiB; below 16 bytes, the share of a 16-byte tiny-allocator
block), and a tree item's 48 bytes are its 32 bytes at the fill of about 2/3
that random-order inserts leave in a B-tree, plus node overhead (measured
48.5). For a million random-order keys of 16 bytes with 100-byte values the
estimate is within 1% of the measured heap (TestMemoryCalibration,
BenchmarkMemoryPerKey: 224 bytes per key; Redis 7.0 takes 200). Inserts in
ascending order, and Restore (which loads in key order), leave tree leaves
half full: about 20 bytes per tree item more than counted (8% more heap than
counted for that shape, 25% for 8-byte keys and values with an expiry). The
settings map and garbage left for the collector are not counted.

A stored key owns its memory: Apply copies the key and value out of the
command, whose byte fields alias the Raft entry it was decoded from, into
the one buffer the formula counts, and Restore reads each entry into its own
buffer. So a surviving key never keeps its entry, or the other values packed
into it, alive (TestLargeValuesOwnTheirMemory: 64 KiB values from 8-command
packs, three in four deleted, heap within 1% of MemoryUsed). What the rest
of the process holds for recent writes, the Raft log cache and transport
buffers, is bounded outside the engine (docs/BENCHMARKS.md, "Memory: budget
vs heap").

A command stamped with a non-zero MaxMemoryBytes (the noeviction policy) fails
with ErrMemoryFull, and changes nothing, if it would leave MemoryUsed above
the budget and above its value before the command: a command that frees
memory always applies. Under the other policies the leader samples keys with
Engine.Sample (uniform positions in the counted key tree, or in the TTL
index), lets the policy choose victims and proposes OpEvict with each
victim's version, so a key rewritten in the meantime survives.

# Access metadata

Each entry carries an LRU stamp (the low 32 bits of an engine-wide logical
access clock, which grows by one per access) and a Redis-style LFU word (a
logarithmic 8-bit counter, starting at 5 for a new key, incremented with
probability 1/((counter-5)*10+1) and decayed by one per idle minute, with the
minute of the last access). Get, Touch and every write that keeps a key
(an overwrite keeps the counter, as in Redis) are accesses; Scan, Sample
and Expired are not, so that scans and sampling do not make keys look used.
The probabilistic increment draws from a splitmix64 of the access clock, not
from a random source. This metadata is each replica's own, not replicated
state: Digest and snapshots leave it out, it decides no result, and a
restored key starts as accessed at restore time with a new key's counter. It
is atomic because reads update it concurrently and snapshots share entries.
LastAccess rebuilds the full clock from the 32-bit stamp, exactly unless the
key went 2^32 accesses without one.

# Settings

OpSetMeta writes a named value (at most 256 names of at most 256 bytes, values
of at most 64 KiB; an empty value deletes) to a settings map replicated beside
the keyspace, read with Engine.Meta and Engine.MetaNames. Settings are not
keys: they have no version or expiry and are invisible to Get, Scan, Sample
and MemoryUsed, so they can always be written, even at the memory budget.

# Invariants

  - AppliedIndex only grows (Restore excepted) and every stored version is in
    [1, AppliedIndex].
  - Stored keys are non-empty and at most 64 KiB (maxKeyBytes), values at
    most 64 MiB (maxValueBytes): Apply enforces the limits Restore checks, so
    a replica can always restore its own snapshot. The settings map keeps to
    its bounds the same way.
  - Stored entries are never modified in place, only replaced, except for
    their atomic access metadata: snapshots share them. The settings map is
    copy-on-write.
  - The TTL index holds exactly the stored keys with an expiry, and
    MemoryUsed is exactly the sum of the stored keys' footprints: Apply and
    its rollback change the key tree only through store and unstore, which
    keep all three in step, and Restore builds all three together.

# Concurrency

An Engine is not safe for concurrent use. The caller serialises Apply,
Restore and Snapshot (which marks the tree as shared) against every other
call. Any number of reads may run concurrently with each other: Get, Touch,
Scan, Sample, Expired, NextExpiry, Len, MemoryUsed, Stats, Meta, MetaNames,
AppliedIndex and Digest. Get and Touch update access metadata, with atomics
only. A *Snapshot is immutable: its methods may run on any goroutine,
concurrently with anything, including Apply on the Engine it came from
(hashicorp/raft persists snapshots while the FSM keeps applying).

# Command encoding

AppendCommand and DecodeCommand define the bytes of a Raft log entry:

	byte    format version: 1, or 2 if MaxMemoryBytes is non-zero
	varint  NowUnixMs
	varint  MaxMemoryBytes                non-zero; format version 2 only
	uvarint mutation count (at most 10,000: maxMutations)
	per mutation:
	  byte    op (1-8)
	  byte    flags: 1 IfAbsent, 2 Value, 4 Delta, 8 TTLMs, 16 IfVersion
	  uvarint key length, key bytes
	  uvarint value length, value bytes   if flag 2
	  varint  Delta                       if flag 4
	  varint  TTLMs                       if flag 8
	  uvarint IfVersion                   if flag 16

Varints are encoding/binary's (zig-zag for signed values). A flag is set iff
its field is non-zero, format version 2 is used iff MaxMemoryBytes is
non-zero, and varints must be minimal, so each command has exactly one
encoding and DecodeCommand accepts nothing else. A command without a budget
encodes as it did before format version 2 existed.

# Snapshot format

Snapshot.WriteTo writes, and Engine.Restore reads:

	"WISPSNAP"  magic
	byte        format version: 1, or 2 if there are settings
	uvarint     applied index
	uvarint     entry count
	per entry, keys strictly ascending:
	  uvarint key length, uvarint value length, key bytes, value bytes,
	  uvarint version, uvarint expiry (unix ms, 0: none)
	format version 2 only:
	  uvarint   setting count (1 to 256)
	  per setting, names strictly ascending:
	    uvarint name length (1 to 256), name bytes,
	    uvarint value length (1 to 64 KiB), value bytes
	4 bytes     CRC-32C (Castagnoli) of everything before it, little-endian

Restore checks every field and the checksum, and requires the stream to end
right after it. An engine without settings writes format version 1, as before
format version 2 existed, so every state has exactly one encoding. Restore
rebuilds the TTL index and MemoryUsed from the entries.
*/
package engine
