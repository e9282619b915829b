package engine

import "slices"

// Memory accounting (see doc.go, "Memory and eviction"). MemoryUsed is the
// sum of footprint over the stored keys, kept in step by every insert,
// replace, delete, rollback and restore: nothing walks the tree to compute
// it.
//
// A footprint estimates the Go heap one key costs, from the allocations the
// engine makes for it:
//
//	bufferBytes(len(key)+len(value))  the key+value buffer (newSlot)
//	+ entryAllocBytes                 the *entry
//	+ treeItemShareBytes              its slot's share of the key tree
//	+ treeItemShareBytes              its ttlItem's share of the TTL index, if volatile
//
// The estimate is calibrated against runtime.MemStats by
// TestMemoryCalibration. It leaves out what does not grow per key (the
// Engine, the meta map) and what the engine does not own (garbage an
// overwrite leaves for the collector, entries a Snapshot still holds).

const (
	// entryAllocBytes is the size class of an entry (48 bytes:
	// TestEntrySize checks that the struct still fills exactly one 48-byte
	// object).
	entryAllocBytes = 48
	// treeItemShareBytes is what one 32-byte tree item (a slot, or a
	// ttlItem) costs in its tidwall/btree of degree 32: the item at the ~2/3
	// node fill that inserts in random order leave, plus its share of the
	// node structs, child arrays and size-class rounding of the item arrays.
	// Measured: 48.5 bytes per item for a million random-order inserts.
	// Ascending inserts, and Restore's load in key order, leave leaves half
	// full (about 68 bytes per item): the estimate takes the typical case.
	treeItemShareBytes = 48
	// tinyAllocBytes is the runtime's tiny-allocator block: pointer-free
	// objects smaller than this are packed together into such blocks.
	tinyAllocBytes = 16
	// maxSmallAllocBytes is the largest size class; larger objects get
	// whole pages of pageBytes.
	maxSmallAllocBytes = 32 << 10
	pageBytes          = 8 << 10
)

// sizeClasses are the Go runtime's malloc size classes up to
// maxSmallAllocBytes (the "bytes/obj" column of
// internal/runtime/gc/sizeclasses.go, Go 1.26; unchanged since Go 1.14):
// an allocation of n bytes takes the smallest class that holds it.
// TestAllocBytes checks this table against the running runtime.
var sizeClasses = [...]uint16{
	8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
	240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896,
	1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456,
	4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264,
	28672, 32768,
}

// allocBytes returns the heap an allocation of n bytes occupies: n rounded
// up to its size class, or to whole pages beyond the largest class. It
// ignores the tiny allocator (see bufferBytes) and the 8-byte header the
// runtime adds to objects with pointers above 512 bytes, which the engine
// does not allocate per key.
func allocBytes(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n > maxSmallAllocBytes:
		return int64((n + pageBytes - 1) / pageBytes * pageBytes)
	}
	i, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
	return int64(sizeClasses[i])
}

// bufferBytes returns the heap a pointer-free buffer of n bytes occupies.
// Below tinyAllocBytes the runtime packs such buffers into shared 16-byte
// blocks, so a buffer costs its share of one: 16 / (buffers of n bytes per
// block).
func bufferBytes(n int) int64 {
	if n > 0 && n < tinyAllocBytes {
		return int64(tinyAllocBytes / (tinyAllocBytes / n))
	}
	return allocBytes(n)
}

// footprint returns the bytes MemoryUsed counts for a key of keyBytes with
// a value of valueBytes, volatile if it has an expiry.
func footprint(keyBytes, valueBytes int, volatile bool) int64 {
	n := bufferBytes(keyBytes+valueBytes) + entryAllocBytes + treeItemShareBytes
	if volatile {
		n += treeItemShareBytes
	}
	return n
}

// footprint returns the bytes MemoryUsed counts for s.
func (s slot) footprint() int64 {
	return footprint(len(s.key), len(s.e.value), s.e.expiresAtUnixMs != 0)
}

// MemoryUsed returns the estimated heap, in bytes, that the stored keys
// cost (see the package documentation, "Memory and eviction"), expired keys
// included until a command removes them. It is the measure that
// Command.MaxMemoryBytes and the eviction loop compare with the budget.
// O(1).
func (e *Engine) MemoryUsed() int64 {
	return e.memoryUsed
}
