package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const testNow = 1000 // the clock of table cases unless they say otherwise

// long is a value whose footprint is above a one-byte value's.
const long = "0123456789abcdefghijklmnopqrstuvwxyz"

func put(key, value string) Mutation {
	return Mutation{Op: OpPut, Key: []byte(key), Value: []byte(value)}
}
func putTTL(key, value string, ttlMs int64) Mutation {
	m := put(key, value)
	m.TTLMs = ttlMs
	return m
}
func del(key string) Mutation { return Mutation{Op: OpDelete, Key: []byte(key)} }
func incr(key string, delta int64) Mutation {
	return Mutation{Op: OpIncrement, Key: []byte(key), Delta: delta}
}
func expire(key string) Mutation { return Mutation{Op: OpExpire, Key: []byte(key)} }
func setTTL(key string, ttlMs int64) Mutation {
	return Mutation{Op: OpSetTTL, Key: []byte(key), TTLMs: ttlMs}
}
func persist(key string) Mutation { return Mutation{Op: OpPersist, Key: []byte(key)} }
func evict(key string, version uint64) Mutation {
	return Mutation{Op: OpEvict, Key: []byte(key), IfVersion: version}
}
func setMeta(name, value string) Mutation {
	return Mutation{Op: OpSetMeta, Key: []byte(name), Value: []byte(value)}
}

func ifVersion(m Mutation, v uint64) Mutation { m.IfVersion = v; return m }
func ifAbsent(m Mutation) Mutation            { m.IfAbsent = true; return m }

// at returns a command stamped nowUnixMs.
func at(nowUnixMs int64, ms ...Mutation) Command {
	return Command{NowUnixMs: nowUnixMs, Mutations: ms}
}

// withMax returns c with the memory budget maxMemoryBytes.
func withMax(c Command, maxMemoryBytes int64) Command {
	c.MaxMemoryBytes = maxMemoryBytes
	return c
}

// dump lists every stored entry, expired ones included, as "key=value@version"
// with " exp=N" when the key has an expiry, then the settings, if any, as
// "meta{name=value ...}".
func dump(e *Engine) string {
	s := dumpKeys(e)
	if len(e.meta) > 0 {
		s = strings.TrimSpace(s + " meta{" + dumpMeta(e) + "}")
	}
	return s
}

func dumpKeys(e *Engine) string {
	items, _ := e.Scan(nil, nil, math.MaxInt, math.MinInt64) // nothing expires before MinInt64
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s@%d", it.Key, it.Value, it.Version)
		if it.ExpiresAtUnixMs != 0 {
			fmt.Fprintf(&b, " exp=%d", it.ExpiresAtUnixMs)
		}
		if i < len(items)-1 {
			b.WriteByte(';')
		}
	}
	return b.String()
}

// applyAll applies cmds at indexes 1, 2, ... and fails on any error.
func applyAll(t testing.TB, e *Engine, cmds ...Command) {
	t.Helper()
	for _, c := range cmds {
		idx := e.AppliedIndex() + 1
		if r := e.Apply(idx, &c); r.Err != nil {
			t.Fatalf("setup: Apply(%d) = %v", idx, r.Err)
		}
	}
}

// checkErr compares err with want: nil, a sentinel matched with errors.Is,
// or a *PreconditionError compared field by field.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	var wantPre *PreconditionError
	switch {
	case want == nil:
		if err != nil {
			t.Fatalf("Apply error = %v; want nil", err)
		}
	case errors.As(want, &wantPre):
		var pre *PreconditionError
		if !errors.As(err, &pre) {
			t.Fatalf("Apply error = %v; want %v", err, want)
		}
		if !bytes.Equal(pre.Key, wantPre.Key) || pre.CurrentVersion != wantPre.CurrentVersion || pre.Index != wantPre.Index {
			t.Fatalf("Apply error = %+v; want %+v", *pre, *wantPre)
		}
	default:
		if !errors.Is(err, want) {
			t.Fatalf("Apply error = %v; want one wrapping %v", err, want)
		}
	}
}

func preErr(key string, current uint64, index int) error {
	return &PreconditionError{Key: []byte(key), CurrentVersion: current, Index: index}
}

func TestApply(t *testing.T) {
	v := func(version uint64) MutationResult { return MutationResult{Version: version} }
	existed := func(version uint64) MutationResult { return MutationResult{Version: version, Existed: true} }
	counter := func(version uint64, n int64) MutationResult { return MutationResult{Version: version, Counter: n} }

	tests := []struct {
		name  string
		setup []Command // applied at indexes 1, 2, ...
		cmd   Command   // applied at len(setup)+1
		want  []MutationResult
		err   error
		state string // dump after the command
	}{
		// OpPut
		{name: "put new key", cmd: at(testNow, put("a", "1")),
			want: []MutationResult{v(1)}, state: "a=1@1"},
		{name: "put overwrites", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, put("a", "2")),
			want: []MutationResult{v(2)}, state: "a=2@2"},
		{name: "put empty value", cmd: at(testNow, put("a", "")),
			want: []MutationResult{v(1)}, state: "a=@1"},
		{name: "put with ttl", cmd: at(testNow, putTTL("a", "1", 500)),
			want: []MutationResult{v(1)}, state: "a=1@1 exp=1500"},
		{name: "put without ttl clears ttl", setup: []Command{at(testNow, putTTL("a", "1", 500))}, cmd: at(testNow, put("a", "2")),
			want: []MutationResult{v(2)}, state: "a=2@2"},
		{name: "put over expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, put("a", "2")),
			want: []MutationResult{v(2)}, state: "a=2@2"},
		{name: "put if version matches", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, ifVersion(put("a", "2"), 1)),
			want: []MutationResult{v(2)}, state: "a=2@2"},
		{name: "put if version differs", setup: []Command{at(testNow, put("a", "1")), at(testNow, put("b", "1"))}, cmd: at(testNow, ifVersion(put("a", "2"), 2)),
			err: preErr("a", 1, 0), state: "a=1@1; b=1@2"},
		{name: "put if version on absent key", cmd: at(testNow, ifVersion(put("a", "2"), 1)),
			err: preErr("a", 0, 0), state: ""},
		{name: "put if version on expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(testNow+10, ifVersion(put("a", "2"), 1)),
			err: preErr("a", 0, 0), state: "a=1@1 exp=1010"},
		{name: "put if absent on absent key", cmd: at(testNow, ifAbsent(put("a", "1"))),
			want: []MutationResult{v(1)}, state: "a=1@1"},
		{name: "put if absent on live key", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, ifAbsent(put("a", "2"))),
			err: preErr("a", 1, 0), state: "a=1@1"},
		{name: "put if absent on expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(testNow+10, ifAbsent(put("a", "2"))),
			want: []MutationResult{v(2)}, state: "a=2@2"},

		// OpDelete
		{name: "delete live key", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, del("a")),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "delete absent key", setup: []Command{at(testNow, put("b", "1"))}, cmd: at(testNow, del("a")),
			want: []MutationResult{v(2)}, state: "b=1@1"},
		{name: "delete expired key removes it", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, del("a")),
			want: []MutationResult{v(2)}, state: ""},
		{name: "delete if version matches", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, ifVersion(del("a"), 1)),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "delete if version differs", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, ifVersion(del("a"), 7)),
			err: preErr("a", 1, 0), state: "a=1@1"},
		{name: "delete if version on absent key", cmd: at(testNow, ifVersion(del("a"), 1)),
			err: preErr("a", 0, 0), state: ""},

		// OpIncrement
		{name: "increment absent key", cmd: at(testNow, incr("n", 5)),
			want: []MutationResult{counter(1, 5)}, state: "n=5@1"},
		{name: "increment existing", setup: []Command{at(testNow, put("n", "10"))}, cmd: at(testNow, incr("n", -13)),
			want: []MutationResult{counter(2, -3)}, state: "n=-3@2"},
		{name: "increment by zero rewrites version", setup: []Command{at(testNow, put("n", "+7"))}, cmd: at(testNow, incr("n", 0)),
			want: []MutationResult{counter(2, 7)}, state: "n=7@2"},
		{name: "increment keeps expiry", setup: []Command{at(testNow, putTTL("n", "1", 500))}, cmd: at(testNow+100, incr("n", 1)),
			want: []MutationResult{counter(2, 2)}, state: "n=2@2 exp=1500"},
		{name: "increment expired key starts at zero without expiry", setup: []Command{at(testNow, putTTL("n", "41", 5))}, cmd: at(2000, incr("n", 1)),
			want: []MutationResult{counter(2, 1)}, state: "n=1@2"},
		{name: "increment max int64", setup: []Command{at(testNow, put("n", "9223372036854775806"))}, cmd: at(testNow, incr("n", 1)),
			want: []MutationResult{counter(2, math.MaxInt64)}, state: "n=9223372036854775807@2"},
		{name: "increment non-integer", setup: []Command{at(testNow, put("n", "x"))}, cmd: at(testNow, incr("n", 1)),
			err: ErrNotInteger, state: "n=x@1"},
		{name: "increment padded integer", setup: []Command{at(testNow, put("n", " 1"))}, cmd: at(testNow, incr("n", 1)),
			err: ErrNotInteger, state: "n= 1@1"},
		{name: "increment empty value", setup: []Command{at(testNow, put("n", ""))}, cmd: at(testNow, incr("n", 1)),
			err: ErrNotInteger, state: "n=@1"},
		{name: "increment out of int64", setup: []Command{at(testNow, put("n", "9223372036854775808"))}, cmd: at(testNow, incr("n", -1)),
			err: ErrNotInteger, state: "n=9223372036854775808@1"},
		{name: "increment overflows", setup: []Command{at(testNow, put("n", "9223372036854775807"))}, cmd: at(testNow, incr("n", 1)),
			err: ErrNotInteger, state: "n=9223372036854775807@1"},
		{name: "increment underflows", setup: []Command{at(testNow, put("n", "-2"))}, cmd: at(testNow, incr("n", math.MinInt64)),
			err: ErrNotInteger, state: "n=-2@1"},
		{name: "increment if version matches", setup: []Command{at(testNow, put("n", "1"))}, cmd: at(testNow, ifVersion(incr("n", 1), 1)),
			want: []MutationResult{counter(2, 2)}, state: "n=2@2"},
		{name: "increment if version differs", setup: []Command{at(testNow, put("n", "1"))}, cmd: at(testNow, ifVersion(incr("n", 1), 2)),
			err: preErr("n", 1, 0), state: "n=1@1"},

		// OpExpire
		{name: "expire expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(testNow+10, expire("a")),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "expire live key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(testNow+9, expire("a")),
			want: []MutationResult{v(2)}, state: "a=1@1 exp=1010"},
		{name: "expire key without ttl", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(math.MaxInt64, expire("a")),
			want: []MutationResult{v(2)}, state: "a=1@1"},
		{name: "expire absent key", cmd: at(testNow, expire("a")),
			want: []MutationResult{v(1)}, state: ""},
		{name: "expire if version matches", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, ifVersion(expire("a"), 1)),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "expire if version differs", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, ifVersion(expire("a"), 9)),
			want: []MutationResult{v(2)}, state: "a=1@1 exp=1010"},

		// Batches
		{name: "batch increments its own put", cmd: at(testNow, put("n", "40"), incr("n", 2)),
			want: []MutationResult{v(1), counter(1, 42)}, state: "n=42@1"},
		{name: "batch sees its own version", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, put("a", "2"), ifVersion(put("a", "3"), 2)),
			want: []MutationResult{v(2), v(2)}, state: "a=3@2"},
		{name: "batch delete then put if absent", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, del("a"), ifAbsent(put("a", "2"))),
			want: []MutationResult{existed(2), v(2)}, state: "a=2@2"},
		{name: "empty batch", cmd: at(testNow),
			want: []MutationResult{}, state: ""},
		{name: "failing batch changes nothing",
			setup: []Command{at(testNow, put("a", "1"), putTTL("b", "2", 10), put("c", "x"))},
			cmd:   at(2000, put("a", "9"), del("b"), put("d", "4"), expire("b"), incr("a", 1), incr("c", 1)),
			err:   ErrNotInteger, state: "a=1@1; b=2@1 exp=1010; c=x@1"},
		{name: "failing precondition reports its index",
			setup: []Command{at(testNow, put("a", "1"))},
			cmd:   at(testNow, put("b", "1"), del("a"), ifVersion(put("a", "2"), 1)),
			err:   preErr("a", 0, 2), state: "a=1@1"},

		// Invalid commands
		{name: "empty key", cmd: at(testNow, put("a", "1"), put("", "1")), err: ErrInvalidCommand, state: ""},
		{name: "unknown op 0", cmd: at(testNow, Mutation{Key: []byte("a")}), err: ErrInvalidCommand, state: ""},
		{name: "unknown op 9", cmd: at(testNow, Mutation{Op: 9, Key: []byte("a")}), err: ErrInvalidCommand, state: ""},
		{name: "negative ttl", cmd: at(testNow, putTTL("a", "1", -1)), err: ErrInvalidCommand, state: ""},
		{name: "ttl overflows", cmd: at(testNow, putTTL("a", "1", math.MaxInt64)), err: ErrInvalidCommand, state: ""},
		{name: "ttl ends at or before zero", cmd: at(-10, putTTL("a", "1", 10)), err: ErrInvalidCommand, state: ""},
		{name: "if absent with if version", cmd: at(testNow, ifAbsent(ifVersion(put("a", "1"), 1))), err: ErrInvalidCommand, state: ""},
		{name: "if absent on delete", cmd: at(testNow, ifAbsent(del("a"))), err: ErrInvalidCommand, state: ""},
		{name: "if absent on increment", cmd: at(testNow, ifAbsent(incr("a", 1))), err: ErrInvalidCommand, state: ""},
		{name: "key too long", cmd: at(testNow, put(strings.Repeat("k", maxKeyBytes+1), "1")), err: ErrInvalidCommand, state: ""},
		{name: "too many mutations", cmd: at(testNow, make([]Mutation, maxMutations+1)...), err: ErrInvalidCommand, state: ""},
		{name: "invalid command changes nothing", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, del("a"), put("", "")),
			err: ErrInvalidCommand, state: "a=1@1"},

		// OpSetTTL
		{name: "set ttl on live key", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, setTTL("a", 500)),
			want: []MutationResult{existed(2)}, state: "a=1@2 exp=1500"},
		{name: "set ttl replaces ttl", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(testNow+5, setTTL("a", 100)),
			want: []MutationResult{existed(2)}, state: "a=1@2 exp=1105"},
		{name: "set ttl on absent key", setup: []Command{at(testNow, put("b", "1"))}, cmd: at(testNow, setTTL("a", 5)),
			want: []MutationResult{v(2)}, state: "b=1@1"},
		{name: "set ttl on expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, setTTL("a", 5)),
			want: []MutationResult{v(2)}, state: "a=1@1 exp=1010"},
		{name: "set ttl if version matches", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, ifVersion(setTTL("a", 5), 1)),
			want: []MutationResult{existed(2)}, state: "a=1@2 exp=1005"},
		{name: "set ttl if version differs", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, ifVersion(setTTL("a", 5), 2)),
			err: preErr("a", 1, 0), state: "a=1@1"},
		{name: "set ttl if version on absent key", cmd: at(testNow, ifVersion(setTTL("a", 5), 1)),
			err: preErr("a", 0, 0), state: ""},
		{name: "set ttl then batch sees it", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, setTTL("a", 5), ifVersion(incr("a", 1), 2)),
			want: []MutationResult{existed(2), counter(2, 2)}, state: "a=2@2 exp=1005"},
		{name: "set ttl without ttl", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, setTTL("a", 0)),
			err: ErrInvalidCommand, state: "a=1@1"},
		{name: "set ttl out of range", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, setTTL("a", math.MaxInt64)),
			err: ErrInvalidCommand, state: "a=1@1"},
		{name: "set ttl if absent", cmd: at(testNow, ifAbsent(setTTL("a", 5))), err: ErrInvalidCommand, state: ""},

		// OpPersist
		{name: "persist volatile key", setup: []Command{at(testNow, putTTL("a", "1", 500))}, cmd: at(testNow, persist("a")),
			want: []MutationResult{existed(2)}, state: "a=1@2"},
		{name: "persist key without ttl rewrites version", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, persist("a")),
			want: []MutationResult{existed(2)}, state: "a=1@2"},
		{name: "persist absent key", cmd: at(testNow, persist("a")),
			want: []MutationResult{v(1)}, state: ""},
		{name: "persist expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, persist("a")),
			want: []MutationResult{v(2)}, state: "a=1@1 exp=1010"},
		{name: "persist if version matches", setup: []Command{at(testNow, putTTL("a", "1", 500))}, cmd: at(testNow, ifVersion(persist("a"), 1)),
			want: []MutationResult{existed(2)}, state: "a=1@2"},
		{name: "persist if version differs", setup: []Command{at(testNow, putTTL("a", "1", 500))}, cmd: at(testNow, ifVersion(persist("a"), 3)),
			err: preErr("a", 1, 0), state: "a=1@1 exp=1500"},

		// OpEvict
		{name: "evict at version", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, evict("a", 1)),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "evict spares a rewritten key", setup: []Command{at(testNow, put("a", "1")), at(testNow, put("a", "2"))}, cmd: at(testNow, evict("a", 1)),
			want: []MutationResult{v(3)}, state: "a=2@2"},
		{name: "evict expired key", setup: []Command{at(testNow, putTTL("a", "1", 10))}, cmd: at(2000, evict("a", 1)),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "evict absent key", cmd: at(testNow, evict("a", 1)),
			want: []MutationResult{v(1)}, state: ""},
		{name: "evict without version", cmd: at(testNow, Mutation{Op: OpEvict, Key: []byte("a")}), err: ErrInvalidCommand, state: ""},
		{name: "evict if absent", cmd: at(testNow, ifAbsent(Mutation{Op: OpEvict, Key: []byte("a")})), err: ErrInvalidCommand, state: ""},

		// OpSetMeta
		{name: "set meta", cmd: at(testNow, setMeta("policy", "allkeys-lru")),
			want: []MutationResult{v(1)}, state: "meta{policy=allkeys-lru}"},
		{name: "set meta is not a key", setup: []Command{at(testNow, put("a", "1"))}, cmd: at(testNow, setMeta("a", "2"), setMeta("0", "x")),
			want: []MutationResult{v(2), v(2)}, state: "a=1@1 meta{0=x a=2}"},
		{name: "replace meta", setup: []Command{at(testNow, setMeta("p", "a"))}, cmd: at(testNow, setMeta("p", "b")),
			want: []MutationResult{existed(2)}, state: "meta{p=b}"},
		{name: "delete meta", setup: []Command{at(testNow, setMeta("p", "a"), setMeta("q", "b"))}, cmd: at(testNow, setMeta("p", "")),
			want: []MutationResult{existed(2)}, state: "meta{q=b}"},
		{name: "delete last meta", setup: []Command{at(testNow, setMeta("p", "a"))}, cmd: at(testNow, setMeta("p", "")),
			want: []MutationResult{existed(2)}, state: ""},
		{name: "delete absent meta", cmd: at(testNow, setMeta("p", "")),
			want: []MutationResult{v(1)}, state: ""},
		{name: "longest meta name", cmd: at(testNow, setMeta(strings.Repeat("n", maxMetaNameBytes), "v")),
			want: []MutationResult{v(1)}, state: "meta{" + strings.Repeat("n", maxMetaNameBytes) + "=v}"},
		{name: "meta name too long", cmd: at(testNow, setMeta(strings.Repeat("n", maxMetaNameBytes+1), "v")), err: ErrInvalidCommand, state: ""},
		{name: "meta value too long", cmd: at(testNow, setMeta("n", strings.Repeat("v", maxMetaValueBytes+1))), err: ErrInvalidCommand, state: ""},
		{name: "meta with if version", cmd: at(testNow, ifVersion(setMeta("n", "v"), 1)), err: ErrInvalidCommand, state: ""},
		{name: "failing batch restores meta", setup: []Command{at(testNow, setMeta("p", "a"), put("c", "x"))},
			cmd: at(testNow, setMeta("p", "b"), setMeta("q", "c"), setMeta("p", ""), incr("c", 1)),
			err: ErrNotInteger, state: "c=x@1 meta{p=a}"},

		// Command.MaxMemoryBytes
		{name: "memory budget met", cmd: withMax(at(testNow, put("a", "1")), footprint(1, 1, false)),
			want: []MutationResult{v(1)}, state: "a=1@1"},
		{name: "memory budget exceeded", cmd: withMax(at(testNow, put("a", "1")), footprint(1, 1, false)-1),
			err: ErrMemoryFull, state: ""},
		{name: "memory budget exceeded by a batch", setup: []Command{at(testNow, put("z", "1"))},
			cmd: withMax(at(testNow, put("a", "1"), put("b", "1")), 2*footprint(1, 1, false)),
			err: ErrMemoryFull, state: "z=1@1"},
		{name: "memory budget exceeded by an overwrite", setup: []Command{at(testNow, put("a", "1"))},
			cmd: withMax(at(testNow, put("a", long)), 1), err: ErrMemoryFull, state: "a=1@1"},
		{name: "memory budget exceeded by set ttl", setup: []Command{at(testNow, put("a", "1"))},
			cmd: withMax(at(testNow, setTTL("a", 5)), 1), err: ErrMemoryFull, state: "a=1@1"},
		{name: "delete over memory budget", setup: []Command{at(testNow, put("a", "1"), put("b", "1"))},
			cmd: withMax(at(testNow, del("a")), 1), want: []MutationResult{existed(2)}, state: "b=1@1"},
		{name: "shrinking put over memory budget", setup: []Command{at(testNow, put("a", long))},
			cmd: withMax(at(testNow, put("a", "1")), 1), want: []MutationResult{v(2)}, state: "a=1@2"},
		{name: "equal put over memory budget", setup: []Command{at(testNow, put("a", "1"))},
			cmd: withMax(at(testNow, put("a", "2")), 1), want: []MutationResult{v(2)}, state: "a=2@2"},
		{name: "batch that frees more than it adds", setup: []Command{at(testNow, put("a", long))},
			cmd: withMax(at(testNow, put("b", "1"), del("a")), 1), want: []MutationResult{v(2), existed(2)}, state: "b=1@2"},
		{name: "persist, expire and evict over memory budget", setup: []Command{at(testNow, putTTL("a", "1", 500), putTTL("b", "1", 5), put("c", "1"))},
			cmd:  withMax(at(testNow+5, persist("a"), expire("b"), evict("c", 1)), 1),
			want: []MutationResult{existed(2), existed(2), existed(2)}, state: "a=1@2"},
		{name: "set meta over memory budget", setup: []Command{at(testNow, put("a", "1"))},
			cmd: withMax(at(testNow, setMeta("p", long)), 1), want: []MutationResult{v(2)}, state: "a=1@1 meta{p=" + long + "}"},
		{name: "precondition wins over memory budget", cmd: withMax(at(testNow, put("a", "1"), ifVersion(del("b"), 5)), 1),
			err: preErr("b", 0, 1), state: ""},
		{name: "negative memory budget", cmd: withMax(at(testNow, del("a")), -1), err: ErrInvalidCommand, state: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New()
			applyAll(t, e, tt.setup...)
			index := uint64(len(tt.setup) + 1)
			r := e.Apply(index, &tt.cmd)
			checkErr(t, r.Err, tt.err)
			if tt.err != nil && r.Mutations != nil {
				t.Errorf("Apply returned results %v with error", r.Mutations)
			}
			if tt.err == nil && !equalResults(r.Mutations, tt.want) {
				t.Errorf("Apply results = %+v; want %+v", r.Mutations, tt.want)
			}
			if got := e.AppliedIndex(); got != index {
				t.Errorf("AppliedIndex() = %d; want %d", got, index)
			}
			if got := dump(e); got != tt.state {
				t.Errorf("state = %q; want %q", got, tt.state)
			}
			if err := e.checkInvariants(); err != nil {
				t.Error(err)
			}
		})
	}
}

func equalResults(a, b []MutationResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestApplyRejectsStaleIndex(t *testing.T) {
	e := New()
	applyAll(t, e, at(testNow, put("a", "1")), at(testNow, put("b", "1")))
	before := e.Digest()
	for _, index := range []uint64{0, 1, 2} {
		c := at(testNow, put("a", "2"))
		if r := e.Apply(index, &c); !errors.Is(r.Err, ErrInvalidCommand) {
			t.Errorf("Apply(%d) error = %v; want ErrInvalidCommand", index, r.Err)
		}
	}
	if got := e.AppliedIndex(); got != 2 {
		t.Errorf("AppliedIndex() = %d; want 2", got)
	}
	if e.Digest() != before {
		t.Errorf("state changed after stale Apply: %s", dump(e))
	}
	if r := e.Apply(10, nil); !errors.Is(r.Err, ErrInvalidCommand) || e.AppliedIndex() != 10 {
		t.Errorf("Apply(10, nil) = %v, AppliedIndex %d; want ErrInvalidCommand, 10", r.Err, e.AppliedIndex())
	}
}

// TestApplyCopiesCommand checks that the engine keeps no reference to the
// command's bytes, which usually belong to the Raft log.
func TestApplyCopiesCommand(t *testing.T) {
	e := New()
	key, value := []byte("key"), []byte("value")
	c := at(testNow, Mutation{Op: OpPut, Key: key, Value: value})
	applyAll(t, e, c)
	copy(key, "XXX")
	copy(value, "XXXXX")
	if it, ok := e.Get([]byte("key"), testNow); !ok || string(it.Value) != "value" {
		t.Errorf(`Get("key") = %q, %v; want "value", true`, it.Value, ok)
	}
}

func TestGet(t *testing.T) {
	e := New()
	applyAll(t, e,
		at(testNow, put("a", "1")),
		at(testNow, putTTL("t", "2", 100)),
	)
	tests := []struct {
		key     string
		now     int64
		want    string
		version uint64
		exp     int64
		ok      bool
	}{
		{key: "a", now: testNow, want: "1", version: 1, ok: true},
		{key: "a", now: math.MaxInt64, want: "1", version: 1, ok: true},
		{key: "t", now: testNow + 99, want: "2", version: 2, exp: testNow + 100, ok: true},
		{key: "t", now: testNow + 100},
		{key: "b", now: testNow},
		{key: "", now: testNow},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s@%d", tt.key, tt.now), func(t *testing.T) {
			it, ok := e.Get([]byte(tt.key), tt.now)
			if ok != tt.ok || string(it.Value) != tt.want {
				t.Fatalf("Get(%q) = %q, %v; want %q, %v", tt.key, it.Value, ok, tt.want, tt.ok)
			}
			if ok && (string(it.Key) != tt.key || it.Version != tt.version || it.ExpiresAtUnixMs != tt.exp) {
				t.Errorf("Get(%q) = %+v; want version %d, expiry %d", tt.key, it, tt.version, tt.exp)
			}
		})
	}
	if got := e.Len(); got != 2 {
		t.Errorf("Len() = %d; want 2 (expired keys stay stored)", got)
	}
}

func TestScan(t *testing.T) {
	e := New()
	applyAll(t, e, at(testNow,
		put("a", "1"), put("b/1", "2"), putTTL("b/2", "3", 10), put("b/3", "4"), put("b/4", "5"),
		putTTL("b/5", "6", 10), put("c", "7"), put("b", "8"),
	))
	tests := []struct {
		start, prefix string
		limit         int
		now           int64
		want          string // keys, space-separated
		next          string // "" for nil
	}{
		{limit: 100, now: testNow, want: "a b b/1 b/2 b/3 b/4 b/5 c"},
		{limit: 100, now: testNow + 10, want: "a b b/1 b/3 b/4 c"},
		{prefix: "b/", limit: 100, now: testNow + 10, want: "b/1 b/3 b/4"},
		{prefix: "b/", limit: 2, now: testNow + 10, want: "b/1 b/3", next: "b/3\x00"},
		{start: "b/3\x00", prefix: "b/", limit: 2, now: testNow + 10, want: "b/4"},
		{prefix: "b/", limit: 3, now: testNow + 10, want: "b/1 b/3 b/4"},             // only expired keys follow
		{prefix: "b/", limit: 3, now: testNow, want: "b/1 b/2 b/3", next: "b/3\x00"}, // live ones follow
		{start: "b/2", prefix: "b/", limit: 100, now: testNow, want: "b/2 b/3 b/4 b/5"},
		{start: "a", prefix: "b/", limit: 100, now: testNow, want: "b/1 b/2 b/3 b/4 b/5"},
		{start: "c", prefix: "b/", limit: 100, now: testNow, want: ""},
		{start: "b", limit: 1, now: testNow, want: "b", next: "b\x00"},
		{prefix: "z", limit: 100, now: testNow, want: ""},
		{prefix: "b", limit: 0, now: testNow, want: ""},
		{prefix: "b", limit: -1, now: testNow, want: ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q,%q,%d,%d", tt.start, tt.prefix, tt.limit, tt.now), func(t *testing.T) {
			items, next := e.Scan([]byte(tt.start), []byte(tt.prefix), tt.limit, tt.now)
			var keys []string
			for _, it := range items {
				keys = append(keys, string(it.Key))
			}
			if got := strings.Join(keys, " "); got != tt.want {
				t.Errorf("Scan keys = %q; want %q", got, tt.want)
			}
			if (tt.next == "") != (next == nil) || string(next) != tt.next {
				t.Errorf("Scan next = %q; want %q", next, tt.next)
			}
		})
	}
}

func TestDigest(t *testing.T) {
	build := func(cmds ...Command) [32]byte {
		e := New()
		applyAll(t, e, cmds...)
		return e.Digest()
	}
	base := build(at(testNow, put("a", "1"), put("b", "2")))
	if got := build(at(testNow, put("b", "2"), put("a", "1"))); got != base {
		t.Errorf("Digest depends on mutation order within a command")
	}
	differ := map[string][32]byte{
		"value":   build(at(testNow, put("a", "1"), put("b", "3"))),
		"key":     build(at(testNow, put("a", "1"), put("c", "2"))),
		"version": build(at(testNow, put("a", "1")), at(testNow, put("b", "2"))),
		"expiry":  build(at(testNow, put("a", "1"), putTTL("b", "2", 5))),
		"split":   build(at(testNow, put("a", "1"), put("b", "2"), put("ab", ""))),
		"empty":   New().Digest(),
		"setting": build(at(testNow, put("a", "1"), put("b", "2"), setMeta("a", "1"))),
	}
	for name, d := range differ {
		if d == base {
			t.Errorf("Digest ignores a different %s", name)
		}
	}
	if build(at(testNow, put("a", "1"), put("b", "2"), setMeta("p", "x"), setMeta("p", ""))) != base {
		t.Errorf("Digest differs after a setting was set and deleted")
	}
	if build(at(testNow, put("a", "1"), put("b", "2"), setMeta("p", "x"))) == build(at(testNow, put("a", "1"), put("b", "2"), setMeta("p", "y"))) {
		t.Errorf("Digest ignores a setting's value")
	}
	e0 := New()
	applyAll(t, e0, at(testNow, put("a", "1"), put("b", "2")))
	for range 10 {
		e0.Get([]byte("a"), testNow)
	}
	if e0.Digest() != base {
		t.Errorf("Digest depends on access metadata")
	}
	e := New()
	applyAll(t, e, at(testNow, put("a", "1"), put("b", "2")))
	c := at(testNow, put("", ""))
	e.Apply(2, &c) // rejected, but consumes index 2
	if e.Digest() == base {
		t.Errorf("Digest ignores the applied index")
	}
}

// TestConcurrentReads hammers the read methods from several goroutines at
// once, as the concurrency contract allows, next to a snapshot being
// written. Get and Touch update access metadata atomically while Sample and
// Expired read it. Under -race it fails if a read path writes shared memory
// without synchronisation.
func TestConcurrentReads(t *testing.T) {
	e := snapshotFixture(t, 500, 100)
	snap := e.Snapshot()
	want, wantStats, clockBefore := e.Digest(), e.Stats(), e.clock.Load()
	const readers = 4
	errs := make(chan error, readers+1)
	for r := range readers {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var cs []Candidate
			for i := range 200 {
				k := fmt.Sprintf("key/%05d", (i*7+r)%500)
				if _, ok := e.Get([]byte(k), testNow); !ok && i%3 != 1 {
					errs <- fmt.Errorf("Get(%q) = _, false; want true", k)
					return
				}
				e.Touch([]byte(k), testNow+int64(i)*msPerMinute)
				if items, _ := e.Scan([]byte(k), []byte("key/"), 10, testNow); len(items) == 0 {
					errs <- fmt.Errorf("Scan(%q) returned nothing", k)
					return
				}
				cs = e.Sample(rng.IntN, 5, i%2 == 0, testNow+int64(i)*msPerMinute, cs[:0])
				cs = e.Expired(testNow+10, 5, cs)
				if len(cs) != 10 {
					errs <- fmt.Errorf("Sample and Expired returned %d candidates; want 10", len(cs))
					return
				}
				if v, ok := e.Meta("policy"); !ok || string(v) != "allkeys-lru" || len(e.MetaNames()) != 2 {
					errs <- fmt.Errorf("Meta(policy) = %q, %v", v, ok)
					return
				}
				if _, ok := e.NextExpiry(); !ok || e.Stats() != wantStats || e.MemoryUsed() != wantStats.MemoryUsedBytes {
					errs <- fmt.Errorf("NextExpiry, Stats or MemoryUsed changed during reads")
					return
				}
				if i%50 == 0 && (e.Digest() != want || e.Len() != 502) {
					errs <- fmt.Errorf("Digest or Len changed during reads")
					return
				}
			}
			errs <- nil
		}()
	}
	go func() {
		_, err := snap.WriteTo(io.Discard)
		errs <- err
	}()
	for range readers + 1 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := e.clock.Load() - clockBefore; got < readers*200 {
		t.Errorf("access clock advanced by %d over %d Gets of live keys; want at least that", got, readers*200)
	}
}

// TestKeyOrder checks the tree's order, and Get, against bytes.Compare on
// keys with long shared prefixes, zero and 0xff bytes, and keys that are
// prefixes of others.
func TestKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 'a', 0xff}
	bases := []string{"", "\x00", "prefix/", "prefix/\xff", "12345678", "12345678abcdefgh"}
	var keys [][]byte
	for len(keys) < 3000 {
		k := []byte(bases[rng.IntN(len(bases))])
		for range rng.IntN(12) {
			k = append(k, alphabet[rng.IntN(len(alphabet))])
		}
		if len(k) > 0 {
			keys = append(keys, k)
		}
	}
	e := New()
	c := Command{NowUnixMs: testNow}
	for _, k := range keys {
		c.Mutations = append(c.Mutations, Mutation{Op: OpPut, Key: k, Value: k})
	}
	applyAll(t, e, c)

	slices.SortFunc(keys, bytes.Compare)
	keys = slices.CompactFunc(keys, bytes.Equal)
	items, _ := e.Scan(nil, nil, math.MaxInt, testNow)
	if len(items) != len(keys) {
		t.Fatalf("Scan returned %d items; want %d", len(items), len(keys))
	}
	for i, it := range items {
		if !bytes.Equal(it.Key, keys[i]) {
			t.Fatalf("Scan item %d = %x; want %x", i, it.Key, keys[i])
		}
		if got, ok := e.Get(keys[i], testNow); !ok || !bytes.Equal(got.Value, keys[i]) {
			t.Fatalf("Get(%x) = %x, %v; want %x, true", keys[i], got.Value, ok, keys[i])
		}
		if got, ok := e.Get(append(bytes.Clone(keys[i]), 0), testNow); ok != (i+1 < len(keys) && bytes.Equal(keys[i+1], append(bytes.Clone(keys[i]), 0))) {
			t.Fatalf("Get(%x + 00) = %x, %v", keys[i], got.Value, ok)
		}
	}
}

func TestClockUnixMs(t *testing.T) {
	e := New()
	if got := e.ClockUnixMs(); got != 0 {
		t.Fatalf("new engine: ClockUnixMs() = %d; want 0", got)
	}
	for i, now := range []int64{1000, 5000, 3000, 7000} {
		e.Apply(uint64(i+1), &Command{NowUnixMs: now, Mutations: []Mutation{{Op: OpPut, Key: []byte("k"), Value: []byte("v")}}})
	}
	// A command stamped by a leader whose clock is behind does not move
	// the clock back.
	if got := e.ClockUnixMs(); got != 7000 {
		t.Errorf("ClockUnixMs() = %d; want 7000, the largest stamp", got)
	}
}
