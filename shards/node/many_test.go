package node_test

import (
	"fmt"
	"testing"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// TestGetMany reads keys of every shard in one call, through a node that
// leads only some of them, at both levels: items in request order, missing
// and repeated keys included.
func TestGetMany(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Shards: 8})
	ctx := ctxT(t)
	kv := kvClient(c.URL(0))
	want := map[string]uint64{}
	for i := range 40 {
		key := fmt.Sprintf("k%02d", i)
		r, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte(key), Value: []byte("v" + key)}))
		if err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
		want[key] = r.Msg.Version
	}
	var keys [][]byte
	for i := range 40 {
		keys = append(keys, fmt.Appendf(nil, "k%02d", 39-i))
	}
	keys = append(keys, []byte("missing"), []byte("k07"))
	for _, level := range []wispv1.Consistency{wispv1.Consistency_CONSISTENCY_LINEARIZABLE, wispv1.Consistency_CONSISTENCY_STALE} {
		resp, err := kvClient(c.URL(1)).GetMany(ctx, connect.NewRequest(&wispv1.GetManyRequest{Keys: keys, Consistency: level}))
		if err != nil {
			t.Fatalf("GetMany(%v): %v", level, err)
		}
		if len(resp.Msg.Items) != len(keys) {
			t.Fatalf("GetMany(%v): %d items for %d keys", level, len(resp.Msg.Items), len(keys))
		}
		for i, it := range resp.Msg.Items {
			k := string(keys[i])
			if k == "missing" {
				if it.Found {
					t.Errorf("GetMany(%v): missing key found", level)
				}
				continue
			}
			if level == wispv1.Consistency_CONSISTENCY_STALE && !it.Found {
				continue // a follower may lag: stale
			}
			if !it.Found || string(it.Value) != "v"+k || it.Version != want[k] {
				t.Errorf("GetMany(%v) item %d = %v; want v%s at version %d", level, i, it, k, want[k])
			}
		}
	}
	for _, tt := range []struct {
		name string
		keys [][]byte
	}{{"no keys", nil}, {"an empty key", [][]byte{[]byte("a"), nil}}, {"too many keys", make([][]byte, 1001)}} {
		if _, err := kv.GetMany(ctx, connect.NewRequest(&wispv1.GetManyRequest{Keys: tt.keys})); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("GetMany with %s = %v; want INVALID_ARGUMENT", tt.name, err)
		}
	}
}

// TestPipeline: each op of a Pipeline gets its own result or error, as its
// own call would.
func TestPipeline(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Shards: 4})
	ctx := ctxT(t)
	kv := kvClient(c.URL(2))
	put, err := kv.Put(ctx, connect.NewRequest(&wispv1.PutRequest{Key: []byte("word"), Value: []byte("hello")}))
	if err != nil {
		t.Fatal(err)
	}
	ops := []*wispv1.PipelineOp{
		{Op: &wispv1.PipelineOp_Put{Put: &wispv1.PutRequest{Key: []byte("a"), Value: []byte("1")}}},
		{Op: &wispv1.PipelineOp_Put{Put: &wispv1.PutRequest{Key: []byte("word"), Value: []byte("x"), IfVersion: put.Msg.Version + 1000}}},
		{Op: &wispv1.PipelineOp_Get{Get: &wispv1.GetRequest{Key: []byte("word")}}},
		{Op: &wispv1.PipelineOp_Increment{Increment: &wispv1.IncrementRequest{Key: []byte("word"), Delta: 1}}},
		{Op: &wispv1.PipelineOp_Increment{Increment: &wispv1.IncrementRequest{Key: []byte("n"), Delta: 5}}},
		{Op: &wispv1.PipelineOp_Delete{Delete: &wispv1.DeleteRequest{Key: []byte("gone")}}},
		{Op: &wispv1.PipelineOp_Get{Get: &wispv1.GetRequest{}}},
		{},
	}
	resp, err := kv.Pipeline(ctx, connect.NewRequest(&wispv1.PipelineRequest{Ops: ops}))
	if err != nil {
		t.Fatalf("Pipeline: %v", err)
	}
	r := resp.Msg.Results
	if len(r) != len(ops) {
		t.Fatalf("%d results for %d ops", len(r), len(ops))
	}
	if r[0].GetPut().GetVersion() == 0 {
		t.Errorf("put a: %v; want a version", r[0])
	}
	if e := r[1].GetError(); e == nil || connect.Code(e.Code) != connect.CodeFailedPrecondition || len(e.Details) != 1 {
		t.Errorf("CAS put: %v; want FAILED_PRECONDITION with a PreconditionFailure detail", r[1])
	}
	if g := r[2].GetGet(); !g.GetFound() || string(g.GetValue()) != "hello" {
		t.Errorf("get word: %v; want hello", r[2])
	}
	if e := r[3].GetError(); e == nil || connect.Code(e.Code) != connect.CodeFailedPrecondition {
		t.Errorf("increment a non-integer: %v; want FAILED_PRECONDITION", r[3])
	}
	if r[4].GetIncrement().GetValue() != 5 {
		t.Errorf("increment n: %v; want 5", r[4])
	}
	if d := r[5].GetDelete(); d == nil || d.Deleted {
		t.Errorf("delete gone: %v; want not deleted", r[5])
	}
	for _, i := range []int{6, 7} {
		if e := r[i].GetError(); e == nil || connect.Code(e.Code) != connect.CodeInvalidArgument {
			t.Errorf("op %d: %v; want INVALID_ARGUMENT", i, r[i])
		}
	}
	if _, err := kv.Pipeline(ctx, connect.NewRequest(&wispv1.PipelineRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("an empty Pipeline = %v; want INVALID_ARGUMENT", err)
	}
}
