package node

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Cluster settings (`wisp config`): the memory budget and the eviction
// policy every node applies. They live in the cluster map (meta.Settings),
// changed on the meta group's leader (ControlService.Settings) and pushed
// to every node with the map; a setting never set falls back to each
// node's flag.
//
// Before the meta group, SetConfig stored them in every shard's settings
// map (engine OpSetMeta). A node still reads those for any setting the map
// lacks (legacySettings), and the meta leader's placement driver copies
// them into the map once (migrateSettings), after which the map's win.

// Names of the settings in a shard's settings map (the legacy location).
const (
	legacyMaxMemory = "max_memory_bytes"
	legacyPolicy    = "eviction_policy"
)

// DefaultEvictionPolicy is used when neither the cluster setting nor the
// node's flag names one. Like Redis: never drop data unless told to.
const DefaultEvictionPolicy = "noeviction"

// settingsWait bounds how long SetConfig and GetConfig wait for the
// answering node's map to catch up with the meta group's, so that the
// effective values they report include the change.
const settingsWait = 5 * time.Second

// clusterSettings returns the settings in force: the map's, and for a
// field the map lacks, the legacy one of a hosted shard.
func (n *Node) clusterSettings(v *view, rs *replicaSet) meta.Settings {
	s := v.m.Settings
	if s.MaxMemoryBytes != nil && s.EvictionPolicy != nil {
		return s
	}
	legacy := legacySettings(rs)
	if s.MaxMemoryBytes == nil {
		s.MaxMemoryBytes = legacy.MaxMemoryBytes
	}
	if s.EvictionPolicy == nil {
		s.EvictionPolicy = legacy.EvictionPolicy
	}
	return s
}

// legacySettings reads the settings a SetConfig before the meta group
// stored in the shards: those of the first hosted shard that has any.
func legacySettings(rs *replicaSet) meta.Settings {
	var s meta.Settings
	for _, sh := range rs.hosted {
		_ = sh.group.Read(context.Background(), raftgroup.Stale, func(e *engine.Engine) {
			if v, ok := e.Meta(legacyMaxMemory); ok {
				if i, err := strconv.ParseInt(string(v), 10, 64); err == nil && i >= 0 {
					s.MaxMemoryBytes = &i
				}
			}
			if v, ok := e.Meta(legacyPolicy); ok && len(v) > 0 {
				p := string(v)
				s.EvictionPolicy = &p
			}
		})
		if s.MaxMemoryBytes != nil || s.EvictionPolicy != nil {
			return s
		}
	}
	return s
}

// migrateSettings copies the legacy settings of a shard this node hosts
// into the map, if the map has none. The placement driver calls it once
// per term as the meta group's leader.
func (d *driver) migrateSettings(ctx context.Context, m *meta.Map) error {
	if m.Settings.MaxMemoryBytes != nil || m.Settings.EvictionPolicy != nil {
		return nil
	}
	legacy := legacySettings(d.n.replicas())
	if legacy.MaxMemoryBytes == nil && legacy.EvictionPolicy == nil {
		return nil
	}
	if legacy.EvictionPolicy != nil {
		if _, err := eviction.New(*legacy.EvictionPolicy); err != nil {
			legacy.EvictionPolicy = nil // never valid: the nodes ignored it too
		}
	}
	if _, err := d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpSetSettings, Settings: &legacy}); err != nil {
		return fmt.Errorf("move the settings stored in the shards into the cluster map: %w", err)
	}
	d.n.log.Info("moved the cluster settings stored in the shards into the cluster map", "settings", settingsText(legacy))
	return nil
}

func settingsText(s meta.Settings) string {
	out := ""
	if s.MaxMemoryBytes != nil {
		out += fmt.Sprintf("max_memory_bytes=%d ", *s.MaxMemoryBytes)
	}
	if s.EvictionPolicy != nil {
		out += "eviction_policy=" + *s.EvictionPolicy
	}
	return out
}

// Settings sets the settings given (nil: leave as is) in the cluster map
// through the meta group's leader, and returns those set and those in
// force on this node once its map has reached them (api.Node).
func (n *Node) Settings(ctx context.Context, maxMemoryBytes *int64, evictionPolicy *string) (set, effective *wispv1.ClusterConfig, err error) {
	return n.applySettings(ctx, &controlv1.SettingsRequest{MaxMemoryBytes: maxMemoryBytes, EvictionPolicy: evictionPolicy})
}

// applySettings sends req to the meta group's leader and returns the
// settings it answers with, and those in force on this node once its map
// has caught up with them.
func (n *Node) applySettings(ctx context.Context, req *controlv1.SettingsRequest) (set, effective *wispv1.ClusterConfig, err error) {
	var res *controlv1.SettingsResponse
	err = n.onMetaLeader(ctx, func(ctx context.Context, c controlClient) error {
		r, err := c.Settings(ctx, connect.NewRequest(req))
		if err == nil {
			res = r.Msg
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, settingsWait)
	defer cancel()
	for n.view().epoch < res.Epoch && wctx.Err() == nil {
		sleep(wctx, 10*time.Millisecond)
	}
	now := n.refreshMemory()
	set = &wispv1.ClusterConfig{MaxMemoryBytes: res.MaxMemoryBytes, EvictionPolicy: res.EvictionPolicy}
	effective = &wispv1.ClusterConfig{MaxMemoryBytes: &now.mem.Budget, EvictionPolicy: &now.policy}
	return set, effective, nil
}

// Settings sets the settings given in the cluster map and returns them
// all, read linearizably. Only the meta group's leader answers.
func (s *controlService) Settings(ctx context.Context, req *connect.Request[controlv1.SettingsRequest]) (*connect.Response[controlv1.SettingsResponse], error) {
	mr := s.n.metaGroup()
	if mr == nil || !mr.group.IsLeader() {
		return nil, errNotMetaLeader
	}
	r := req.Msg
	if r.MaxMemoryBytes != nil || r.EvictionPolicy != nil {
		if r.EvictionPolicy != nil {
			if _, err := eviction.New(*r.EvictionPolicy); err != nil {
				return nil, invalidArgument("%v", err)
			}
		}
		cmd := &meta.Command{Op: meta.OpSetSettings, Settings: &meta.Settings{MaxMemoryBytes: r.MaxMemoryBytes, EvictionPolicy: r.EvictionPolicy}}
		if _, err := mr.store.Apply(ctx, cmd); err != nil {
			return nil, controlError(connect.CodeUnavailable, err)
		}
	}
	m, _, err := mr.store.Map(ctx, raftgroup.Linearizable)
	if err != nil {
		return nil, controlError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&controlv1.SettingsResponse{Epoch: m.Epoch, MaxMemoryBytes: m.Settings.MaxMemoryBytes, EvictionPolicy: m.Settings.EvictionPolicy}), nil
}
