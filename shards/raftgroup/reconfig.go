package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Membership changes, one server at a time, as hashicorp/raft makes them
// (each is a configuration entry in the group's log, committed by the
// current voters). A new replica joins as a learner (a non-voter: it gets
// the log, or a snapshot then the log, but does not count for a quorum),
// is promoted once it has caught up, and the replica it replaces is
// removed last, so the group never has fewer voters than it needs: the
// autopilot pattern of Consul and Nomad. Deciding which change comes next
// is the placement planner's job; these methods carry one out.
//
// Every method runs on the leader (ErrNotLeader elsewhere) and takes the
// index of the configuration it was decided from (Configuration's Index; 0
// for none): if the configuration changed since, the change is refused
// with ErrConfigChanged, so two deciders racing cannot undo each other.

// ErrConfigChanged means the group's configuration changed since the index
// a membership change was decided from: decide again from a fresh one.
var ErrConfigChanged = errors.New("configuration changed since it was read")

// Configuration is a group's members as its leader (or this replica) last
// saw them, at the log index that set them.
type Configuration struct {
	Members []Member
	// Index is the log index of the entry that set this configuration.
	Index uint64
}

// Configuration returns the latest configuration this replica knows.
func (g *Group) Configuration() (Configuration, error) {
	f := g.raft.GetConfiguration()
	if err := waitFuture(f, g.stop); err != nil {
		return Configuration{}, fmt.Errorf("raftgroup %s: configuration: %w", g.cfg.NodeID, err)
	}
	c := Configuration{Index: f.Index()}
	for _, s := range f.Configuration().Servers {
		c.Members = append(c.Members, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return c, nil
}

// AddLearner adds a non-voting replica id at addr (a node's Raft address)
// to the group; the replica must be running, opened with Join. Adding a
// replica that is already a member at addr changes nothing.
func (g *Group) AddLearner(ctx context.Context, id, addr string, prevIndex uint64) error {
	return g.reconfigure(ctx, "add learner "+id, prevIndex, func(timeout time.Duration) raft.IndexFuture {
		return g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), prevIndex, timeout)
	})
}

// Promote makes the learner id a voter. Promote a learner only once it has
// caught up: until it has the log, a voter that cannot vote for recent
// entries weakens the quorum.
func (g *Group) Promote(ctx context.Context, id string, prevIndex uint64) error {
	c, err := g.Configuration()
	if err != nil {
		return err
	}
	addr := ""
	for _, m := range c.Members {
		if m.ID == id {
			addr = m.Addr
		}
	}
	if addr == "" {
		return fmt.Errorf("raftgroup %s: promote %s: not a member", g.cfg.NodeID, id)
	}
	return g.reconfigure(ctx, "promote "+id, prevIndex, func(timeout time.Duration) raft.IndexFuture {
		return g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), prevIndex, timeout)
	})
}

// RemoveReplica removes id (a voter or a learner) from the group. Removing
// the leader itself makes it step down once the change commits; hand
// leadership over first (TransferLeadership) to keep the group serving.
func (g *Group) RemoveReplica(ctx context.Context, id string, prevIndex uint64) error {
	return g.reconfigure(ctx, "remove "+id, prevIndex, func(timeout time.Duration) raft.IndexFuture {
		return g.raft.RemoveServer(raft.ServerID(id), prevIndex, timeout)
	})
}

// reconfigure runs one membership change on the leader and waits until it
// is committed (or ctx, or the group, ends).
func (g *Group) reconfigure(ctx context.Context, what string, prevIndex uint64, change func(time.Duration) raft.IndexFuture) error {
	if g.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	// How long raft may wait to enqueue the change; the commit wait below
	// is bounded by ctx.
	enqueue := reconfigEnqueueTimeout
	if dl, ok := ctx.Deadline(); ok {
		enqueue = min(enqueue, time.Until(dl))
	}
	f := change(enqueue)
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		return fmt.Errorf("raftgroup %s: %s: %w (it may still be applied)", g.cfg.NodeID, what, ctx.Err())
	case <-g.stop:
		return fmt.Errorf("raftgroup %s: %s: %w", g.cfg.NodeID, what, ErrOutcomeUnknown)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("raftgroup %s: %s: %w", g.cfg.NodeID, what, ErrOutcomeUnknown)
	case prevIndex != 0 && isConfigChanged(err):
		return fmt.Errorf("raftgroup %s: %s: %w", g.cfg.NodeID, what, ErrConfigChanged)
	}
	return fmt.Errorf("raftgroup %s: %s: %w", g.cfg.NodeID, what, err)
}

// isConfigChanged recognises hashicorp/raft's refusal of a change decided
// from an older configuration: it has no sentinel, only this text
// ("configuration changed since N (latest is M)").
func isConfigChanged(err error) bool {
	return strings.HasPrefix(err.Error(), "configuration changed since")
}

// reconfigEnqueueTimeout bounds how long raft waits to take a membership
// change into its queue.
const reconfigEnqueueTimeout = 5 * time.Second
