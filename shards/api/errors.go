package api

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
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Every Connect code this package sets, it sets in this file: the
// constructors below for refusals whose messages are written for clients
// and operators, and connectError for errors from the engine, Raft and the
// network (whose text never reaches a client). Errors the node returns
// that already carry a code come from its control plane, which sets them
// in shards/node/errors.go, written for the operator. TestCodesInOneFile
// keeps it so.

// invalidArgument builds an INVALID_ARGUMENT error from a message that is
// safe to show to clients.
func invalidArgument(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// unavailable is UNAVAILABLE (retry) with a message for clients.
func unavailable(format string, args ...any) error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf(format, args...))
}

// failedPrecondition is FAILED_PRECONDITION with a message for clients.
func failedPrecondition(format string, args ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(format, args...))
}

// notFound is NOT_FOUND with a message for clients.
func notFound(format string, args ...any) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(format, args...))
}

// moduleTooLarge refuses a plugin upload over the module size limit.
func moduleTooLarge(size int64) error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"upload is %d bytes: a plugin module may be at most %d bytes", size, plugins.DefaultModuleSizeBytesMax))
}

// operatorDisabled refuses an operator action on a node without an
// operator token.
func operatorDisabled() error {
	return connect.NewError(connect.CodePermissionDenied, errors.New(
		"operator actions are disabled on this node: start wispd with --operator-token or --operator-token-file"))
}

// operatorRefused refuses an operator action without the right token.
func operatorRefused() error {
	return connect.NewError(connect.CodeUnauthenticated, errors.New(
		"this is an operator action: give the operator token (wisp --operator-token, or WISP_OPERATOR_TOKEN; `wispd dev` prints it and writes it to <data-dir>/operator-token)"))
}

// forwardFailed is the error of a forward to shard id's leader at target
// that failed in transit: UNAVAILABLE for a read (retry), ABORTED for a
// write, whose outcome is unknown.
func forwardFailed(id int, target string, read bool) error {
	if read {
		return unavailable("forward to the leader of shard %d (%s) failed; retry", id, target)
	}
	return connect.NewError(connect.CodeAborted, fmt.Errorf("connection to the leader of shard %d (%s) failed with the write in flight; it may or may not have been applied", id, target))
}

// requestTooLarge refuses a request body over the request limit, naming
// the limits a user can change.
func (a *API) requestTooLarge(size int64) error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"request is %d bytes, over the %d-byte request limit: a value may be at most %d bytes (--max-value-bytes), a key %d (--max-key-bytes)",
		size, a.limits.MaxRequestBytes, a.limits.MaxValueBytes, a.limits.MaxKeyBytes))
}

// connectError gives err, from serving shard, its Connect code. It is the
// only place that maps internal errors to codes; internal error text never
// reaches clients.
func (a *API) connectError(shard int, err error) error {
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
		return a.memoryFullError(shard)
	case errors.Is(err, engine.ErrNotInteger):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, engine.ErrInvalidCommand):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, meta.ErrUnknownPlugin):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, plugins.ErrInvalidModule), errors.Is(err, plugins.ErrUnknownKind):
		// The host's reasons are written for the plugin's author.
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, raftgroup.ErrNotLeader):
		return a.notLeaderError(shard)
	case errors.Is(err, raftgroup.ErrOutcomeUnknown):
		return connect.NewError(connect.CodeAborted, raftgroup.ErrOutcomeUnknown)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded; a write may or may not have been applied"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	}
	a.log.Error("internal error", "err", err)
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
func (a *API) noLeaderError(ctx context.Context, shard int, waited time.Duration) error {
	rt := a.node.Route()
	replicas := rt.Shards[shard].Replicas
	reachable := a.reachable(ctx, rt, replicas)
	quorum := len(replicas)/2 + 1
	var msg string
	if reachable < quorum {
		msg = fmt.Sprintf("shard %d has no leader: only %d of its %d replicas (%s) are reachable from node %s, and electing one needs %d; start or reconnect the missing nodes",
			shard, reachable, len(replicas), strings.Join(replicas, ", "), a.node.ID(), quorum)
	} else {
		msg = fmt.Sprintf("shard %d has no leader after %v (%d of its %d replicas are reachable from node %s); an election may still be under way: retry",
			shard, waited.Round(100*time.Millisecond), reachable, len(replicas), a.node.ID())
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
func (a *API) reachable(ctx context.Context, rt *Route, ids []string) int {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	var count atomic.Int32
	var wg sync.WaitGroup
	for _, id := range ids {
		if id == a.node.ID() {
			count.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, rt.URLs[id]+"/healthz", nil)
			if err != nil {
				return
			}
			resp, err := a.peers.http.Do(req)
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
func (a *API) notLeaderError(shard int) error {
	id := a.leaderOf(shard)
	url, ok := a.node.Route().URLs[id]
	if id == "" || !ok || id == a.node.ID() {
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("no leader for shard %d right now (election in progress); retry", shard))
	}
	ce := connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %s does not lead shard %d; its leader is %s", a.node.ID(), shard, id))
	if d, err := connect.NewErrorDetail(&wispv1.LeaderHint{NodeId: id, Url: url, Shard: uint32(shard)}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// quoteShort quotes s for an error message, cut to 64 bytes: a message
// must not echo a client's long key back whole.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q (%d bytes)", s[:max]+"...", len(s))
	}
	return fmt.Sprintf("%q", s)
}

// memoryFullError refuses a write to a shard whose budget is reached
// under noeviction, naming the node whose budget sets it.
func (a *API) memoryFullError(shard int) error {
	what := a.node.MemoryFull(shard)
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"shard %d is full: %s, and the eviction policy is noeviction: delete keys, raise the budget (wisp config set max-memory), or choose an eviction policy", shard, what))
}

// remapBatchError rewrites the op index of a PreconditionFailure detail from
// a part of a batch (whose op j was op idx[j] of the whole) to the whole
// batch's numbering.
func remapBatchError(err error, idx []int) error {
	var ce *connect.Error
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	out := connect.NewError(ce.Code(), errors.New(ce.Message()))
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if pf, ok := v.(*wispv1.PreconditionFailure); ok && int(pf.OpIndex) < len(idx) {
				pf.OpIndex = uint32(idx[pf.OpIndex])
				if nd, nerr := connect.NewErrorDetail(pf); nerr == nil {
					out.AddDetail(nd)
					continue
				}
			}
		}
		out.AddDetail(d)
	}
	return out
}

// withMessage returns err (a *connect.Error) with another message, keeping
// its code and details.
func withMessage(err error, msg string) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	out := connect.NewError(ce.Code(), errors.New(msg))
	for _, d := range ce.Details() {
		out.AddDetail(d)
	}
	return out
}

// errMessage is err's message without Connect's code prefix.
func errMessage(err error) string {
	if ce, ok := err.(*connect.Error); ok {
		return ce.Message()
	}
	return err.Error()
}
