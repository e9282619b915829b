package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/metastore"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// The plugin lifecycle an operator drives (wisp.v1.PluginService through
// shards/api): the node that takes an upload validates the module in its
// own host, then, like every registry change, passes it to the meta
// group's leader over the control plane (ControlService.ChangePlugin),
// which stores the module beside the map and changes the map.

// UploadPlugin validates wasm as a plugin of kind and has it stored as
// the plugin's next version (api.Node). An invalid module is an error
// wrapping plugins.ErrInvalidModule, with the reason.
func (n *Node) UploadPlugin(ctx context.Context, name, kind string, wasm []byte) (*wispv1.UploadPluginResponse, error) {
	if err := n.plugins.host.Validate(ctx, plugins.Kind(kind), wasm); err != nil {
		return nil, err
	}
	res, err := n.changePlugin(ctx, &controlv1.ChangePluginRequest{Change: controlv1.PluginChange_PLUGIN_CHANGE_UPLOAD, Name: name, Kind: kind, Module: wasm})
	if err != nil {
		return nil, err
	}
	return &wispv1.UploadPluginResponse{Version: res.Version, Sha256: res.Sha256, Existed: res.Existed, Epoch: res.Epoch}, nil
}

// ActivatePlugin, DeactivatePlugin and RollbackPlugin change which
// version of a plugin is active (api.Node); they return the map's epoch
// after, and RollbackPlugin the version active now.
func (n *Node) ActivatePlugin(ctx context.Context, name string, version uint32, prefix string) (uint64, error) {
	res, err := n.changePlugin(ctx, &controlv1.ChangePluginRequest{Change: controlv1.PluginChange_PLUGIN_CHANGE_ACTIVATE, Name: name, Version: version, Prefix: prefix})
	if err != nil {
		return 0, err
	}
	return res.Epoch, nil
}

func (n *Node) DeactivatePlugin(ctx context.Context, name string) (uint64, error) {
	res, err := n.changePlugin(ctx, &controlv1.ChangePluginRequest{Change: controlv1.PluginChange_PLUGIN_CHANGE_DEACTIVATE, Name: name})
	if err != nil {
		return 0, err
	}
	return res.Epoch, nil
}

func (n *Node) RollbackPlugin(ctx context.Context, name string) (uint32, uint64, error) {
	res, err := n.changePlugin(ctx, &controlv1.ChangePluginRequest{Change: controlv1.PluginChange_PLUGIN_CHANGE_ROLLBACK, Name: name})
	if err != nil {
		return 0, 0, err
	}
	return res.Version, res.Epoch, nil
}

// changePlugin has the meta group's leader make a registry change, then
// waits (bounded) until this node's map has it, so that a List right
// after shows it.
func (n *Node) changePlugin(ctx context.Context, req *controlv1.ChangePluginRequest) (*controlv1.ChangePluginResponse, error) {
	var res *controlv1.ChangePluginResponse
	err := n.onMetaLeader(ctx, func(ctx context.Context, c controlClient) error {
		r, err := c.ChangePlugin(ctx, connect.NewRequest(req))
		if err == nil {
			res = r.Msg
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, settingsWait)
	defer cancel()
	for n.view().epoch < res.Epoch && wctx.Err() == nil {
		sleep(wctx, 10*time.Millisecond)
	}
	return res, nil
}

// ChangePlugin makes a registry change on the meta group's leader.
func (s *controlService) ChangePlugin(ctx context.Context, req *connect.Request[controlv1.ChangePluginRequest]) (*connect.Response[controlv1.ChangePluginResponse], error) {
	mr := s.n.metaGroup()
	if mr == nil || !mr.group.IsLeader() {
		return nil, errNotMetaLeader
	}
	r := req.Msg
	pc := &meta.PluginCommand{Name: r.Name}
	cmd := &meta.Command{Plugin: pc}
	switch r.Change {
	case controlv1.PluginChange_PLUGIN_CHANGE_UPLOAD:
		if len(r.Module) == 0 || len(r.Module) > plugins.DefaultModuleSizeBytesMax {
			return nil, invalidArgument("module of %d bytes: want 1 to %d", len(r.Module), plugins.DefaultModuleSizeBytesMax)
		}
		sum, err := mr.store.PutModule(ctx, r.Module)
		if err != nil {
			return nil, controlError(connect.CodeUnavailable, err)
		}
		cmd.Op = meta.OpAddPlugin
		pc.Kind, pc.SHA256, pc.SizeBytes, pc.AtUnixMs = r.Kind, hex.EncodeToString(sum[:]), int64(len(r.Module)), mr.group.NowUnixMs()
	case controlv1.PluginChange_PLUGIN_CHANGE_ACTIVATE:
		cmd.Op, pc.Version, pc.Prefix = meta.OpActivatePlugin, int(r.Version), r.Prefix
	case controlv1.PluginChange_PLUGIN_CHANGE_DEACTIVATE:
		cmd.Op = meta.OpDeactivatePlugin
	case controlv1.PluginChange_PLUGIN_CHANGE_ROLLBACK:
		cmd.Op = meta.OpRollbackPlugin
	default:
		return nil, invalidArgument("unknown plugin change %v", r.Change)
	}
	before, _, err := mr.store.Map(ctx, raftgroup.Linearizable)
	if err != nil {
		return nil, controlError(connect.CodeUnavailable, err)
	}
	next, err := mr.store.Apply(ctx, cmd)
	switch {
	case errors.Is(err, meta.ErrUnknownPlugin):
		return nil, notFound("%v", err)
	case errors.Is(err, meta.ErrNotBootstrapped):
		// A new cluster's map is made by the leader's first driver tick;
		// the caller retries.
		return nil, controlError(connect.CodeUnavailable, errors.New("the cluster map is not made yet"))
	case errors.Is(err, meta.ErrPluginConflict):
		return nil, failedPrecondition("%v", err)
	case errors.Is(err, meta.ErrInvalid):
		return nil, invalidArgument("%v", err)
	case err != nil:
		return nil, controlError(connect.CodeUnavailable, err)
	}
	res := &controlv1.ChangePluginResponse{Epoch: next.Epoch}
	p, _ := next.Plugin(r.Name)
	switch cmd.Op {
	case meta.OpAddPlugin:
		res.Sha256 = pc.SHA256
		for _, v := range p.Versions {
			if v.SHA256 == pc.SHA256 {
				res.Version = uint32(v.Version)
			}
		}
		if old, ok := before.Plugin(r.Name); ok {
			for _, v := range old.Versions {
				res.Existed = res.Existed || v.SHA256 == pc.SHA256
			}
		}
	case meta.OpRollbackPlugin:
		res.Version = uint32(p.Active)
	}
	s.n.log.Info("plugin registry changed", "plugin", r.Name, "change", r.Change.String(), "version", res.Version, "epoch", next.Epoch)
	return connect.NewResponse(res), nil
}

// Module serves a stored module from this node's meta replica.
func (s *controlService) Module(ctx context.Context, req *connect.Request[controlv1.ModuleRequest]) (*connect.Response[controlv1.ModuleResponse], error) {
	mr := s.n.metaGroup()
	if mr == nil {
		return nil, controlError(connect.CodeNotFound, errors.New("this node holds no replica of the meta group"))
	}
	raw, err := hex.DecodeString(req.Msg.Sha256)
	if err != nil || len(raw) != sha256.Size {
		return nil, controlError(connect.CodeInvalidArgument, fmt.Errorf("sha256 %q", req.Msg.Sha256))
	}
	wasm, err := mr.store.Module(ctx, raftgroup.Stale, [sha256.Size]byte(raw))
	switch {
	case errors.Is(err, metastore.ErrNoModule):
		return nil, controlError(connect.CodeNotFound, err)
	case err != nil:
		return nil, controlError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&controlv1.ModuleResponse{Module: wasm}), nil
}

// PluginStates reports this node's plugins.
func (s *controlService) PluginStates(context.Context, *connect.Request[controlv1.PluginStatesRequest]) (*connect.Response[controlv1.PluginStatesResponse], error) {
	res := &controlv1.PluginStatesResponse{}
	for _, st := range s.n.plugins.states() {
		res.Plugins = append(res.Plugins, &controlv1.PluginState{
			Name: st.name, Version: uint32(st.version), Sha256: st.sum, State: st.state, LastError: st.lastError,
			Calls: st.calls, Fallbacks: st.fallbacks, P99CallMs: float64(st.p99.Microseconds()) / 1000,
		})
	}
	return connect.NewResponse(res), nil
}

// ListPlugins reports the registry as this node's map has it, and each
// node's state of every active version (api.Node): asked of the members
// concurrently (eachMember).
func (n *Node) ListPlugins(ctx context.Context) *wispv1.ListPluginsResponse {
	m := n.view().m
	res := &wispv1.ListPluginsResponse{Epoch: m.Epoch}
	states := map[string][]*controlv1.PluginState{} // by node id, of those that answered
	var mu sync.Mutex
	n.eachMember(ctx, func(ctx context.Context, id string, c controlClient) {
		r, err := c.PluginStates(ctx, connect.NewRequest(&controlv1.PluginStatesRequest{}))
		if err == nil {
			mu.Lock()
			states[id] = r.Msg.Plugins
			mu.Unlock()
		}
	})
	for _, p := range m.Plugins {
		out := &wispv1.Plugin{Name: p.Name, Kind: p.Kind, Active: uint32(p.Active), Prefix: p.Prefix, Previous: uint32(p.Previous), ActivatedEpoch: p.ActivatedEpoch}
		for _, v := range p.Versions {
			out.Versions = append(out.Versions, &wispv1.PluginVersion{Version: uint32(v.Version), Sha256: v.SHA256, SizeBytes: v.SizeBytes, UploadedUnixMs: v.UploadedUnixMs})
		}
		if p.Active != 0 {
			for _, nd := range m.Nodes {
				ns := &wispv1.PluginNodeState{NodeId: nd.ID, Version: uint32(p.Active), State: "unreachable"}
				if sts, ok := states[nd.ID]; ok {
					ns.State = pluginLoading
					for _, st := range sts {
						if st.Name == p.Name && st.Version == uint32(p.Active) {
							ns.State, ns.LastError, ns.Calls, ns.Fallbacks, ns.P99CallMs = st.State, st.LastError, st.Calls, st.Fallbacks, st.P99CallMs
						}
					}
				}
				out.Nodes = append(out.Nodes, ns)
			}
		}
		res.Plugins = append(res.Plugins, out)
	}
	return res
}

// GetPluginModule returns a stored version's module (api.Node): from this
// node's cache if it ran it, else from the meta group. An unknown plugin
// or version is an error wrapping meta.ErrUnknownPlugin.
func (n *Node) GetPluginModule(ctx context.Context, name string, version uint32) (*wispv1.GetPluginModuleResponse, error) {
	p, ok := n.view().m.Plugin(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", meta.ErrUnknownPlugin, name)
	}
	pv, ok := p.Version(int(version))
	if !ok {
		return nil, fmt.Errorf("%w: %s has no version %d", meta.ErrUnknownPlugin, name, version)
	}
	wasm, err := n.plugins.fetch(ctx, pv.SHA256)
	if err != nil {
		return nil, err
	}
	return &wispv1.GetPluginModuleResponse{Module: wasm, Sha256: pv.SHA256, Kind: p.Kind}, nil
}
