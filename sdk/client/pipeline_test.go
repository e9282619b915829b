package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"

	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// countPipelines counts the Pipeline RPCs a test cluster's nodes serve.
func countPipelines(n *atomic.Int64) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/wisp.v1.KVService/Pipeline" {
				n.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
}

// TestAutoPipeline: many goroutines through one client, with one call in
// flight per node before calls queue, so most calls travel in Pipelines.
// Every caller gets its own result and error: its writes read back, a CAS
// that must fail fails as a *PreconditionError with the key's version, and
// concurrent increments all count.
func TestAutoPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	var pipelines atomic.Int64
	c := nodetest.Start(t, nodetest.Options{Shards: 4, Wrap: countPipelines(&pipelines)})
	cl, err := New(c.URL(0), withPipelineInflight(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const (
		workers = 32
		rounds  = 20
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				key := fmt.Sprintf("w%02d-%02d", w, i)
				val := []byte(key + "-value")
				v, err := cl.Put(ctx, key, val)
				if err != nil {
					errs <- fmt.Errorf("Put(%s): %w", key, err)
					return
				}
				it, found, err := cl.Get(ctx, key)
				if err != nil || !found || string(it.Value) != string(val) || it.Version != v {
					errs <- fmt.Errorf("Get(%s) = %q@%d, %v, %v; want %q@%d", key, it.Value, it.Version, found, err, val, v)
					return
				}
				_, err = cl.Put(ctx, key, []byte("x"), WithIfVersion(v+1_000_000))
				var pe *PreconditionError
				if !errors.As(err, &pe) || pe.CurrentVersion != v || pe.Key != key {
					errs <- fmt.Errorf("CAS Put(%s) = %v; want a *PreconditionError at version %d", key, err, v)
					return
				}
				if _, _, err := cl.Increment(ctx, "counter", 1); err != nil {
					errs <- fmt.Errorf("Increment: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n, _, err := cl.Increment(ctx, "counter", 0)
	if err != nil || n != workers*rounds {
		t.Errorf("counter = %d, %v; want %d", n, err, workers*rounds)
	}
	if pipelines.Load() == 0 {
		t.Errorf("no Pipeline RPC was sent: auto-pipelining did not engage")
	}
	t.Logf("%d calls, %d Pipeline RPCs", workers*rounds*4, pipelines.Load())
}

// pipeInput and pipeOutput are one register operation for porcupine.
type pipeInput struct {
	key   string
	put   bool
	value string
}

type pipeOutput struct {
	value   string // a get's answer ("" for absent)
	unknown bool   // a put whose outcome the client could not learn
}

// pipeModel is a register per key. A put with an unknown outcome may or may
// not have happened.
var pipeModel = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(pipeInput).key
			by[k] = append(by[k], op)
		}
		var parts [][]porcupine.Operation
		for _, p := range by {
			parts = append(parts, p)
		}
		return parts
	},
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(pipeInput), output.(pipeOutput)
		switch {
		case in.put && out.unknown:
			return []any{s, in.value}
		case in.put:
			return []any{in.value}
		case out.value == s:
			return []any{s}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(pipeInput), output.(pipeOutput)
		if in.put {
			return fmt.Sprintf("put(%s, %s) unknown=%v", in.key, in.value, out.unknown)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
	},
}).ToModel()

// TestAutoPipelineLinearizable drives puts and gets through auto-pipelining
// clients on every node while a shard leader crashes and restarts, and
// checks the history with porcupine: sharing Pipelines changes nothing a
// client can observe. WISP_SEED replays a run's choices.
func TestAutoPipelineLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	seed := rand.Uint64()
	if s := os.Getenv("WISP_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (WISP_SEED=%d replays the choices)", seed, seed)
	var pipelines atomic.Int64
	c := nodetest.Start(t, nodetest.Options{Shards: 2, Wrap: countPipelines(&pipelines)})
	var clients []*Client
	for i := range c.Size() {
		cl, err := New(c.URL(i), withPipelineInflight(1), WithRouting(false), WithTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	start := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		wg      sync.WaitGroup
		stop    atomic.Bool
		nextID  atomic.Int64
	)
	const workers = 12
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			id := int(nextID.Add(1))
			for i := 0; i < 400 && !stop.Load(); i++ {
				in := pipeInput{key: fmt.Sprintf("k%d", rng.IntN(4)), put: rng.IntN(2) == 0}
				if in.put {
					in.value = fmt.Sprintf("w%d-%d", w, i)
				}
				cl := clients[rng.IntN(len(clients))]
				call := time.Since(start).Nanoseconds()
				var (
					out pipeOutput
					err error
				)
				if in.put {
					_, err = cl.Put(t.Context(), in.key, []byte(in.value))
				} else {
					var it Item
					it, _, err = cl.Get(t.Context(), in.key)
					out.value = string(it.Value)
				}
				ret := time.Since(start).Nanoseconds()
				if err != nil {
					if !in.put {
						continue // a failed read has no effect
					}
					// Unavailable from a server means not applied; anything
					// else leaves the outcome unknown: pending to the end.
					if errors.Is(err, ErrUnavailable) && serverSent(err) {
						continue
					}
					out.unknown, ret = true, 1<<62
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
				if out.unknown {
					id = int(nextID.Add(1))
				}
			}
		}()
	}
	time.Sleep(time.Second)
	victim := c.ShardLeader(0)
	c.Kill(victim)
	time.Sleep(1500 * time.Millisecond)
	c.Restart(victim)
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	result := porcupine.CheckOperationsTimeout(pipeModel, history, time.Minute)
	t.Logf("%d ops recorded, %d Pipeline RPCs, porcupine: %v", len(history), pipelines.Load(), result)
	if result != porcupine.Ok {
		t.Fatalf("history is %v, not linearizable (seed %d)", result, seed)
	}
	if pipelines.Load() == 0 {
		t.Errorf("no Pipeline RPC was sent")
	}
	if len(history) < 200 {
		t.Errorf("only %d ops recorded", len(history))
	}
}

// serverSent reports whether err's Connect error came from a server (on
// the wire, or as one op's answer in a Pipeline).
func serverSent(err error) bool {
	var se *serverError
	return errors.As(err, &se) || connect.IsWireError(err)
}

// TestGetMany reads keys of every shard in one call.
func TestGetMany(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := nodetest.Start(t, nodetest.Options{Shards: 4})
	cl, err := New(c.URL(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var keys []string
	versions := map[string]uint64{}
	for i := range 30 {
		k := fmt.Sprintf("m%02d", i)
		v, err := cl.Put(ctx, k, []byte("v"+k))
		if err != nil {
			t.Fatal(err)
		}
		versions[k] = v
		keys = append(keys, k)
	}
	got, err := cl.GetMany(ctx, append(keys, "absent", "m03"))
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != len(keys) {
		t.Errorf("GetMany found %d keys; want %d", len(got), len(keys))
	}
	for _, k := range keys {
		if it := got[k]; string(it.Value) != "v"+k || it.Version != versions[k] || it.Key != k {
			t.Errorf("GetMany[%s] = %+v; want v%s at version %d", k, it, k, versions[k])
		}
	}
	if _, err := cl.GetMany(ctx, make([]string, MaxGetManyKeys+1)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("GetMany of %d keys = %v; want ErrInvalidArgument", MaxGetManyKeys+1, err)
	}
}
