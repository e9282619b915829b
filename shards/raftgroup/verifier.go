package raftgroup

import (
	"context"
	"sync"

	"github.com/hashicorp/raft"
)

// verifier coalesces VerifyLeader calls: all reads waiting when a round
// starts share one heartbeat round to a quorum.
type verifier struct {
	raft *raft.Raft
	stop chan struct{} // the group's; closed before stopAndWait

	mu      sync.Mutex
	waiting []chan error // guarded by mu; reads for the next round
	running bool         // guarded by mu; a round goroutine exists
	stopped bool         // guarded by mu; no new rounds after stopAndWait
	wg      sync.WaitGroup
}

// verify returns nil once a VerifyLeader round that started after the call
// confirmed this replica's leadership.
func (v *verifier) verify(ctx context.Context) error {
	ch := make(chan error, 1)
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return ErrNotLeader
	}
	v.waiting = append(v.waiting, ch)
	if !v.running {
		v.running = true
		v.wg.Add(1)
		go v.run()
	}
	v.mu.Unlock()
	select {
	case err := <-ch:
		if err != nil {
			return ErrNotLeader
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run performs rounds until no read waits. Owned by the Group; it ends on
// its own, or abandons its round when stopped.
func (v *verifier) run() {
	defer v.wg.Done()
	for {
		v.mu.Lock()
		batch := v.waiting
		v.waiting = nil
		if len(batch) == 0 {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		err := waitFuture(v.raft.VerifyLeader(), v.stop)
		for _, ch := range batch {
			ch <- err
		}
	}
}

// stopAndWait refuses new rounds and blocks until the round goroutine has
// exited; the group closes stop first, which abandons the round in flight.
func (v *verifier) stopAndWait() {
	v.mu.Lock()
	v.stopped = true
	v.mu.Unlock()
	v.wg.Wait()
}

// waitFuture waits for f, or until stop is closed. hashicorp/raft v1.8.0 can
// lose a future queued just as it shuts down (VerifyLeader and Barrier
// futures sit in a buffered channel nobody drains any more), so a bare
// f.Error() may block forever. The goroutine left waiting on such a lost
// future is the price; it is one per lost future, only at shutdown.
func waitFuture(f raft.Future, stop <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		return err
	case <-stop:
		return raft.ErrRaftShutdown
	}
}
