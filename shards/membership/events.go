package membership

import (
	"context"
	"fmt"
)

// EventKind says what changed about a member.
type EventKind uint8

const (
	// EventSync replaces the subscriber's view: Event.Members holds every
	// member. It is the first event of every subscription, and follows any
	// events a subscriber lost by falling behind.
	EventSync EventKind = iota + 1
	// EventJoin: a node became alive: new, or back from dead or left (a
	// restart). Its metadata may differ from before.
	EventJoin
	// EventUpdate: a live node's metadata changed.
	EventUpdate
	// EventSuspect: this node's pings of a live member went unanswered.
	EventSuspect
	// EventRecover: a suspect member answered a ping again.
	EventRecover
	// EventDead: memberlist declared a member failed.
	EventDead
	// EventLeave: a member left gracefully (Leave).
	EventLeave
)

// String returns the kind's name in lower case ("join", "dead").
func (k EventKind) String() string {
	switch k {
	case EventSync:
		return "sync"
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventSuspect:
		return "suspect"
	case EventRecover:
		return "recover"
	case EventDead:
		return "dead"
	case EventLeave:
		return "leave"
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Event is one change in the member table, as this node sees it.
type Event struct {
	Kind EventKind
	// Member is the member after the change; zero for EventSync.
	Member Member
	// Members holds every member, sorted by id, for EventSync only.
	Members []Member
}

// subscriptionQueueMax bounds the events queued for one subscriber. A burst
// is a few events per member (a cluster start, a partition healing), so 256
// absorbs one for clusters of tens of nodes; a subscriber further behind
// gets an EventSync instead of the events it missed, which costs one copy of
// the member table and never blocks memberlist.
const subscriptionQueueMax = 256

// Subscription delivers member changes in the order this node saw them.
// Create one with Membership.Subscribe. Its methods are safe for concurrent
// use, but events are meant for one reader.
type Subscription struct {
	m *Membership
	// ready has room for one wake-up: a send never blocks, and a reader
	// woken for several events finds them all in the queue.
	ready chan struct{}
	max   int // the queue's bound, subscriptionQueueMax outside tests

	// Guarded by m.mu.
	queue    []Event
	needSync bool // events were lost, or none delivered yet: next is EventSync
	closed   bool // Close, or the Membership closed
}

// Subscribe starts a subscription. Its first event is an EventSync with
// every member known now; changes after that follow as events. Close it when
// done; Membership.Close closes every subscription.
func (m *Membership) Subscribe() *Subscription {
	return m.subscribe(subscriptionQueueMax)
}

func (m *Membership) subscribe(max int) *Subscription {
	s := &Subscription{m: m, ready: make(chan struct{}, 1), max: max, needSync: true}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		s.closed = true
	} else {
		m.subs[s] = struct{}{}
	}
	return s
}

// Next returns the next event, waiting for one until ctx ends or the
// subscription closes. Once closed and drained it returns ErrClosed.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	m := s.m
	for {
		m.mu.Lock()
		switch {
		case s.needSync && !s.closed:
			s.needSync = false
			ev := Event{Kind: EventSync, Members: m.membersLocked()}
			m.mu.Unlock()
			return ev, nil
		case len(s.queue) > 0:
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			m.mu.Unlock()
			return ev, nil
		case s.closed:
			m.mu.Unlock()
			return Event{}, ErrClosed
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-s.ready:
		}
	}
}

// Close ends the subscription; Next then returns ErrClosed. Safe to call
// more than once.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	delete(s.m.subs, s)
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if !s.closed {
		s.closed = true
		s.queue = nil
		s.wake()
	}
}

func (s *Subscription) wake() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// publishLocked queues ev for every subscriber. A full queue is dropped and
// replaced by an EventSync at the subscriber's next read. It returns the
// number of subscribers that started falling behind, for the caller to log
// outside m.mu. Called with m.mu held.
func (m *Membership) publishLocked(ev Event) (fellBehind int) {
	for s := range m.subs {
		switch {
		case s.needSync:
			// The EventSync to come includes this change.
		case len(s.queue) >= s.max:
			fellBehind++
			s.queue = nil
			s.needSync = true
		default:
			s.queue = append(s.queue, ev)
		}
		s.wake()
	}
	return fellBehind
}
