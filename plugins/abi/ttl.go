package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ExportTTL is the ttl kind's entry point: (ptr i32, sizeBytes i32) ->
// (result i64), called like ExportEvict: ptr and sizeBytes describe a TTL
// input (a batch of writes) inside a buffer from ExportAllocate; the result
// is PackResult(output address, output size) of a TTL output, one TTL per
// write, or a negative ErrorCode.
const ExportTTL = "wisp_ttl"

// Limits and values of the ttl kind, ABI version 1.
const (
	// TTLHeaderSizeBytes is the size of a TTL input's header; the write
	// records follow it, then the key area.
	TTLHeaderSizeBytes = 32
	// TTLWriteSizeBytes is the size of one write record.
	TTLWriteSizeBytes = 24
	// TTLWritesMax bounds the writes of one ttl call. A shard leader packs
	// the puts it is about to propose into calls of at most this many: a
	// call costs a few microseconds whatever its size, so 1,024 writes make
	// that cost negligible per write, and the output (8 KiB) and records
	// (24 KiB) stay small.
	TTLWritesMax = 1024
	// TTLKeySizeBytesMax bounds one key of a TTL input: the engine's
	// largest key, 64 KiB.
	TTLKeySizeBytesMax = 64 << 10
	// TTLKeysSizeBytesMax bounds the key area of a TTL input, the sum of
	// its keys' sizes: two of the largest keys, or 1,024 keys of 128 bytes.
	// It keeps the largest TTL input below the largest eviction input, so
	// that a guest's allocator never needs more than InputSizeBytesMax.
	TTLKeysSizeBytesMax = 128 << 10
	// TTLInputSizeBytesMax is the size of the largest TTL input.
	TTLInputSizeBytesMax = TTLHeaderSizeBytes + TTLWritesMax*TTLWriteSizeBytes + TTLKeysSizeBytesMax
	// TTLOutputSizeBytesMax is the size of the largest TTL output: one i64
	// per write of the largest batch. The host reads no larger output.
	TTLOutputSizeBytesMax = 8 * TTLWritesMax
	// TTLKeepRequested is the output that keeps the TTL the client asked
	// for (which may be none).
	TTLKeepRequested int64 = -1
	// TTLMsMax bounds a TTL a guest may set: ten years (of 365 days) in
	// milliseconds. A larger one is refused as a bad answer rather than
	// capped: it is a bug in the guest more likely than a wish.
	TTLMsMax int64 = 10 * 365 * 24 * 3600 * 1000
)

// InputSizeBytesMax is the size of the largest input of any kind: what a
// guest's allocator must be able to hand out.
const InputSizeBytesMax = max(EvictionInputSizeBytesMax, TTLInputSizeBytesMax)

// ErrTTLOutOfRange: a TTL output is neither TTLKeepRequested nor in [0,
// TTLMsMax].
var ErrTTLOutOfRange = errors.New("abi: ttl out of range")

// TTLWrite is one write of a TTL input: a put the shard leader is about to
// propose.
type TTLWrite struct {
	// RequestedTTLMs is the TTL the client asked for, in milliseconds; 0
	// for none. Never negative.
	RequestedTTLMs int64
	// ValueSizeBytes is the size of the value written.
	ValueSizeBytes uint32
	// Key is the key written, 1 to TTLKeySizeBytesMax bytes. A decoded
	// Key aliases the input.
	Key []byte
}

// TTLInput is one ttl call's input: a batch of writes, decided together.
type TTLInput struct {
	// NowUnixMs is the leader's time for these writes, the only time the
	// guest gets. The TTLs it answers count from it.
	NowUnixMs int64
	// Writes are the writes to decide: 1 to TTLWritesMax of them, their
	// keys at most TTLKeysSizeBytesMax bytes in all. The output answers
	// them in this order.
	Writes []TTLWrite
}

// TTLInputSizeBytes returns the size of a TTL input of count writes whose
// keys add up to keysSizeBytes.
func TTLInputSizeBytes(count, keysSizeBytes int) int {
	return TTLHeaderSizeBytes + count*TTLWriteSizeBytes + keysSizeBytes
}

// TTLOutputSizeBytes returns the size of the TTL output answering count
// writes.
func TTLOutputSizeBytes(count int) int { return 8 * count }

// PutTTLHeader writes a TTL input's header into b[:TTLHeaderSizeBytes], for
// count writes whose keys add up to keysSizeBytes. It panics if b is
// shorter, or if count or keysSizeBytes is out of bounds: the caller checks
// them first.
func PutTTLHeader(b []byte, nowUnixMs int64, count, keysSizeBytes int) {
	if count < 1 || count > TTLWritesMax || keysSizeBytes < count || keysSizeBytes > TTLKeysSizeBytesMax {
		panic(fmt.Sprintf("abi: PutTTLHeader: %d writes, keys of %d bytes out of bounds", count, keysSizeBytes))
	}
	b = b[:TTLHeaderSizeBytes]
	binary.LittleEndian.PutUint32(b[0:], Version)
	binary.LittleEndian.PutUint16(b[4:], TTLHeaderSizeBytes)
	binary.LittleEndian.PutUint16(b[6:], TTLWriteSizeBytes)
	binary.LittleEndian.PutUint32(b[8:], uint32(count))
	binary.LittleEndian.PutUint32(b[12:], uint32(keysSizeBytes))
	binary.LittleEndian.PutUint64(b[16:], uint64(nowUnixMs))
	binary.LittleEndian.PutUint64(b[24:], 0) // reserved
}

// PutTTLWrite writes w's record into b[:TTLWriteSizeBytes], its key at
// keyOffset in the key area; the caller copies the key's bytes there. It
// panics if b is shorter, or if w's key is empty or longer than
// TTLKeySizeBytesMax, its RequestedTTLMs negative, or keyOffset negative.
func PutTTLWrite(b []byte, w *TTLWrite, keyOffset int) {
	if len(w.Key) == 0 || len(w.Key) > TTLKeySizeBytesMax || w.RequestedTTLMs < 0 || keyOffset < 0 || keyOffset > TTLKeysSizeBytesMax {
		panic(fmt.Sprintf("abi: PutTTLWrite: key of %d bytes at %d, requested ttl %d ms out of bounds", len(w.Key), keyOffset, w.RequestedTTLMs))
	}
	b = b[:TTLWriteSizeBytes]
	binary.LittleEndian.PutUint64(b[0:], uint64(w.RequestedTTLMs))
	binary.LittleEndian.PutUint32(b[8:], w.ValueSizeBytes)
	binary.LittleEndian.PutUint32(b[12:], uint32(keyOffset))
	binary.LittleEndian.PutUint32(b[16:], uint32(len(w.Key)))
	binary.LittleEndian.PutUint32(b[20:], 0) // reserved
}

// AppendTTLInput appends in, encoded, to dst and returns the extended
// slice: the keys go to the key area in the order of the writes. It panics
// if in has no writes or more than TTLWritesMax, a write is out of bounds
// (see PutTTLWrite), or the keys add up to more than TTLKeysSizeBytesMax:
// the caller checks them first.
func AppendTTLInput(dst []byte, in *TTLInput) []byte {
	keysSize := 0
	for i := range in.Writes {
		keysSize += len(in.Writes[i].Key)
	}
	n := len(in.Writes)
	start := len(dst)
	size := TTLInputSizeBytes(n, keysSize)
	dst = slices.Grow(dst, size)[:start+size]
	b := dst[start:]
	PutTTLHeader(b, in.NowUnixMs, n, keysSize)
	keys := b[TTLHeaderSizeBytes+n*TTLWriteSizeBytes:]
	off := 0
	for i := range in.Writes {
		w := &in.Writes[i]
		PutTTLWrite(b[TTLHeaderSizeBytes+i*TTLWriteSizeBytes:], w, off)
		off += copy(keys[off:], w.Key)
	}
	return dst
}

// DecodeTTLInput decodes b into in, reusing the capacity of in.Writes; each
// write's Key aliases b. b must be exactly one TTL input of this ABI
// version: the right version, header and record sizes, 1 to TTLWritesMax
// writes, a key area of at most TTLKeysSizeBytesMax bytes, zero reserved
// fields, non-negative requested TTLs, and keys of 1 to TTLKeySizeBytesMax
// bytes that tile the key area in the order of the writes (each key's
// offset is the sum of the sizes before it, and the last ends the input).
// Otherwise the error wraps ErrMalformed and in is unspecified.
func DecodeTTLInput(b []byte, in *TTLInput) error {
	if len(b) < TTLHeaderSizeBytes {
		return fmt.Errorf("%w: ttl input of %d bytes, shorter than its %d-byte header", ErrMalformed, len(b), TTLHeaderSizeBytes)
	}
	if v := binary.LittleEndian.Uint32(b[0:]); v != Version {
		return fmt.Errorf("%w: ttl input of ABI version %d, want %d", ErrMalformed, v, Version)
	}
	if hs, rs := binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]); hs != TTLHeaderSizeBytes || rs != TTLWriteSizeBytes {
		return fmt.Errorf("%w: ttl header of %d bytes and records of %d, want %d and %d", ErrMalformed, hs, rs, TTLHeaderSizeBytes, TTLWriteSizeBytes)
	}
	count := binary.LittleEndian.Uint32(b[8:])
	keysSize := binary.LittleEndian.Uint32(b[12:])
	if count == 0 || count > TTLWritesMax {
		return fmt.Errorf("%w: %d writes, want 1 to %d", ErrMalformed, count, TTLWritesMax)
	}
	if keysSize > TTLKeysSizeBytesMax {
		return fmt.Errorf("%w: keys of %d bytes, more than %d", ErrMalformed, keysSize, TTLKeysSizeBytesMax)
	}
	if r := binary.LittleEndian.Uint64(b[24:]); r != 0 {
		return fmt.Errorf("%w: ttl header reserved %d, want 0", ErrMalformed, r)
	}
	if want := TTLInputSizeBytes(int(count), int(keysSize)); len(b) != want {
		return fmt.Errorf("%w: ttl input of %d bytes for %d writes and %d bytes of keys, want %d", ErrMalformed, len(b), count, keysSize, want)
	}
	writes := in.Writes[:0]
	if cap(writes) < int(count) {
		writes = make([]TTLWrite, 0, count)
	}
	keys := b[TTLHeaderSizeBytes+int(count)*TTLWriteSizeBytes:]
	off := uint32(0)
	for i := range int(count) {
		r := b[TTLHeaderSizeBytes+i*TTLWriteSizeBytes:]
		requested := int64(binary.LittleEndian.Uint64(r[0:]))
		keyOffset := binary.LittleEndian.Uint32(r[12:])
		keySize := binary.LittleEndian.Uint32(r[16:])
		switch {
		case requested < 0:
			return fmt.Errorf("%w: write %d: requested ttl %d ms", ErrMalformed, i, requested)
		case binary.LittleEndian.Uint32(r[20:]) != 0:
			return fmt.Errorf("%w: write %d: reserved %d, want 0", ErrMalformed, i, binary.LittleEndian.Uint32(r[20:]))
		case keySize == 0 || keySize > TTLKeySizeBytesMax:
			return fmt.Errorf("%w: write %d: key of %d bytes, want 1 to %d", ErrMalformed, i, keySize, TTLKeySizeBytesMax)
		case keyOffset != off:
			return fmt.Errorf("%w: write %d: key at %d, want %d (right after the previous key)", ErrMalformed, i, keyOffset, off)
		case keySize > keysSize-off:
			return fmt.Errorf("%w: write %d: key [%d, %d) past the key area of %d bytes", ErrMalformed, i, off, uint64(off)+uint64(keySize), keysSize)
		}
		writes = append(writes, TTLWrite{
			RequestedTTLMs: requested,
			ValueSizeBytes: binary.LittleEndian.Uint32(r[8:]),
			Key:            keys[off : off+keySize : off+keySize],
		})
		off += keySize
	}
	if off != keysSize {
		return fmt.Errorf("%w: keys of %d bytes in a key area of %d", ErrMalformed, off, keysSize)
	}
	in.NowUnixMs = int64(binary.LittleEndian.Uint64(b[16:]))
	in.Writes = writes
	return nil
}

// AppendTTLOutput appends one write's answer, ttlMs, to a TTL output dst
// and returns the extended slice: an output is the answers of the writes,
// in order. It does not check ttlMs: the host does.
func AppendTTLOutput(dst []byte, ttlMs int64) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(ttlMs))
}

// DecodeTTLOutput decodes a guest's TTL output b for an input of count
// writes (1 to TTLWritesMax), appends the TTLs to dst in the order of the
// writes, and returns the extended slice. b must be exactly
// TTLOutputSizeBytes(count) bytes (else ErrMalformed), each TTL
// TTLKeepRequested or in [0, TTLMsMax] (else ErrTTLOutOfRange, naming the
// first write out of range). On error it returns dst unchanged: one bad
// answer fails them all.
func DecodeTTLOutput(b []byte, count int, dst []int64) ([]int64, error) {
	if count < 1 || count > TTLWritesMax {
		panic(fmt.Sprintf("abi: DecodeTTLOutput: %d writes out of bounds", count))
	}
	if want := TTLOutputSizeBytes(count); len(b) != want {
		return dst, fmt.Errorf("%w: ttl output of %d bytes for %d writes, want %d", ErrMalformed, len(b), count, want)
	}
	start := len(dst)
	for i := range count {
		ttl := int64(binary.LittleEndian.Uint64(b[8*i:]))
		if ttl != TTLKeepRequested && (ttl < 0 || ttl > TTLMsMax) {
			return dst[:start], fmt.Errorf("%w: write %d: %d ms, want %d (keep the requested ttl) or 0 to %d", ErrTTLOutOfRange, i, ttl, TTLKeepRequested, TTLMsMax)
		}
		dst = append(dst, ttl)
	}
	return dst, nil
}
