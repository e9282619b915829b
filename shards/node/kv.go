package node

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// kvService implements wisp.v1.KVService.
type kvService struct{ n *Node }

var _ wispv1connect.KVServiceHandler = (*kvService)(nil)

func (s *kvService) Get(ctx context.Context, req *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
	m := req.Msg
	if err := s.n.checkKey(m.Key); err != nil {
		return nil, err
	}
	level, err := consistency(m.Consistency)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, s.n.ShardOf(m.Key), req, true, func(sh *shard) (*wispv1.GetResponse, error) {
		var resp *wispv1.GetResponse
		now := sh.group.NowUnixMs()
		err := readReplica(ctx, sh, level, func(e *engine.Engine) { resp = getResponse(e, m.Key, now) })
		return resp, err
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
		return s.n.fwd.kv(url).Get(ctx, r)
	})
}

func (s *kvService) Put(ctx context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	mut, err := s.n.putMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, s.n.ShardOf(mut[0].Key), req, false, func(sh *shard) (*wispv1.PutResponse, error) {
		res, err := s.n.propose(ctx, sh, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.PutResponse{Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
		return s.n.fwd.kv(url).Put(ctx, r)
	})
}

func (s *kvService) Delete(ctx context.Context, req *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
	mut, err := s.n.deleteMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, s.n.ShardOf(mut[0].Key), req, false, func(sh *shard) (*wispv1.DeleteResponse, error) {
		res, err := s.n.propose(ctx, sh, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.DeleteResponse{Deleted: res[0].Existed, Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
		return s.n.fwd.kv(url).Delete(ctx, r)
	})
}

func (s *kvService) Increment(ctx context.Context, req *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
	mut, err := s.n.incrementMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.n, s.n.ShardOf(mut[0].Key), req, false, func(sh *shard) (*wispv1.IncrementResponse, error) {
		res, err := s.n.propose(ctx, sh, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.IncrementResponse{Value: res[0].Counter, Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
		return s.n.fwd.kv(url).Increment(ctx, r)
	})
}

// propose replicates muts as one command of sh and returns their results,
// or the command's error (a rejected precondition, not leader, ...).
func (n *Node) propose(ctx context.Context, sh *shard, muts []engine.Mutation) ([]engine.MutationResult, error) {
	res, _, err := n.proposeAt(ctx, sh, muts)
	return res, err
}

// proposeAt is propose that also returns the time stamped into the command.
func (n *Node) proposeAt(ctx context.Context, sh *shard, muts []engine.Mutation) ([]engine.MutationResult, int64, error) {
	cmd := engine.Command{Mutations: muts}
	n.stampBudget(sh, &cmd)
	res, err := sh.group.Propose(ctx, &cmd)
	if err != nil {
		return nil, 0, err
	}
	if res.Err != nil {
		return nil, 0, res.Err
	}
	return res.Mutations, cmd.NowUnixMs, nil
}

// readReplica runs fn on sh's replica at the given level. A STALE read
// from a replica still catching up after a restart would go back in time
// from what it served before (raftgroup.Group.Replayed): a follower then
// refuses it as ErrNotLeader, so serve sends it to the leader, and a leader
// serves it at the linearizable level, which waits for its term barrier.
func readReplica(ctx context.Context, sh *shard, level raftgroup.Consistency, fn func(*engine.Engine)) error {
	if level == raftgroup.Stale && !sh.group.Replayed() {
		if !sh.group.IsLeader() {
			return errReplaying
		}
		level = raftgroup.Linearizable
	}
	return sh.group.Read(ctx, level, fn)
}

var errReplaying = fmt.Errorf("%w: replica still catching up after a restart", raftgroup.ErrNotLeader)

func consistency(c wispv1.Consistency) (raftgroup.Consistency, error) {
	switch c {
	case wispv1.Consistency_CONSISTENCY_UNSPECIFIED, wispv1.Consistency_CONSISTENCY_LINEARIZABLE:
		return raftgroup.Linearizable, nil
	case wispv1.Consistency_CONSISTENCY_STALE:
		return raftgroup.Stale, nil
	}
	return 0, invalidArgument("unknown consistency %d", c)
}

func (n *Node) checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return invalidArgument("key is empty")
	case len(key) > n.limits.MaxKeyBytes:
		return invalidArgument("key is %d bytes; the limit is %d (--max-key-bytes)", len(key), n.limits.MaxKeyBytes)
	}
	return nil
}

func (n *Node) putMutation(m *wispv1.PutRequest) ([]engine.Mutation, error) {
	if err := n.checkKey(m.Key); err != nil {
		return nil, err
	}
	switch {
	case len(m.Value) > n.limits.MaxValueBytes:
		return nil, invalidArgument("value is %d bytes; the limit is %d (--max-value-bytes)", len(m.Value), n.limits.MaxValueBytes)
	case m.TtlMs < 0:
		return nil, invalidArgument("ttl_ms is negative (%d)", m.TtlMs)
	case m.IfVersion != 0 && m.IfAbsent:
		return nil, invalidArgument("if_version and if_absent cannot both be set")
	}
	return []engine.Mutation{{Op: engine.OpPut, Key: m.Key, Value: m.Value, TTLMs: m.TtlMs, IfVersion: m.IfVersion, IfAbsent: m.IfAbsent}}, nil
}

func (n *Node) deleteMutation(m *wispv1.DeleteRequest) ([]engine.Mutation, error) {
	if err := n.checkKey(m.Key); err != nil {
		return nil, err
	}
	return []engine.Mutation{{Op: engine.OpDelete, Key: m.Key, IfVersion: m.IfVersion}}, nil
}

func (n *Node) incrementMutation(m *wispv1.IncrementRequest) ([]engine.Mutation, error) {
	if err := n.checkKey(m.Key); err != nil {
		return nil, err
	}
	return []engine.Mutation{{Op: engine.OpIncrement, Key: m.Key, Delta: m.Delta}}, nil
}

func (s *kvService) Expire(ctx context.Context, req *connect.Request[wispv1.ExpireRequest]) (*connect.Response[wispv1.ExpireResponse], error) {
	m := req.Msg
	if err := s.n.checkKey(m.Key); err != nil {
		return nil, err
	}
	if m.TtlMs <= 0 {
		return nil, invalidArgument("ttl_ms must be positive (got %d); use Persist to remove an expiry", m.TtlMs)
	}
	mut := []engine.Mutation{{Op: engine.OpSetTTL, Key: m.Key, TTLMs: m.TtlMs, IfVersion: m.IfVersion}}
	return serve(ctx, s.n, s.n.ShardOf(m.Key), req, false, func(sh *shard) (*wispv1.ExpireResponse, error) {
		res, now, err := s.n.proposeAt(ctx, sh, mut)
		if err != nil {
			return nil, err
		}
		r := &wispv1.ExpireResponse{Found: res[0].Existed}
		if r.Found {
			r.Version, r.ExpiresAtUnixMs = res[0].Version, now+m.TtlMs
		}
		return r, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.ExpireRequest]) (*connect.Response[wispv1.ExpireResponse], error) {
		return s.n.fwd.kv(url).Expire(ctx, r)
	})
}

func (s *kvService) Persist(ctx context.Context, req *connect.Request[wispv1.PersistRequest]) (*connect.Response[wispv1.PersistResponse], error) {
	m := req.Msg
	if err := s.n.checkKey(m.Key); err != nil {
		return nil, err
	}
	mut := []engine.Mutation{{Op: engine.OpPersist, Key: m.Key, IfVersion: m.IfVersion}}
	return serve(ctx, s.n, s.n.ShardOf(m.Key), req, false, func(sh *shard) (*wispv1.PersistResponse, error) {
		res, err := s.n.propose(ctx, sh, mut)
		if err != nil {
			return nil, err
		}
		r := &wispv1.PersistResponse{Found: res[0].Existed}
		if r.Found {
			r.Version = res[0].Version
		}
		return r, nil
	}, func(ctx context.Context, url string, r *connect.Request[wispv1.PersistRequest]) (*connect.Response[wispv1.PersistResponse], error) {
		return s.n.fwd.kv(url).Persist(ctx, r)
	})
}
