/*
Package abi is the byte layout a Wisp plugin and its host exchange: version 1
of the plugin ABI, specified field by field in docs/PLUGINS.md. The host
(package plugins) and the Go guest SDK (sdk/plugin) both import it, so the
layout lives in one place and the two sides change only together.

It is pure Go: no wazero, no I/O, no clock, no randomness and no unsafe
memory, so it builds for the host and for GOOS=wasip1 GOARCH=wasm guests
alike, and its decoders can be fuzzed.

# Eviction

One call decides one eviction round. The host writes an eviction input (a
32-byte header, then one 40-byte record per candidate, all little-endian)
into a buffer the guest allocated (ExportAllocate), calls ExportEvict with
its address and size, and reads back the guest's victims: a u32 count, then
that many u32 indexes into the candidates, best victim first.

	input  = header (EvictionHeaderSizeBytes) + count × candidate (CandidateSizeBytes)
	output = count u32, then count × index u32        (at most VictimsSizeBytesMax)

ExportEvict returns an i64: a negative value is the guest's error code
(ErrorCode), any other value packs the output's address (high 32 bits) and
size in bytes (low 32 bits); PackResult and UnpackResult convert.

# TTL

One call decides the TTLs of a batch of writes: never one call per key. The
host writes a TTL input (a 32-byte header: version, header and record
sizes, the number of writes, the size of the key area, the leader's time;
then one 24-byte record per write: the requested TTL, the value's size, the
key's offset in the key area and its size; then the key area, the keys
back to back in the order of the writes) and calls ExportTTL; the guest
answers one i64 per write, in order: the TTL in milliseconds, 0 for none,
or TTLKeepRequested (-1). DecodeTTLOutput refuses an output of any other
size, and any TTL out of range (over TTLMsMax, ten years): one bad answer
fails the whole call.

	input  = header (TTLHeaderSizeBytes) + count × write (TTLWriteSizeBytes) + keys
	         (1 <= count <= TTLWritesMax, keys <= TTLKeysSizeBytesMax bytes)
	output = count × ttlMs i64              (TTLOutputSizeBytes(count))

# Invariants

Encoders write exactly the size they promise and zero every byte they do not
set. Decoders accept exactly what the encoders produce and reject the rest
with an error wrapping ErrMalformed, ErrTooManyVictims, ErrUnknownIndex,
ErrDuplicateVictim or ErrTTLOutOfRange; they never panic, whatever the
bytes.
*/
package abi
