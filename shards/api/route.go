package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Headers between nodes and to clients.
const (
	// forwardedHeader marks a request one node forwarded to another; its
	// value is the forwarding node's id. A forwarded request is never
	// forwarded again: a node that cannot serve it answers UNAVAILABLE with
	// a LeaderHint, and the forwarding node follows the hint.
	forwardedHeader = "Wisp-Forwarded"
	// shardHeader names the shard a forwarded request is for. Requests that
	// span shards (Scan, SetConfig) are split by the receiving node, and
	// each part is forwarded with this header to the shard's leader.
	shardHeader = "Wisp-Shard"
	// leaderHeader carries the shard leader's API base URL on a response
	// this node got by forwarding; leader-aware clients send their next
	// requests for that shard there.
	leaderHeader = "Wisp-Leader"
	// epochHeader carries the layout epoch (ShardMap) on every response a
	// node serves, so clients notice a stale shard map.
	epochHeader = "Wisp-Epoch"
)

// targetShard returns the shard a forwarded request names, if any.
func targetShard(h http.Header, shards int) (int, bool) {
	if h.Get(forwardedHeader) == "" {
		return 0, false
	}
	id, err := strconv.Atoi(h.Get(shardHeader))
	if err != nil || id < 0 || id >= shards {
		return 0, false
	}
	return id, true
}

// serve answers req for shard id. If this node holds a replica it runs
// local on it; when the replica is not the leader, or the node holds none,
// it forwards req to the shard's leader with remote, following leader hints
// and waiting (bounded) through elections. A forwarded request is served
// locally or refused with a hint, never forwarded again.
//
// read says req has no side effects: a forward that fails in transit is then
// UNAVAILABLE (retry), while for a write it is ABORTED (outcome unknown).
func serve[Req, Res any](
	ctx context.Context, a *API, id int, req *connect.Request[Req], read bool,
	local func(Replica) (*Res, error),
	remote func(ctx context.Context, url string, req *connect.Request[Req]) (*connect.Response[Res], error),
) (*connect.Response[Res], error) {
	forwarded := req.Header().Get(forwardedHeader) != ""
	rt := a.node.Route() // one layout for the whole request
	self := a.node.ID()
	rep := a.node.Replica(id)
	var (
		avoid  string // a node the last forward could not reach, or that named another leader
		hinted string // the leader the last refusal named
		start  = time.Now()
		// electionDeadline bounds the waits for an election elsewhere.
		electionDeadline = start.Add(leaderWait)
	)
	for attempt := 1; ; attempt++ {
		var target string
		if rep != nil {
			res, err := local(rep)
			if err == nil {
				resp := connect.NewResponse(res)
				resp.Header().Set(epochHeader, rt.EpochText)
				return resp, nil
			}
			if !errors.Is(err, raftgroup.ErrNotLeader) || forwarded || attempt > maxServeAttempts {
				return nil, a.connectError(id, err)
			}
			// Trust a fresh hint over this replica's view, which may lag.
			if target, hinted = hinted, ""; target == "" || target == self {
				if target = awaitLeader(ctx, rt, rep, avoid); target == "" {
					if ctx.Err() != nil {
						return nil, a.connectError(id, ctx.Err())
					}
					return nil, a.noLeaderError(ctx, id, time.Since(start))
				}
			}
			if target == self {
				continue // became the leader meanwhile: serve locally
			}
		} else {
			if forwarded {
				return nil, a.notLeaderError(id)
			}
			if attempt > maxServeAttempts {
				return nil, a.noLeaderError(ctx, id, time.Since(start))
			}
			target = a.remoteTarget(rt, id, avoid, attempt)
		}

		a.onForward()
		fr := connect.NewRequest(req.Msg)
		fr.Header().Set(shardHeader, strconv.Itoa(id))
		resp, ferr := remote(ctx, rt.URLs[target], fr)
		switch {
		case ferr == nil:
			a.known.set(id, target)
			// Tell the client where the leader is, so it can go there next.
			resp.Header().Set(leaderHeader, rt.URLs[target])
			resp.Header().Set(epochHeader, rt.EpochText)
			return resp, nil
		case connect.IsWireError(ferr):
			hint, ok := leaderHint(ferr)
			if !ok || connect.CodeOf(ferr) != connect.CodeUnavailable {
				return nil, ferr // the leader's own error
			}
			// target is not the leader (nothing was proposed): go where it
			// points, or wait out the election it reports.
			a.known.forget(id, target)
			if _, known := rt.URLs[hint.NodeId]; known && hint.NodeId != target && hint.NodeId != avoid {
				a.known.set(id, hint.NodeId)
				avoid, hinted = target, hint.NodeId
				if attempt >= maxServeAttempts {
					return nil, ferr
				}
				continue
			}
			// No leader known there, or only the one this node could not
			// reach: an election is under way. Wait it out, up to
			// leaderWait in all, without spending attempts.
			if time.Now().After(electionDeadline) {
				return nil, a.noLeaderError(ctx, id, time.Since(start))
			}
			if err := sleepCtx(ctx, electionPoll); err != nil {
				return nil, a.connectError(id, err)
			}
			attempt--
		case isDialError(ferr):
			avoid = target // nothing was sent: try another replica
			a.known.forget(id, target)
		case ctx.Err() != nil:
			return nil, a.connectError(id, ctx.Err())
		default:
			if !read {
				a.log.Warn("forward failed in transit", "shard", id, "leader", target, "err", ferr)
			}
			return nil, forwardFailed(id, target, read)
		}
	}
}

// leaderHint returns the LeaderHint detail of an UNAVAILABLE error. A hint
// with an empty node id (or none at all) means no leader is known.
func leaderHint(err error) (*wispv1.LeaderHint, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
		return nil, false
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if h, ok := v.(*wispv1.LeaderHint); ok {
				return h, true
			}
		}
	}
	return &wispv1.LeaderHint{}, true
}

// electionPoll is how long serve waits before asking again when the node it
// forwarded to knows no reachable leader.
const electionPoll = 100 * time.Millisecond

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// remoteTarget picks the node to forward a request for a shard this node
// does not host: the last known leader, else the placement's preferred
// leader, else the other replicas in turn; never avoid unless nothing else
// is left.
func (a *API) remoteTarget(rt *Route, id int, avoid string, attempt int) string {
	if l := a.known.get(id); l != "" && l != avoid {
		return l
	}
	p := rt.Shards[id]
	if attempt == 1 && p.Leader != avoid {
		return p.Leader
	}
	reps := p.Replicas
	for k := range reps {
		if r := reps[(attempt+k)%len(reps)]; r != avoid {
			return r
		}
	}
	return reps[0]
}

// isDialError reports whether err is a failure to connect, before anything
// of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// maxServeAttempts bounds how often serve goes round: retrying locally after
// this node became the leader, following hints, or forwarding again after
// the leader it chose could not be reached.
const maxServeAttempts = 4

// leaderWait bounds how long a request waits for an election to finish.
const leaderWait = 2 * time.Second

// awaitLeader returns the leader of rep's shard, a member of rt, waiting up
// to leaderWait (and ctx) while none is known or the known one is not: ""
// if none appeared.
func awaitLeader(ctx context.Context, rt *Route, rep Replica, not string) string {
	deadline := time.Now().Add(leaderWait)
	for {
		if id := rep.Leader(); id != "" && id != not {
			if _, ok := rt.URLs[id]; ok {
				return id
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// leaderOf returns the shard's leader as this node knows it: its own
// replica's view, else the cache of forwarding outcomes.
func (a *API) leaderOf(id int) string {
	if rep := a.node.Replica(id); rep != nil {
		return rep.Leader()
	}
	return a.known.get(id)
}

// fanOut runs call for shards 0..shards-1 concurrently and returns the
// responses and errors by shard.
func fanOut[Res any](ctx context.Context, shards int, call func(context.Context, int) (*connect.Response[Res], error)) ([]*connect.Response[Res], []error) {
	resps := make([]*connect.Response[Res], shards)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for id := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[id], errs[id] = call(ctx, id)
		}()
	}
	wg.Wait()
	return resps, errs
}

// leaderCache remembers the last known leader of each shard, for shards this
// node does not host (for hosted ones the replica itself knows). Safe for
// concurrent use.
type leaderCache struct {
	mu      sync.Mutex
	leaders []string // guarded by mu: node id per shard, "" if unknown
}

func (c *leaderCache) init(shards int) { c.leaders = make([]string, shards) }

func (c *leaderCache) get(shard int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaders[shard]
}

func (c *leaderCache) set(shard int, id string) {
	c.mu.Lock()
	c.leaders[shard] = id
	c.mu.Unlock()
}

// forget clears the shard's leader if it is still id.
func (c *leaderCache) forget(shard int, id string) {
	c.mu.Lock()
	if c.leaders[shard] == id {
		c.leaders[shard] = ""
	}
	c.mu.Unlock()
}
