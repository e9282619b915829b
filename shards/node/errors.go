package node

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// invalidArgument builds an INVALID_ARGUMENT error from a message that is
// safe to show to clients.
func invalidArgument(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// connectError gives err, from serving shard, its Connect code. It is the
// only place that maps internal errors to codes; internal error text never
// reaches clients.
func (n *Node) connectError(shard int, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	var pe *engine.PreconditionError
	switch {
	case errors.As(err, &pe):
		return preconditionError(pe)
	case errors.Is(err, engine.ErrMemoryFull):
		var budget int64
		if sh := n.shards[shard]; sh != nil {
			budget = n.settings(sh).MaxMemoryBytes
		}
		return memoryFullError(shard, budget)
	case errors.Is(err, engine.ErrNotInteger):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, engine.ErrInvalidCommand):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, raftgroup.ErrNotLeader):
		return n.notLeaderError(shard)
	case errors.Is(err, raftgroup.ErrOutcomeUnknown):
		return connect.NewError(connect.CodeAborted, raftgroup.ErrOutcomeUnknown)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded; a write may or may not have been applied"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	}
	n.log.Error("internal error", "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error; see the server log"))
}

func preconditionError(pe *engine.PreconditionError) error {
	var msg string
	if pe.CurrentVersion == 0 {
		msg = fmt.Sprintf("precondition failed: key %q does not exist", pe.Key)
	} else {
		msg = fmt.Sprintf("precondition failed: key %q is at version %d", pe.Key, pe.CurrentVersion)
	}
	ce := connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
	if d, err := connect.NewErrorDetail(&wispv1.PreconditionFailure{
		Key: pe.Key, CurrentVersion: pe.CurrentVersion, OpIndex: uint32(pe.Index),
	}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// notLeaderError is UNAVAILABLE with a LeaderHint naming the shard's leader
// when this node knows it.
func (n *Node) notLeaderError(shard int) error {
	id := n.leaderOf(shard)
	p, ok := n.peers[id]
	if id == "" || !ok || id == n.cfg.ID {
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("no leader for shard %d right now (election in progress); retry", shard))
	}
	ce := connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %s does not lead shard %d; its leader is %s", n.cfg.ID, shard, id))
	if d, err := connect.NewErrorDetail(&wispv1.LeaderHint{NodeId: id, Url: p.URL, Shard: uint32(shard)}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}
