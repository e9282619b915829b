package engine

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
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

// model is a naive reference for Engine: a map and a copy per command.
type model struct {
	entries map[string]modelEntry
	applied uint64
}

type modelEntry struct {
	value   string
	version uint64
	expires int64
}

func (e modelEntry) live(now int64) bool { return e.expires == 0 || e.expires > now }

// modelError classifies an Apply error for comparison.
type modelError struct {
	kind string // "precondition", "not integer", "invalid"
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
	}
	return &modelError{kind: "unexpected: " + err.Error()}
}

func (m *model) apply(index uint64, c *Command) ([]MutationResult, *modelError) {
	if index <= m.applied {
		return nil, &modelError{kind: "invalid"}
	}
	m.applied = index
	now := c.NowUnixMs
	for _, mu := range c.Mutations {
		if mu.Op < OpPut || mu.Op > OpExpire || len(mu.Key) == 0 || mu.TTLMs < 0 ||
			(mu.IfAbsent && (mu.Op != OpPut || mu.IfVersion != 0)) ||
			(mu.Op == OpPut && mu.TTLMs > 0 && (now > math.MaxInt64-mu.TTLMs || now+mu.TTLMs <= 0)) {
			return nil, &modelError{kind: "invalid"}
		}
	}
	next := make(map[string]modelEntry, len(m.entries))
	for k, v := range m.entries {
		next[k] = v
	}
	var results []MutationResult
	for i, mu := range c.Mutations {
		key := string(mu.Key)
		cur, ok := next[key]
		var version uint64
		if ok && cur.live(now) {
			version = cur.version
		}
		if mu.Op != OpExpire && ((mu.IfAbsent && version != 0) || (mu.IfVersion != 0 && mu.IfVersion != version)) {
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
				r.Existed = true
			}
		}
		results = append(results, r)
	}
	m.entries = next
	if results == nil {
		results = []MutationResult{}
	}
	return results, nil
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
	case p < 45:
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
	case p < 60:
		mu.Op = OpDelete
	case p < 80:
		mu.Op = OpIncrement
		mu.Delta = g.rng.Int64N(21) - 10
		if g.rng.IntN(30) == 0 {
			mu.Delta = math.MaxInt64 - g.rng.Int64N(3)
		}
	case p < 98:
		mu.Op = OpExpire
	default: // invalid
		switch g.rng.IntN(3) {
		case 0:
			mu.Op, mu.Key = OpPut, nil
		case 1:
			mu.Op, mu.TTLMs = OpPut, -1
		default:
			mu.Op, mu.IfAbsent = OpDelete, true
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
	return c
}

// TestDifferential applies random commands to an Engine and to the model and
// compares every result, every key, random scans and, at the end, the whole
// keyspace. Halfway through it restores a snapshot into a second Engine that
// then follows the same log and must end with the same digest.
func TestDifferential(t *testing.T) {
	seed := diffSeed(t)
	t.Logf("seed %d (replay with -seed %d or WISP_ENGINE_SEED=%d)", seed, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	steps := 10000
	if testing.Short() {
		steps = 500
	}

	keys := []string{"a", "b", "c", "n", "p/1", "p/2", "p/3", "p/3/x", "q", "z"}
	e, m := New(), &model{entries: map[string]modelEntry{}}
	g := &gen{rng: rng, keys: keys, m: m}
	var follower *Engine // restored from a snapshot halfway
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
}

func itemKeys(items []Item) []string {
	var keys []string
	for _, it := range items {
		keys = append(keys, string(it.Key))
	}
	return keys
}
