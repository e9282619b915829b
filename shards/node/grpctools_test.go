package node_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestGRPCHealthAndReflection calls the API port with grpc-go, as grpcurl
// and Kubernetes gRPC probes do: the standard health service answers
// SERVING for the node and its services, and server reflection lists the
// services and serves their descriptors, so no .proto files are needed.
func TestGRPCHealthAndReflection(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	conn, err := grpc.NewClient(strings.TrimPrefix(c.URL(1), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := ctxT(t)

	health := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "wisp.v1.KVService", "wisp.v1.ClusterService"} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Health.Check(%q) = %v, %v; want SERVING", svc, resp, err)
		}
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Health.Check(no.such.Service) = %v; want NotFound", err)
	}

	stream, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectpb.ServerReflectionRequest) *reflectpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatalf("reflection send: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("reflection recv: %v", err)
		}
		return resp
	}
	var names []string
	for _, s := range ask(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}}).GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"wisp.v1.KVService", "wisp.v1.ClusterService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %q; want %s among them", names, want)
		}
	}
	files := ask(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "wisp.v1.KVService"}}).GetFileDescriptorResponse()
	if files == nil || len(files.FileDescriptorProto) == 0 {
		t.Errorf("reflection FileContainingSymbol(wisp.v1.KVService): no descriptors")
	}
	stream.CloseSend()
}

// TestGRPCHealthNotServing: a node whose shards have no leader (the other
// two nodes are down) reports NOT_SERVING, as /healthz reports 503.
func TestGRPCHealthNotServing(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	c.Kill(1)
	c.Kill(2)
	conn, err := grpc.NewClient(strings.TrimPrefix(c.URL(0), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	ctx := ctxT(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_NOT_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Health.Check on a node without quorum = %v, %v; want NOT_SERVING within 5s", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
