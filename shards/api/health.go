package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// services are the RPC services the API port serves, as gRPC reflection
// and health checks name them.
var services = []string{wispv1connect.KVServiceName, wispv1connect.ClusterServiceName, wispv1connect.PluginServiceName}

// healthz answers 200 when the node is healthy, 503 (naming the shards
// without a leader) otherwise.
func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	leaderless, replicas, leaders := a.node.Health()
	if len(leaderless) > 0 {
		ids := make([]string, len(leaderless))
		for i, id := range leaderless {
			ids[i] = fmt.Sprint(id)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"no leader","node":%q,"shards_without_leader":[%s]}`+"\n", a.node.ID(), strings.Join(ids, ","))
		return
	}
	fmt.Fprintf(w, `{"status":"ok","node":%q,"replicas":%d,"leaders":%d}`+"\n", a.node.ID(), replicas, leaders)
}

// healthChecker answers the standard gRPC health service
// (grpc.health.v1.Health/Check, as Kubernetes gRPC probes and grpc-health-probe
// call it) with the same judgement as /healthz, for the whole node ("") and
// for each of its services alike.
type healthChecker struct{ n Node }

func (c healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && req.Service != grpchealth.HealthV1ServiceName && !slices.Contains(services, req.Service) {
		return nil, notFound("unknown service")
	}
	if leaderless, _, _ := c.n.Health(); len(leaderless) > 0 {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// handleGRPCTools mounts gRPC server reflection (v1 and v1alpha, so grpcurl
// and grpcui work without the .proto files) and the gRPC health service.
func (a *API) handleGRPCTools(mux *http.ServeMux, opts ...connect.HandlerOption) {
	reflector := grpcreflect.NewStaticReflector(slices.Concat(services, []string{grpchealth.HealthV1ServiceName})...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	mux.Handle(grpchealth.NewHandler(healthChecker{a.node}, opts...))
}

// readyz answers 200 when the whole cluster is ready (Status.ready), 503
// with the reasons otherwise. Unlike /healthz (this node can serve), it
// judges the whole cluster: what a rolling restart waits for.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
	defer cancel()
	st := a.node.Status(ctx, true)
	w.Header().Set("Content-Type", "application/json")
	if !st.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(struct {
		Ready    bool     `json:"ready"`
		Node     string   `json:"node"`
		NotReady []string `json:"not_ready,omitempty"`
	}{st.Ready, a.node.ID(), st.NotReady})
}

// readyzTimeout bounds /readyz's status round.
const readyzTimeout = 2 * time.Second
