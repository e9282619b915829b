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

One call decides the TTL of one write. The host writes a TTL input (a
32-byte header: version, header size, the leader's time, the requested TTL,
the value's and the key's sizes; then the key's bytes) and calls ExportTTL;
the guest answers an 8-byte output: the TTL in milliseconds, 0 for none, or
TTLKeepRequested (-1). DecodeTTLOutput refuses anything else, and TTLs over
TTLMsMax (ten years).

	input  = header (TTLHeaderSizeBytes) + key (1 to TTLKeySizeBytesMax bytes)
	output = ttlMs i64                      (TTLOutputSizeBytes)

# Invariants

Encoders write exactly the size they promise and zero every byte they do not
set. Decoders accept exactly what the encoders produce and reject the rest
with an error wrapping ErrMalformed, ErrTooManyVictims, ErrUnknownIndex,
ErrDuplicateVictim or ErrTTLOutOfRange; they never panic, whatever the
bytes.
*/
package abi
