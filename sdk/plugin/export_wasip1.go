//go:build wasip1

package plugin

import (
	"unsafe"

	"github.com/wisp-db/wisp/plugins/abi"
)

// buffers pins the memory handed out by wisp_allocate until wisp_free, so
// the garbage collector neither frees nor reuses it (it does not move
// objects). Keyed by address.
var buffers = map[uint32][]byte{}

// allocateSizeBytesMax bounds one allocation: the largest input of any
// kind.
const allocateSizeBytesMax = abi.InputSizeBytesMax

//go:wasmexport wisp_abi_version
func wispABIVersion() uint32 { return abi.Version }

//go:wasmexport wisp_allocate
func wispAllocate(sizeBytes uint32) uint32 {
	if sizeBytes == 0 || sizeBytes > allocateSizeBytesMax {
		return 0
	}
	b := make([]byte, sizeBytes)
	ptr := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	buffers[ptr] = b
	return ptr
}

//go:wasmexport wisp_free
func wispFree(ptr, sizeBytes uint32) { delete(buffers, ptr) }

//go:wasmexport wisp_evict
func wispEvict(ptr, sizeBytes uint32) int64 {
	b, ok := buffers[ptr]
	if !ok || uint32(len(b)) < sizeBytes {
		return int64(abi.CodeUnknownBuffer)
	}
	out, code := evict(b[:sizeBytes])
	if code != 0 {
		return int64(code)
	}
	return abi.PackResult(uint32(uintptr(unsafe.Pointer(unsafe.SliceData(out)))), uint32(len(out)))
}

//go:wasmexport wisp_ttl
func wispTTL(ptr, sizeBytes uint32) int64 {
	b, ok := buffers[ptr]
	if !ok || uint32(len(b)) < sizeBytes {
		return int64(abi.CodeUnknownBuffer)
	}
	out, code := ttl(b[:sizeBytes])
	if code != 0 {
		return int64(code)
	}
	return abi.PackResult(uint32(uintptr(unsafe.Pointer(unsafe.SliceData(out)))), uint32(len(out)))
}
