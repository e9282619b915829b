//go:build wasip1

package plugin

import (
	"unsafe"

	"github.com/wisp-db/wisp/plugins/abi"
)

// The records of an eviction input have the memory layout of []Candidate on
// wasm (little-endian, 8-byte alignment): checked here at compile time.
var _ = [1]struct{}{}[unsafe.Sizeof(Candidate{})-abi.CandidateSizeBytes]
var _ = [1]struct{}{}[unsafe.Offsetof(Candidate{}.KeyHash)-0]
var _ = [1]struct{}{}[unsafe.Offsetof(Candidate{}.Version)-8]
var _ = [1]struct{}{}[unsafe.Offsetof(Candidate{}.LastAccess)-16]
var _ = [1]struct{}{}[unsafe.Offsetof(Candidate{}.ExpiresAtUnixMs)-24]
var _ = [1]struct{}{}[unsafe.Offsetof(Candidate{}.SizeBytes)-32]
var _ = [1]struct{}{}[unsafe.Offsetof(Candidate{}.Frequency)-36]

// decodeEvictionInput checks b's header and makes in.Candidates a view of
// its records, in place: no copy, so a decision's decoding costs the same
// for 1 candidate or 4,096. b comes from wisp_allocate (make), whose memory
// is 8-byte aligned; if it were not, the records are copied.
func decodeEvictionInput(b []byte, in *EvictionInput) error {
	h, err := abi.DecodeEvictionHeader(b)
	if err != nil {
		return err
	}
	recs := b[abi.EvictionHeaderSizeBytes:]
	if h.Count == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(recs)))%unsafe.Alignof(Candidate{}) != 0 {
		in.Candidates = nil // not the last input's records: a fresh slice
		return abi.DecodeEvictionInput(b, in)
	}
	in.NowUnixMs = h.NowUnixMs
	in.AccessClock = h.AccessClock
	in.VictimsMax = h.VictimsMax
	in.Candidates = unsafe.Slice((*Candidate)(unsafe.Pointer(unsafe.SliceData(recs))), h.Count)
	return nil
}
