package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"
)

// TestEntrySize keeps the structs the footprint formula counts at the sizes
// it assumes: an entry fills exactly one 48-byte size class (the access
// metadata fits in what used to be padding up to the class), and tree items
// are 32 bytes.
func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(entry{}); got != entryAllocBytes || allocBytes(int(got)) != entryAllocBytes {
		t.Errorf("entry is %d bytes, allocated as %d; the formula counts %d", got, allocBytes(int(got)), entryAllocBytes)
	}
	if got := unsafe.Sizeof(slot{}); got != 32 {
		t.Errorf("slot is %d bytes; treeItemShareBytes assumes 32", got)
	}
	if got := unsafe.Sizeof(ttlItem{}); got != 32 {
		t.Errorf("ttlItem is %d bytes; treeItemShareBytes assumes 32", got)
	}
}

func TestFootprint(t *testing.T) {
	tests := []struct {
		key, value int
		volatile   bool
		want       int64
	}{
		{1, 0, false, 1 + 48 + 48}, // tiny: 16 one-byte buffers share a block
		{1, 1, false, 2 + 48 + 48},
		{2, 1, false, 3 + 48 + 48},      // 5 per block: 16/5 = 3
		{5, 2, false, 8 + 48 + 48},      // 2 per block
		{8, 8, false, 16 + 48 + 48},     // not tiny: class 16
		{8, 8, true, 16 + 48 + 48 + 48}, // and a TTL index item
		{16, 100, false, 128 + 48 + 48},
		{16, 100, true, 128 + 48 + 48 + 48},
		{32, 1024, false, 1152 + 48 + 48},
		{16, 32768 - 16, false, 32768 + 48 + 48},
		{16, 32768 - 15, false, 32768 + 8192 + 48 + 48}, // whole pages
		{maxKeyBytes, maxValueBytes, true, maxValueBytes + maxKeyBytes + 48 + 48 + 48},
	}
	for _, tt := range tests {
		if got := footprint(tt.key, tt.value, tt.volatile); got != tt.want {
			t.Errorf("footprint(%d, %d, %v) = %d; want %d", tt.key, tt.value, tt.volatile, got, tt.want)
		}
	}
}

// heapAlloc returns HeapAlloc after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestAllocBytes checks bufferBytes, and so the size-class table, against
// the running runtime: it allocates many buffers of one size and divides the
// heap growth by their number.
func TestAllocBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 400 MiB")
	}
	sizes := []int{1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 24, 25, 33, 100, 116, 128, 129, 500, 1000, 1056, 1500, 4097, 9000, 20000, 32768, 32769, 100000}
	for _, n := range sizes {
		if n < tinyAllocBytes && raceEnabled {
			continue // the race detector turns the tiny allocator off
		}
		count := max(64, (16<<20)/int(bufferBytes(n)))
		bufs := make([][]byte, count)
		before := heapAlloc()
		for i := range bufs {
			bufs[i] = make([]byte, n)
		}
		perBuf := float64(heapAlloc()-before) / float64(count)
		runtime.KeepAlive(bufs)
		if want := float64(bufferBytes(n)); perBuf < want*0.98-0.5 || perBuf > want*1.02+0.5 {
			t.Errorf("a %d-byte buffer takes %.1f bytes of heap; bufferBytes says %.0f", n, perBuf, want)
		}
	}
}

// TestMemoryCalibration fills fresh engines with 200,000 keys of a few
// shapes, in random order, with and without expiry, and compares MemoryUsed
// with the growth of the heap: the estimate must be within 15%.
func TestMemoryCalibration(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 1 GiB")
	}
	const keys = 200_000
	shapes := []struct{ keyBytes, valueBytes int }{{16, 100}, {32, 1 << 10}, {8, 8}}
	for _, shape := range shapes {
		for _, volatile := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dB/%dB/ttl=%v", shape.keyBytes, shape.valueBytes, volatile), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(shape.keyBytes), uint64(shape.valueBytes)))
				ks := make([][]byte, keys)
				for i := range ks {
					ks[i] = fmt.Appendf(nil, "%0*d", shape.keyBytes, i)
				}
				rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
				value := make([]byte, shape.valueBytes)
				c := Command{NowUnixMs: testNow, Mutations: make([]Mutation, 0, 1000)}

				before := heapAlloc()
				e := New()
				for i, k := range ks {
					m := Mutation{Op: OpPut, Key: k, Value: value}
					if volatile {
						m.TTLMs = 1 + rng.Int64N(1e9)
					}
					c.Mutations = append(c.Mutations, m)
					if len(c.Mutations) == cap(c.Mutations) || i == len(ks)-1 {
						applyAll(t, e, c)
						c.Mutations = c.Mutations[:0]
					}
				}
				heap := int64(heapAlloc() - before)
				used := e.MemoryUsed()
				runtime.KeepAlive(e)
				runtime.KeepAlive(ks) // or they would be freed before the second measurement
				ratio := float64(used) / float64(heap)
				t.Logf("MemoryUsed %d (%.1f B/key), heap growth %d (%.1f B/key): ratio %.3f",
					used, float64(used)/keys, heap, float64(heap)/keys, ratio)
				if ratio < 0.85 || ratio > 1.15 {
					t.Errorf("MemoryUsed is %.1f%% of the heap growth; want within 15%%", 100*ratio)
				}
			})
		}
	}
}

// TestLargeValuesOwnTheirMemory applies large values the way a replica
// receives them, several to a decoded Raft entry (a pack), then deletes
// three keys in four, as eviction would, and drops the entries: the heap
// must hold what MemoryUsed counts, not the entries a surviving key was
// decoded from (issue 9: decoded values alias their entry).
func TestLargeValuesOwnTheirMemory(t *testing.T) {
	const (
		keys       = 1024
		perPack    = 8
		valueBytes = 64 << 10
	)
	value := bytes.Repeat([]byte{'v'}, valueBytes)
	before := heapAlloc()
	e := New()
	for i := 0; i < keys; i += perPack {
		cmds := make([]*Command, perPack)
		for j := range cmds {
			cmds[j] = &Command{NowUnixMs: testNow, Mutations: []Mutation{{Op: OpPut, Key: fmt.Appendf(nil, "k%05d", i+j), Value: value}}}
		}
		decoded, err := DecodePack(AppendPack(nil, cmds))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range e.ApplyPacked(uint64(i/perPack+1), decoded) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	del := Command{NowUnixMs: testNow}
	for i := range keys {
		if i%4 != 0 {
			del.Mutations = append(del.Mutations, Mutation{Op: OpDelete, Key: fmt.Appendf(nil, "k%05d", i)})
		}
	}
	applyAll(t, e, del)
	heap := int64(heapAlloc() - before)
	used := e.MemoryUsed()
	runtime.KeepAlive(e)
	ratio := float64(heap) / float64(used)
	t.Logf("MemoryUsed %d, heap growth %d: ratio %.3f", used, heap, ratio)
	if ratio > 1.15 {
		t.Errorf("the heap grew by %.2f times MemoryUsed; want at most 1.15", ratio)
	}
}
