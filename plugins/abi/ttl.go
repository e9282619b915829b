package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ExportTTL is the ttl kind's entry point: (ptr i32, sizeBytes i32) ->
// (result i64), called like ExportEvict: ptr and sizeBytes describe a TTL
// input inside a buffer from ExportAllocate; the result is PackResult(output
// address, output size) of a TTL output, or a negative ErrorCode.
const ExportTTL = "wisp_ttl"

// Limits and values of the ttl kind, ABI version 1.
const (
	// TTLHeaderSizeBytes is the size of a TTL input's header; the key
	// follows it.
	TTLHeaderSizeBytes = 32
	// TTLKeySizeBytesMax bounds the key of a TTL input: the engine's
	// largest key, 64 KiB.
	TTLKeySizeBytesMax = 64 << 10
	// TTLInputSizeBytesMax is the size of the largest TTL input.
	TTLInputSizeBytesMax = TTLHeaderSizeBytes + TTLKeySizeBytesMax
	// TTLOutputSizeBytes is the size of a TTL output: one i64.
	TTLOutputSizeBytes = 8
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

// TTLInput is one ttl decision's input: a write the shard leader is about
// to propose.
type TTLInput struct {
	// NowUnixMs is the leader's time for this decision, the only time the
	// guest gets. The TTL it answers counts from it.
	NowUnixMs int64
	// RequestedTTLMs is the TTL the client asked for, in milliseconds; 0
	// for none. Never negative.
	RequestedTTLMs int64
	// ValueSizeBytes is the size of the value written.
	ValueSizeBytes uint32
	// Key is the key written, 1 to TTLKeySizeBytesMax bytes. A decoded
	// Key aliases the input.
	Key []byte
}

// TTLInputSizeBytes returns the size of a TTL input with a key of
// keySizeBytes.
func TTLInputSizeBytes(keySizeBytes int) int { return TTLHeaderSizeBytes + keySizeBytes }

// AppendTTLInput appends in, encoded, to dst and returns the extended
// slice. It panics if in's key is empty or longer than TTLKeySizeBytesMax,
// or its RequestedTTLMs negative: the caller checks them first.
func AppendTTLInput(dst []byte, in *TTLInput) []byte {
	if len(in.Key) == 0 || len(in.Key) > TTLKeySizeBytesMax || in.RequestedTTLMs < 0 {
		panic(fmt.Sprintf("abi: AppendTTLInput: key of %d bytes, requested ttl %d ms out of bounds", len(in.Key), in.RequestedTTLMs))
	}
	start := len(dst)
	dst = slices.Grow(dst, TTLInputSizeBytes(len(in.Key)))[:start+TTLHeaderSizeBytes]
	b := dst[start:]
	binary.LittleEndian.PutUint32(b[0:], Version)
	binary.LittleEndian.PutUint16(b[4:], TTLHeaderSizeBytes)
	binary.LittleEndian.PutUint16(b[6:], 0) // reserved
	binary.LittleEndian.PutUint64(b[8:], uint64(in.NowUnixMs))
	binary.LittleEndian.PutUint64(b[16:], uint64(in.RequestedTTLMs))
	binary.LittleEndian.PutUint32(b[24:], in.ValueSizeBytes)
	binary.LittleEndian.PutUint32(b[28:], uint32(len(in.Key)))
	return append(dst, in.Key...)
}

// DecodeTTLInput decodes b into in; in.Key aliases b. b must be exactly one
// TTL input of this ABI version: the right version and header size, a zero
// reserved field, a non-negative requested TTL, and a key of 1 to
// TTLKeySizeBytesMax bytes filling the rest. Otherwise the error wraps
// ErrMalformed and in is unspecified.
func DecodeTTLInput(b []byte, in *TTLInput) error {
	if len(b) < TTLHeaderSizeBytes {
		return fmt.Errorf("%w: ttl input of %d bytes, shorter than its %d-byte header", ErrMalformed, len(b), TTLHeaderSizeBytes)
	}
	if v := binary.LittleEndian.Uint32(b[0:]); v != Version {
		return fmt.Errorf("%w: ttl input of ABI version %d, want %d", ErrMalformed, v, Version)
	}
	if hs, r := binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]); hs != TTLHeaderSizeBytes || r != 0 {
		return fmt.Errorf("%w: ttl header of %d bytes, reserved %d; want %d and 0", ErrMalformed, hs, r, TTLHeaderSizeBytes)
	}
	requested := int64(binary.LittleEndian.Uint64(b[16:]))
	if requested < 0 {
		return fmt.Errorf("%w: requested ttl %d ms", ErrMalformed, requested)
	}
	keySize := binary.LittleEndian.Uint32(b[28:])
	if keySize == 0 || keySize > TTLKeySizeBytesMax {
		return fmt.Errorf("%w: key of %d bytes, want 1 to %d", ErrMalformed, keySize, TTLKeySizeBytesMax)
	}
	if want := TTLInputSizeBytes(int(keySize)); len(b) != want {
		return fmt.Errorf("%w: ttl input of %d bytes for a key of %d, want %d", ErrMalformed, len(b), keySize, want)
	}
	in.NowUnixMs = int64(binary.LittleEndian.Uint64(b[8:]))
	in.RequestedTTLMs = requested
	in.ValueSizeBytes = binary.LittleEndian.Uint32(b[24:])
	in.Key = b[TTLHeaderSizeBytes:]
	return nil
}

// AppendTTLOutput appends a TTL output answering ttlMs to dst and returns
// the extended slice. It does not check ttlMs: the host does.
func AppendTTLOutput(dst []byte, ttlMs int64) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(ttlMs))
}

// DecodeTTLOutput decodes a guest's TTL output: exactly TTLOutputSizeBytes
// bytes (else ErrMalformed) holding TTLKeepRequested or a TTL in [0,
// TTLMsMax] (else ErrTTLOutOfRange).
func DecodeTTLOutput(b []byte) (int64, error) {
	if len(b) != TTLOutputSizeBytes {
		return 0, fmt.Errorf("%w: ttl output of %d bytes, want %d", ErrMalformed, len(b), TTLOutputSizeBytes)
	}
	ttl := int64(binary.LittleEndian.Uint64(b))
	if ttl != TTLKeepRequested && (ttl < 0 || ttl > TTLMsMax) {
		return 0, fmt.Errorf("%w: %d ms, want %d (keep the requested ttl) or 0 to %d", ErrTTLOutOfRange, ttl, TTLKeepRequested, TTLMsMax)
	}
	return ttl, nil
}
