package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

const (
	benchKeySpace   = 1 << 20 // distinct keys
	benchValueBytes = 256
	benchBatch      = 100 // mutations per command in BenchmarkApplyBatch
)

// benchState is an Engine holding every key of the key space, shared by the
// benchmarks (they only overwrite and read), built once per test binary.
var benchState = sync.OnceValue(func() (s struct {
	e             *Engine
	keys          [][]byte
	bytesPerEntry float64
}) {
	s.keys = make([][]byte, benchKeySpace)
	for i := range s.keys {
		s.keys[i] = fmt.Appendf(nil, "key-%012d", i) // 16 bytes
	}
	value := bytes.Repeat([]byte("v"), benchValueBytes)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s.e = New()
	c := Command{NowUnixMs: 1, Mutations: make([]Mutation, 0, 1000)}
	for i, k := range s.keys {
		c.Mutations = append(c.Mutations, Mutation{Op: OpPut, Key: k, Value: value})
		if len(c.Mutations) == cap(c.Mutations) || i == len(s.keys)-1 {
			if r := s.e.Apply(s.e.AppliedIndex()+1, &c); r.Err != nil {
				panic(r.Err)
			}
			c.Mutations = c.Mutations[:0]
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s.bytesPerEntry = float64(after.HeapAlloc-before.HeapAlloc) / benchKeySpace
	return s
})

// BenchmarkApplyPut applies single-put commands (16-byte keys, 256-byte
// values) at random keys of a full 1M-key engine.
func BenchmarkApplyPut(b *testing.B) {
	s := benchState()
	rng := rand.New(rand.NewPCG(1, 2))
	value := bytes.Repeat([]byte("w"), benchValueBytes)
	c := Command{NowUnixMs: 2, Mutations: []Mutation{{Op: OpPut, Value: value}}}
	b.ReportAllocs()
	for b.Loop() {
		c.Mutations[0].Key = s.keys[rng.IntN(benchKeySpace)]
		if r := s.e.Apply(s.e.AppliedIndex()+1, &c); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	// Heap per stored entry when the engine was filled: key, value, entry
	// and tree overhead.
	b.ReportMetric(s.bytesPerEntry, "bytes/entry")
}

// BenchmarkApplyBatch applies commands of benchBatch puts at random keys.
func BenchmarkApplyBatch(b *testing.B) {
	s := benchState()
	rng := rand.New(rand.NewPCG(3, 4))
	value := bytes.Repeat([]byte("b"), benchValueBytes)
	c := Command{NowUnixMs: 3, Mutations: make([]Mutation, benchBatch)}
	b.ReportAllocs()
	for b.Loop() {
		for i := range c.Mutations {
			c.Mutations[i] = Mutation{Op: OpPut, Key: s.keys[rng.IntN(benchKeySpace)], Value: value}
		}
		if r := s.e.Apply(s.e.AppliedIndex()+1, &c); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/mutation")
}

// BenchmarkGet reads random keys of a full 1M-key engine.
func BenchmarkGet(b *testing.B) {
	s := benchState()
	rng := rand.New(rand.NewPCG(5, 6))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.e.Get(s.keys[rng.IntN(benchKeySpace)], 4); !ok {
			b.Fatal("key not found")
		}
	}
}

// BenchmarkDecodeCommand decodes a single-put command (16-byte key,
// 256-byte value, TTL).
func BenchmarkDecodeCommand(b *testing.B) {
	c := at(1_700_000_000_000, putTTL("key-000000000042", string(bytes.Repeat([]byte("v"), benchValueBytes)), 60_000))
	enc := AppendCommand(nil, &c)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCommand(enc); err != nil {
			b.Fatal(err)
		}
	}
}
