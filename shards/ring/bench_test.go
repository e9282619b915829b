package ring

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkKeyRingShard measures one key → shard lookup (xxhash64 of a
// 16-byte key plus the search) on the default ring of 16 shards.
func BenchmarkKeyRingShard(b *testing.B) {
	for _, vnodes := range []int{128, DefaultKeyVnodes} {
		b.Run(fmt.Sprintf("shards=16/vnodes=%d", vnodes), func(b *testing.B) {
			r := NewKeyRing(16, vnodes)
			rng := rand.New(rand.NewPCG(1, 0))
			// Distinct keys, so the search is not served by one hot cache line.
			keys := make([][]byte, 4096)
			for i := range keys {
				keys[i] = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, rng.Uint64()), rng.Uint64())
			}
			b.ReportAllocs()
			sum := 0
			for i := 0; b.Loop(); i++ {
				sum += r.Shard(keys[i%len(keys)])
			}
			if sum < 0 {
				b.Fatal(sum)
			}
		})
	}
}

// BenchmarkPlace measures a whole placement: 64 shards × 3 replicas over 10
// nodes with the default options.
func BenchmarkPlace(b *testing.B) {
	nodes := namedNodes(10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Place(64, nodes, 3); err != nil {
			b.Fatal(err)
		}
	}
}
