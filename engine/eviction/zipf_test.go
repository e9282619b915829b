package eviction

import (
	"math"
	"math/rand/v2"
	"testing"
)

// zipf draws key ids in [0, n) with a Zipf distribution of exponent theta,
// which may be below 1 (math/rand's Zipf needs s > 1). It is the generator of
// Gray et al., "Quickly generating billion-record synthetic databases"
// (SIGMOD 1994), as YCSB's ZipfianGenerator implements it: exact for the two
// hottest ranks, a close approximation of the inverse CDF for the others.
//
// Ranks are mapped to key ids by a fixed random permutation, so the hot keys
// are spread over the keyspace instead of sitting at its start (YCSB's
// ScrambledZipfian hashes the rank instead, which merges some ranks; a
// permutation keeps the distribution exact).
type zipf struct {
	rnd   *rand.Rand
	n     int
	theta float64
	zetan float64 // sum over i in [1, n] of 1/i^theta
	alpha float64 // 1/(1-theta)
	eta   float64
	half  float64 // 1 + 0.5^theta: the CDF bound of rank 1, times zetan
	ids   []int32 // rank -> key id
}

// newZipf returns a generator over n keys; the same seed yields the same
// sequence.
func newZipf(seed uint64, n int, theta float64) *zipf {
	if n < 2 || theta <= 0 || theta >= 1 {
		panic("zipf: need n >= 2 and 0 < theta < 1")
	}
	z := &zipf{
		rnd:   rand.New(rand.NewPCG(seed, seed+1)),
		n:     n,
		theta: theta,
		zetan: zeta(n, theta),
		alpha: 1 / (1 - theta),
	}
	zeta2 := zeta(2, theta)
	z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	z.ids = make([]int32, n)
	for i := range z.ids {
		z.ids[i] = int32(i)
	}
	z.rnd.Shuffle(n, func(i, j int) { z.ids[i], z.ids[j] = z.ids[j], z.ids[i] })
	return z
}

// zeta returns the sum over i in [1, n] of 1/i^theta.
func zeta(n int, theta float64) float64 {
	var sum float64
	for i := 1; i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// rank draws a popularity rank in [0, n): 0 is the hottest.
func (z *zipf) rank() int {
	u := z.rnd.Float64()
	uz := u * z.zetan
	switch {
	case uz < 1:
		return 0
	case uz < z.half:
		return 1
	}
	r := int(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(r, z.n-1)
}

// next draws a key id.
func (z *zipf) next() int { return int(z.ids[z.rank()]) }

// prob returns the probability that rank draws rank r, as the generator
// computes it (not the exact Zipf probability, from which it departs at ranks
// 2 and up: by +18 % at rank 2, +6 % at rank 5, and less further out).
func (z *zipf) prob(r int) float64 {
	switch r {
	case 0:
		return 1 / z.zetan
	case 1:
		return (z.half - 1) / z.zetan
	}
	// rank >= r iff u >= 1 - (1 - (r/n)^(1-theta))/eta; the last rank also
	// takes the values the formula maps to n.
	u := func(r int) float64 {
		if r >= z.n {
			return 1
		}
		return 1 - (1-math.Pow(float64(r)/float64(z.n), 1-z.theta))/z.eta
	}
	return u(r+1) - max(u(r), z.half/z.zetan)
}

// TestZipf checks the generator's draws against its own distribution (prob)
// tightly and against the exact Zipf(0.99) distribution loosely, over single
// hot ranks and over the share of the top 0.1 %, 1 %, 10 % and 50 % of ranks;
// and that the ids are a permutation spreading the hot keys over the
// keyspace.
func TestZipf(t *testing.T) {
	const (
		n     = 10000
		theta = 0.99
	)
	draws := 1_000_000
	if raceEnabled {
		draws = 200_000
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	z := newZipf(seed, n, theta)

	counts := make([]int, n)
	for range draws {
		counts[z.rank()]++
	}
	var total float64
	for r := range n {
		total += z.prob(r)
	}
	if math.Abs(total-1) > 1e-9 {
		t.Fatalf("generator probabilities sum to %v; want 1", total)
	}
	exact := func(r int) float64 { return 1 / math.Pow(float64(r+1), theta) / z.zetan }
	for r := range 6 {
		got, want := float64(counts[r])/float64(draws), z.prob(r)
		t.Logf("P(rank %d) = %.4f; generator %.4f, exact Zipf %.4f", r, got, want, exact(r))
		// Five standard deviations of a binomial count.
		if tol := 5 * math.Sqrt(want*(1-want)/float64(draws)); math.Abs(got-want) > tol {
			t.Errorf("P(rank %d) = %.4f; want %.4f within %.4f", r, got, want, tol)
		}
	}
	var gotCum, genCum, exactCum float64
	r := 0
	for _, top := range []int{n / 1000, n / 100, n / 10, n / 2} {
		for ; r < top; r++ {
			gotCum += float64(counts[r]) / float64(draws)
			genCum += z.prob(r)
			exactCum += exact(r)
		}
		t.Logf("share of the top %d ranks = %.4f; generator %.4f, exact Zipf %.4f", top, gotCum, genCum, exactCum)
		if tol := 5 * math.Sqrt(genCum*(1-genCum)/float64(draws)); math.Abs(gotCum-genCum) > tol {
			t.Errorf("share of the top %d ranks = %.4f; want %.4f within %.4f", top, gotCum, genCum, tol)
		}
		if math.Abs(gotCum-exactCum) > 0.02 {
			t.Errorf("share of the top %d ranks = %.4f; want exact Zipf's %.4f within 0.02", top, gotCum, exactCum)
		}
	}

	seen := make([]bool, n)
	for _, id := range z.ids {
		if id < 0 || int(id) >= n || seen[id] {
			t.Fatalf("ids is not a permutation of [0, %d): %d repeats or is out of range", n, id)
		}
		seen[id] = true
	}
	// The hottest 1 % of ranks land all over the keyspace: about as many
	// in each half.
	low := 0
	for _, id := range z.ids[:n/100] {
		if int(id) < n/2 {
			low++
		}
	}
	if low < n/100/4 || low > n/100*3/4 {
		t.Errorf("%d of the %d hottest keys have ids below %d; want them spread", low, n/100, n/2)
	}
}

// TestZipfDeterministic checks that a seed replays the same sequence.
func TestZipfDeterministic(t *testing.T) {
	a, b := newZipf(7, 1000, 0.99), newZipf(7, 1000, 0.99)
	for i := range 1000 {
		if x, y := a.next(), b.next(); x != y {
			t.Fatalf("draw %d: %d != %d with the same seed", i, x, y)
		}
	}
}
