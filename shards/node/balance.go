package node

import (
	"sync"
	"time"
)

// DefaultBalanceInterval is how often a node checks that the leaderships it
// holds are the ones the placement prefers.
const DefaultBalanceInterval = 2 * time.Second

// maxHandOffsPerTick bounds the hand-offs of one tick: each makes its shard
// briefly leaderless (clients retry), so they are spread out.
const maxHandOffsPerTick = 4

// balanceBackoff is how long a node leaves a shard alone after a failed
// hand-off (the preferred replica is down or behind).
const balanceBackoff = 30 * time.Second

// balancer spreads leaders evenly: each tick it hands up to
// maxHandOffsPerTick shards it leads, but whose placement prefers another
// replica as leader, to that replica, one after another. Elections put leaders wherever timers fire first; without this,
// one node can end up leading most shards and do most of the work.
type balancer struct {
	n       *Node
	every   time.Duration
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	skipTil map[int]time.Time // owned by run: shards in backoff after a failed hand-off
}

// startBalancer starts the balancing loop; every < 0 disables it (close
// still works).
func startBalancer(n *Node, every time.Duration) *balancer {
	if every == 0 {
		every = DefaultBalanceInterval
	}
	b := &balancer{n: n, every: every, stop: make(chan struct{}), done: make(chan struct{}), skipTil: map[int]time.Time{}}
	if every < 0 {
		close(b.done)
		return b
	}
	go b.run()
	return b
}

func (b *balancer) run() {
	defer close(b.done)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.once1()
		}
	}
}

// once1 hands over up to maxHandOffsPerTick misplaced leaderships.
func (b *balancer) once1() {
	n := b.n
	v := n.view()
	now := time.Now()
	done := 0
	for _, sh := range n.replicas().hosted {
		if done == maxHandOffsPerTick {
			return
		}
		want := v.place.Shards[sh.id].Leader
		if want == "" || want == n.cfg.ID || !sh.group.IsLeader() || now.Before(b.skipTil[sh.id]) {
			continue
		}
		select {
		case <-b.stop:
			return
		default:
		}
		if err := sh.group.TransferLeadership(want, v.peers[want].RaftAddr); err != nil {
			n.log.Debug("leadership hand-off failed; backing off", "shard", sh.id, "to", want, "err", err)
			b.skipTil[sh.id] = now.Add(balanceBackoff)
			continue
		}
		n.log.Info("handed leadership to the preferred replica", "shard", sh.id, "to", want)
		done++
	}
}

// close stops the loop and waits for it. Safe to call twice.
func (b *balancer) close() {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
}
