package node_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

func postRaw(t *testing.T, url, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRefusalMessages: what a user reads when a request is refused names
// the limit to change, and never echoes a long input back whole.
func TestRefusalMessages(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 1})
	ctx := ctxT(t)

	t.Run("value over the request limit, Go client", func(t *testing.T) {
		_, err := kvClient(c.URL(0)).Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("big"), Value: make([]byte, 2<<20)}))
		if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "--max-value-bytes") {
			t.Errorf("Put(2 MiB) = %v; want RESOURCE_EXHAUSTED naming --max-value-bytes", err)
		}
	})
	t.Run("value over the request limit, JSON", func(t *testing.T) {
		body := `{"key":"Ymln","value":"` + strings.Repeat("A", 3<<20) + `"}`
		code, msg := postRaw(t, c.URL(0)+"/wisp.v1.KVService/Put", "application/json", []byte(body))
		if code != 429 || !strings.Contains(msg, "--max-value-bytes") || strings.Contains(msg, "configured max") {
			t.Errorf("Put(3 MiB JSON) = %d %s; want 429 naming --max-value-bytes", code, msg)
		}
	})
	t.Run("value over the value limit", func(t *testing.T) {
		_, err := kvClient(c.URL(0)).Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("big"), Value: make([]byte, 1<<20+1)}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "--max-value-bytes") {
			t.Errorf("Put(1 MiB + 1) = %v; want INVALID_ARGUMENT naming --max-value-bytes", err)
		}
	})
	t.Run("5 KiB key", func(t *testing.T) {
		key := strings.Repeat("k", 5<<10)
		_, err := kvClient(c.URL(0)).Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte(key), Value: []byte("v")}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || len(err.Error()) > 300 || !strings.Contains(err.Error(), "--max-key-bytes") {
			t.Errorf("Put(5 KiB key) = %d-byte error %.300q; want a short INVALID_ARGUMENT naming --max-key-bytes", len(err.Error()), err)
		}
	})
}

// TestUnknownJSONFieldRefused: a mistyped field in Connect JSON is refused,
// naming it, and nothing is written; binary protobuf keeps its
// forward-compatible handling of unknown fields.
func TestUnknownJSONFieldRefused(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 1})
	put := c.URL(0) + "/wisp.v1.KVService/Put"
	code, msg := postRaw(t, put, "application/json", []byte(`{"key":"Z3JlZXRpbmc=","value":"aGVsbG8=","ttl":"30s"}`))
	if code != 400 || !strings.Contains(msg, "invalid_argument") || !strings.Contains(msg, `unknown field \"ttl\"`) {
		t.Errorf("Put with \"ttl\" = %d %s; want 400 invalid_argument naming the field", code, msg)
	}
	code, msg = postRaw(t, c.URL(0)+"/wisp.v1.KVService/Get", "application/json; charset=utf-8", []byte(`{"key":"Z3JlZXRpbmc="}`))
	if code != 200 || strings.Contains(msg, "found") {
		t.Errorf("Get after the refused Put = %d %s; want 200 and not found", code, msg)
	}
	code, msg = postRaw(t, put, "application/json", []byte(`{"key":"Z3JlZXRpbmc=","value":"aGVsbG8=","ttlMs":"30000"}`))
	if code != 200 {
		t.Errorf("Put with ttlMs = %d %s; want 200", code, msg)
	}

	b, err := proto.Marshal(&wispv1.PutRequest{Key: []byte("bin"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 999, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("from a newer client"))
	if code, msg := postRaw(t, put, "application/proto", b); code != 200 {
		t.Errorf("binary Put with an unknown field = %d %q; want 200", code, msg)
	}
}

// TestNoQuorumFailsFast: with two of three nodes down, a write fails within
// about the election wait with UNAVAILABLE saying what is wrong, and a
// NoLeader detail that tells clients to stop retrying.
func TestNoQuorumFailsFast(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	c.Kill(1)
	c.Kill(2)
	// A leader that was writing when it lost its quorum fails that write
	// with ABORTED (outcome unknown); what this test checks is the state
	// after it steps down.
	deadline := time.Now().Add(5 * time.Second)
	for id, _ := c.Node(0).Shard(0).Leader(); id != ""; id, _ = c.Node(0).Shard(0).Leader() {
		if time.Now().After(deadline) {
			t.Fatalf("node n1 still follows leader %s 5s after losing its quorum", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	_, err := kvClient(c.URL(0)).Put(ctxT(t), connect.NewRequest(&wispv1.PutRequest{Key: []byte("k"), Value: []byte("v")}))
	took := time.Since(start)
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "only 1 of its 3 replicas") {
		t.Fatalf("Put without quorum = %v; want UNAVAILABLE saying 1 of 3 replicas are reachable", err)
	}
	if took > 5*time.Second {
		t.Errorf("Put without quorum took %v; want about the 2 s election wait", took)
	}
	var detail *wispv1.NoLeader
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			if v, derr := d.Value(); derr == nil {
				if nl, ok := v.(*wispv1.NoLeader); ok {
					detail = nl
				}
			}
		}
	}
	if detail == nil || detail.Replicas != 3 || detail.ReplicasReachable != 1 || detail.WaitedMs < 1000 {
		t.Errorf("NoLeader detail = %v; want 3 replicas, 1 reachable, waited >= 1s", detail)
	}
	t.Logf("refused in %v: %v", took, err)
}
