/*
Package raftlog is one node's Raft log store, shared by all the Raft groups
the node hosts, with group commit: appends from every group that arrive
while a write is in flight go into the next single bbolt transaction and
fsync. Each group sees its own raft.LogStore (Store.Group) and, optionally,
its own raft.StableStore (Store.Stable).

Why: with one raft-boltdb file per group, every group pays its own fsync per
append, so the disk's fsyncs are split across groups and each carries few
entries (DESIGN.md, "Many Raft groups on one node"). Here one fsync carries
the entries of every group that was waiting.

# What it owns

A Store owns one bbolt file (go.etcd.io/bbolt) and one goroutine, the
writer, which is the only code that writes the file. Open starts it; Close
stops it, waits for it and closes the file. The Store also owns every
group's span (first and last index), cached in memory: loaded on Open,
changed only by the writer after a commit, so FirstIndex and LastIndex need
no read transaction. Reads (GetLog, stable Get) run their own bbolt read
transactions, concurrently with the writer.

# On-disk layout (format 1)

	meta/format                 = [1]          the layout version; Open refuses others
	logs/<be64 group>/<be64 i>  = entry        group's log entry at index i
	stable/<be64 group>/<key>   = value        group's stable store (Store.Stable)

"be64" is the 8-byte big-endian encoding, so bbolt's byte order is index
order. Each group has its own nested bucket under logs, so no read or
cursor of one group can reach another's entries. bbolt is opened with
NoFreelistSync (like etcd: fewer pages per commit, the freelist is rebuilt
on Open) and the log buckets pack pages to appendFillPercent, since keys
only ever arrive in order.

# Entry encoding (version 1)

	version     u8 = 1
	type        u8              raft.LogType
	flags       u8              bit 0: AppendedAt present; others must be 0
	index       uvarint
	term        uvarint
	appendedAt  varint unix seconds, uvarint nanoseconds < 1e9 (only with flag bit 0)
	data        uvarint length (≤ maxEntryBytes), bytes
	extensions  uvarint length (≤ maxEntryBytes), bytes
	crc         u32 little-endian: CRC-32C (Castagnoli) of all the bytes before it

A 256-byte command takes 280 bytes; encoding costs about 50 ns and no
allocation, decoding one allocation for Data and Extensions together
(BenchmarkEntry). bbolt checksums its meta pages but not data pages, so the CRC is
what catches a damaged entry before it reaches an FSM. AppendedAt keeps its
instant but not its location or monotonic reading. The decoder bounds every
length by maxEntryBytes and by the bytes left, never panics, and wraps
ErrCorrupt; FuzzDecodeLog checks that. A stored entry whose index differs
from its key is also ErrCorrupt. A new layout gets a new version byte.

# Group commit

 1. StoreLogs checks and encodes its entries in the caller's goroutine,
    queues one request for the writer and blocks on it. DeleteRange and
    stable Set queue requests the same way.
 2. The writer takes the first request it finds, then everything else
    already queued, within maxBatchEntries entries and maxBatchBytes bytes
    (a request over the bounds waits for the next commit; one bigger than
    them gets a commit of its own). It applies them, in queue order, in one
    read-write transaction and commits it: bbolt writes the dirty pages,
    fdatasyncs, writes the meta page and fdatasyncs again.
 3. Only then does it publish the new spans and answer every request in the
    batch. Callers that queued meanwhile are in the next commit.

A request the rules below refuse (ErrNotContiguous) is answered with its
error and writes nothing; the rest of its batch commits. If a commit fails,
its whole batch fails and so does every later write: after a failed fsync
nothing is known about what reached the disk (the node must restart and
recover from the file). Close fails what is still queued with ErrClosed,
lets the commit in flight finish and answers its callers with its outcome.

# Invariants

  - An acknowledged entry is durable: StoreLogs returns nil only after the
    transaction holding its entries committed with fsync (unless
    WithNoSync). TestCrash kills a writer with SIGKILL mid-burst and checks
    every acknowledged entry of every group after reopening.
  - A group's log is contiguous: every index in [FirstIndex, LastIndex] has
    an entry and no other does. Open checks it (key count per group). The
    writer keeps it: entries of one call must be consecutive; an append at
    LastIndex+1 (or to an empty log) extends the log; one inside the log
    replaces it from there on (Raft's rule); one after a gap replaces the
    whole log (hashicorp/raft leaves a gap only after a snapshot covering
    everything before it, for example when it crashed between installing a
    snapshot and clearing the log); one before FirstIndex is refused.
    DeleteRange must cover a prefix, a suffix or all of the log; a range
    strictly inside it is refused. Hence the group logs report
    raft.MonotonicLogStore: hashicorp/raft then clears a log after
    installing a snapshot instead of leaving a gap.
  - Requests are applied in the order they were queued. hashicorp/raft
    issues a group's StoreLogs and conflict-truncating DeleteRange from one
    goroutine, one at a time; its compaction (a prefix DeleteRange from the
    snapshot goroutine) may run alongside and commutes with appends.

# Cache

Cache is a raft.LogStore in front of a group's log that serves recent
entries from memory (a leader reads each one back to replicate it, a
follower to apply it), bounded in entries and in bytes: hashicorp/raft's
LogCache bounds only the count, so 1,024 entries of 64 KiB values kept
64 MiB per group outside any memory budget (issue 9). It keeps the newest
contiguous run of entries that fits both bounds, counting each entry's Data
and Extensions capacity plus 128 bytes; an entry over the byte bound is not
cached; entries that do not follow the run (a truncation, a gap) replace
it; DeleteRange drops what it covers. It holds the *raft.Log it was given,
so that Log's bytes must be its own (raftgroup's packs and the transport's
decoded entries are).

# The stable store must be durable before the log

hashicorp/raft persists its current term and vote in the StableStore before
it appends or acknowledges entries of that term: a node that forgets its vote
after a crash may vote twice in one term. So whatever stable store a group
uses must fsync each Set before returning, and must not be opened with
NoSync when the log store syncs. raft-boltdb/v2 with NoSync false does this.
Store.Stable does it by going through the same writer: Set returns after its
commit, and any entry the group stores later commits in the same or a later
transaction.

# Bounds

  - maxBatchEntries (4096) and maxBatchBytes (4 MiB) per commit; a
    DeleteRange counts the keys it deletes.
  - maxQueuedRequests (1024) queued requests; beyond that callers block.
  - maxEntryBytes (32 MiB) for an entry's Data and for its Extensions.
  - Stable keys up to 1 KiB, values up to 1 MiB.
  - Open waits at most openLockTimeout (2 s) for another process's file lock.

A DeleteRange is one request, so compacting a snapshot's worth of entries
delays the commits behind it: BenchmarkCompact measured about 4 ms for 8,192
entries of 256 bytes.

# Measured

	go test -run '^$' -bench BenchmarkAppend -benchtime 20000x -count 2 ./shards/raftlog

2 vCPU shared with other work, fsync on, 64 concurrent appenders, 256-byte
entries. One entry per StoreLogs call: the shared Store made 34,000-78,000
entries per second durable at 1 to 16 groups (about 32 entries per commit),
one raft-boltdb file per group 3,000-5,200 (one per commit), at a tenth to a
twentieth of the CPU per entry. With a hashicorp/raft-like loop per group
that stores everything queued in one call (up to 256 entries), 16 groups
reached 30,000-35,000 per second against 8,700-9,100 for raft-boltdb (1.7
entries per fsync).
*/
package raftlog
