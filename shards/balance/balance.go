// Package balance spreads shard leaderships evenly: elections put leaders
// wherever timers fire first, so without it one node can end up leading
// most shards and doing most of the work. Each node runs a Balancer, which
// every tick hands up to MaxHandOffsPerTick of the leaderships it holds, but
// whose placement prefers another replica, to that replica, one after
// another, and leaves a shard alone for Backoff after a failed hand-off.
package balance

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is how often a node checks that the leaderships it holds
// are the ones the placement prefers.
const DefaultInterval = 2 * time.Second

// MaxHandOffsPerTick bounds the hand-offs of one tick: each makes its shard
// briefly leaderless (clients retry), so they are spread out.
const MaxHandOffsPerTick = 4

// Backoff is how long a node leaves a shard alone after a failed hand-off
// (the preferred replica is down or behind).
const Backoff = 30 * time.Second

// HandOff is a leadership this node holds that the placement prefers on
// another replica.
type HandOff struct {
	Shard int
	To    string // the preferred replica's node
}

// Node is what a Balancer needs of the node it runs on.
type Node interface {
	// Misplaced lists the shards this node leads whose placement prefers
	// another replica as leader.
	Misplaced() []HandOff
	// Transfer hands shard's leadership to node to.
	Transfer(shard int, to string) error
}

// Balancer runs the balancing loop of one node.
type Balancer struct {
	n       Node
	log     *slog.Logger
	every   time.Duration
	now     func() time.Time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	skipTil map[int]time.Time // owned by run: shards in backoff after a failed hand-off
}

// Start starts the balancing loop of n, every tick (DefaultInterval for 0;
// negative disables it, and Close still works).
func Start(n Node, every time.Duration, log *slog.Logger) *Balancer {
	if every == 0 {
		every = DefaultInterval
	}
	b := newBalancer(n, every, log, time.Now)
	if every < 0 {
		close(b.done)
		return b
	}
	go b.run()
	return b
}

func newBalancer(n Node, every time.Duration, log *slog.Logger, now func() time.Time) *Balancer {
	return &Balancer{n: n, log: log, every: every, now: now, stop: make(chan struct{}), done: make(chan struct{}), skipTil: map[int]time.Time{}}
}

func (b *Balancer) run() {
	defer close(b.done)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.tick()
		}
	}
}

// tick hands over up to MaxHandOffsPerTick misplaced leaderships.
func (b *Balancer) tick() {
	now := b.now()
	done := 0
	for _, h := range b.n.Misplaced() {
		if done == MaxHandOffsPerTick {
			return
		}
		if now.Before(b.skipTil[h.Shard]) {
			continue
		}
		select {
		case <-b.stop:
			return
		default:
		}
		if err := b.n.Transfer(h.Shard, h.To); err != nil {
			b.log.Debug("leadership hand-off failed; backing off", "shard", h.Shard, "to", h.To, "err", err)
			b.skipTil[h.Shard] = now.Add(Backoff)
			continue
		}
		b.log.Info("handed leadership to the preferred replica", "shard", h.Shard, "to", h.To)
		done++
	}
}

// Close stops the loop and waits for it. Safe to call twice.
func (b *Balancer) Close() {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
}
