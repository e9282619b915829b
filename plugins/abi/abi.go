package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Version is the plugin ABI version this package lays out. A guest's
// ExportABIVersion must return it, or the host refuses the module.
const Version uint32 = 1

// Names of what a guest module exports. A host of ABI version 1 requires
// ExportMemory, ExportABIVersion, ExportAllocate, ExportFree and the entry
// point of the module's kind (ExportEvict for eviction). ExportInitialize is
// optional: the host calls it once per instance, before anything else, if it
// is there (a Go c-shared module initializes its runtime in it).
const (
	// ExportMemory is the guest's linear memory, through which every input
	// and output crosses.
	ExportMemory = "memory"
	// ExportInitialize is WASI's reactor initializer: () -> ().
	ExportInitialize = "_initialize"
	// ExportABIVersion returns the ABI version the guest speaks: () -> i32.
	ExportABIVersion = "wisp_abi_version"
	// ExportAllocate returns the address of sizeBytes bytes of guest memory
	// that stay valid, and unused by the guest, until the host frees them,
	// or 0 if it cannot: (sizeBytes i32) -> (ptr i32).
	ExportAllocate = "wisp_allocate"
	// ExportFree gives back memory that ExportAllocate returned, with the
	// size it was asked for: (ptr i32, sizeBytes i32) -> ().
	ExportFree = "wisp_free"
	// ExportEvict is the eviction kind's entry point: (ptr i32, sizeBytes
	// i32) -> (result i64). ptr and sizeBytes describe an eviction input
	// inside a buffer from ExportAllocate; the result is PackResult(output
	// address, output size) or a negative ErrorCode.
	ExportEvict = "wisp_evict"
)

// Limits of ABI version 1.
const (
	// CandidatesMax bounds the candidates of one eviction call. A shard
	// leader ranks at most a sample and a pool of 1,024 each (package
	// engine/eviction), so 4,096 leaves room without letting one call's
	// input pass 160 KiB.
	CandidatesMax = 4096
	// EvictionHeaderSizeBytes is the size of an eviction input's header.
	EvictionHeaderSizeBytes = 32
	// CandidateSizeBytes is the size of one candidate record.
	CandidateSizeBytes = 40
	// EvictionInputSizeBytesMax is the size of the largest eviction input:
	// CandidatesMax candidates.
	EvictionInputSizeBytesMax = EvictionHeaderSizeBytes + CandidatesMax*CandidateSizeBytes
	// VictimsSizeBytesMax is the size of the largest valid output: a count
	// and CandidatesMax indexes. The host reads no larger output.
	VictimsSizeBytesMax = 4 + 4*CandidatesMax
)

// ErrorCode is a guest's refusal of an input, returned by its entry point as
// a negative i64 instead of a result. The host treats every code as a failed
// call and falls back to its built-in policy.
type ErrorCode int64

// Error codes of the guest SDK. Other negative values are allowed and mean
// the same to the host: no answer.
const (
	// CodeMalformedInput: the input did not decode (see DecodeEvictionInput).
	CodeMalformedInput ErrorCode = -1
	// CodeNoHandler: the module has no handler for this kind.
	CodeNoHandler ErrorCode = -2
	// CodeUnknownBuffer: ptr was not returned by ExportAllocate, or the
	// buffer is smaller than sizeBytes.
	CodeUnknownBuffer ErrorCode = -3
)

// Errors of the decoders, wrapped with details. Callers branch on them with
// errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed message of this ABI
	// version (wrong size, version, header or record size, or a count out of
	// bounds).
	ErrMalformed = errors.New("abi: malformed")
	// ErrTooManyVictims: an output names more victims than the input allowed.
	ErrTooManyVictims = errors.New("abi: too many victims")
	// ErrUnknownIndex: an output names a victim index that is not a
	// candidate's.
	ErrUnknownIndex = errors.New("abi: unknown candidate index")
	// ErrDuplicateVictim: an output names the same candidate twice.
	ErrDuplicateVictim = errors.New("abi: duplicate victim")
)

// PackResult packs an output's address and size into an entry point's
// result. Guest memory is capped below 2 GiB (the host refuses larger caps),
// so a valid address is below 2^31 and the result is never negative.
func PackResult(ptr, sizeBytes uint32) int64 {
	return int64(uint64(ptr)<<32 | uint64(sizeBytes))
}

// UnpackResult splits an entry point's result into an output's address and
// size, or, if the result is negative, the guest's error code (ok false).
func UnpackResult(r int64) (ptr, sizeBytes uint32, code ErrorCode, ok bool) {
	if r < 0 {
		return 0, 0, ErrorCode(r), false
	}
	return uint32(uint64(r) >> 32), uint32(r), 0, true
}

// Candidate is one key an eviction policy may choose, as the guest sees it.
type Candidate struct {
	// KeyHash is XXH64 (seed 0) of the key: enough to tell keys apart and
	// to follow one across calls, without handing the key to the guest.
	KeyHash uint64
	// Version is the index of the Raft log entry that last wrote the key.
	Version uint64
	// LastAccess is the shard replica's access clock at the key's last read
	// or write: a logical counter that grows by one per access, not a time.
	// Smaller is less recently used; EvictionInput.AccessClock is now on
	// the same clock.
	LastAccess uint64
	// ExpiresAtUnixMs is the key's absolute expiry time, 0 for none. A key
	// with 0 < ExpiresAtUnixMs <= EvictionInput.NowUnixMs has expired:
	// reads no longer see it.
	ExpiresAtUnixMs int64
	// SizeBytes is what evicting the key frees. Values are at most 64 MiB,
	// so it fits; an encoder saturates at 2^32-1 anyway.
	SizeBytes uint32
	// Frequency is the key's access frequency: Redis's logarithmic LFU
	// counter (0-255 today; it grows with the log of the access count and
	// decays with idle time). The field is 32 bits wide for later counters.
	Frequency uint32
}

// EvictionInput is one eviction decision's input.
type EvictionInput struct {
	// NowUnixMs is the leader's time for this decision, the only time the
	// guest gets.
	NowUnixMs int64
	// AccessClock is the replica's access clock when the candidates were
	// sampled (see Candidate.LastAccess); 0 if the host does not know it.
	AccessClock uint64
	// VictimsMax bounds the victims the guest may name: 0 <= VictimsMax <=
	// len(Candidates).
	VictimsMax int
	// Candidates are the keys to choose from, at most CandidatesMax. The
	// output names them by index in this slice.
	Candidates []Candidate
}

// EvictionInputSizeBytes returns the size of an eviction input with n
// candidates.
func EvictionInputSizeBytes(n int) int {
	return EvictionHeaderSizeBytes + n*CandidateSizeBytes
}

// PutEvictionHeader writes an eviction input's header into
// b[:EvictionHeaderSizeBytes], for count candidates of which at most
// victimsMax may be chosen. It panics if b is shorter, or if count or
// victimsMax is out of bounds: the caller checks them first.
func PutEvictionHeader(b []byte, nowUnixMs int64, accessClock uint64, count, victimsMax int) {
	if count < 0 || count > CandidatesMax || victimsMax < 0 || victimsMax > count {
		panic(fmt.Sprintf("abi: PutEvictionHeader: count %d, victimsMax %d out of bounds", count, victimsMax))
	}
	b = b[:EvictionHeaderSizeBytes]
	binary.LittleEndian.PutUint32(b[0:], Version)
	binary.LittleEndian.PutUint16(b[4:], EvictionHeaderSizeBytes)
	binary.LittleEndian.PutUint16(b[6:], CandidateSizeBytes)
	binary.LittleEndian.PutUint32(b[8:], uint32(count))
	binary.LittleEndian.PutUint32(b[12:], uint32(victimsMax))
	binary.LittleEndian.PutUint64(b[16:], uint64(nowUnixMs))
	binary.LittleEndian.PutUint64(b[24:], accessClock)
}

// PutCandidate writes c as one record into b[:CandidateSizeBytes]. It panics
// if b is shorter.
func PutCandidate(b []byte, c *Candidate) {
	b = b[:CandidateSizeBytes]
	binary.LittleEndian.PutUint64(b[0:], c.KeyHash)
	binary.LittleEndian.PutUint64(b[8:], c.Version)
	binary.LittleEndian.PutUint64(b[16:], c.LastAccess)
	binary.LittleEndian.PutUint64(b[24:], uint64(c.ExpiresAtUnixMs))
	binary.LittleEndian.PutUint32(b[32:], c.SizeBytes)
	binary.LittleEndian.PutUint32(b[36:], c.Frequency)
}

// AppendEvictionInput appends in, encoded, to dst and returns the extended
// slice. It panics if in has more than CandidatesMax candidates or its
// VictimsMax is out of bounds.
func AppendEvictionInput(dst []byte, in *EvictionInput) []byte {
	n := len(in.Candidates)
	start := len(dst)
	dst = append(dst, make([]byte, EvictionInputSizeBytes(n))...)
	b := dst[start:]
	PutEvictionHeader(b, in.NowUnixMs, in.AccessClock, n, in.VictimsMax)
	for i := range in.Candidates {
		PutCandidate(b[EvictionHeaderSizeBytes+i*CandidateSizeBytes:], &in.Candidates[i])
	}
	return dst
}

// EvictionHeader is an eviction input's header, decoded.
type EvictionHeader struct {
	NowUnixMs   int64
	AccessClock uint64
	// Count is the number of candidate records that follow, at most
	// CandidatesMax.
	Count int
	// VictimsMax is at most Count.
	VictimsMax int
}

// DecodeEvictionHeader decodes the header of the eviction input b and checks
// that b is exactly one eviction input of this ABI version: the right
// version, header and record sizes, bounded counts, and Count records after
// the header. Otherwise the error wraps ErrMalformed.
func DecodeEvictionHeader(b []byte) (EvictionHeader, error) {
	if len(b) < EvictionHeaderSizeBytes {
		return EvictionHeader{}, fmt.Errorf("%w: eviction input of %d bytes, shorter than its %d-byte header", ErrMalformed, len(b), EvictionHeaderSizeBytes)
	}
	if v := binary.LittleEndian.Uint32(b[0:]); v != Version {
		return EvictionHeader{}, fmt.Errorf("%w: eviction input of ABI version %d, want %d", ErrMalformed, v, Version)
	}
	if hs, rs := binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]); hs != EvictionHeaderSizeBytes || rs != CandidateSizeBytes {
		return EvictionHeader{}, fmt.Errorf("%w: eviction header of %d bytes and records of %d, want %d and %d", ErrMalformed, hs, rs, EvictionHeaderSizeBytes, CandidateSizeBytes)
	}
	count := binary.LittleEndian.Uint32(b[8:])
	victimsMax := binary.LittleEndian.Uint32(b[12:])
	if count > CandidatesMax {
		return EvictionHeader{}, fmt.Errorf("%w: %d candidates, more than %d", ErrMalformed, count, CandidatesMax)
	}
	if victimsMax > count {
		return EvictionHeader{}, fmt.Errorf("%w: at most %d victims of %d candidates", ErrMalformed, victimsMax, count)
	}
	if want := EvictionInputSizeBytes(int(count)); len(b) != want {
		return EvictionHeader{}, fmt.Errorf("%w: eviction input of %d bytes for %d candidates, want %d", ErrMalformed, len(b), count, want)
	}
	return EvictionHeader{
		NowUnixMs:   int64(binary.LittleEndian.Uint64(b[16:])),
		AccessClock: binary.LittleEndian.Uint64(b[24:]),
		Count:       int(count),
		VictimsMax:  int(victimsMax),
	}, nil
}

// DecodeEvictionInput decodes b into in, reusing the capacity of
// in.Candidates. b must be exactly one eviction input of this ABI version;
// otherwise the error wraps ErrMalformed and in is unspecified.
//
// On a little-endian machine the records have the memory layout of
// []Candidate (40 bytes, every field at its natural alignment), so a guest
// may read them in place instead (the Go SDK does): see docs/PLUGINS.md.
func DecodeEvictionInput(b []byte, in *EvictionInput) error {
	h, err := DecodeEvictionHeader(b)
	if err != nil {
		return err
	}
	in.NowUnixMs = h.NowUnixMs
	in.AccessClock = h.AccessClock
	in.VictimsMax = h.VictimsMax
	cands := in.Candidates[:0]
	if cap(cands) < h.Count {
		cands = make([]Candidate, 0, h.Count)
	}
	for r := b[EvictionHeaderSizeBytes:]; len(r) >= CandidateSizeBytes; r = r[CandidateSizeBytes:] {
		cands = append(cands, Candidate{
			KeyHash:         binary.LittleEndian.Uint64(r[0:]),
			Version:         binary.LittleEndian.Uint64(r[8:]),
			LastAccess:      binary.LittleEndian.Uint64(r[16:]),
			ExpiresAtUnixMs: int64(binary.LittleEndian.Uint64(r[24:])),
			SizeBytes:       binary.LittleEndian.Uint32(r[32:]),
			Frequency:       binary.LittleEndian.Uint32(r[36:]),
		})
	}
	in.Candidates = cands
	return nil
}

// VictimsSizeBytes returns the size of an output naming n victims.
func VictimsSizeBytes(n int) int { return 4 + 4*n }

// AppendVictims appends an output naming victims, in order, to dst and
// returns the extended slice. It does not check the indexes (an index that
// does not fit in a u32 is written truncated): the host does.
func AppendVictims(dst []byte, victims []int) []byte {
	start := len(dst)
	dst = slices.Grow(dst, VictimsSizeBytes(len(victims)))[:start+VictimsSizeBytes(len(victims))]
	b := dst[start:]
	binary.LittleEndian.PutUint32(b, uint32(len(victims)))
	b = b[4:]
	for k, v := range victims {
		binary.LittleEndian.PutUint32(b[4*k:], uint32(v))
	}
	return dst
}

// DecodeVictims decodes a guest's output b for an input of candidates
// candidates (at most CandidatesMax) of which at most victimsMax could be
// chosen, appends the victims' indexes to dst in the guest's order, and
// returns the extended slice. It rejects any output that is not exactly a
// count and that many distinct indexes of candidates, with no more than
// victimsMax of them; then it returns dst unchanged and an error wrapping
// ErrMalformed, ErrTooManyVictims, ErrUnknownIndex or ErrDuplicateVictim.
func DecodeVictims(b []byte, candidates, victimsMax int, dst []int) ([]int, error) {
	if candidates < 0 || candidates > CandidatesMax || victimsMax < 0 || victimsMax > candidates {
		panic(fmt.Sprintf("abi: DecodeVictims: candidates %d, victimsMax %d out of bounds", candidates, victimsMax))
	}
	if len(b) < 4 {
		return dst, fmt.Errorf("%w: output of %d bytes, shorter than its count", ErrMalformed, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if n > uint32(victimsMax) {
		return dst, fmt.Errorf("%w: %d victims, at most %d allowed", ErrTooManyVictims, n, victimsMax)
	}
	if want := VictimsSizeBytes(int(n)); len(b) != want {
		return dst, fmt.Errorf("%w: output of %d bytes for %d victims, want %d", ErrMalformed, len(b), n, want)
	}
	// seen has one bit per possible candidate: 512 bytes on the stack.
	var seen [CandidatesMax / 64]uint64
	start := len(dst)
	for k := range int(n) {
		i := binary.LittleEndian.Uint32(b[4+4*k:])
		if i >= uint32(candidates) {
			return dst[:start], fmt.Errorf("%w: victim %d is index %d of %d candidates", ErrUnknownIndex, k, i, candidates)
		}
		if seen[i/64]&(1<<(i%64)) != 0 {
			return dst[:start], fmt.Errorf("%w: index %d named twice", ErrDuplicateVictim, i)
		}
		seen[i/64] |= 1 << (i % 64)
		dst = append(dst, int(i))
	}
	return dst, nil
}
