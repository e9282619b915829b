package reclaim

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Group is the replica the reclaimer works for.
type Group interface {
	IsLeader() bool
	Propose(ctx context.Context, cmd *engine.Command) (engine.Result, error)
	Read(ctx context.Context, c raftgroup.Consistency, fn func(*engine.Engine)) error
}

// Settings are the memory settings in force; they may change at any time.
type Settings struct {
	// MaxMemoryBytes is the shard's budget; 0 means none.
	MaxMemoryBytes int64
	// Policy chooses victims; nil or noeviction means no eviction here. It
	// is called outside the engine's lock, with the reclaimer's context
	// (canceled by Close); an error ends that cycle's eviction, after the
	// victims chosen before it are proposed. Wrap a plugin in
	// plugins.Guarded, which answers with a built-in when the plugin fails.
	Policy eviction.Policy
}

// Bounds and defaults. Each bounds work done between two checks of
// leadership and of Close.
const (
	// DefaultInterval is the time between cycles. Redis runs its expiry
	// cycle 10 times a second; so does Wisp.
	DefaultInterval = 100 * time.Millisecond
	// MaxExpirePerEntry bounds the keys in one Expire or Evict entry (and
	// so the entry's size and the apply time it holds the write lock).
	MaxExpirePerEntry = 1000
	// MaxEntriesPerCycle bounds the entries one cycle proposes for each duty.
	MaxEntriesPerCycle = 16
	// LowWatermarkPercent is where eviction stops, as a percentage of the
	// budget: evicting a little below the budget gives room for the writes
	// that arrive before the next cycle.
	LowWatermarkPercent = 98
	// proposeTimeout bounds one proposal.
	proposeTimeout = 5 * time.Second
)

// Config configures a Reclaimer.
type Config struct {
	Group Group
	// Settings returns the settings in force; called once per cycle.
	Settings func() Settings
	// Interval between cycles; default DefaultInterval.
	Interval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil: not exported.
	Registerer prometheus.Registerer
}

// Reclaimer runs the expiry and eviction cycles of one shard's leader.
type Reclaimer struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	rnd     *rand.Rand

	// evictor is rebuilt when the policy changes. Owned by the run goroutine.
	evictor    *eviction.Evictor
	evictorFor eviction.Policy

	expiredBuf []engine.Candidate // scratch, owned by the run goroutine
	victimBuf  []engine.Candidate

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Start starts the reclaimer's goroutine.
func Start(cfg Config) *Reclaimer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reclaimer{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Registerer),
		rnd:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go r.run()
	return r
}

// Close stops the reclaimer and waits for its goroutine. Safe to call twice.
func (r *Reclaimer) Close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		r.metrics.unregister()
	})
}

func (r *Reclaimer) run() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		busy := false
		if r.cfg.Group.IsLeader() {
			busy = r.expire(ctx)
			busy = r.evict(ctx) || busy
		}
		if busy {
			select {
			case <-r.stop:
				return
			default:
				continue
			}
		}
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// expire proposes Expire entries for keys past their expiry. It reports
// whether it stopped at a bound with work left.
func (r *Reclaimer) expire(ctx context.Context) bool {
	for range MaxEntriesPerCycle {
		now := r.cfg.Now().UnixMilli()
		r.expiredBuf = r.expiredBuf[:0]
		if err := r.cfg.Group.Read(ctx, raftgroup.Stale, func(e *engine.Engine) {
			r.expiredBuf = e.Expired(now, MaxExpirePerEntry, r.expiredBuf)
			r.expiredBuf = ownKeys(r.expiredBuf)
		}); err != nil || len(r.expiredBuf) == 0 {
			return false
		}
		cmd := &engine.Command{Mutations: make([]engine.Mutation, len(r.expiredBuf))}
		for i, c := range r.expiredBuf {
			cmd.Mutations[i] = engine.Mutation{Op: engine.OpExpire, Key: c.Key, IfVersion: c.Version}
		}
		res, ok := r.propose(ctx, cmd, "expire")
		if !ok {
			return false
		}
		applied := float64(r.cfg.Now().UnixMilli())
		for i, m := range res.Mutations {
			if m.Existed {
				r.metrics.expired.Inc()
				r.metrics.lag.Observe((applied - float64(r.expiredBuf[i].ExpiresAtUnixMs)) / 1000)
			}
		}
		if len(r.expiredBuf) < MaxExpirePerEntry {
			return false
		}
	}
	return true
}

// evict proposes Evict entries while memory is over the budget. It reports
// whether it stopped at a bound with work left.
//
// The engine's read lock is held only to read MemoryUsed and, inside the
// evictor's view, to sample candidates; the policy ranks them after the
// lock is released (a plugin may take up to its call timeout, and applies
// must not wait for it).
func (r *Reclaimer) evict(ctx context.Context) bool {
	s := r.cfg.Settings()
	if s.MaxMemoryBytes <= 0 || s.Policy == nil || s.Policy.Name() == eviction.NoEviction {
		return false
	}
	if r.evictor == nil || r.evictorFor != s.Policy {
		r.evictor, r.evictorFor = eviction.NewEvictor(s.Policy), s.Policy
	}
	view := func(fn func(*engine.Engine)) error { return r.cfg.Group.Read(ctx, raftgroup.Stale, fn) }
	low := s.MaxMemoryBytes / 100 * LowWatermarkPercent
	for range MaxEntriesPerCycle {
		now := r.cfg.Now().UnixMilli()
		var used int64
		if err := r.cfg.Group.Read(ctx, raftgroup.Stale, func(e *engine.Engine) { used = e.MemoryUsed() }); err != nil {
			return false
		}
		r.metrics.overBudget.Set(float64(used - s.MaxMemoryBytes))
		if used <= s.MaxMemoryBytes {
			return false
		}
		var err error
		r.victimBuf, err = r.evictor.Choose(ctx, view, now, used-low, MaxExpirePerEntry, r.rnd.IntN, r.victimBuf[:0])
		if err != nil && ctx.Err() == nil {
			// The victims chosen before the error are still valid: propose
			// them, and try again next cycle.
			r.log.Warn("reclaim: choosing eviction victims failed", "policy", s.Policy.Name(), "victims", len(r.victimBuf), "err", err)
		}
		if len(r.victimBuf) == 0 {
			return false
		}
		cmd := &engine.Command{Mutations: make([]engine.Mutation, len(r.victimBuf))}
		for i, c := range r.victimBuf {
			cmd.Mutations[i] = engine.Mutation{Op: engine.OpEvict, Key: c.Key, IfVersion: c.Version}
		}
		res, ok := r.propose(ctx, cmd, "evict")
		if !ok {
			return false
		}
		for _, m := range res.Mutations {
			if m.Existed {
				r.metrics.evicted.Inc()
			}
		}
		if err != nil {
			return false
		}
	}
	return true
}

func (r *Reclaimer) propose(ctx context.Context, cmd *engine.Command, what string) (engine.Result, bool) {
	ctx, cancel := context.WithTimeout(ctx, proposeTimeout)
	defer cancel()
	res, err := r.cfg.Group.Propose(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if !errors.Is(err, raftgroup.ErrNotLeader) && !errors.Is(err, context.Canceled) {
			r.log.Warn("reclaim: propose failed", "duty", what, "keys", len(cmd.Mutations), "err", err)
		}
		return res, false
	}
	return res, true
}

// ownKeys copies the candidates' keys out of the engine's memory, so they
// stay valid after the read lock is released.
func ownKeys(cs []engine.Candidate) []engine.Candidate {
	n := 0
	for _, c := range cs {
		n += len(c.Key)
	}
	buf := make([]byte, 0, n)
	for i := range cs {
		start := len(buf)
		buf = append(buf, cs[i].Key...)
		cs[i].Key = buf[start:len(buf):len(buf)]
	}
	return cs
}
