package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction/replay"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// kvService implements wisp.v1.KVService.
type kvService struct{ a *API }

var _ wispv1connect.KVServiceHandler = (*kvService)(nil)

func (s *kvService) Get(ctx context.Context, req *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
	m := req.Msg
	if err := s.a.checkKey(m.Key); err != nil {
		return nil, err
	}
	level, err := consistency(m.Consistency)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.a, s.a.node.ShardOf(m.Key), req, true, func(r Replica) (*wispv1.GetResponse, error) {
		var resp *wispv1.GetResponse
		now := r.NowUnixMs()
		err := r.Read(ctx, level, func(e *engine.Engine) { resp = getResponse(e, m.Key, now) })
		if err == nil {
			r.Trace(replay.Get, m.Key, len(resp.Value))
		}
		return resp, err
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.GetRequest]) (*connect.Response[wispv1.GetResponse], error) {
		return s.a.peers.kv(url).Get(ctx, fr)
	})
}

func (s *kvService) Put(ctx context.Context, req *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
	mut, err := s.a.putMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.a, s.a.node.ShardOf(mut[0].Key), req, false, func(r Replica) (*wispv1.PutResponse, error) {
		res, _, err := r.Propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		r.Trace(replay.Put, mut[0].Key, len(mut[0].Value))
		return &wispv1.PutResponse{Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.PutRequest]) (*connect.Response[wispv1.PutResponse], error) {
		return s.a.peers.kv(url).Put(ctx, fr)
	})
}

func (s *kvService) Delete(ctx context.Context, req *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
	mut, err := s.a.deleteMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.a, s.a.node.ShardOf(mut[0].Key), req, false, func(r Replica) (*wispv1.DeleteResponse, error) {
		res, _, err := r.Propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		r.Trace(replay.Delete, mut[0].Key, 0)
		return &wispv1.DeleteResponse{Deleted: res[0].Existed, Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.DeleteRequest]) (*connect.Response[wispv1.DeleteResponse], error) {
		return s.a.peers.kv(url).Delete(ctx, fr)
	})
}

func (s *kvService) Increment(ctx context.Context, req *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
	mut, err := s.a.incrementMutation(req.Msg)
	if err != nil {
		return nil, err
	}
	return serve(ctx, s.a, s.a.node.ShardOf(mut[0].Key), req, false, func(r Replica) (*wispv1.IncrementResponse, error) {
		res, _, err := r.Propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		return &wispv1.IncrementResponse{Value: res[0].Counter, Version: res[0].Version}, nil
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.IncrementRequest]) (*connect.Response[wispv1.IncrementResponse], error) {
		return s.a.peers.kv(url).Increment(ctx, fr)
	})
}

func consistency(c wispv1.Consistency) (raftgroup.Consistency, error) {
	switch c {
	case wispv1.Consistency_CONSISTENCY_UNSPECIFIED, wispv1.Consistency_CONSISTENCY_LINEARIZABLE:
		return raftgroup.Linearizable, nil
	case wispv1.Consistency_CONSISTENCY_STALE:
		return raftgroup.Stale, nil
	}
	return 0, invalidArgument("unknown consistency %d", c)
}

func (a *API) checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return invalidArgument("key is empty")
	case len(key) > a.limits.MaxKeyBytes:
		return invalidArgument("key is %d bytes; the limit is %d (--max-key-bytes)", len(key), a.limits.MaxKeyBytes)
	}
	return nil
}

func (a *API) putMutation(m *wispv1.PutRequest) ([]engine.Mutation, error) {
	if err := a.checkKey(m.Key); err != nil {
		return nil, err
	}
	switch {
	case len(m.Value) > a.limits.MaxValueBytes:
		return nil, invalidArgument("value is %d bytes; the limit is %d (--max-value-bytes)", len(m.Value), a.limits.MaxValueBytes)
	case m.TtlMs < 0:
		return nil, invalidArgument("ttl_ms is negative (%d)", m.TtlMs)
	case m.IfVersion != 0 && m.IfAbsent:
		return nil, invalidArgument("if_version and if_absent cannot both be set")
	}
	return []engine.Mutation{{Op: engine.OpPut, Key: m.Key, Value: m.Value, TTLMs: m.TtlMs, IfVersion: m.IfVersion, IfAbsent: m.IfAbsent}}, nil
}

func (a *API) deleteMutation(m *wispv1.DeleteRequest) ([]engine.Mutation, error) {
	if err := a.checkKey(m.Key); err != nil {
		return nil, err
	}
	return []engine.Mutation{{Op: engine.OpDelete, Key: m.Key, IfVersion: m.IfVersion}}, nil
}

func (a *API) incrementMutation(m *wispv1.IncrementRequest) ([]engine.Mutation, error) {
	if err := a.checkKey(m.Key); err != nil {
		return nil, err
	}
	return []engine.Mutation{{Op: engine.OpIncrement, Key: m.Key, Delta: m.Delta}}, nil
}

func (s *kvService) Expire(ctx context.Context, req *connect.Request[wispv1.ExpireRequest]) (*connect.Response[wispv1.ExpireResponse], error) {
	m := req.Msg
	if err := s.a.checkKey(m.Key); err != nil {
		return nil, err
	}
	if m.TtlMs <= 0 {
		return nil, invalidArgument("ttl_ms must be positive (got %d); use Persist to remove an expiry", m.TtlMs)
	}
	mut := []engine.Mutation{{Op: engine.OpSetTTL, Key: m.Key, TTLMs: m.TtlMs, IfVersion: m.IfVersion}}
	return serve(ctx, s.a, s.a.node.ShardOf(m.Key), req, false, func(r Replica) (*wispv1.ExpireResponse, error) {
		res, now, err := r.Propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		out := &wispv1.ExpireResponse{Found: res[0].Existed}
		if out.Found {
			out.Version, out.ExpiresAtUnixMs = res[0].Version, now+m.TtlMs
		}
		return out, nil
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.ExpireRequest]) (*connect.Response[wispv1.ExpireResponse], error) {
		return s.a.peers.kv(url).Expire(ctx, fr)
	})
}

func (s *kvService) Persist(ctx context.Context, req *connect.Request[wispv1.PersistRequest]) (*connect.Response[wispv1.PersistResponse], error) {
	m := req.Msg
	if err := s.a.checkKey(m.Key); err != nil {
		return nil, err
	}
	mut := []engine.Mutation{{Op: engine.OpPersist, Key: m.Key, IfVersion: m.IfVersion}}
	return serve(ctx, s.a, s.a.node.ShardOf(m.Key), req, false, func(r Replica) (*wispv1.PersistResponse, error) {
		res, _, err := r.Propose(ctx, mut)
		if err != nil {
			return nil, err
		}
		out := &wispv1.PersistResponse{Found: res[0].Existed}
		if out.Found {
			out.Version = res[0].Version
		}
		return out, nil
	}, func(ctx context.Context, url string, fr *connect.Request[wispv1.PersistRequest]) (*connect.Response[wispv1.PersistResponse], error) {
		return s.a.peers.kv(url).Persist(ctx, fr)
	})
}
