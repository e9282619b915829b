package ring

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// naiveShard is the reference for KeyRing.Shard: scan every token of every
// shard for the nearest one clockwise from h (ties to the lower shard).
func naiveShard(shards, vnodes int, h uint64) int {
	best, bestDist := -1, uint64(0)
	for s := range shards {
		for v := range vnodes {
			d := KeyToken(s, v) - h // clockwise distance, wrapping
			if best < 0 || d < bestDist {
				best, bestDist = s, d
			}
		}
	}
	return best
}

// TestKeyRingMatchesReference compares Shard with the naive scan on random
// keys, including hashes past the last token (the wrap-around).
func TestKeyRingMatchesReference(t *testing.T) {
	const seed = 7
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, tc := range []struct{ shards, vnodes int }{{1, 1}, {2, 1}, {3, 4}, {16, 16}, {5, 64}} {
		r := NewKeyRing(tc.shards, tc.vnodes)
		for range 300 {
			key := binary.BigEndian.AppendUint64(nil, rng.Uint64())
			want := naiveShard(tc.shards, tc.vnodes, xxhash.Sum64(key))
			if got := r.Shard(key); got != want {
				t.Fatalf("seed %d: NewKeyRing(%d, %d).Shard(%x) = %d; want %d", seed, tc.shards, tc.vnodes, key, got, want)
			}
		}
		// Hashes at, just past and far past the ends of the token array.
		for _, h := range []uint64{0, r.tokens[0], r.tokens[0] + 1, r.tokens[len(r.tokens)-1], r.tokens[len(r.tokens)-1] + 1, math.MaxUint64} {
			if got, want := int(r.owners[r.search(h)]), naiveShard(tc.shards, tc.vnodes, h); got != want {
				t.Errorf("NewKeyRing(%d, %d): owner of hash %#x = %d; want %d", tc.shards, tc.vnodes, h, got, want)
			}
		}
	}
}

// TestKeyRingGolden pins the token encodings and a few key → shard
// mappings: they decide where every stored key and replica lives, so a
// change here moves data.
func TestKeyRingGolden(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		// The encodings, against xxhash64 of the bytes spelled out...
		{"KeyToken(3, 258)", KeyToken(3, 258), xxhash.Sum64([]byte{0, 0, 0, 3, 0, 0, 1, 2})},
		{"NodeToken(n1, 258)", NodeToken("n1", 258), xxhash.Sum64([]byte{'n', '1', 0, 0, 1, 2})},
		{"ShardPoint(3)", ShardPoint(3), xxhash.Sum64([]byte{0, 0, 0, 3})},
		// ...and the hash function itself.
		{"KeyToken(0, 0)", KeyToken(0, 0), 0x34c96acdcadb1bbb},
		{"KeyToken(3, 258)", KeyToken(3, 258), 0xe3003e229c1add87},
		{"NodeToken(n1, 0)", NodeToken("n1", 0), 0x7ddb5bc3154c9174},
		{"ShardPoint(0)", ShardPoint(0), 0x3aefa6fd5cf2deb4},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x; want %#x", tc.name, tc.got, tc.want)
		}
	}
	r := NewKeyRing(16, 0)
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"", 4},
		{"a", 3},
		{"user:1", 2},
		{"user:2", 4},
		{"session/8f3a", 0},
	} {
		if got := r.Shard([]byte(tc.key)); got != tc.want {
			t.Errorf("NewKeyRing(16, 0).Shard(%q) = %d; want %d", tc.key, got, tc.want)
		}
	}
}

func TestKeyRingAccessors(t *testing.T) {
	r := NewKeyRing(16, 0)
	if r.Shards() != 16 || r.Vnodes() != DefaultKeyVnodes {
		t.Errorf("NewKeyRing(16, 0): Shards() = %d, Vnodes() = %d; want 16, %d", r.Shards(), r.Vnodes(), DefaultKeyVnodes)
	}
	if !slices.IsSorted(r.tokens) {
		t.Error("tokens not sorted")
	}
	for _, tc := range []struct{ shards, vnodes int }{{1, 1}, {1, 8}, {16, 0}, {7, 3}} {
		shares := NewKeyRing(tc.shards, tc.vnodes).Shares()
		sum := 0.0
		for _, s := range shares {
			if s < 0 || s > 1 {
				t.Errorf("NewKeyRing(%d, %d).Shares() has %v", tc.shards, tc.vnodes, s)
			}
			sum += s
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("NewKeyRing(%d, %d).Shares() sums to %v; want 1", tc.shards, tc.vnodes, sum)
		}
	}
}

func TestNewKeyRingPanics(t *testing.T) {
	for _, tc := range []struct{ shards, vnodes int }{{0, 1}, {-1, 1}, {4, -1}, {1 << 20, 1 << 10}} {
		t.Run(fmt.Sprintf("%d,%d", tc.shards, tc.vnodes), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewKeyRing(%d, %d) did not panic", tc.shards, tc.vnodes)
				}
			}()
			NewKeyRing(tc.shards, tc.vnodes)
		})
	}
}
