package raftgroup

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/wisp-db/wisp/engine"
)

// fsm adapts engine.Engine to raft.BatchingFSM.
//
// Apply, Snapshot and Restore are called by raft's FSM goroutine only; reads
// come from any goroutine and hold mu for reading.
type fsm struct {
	mu  sync.RWMutex
	eng *engine.Engine // guarded by mu; replaced whole by Restore

	// applied is the highest log index handed to the engine (commands) or seen
	// (configuration entries). Written by the FSM goroutine, read by anyone.
	applied atomic.Uint64
	// clock is the engine's ClockUnixMs, for readers that must not take
	// the engine lock for it.
	clock atomic.Int64

	changeMu sync.Mutex
	changed  chan struct{} // guarded by changeMu: closed at the next apply or restore; nil until asked for
}

// changes returns a channel closed at the next apply or restore.
func (f *fsm) changes() <-chan struct{} {
	f.changeMu.Lock()
	defer f.changeMu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// signal wakes whoever waits on changes.
func (f *fsm) signal() {
	f.changeMu.Lock()
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	f.changeMu.Unlock()
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM() *fsm { return &fsm{eng: engine.New()} }

// ApplyBatch applies committed entries in order under one write lock. Each
// response is an engine.Result.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var last uint64
	f.mu.Lock()
	for i, l := range logs {
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		if engine.IsPack(l.Data) {
			cmds, err := engine.DecodePack(l.Data)
			if err != nil {
				// As below: consume the index, report the corruption.
				res := f.eng.Apply(l.Index, &engine.Command{})
				res.Err = fmt.Errorf("decode entry %d: %w", l.Index, err)
				out[i] = res
				continue
			}
			out[i] = f.eng.ApplyPacked(l.Index, cmds)
			continue
		}
		cmd, err := engine.DecodeCommand(l.Data)
		if err != nil {
			// Only leaders encode entries, so this is a bug or corruption.
			// Consume the index so replicas stay in step, and report it.
			cmd = engine.Command{}
			res := f.eng.Apply(l.Index, &cmd)
			res.Err = fmt.Errorf("decode entry %d: %w", l.Index, err)
			out[i] = res
			continue
		}
		out[i] = f.eng.Apply(l.Index, &cmd)
	}
	clock := f.eng.ClockUnixMs()
	f.mu.Unlock()
	if last != 0 {
		f.applied.Store(last)
	}
	f.clock.Store(clock)
	f.signal()
	return out
}

// Apply applies one committed entry.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// Snapshot takes an O(1) copy-on-write view of the engine. Raft persists it
// on another goroutine while applying continues.
//
// Taking the view writes to the engine's tree (tidwall/btree's Copy), so it
// holds the write lock, briefly.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	s := f.eng.Snapshot()
	f.mu.Unlock()
	return &fsmSnapshot{snap: s}, nil
}

// Restore replaces the state with a snapshot's. It builds a fresh engine off
// the lock, streaming, and swaps it in, so reads are not blocked meanwhile.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	eng := engine.New()
	if err := eng.Restore(bufio.NewReaderSize(rc, 1<<16)); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.eng = eng
	f.mu.Unlock()
	f.applied.Store(eng.AppliedIndex())
	if c := eng.ClockUnixMs(); c > f.clock.Load() {
		f.clock.Store(c)
	}
	f.signal()
	return nil
}

// read runs fn with the engine under the read lock.
func (f *fsm) read(fn func(*engine.Engine)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.eng)
}

type fsmSnapshot struct{ snap *engine.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<16)
	if _, err := s.snap.WriteTo(w); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
