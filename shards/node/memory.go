package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/raftgroup"
	"github.com/wisp-db/wisp/shards/reclaim"
)

// Names of the cluster settings in every shard's replicated settings map
// (engine OpSetMeta): SetConfig writes them to each shard. They move to the
// meta group once it exists.
const (
	metaMaxMemory = "max_memory_bytes"
	metaPolicy    = "eviction_policy"
)

// DefaultEvictionPolicy is used when neither the cluster setting nor the
// node's flag names one. Like Redis: never drop data unless told to.
const DefaultEvictionPolicy = "noeviction"

// settingsCache resolves a shard's memory settings in force: the
// cluster-wide values stored in the shard's settings map, else the node's
// flags. It
// re-parses only when the stored bytes change, and keeps one Policy instance
// per name so the evictor's pool survives between cycles.
type settingsCache struct {
	mu       sync.Mutex
	rawMax   []byte // guarded by mu: the stored values last parsed
	rawPol   []byte
	settings reclaim.Settings // guarded by mu
	valid    bool
}

// settings returns the memory settings in force for sh, its budget being
// its share of the node's (see shardBudget). Cheap: two map lookups under
// the engine's read lock, then a cached parse.
func (n *Node) settings(sh *shard) reclaim.Settings {
	var rawMax, rawPol []byte
	_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) {
		rawMax, _ = e.Meta(metaMaxMemory)
		rawPol, _ = e.Meta(metaPolicy)
	})
	c := &sh.settings
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && bytes.Equal(rawMax, c.rawMax) && bytes.Equal(rawPol, c.rawPol) {
		return c.settings
	}
	s := reclaim.Settings{MaxMemoryBytes: n.shardBudget(n.cfg.MaxMemoryBytes)}
	if v, err := strconv.ParseInt(string(rawMax), 10, 64); err == nil && v >= 0 {
		s.MaxMemoryBytes = n.shardBudget(v)
	}
	name := n.cfg.EvictionPolicy
	if len(rawPol) > 0 {
		name = string(rawPol)
	}
	p, err := eviction.New(name)
	if err != nil {
		n.log.Error("unknown eviction policy in force; using noeviction", "policy", name, "err", err)
		p, _ = eviction.New(DefaultEvictionPolicy)
	}
	if c.valid && c.settings.Policy != nil && c.settings.Policy.Name() == p.Name() {
		p = c.settings.Policy
	}
	s.Policy = p
	c.rawMax, c.rawPol, c.settings, c.valid = bytes.Clone(rawMax), bytes.Clone(rawPol), s, true
	return s
}

// shardBudget is one replica's share of a node's memory budget: the node
// budget divided by the most replicas the placement puts on any node, so
// that no node holds more than its budget when its shards are full. Keys
// spread evenly over shards (within a few percent at the default key
// vnodes), so the shares fill evenly too. 0 (no budget) stays 0.
func (n *Node) shardBudget(nodeBudget int64) int64 {
	if nodeBudget <= 0 {
		return 0
	}
	most := 1
	for _, l := range n.view().place.Nodes {
		most = max(most, l.Replicas)
	}
	return max(1, nodeBudget/int64(most))
}

// stampBudget sets the noeviction budget on a write command for sh.
func (n *Node) stampBudget(sh *shard, cmd *engine.Command) {
	s := n.settings(sh)
	if s.MaxMemoryBytes > 0 && s.Policy.Name() == "noeviction" {
		cmd.MaxMemoryBytes = s.MaxMemoryBytes
	}
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

// GetConfig reads every shard's stored settings linearizably (each on its
// leader, after a read-index check), so a GetConfig after a SetConfig sees
// it whichever nodes answer them. If the shards disagree (a SetConfig that
// failed part way) it fails with FAILED_PRECONDITION naming them, since no
// single answer would be true; setting the values again mends it.
func (s *clusterService) GetConfig(ctx context.Context, req *connect.Request[wispv1.GetConfigRequest]) (*connect.Response[wispv1.GetConfigResponse], error) {
	n := s.n
	one := func(ctx context.Context, id int) (*connect.Response[wispv1.GetConfigResponse], error) {
		return serve(ctx, n, id, req, true, func(sh *shard) (*wispv1.GetConfigResponse, error) {
			if err := sh.group.Read(ctx, raftgroup.Linearizable, func(*engine.Engine) {}); err != nil {
				return nil, err
			}
			set, eff := n.config(sh)
			return &wispv1.GetConfigResponse{Config: set, Effective: eff}, nil
		}, func(ctx context.Context, url string, r *connect.Request[wispv1.GetConfigRequest]) (*connect.Response[wispv1.GetConfigResponse], error) {
			return n.fwd.cluster(url).GetConfig(ctx, r)
		})
	}
	if id, ok := targetShard(req.Header(), n.cfg.Shards); ok {
		return one(ctx, id) // one shard's part of another node's GetConfig
	}
	resps, errs := fanOut(ctx, n.cfg.Shards, one)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	var differ []string
	for id, r := range resps[1:] {
		if !proto.Equal(r.Msg.Config, resps[0].Msg.Config) {
			differ = append(differ, strconv.Itoa(id+1))
		}
	}
	if len(differ) > 0 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"the settings stored in shard(s) %s differ from shard 0's (a config set failed part way): set them again with wisp config set",
			strings.Join(differ, ", ")))
	}
	return resps[0], nil
}

// SetConfig validates the new settings and replicates them through every
// shard's log (concurrently); every replica picks them up when it applies
// the entry. If some shard fails, the call fails and says how many took
// the change: setting the same values again is safe.
func (s *clusterService) SetConfig(ctx context.Context, req *connect.Request[wispv1.SetConfigRequest]) (*connect.Response[wispv1.SetConfigResponse], error) {
	c := req.Msg.Config
	if c == nil || (c.MaxMemoryBytes == nil && c.EvictionPolicy == nil) {
		return nil, invalidArgument("config sets nothing: give max_memory_bytes or eviction_policy")
	}
	var muts []engine.Mutation
	if c.MaxMemoryBytes != nil {
		if *c.MaxMemoryBytes < 0 {
			return nil, invalidArgument("max_memory_bytes must not be negative (got %d); 0 means no limit", *c.MaxMemoryBytes)
		}
		muts = append(muts, engine.Mutation{Op: engine.OpSetMeta, Key: []byte(metaMaxMemory), Value: strconv.AppendInt(nil, *c.MaxMemoryBytes, 10)})
	}
	if c.EvictionPolicy != nil {
		if _, err := eviction.New(*c.EvictionPolicy); err != nil {
			return nil, invalidArgument("%v", err)
		}
		muts = append(muts, engine.Mutation{Op: engine.OpSetMeta, Key: []byte(metaPolicy), Value: []byte(*c.EvictionPolicy)})
	}
	one := func(ctx context.Context, id int) (*connect.Response[wispv1.SetConfigResponse], error) {
		return serve(ctx, s.n, id, req, false, func(sh *shard) (*wispv1.SetConfigResponse, error) {
			if _, err := sh.group.Propose(ctx, &engine.Command{Mutations: muts}); err != nil {
				return nil, err
			}
			set, eff := s.n.config(sh)
			return &wispv1.SetConfigResponse{Config: set, Effective: eff}, nil
		}, func(ctx context.Context, url string, r *connect.Request[wispv1.SetConfigRequest]) (*connect.Response[wispv1.SetConfigResponse], error) {
			return s.n.fwd.cluster(url).SetConfig(ctx, r)
		})
	}
	if id, ok := targetShard(req.Header(), s.n.cfg.Shards); ok {
		return one(ctx, id) // one shard's part of another node's SetConfig
	}
	resps, errs := fanOut(ctx, s.n.cfg.Shards, one)
	var failed []error
	for id, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("shard %d: %w", id, err))
		}
	}
	if len(failed) > 0 {
		first := failed[0]
		return nil, connect.NewError(connect.CodeOf(errors.Unwrap(first)), fmt.Errorf(
			"config applied to %d of %d shards; setting it again is safe: %s", s.n.cfg.Shards-len(failed), s.n.cfg.Shards, errMessage(errors.Unwrap(first))))
	}
	return resps[0], nil
}

// config returns the cluster-wide settings as stored in sh and as in force
// on this node (the node budget, not sh's share of it).
func (n *Node) config(sh *shard) (set, effective *wispv1.ClusterConfig) {
	set = &wispv1.ClusterConfig{}
	_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) {
		if v, ok := e.Meta(metaMaxMemory); ok {
			if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				set.MaxMemoryBytes = &i
			}
		}
		if v, ok := e.Meta(metaPolicy); ok {
			p := string(v)
			set.EvictionPolicy = &p
		}
	})
	budget := n.cfg.MaxMemoryBytes
	if set.MaxMemoryBytes != nil {
		budget = *set.MaxMemoryBytes
	}
	name := n.settings(sh).Policy.Name()
	return set, &wispv1.ClusterConfig{MaxMemoryBytes: &budget, EvictionPolicy: &name}
}

func memoryFullError(shard int, budget int64) error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"shard %d's memory budget of %d bytes (its share of the node budget) is full and the eviction policy is noeviction: delete keys, raise the budget (wisp config set max-memory), or choose an eviction policy", shard, budget))
}
