package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"

	"github.com/tidwall/btree"
)

// Limits shared by Apply, DecodeCommand and Restore. Apply enforces the same
// bounds as Restore so that a replica can always restore its own snapshot.
const (
	// maxKeyBytes bounds a key: keys are compared and copied on every access.
	maxKeyBytes = 64 << 10
	// maxValueBytes bounds a value: one value must fit in one Raft entry.
	maxValueBytes = 64 << 20
	// maxMutations bounds the mutations in one command, and so the work and
	// the undo log of one Apply.
	maxMutations = 10000
)

// Engine is one replica's key-value state machine: an ordered keyspace where
// every key carries the version (Raft index) that last wrote it and an
// optional absolute expiry time, plus a small settings map. The zero value
// is not usable; call New.
//
// See the package documentation for the concurrency contract.
type Engine struct {
	// tree holds every stored key, including expired keys that no command
	// has removed yet. Owned by the goroutine that calls Apply.
	// Invariant: no slot is modified after insertion, and no entry except
	// its access metadata (Snapshot views share them); keys are non-empty
	// and at most maxKeyBytes, values at most maxValueBytes, and
	// 0 < version <= applied.
	tree *btree.BTreeG[slot]
	// ttl indexes the volatile keys by expiry. Owned like tree, but never
	// shared with a Snapshot. Invariant: it holds
	// ttlItem{s.e.expiresAtUnixMs, s.key} for exactly the slots s of tree
	// with an expiry.
	ttl *btree.BTreeG[ttlItem]
	// meta is the settings map, sorted by name. Owned like tree, and
	// copy-on-write: a write replaces the slice, so Snapshot views and
	// rollback keep old ones. Invariant: names strictly ascending, of 1 to
	// maxMetaNameBytes bytes; values of 1 to maxMetaValueBytes bytes; at
	// most maxMetaSettings entries; nil when empty.
	meta []metaEntry
	// applied is the index of the last log entry given to Apply (accepted or
	// rejected) or restored. Invariant: it only grows, except by Restore.
	applied uint64
	// clockUnixMs is the largest NowUnixMs of any command applied since New
	// or Restore: the cluster's time as the log has seen it.
	clockUnixMs int64
	// memoryUsed is MemoryUsed. Owned like tree. Invariant: it equals the
	// sum of footprint over tree, kept in step by store and unstore.
	memoryUsed int64

	// expiredTotal and evictedTotal count the keys removed by OpExpire and
	// OpEvict since New or Restore: per-replica metrics, not replicated
	// state. Owned like tree.
	expiredTotal, evictedTotal uint64
	// clock is the access clock: it grows by one per access (Get, Touch,
	// and writes), and its low 32 bits stamp the entry accessed. Not
	// replicated state. Updated atomically: concurrent Get calls advance it.
	clock atomic.Uint64

	// undo records the writes of the current Apply, when it may need to
	// roll back after a write (see Apply), so that a failing mutation can
	// undo them. Scratch space: empty between calls.
	undo []undoRecord
	// recording says whether writes append to undo.
	recording bool
}

// slot is what the tree stores: the key inline, for cheap comparisons, and
// the rest behind a pointer.
type slot struct {
	key []byte
	e   *entry
}

// entry is the state of one stored key. value, version and expiry are
// immutable; lru and lfu are the key's access metadata (see access.go),
// which is not replicated state and changes on reads, so it is atomic.
// 48 bytes, one malloc size class: TestEntrySize keeps it there.
type entry struct {
	value           []byte
	version         uint64
	expiresAtUnixMs int64 // 0: no expiry
	lru             atomic.Uint32
	lfu             atomic.Uint32
}

// live reports whether the entry has not expired at nowUnixMs.
func (e *entry) live(nowUnixMs int64) bool {
	return e.expiresAtUnixMs == 0 || e.expiresAtUnixMs > nowUnixMs
}

// undoRecord restores one key: prev is reinserted if existed, else prev.key
// is deleted.
type undoRecord struct {
	prev    slot
	existed bool
}

// applyState is what Apply restores besides the keys when it rolls back.
type applyState struct {
	meta                       []metaEntry
	memoryUsed                 int64
	expiredTotal, evictedTotal uint64
}

func lessSlot(a, b slot) bool { return bytes.Compare(a.key, b.key) < 0 }

func newTree() *btree.BTreeG[slot] {
	// No locks: the Engine's callers serialise writes, and tidwall/btree's
	// read paths do not mutate the tree.
	return btree.NewBTreeGOptions(lessSlot, btree.Options{NoLocks: true})
}

// newSlot copies key and value into one fresh allocation, so that a slot
// never aliases the caller's (often the Raft log's) memory and never keeps
// an older value alive. The entry's access metadata is zero: the caller
// stamps it.
func newSlot(key, value []byte, version uint64, expiresAtUnixMs int64) slot {
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	return slot{
		key: buf[:len(key):len(key)],
		e:   &entry{value: buf[len(key):], version: version, expiresAtUnixMs: expiresAtUnixMs},
	}
}

// New returns an empty Engine at applied index 0.
func New() *Engine {
	return &Engine{tree: newTree(), ttl: newTTLIndex()}
}

// ClockUnixMs returns the largest NowUnixMs among the commands applied since
// New or Restore (0 if none). Leaders stamp time into commands, so this is
// the latest time any leader has vouched for: callers take the later of it
// and their own clock, so that time never runs backwards across a leader
// change to a node whose clock is behind, and a key expired by one leader's
// clock stays expired.
func (e *Engine) ClockUnixMs() int64 { return e.clockUnixMs }

// AppliedIndex returns the index of the last log entry given to Apply
// (whether accepted or rejected) or restored by Restore; 0 for a new Engine.
func (e *Engine) AppliedIndex() uint64 {
	return e.applied
}

// Len returns the number of stored keys, including expired keys that no
// command has removed yet.
func (e *Engine) Len() int {
	return e.tree.Len()
}

// Apply applies the command at log index index, which must be greater than
// AppliedIndex. The mutations apply in order, each seeing the effects of the
// ones before it, and atomically: if any fails, nothing changes and
// Result.Err is a *PreconditionError, or wraps ErrNotInteger,
// ErrInvalidCommand or ErrMemoryFull. Either way AppliedIndex becomes index,
// because the log entry was consumed; only an index not above AppliedIndex
// leaves the Engine untouched.
//
// Every mutation that succeeds gets Version index. A key whose expiry time is
// at or before cmd.NowUnixMs is absent for every mutation (OpEvict excepted:
// it removes the stored key at its version, expired or not).
//
// The whole command is checked for validity before any mutation runs, so an
// invalid mutation wins over an earlier failing precondition. Invalid are: an
// unknown op, an empty key or one over 64 KiB, a value over 64 MiB, a
// negative TTLMs, a put or OpSetTTL whose expiry NowUnixMs+TTLMs is not in
// [1, MaxInt64], OpSetTTL without a TTLMs, OpEvict without an IfVersion,
// IfAbsent on anything but a put or with IfVersion, OpSetMeta with an
// IfVersion, a setting name over 256 bytes or a value over 64 KiB, a
// negative MaxMemoryBytes, and more than 10,000 mutations. One check needs
// the state and runs in order: an OpSetMeta that would add a 257th setting
// is invalid. Otherwise TTLMs, Value and Delta are ignored by the ops they do
// not belong to.
//
// When cmd.MaxMemoryBytes is non-zero and the command, having applied, would
// leave MemoryUsed both above it and above its value before the command, the
// command rolls back and fails with ErrMemoryFull. So a command that does
// not grow memory (deletes, expiry, eviction, shrinking puts) always
// applies, and the settings map, which MemoryUsed does not count, can
// always be written.
//
// Apply copies what it keeps: cmd may alias a buffer the caller reuses.
func (e *Engine) Apply(index uint64, cmd *Command) Result {
	if index <= e.applied {
		return Result{Err: fmt.Errorf("engine: apply %d: %w: index not above applied index %d", index, ErrInvalidCommand, e.applied)}
	}
	e.applied = index
	return e.applyAt(index, cmd)
}

// ApplyPacked applies cmds, independent commands that a leader packed into
// the one log entry at index (see AppendPack). Each command applies, or
// fails and rolls back, on its own exactly as Apply would apply it; all get
// Version index. Because a key's version must name one write, no key may be
// written by two commands of one pack: a command that writes a key an
// earlier command of the pack wrote fails with ErrInvalidCommand (packers
// never build such packs). AppliedIndex becomes index once.
func (e *Engine) ApplyPacked(index uint64, cmds []Command) []Result {
	out := make([]Result, len(cmds))
	if index <= e.applied {
		for i := range out {
			out[i].Err = fmt.Errorf("engine: apply %d: %w: index not above applied index %d", index, ErrInvalidCommand, e.applied)
		}
		return out
	}
	e.applied = index
	var written map[string]struct{}
	if len(cmds) > 1 {
		written = make(map[string]struct{}, len(cmds))
	}
	for i := range cmds {
		if written != nil && writesAny(&cmds[i], written) {
			out[i].Err = fmt.Errorf("engine: apply %d: pack command %d: %w: writes a key an earlier command of the pack wrote", index, i, ErrInvalidCommand)
			continue
		}
		out[i] = e.applyAt(index, &cmds[i])
		if written != nil && out[i].Err == nil {
			for _, m := range cmds[i].Mutations {
				written[string(m.Key)] = struct{}{}
			}
		}
	}
	return out
}

// writesAny reports whether cmd touches a key in keys.
func writesAny(cmd *Command, keys map[string]struct{}) bool {
	for _, m := range cmd.Mutations {
		if _, ok := keys[string(m.Key)]; ok {
			return true
		}
	}
	return false
}

// applyAt applies cmd at index, which the caller has checked and recorded.
func (e *Engine) applyAt(index uint64, cmd *Command) Result {
	if cmd != nil && cmd.NowUnixMs > e.clockUnixMs {
		e.clockUnixMs = cmd.NowUnixMs
	}
	if err := validate(cmd); err != nil {
		return Result{Err: fmt.Errorf("engine: apply %d: %w", index, err)}
	}
	results := make([]MutationResult, len(cmd.Mutations))
	// A single mutation checks everything before it writes, so it needs an
	// undo log only if the memory check may fail after the write.
	e.recording = len(cmd.Mutations) > 1 || cmd.MaxMemoryBytes != 0
	before := applyState{meta: e.meta, memoryUsed: e.memoryUsed, expiredTotal: e.expiredTotal, evictedTotal: e.evictedTotal}
	for i := range cmd.Mutations {
		r, err := e.mutate(index, cmd.NowUnixMs, i, &cmd.Mutations[i])
		if err != nil {
			e.rollback(&before)
			return Result{Err: err}
		}
		results[i] = r
	}
	if used := e.memoryUsed; cmd.MaxMemoryBytes != 0 && used > cmd.MaxMemoryBytes && used > before.memoryUsed {
		e.rollback(&before)
		return Result{Err: fmt.Errorf("engine: apply %d: %w: the command would use %d bytes (from %d), above the budget of %d",
			index, ErrMemoryFull, used, before.memoryUsed, cmd.MaxMemoryBytes)}
	}
	clear(e.undo)
	e.undo = e.undo[:0]
	return Result{Mutations: results}
}

// validate checks what does not depend on the stored state.
func validate(cmd *Command) error {
	if cmd == nil {
		return fmt.Errorf("%w: nil command", ErrInvalidCommand)
	}
	if len(cmd.Mutations) > maxMutations {
		return fmt.Errorf("%w: %d mutations exceed %d", ErrInvalidCommand, len(cmd.Mutations), maxMutations)
	}
	if cmd.MaxMemoryBytes < 0 {
		return fmt.Errorf("%w: negative memory budget %d", ErrInvalidCommand, cmd.MaxMemoryBytes)
	}
	for i := range cmd.Mutations {
		m := &cmd.Mutations[i]
		var problem string
		switch {
		case m.Op < OpPut || m.Op > lastOp:
			problem = fmt.Sprintf("unknown op %d", m.Op)
		case len(m.Key) == 0:
			problem = "empty key"
		case len(m.Key) > maxKeyBytes:
			problem = fmt.Sprintf("key of %d bytes exceeds %d", len(m.Key), maxKeyBytes)
		case len(m.Value) > maxValueBytes:
			problem = fmt.Sprintf("value of %d bytes exceeds %d", len(m.Value), maxValueBytes)
		case m.TTLMs < 0:
			problem = fmt.Sprintf("negative ttl %d ms", m.TTLMs)
		case m.Op == OpSetTTL && m.TTLMs == 0:
			problem = "OpSetTTL without a ttl"
		case (m.Op == OpPut || m.Op == OpSetTTL) && m.TTLMs > 0 && (cmd.NowUnixMs > math.MaxInt64-m.TTLMs || cmd.NowUnixMs+m.TTLMs <= 0):
			// Expiry 0 means "never"; an expiry at or below zero, or
			// beyond int64, cannot be stored faithfully.
			problem = fmt.Sprintf("ttl %d ms at now %d ms is out of range", m.TTLMs, cmd.NowUnixMs)
		case m.IfAbsent && m.Op != OpPut:
			problem = "IfAbsent on a non-put op"
		case m.IfAbsent && m.IfVersion != 0:
			problem = "IfAbsent together with IfVersion"
		case m.Op == OpEvict && m.IfVersion == 0:
			problem = "OpEvict without IfVersion"
		case m.Op == OpSetMeta && m.IfVersion != 0:
			problem = "IfVersion on OpSetMeta: settings have no versions"
		case m.Op == OpSetMeta && len(m.Key) > maxMetaNameBytes:
			problem = fmt.Sprintf("setting name of %d bytes exceeds %d", len(m.Key), maxMetaNameBytes)
		case m.Op == OpSetMeta && len(m.Value) > maxMetaValueBytes:
			problem = fmt.Sprintf("setting value of %d bytes exceeds %d", len(m.Value), maxMetaValueBytes)
		default:
			continue
		}
		return fmt.Errorf("mutation %d: %w: %s", i, ErrInvalidCommand, problem)
	}
	return nil
}

// mutate applies mutation i of a command at index.
func (e *Engine) mutate(index uint64, now int64, i int, m *Mutation) (MutationResult, error) {
	r := MutationResult{Version: index}
	switch m.Op {
	case OpPut:
		if m.IfVersion != 0 || m.IfAbsent {
			if err := e.checkPrecondition(now, i, m); err != nil {
				return r, err
			}
		}
		var expiresAtUnixMs int64
		if m.TTLMs > 0 {
			expiresAtUnixMs = now + m.TTLMs // validate checked the range
		}
		e.set(newSlot(m.Key, m.Value, index, expiresAtUnixMs), now)

	case OpDelete:
		if m.IfVersion != 0 {
			if err := e.checkPrecondition(now, i, m); err != nil {
				return r, err
			}
		}
		if prev, ok := e.delete(m.Key); ok {
			r.Existed = prev.e.live(now)
		}

	case OpIncrement:
		cur, ok := e.tree.Get(slot{key: m.Key})
		if err := precondition(now, i, m, cur, ok); err != nil {
			return r, err
		}
		var n, expiresAtUnixMs int64
		if ok && cur.e.live(now) {
			var err error
			if n, err = strconv.ParseInt(string(cur.e.value), 10, 64); err != nil {
				return r, fmt.Errorf("engine: apply %d: mutation %d: key %q: %w", index, i, m.Key, ErrNotInteger)
			}
			expiresAtUnixMs = cur.e.expiresAtUnixMs
		}
		sum := n + m.Delta
		if (m.Delta > 0 && sum < n) || (m.Delta < 0 && sum > n) {
			return r, fmt.Errorf("engine: apply %d: mutation %d: key %q: %d%+d overflows: %w", index, i, m.Key, n, m.Delta, ErrNotInteger)
		}
		var digits [20]byte
		e.set(newSlot(m.Key, strconv.AppendInt(digits[:0], sum, 10), index, expiresAtUnixMs), now)
		r.Counter = sum

	case OpExpire:
		cur, ok := e.tree.Get(slot{key: m.Key})
		if ok && !cur.e.live(now) && (m.IfVersion == 0 || m.IfVersion == cur.e.version) {
			e.delete(cur.key)
			e.expiredTotal++
			r.Existed = true
		}

	case OpSetTTL, OpPersist:
		cur, ok := e.tree.Get(slot{key: m.Key})
		if err := precondition(now, i, m, cur, ok); err != nil {
			return r, err
		}
		if !ok || !cur.e.live(now) {
			break
		}
		var expiresAtUnixMs int64
		if m.Op == OpSetTTL {
			expiresAtUnixMs = now + m.TTLMs // validate checked the range
		}
		// The key and value bytes are immutable: share them.
		e.set(slot{key: cur.key, e: &entry{value: cur.e.value, version: index, expiresAtUnixMs: expiresAtUnixMs}}, now)
		r.Existed = true

	case OpEvict:
		cur, ok := e.tree.Get(slot{key: m.Key})
		if ok && cur.e.version == m.IfVersion {
			e.delete(cur.key)
			e.evictedTotal++
			r.Existed = true
		}

	case OpSetMeta:
		existed, err := e.setMeta(m.Key, m.Value)
		if err != nil {
			return r, fmt.Errorf("engine: apply %d: mutation %d: %w", index, i, err)
		}
		r.Existed = existed

	default:
		panic(fmt.Sprintf("engine: op %d passed validation", m.Op))
	}
	return r, nil
}

// checkPrecondition looks m.Key up and checks m's preconditions against it.
func (e *Engine) checkPrecondition(now int64, i int, m *Mutation) error {
	cur, ok := e.tree.Get(slot{key: m.Key})
	return precondition(now, i, m, cur, ok)
}

// precondition checks IfVersion and IfAbsent of mutation i against cur, the
// stored slot for its key if ok.
func precondition(now int64, i int, m *Mutation, cur slot, ok bool) error {
	var version uint64 // of the live key; 0: absent
	if ok && cur.e.live(now) {
		version = cur.e.version
	}
	if (m.IfAbsent && version != 0) || (m.IfVersion != 0 && m.IfVersion != version) {
		return &PreconditionError{Key: bytes.Clone(m.Key), CurrentVersion: version, Index: i}
	}
	return nil
}

// set stores s, a write at now, recording what it replaced. The write is an
// access: if it replaces a key live at now, s continues that key's access
// counter (an overwrite keeps it, as in Redis); otherwise s starts as a new
// key.
func (e *Engine) set(s slot, now int64) {
	prev, replaced := e.store(s)
	if replaced && prev.e.live(now) {
		e.access(s.e, prev.e, now)
	} else {
		e.created(s.e, now)
	}
	if e.recording {
		if !replaced {
			prev = slot{key: s.key}
		}
		e.undo = append(e.undo, undoRecord{prev: prev, existed: replaced})
	}
}

// delete removes key, recording what it removed.
func (e *Engine) delete(key []byte) (slot, bool) {
	prev, ok := e.unstore(key)
	if ok && e.recording {
		e.undo = append(e.undo, undoRecord{prev: prev, existed: true})
	}
	return prev, ok
}

// store inserts or replaces s in the tree and returns what it replaced,
// keeping the TTL index and memoryUsed in step. Every change to the tree
// goes through store or unstore.
func (e *Engine) store(s slot) (slot, bool) {
	prev, replaced := e.tree.Set(s)
	if replaced {
		e.unindex(prev)
	}
	e.memoryUsed += s.footprint()
	if s.e.expiresAtUnixMs != 0 {
		e.ttl.Set(ttlItem{expiresAtUnixMs: s.e.expiresAtUnixMs, key: s.key})
	}
	return prev, replaced
}

// unstore removes key from the tree and returns what it removed, keeping
// the TTL index and memoryUsed in step.
func (e *Engine) unstore(key []byte) (slot, bool) {
	prev, ok := e.tree.Delete(slot{key: key})
	if ok {
		e.unindex(prev)
	}
	return prev, ok
}

// unindex takes s, just removed from the tree, out of the TTL index and
// memoryUsed.
func (e *Engine) unindex(s slot) {
	e.memoryUsed -= s.footprint()
	if s.e.expiresAtUnixMs != 0 {
		if _, ok := e.ttl.Delete(ttlItem{expiresAtUnixMs: s.e.expiresAtUnixMs, key: s.key}); !ok {
			panic(fmt.Sprintf("engine: volatile key %q (expiry %d) missing from the TTL index", s.key, s.e.expiresAtUnixMs))
		}
	}
}

// rollback undoes the writes recorded since Apply began, newest first, and
// restores what before saved.
func (e *Engine) rollback(before *applyState) {
	for i := len(e.undo) - 1; i >= 0; i-- {
		u := e.undo[i]
		if u.existed {
			e.store(u.prev)
		} else {
			e.unstore(u.prev.key)
		}
	}
	clear(e.undo)
	e.undo = e.undo[:0]
	if e.memoryUsed != before.memoryUsed {
		panic(fmt.Sprintf("engine: rollback left memoryUsed at %d, want %d", e.memoryUsed, before.memoryUsed))
	}
	e.meta, e.expiredTotal, e.evictedTotal = before.meta, before.expiredTotal, before.evictedTotal
}

// Get returns the live item stored at key at time nowUnixMs, and records the
// access (see Touch). The item's slices are shared with the Engine and must
// not be modified.
func (e *Engine) Get(key []byte, nowUnixMs int64) (Item, bool) {
	s, ok := e.tree.Get(slot{key: key})
	if !ok || !s.e.live(nowUnixMs) {
		return Item{}, false
	}
	e.access(s.e, s.e, nowUnixMs)
	return s.item(), true
}

func (s slot) item() Item {
	return Item{Key: s.key, Value: s.e.value, Version: s.e.version, ExpiresAtUnixMs: s.e.expiresAtUnixMs}
}

// Scan returns, in ascending key order, at most limit live items at time
// nowUnixMs whose keys start with prefix and are at least start. If more
// such items exist, next is the key to pass as start to continue (the last
// returned key followed by a zero byte); otherwise next is nil. A limit of 0
// or less returns nothing. The items' slices are shared with the Engine and
// must not be modified.
//
// Scan does not record accesses: a scan visits keys in key order, not by
// interest, and would make every key it passes look recently used to the
// eviction policy.
func (e *Engine) Scan(start, prefix []byte, limit int, nowUnixMs int64) (items []Item, next []byte) {
	if limit <= 0 {
		return nil, nil
	}
	from := start
	if bytes.Compare(prefix, start) > 0 {
		from = prefix
	}
	it := e.tree.Iter()
	defer it.Release()
	for ok := it.Seek(slot{key: from}); ok; ok = it.Next() {
		s := it.Item()
		if !bytes.HasPrefix(s.key, prefix) {
			break
		}
		if !s.e.live(nowUnixMs) {
			continue
		}
		if len(items) == limit {
			last := items[len(items)-1].Key
			next = append(append(make([]byte, 0, len(last)+1), last...), 0)
			break
		}
		items = append(items, s.item())
	}
	return items, next
}

// Digest returns a SHA-256 over the applied index, every stored entry (key,
// value, version, expiry) in key order, expired ones included, and the
// settings map. Two replicas at the same applied index have equal digests
// iff their states are equal; access metadata and Stats counters are not
// state. It costs a walk over the whole keyspace.
func (e *Engine) Digest() [32]byte {
	h := sha256.New()
	var buf []byte
	buf = append(buf, "wisp engine digest v1\x00"...)
	buf = binary.BigEndian.AppendUint64(buf, e.applied)
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.tree.Len()))
	h.Write(buf)
	e.tree.Scan(func(s slot) bool {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s.key)))
		buf = append(buf, s.key...)
		buf = binary.AppendUvarint(buf, uint64(len(s.e.value)))
		h.Write(buf)
		h.Write(s.e.value)
		buf = binary.BigEndian.AppendUint64(buf[:0], s.e.version)
		buf = binary.BigEndian.AppendUint64(buf, uint64(s.e.expiresAtUnixMs))
		h.Write(buf)
		return true
	})
	// The entry count delimits the entries, so the settings can follow
	// them; none adds nothing, which keeps the digests of engines without
	// settings what they were before settings existed.
	if len(e.meta) > 0 {
		buf = binary.BigEndian.AppendUint64(buf[:0], uint64(len(e.meta)))
		for _, m := range e.meta {
			buf = binary.AppendUvarint(buf, uint64(len(m.name)))
			buf = append(buf, m.name...)
			buf = binary.AppendUvarint(buf, uint64(len(m.value)))
			buf = append(buf, m.value...)
		}
		h.Write(buf)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
