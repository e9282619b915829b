package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
		return n.memoryFullError(shard)
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
		msg = fmt.Sprintf("precondition failed: key %s does not exist", quoteShort(string(pe.Key)))
	} else {
		msg = fmt.Sprintf("precondition failed: key %s is at version %d", quoteShort(string(pe.Key)), pe.CurrentVersion)
	}
	ce := connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
	if d, err := connect.NewErrorDetail(&wispv1.PreconditionFailure{
		Key: pe.Key, CurrentVersion: pe.CurrentVersion, OpIndex: uint32(pe.Index),
	}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// noLeaderError is UNAVAILABLE for a shard that stayed without a leader
// while this node waited for one: the message says how many of its
// replicas this node can reach, and the NoLeader detail tells clients to
// stop retrying soon (a shard without a quorum elects no leader however
// long they wait).
func (n *Node) noLeaderError(ctx context.Context, shard int, waited time.Duration) error {
	v := n.view()
	replicas := v.place.Shards[shard].Replicas
	reachable := n.reachable(ctx, replicas)
	quorum := len(replicas)/2 + 1
	var msg string
	if reachable < quorum {
		msg = fmt.Sprintf("shard %d has no leader: only %d of its %d replicas (%s) are reachable from node %s, and electing one needs %d; start or reconnect the missing nodes",
			shard, reachable, len(replicas), strings.Join(replicas, ", "), n.cfg.ID, quorum)
	} else {
		msg = fmt.Sprintf("shard %d has no leader after %v (%d of its %d replicas are reachable from node %s); an election may still be under way: retry",
			shard, waited.Round(100*time.Millisecond), reachable, len(replicas), n.cfg.ID)
	}
	ce := connect.NewError(connect.CodeUnavailable, errors.New(msg))
	if d, err := connect.NewErrorDetail(&wispv1.NoLeader{
		Shard: uint32(shard), Replicas: uint32(len(replicas)), ReplicasReachable: uint32(reachable),
		WaitedMs: uint32(min(waited.Milliseconds(), math.MaxUint32)),
	}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// reachable counts the nodes among ids that answer on their API port within
// reachTimeout (this node counts without asking).
func (n *Node) reachable(ctx context.Context, ids []string) int {
	v := n.view()
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	var count atomic.Int32
	var wg sync.WaitGroup
	for _, id := range ids {
		if id == n.cfg.ID {
			count.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.peers[id].URL+"/healthz", nil)
			if err != nil {
				return
			}
			resp, err := n.fwd.http.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			count.Add(1)
		}()
	}
	wg.Wait()
	return int(count.Load())
}

// reachTimeout bounds the reachability probe of noLeaderError.
const reachTimeout = 300 * time.Millisecond

// notLeaderError is UNAVAILABLE with a LeaderHint naming the shard's leader
// when this node knows it.
func (n *Node) notLeaderError(shard int) error {
	v := n.view()
	id := n.leaderOf(shard)
	p, ok := v.peers[id]
	if id == "" || !ok || id == n.cfg.ID {
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("no leader for shard %d right now (election in progress); retry", shard))
	}
	ce := connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %s does not lead shard %d; its leader is %s", n.cfg.ID, shard, id))
	if d, err := connect.NewErrorDetail(&wispv1.LeaderHint{NodeId: id, Url: p.URL, Shard: uint32(shard)}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}
