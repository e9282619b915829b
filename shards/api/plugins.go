package api

import (
	"context"
	"crypto/subtle"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/shards/meta"
)

// pluginService implements wisp.v1.PluginService: it checks what a client
// sent (and, for the operator actions, the operator token) and the node
// does the rest.
type pluginService struct{ a *API }

var _ wispv1connect.PluginServiceHandler = (*pluginService)(nil)

// PluginNode is what the plugin handlers need of the node.
type PluginNode interface {
	UploadPlugin(ctx context.Context, name, kind string, wasm []byte) (*wispv1.UploadPluginResponse, error)
	ActivatePlugin(ctx context.Context, name string, version uint32, prefix string) (uint64, error)
	DeactivatePlugin(ctx context.Context, name string) (uint64, error)
	RollbackPlugin(ctx context.Context, name string) (version uint32, epoch uint64, err error)
	ListPlugins(ctx context.Context) *wispv1.ListPluginsResponse
	// GetPluginModule returns a stored version's module; an unknown one is
	// an error wrapping meta.ErrUnknownPlugin.
	GetPluginModule(ctx context.Context, name string, version uint32) (*wispv1.GetPluginModuleResponse, error)
	// StartTrace has every node record a sampled access trace for d and
	// returns the nodes that started; GetTrace collects it.
	StartTrace(ctx context.Context, d time.Duration, sample uint32) []string
	GetTrace(ctx context.Context) *wispv1.GetTraceResponse
}

func (s *pluginService) UploadPlugin(ctx context.Context, req *connect.Request[wispv1.UploadPluginRequest]) (*connect.Response[wispv1.UploadPluginResponse], error) {
	m := req.Msg
	if err := checkPluginName(m.Name); err != nil {
		return nil, err
	}
	if !slices.Contains(plugins.Kinds(), plugins.Kind(m.Kind)) {
		return nil, invalidArgument("kind %q: want one of %s", m.Kind, kindsText())
	}
	if len(m.Module) == 0 {
		return nil, invalidArgument("module is empty")
	}
	res, err := s.a.node.UploadPlugin(ctx, m.Name, m.Kind, m.Module)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(res), nil
}

func (s *pluginService) ActivatePlugin(ctx context.Context, req *connect.Request[wispv1.ActivatePluginRequest]) (*connect.Response[wispv1.ActivatePluginResponse], error) {
	m := req.Msg
	if err := checkPluginName(m.Name); err != nil {
		return nil, err
	}
	if m.Version == 0 {
		return nil, invalidArgument("version is missing: name one, as NAME@VERSION (wisp plugin list shows them)")
	}
	if len(m.Prefix) > meta.MaxPluginPrefixBytes || !utf8.ValidString(m.Prefix) {
		return nil, invalidArgument("prefix must be UTF-8 of at most %d bytes", meta.MaxPluginPrefixBytes)
	}
	epoch, err := s.a.node.ActivatePlugin(ctx, m.Name, m.Version, m.Prefix)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.ActivatePluginResponse{Epoch: epoch}), nil
}

func (s *pluginService) DeactivatePlugin(ctx context.Context, req *connect.Request[wispv1.DeactivatePluginRequest]) (*connect.Response[wispv1.DeactivatePluginResponse], error) {
	if err := checkPluginName(req.Msg.Name); err != nil {
		return nil, err
	}
	epoch, err := s.a.node.DeactivatePlugin(ctx, req.Msg.Name)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.DeactivatePluginResponse{Epoch: epoch}), nil
}

func (s *pluginService) RollbackPlugin(ctx context.Context, req *connect.Request[wispv1.RollbackPluginRequest]) (*connect.Response[wispv1.RollbackPluginResponse], error) {
	if err := checkPluginName(req.Msg.Name); err != nil {
		return nil, err
	}
	version, epoch, err := s.a.node.RollbackPlugin(ctx, req.Msg.Name)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(&wispv1.RollbackPluginResponse{Version: version, Epoch: epoch}), nil
}

func (s *pluginService) ListPlugins(ctx context.Context, _ *connect.Request[wispv1.ListPluginsRequest]) (*connect.Response[wispv1.ListPluginsResponse], error) {
	return connect.NewResponse(s.a.node.ListPlugins(ctx)), nil
}

func (s *pluginService) GetPluginModule(ctx context.Context, req *connect.Request[wispv1.GetPluginModuleRequest]) (*connect.Response[wispv1.GetPluginModuleResponse], error) {
	if err := checkPluginName(req.Msg.Name); err != nil {
		return nil, err
	}
	res, err := s.a.node.GetPluginModule(ctx, req.Msg.Name, req.Msg.Version)
	if err != nil {
		return nil, s.a.connectError(-1, err)
	}
	return connect.NewResponse(res), nil
}

// Bounds of a trace recording.
const (
	traceDurationMin = time.Second
	traceDurationMax = time.Hour
	traceSampleMax   = 1 << 16
)

func (s *pluginService) StartTrace(ctx context.Context, req *connect.Request[wispv1.StartTraceRequest]) (*connect.Response[wispv1.StartTraceResponse], error) {
	m := req.Msg
	d := time.Duration(m.DurationMs) * time.Millisecond
	if d < traceDurationMin || d > traceDurationMax {
		return nil, invalidArgument("duration_ms %d: want %v to %v", m.DurationMs, traceDurationMin, traceDurationMax)
	}
	if m.Sample > traceSampleMax {
		return nil, invalidArgument("sample %d: want 1 to %d (one key in sample is recorded)", m.Sample, traceSampleMax)
	}
	nodes := s.a.node.StartTrace(ctx, d, max(m.Sample, 1))
	if len(nodes) == 0 {
		return nil, unavailable("no node started recording; retry")
	}
	return connect.NewResponse(&wispv1.StartTraceResponse{Nodes: nodes}), nil
}

func (s *pluginService) GetTrace(ctx context.Context, _ *connect.Request[wispv1.GetTraceRequest]) (*connect.Response[wispv1.GetTraceResponse], error) {
	return connect.NewResponse(s.a.node.GetTrace(ctx)), nil
}

func checkPluginName(name string) error {
	if err := meta.CheckPluginName(name); err != nil {
		return invalidArgument("%v", err)
	}
	return nil
}

func kindsText() string {
	var names []string
	for _, k := range plugins.Kinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// operatorOnly refuses the operator actions (every PluginService call but
// ListPlugins and GetPluginModule, which only read the registry) without
// the operator token: UNAUTHENTICATED without the
// right bearer token, PERMISSION_DENIED on a node that has no token (the
// actions are then disabled, never open).
func (a *API) operatorOnly(token string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			switch req.Spec().Procedure {
			case wispv1connect.PluginServiceListPluginsProcedure, wispv1connect.PluginServiceGetPluginModuleProcedure:
				return next(ctx, req)
			}
			if err := checkOperator(token, req.Header().Get("Authorization")); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}
	})
}

// checkOperator checks an Authorization header against the operator
// token, in constant time.
func checkOperator(token, header string) error {
	if token == "" {
		return operatorDisabled()
	}
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return operatorRefused()
	}
	return nil
}
