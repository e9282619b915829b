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

	mu      sync.Mutex
	waiting []chan error // guarded by mu; reads for the next round
	running bool         // guarded by mu; a round goroutine exists
	wg      sync.WaitGroup
}

// verify returns nil once a VerifyLeader round that started after the call
// confirmed this replica's leadership.
func (v *verifier) verify(ctx context.Context) error {
	ch := make(chan error, 1)
	v.mu.Lock()
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

// run performs rounds until no read waits. Owned by the Group; it ends on its
// own, and on shutdown VerifyLeader fails fast.
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
		err := v.raft.VerifyLeader().Error()
		for _, ch := range batch {
			ch <- err
		}
	}
}

// wait blocks until the round goroutine has exited.
func (v *verifier) wait() { v.wg.Wait() }
