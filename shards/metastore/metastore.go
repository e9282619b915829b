// Package metastore keeps the cluster map (shards/meta) in a Raft group: the
// meta group. The group is an ordinary raftgroup.Group; the map is one key
// of its engine, and a change is a compare-and-set of that key: the leader
// reads the map at version v, computes meta.Apply, and proposes a Put of
// the new map on the condition that the key is still at v. Replicas store
// bytes and never run meta.Apply, so they cannot disagree; the condition
// orders changes, and a change made from an older map is refused and
// recomputed. Everything else a Raft group needs (log, snapshots,
// transport, linearizable reads, leadership hand-off, membership changes)
// is raftgroup's, shared with the shards.
//
// The plugin registry's modules (meta.Plugin) are kept beside the map, a
// key each named by the module's SHA-256 (PutModule, Module): the map
// names them by sum, so it stays small.
//
// Why not a state machine of its own? The map is small (kilobytes to a
// few MiB) and changes a few times a minute, so writing it whole per change
// costs nothing that matters, and one kind of Raft group is less code to
// get right than two.
package metastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// mapKey is the engine key that holds the encoded map.
var mapKey = []byte("wisp/meta/map")

// Store reads and changes the cluster map in one replica of the meta
// group. Safe for concurrent use.
type Store struct {
	g *raftgroup.Group

	applyMu sync.Mutex // serialises Apply on this replica, so changes made here do not race each other

	mu      sync.Mutex
	cached  *meta.Map // the decoded map at cachedV; guarded by mu
	cachedV uint64    // guarded by mu
}

// New returns a Store over g, a replica of the meta group.
func New(g *raftgroup.Group) *Store { return &Store{g: g} }

// Map returns the map and its version (the Raft index that wrote it; 0 and
// an empty map before the first change), read at the given level. The
// returned map is shared and must not be modified.
func (s *Store) Map(ctx context.Context, level raftgroup.Consistency) (*meta.Map, uint64, error) {
	var (
		raw     []byte
		version uint64
	)
	err := s.g.Read(ctx, level, func(e *engine.Engine) {
		if it, ok := e.Get(mapKey, s.g.NowUnixMs()); ok {
			version = it.Version
			if !s.isCached(version) {
				raw = bytes.Clone(it.Value)
			}
		}
	})
	if err != nil {
		return nil, 0, err
	}
	if version == 0 {
		return &meta.Map{}, 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cachedV == version {
		return s.cached, version, nil
	}
	m, err := meta.ReadMap(bytes.NewReader(raw))
	if err != nil {
		return nil, 0, fmt.Errorf("metastore: stored map at version %d: %w", version, err)
	}
	if version > s.cachedV {
		s.cached, s.cachedV = m, version
	}
	return m, version, nil
}

func (s *Store) isCached(version uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cachedV == version
}

// maxApplyAttempts bounds the compare-and-set retries of one Apply: each
// retry means another change committed in between, which is rare (one
// Store per replica serialises its own changes; two only race around a
// leader change). A retry first waits attempt × conflictBackoff plus up to
// one more at random, so two racing deciders fall out of step.
const (
	maxApplyAttempts = 16
	conflictBackoff  = 2 * time.Millisecond
)

// Apply makes cmd's change (on the meta group's leader: raftgroup.ErrNotLeader
// elsewhere) and returns the map after it. A command that changes nothing
// (meta.Apply returns the same map) proposes nothing. The errors of
// meta.Apply (meta.ErrConflict, ...) come back as they are.
func (s *Store) Apply(ctx context.Context, cmd *meta.Command) (*meta.Map, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for attempt := 1; ; attempt++ {
		m, version, err := s.Map(ctx, raftgroup.Linearizable)
		if err != nil {
			return nil, err
		}
		next, err := meta.Apply(m, cmd)
		if err != nil {
			return nil, err
		}
		if next == m {
			return m, nil
		}
		var buf bytes.Buffer
		if err := meta.WriteMap(&buf, next); err != nil {
			return nil, err
		}
		put := engine.Mutation{Op: engine.OpPut, Key: mapKey, Value: buf.Bytes(), IfVersion: version, IfAbsent: version == 0}
		res, err := s.g.Propose(ctx, &engine.Command{Mutations: []engine.Mutation{put}})
		if err != nil {
			return nil, err
		}
		var pe *engine.PreconditionError
		switch {
		case res.Err == nil:
			s.mu.Lock()
			if v := res.Mutations[0].Version; v > s.cachedV {
				s.cached, s.cachedV = next, v
			}
			s.mu.Unlock()
			return next, nil
		case errors.As(res.Err, &pe) && attempt < maxApplyAttempts:
			// Changed since it was read: apply cmd to the new map.
			select {
			case <-time.After(time.Duration(attempt)*conflictBackoff + rand.N(conflictBackoff)):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		return nil, fmt.Errorf("metastore: %s: %w", cmd.Op, res.Err)
	}
}

// The plugin registry's modules are kept beside the map, named by their
// SHA-256 (meta.PluginVersion.SHA256): the map holds only their sums and
// sizes, so the map every node is pushed stays small, and a module is
// fetched once by a node that runs it. A module is stored in chunks of
// moduleChunkBytes, each its own Raft entry, then a manifest naming the
// chunk count: a Go guest is megabytes, and one entry that size holds up
// the group's heartbeats on a loaded machine long enough to cost its
// leader its lease (seen under -race with 3 MiB). The manifest is written
// last, so a module whose manifest is there is whole.
const (
	modulePrefix     = "wisp/meta/plugin/"
	moduleChunkBytes = 256 << 10
)

func moduleKey(sum [sha256.Size]byte) []byte {
	return []byte(modulePrefix + hex.EncodeToString(sum[:]))
}

func chunkKey(sum [sha256.Size]byte, i int) []byte {
	return fmt.Appendf(nil, "%s%x/%d", modulePrefix, sum[:], i)
}

// ErrNoModule: the meta group holds no module with the given SHA-256.
var ErrNoModule = errors.New("metastore: no such module")

// PutModule stores wasm under its SHA-256 (on the meta group's leader:
// raftgroup.ErrNotLeader elsewhere) and returns the sum. Storing a module
// that is already there changes nothing, and a PutModule that failed part
// way is finished by the next. Store a module before the OpAddPlugin that
// names it, so that no map names a module it lacks.
func (s *Store) PutModule(ctx context.Context, wasm []byte) ([sha256.Size]byte, error) {
	sum := sha256.Sum256(wasm)
	if len(wasm) == 0 || len(wasm) > meta.MaxPluginModuleBytes {
		return sum, fmt.Errorf("metastore: module of %d bytes: want 1 to %d", len(wasm), meta.MaxPluginModuleBytes)
	}
	var stored bool
	if err := s.g.Read(ctx, raftgroup.Linearizable, func(e *engine.Engine) {
		_, stored = e.Get(moduleKey(sum), s.g.NowUnixMs())
	}); err != nil {
		return sum, err
	}
	if stored {
		return sum, nil
	}
	chunks := 0
	for off := 0; off < len(wasm); off += moduleChunkBytes {
		chunk := wasm[off:min(off+moduleChunkBytes, len(wasm))]
		if err := s.put(ctx, chunkKey(sum, chunks), chunk); err != nil {
			return sum, fmt.Errorf("metastore: put module chunk %d: %w", chunks, err)
		}
		chunks++
	}
	if err := s.put(ctx, moduleKey(sum), binary.BigEndian.AppendUint32(nil, uint32(chunks))); err != nil {
		return sum, fmt.Errorf("metastore: put module manifest: %w", err)
	}
	return sum, nil
}

// put proposes one Put.
func (s *Store) put(ctx context.Context, key, value []byte) error {
	res, err := s.g.Propose(ctx, &engine.Command{Mutations: []engine.Mutation{{Op: engine.OpPut, Key: key, Value: value}}})
	if err != nil {
		return err
	}
	return res.Err
}

// Module returns the module with the given SHA-256, read at the given
// level, or ErrNoModule. Its bytes are checked against the sum.
func (s *Store) Module(ctx context.Context, level raftgroup.Consistency, sum [sha256.Size]byte) ([]byte, error) {
	var (
		wasm  []byte
		found bool
		bad   bool
	)
	err := s.g.Read(ctx, level, func(e *engine.Engine) {
		now := s.g.NowUnixMs()
		it, ok := e.Get(moduleKey(sum), now)
		if !ok {
			return
		}
		found = true
		if len(it.Value) != 4 {
			bad = true
			return
		}
		for i := range int(binary.BigEndian.Uint32(it.Value)) {
			c, ok := e.Get(chunkKey(sum, i), now)
			if !ok || len(wasm)+len(c.Value) > meta.MaxPluginModuleBytes {
				bad = true
				return
			}
			wasm = append(wasm, c.Value...)
		}
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("%w: %x", ErrNoModule, sum)
	case bad || sha256.Sum256(wasm) != sum:
		return nil, fmt.Errorf("metastore: module %x: stored chunks do not make it", sum)
	}
	return wasm, nil
}
