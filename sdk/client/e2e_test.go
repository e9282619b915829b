package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
	"github.com/wisp-db/wisp/sdk/client"
	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestE2E runs the client against a real 3-node cluster: every protocol on
// every node, then a leader crash.
func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := nodetest.Start(t, nodetest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	for i := range c.Size() {
		for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolGRPC, client.ProtocolGRPCWeb} {
			t.Run(fmt.Sprintf("n%d/%s", i+1, p), func(t *testing.T) {
				cl := newClient(t, c.URL(i), client.WithProtocol(p))
				key := fmt.Sprintf("e2e/%s/n%d", p, i+1)
				v, err := cl.Put(ctx, key, []byte("v"), client.WithTTL(time.Minute))
				if err != nil {
					t.Fatalf("Put(%q) = %v", key, err)
				}
				item, found, err := cl.Get(ctx, key)
				if err != nil || !found || string(item.Value) != "v" || item.Version != v || item.ExpiresAt.IsZero() {
					t.Errorf("Get(%q) = %+v, %v, %v; want v at version %d with an expiry", key, item, found, err, v)
				}
				_, err = cl.Put(ctx, key, []byte("w"), client.WithIfVersion(v+1000))
				var pe *client.PreconditionError
				if !errors.As(err, &pe) || pe.Key != key || pe.CurrentVersion != v {
					t.Errorf("Put(%q, WithIfVersion) = %v; want a PreconditionError at version %d", key, err, v)
				}
			})
		}
	}

	cl := newClient(t, c.URL(0))
	results, err := cl.Batch(ctx, client.PutOp("e2e/batch/a", []byte("1")), client.IncrementOp("e2e/batch/n", 2))
	if err != nil || len(results) != 2 || results[1].Value != 2 {
		t.Errorf("Batch = %+v, %v; want 2 results, the counter at 2", results, err)
	}
	n := 0
	for _, err := range cl.ScanAll(ctx, client.ScanOptions{Prefix: "e2e/", Limit: 2, KeysOnly: true}) {
		if err != nil {
			t.Fatalf("ScanAll = %v", err)
		}
		n++
	}
	if want := 3*3 + 2; n != want {
		t.Errorf("ScanAll(e2e/) = %d keys; want %d", n, want)
	}
	st, err := cl.Status(ctx)
	if err != nil || len(st.GetNodes()) != c.Size() {
		t.Errorf("Status = %v, %v; want %d nodes", st, err, c.Size())
	}

	// A write through a follower retries through the election that
	// follows the leader's crash.
	leader := c.WaitLeader(10 * time.Second)
	follower := newClient(t, c.URL((leader+1)%c.Size()), client.WithMaxAttempts(20))
	c.Kill(leader)
	_, err = follower.Put(ctx, "e2e/after-kill", []byte("v"))
	if connect.CodeOf(err) == connect.CodeAborted {
		// The follower forwarded the write on a connection the kill cut
		// with it in flight: its outcome is unknown, as ABORTED says, and
		// writing the same value again is what a client does then.
		t.Logf("Put forwarded as the leader died: %v; writing again", err)
		_, err = follower.Put(ctx, "e2e/after-kill", []byte("v"))
	}
	if err != nil {
		t.Fatalf("Put after the leader was killed = %v", err)
	}
	if _, found, err := follower.Get(ctx, "e2e/after-kill"); err != nil || !found {
		t.Errorf("Get after the leader was killed = %v, %v; want found", found, err)
	}
}

// TestE2ETTLAndConfig: Expire, Persist, TTL and the cluster-wide settings
// against a real cluster.
func TestE2ETTLAndConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := nodetest.Start(t, nodetest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl := newClient(t, c.URL(1))

	v, err := cl.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if ttl, found, err := cl.TTL(ctx, "k"); err != nil || !found || ttl != 0 {
		t.Errorf("TTL without expiry = %v, %v, %v; want 0, true", ttl, found, err)
	}
	found, v2, err := cl.Expire(ctx, "k", time.Hour, client.WithIfVersion(v))
	if err != nil || !found || v2 <= v {
		t.Fatalf("Expire = %v, %d, %v; want found at a version above %d", found, v2, err, v)
	}
	if ttl, _, err := cl.TTL(ctx, "k"); err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL after Expire(1h) = %v, %v; want just under 1h", ttl, err)
	}
	if _, _, err := cl.Expire(ctx, "k", time.Hour, client.WithIfVersion(v)); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Errorf("Expire at a stale version = %v; want ErrPreconditionFailed", err)
	}
	if found, _, err := cl.Persist(ctx, "k"); err != nil || !found {
		t.Errorf("Persist = %v, %v", found, err)
	}
	if ttl, _, err := cl.TTL(ctx, "k"); err != nil || ttl != 0 {
		t.Errorf("TTL after Persist = %v, %v; want 0", ttl, err)
	}
	if found, _, err := cl.Expire(ctx, "missing", time.Second); err != nil || found {
		t.Errorf("Expire(missing) = %v, %v; want not found, no error", found, err)
	}

	budget, policy := int64(64<<20), "allkeys-lfu"
	set, eff, err := cl.SetConfig(ctx, client.Config{MaxMemoryBytes: &budget, EvictionPolicy: &policy})
	if err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	if *set.MaxMemoryBytes != budget || *set.EvictionPolicy != policy || *eff.EvictionPolicy != policy {
		t.Errorf("SetConfig = %+v, %+v; want %d and %s", set, eff, budget, policy)
	}
	bad := "lru-please"
	if _, _, err := cl.SetConfig(ctx, client.Config{EvictionPolicy: &bad}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("SetConfig(bad policy) = %v; want ErrInvalidArgument", err)
	}
	// Every node applies the setting once it commits.
	for i := range c.Size() {
		other := newClient(t, c.URL(i))
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, eff, err := other.GetConfig(ctx)
			if err == nil && eff.MaxMemoryBytes != nil && *eff.MaxMemoryBytes == budget && *eff.EvictionPolicy == policy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: GetConfig = %+v, %v; want %d and %s", i+1, eff, err, budget, policy)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestE2ELearnsLeader: a client pointed at a follower is forwarded once, then
// goes straight to the leader the follower named (Wisp-Leader header).
func TestE2ELearnsLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	reg := prometheus.NewRegistry()
	c := nodetest.Start(t, nodetest.Options{Tune: func(cfg *node.Config) { cfg.Registerer = reg }})
	l := c.WaitLeader(5 * time.Second)
	f := (l + 1) % c.Size()
	cl := newClient(t, c.URL(f))
	for i := range 20 {
		if _, err := cl.Put(t.Context(), fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if got := forwarded(t, reg, fmt.Sprintf("n%d", f+1)); got != 1 {
		t.Errorf("follower forwarded %v of 20 puts; want only the first", got)
	}
}

// TestE2ERouting: on 5 nodes and 16 shards, a routing client sends its
// keyed calls straight to the shard leaders, while one without routing has
// most of them forwarded. Counted at the nodes' HTTP handlers: a request
// with Wisp-Forwarded came from another node.
func TestE2ERouting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 5-node, 16-shard cluster")
	}
	const shards = 16
	var direct, forwarded atomic.Int64 // Put and Get requests
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Path; p == wispv1connect.KVServicePutProcedure || p == wispv1connect.KVServiceGetProcedure {
				if r.Header.Get("Wisp-Forwarded") != "" {
					forwarded.Add(1)
				} else {
					direct.Add(1)
				}
			}
			h.ServeHTTP(w, r)
		})
	}
	c := nodetest.Start(t, nodetest.Options{Nodes: 5, Shards: shards, Wrap: wrap})
	// Leaders move to the preferred replicas in the first seconds; a map
	// fetched meanwhile goes stale and costs forwards the test would count.
	c.WaitBalanced(30 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// run puts n keys, then reads them back, and returns the requests the
	// nodes got from the client and how many they forwarded, per phase.
	const n = 200
	type counts struct{ calls, fwd int64 }
	run := func(name string, cl *client.Client) (puts, gets counts) {
		t.Helper()
		c0, f0 := direct.Load(), forwarded.Load()
		for i := range n {
			key := fmt.Sprintf("%s/%d", name, i)
			if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
				t.Fatalf("Put(%q) = %v", key, err)
			}
		}
		c1, f1 := direct.Load(), forwarded.Load()
		for i := range n {
			key := fmt.Sprintf("%s/%d", name, i)
			if item, found, err := cl.Get(ctx, key); err != nil || !found || string(item.Value) != key {
				t.Fatalf("Get(%q) = %q, %v, %v; want %q", key, item.Value, found, err, key)
			}
		}
		return counts{c1 - c0, f1 - f0}, counts{direct.Load() - c1, forwarded.Load() - f1}
	}

	// A fresh client: its first put starts fetching the shard map in the
	// background, and the puts made until the map arrives are forwarded
	// (measured: 1-4, and 9 under -race on a loaded machine), as is the
	// first call to a shard whose leader the map did not know or has moved
	// since.
	puts, gets := run("routed", newClient(t, c.URL(0)))
	t.Logf("routing: %d of %d puts and %d of %d gets forwarded", puts.fwd, puts.calls, gets.fwd, gets.calls)
	if total, calls := puts.fwd+gets.fwd, puts.calls+gets.calls; total > calls/20 {
		t.Errorf("routing: %d of %d calls forwarded; want at most 5%%", total, calls)
	}

	puts, gets = run("unrouted", newClient(t, c.URL(0), client.WithRouting(false)))
	t.Logf("no routing: %d of %d puts and %d of %d gets forwarded", puts.fwd, puts.calls, gets.fwd, gets.calls)
	if total, calls := puts.fwd+gets.fwd, puts.calls+gets.calls; total < calls/2 {
		t.Errorf("no routing: %d of %d calls forwarded; want most (a node leads about 3 of 16 shards)", total, calls)
	}
}

// forwarded reads wisp_forwarded_requests_total for one node.
func forwarded(t *testing.T, reg *prometheus.Registry, nodeID string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wisp_forwarded_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "node" && lp.GetValue() == nodeID {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
