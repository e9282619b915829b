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

// connectError gives err its Connect code. It is the only place that maps
// internal errors to codes; internal error text never reaches clients.
func (n *Node) connectError(err error) error {
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
		return memoryFullError(n.settings().MaxMemoryBytes)
	case errors.Is(err, engine.ErrNotInteger):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, engine.ErrInvalidCommand):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, raftgroup.ErrNotLeader):
		return n.notLeaderError()
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

// notLeaderError is UNAVAILABLE with a LeaderHint when the leader is known.
func (n *Node) notLeaderError() error {
	id, _ := n.group.Leader()
	if id == "" {
		return connect.NewError(connect.CodeUnavailable, errors.New("no leader for the shard right now (election in progress); retry"))
	}
	ce := connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %s is not the leader; the leader is %s", n.cfg.ID, id))
	if d, err := connect.NewErrorDetail(&wispv1.LeaderHint{NodeId: id, Url: n.peers[id].URL}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}
