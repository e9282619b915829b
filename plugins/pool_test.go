package plugins

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolHammer calls one plugin from many goroutines at once (run it with
// -race): every answer is right, no more instances exist than the bound
// and no instance serves two calls at once (the pool and the instance
// assert both, and panic), failures in between (a
// module that loops after 99 answers) replace instances without disturbing
// the others, and
// a Close in the middle of it all lets calls finish or fail with ErrClosed.
func TestPoolHammer(t *testing.T) {
	const (
		instancesMax = 3
		goroutines   = 8
		callsEach    = 100
	)
	ctx := context.Background()
	h := sharedHost(t)
	// flaky99 answers [0] 99 times per instance, then loops until its
	// deadline. A pool of its own, with a bound of 3 and a counting create.
	c, err := h.compile(ctx, moduleSum(module(t, "flaky99.wasm")), module(t, "flaky99.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	var created atomic.Int64
	e := &Eviction{&loaded{host: h, compiled: c, spec: evictionSpec, timeout: 50 * time.Millisecond}}
	e.pool = newPool(instancesMax, func(ctx context.Context) (*instance, error) {
		created.Add(1)
		return newInstance(ctx, h.runtime, c.module, evictionSpec)
	})
	if err := e.pool.fill(ctx); err != nil {
		t.Fatal(err)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var wg sync.WaitGroup
	var calls, ok, timeouts, closed atomic.Int64
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, uint64(g)))
			for range callsEach {
				cands := randomCandidates(rnd, 1+rnd.IntN(200), 0)
				// Close once most calls are done: every instance has
				// answered its 99 and looped by then.
				if calls.Add(1) == goroutines*callsEach*3/4 {
					go e.Close()
				}
				got, err := e.Victims(ctx, 0, cands, 1+rnd.IntN(len(cands)), nil)
				switch {
				case errors.Is(err, ErrClosed):
					closed.Add(1)
				case errors.Is(err, ErrTimeout):
					timeouts.Add(1)
				case err != nil:
					t.Errorf("Victims = %v", err)
				case !slices.Equal(got, []int{0}):
					t.Errorf("Victims = %v; want [0]", got)
				default:
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	e.Close()
	e.pool.mu.Lock()
	n := e.pool.live
	e.pool.mu.Unlock()
	if n != 0 {
		t.Errorf("%d instances live after Close; want 0", n)
	}
	t.Logf("%d answers, %d timeouts, %d refused after Close, %d instances made", ok.Load(), timeouts.Load(), closed.Load(), created.Load())
	if ok.Load() < 99 || timeouts.Load() == 0 || closed.Load() == 0 {
		t.Errorf("want calls answered, timeouts and refusals after Close")
	}
}
