package node

import (
	"context"
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
var services = []string{wispv1connect.KVServiceName, wispv1connect.ClusterServiceName}

// health reports the hosted shards that know no leader, and how many the
// node leads. A node is healthy when every replica it hosts knows its
// shard's leader: then every request it takes can be served or forwarded.
func (n *Node) health() (leaderless []int, leaders int) {
	for _, sh := range n.replicas().hosted {
		id, _ := sh.group.Leader()
		switch id {
		case "":
			leaderless = append(leaderless, sh.id)
		case n.cfg.ID:
			leaders++
		}
	}
	return leaderless, leaders
}

// healthz answers 200 when the node is healthy, 503 (naming the shards
// without a leader) otherwise.
func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	leaderless, leaders := n.health()
	if len(leaderless) > 0 {
		ids := make([]string, len(leaderless))
		for i, id := range leaderless {
			ids[i] = fmt.Sprint(id)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"no leader","node":%q,"shards_without_leader":[%s]}`+"\n", n.cfg.ID, strings.Join(ids, ","))
		return
	}
	fmt.Fprintf(w, `{"status":"ok","node":%q,"replicas":%d,"leaders":%d}`+"\n", n.cfg.ID, len(n.replicas().hosted), leaders)
}

// healthChecker answers the standard gRPC health service
// (grpc.health.v1.Health/Check, as Kubernetes gRPC probes and grpc-health-probe
// call it) with the same judgement as /healthz, for the whole node ("") and
// for each of its services alike.
type healthChecker struct{ n *Node }

func (c healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && req.Service != grpchealth.HealthV1ServiceName && !slices.Contains(services, req.Service) {
		return nil, notFound("unknown service")
	}
	if leaderless, _ := c.n.health(); len(leaderless) > 0 {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// handleGRPCTools mounts gRPC server reflection (v1 and v1alpha, so grpcurl
// and grpcui work without the .proto files) and the gRPC health service.
func (n *Node) handleGRPCTools(mux *http.ServeMux, opts ...connect.HandlerOption) {
	reflector := grpcreflect.NewStaticReflector(slices.Concat(services, []string{grpchealth.HealthV1ServiceName})...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	mux.Handle(grpchealth.NewHandler(healthChecker{n}, opts...))
}

// WaitReady blocks until the node is healthy (every replica it hosts knows
// its shard's leader, as /healthz reports) or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		leaderless, _ := n.health()
		if len(leaderless) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: shards %v have no leader: %w", n.cfg.ID, leaderless, ctx.Err())
		case <-t.C:
		}
	}
}

// readyPoll is how often WaitReady looks.
const readyPoll = 20 * time.Millisecond
