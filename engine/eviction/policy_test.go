package eviction

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/engine"
)

// cand is a short way to write a candidate in the tables: key, last access,
// frequency, expiry.
func cand(key string, lastAccess uint64, freq uint8, expiresAtUnixMs int64) engine.Candidate {
	return engine.Candidate{
		Key:             []byte(key),
		Version:         1,
		SizeBytes:       100,
		ExpiresAtUnixMs: expiresAtUnixMs,
		LastAccess:      lastAccess,
		Frequency:       freq,
	}
}

const testNowUnixMs = 1_000

// victims calls p.Victims without a deadline: a built-in never fails, so an
// error fails the test.
func victims(tb testing.TB, p Policy, nowUnixMs int64, cands []engine.Candidate, max int, out []int) []int {
	got, err := p.Victims(context.Background(), nowUnixMs, cands, max, out)
	if err != nil {
		tb.Errorf("%s.Victims = %v; built-ins never fail", p.Name(), err)
	}
	return got
}

func TestNewAndNames(t *testing.T) {
	names := Names()
	if len(names) != 8 {
		t.Fatalf("Names() = %q; want Redis's eight policies", names)
	}
	for _, name := range names {
		p, err := New(name)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		if p.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, p.Name())
		}
		if got, want := p.VolatileOnly(), strings.HasPrefix(name, "volatile-"); got != want {
			t.Errorf("New(%q).VolatileOnly() = %v; want %v", name, got, want)
		}
	}
	_, err := New("allkeys-fifo")
	if err == nil {
		t.Fatal(`New("allkeys-fifo") succeeded; want an error`)
	}
	for _, name := range names {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("New(%q) error %q does not list %q", "allkeys-fifo", err, name)
		}
	}
	t.Logf("error: %v", err)
}

// TestVictims checks the deterministic policies' orders. The random
// policies are checked by TestRandomVictims.
func TestVictims(t *testing.T) {
	// Shared candidates: a (no TTL, old, rare), b (TTL 5000, recent,
	// frequent), c (TTL 3000, older than b, frequent), d (no TTL, newest,
	// rare), e (expired at 900), f (expired at 500, no LRU/LFU merit).
	abcd := []engine.Candidate{
		cand("a", 10, 1, 0),
		cand("b", 40, 9, 5000),
		cand("c", 20, 9, 3000),
		cand("d", 50, 1, 0),
	}
	withExpired := append(slices.Clone(abcd),
		cand("e", 99, 200, 900),
		cand("f", 98, 200, 500),
	)
	tests := []struct {
		policy string
		cands  []engine.Candidate
		max    int
		want   []int
	}{
		{NoEviction, abcd, 10, nil},
		{NoEviction, withExpired, 10, nil},

		{AllKeysLRU, abcd, 10, []int{0, 2, 1, 3}},
		{AllKeysLRU, abcd, 2, []int{0, 2}},
		{AllKeysLRU, abcd, 0, nil},
		{AllKeysLRU, abcd, -1, nil},
		{AllKeysLRU, nil, 10, nil},
		{AllKeysLRU, withExpired, 10, []int{5, 4, 0, 2, 1, 3}},
		{AllKeysLRU, withExpired, 1, []int{5}},
		{AllKeysLRU, []engine.Candidate{cand("x", 7, 0, 0), cand("y", 7, 0, 0), cand("z", 3, 0, 0)}, 10, []int{2, 0, 1}},

		{VolatileLRU, abcd, 10, []int{2, 1}},
		{VolatileLRU, withExpired, 10, []int{5, 4, 2, 1}},
		{VolatileLRU, []engine.Candidate{cand("a", 1, 0, 0)}, 10, nil},

		// Frequency first, then last access.
		{AllKeysLFU, abcd, 10, []int{0, 3, 2, 1}},
		{AllKeysLFU, withExpired, 3, []int{5, 4, 0}},
		{AllKeysLFU, []engine.Candidate{cand("x", 9, 5, 0), cand("y", 2, 5, 0), cand("z", 100, 4, 0)}, 10, []int{2, 1, 0}},

		{VolatileLFU, abcd, 10, []int{2, 1}},
		{VolatileLFU, withExpired, 10, []int{5, 4, 2, 1}},

		// Soonest expiry first; ties by last access; keys without TTL never.
		{VolatileTTL, abcd, 10, []int{2, 1}},
		{VolatileTTL, withExpired, 10, []int{5, 4, 2, 1}},
		{VolatileTTL, []engine.Candidate{cand("x", 9, 0, 2000), cand("y", 3, 0, 2000), cand("z", 1, 0, 0), cand("w", 99, 0, 1500)}, 10, []int{3, 1, 0}},
		{VolatileTTL, []engine.Candidate{cand("x", 9, 0, math.MaxInt64), cand("y", 3, 0, 1)}, 10, []int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/max=%d", tt.policy, len(tt.cands), tt.max), func(t *testing.T) {
			p, err := New(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			before := cloneCands(tt.cands)
			got := victims(t, p, testNowUnixMs, tt.cands, tt.max, nil)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s.Victims(%s, max %d) = %v; want %v", tt.policy, keysOf(tt.cands), tt.max, got, tt.want)
			}
			if !equalCands(before, tt.cands) {
				t.Errorf("%s.Victims modified its candidates", tt.policy)
			}
			// Victims appends: what out held stays.
			got = victims(t, p, testNowUnixMs, tt.cands, tt.max, []int{-7})
			if !slices.Equal(got, append([]int{-7}, tt.want...)) {
				t.Errorf("%s.Victims with out=[-7] = %v; want -7 then %v", tt.policy, got, tt.want)
			}
		})
	}
}

// TestRandomVictims checks the random policies: expired candidates first,
// earliest expiry first; then distinct eligible indexes, each equally likely.
func TestRandomVictims(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	cands := []engine.Candidate{
		cand("a", 1, 0, 0),
		cand("b", 1, 0, 5000),
		cand("c", 1, 0, 900), // expired
		cand("d", 1, 0, 0),
		cand("e", 1, 0, 3000),
		cand("f", 1, 0, 500), // expired
		cand("g", 1, 0, 7000),
	}
	for _, tt := range []struct {
		policy   string
		eligible []int
	}{
		{AllKeysRandom, []int{0, 1, 2, 3, 4, 5, 6}},
		{VolatileRandom, []int{1, 2, 4, 5, 6}},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			p, err := newPolicy(tt.policy, seed)
			if err != nil {
				t.Fatal(err)
			}
			const trials = 20000
			firstFree := make(map[int]int) // index -> times it came first after the expired ones
			for max := range len(cands) + 2 {
				for range trials / 10 {
					got := victims(t, p, testNowUnixMs, cands, max, nil)
					if want := min(max, len(tt.eligible)); len(got) != want {
						t.Fatalf("Victims(max %d) = %v; want %d victims", max, got, want)
					}
					for k, i := range got {
						if k < 2 && i != []int{5, 2}[k] {
							t.Fatalf("Victims(max %d) = %v; want the expired 5, 2 first", max, got)
						}
						if !slices.Contains(tt.eligible, i) || slices.Index(got, i) != k {
							t.Fatalf("Victims(max %d) = %v; want distinct indexes among %v", max, got, tt.eligible)
						}
					}
				}
			}
			for range trials {
				got := victims(t, p, testNowUnixMs, cands, 3, nil)
				firstFree[got[2]]++
			}
			// Each non-expired eligible index comes third equally often:
			// within 5 standard deviations of the binomial count.
			free := len(tt.eligible) - 2
			mean := float64(trials) / float64(free)
			sd := math.Sqrt(float64(trials) * (1 / float64(free)) * (1 - 1/float64(free)))
			for _, i := range tt.eligible {
				if i == 2 || i == 5 {
					continue
				}
				if n := float64(firstFree[i]); math.Abs(n-mean) > 5*sd {
					t.Errorf("index %d came first after the expired ones %v times in %d; want about %.0f", i, n, trials, mean)
				}
			}
		})
	}
}

// TestRandomSeed checks that newPolicy's seed replays a random policy.
func TestRandomSeed(t *testing.T) {
	cands := make([]engine.Candidate, 50)
	for i := range cands {
		cands[i] = cand(fmt.Sprint(i), 1, 0, 0)
	}
	a, _ := newPolicy(AllKeysRandom, 42)
	b, _ := newPolicy(AllKeysRandom, 42)
	for range 10 {
		x, y := victims(t, a, 0, cands, 5, nil), victims(t, b, 0, cands, 5, nil)
		if !slices.Equal(x, y) {
			t.Fatalf("same seed, different victims: %v, %v", x, y)
		}
	}
}

// TestVictimsConcurrent calls every built-in from several goroutines at
// once; run with -race.
func TestVictimsConcurrent(t *testing.T) {
	cands := make([]engine.Candidate, 32)
	for i := range cands {
		cands[i] = cand(fmt.Sprint(i), uint64(i*7%32), uint8(i%5), int64(i%3)*1000)
	}
	for _, name := range Names() {
		p, err := New(name)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		for range 4 {
			go func() {
				defer func() { done <- struct{}{} }()
				var out []int
				for range 200 {
					out = victims(t, p, testNowUnixMs, cands, 8, out[:0])
				}
			}()
		}
		for range 4 {
			<-done
		}
	}
}

func TestVictimsAllocs(t *testing.T) {
	cands := make([]engine.Candidate, 32)
	for i := range cands {
		cands[i] = cand(fmt.Sprint(i), uint64(i*7%32), uint8(i%5), int64(i%3)*1000)
	}
	for _, name := range Names() {
		p, _ := New(name)
		out := make([]int, 0, len(cands))
		if n := testing.AllocsPerRun(100, func() { out = victims(t, p, testNowUnixMs, cands, 17, out[:0]) }); n != 0 {
			t.Errorf("%s.Victims allocates %v times per call; want 0", name, n)
		}
	}
}

func BenchmarkVictims(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 2))
	cands := make([]engine.Candidate, 32)
	for i := range cands {
		cands[i] = cand(fmt.Sprint(i), rnd.Uint64N(1e6), uint8(rnd.IntN(20)), int64(rnd.IntN(2))*(testNowUnixMs+rnd.Int64N(1e6)))
	}
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			p, _ := New(name)
			out := make([]int, 0, len(cands))
			b.ReportAllocs()
			for b.Loop() {
				out = victims(b, p, testNowUnixMs, cands, 17, out[:0])
			}
		})
	}
}

func cloneCands(cs []engine.Candidate) []engine.Candidate {
	out := slices.Clone(cs)
	for i := range out {
		out[i].Key = slices.Clone(out[i].Key)
	}
	return out
}

func equalCands(a, b []engine.Candidate) bool {
	return slices.EqualFunc(a, b, func(x, y engine.Candidate) bool {
		return string(x.Key) == string(y.Key) && x.Version == y.Version && x.SizeBytes == y.SizeBytes &&
			x.ExpiresAtUnixMs == y.ExpiresAtUnixMs && x.LastAccess == y.LastAccess && x.Frequency == y.Frequency
	})
}

func keysOf(cs []engine.Candidate) string {
	var sb strings.Builder
	for i, c := range cs {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.Write(c.Key)
	}
	return sb.String()
}

// referenceVictims is a naive statement of the deterministic built-ins'
// order, for TestVictimsReference: filter, then a stable sort by the rules
// as doc.go words them.
func referenceVictims(name string, nowUnixMs int64, cands []engine.Candidate, max int) []int {
	volatileOnly := strings.HasPrefix(name, "volatile-")
	var idx []int
	for i, c := range cands {
		if !volatileOnly || c.ExpiresAtUnixMs != 0 {
			idx = append(idx, i)
		}
	}
	isExpired := func(c engine.Candidate) bool { return c.ExpiresAtUnixMs != 0 && c.ExpiresAtUnixMs <= nowUnixMs }
	slices.SortStableFunc(idx, func(i, j int) int {
		a, b := cands[i], cands[j]
		if ea, eb := isExpired(a), isExpired(b); ea != eb {
			if ea {
				return -1
			}
			return 1
		} else if ea {
			return cmpInt(a.ExpiresAtUnixMs, b.ExpiresAtUnixMs)
		}
		switch name {
		case AllKeysLFU, VolatileLFU:
			if a.Frequency != b.Frequency {
				return cmpInt(a.Frequency, b.Frequency)
			}
		case VolatileTTL:
			if a.ExpiresAtUnixMs != b.ExpiresAtUnixMs {
				return cmpInt(a.ExpiresAtUnixMs, b.ExpiresAtUnixMs)
			}
		}
		return cmpInt(a.LastAccess, b.LastAccess)
	})
	if max < 0 {
		max = 0
	}
	return idx[:min(len(idx), max)]
}

func cmpInt[T int64 | uint64 | uint8](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestVictimsReference compares the deterministic built-ins with
// referenceVictims on random batches, small ones (sorted by insertion) and
// large ones (by slices.SortFunc), with many ties.
func TestVictimsReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, seed))
	for _, name := range []string{AllKeysLRU, AllKeysLFU, VolatileLRU, VolatileLFU, VolatileTTL} {
		p, _ := New(name)
		for trial := range 300 {
			n := rnd.IntN(3 * insertionSortMax)
			cands := make([]engine.Candidate, n)
			for i := range cands {
				var exp int64
				if rnd.IntN(2) == 0 {
					exp = 1 + rnd.Int64N(2*testNowUnixMs)
				}
				cands[i] = cand(fmt.Sprint(i), rnd.Uint64N(20), uint8(rnd.IntN(4)), exp)
			}
			max := rnd.IntN(n+2) - 1
			got := victims(t, p, testNowUnixMs, cands, max, nil)
			if want := referenceVictims(name, testNowUnixMs, cands, max); !slices.Equal(got, want) {
				t.Fatalf("trial %d: %s.Victims(%d candidates, max %d) = %v; want %v", trial, name, n, max, got, want)
			}
		}
	}
}
