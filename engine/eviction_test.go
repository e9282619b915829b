package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func candidateKeys(cs []Candidate) string {
	var keys []string
	for _, c := range cs {
		keys = append(keys, string(c.Key))
	}
	return strings.Join(keys, " ")
}

func TestExpired(t *testing.T) {
	e := New()
	if _, ok := e.NextExpiry(); ok {
		t.Fatalf("NextExpiry() on an empty engine = _, true")
	}
	applyAll(t, e, at(testNow,
		put("p", "1"), putTTL("d", "1", 30), putTTL("c", "1", 20), putTTL("a", "1", 20),
		putTTL("b", "1", 10), putTTL("z", "1", 1000), put("q", "1"),
	))
	tests := []struct {
		now  int64
		max  int
		want string
	}{
		{testNow, 10, ""},
		{testNow + 10, 10, "b"},
		{testNow + 20, 10, "b a c"}, // equal expiries in key order
		{testNow + 20, 2, "b a"},
		{testNow + 30, 10, "b a c d"},
		{math.MaxInt64, 10, "b a c d z"},
		{math.MaxInt64, 0, ""},
		{math.MaxInt64, -1, ""},
	}
	for _, tt := range tests {
		got := e.Expired(tt.now, tt.max, nil)
		if keys := candidateKeys(got); keys != tt.want {
			t.Errorf("Expired(%d, %d) = %q; want %q", tt.now, tt.max, keys, tt.want)
		}
		for _, c := range got {
			it, _ := e.Get(c.Key, math.MinInt64)
			if c.Version != it.Version || c.ExpiresAtUnixMs != it.ExpiresAtUnixMs || c.SizeBytes != footprint(len(c.Key), 1, true) {
				t.Errorf("Expired candidate %+v; the key is %+v", c, it)
			}
		}
	}
	out := e.Expired(testNow+10, 1, make([]Candidate, 1, 4))
	if len(out) != 2 || string(out[1].Key) != "b" {
		t.Errorf("Expired did not append: %+v", out)
	}
	if next, ok := e.NextExpiry(); !ok || next != testNow+10 {
		t.Errorf("NextExpiry() = %d, %v; want %d, true", next, ok, testNow+10)
	}

	// Every write keeps the index in step; so does a failing batch.
	applyAll(t, e, at(testNow+10, expire("b"), persist("a"), setTTL("p", 5), put("c", "2"), putTTL("d", "2", 100)))
	if got, want := candidateKeys(e.Expired(math.MaxInt64, 10, nil)), "p d z"; got != want {
		t.Errorf("after writes: Expired = %q; want %q", got, want)
	}
	c := at(testNow+10, del("p"), evict("z", 1), put("c", "x"), incr("c", 1))
	if r := e.Apply(e.AppliedIndex()+1, &c); !errors.Is(r.Err, ErrNotInteger) {
		t.Fatalf("Apply = %v; want ErrNotInteger", r.Err)
	}
	if got, want := candidateKeys(e.Expired(math.MaxInt64, 10, nil)), "p d z"; got != want {
		t.Errorf("after a failing batch: Expired = %q; want %q", got, want)
	}
	if err := e.checkInvariants(); err != nil {
		t.Error(err)
	}
	if next, ok := e.NextExpiry(); !ok || next != testNow+15 {
		t.Errorf("NextExpiry() = %d, %v; want %d, true", next, ok, testNow+15)
	}
}

// seq returns an rnd for Sample that yields the given positions in turn.
func seq(t *testing.T, positions ...int) func(int) int {
	return func(n int) int {
		if len(positions) == 0 {
			t.Fatalf("rnd(%d) called more often than expected", n)
		}
		p := positions[0]
		positions = positions[1:]
		return p
	}
}

func TestSample(t *testing.T) {
	e := New()
	if got := e.Sample(seq(t), 5, false, testNow, nil); len(got) != 0 {
		t.Fatalf("Sample of an empty engine = %+v", got)
	}
	applyAll(t, e, at(testNow,
		put("a", "1"), putTTL("b", "22", 30), put("c", "333"), putTTL("d", "4", 10), putTTL("e", "5", 20),
	))
	tests := []struct {
		name         string
		rnd          func(int) int
		n            int
		volatileOnly bool
		want         string
	}{
		{"by key position", seq(t, 0, 4, 2, 2), 4, false, "a e c c"},
		{"fewer keys than asked", seq(t, 4, 3, 2, 1, 0), 9, false, "e d c b a"},
		{"volatile by expiry position", seq(t, 0, 1, 2), 3, true, "d e b"},
		{"fewer volatile keys than asked", seq(t, 2, 2, 2), 5, true, "b b b"},
		{"none asked", seq(t), 0, false, ""},
		{"negative", seq(t), -1, true, ""},
	}
	for _, tt := range tests {
		got := e.Sample(tt.rnd, tt.n, tt.volatileOnly, testNow, nil)
		if keys := candidateKeys(got); keys != tt.want {
			t.Errorf("%s: Sample = %q; want %q", tt.name, keys, tt.want)
		}
		for _, c := range got {
			it, _ := e.Get(c.Key, math.MinInt64)
			if c.Version != it.Version || c.ExpiresAtUnixMs != it.ExpiresAtUnixMs ||
				c.SizeBytes != footprint(len(it.Key), len(it.Value), it.ExpiresAtUnixMs != 0) || c.LastAccess == 0 {
				t.Errorf("%s: candidate %+v; the key is %+v", tt.name, c, it)
			}
		}
	}
	var sizes []int
	e.Sample(func(n int) int { sizes = append(sizes, n); return 0 }, 2, true, testNow, nil)
	e.Sample(func(n int) int { sizes = append(sizes, n); return 0 }, 1, false, testNow, nil)
	if fmt.Sprint(sizes) != "[3 3 5]" {
		t.Errorf("rnd called with %v; want [3 3 5] (volatile keys, then all keys)", sizes)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Sample with rnd out of range did not panic")
		}
	}()
	e.Sample(func(n int) int { return n }, 1, false, testNow, nil)
}

func TestStats(t *testing.T) {
	e := New()
	applyAll(t, e, at(testNow, put("a", "1"), putTTL("b", "1", 10), putTTL("c", "1", 10), putTTL("d", "1", 500), put("e", "1")))
	applyAll(t, e, at(testNow+10, expire("b"), expire("c"), expire("d"), evict("e", 1), evict("a", 9), setMeta("m", "v")))
	want := Stats{Keys: 2, VolatileKeys: 1, MemoryUsedBytes: footprint(1, 1, false) + footprint(1, 1, true), ExpiredTotal: 2, EvictedTotal: 1}
	if got := e.Stats(); got != want {
		t.Errorf("Stats() = %+v; want %+v", got, want)
	}
	c := at(testNow+10, evict("a", 1), put("x", "y"), incr("x", 1))
	e.Apply(e.AppliedIndex()+1, &c)
	if got := e.Stats(); got != want {
		t.Errorf("Stats() after a failing batch = %+v; want %+v", got, want)
	}

	var buf bytes.Buffer
	if _, err := e.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := e.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	want.ExpiredTotal, want.EvictedTotal = 0, 0
	if got := e.Stats(); got != want {
		t.Errorf("Stats() after Restore = %+v; want %+v (counters reset)", got, want)
	}
}

func TestMetaLimits(t *testing.T) {
	e := New()
	c := Command{NowUnixMs: testNow}
	for i := range maxMetaSettings {
		c.Mutations = append(c.Mutations, setMeta(fmt.Sprintf("setting/%03d", i), strings.Repeat("v", maxMetaValueBytes)))
	}
	applyAll(t, e, c)
	if got := len(e.MetaNames()); got != maxMetaSettings {
		t.Fatalf("len(MetaNames()) = %d; want %d", got, maxMetaSettings)
	}
	one := at(testNow, setMeta("setting/999", "v"))
	if r := e.Apply(e.AppliedIndex()+1, &one); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Errorf("Apply(setting %d) = %v; want ErrInvalidCommand", maxMetaSettings+1, r.Err)
	}
	// Replacing one, or deleting one and adding another, stays in bounds.
	applyAll(t, e, at(testNow, setMeta("setting/000", "w")), at(testNow, setMeta("setting/001", ""), setMeta("setting/999", "v")))
	if v, ok := e.Meta("setting/000"); !ok || string(v) != "w" {
		t.Errorf("Meta(setting/000) = %q, %v; want w, true", v, ok)
	}
	if _, ok := e.Meta("setting/001"); ok {
		t.Errorf("Meta(setting/001) found a deleted setting")
	}
	if names := e.MetaNames(); len(names) != maxMetaSettings || names[len(names)-1] != "setting/999" {
		t.Errorf("MetaNames() = %d names ending %q", len(names), names[len(names)-1])
	}
	if err := e.checkInvariants(); err != nil {
		t.Error(err)
	}
	if e.MemoryUsed() != 0 || e.Len() != 0 {
		t.Errorf("settings counted in the keyspace: MemoryUsed %d, Len %d", e.MemoryUsed(), e.Len())
	}
	var buf bytes.Buffer
	if _, err := e.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatalf("Restore(%d full settings) = %v", maxMetaSettings, err)
	}
	if r.Digest() != e.Digest() {
		t.Errorf("restored settings differ")
	}
}

// TestMetaCopyOnWrite checks that a setting's value does not alias the
// command, and that a snapshot keeps the settings of its time.
func TestMetaCopyOnWrite(t *testing.T) {
	e := New()
	value := []byte("allkeys-lru")
	applyAll(t, e, at(testNow, Mutation{Op: OpSetMeta, Key: []byte("policy"), Value: value}))
	copy(value, "XXXXXXXXXXX")
	snap := e.Snapshot()
	applyAll(t, e, at(testNow, setMeta("policy", "noeviction"), setMeta("max", "1")))
	r := New()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := dumpMeta(r); got != "policy=allkeys-lru" {
		t.Errorf("snapshot settings = %q; want %q", got, "policy=allkeys-lru")
	}
	if got := dumpMeta(e); got != "max=1 policy=noeviction" {
		t.Errorf("settings = %q; want %q", got, "max=1 policy=noeviction")
	}
}
