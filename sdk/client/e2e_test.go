package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wisp-db/wisp/sdk/client"
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
	if _, err := follower.Put(ctx, "e2e/after-kill", []byte("v")); err != nil {
		t.Fatalf("Put after the leader was killed = %v", err)
	}
	if _, found, err := follower.Get(ctx, "e2e/after-kill"); err != nil || !found {
		t.Errorf("Get after the leader was killed = %v, %v; want found", found, err)
	}
}
