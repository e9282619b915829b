/*
 * ttlprefix: an example ttl plugin in C, with no libc. The same rule as
 * ../ttlprefix-go, answer for answer:
 *
 *   the client gave a TTL   keep it (-1)
 *   session/...             30 min +- 10 %
 *   cache/...                5 min +- 10 %
 *   other keys              keep the client's (none)
 *
 * The jitter is derived from FNV-1a 64 of the key (a guest has no
 * randomness): ttl - ttl/10 + hash % (2 * (ttl/10) + 1).
 *
 * The ABI (docs/PLUGINS.md, version 1): the module exports memory,
 * wisp_abi_version () -> i32, wisp_allocate (i32) -> i32, wisp_free (i32,
 * i32) -> () and wisp_ttl (i32, i32) -> i64, and imports nothing.
 *
 * Memory: a bump allocator over the heap wasm-ld leaves after the stack and
 * data (__heap_base), growing memory as it needs. The host holds one input
 * buffer at a time (it frees the old one before asking for a larger one),
 * so freeing the latest allocation moves the bump pointer back and memory
 * stays at one buffer; a free of anything else is ignored (it would leak,
 * which the host never makes it do). The output is a static array of one
 * i64 per write of the largest batch (8 KiB).
 *
 * Build: make (see the Makefile): clang --target=wasm32 -nostdlib, wasm-ld.
 */

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef unsigned long uintptr_t; /* 32 bits on wasm32 */

#define EXPORT(name) __attribute__((export_name(name), visibility("default")))

/* ABI version 1: the ttl input's layout and limits. */
enum {
	ABI_VERSION = 1,
	TTL_HEADER_SIZE_BYTES = 32,
	TTL_WRITE_SIZE_BYTES = 24,
	TTL_WRITES_MAX = 1024,
	TTL_KEY_SIZE_BYTES_MAX = 64 << 10,
	TTL_KEYS_SIZE_BYTES_MAX = 128 << 10,
	/* The largest input of any kind: 32 + 4096 * 40 bytes of eviction
	 * input. The host asks for no more. */
	INPUT_SIZE_BYTES_MAX = 32 + 4096 * 40,
	PAGE_SIZE_BYTES = 65536,
};

/* Error codes, as the Go SDK's (any negative result means no answer). */
#define CODE_MALFORMED_INPUT (-1LL)
#define CODE_UNKNOWN_BUFFER (-3LL)

/* KEEP_REQUESTED_TTL keeps the TTL the client asked for. */
#define KEEP_REQUESTED_TTL (-1LL)

#define SECOND 1000LL
#define MINUTE (60 * SECOND)

/* rules are the default TTLs by prefix, in milliseconds; the first match
 * wins. */
static const struct {
	const char *prefix;
	uint32_t prefix_size_bytes;
	int64_t ttl_ms;
} rules[] = {
	{"session/", 8, 30 * MINUTE},
	{"cache/", 6, 5 * MINUTE},
};

extern uint8_t __heap_base; /* from wasm-ld: the first free byte */

/* The bump allocator's state. Invariant: heap_base <= top, and
 * [last, top) is the latest live allocation (last == top: none). */
static uintptr_t top, last;

/* The output: one i64 per write, little-endian (wasm is little-endian). */
static int64_t output[TTL_WRITES_MAX];

EXPORT("wisp_abi_version")
uint32_t wisp_abi_version(void) { return ABI_VERSION; }

EXPORT("wisp_allocate")
uint32_t wisp_allocate(uint32_t size_bytes) {
	if (size_bytes == 0 || size_bytes > INPUT_SIZE_BYTES_MAX)
		return 0;
	if (top == 0)
		top = last = (uintptr_t)&__heap_base;
	uintptr_t ptr = (top + 7) & ~(uintptr_t)7; /* 8-byte aligned */
	uintptr_t end = ptr + size_bytes;
	uintptr_t have = __builtin_wasm_memory_size(0) * PAGE_SIZE_BYTES;
	if (end > have) {
		uintptr_t pages = (end - have + PAGE_SIZE_BYTES - 1) / PAGE_SIZE_BYTES;
		if (__builtin_wasm_memory_grow(0, pages) == (uintptr_t)-1)
			return 0;
	}
	last = ptr;
	top = end;
	return ptr;
}

EXPORT("wisp_free")
void wisp_free(uint32_t ptr, uint32_t size_bytes) {
	if (ptr != 0 && ptr == last && ptr + size_bytes == top)
		top = last; /* the latest allocation: give it back */
}

static uint32_t load32(const uint8_t *p) { return *(const uint32_t *)p; }
static uint64_t load64(const uint8_t *p) { return *(const uint64_t *)p; }

static int has_prefix(const uint8_t *key, uint32_t key_size_bytes, const char *prefix, uint32_t prefix_size_bytes) {
	if (key_size_bytes < prefix_size_bytes)
		return 0;
	for (uint32_t i = 0; i < prefix_size_bytes; i++)
		if (key[i] != (uint8_t)prefix[i])
			return 0;
	return 1;
}

/* fnv1a64 is FNV-1a, 64 bits, as Go's hash/fnv New64a. */
static uint64_t fnv1a64(const uint8_t *p, uint32_t n) {
	uint64_t h = 14695981039346656037ULL;
	for (uint32_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* decide returns the TTL of a write: see the top of this file. */
static int64_t decide(const uint8_t *key, uint32_t key_size_bytes, int64_t requested_ttl_ms) {
	if (requested_ttl_ms != 0)
		return KEEP_REQUESTED_TTL;
	for (uint32_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
		if (has_prefix(key, key_size_bytes, rules[r].prefix, rules[r].prefix_size_bytes)) {
			int64_t spread = rules[r].ttl_ms / 10;
			return rules[r].ttl_ms - spread + (int64_t)(fnv1a64(key, key_size_bytes) % (uint64_t)(2 * spread + 1));
		}
	}
	return KEEP_REQUESTED_TTL;
}

/*
 * wisp_ttl decides a batch of writes. The input (little-endian, at an
 * 8-byte aligned address from wisp_allocate): a header,
 *
 *   0  u32 abiVersion       8  u32 count          16 i64 nowUnixMs
 *   4  u16 headerSizeBytes  12 u32 keysSizeBytes  24 u64 reserved
 *   6  u16 writeSizeBytes
 *
 * then count records of 24 bytes,
 *
 *   0  i64 requestedTTLMs   12 u32 keyOffset      20 u32 reserved
 *   8  u32 valueSizeBytes   16 u32 keySizeBytes
 *
 * then the key area: the keys back to back, in the order of the records
 * (each keyOffset, counted from the key area's start, is the sum of the
 * sizes before it). The result is (address of output) << 32 | 8 * count,
 * one TTL per write in order, or a negative error code; any input that is
 * not exactly that is refused, as the Go SDK does.
 */
EXPORT("wisp_ttl")
int64_t wisp_ttl(uint32_t ptr, uint32_t size_bytes) {
	if (ptr < last || ptr == 0 || (uint64_t)ptr + size_bytes > top)
		return CODE_UNKNOWN_BUFFER;
	const uint8_t *in = (const uint8_t *)(uintptr_t)ptr;
	if (size_bytes < TTL_HEADER_SIZE_BYTES || load32(in) != ABI_VERSION)
		return CODE_MALFORMED_INPUT;
	uint32_t sizes = load32(in + 4); /* headerSizeBytes, then writeSizeBytes */
	uint32_t count = load32(in + 8);
	uint32_t keys_size_bytes = load32(in + 12);
	if (sizes != (TTL_HEADER_SIZE_BYTES | TTL_WRITE_SIZE_BYTES << 16) || count == 0 || count > TTL_WRITES_MAX ||
	    keys_size_bytes > TTL_KEYS_SIZE_BYTES_MAX || load64(in + 24) != 0 ||
	    size_bytes != TTL_HEADER_SIZE_BYTES + count * TTL_WRITE_SIZE_BYTES + keys_size_bytes)
		return CODE_MALFORMED_INPUT;
	const uint8_t *keys = in + TTL_HEADER_SIZE_BYTES + count * TTL_WRITE_SIZE_BYTES;
	uint32_t offset = 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *w = in + TTL_HEADER_SIZE_BYTES + i * TTL_WRITE_SIZE_BYTES;
		int64_t requested_ttl_ms = (int64_t)load64(w);
		uint32_t key_size_bytes = load32(w + 16);
		if (requested_ttl_ms < 0 || load32(w + 12) != offset || load32(w + 20) != 0 || key_size_bytes == 0 ||
		    key_size_bytes > TTL_KEY_SIZE_BYTES_MAX || key_size_bytes > keys_size_bytes - offset)
			return CODE_MALFORMED_INPUT;
		output[i] = decide(keys + offset, key_size_bytes, requested_ttl_ms);
		offset += key_size_bytes;
	}
	if (offset != keys_size_bytes)
		return CODE_MALFORMED_INPUT;
	return (int64_t)((uint64_t)(uintptr_t)output << 32 | (uint64_t)count * sizeof output[0]);
}
