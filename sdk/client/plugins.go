package client

import (
	"context"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Plugins (docs/PLUGINS.md): WebAssembly modules that make eviction and TTL
// decisions. Uploading and changing which version is active are operator
// actions: give the Client the operator token (WithOperatorToken). Listing
// needs none.

// Plugin kinds.
const (
	PluginEviction = "eviction"
	PluginTTL      = "ttl"
)

// UploadPlugin validates module as a plugin of kind (PluginEviction or
// PluginTTL) and stores it as plugin name's next version. The same module
// again is the version already stored (existed is set).
func (c *Client) UploadPlugin(ctx context.Context, name, kind string, module []byte) (*wispv1.UploadPluginResponse, error) {
	return pluginCall(ctx, c, "upload plugin", &wispv1.UploadPluginRequest{Name: name, Kind: kind, Module: module}, wispv1PluginUpload)
}

// ActivatePlugin makes version the plugin's active version, for keys under
// prefix ("" for all keys). It returns the cluster map's epoch after the
// change: every node switches at that epoch.
func (c *Client) ActivatePlugin(ctx context.Context, name string, version uint32, prefix string) (epoch uint64, err error) {
	res, err := pluginCall(ctx, c, "activate plugin", &wispv1.ActivatePluginRequest{Name: name, Version: version, Prefix: prefix}, wispv1PluginActivate)
	if err != nil {
		return 0, err
	}
	return res.Epoch, nil
}

// DeactivatePlugin makes the plugin inactive: the built-in policy decides
// again.
func (c *Client) DeactivatePlugin(ctx context.Context, name string) (epoch uint64, err error) {
	res, err := pluginCall(ctx, c, "deactivate plugin", &wispv1.DeactivatePluginRequest{Name: name}, wispv1PluginDeactivate)
	if err != nil {
		return 0, err
	}
	return res.Epoch, nil
}

// RollbackPlugin makes the previously active version active again and
// returns it.
func (c *Client) RollbackPlugin(ctx context.Context, name string) (version uint32, epoch uint64, err error) {
	res, err := pluginCall(ctx, c, "roll back plugin", &wispv1.RollbackPluginRequest{Name: name}, wispv1PluginRollback)
	if err != nil {
		return 0, 0, err
	}
	return res.Version, res.Epoch, nil
}

// ListPlugins reports every plugin, its versions, where each is active,
// and each node's state of the active version.
func (c *Client) ListPlugins(ctx context.Context) (*wispv1.ListPluginsResponse, error) {
	return pluginCall(ctx, c, "list plugins", &wispv1.ListPluginsRequest{}, wispv1PluginList)
}

// The PluginService calls, as pluginCall makes them.
func wispv1PluginUpload(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.UploadPluginRequest]) (*connect.Response[wispv1.UploadPluginResponse], error) {
	return ep.plugin.UploadPlugin(ctx, r)
}

func wispv1PluginActivate(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.ActivatePluginRequest]) (*connect.Response[wispv1.ActivatePluginResponse], error) {
	return ep.plugin.ActivatePlugin(ctx, r)
}

func wispv1PluginDeactivate(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.DeactivatePluginRequest]) (*connect.Response[wispv1.DeactivatePluginResponse], error) {
	return ep.plugin.DeactivatePlugin(ctx, r)
}

func wispv1PluginRollback(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.RollbackPluginRequest]) (*connect.Response[wispv1.RollbackPluginResponse], error) {
	return ep.plugin.RollbackPlugin(ctx, r)
}

func wispv1PluginList(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.ListPluginsRequest]) (*connect.Response[wispv1.ListPluginsResponse], error) {
	return ep.plugin.ListPlugins(ctx, r)
}

// pluginCall makes one PluginService call, with the operator token, retried
// like any call that is not routed by key. A retried upload or activation
// is harmless: the same module is the same version, and activating the
// active version changes nothing.
func pluginCall[Req, Res any](ctx context.Context, c *Client, op string, msg *Req,
	call func(context.Context, *endpoint, *connect.Request[Req]) (*connect.Response[Res], error),
) (*Res, error) {
	ctx, stop := c.withTimeout(ctx)
	defer stop()
	res, attempts, err := invoke(ctx, c, writeCall, nil, func(ctx context.Context, ep *endpoint) (*Res, error) {
		req := connect.NewRequest(msg)
		if c.operatorToken != "" {
			req.Header().Set("Authorization", "Bearer "+c.operatorToken)
		}
		r, err := call(ctx, ep, req)
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return nil, wrapError(op, "", attempts, err)
	}
	return res, nil
}

// GetPluginModule returns a stored version's module and kind.
func (c *Client) GetPluginModule(ctx context.Context, name string, version uint32) (*wispv1.GetPluginModuleResponse, error) {
	return pluginCall(ctx, c, "get plugin module", &wispv1.GetPluginModuleRequest{Name: name, Version: version}, wispv1PluginModule)
}

// StartTrace has every node record a sampled access trace (one key in
// sample, by its hash) for d, and returns the nodes that started. An
// operator action. Collect the trace with GetTrace once d has passed.
func (c *Client) StartTrace(ctx context.Context, d time.Duration, sample uint32) ([]string, error) {
	res, err := pluginCall(ctx, c, "start trace", &wispv1.StartTraceRequest{DurationMs: uint32(d.Milliseconds()), Sample: sample}, wispv1StartTrace)
	if err != nil {
		return nil, err
	}
	return res.Nodes, nil
}

// GetTrace collects the access trace every node recorded, merged by time.
// An operator action.
func (c *Client) GetTrace(ctx context.Context) (*wispv1.GetTraceResponse, error) {
	return pluginCall(ctx, c, "get trace", &wispv1.GetTraceRequest{}, wispv1GetTrace)
}

func wispv1PluginModule(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.GetPluginModuleRequest]) (*connect.Response[wispv1.GetPluginModuleResponse], error) {
	return ep.plugin.GetPluginModule(ctx, r)
}

func wispv1StartTrace(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.StartTraceRequest]) (*connect.Response[wispv1.StartTraceResponse], error) {
	return ep.plugin.StartTrace(ctx, r)
}

func wispv1GetTrace(ctx context.Context, ep *endpoint, r *connect.Request[wispv1.GetTraceRequest]) (*connect.Response[wispv1.GetTraceResponse], error) {
	return ep.plugin.GetTrace(ctx, r)
}
