package plugins

import (
	"context"
	"fmt"
	"sync"
)

// pool holds a plugin's instances: at most cap(slots) exist, and each runs
// one call at a time. A caller takes a slot, then an idle instance or a new
// one; it gives both back with put. The pool's goroutines (refill) each hold
// a slot while they run, so close, which takes every slot, waits for them.
type pool struct {
	// slots has one element per instance in use (or being created); its
	// capacity is the bound, WithInstancesMax.
	slots chan struct{}
	// create makes a new instance.
	create func(ctx context.Context) (*instance, error)
	// done is closed by close: waiting callers give up.
	done chan struct{}

	mu     sync.Mutex
	idle   []*instance // guarded by mu
	closed bool        // guarded by mu
	// live counts the instances made and not yet closed. Invariant: live
	// <= cap(slots).
	live int // guarded by mu
}

func newPool(instancesMax int, create func(ctx context.Context) (*instance, error)) *pool {
	p := &pool{slots: make(chan struct{}, instancesMax), done: make(chan struct{})}
	p.create = func(ctx context.Context) (*instance, error) {
		in, err := create(ctx)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.live++
		if p.live > cap(p.slots) {
			panic(fmt.Sprintf("plugins: %d instances live in a pool of %d", p.live, cap(p.slots)))
		}
		p.mu.Unlock()
		return in, nil
	}
	return p
}

// discard closes an instance of the pool.
func (p *pool) discard(in *instance) {
	in.close()
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
}

// get returns an instance for one call, waiting for a free slot until ctx
// is done. The caller must put it back.
func (p *pool) get(ctx context.Context) (*instance, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, ErrClosed
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	p.mu.Unlock()
	in, err := p.create(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return in, nil
}

// put gives back an instance from get. An unhealthy one (its call failed:
// it may have been closed, or be in any state) is closed, and replaced in
// the background (refill), so that the next caller does not pay for an
// instantiation (about 15 ms for a Go guest) out of its deadline.
func (p *pool) put(in *instance, healthy bool) {
	p.mu.Lock()
	if healthy && !p.closed {
		p.idle = append(p.idle, in)
		p.mu.Unlock()
		<-p.slots
		return
	}
	closed := p.closed
	p.mu.Unlock()
	p.discard(in)
	if closed {
		<-p.slots
		return
	}
	// The replacement keeps the slot until it is made, so that close waits
	// for it.
	go p.refill()
}

// refill makes a new idle instance, holding the slot of the one it
// replaces. If it fails, the next get tries again (and reports the error).
func (p *pool) refill() {
	defer func() { <-p.slots }()
	in, err := p.create(context.Background())
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.discard(in)
		return
	}
	p.idle = append(p.idle, in)
	p.mu.Unlock()
}

// fill makes instances until the pool holds its bound, so that the first
// calls do not instantiate either.
func (p *pool) fill(ctx context.Context) error {
	ins := make([]*instance, 0, cap(p.slots))
	defer func() {
		for _, in := range ins {
			p.put(in, true)
		}
	}()
	for range cap(p.slots) {
		in, err := p.get(ctx)
		if err != nil {
			return err
		}
		ins = append(ins, in)
	}
	return nil
}

// close waits for the calls in flight (each bounded by its deadline), then
// closes every instance. get fails afterwards. Safe to call twice.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	for range cap(p.slots) {
		p.slots <- struct{}{}
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, in := range idle {
		p.discard(in)
	}
}
