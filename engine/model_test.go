package engine

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seedFlag replays one differential run: go test ./engine -run Differential -seed N.
// WISP_ENGINE_SEED does the same through the environment.
var seedFlag = flag.Uint64("seed", 0, "seed for TestDifferential (0: random)")

// model is a naive reference for Engine: maps and a copy per command.
type model struct {
	entries map[string]modelEntry
	meta    map[string]string
	applied uint64
	// expired and evicted count the keys OpExpire and OpEvict removed.
	expired, evicted uint64
}

type modelEntry struct {
	value   string
	version uint64
	expires int64
}

func (e modelEntry) live(now int64) bool { return e.expires == 0 || e.expires > now }

// memory is MemoryUsed, naively: the footprint formula summed over a map.
func memory(entries map[string]modelEntry) int64 {
	var n int64
	for k, e := range entries {
		n += footprint(len(k), len(e.value), e.expires != 0)
	}
	return n
}

// modelError classifies an Apply error for comparison.
type modelError struct {
	kind string // "precondition", "not integer", "invalid", "memory full"
	pre  PreconditionError
}

func classify(err error) *modelError {
	var pre *PreconditionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pre):
		return &modelError{kind: "precondition", pre: *pre}
	case errors.Is(err, ErrNotInteger):
		return &modelError{kind: "not integer"}
	case errors.Is(err, ErrInvalidCommand):
		return &modelError{kind: "invalid"}
	case errors.Is(err, ErrMemoryFull):
		return &modelError{kind: "memory full"}
	}
	return &modelError{kind: "unexpected: " + err.Error()}
}

func (m *model) apply(index uint64, c *Command) ([]MutationResult, *modelError) {
	if index <= m.applied {
		return nil, &modelError{kind: "invalid"}
	}
	m.applied = index
	now := c.NowUnixMs
	if c.MaxMemoryBytes < 0 {
		return nil, &modelError{kind: "invalid"}
	}
	for _, mu := range c.Mutations {
		ttlOutOfRange := mu.TTLMs > 0 && (now > math.MaxInt64-mu.TTLMs || now+mu.TTLMs <= 0)
		if mu.Op < OpPut || mu.Op > OpSetMeta || len(mu.Key) == 0 || mu.TTLMs < 0 ||
			(mu.IfAbsent && (mu.Op != OpPut || mu.IfVersion != 0)) ||
			(mu.Op == OpPut && ttlOutOfRange) ||
			(mu.Op == OpSetTTL && (mu.TTLMs == 0 || ttlOutOfRange)) ||
			(mu.Op == OpEvict && mu.IfVersion == 0) ||
			(mu.Op == OpSetMeta && (mu.IfVersion != 0 || len(mu.Key) > 256 || len(mu.Value) > 64<<10)) {
			return nil, &modelError{kind: "invalid"}
		}
	}
	next := maps.Clone(m.entries)
	meta := maps.Clone(m.meta)
	expired, evicted := m.expired, m.evicted
	var results []MutationResult
	for i, mu := range c.Mutations {
		key := string(mu.Key)
		cur, ok := next[key]
		var version uint64
		if ok && cur.live(now) {
			version = cur.version
		}
		checked := mu.Op != OpExpire && mu.Op != OpEvict && mu.Op != OpSetMeta
		if checked && ((mu.IfAbsent && version != 0) || (mu.IfVersion != 0 && mu.IfVersion != version)) {
			return nil, &modelError{kind: "precondition", pre: PreconditionError{Key: mu.Key, CurrentVersion: version, Index: i}}
		}
		r := MutationResult{Version: index}
		switch mu.Op {
		case OpPut:
			var exp int64
			if mu.TTLMs > 0 {
				exp = now + mu.TTLMs
			}
			next[key] = modelEntry{value: string(mu.Value), version: index, expires: exp}
		case OpDelete:
			r.Existed = version != 0
			delete(next, key)
		case OpIncrement:
			var n, exp int64
			if version != 0 {
				var err error
				if n, err = strconv.ParseInt(cur.value, 10, 64); err != nil {
					return nil, &modelError{kind: "not integer"}
				}
				exp = cur.expires
			}
			exact := new(big.Int).Add(big.NewInt(n), big.NewInt(mu.Delta))
			if !exact.IsInt64() {
				return nil, &modelError{kind: "not integer"}
			}
			sum := exact.Int64()
			next[key] = modelEntry{value: strconv.FormatInt(sum, 10), version: index, expires: exp}
			r.Counter = sum
		case OpExpire:
			if ok && !cur.live(now) && (mu.IfVersion == 0 || mu.IfVersion == cur.version) {
				delete(next, key)
				expired++
				r.Existed = true
			}
		case OpSetTTL, OpPersist:
			if version != 0 {
				var exp int64
				if mu.Op == OpSetTTL {
					exp = now + mu.TTLMs
				}
				next[key] = modelEntry{value: cur.value, version: index, expires: exp}
				r.Existed = true
			}
		case OpEvict:
			if ok && cur.version == mu.IfVersion {
				delete(next, key)
				evicted++
				r.Existed = true
			}
		case OpSetMeta:
			_, r.Existed = meta[key]
			switch {
			case len(mu.Value) == 0:
				delete(meta, key)
			case !r.Existed && len(meta) >= 256:
				return nil, &modelError{kind: "invalid"}
			default:
				meta[key] = string(mu.Value)
			}
		}
		results = append(results, r)
	}
	if after := memory(next); c.MaxMemoryBytes != 0 && after > c.MaxMemoryBytes && after > memory(m.entries) {
		return nil, &modelError{kind: "memory full"}
	}
	m.entries, m.meta, m.expired, m.evicted = next, meta, expired, evicted
	if results == nil {
		results = []MutationResult{}
	}
	return results, nil
}

// expiredKeys is Engine.Expired, naively: the stored keys with an expiry at
// or before now, earliest first, then by key; at most max.
func (m *model) expiredKeys(now int64, max int) []string {
	var keys []string
	for k, e := range m.entries {
		if e.expires != 0 && e.expires <= now {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(m.entries[a].expires, m.entries[b].expires), strings.Compare(a, b))
	})
	return keys[:min(max, len(keys))]
}

// metaDump is dumpMeta, naively.
func (m *model) metaDump() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m.meta)) {
		parts = append(parts, name+"="+m.meta[name])
	}
	return strings.Join(parts, " ")
}

// scan is Engine.Scan, naively.
func (m *model) scan(start, prefix string, limit int, now int64) (keys []string, next string) {
	var all []string
	for k, e := range m.entries {
		if strings.HasPrefix(k, prefix) && k >= start && e.live(now) {
			all = append(all, k)
		}
	}
	slices.Sort(all)
	if limit <= 0 {
		return nil, ""
	}
	if len(all) > limit {
		return all[:limit], all[limit-1] + "\x00"
	}
	return all, ""
}

func diffSeed(t *testing.T) uint64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	if s := os.Getenv("WISP_ENGINE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WISP_ENGINE_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// gen makes random commands over a small keyspace, so that keys collide,
// expire and get overwritten often.
type gen struct {
	rng  *rand.Rand
	keys []string
	m    *model // for plausible IfVersion values
}

func (g *gen) key() string { return g.keys[g.rng.IntN(len(g.keys))] }

func (g *gen) mutation() Mutation {
	mu := Mutation{Key: []byte(g.key())}
	switch p := g.rng.IntN(100); {
	case p < 36:
		mu.Op = OpPut
		switch g.rng.IntN(3) {
		case 0:
			mu.Value = []byte(strconv.Itoa(g.rng.IntN(200) - 100))
		case 1:
			mu.Value = []byte(fmt.Sprintf("v%d", g.rng.IntN(1000)))
		}
		if g.rng.IntN(3) == 0 {
			mu.TTLMs = 1 + g.rng.Int64N(500)
		}
		if g.rng.IntN(8) == 0 {
			mu.IfAbsent = true
		}
	case p < 48:
		mu.Op = OpDelete
	case p < 63:
		mu.Op = OpIncrement
		mu.Delta = g.rng.Int64N(21) - 10
		if g.rng.IntN(30) == 0 {
			mu.Delta = math.MaxInt64 - g.rng.Int64N(3)
		}
	case p < 75:
		mu.Op = OpExpire
	case p < 82:
		mu.Op, mu.TTLMs = OpSetTTL, 1+g.rng.Int64N(500)
	case p < 87:
		mu.Op = OpPersist
	case p < 93:
		mu.Op = OpEvict
		if e, ok := g.m.entries[string(mu.Key)]; ok && g.rng.IntN(4) != 0 {
			mu.IfVersion = e.version
		} else {
			mu.IfVersion = 1 + g.rng.Uint64N(g.m.applied+1)
		}
		return mu
	case p < 98:
		// Settings live beside the keyspace: reuse a key's name to show
		// that they do not collide.
		mu.Op = OpSetMeta
		if g.rng.IntN(3) != 0 {
			mu.Value = []byte(fmt.Sprintf("s%d", g.rng.IntN(100)))
		}
		return mu
	default: // invalid
		switch g.rng.IntN(6) {
		case 0:
			mu.Op, mu.Key = OpPut, nil
		case 1:
			mu.Op, mu.TTLMs = OpPut, -1
		case 2:
			mu.Op, mu.IfAbsent = OpDelete, true
		case 3:
			mu.Op = OpSetTTL // without a ttl
		case 4:
			mu.Op = OpEvict // without a version
			return mu
		default:
			mu.Op, mu.Key, mu.Value = OpSetMeta, bytes.Repeat([]byte("n"), maxMetaNameBytes+1), []byte("v")
			return mu
		}
	}
	if !mu.IfAbsent && g.rng.IntN(4) == 0 {
		if e, ok := g.m.entries[string(mu.Key)]; ok && g.rng.IntN(4) != 0 {
			mu.IfVersion = e.version
		} else {
			mu.IfVersion = 1 + g.rng.Uint64N(g.m.applied+1)
		}
	}
	return mu
}

func (g *gen) command(now int64) Command {
	n := 1
	if g.rng.IntN(4) == 0 {
		n = 2 + g.rng.IntN(5)
	}
	c := Command{NowUnixMs: now}
	for range n {
		c.Mutations = append(c.Mutations, g.mutation())
	}
	if g.rng.IntN(5) == 0 {
		// A budget near the current usage, so that growing commands
		// fail about half the time.
		c.MaxMemoryBytes = max(1, memory(g.m.entries)+g.rng.Int64N(400)-200)
	}
	return c
}

// TestDifferential applies random commands to an Engine and to the model and
// compares every result, every key, the settings, MemoryUsed (also against a
// walk), the TTL index (against the keyspace), Stats, random scans, expiry
// lists and samples and, at the end, the whole keyspace. Halfway through it
// restores a snapshot into a second Engine that then follows the same log
// and must end with the same digest.
func TestDifferential(t *testing.T) {
	seed := diffSeed(t)
	t.Logf("seed %d (replay with -seed %d or WISP_ENGINE_SEED=%d)", seed, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	steps := 10000
	if testing.Short() {
		steps = 500
	}

	keys := []string{"a", "b", "c", "n", "p/1", "p/2", "p/3", "p/3/x", "q", "z"}
	e, m := New(), &model{entries: map[string]modelEntry{}, meta: map[string]string{}}
	g := &gen{rng: rng, keys: keys, m: m}
	var follower *Engine // restored from a snapshot halfway
	outcomes := map[string]int{}
	now := int64(1_000)
	index := uint64(0)
	for step := range steps {
		now += rng.Int64N(120)
		if rng.IntN(50) == 0 {
			now -= rng.Int64N(50) // a new leader's clock may lag
		}
		index += 1 + uint64(rng.IntN(2)) // entries the FSM never sees leave gaps
		c := g.command(now)
		// Round-trip through the log encoding, as raftgroup will.
		dc, err := DecodeCommand(AppendCommand(nil, &c))
		if err != nil {
			t.Fatalf("step %d: DecodeCommand(AppendCommand(%+v)) = %v", step, c, err)
		}

		got := e.Apply(index, &dc)
		wantResults, wantErr := m.apply(index, &c)
		if follower != nil {
			follower.Apply(index, &dc)
		}
		gotErr := classify(got.Err)
		if gotErr == nil {
			outcomes["ok"]++
		} else {
			outcomes[gotErr.kind]++
		}
		switch {
		case (gotErr == nil) != (wantErr == nil):
			t.Fatalf("step %d: Apply(%d, %+v) error = %v; want %v", step, index, c, got.Err, wantErr)
		case gotErr != nil:
			if gotErr.kind != wantErr.kind || gotErr.pre.Index != wantErr.pre.Index ||
				gotErr.pre.CurrentVersion != wantErr.pre.CurrentVersion || !bytes.Equal(gotErr.pre.Key, wantErr.pre.Key) {
				t.Fatalf("step %d: Apply(%d, %+v) error = %v (%+v); want %+v", step, index, c, got.Err, gotErr, wantErr)
			}
		case !equalResults(got.Mutations, wantResults):
			t.Fatalf("step %d: Apply(%d, %+v) = %+v; want %+v", step, index, c, got.Mutations, wantResults)
		}

		for _, k := range keys {
			for _, readNow := range []int64{now, now + rng.Int64N(600)} {
				it, ok := e.Get([]byte(k), readNow)
				want, wantOK := m.entries[k]
				wantOK = wantOK && want.live(readNow)
				if ok != wantOK || (ok && (string(it.Value) != want.value || it.Version != want.version || it.ExpiresAtUnixMs != want.expires)) {
					t.Fatalf("step %d: Get(%q, %d) = %+v, %v; want %+v, %v", step, k, readNow, it, ok, want, wantOK)
				}
			}
		}
		if got, want := e.Len(), len(m.entries); got != want {
			t.Fatalf("step %d: Len() = %d; want %d", step, got, want)
		}
		if err := e.checkInvariants(); err != nil {
			t.Fatalf("step %d: after Apply(%d, %+v): %v", step, index, c, err)
		}
		volatile := 0
		for _, me := range m.entries {
			if me.expires != 0 {
				volatile++
			}
		}
		wantStats := Stats{Keys: len(m.entries), VolatileKeys: volatile, MemoryUsedBytes: memory(m.entries), ExpiredTotal: m.expired, EvictedTotal: m.evicted}
		if got := e.Stats(); got != wantStats {
			t.Fatalf("step %d: Stats() = %+v; want %+v", step, got, wantStats)
		}
		if got, want := dumpMeta(e), m.metaDump(); got != want {
			t.Fatalf("step %d: settings = %q; want %q", step, got, want)
		}
		if rng.IntN(5) == 0 {
			readNow, max := now+rng.Int64N(600)-100, rng.IntN(6)
			var got []string
			for _, c := range e.Expired(readNow, max, nil) {
				got = append(got, string(c.Key))
			}
			if want := m.expiredKeys(readNow, max); !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Fatalf("step %d: Expired(%d, %d) = %q; want %q", step, readNow, max, got, want)
			}
			next, ok := e.NextExpiry()
			wantNext := m.expiredKeys(math.MaxInt64, 1)
			if ok != (len(wantNext) == 1) || (ok && next != m.entries[wantNext[0]].expires) {
				t.Fatalf("step %d: NextExpiry() = %d, %v; want the expiry of %q", step, next, ok, wantNext)
			}
			volatileOnly := rng.IntN(2) == 0
			for _, c := range e.Sample(rng.IntN, 3, volatileOnly, now, nil) {
				me, ok := m.entries[string(c.Key)]
				if !ok || c.Version != me.version || c.ExpiresAtUnixMs != me.expires ||
					c.SizeBytes != footprint(len(c.Key), len(me.value), me.expires != 0) || (volatileOnly && me.expires == 0) {
					t.Fatalf("step %d: Sample(volatileOnly %v) returned %+v; the model holds %+v, %v", step, volatileOnly, c, me, ok)
				}
			}
		}
		if rng.IntN(10) == 0 {
			start, prefix := g.key()[:rng.IntN(2)], []string{"", "p/", "p/3", "q"}[rng.IntN(4)]
			limit := rng.IntN(5)
			items, next := e.Scan([]byte(start), []byte(prefix), limit, now)
			wantKeys, wantNext := m.scan(start, prefix, limit, now)
			if got := itemKeys(items); !slices.Equal(got, wantKeys) || string(next) != wantNext {
				t.Fatalf("step %d: Scan(%q, %q, %d) = %q, %q; want %q, %q", step, start, prefix, limit, got, next, wantKeys, wantNext)
			}
		}
		if step == steps/2 {
			var buf bytes.Buffer
			if _, err := e.Snapshot().WriteTo(&buf); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			follower = New()
			if err := follower.Restore(&buf); err != nil {
				t.Fatalf("Restore: %v", err)
			}
		}
	}

	t.Logf("outcomes: %v; %d keys expired, %d evicted", outcomes, m.expired, m.evicted)
	if !testing.Short() {
		// The generator must reach every outcome, or the test proves less
		// than it claims.
		for _, kind := range []string{"ok", "precondition", "not integer", "invalid", "memory full"} {
			if outcomes[kind] == 0 {
				t.Errorf("no command ended %q", kind)
			}
		}
	}

	items, _ := e.Scan(nil, nil, math.MaxInt, now)
	wantKeys, _ := m.scan("", "", math.MaxInt, now)
	if got := itemKeys(items); !slices.Equal(got, wantKeys) {
		t.Fatalf("final Scan = %q; want %q", got, wantKeys)
	}
	for _, it := range items {
		if want := m.entries[string(it.Key)]; string(it.Value) != want.value || it.Version != want.version {
			t.Errorf("final Scan item %q = %q@%d; want %q@%d", it.Key, it.Value, it.Version, want.value, want.version)
		}
	}
	if follower.Digest() != e.Digest() {
		t.Errorf("Engine restored halfway and fed the same log: Digest differs\n%s\n%s", dump(follower), dump(e))
	}
	if err := follower.checkInvariants(); err != nil {
		t.Errorf("Engine restored halfway: %v", err)
	}
	if got, want := follower.MemoryUsed(), e.MemoryUsed(); got != want {
		t.Errorf("Engine restored halfway: MemoryUsed() = %d; want %d", got, want)
	}
}

func itemKeys(items []Item) []string {
	var keys []string
	for _, it := range items {
		keys = append(keys, string(it.Key))
	}
	return keys
}
