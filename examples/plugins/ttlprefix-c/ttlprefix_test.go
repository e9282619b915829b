// Package ttlprefixc tests the C ttl plugin src/ttlprefix.c through its
// committed module: on the real host, against the Go plugin of the same
// rule, at the raw ABI, and rebuilt from source when clang is installed.
package ttlprefixc

import (
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wisp-db/wisp/examples/plugins/internal/wasmtest"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/plugins/abi"
)

const (
	modulePath   = "ttlprefix.wasm"
	goModulePath = "../ttlprefix-go/ttlprefix.wasm"
	now          = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z
	second       = int64(1000)
	minute       = 60 * second
	// builtWith is the compiler the committed module was built with. Other
	// versions compile differently, so the bytes are compared only when
	// the installed clang is this one.
	builtWith = "Debian clang version 14.0.6"
)

// load loads the module on a real host; LoadTTL runs the host's self-test
// first.
func load(t testing.TB, h *plugins.Host, wasm []byte, name string) *plugins.TTL {
	t.Helper()
	p, err := h.LoadTTL(context.Background(), wasm, plugins.WithName(name))
	if err != nil {
		t.Fatalf("LoadTTL(%s) = %v", name, err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestTTL asks the committed module, on the real host, for the TTL of
// writes under each rule; the host turns "keep the client's TTL" into that
// TTL.
func TestTTL(t *testing.T) {
	p := load(t, wasmtest.NewHost(t), wasmtest.ReadFile(t, modulePath), "ttlprefix-c")
	for _, tc := range []struct {
		key            string
		requestedTTLMs int64
		lo, hi         int64 // the answer is in [lo, hi]
	}{
		{"session/42", 0, 27 * minute, 33 * minute},
		{"cache/front/index.html", 0, 4*minute + 30*second, 5*minute + 30*second},
		{"session/44", 90 * second, 90 * second, 90 * second}, // the client's
		{"user/42", 0, 0, 0}, // none
		{"user/42", 10 * minute, 10 * minute, 10 * minute}, // the client's
		{"sessio", 0, 0, 0},      // shorter than the prefix
		{"x/session/1", 0, 0, 0}, // a prefix, not a substring
	} {
		t.Run(fmt.Sprintf("%s requested %d ms", tc.key, tc.requestedTTLMs), func(t *testing.T) {
			got := callTTL(t, p, tc.key, tc.requestedTTLMs)
			if got < tc.lo || got > tc.hi {
				t.Errorf("TTL(%q, requested %d ms) = %d ms; want in [%d, %d]", tc.key, tc.requestedTTLMs, got, tc.lo, tc.hi)
			}
		})
	}
}

// TestMatchesGo: the C module answers every write as the Go plugin of the
// same rule (../ttlprefix-go) does, jitter included.
func TestMatchesGo(t *testing.T) {
	h := wasmtest.NewHost(t)
	c := load(t, h, wasmtest.ReadFile(t, modulePath), "ttlprefix-c")
	g := load(t, h, wasmtest.ReadFile(t, goModulePath), "ttlprefix-go")
	checkSame(t, c, g)
}

// checkSame fails t unless a and b answer alike: 3,000 keys under each
// rule, with and without a TTL from the client, keys of 1 byte to 64 KiB,
// in batches of 1 to abi.TTLWritesMax writes (packed by
// plugins.TTLBatchLen), about 9,000 writes in all.
func checkSame(t *testing.T, a, b *plugins.TTL) {
	t.Helper()
	keys := []string{"s", "session/", "cache/", strings.Repeat("k", abi.TTLKeySizeBytesMax), "session/" + strings.Repeat("é", 20_000)}
	for i := range 1000 {
		keys = append(keys, fmt.Sprintf("session/%d", i), fmt.Sprintf("cache/%x", i*7919), fmt.Sprintf("user/%d", i))
	}
	var writes []plugins.TTLWrite
	for _, key := range keys {
		for _, requested := range []int64{0, 1, 45 * minute} {
			writes = append(writes, plugins.TTLWrite{Key: []byte(key), ValueLen: len(key), RequestedTTLMs: requested})
		}
	}
	ctx := context.Background()
	var got, want []int64
	sizes := []int{1, 16, 256, abi.TTLWritesMax, 3} // batch sizes, in turn
	for batch := 0; len(writes) > 0; batch++ {
		n := min(plugins.TTLBatchLen(writes), sizes[batch%len(sizes)])
		var err error
		if got, err = a.TTLs(ctx, now, writes[:n], got[:0]); err != nil {
			t.Fatalf("batch %d of %d writes: %s: %v", batch, n, a.Name(), err)
		}
		if want, err = b.TTLs(ctx, now, writes[:n], want[:0]); err != nil {
			t.Fatalf("batch %d of %d writes: %s: %v", batch, n, b.Name(), err)
		}
		for i := range writes[:n] {
			if got[i] != want[i] {
				w := writes[i]
				t.Fatalf("TTL(%.40q, requested %d ms) = %d ms from %s; %d ms from %s", w.Key, w.RequestedTTLMs, got[i], a.Name(), want[i], b.Name())
			}
		}
		writes = writes[n:]
	}
}

// TestABI calls the module's exports directly, as the host would and as it
// never does: the allocator's alignment, growth and reuse, a batch, the
// largest batch, and the error codes for inputs the host would not send.
func TestABI(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m, err := r.Instantiate(ctx, wasmtest.ReadFile(t, modulePath))
	if err != nil {
		t.Fatalf("Instantiate: %v", err)
	}
	call := func(name string, args ...uint64) uint64 {
		t.Helper()
		res, err := m.ExportedFunction(name).Call(ctx, args...)
		if err != nil {
			t.Fatalf("%s%v: %v", name, args, err)
		}
		if len(res) == 0 {
			return 0
		}
		return res[0]
	}
	if v := call(abi.ExportABIVersion); v != uint64(abi.Version) {
		t.Errorf("wisp_abi_version() = %d; want %d", v, abi.Version)
	}
	for _, size := range []uint64{0, abi.InputSizeBytesMax + 1} {
		if p := call(abi.ExportAllocate, size); p != 0 {
			t.Errorf("wisp_allocate(%d) = %d; want 0", size, p)
		}
	}
	// The host's sequence: a 4 KiB buffer, then the largest, the old one
	// freed first; the second fits in memory, grown, and a free and a new
	// allocation reuse the same address.
	p := uint32(call(abi.ExportAllocate, 4096))
	if p == 0 || p%8 != 0 {
		t.Fatalf("wisp_allocate(4096) = %d; want a non-zero multiple of 8", p)
	}
	call(abi.ExportFree, uint64(p), 4096)
	big := uint32(call(abi.ExportAllocate, abi.InputSizeBytesMax))
	if big != p {
		t.Errorf("wisp_allocate after wisp_free = %d; want %d again", big, p)
	}
	if end := uint64(big) + abi.InputSizeBytesMax; end > uint64(m.Memory().Size()) {
		t.Fatalf("buffer [%d, %d) outside memory of %d bytes", big, end, m.Memory().Size())
	}
	pagesAfterGrowth := m.Memory().Size()

	var inputOf func(in *abi.TTLInput, mutate func(b []byte)) uint32

	input := func(key string, mutate func(b []byte)) uint32 {
		return inputOf(&abi.TTLInput{NowUnixMs: now, Writes: []abi.TTLWrite{{Key: []byte(key)}}}, mutate)
	}
	inputOf = func(in *abi.TTLInput, mutate func(b []byte)) uint32 {
		b := abi.AppendTTLInput(nil, in)
		if mutate != nil {
			mutate(b)
		}
		if !m.Memory().Write(big, b) {
			t.Fatalf("input of %d bytes does not fit at %d", len(b), big)
		}
		return uint32(len(b))
	}
	n := inputOf(&abi.TTLInput{NowUnixMs: now, Writes: []abi.TTLWrite{
		{Key: []byte("session/42")}, {Key: []byte("user/1")}, {Key: []byte("cache/1"), RequestedTTLMs: 5},
	}}, nil)
	res := int64(call(abi.ExportTTL, uint64(big), uint64(n)))
	ptr, size, code, ok := abi.UnpackResult(res)
	if !ok || size != uint32(abi.TTLOutputSizeBytes(3)) {
		t.Fatalf("wisp_ttl = %d (code %d); want a 24-byte output", res, code)
	}
	out, _ := m.Memory().Read(ptr, size)
	ttls, err := abi.DecodeTTLOutput(out, 3, nil)
	if err != nil || ttls[0] < 27*minute || ttls[0] > 33*minute || ttls[1] != abi.TTLKeepRequested || ttls[2] != abi.TTLKeepRequested {
		t.Errorf("wisp_ttl(session/42, user/1, cache/1 requested 5 ms) = %v, %v; want 30 min ± 10 %%, -1, -1", ttls, err)
	}
	// The largest batch: TTLWritesMax writes, the largest key area.
	largest := &abi.TTLInput{NowUnixMs: now, Writes: make([]abi.TTLWrite, abi.TTLWritesMax)}
	for i := range largest.Writes {
		largest.Writes[i].Key = fmt.Appendf(nil, "session/%d", i)
	}
	rest := abi.TTLInputSizeBytesMax - len(abi.AppendTTLInput(nil, largest))
	for i := 0; rest > 0; i++ { // the first keys padded up to the largest key
		w := &largest.Writes[i]
		pad := min(rest, abi.TTLKeySizeBytesMax-len(w.Key))
		w.Key = append(w.Key, make([]byte, pad)...)
		rest -= pad
	}
	n = inputOf(largest, nil)
	if n != abi.TTLInputSizeBytesMax {
		t.Fatalf("largest input of %d bytes; want %d", n, abi.TTLInputSizeBytesMax)
	}
	if _, size, code, ok := abi.UnpackResult(int64(call(abi.ExportTTL, uint64(big), uint64(n)))); !ok || size != abi.TTLOutputSizeBytesMax {
		t.Errorf("wisp_ttl(the largest input) = %d bytes (code %d); want %d", size, code, abi.TTLOutputSizeBytesMax)
	}

	for _, tc := range []struct {
		name   string
		ptr    uint32
		size   func() uint32
		want   abi.ErrorCode
		reason string
	}{
		{"unknown buffer", big - 8, func() uint32 { return input("k", nil) }, abi.CodeUnknownBuffer, "below the buffer"},
		{"past the buffer", big, func() uint32 { return abi.InputSizeBytesMax + 1 }, abi.CodeUnknownBuffer, "larger than the buffer"},
		{"short", big, func() uint32 { return 31 }, abi.CodeMalformedInput, "shorter than the header"},
		{"version 2", big, func() uint32 { return input("k", func(b []byte) { b[0] = 2 }) }, abi.CodeMalformedInput, "another ABI version"},
		{"header size", big, func() uint32 { return input("k", func(b []byte) { b[4] = 40 }) }, abi.CodeMalformedInput, "another header size"},
		{"record size", big, func() uint32 { return input("k", func(b []byte) { b[6] = 16 }) }, abi.CodeMalformedInput, "another record size"},
		{"no writes", big, func() uint32 {
			return input("k", func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 0) }) - abi.TTLWriteSizeBytes
		}, abi.CodeMalformedInput, "count 0"},
		{"too many writes", big, func() uint32 {
			return input("k", func(b []byte) { binary.LittleEndian.PutUint32(b[8:], abi.TTLWritesMax+1) })
		}, abi.CodeMalformedInput, "count past the max"},
		{"header reserved", big, func() uint32 { return input("k", func(b []byte) { b[24] = 1 }) }, abi.CodeMalformedInput, "reserved not 0"},
		{"record reserved", big, func() uint32 { return input("k", func(b []byte) { b[32+20] = 1 }) }, abi.CodeMalformedInput, "a record's reserved not 0"},
		{"negative ttl", big, func() uint32 {
			return input("k", func(b []byte) { binary.LittleEndian.PutUint64(b[32:], uint64(1)<<63) })
		}, abi.CodeMalformedInput, "a negative requested TTL"},
		{"size mismatch", big, func() uint32 { return input("key", nil) + 1 }, abi.CodeMalformedInput, "a size other than 32 + 24 × count + keysSizeBytes"},
		{"empty key", big, func() uint32 {
			return input("k", func(b []byte) {
				binary.LittleEndian.PutUint32(b[12:], 0)
				binary.LittleEndian.PutUint32(b[32+16:], 0)
			}) - 1
		}, abi.CodeMalformedInput, "an empty key"},
		{"key offset", big, func() uint32 {
			return inputOf(&abi.TTLInput{Writes: []abi.TTLWrite{{Key: []byte("a")}, {Key: []byte("b")}}}, func(b []byte) {
				binary.LittleEndian.PutUint32(b[32+24+12:], 0)
			})
		}, abi.CodeMalformedInput, "two keys at the same offset"},
		{"key past the area", big, func() uint32 {
			return inputOf(&abi.TTLInput{Writes: []abi.TTLWrite{{Key: []byte("a")}, {Key: []byte("b")}}}, func(b []byte) {
				binary.LittleEndian.PutUint32(b[32+24+16:], 2)
			})
		}, abi.CodeMalformedInput, "a key past the key area"},
		{"keys short of the area", big, func() uint32 {
			return inputOf(&abi.TTLInput{Writes: []abi.TTLWrite{{Key: []byte("a")}, {Key: []byte("bc")}}}, func(b []byte) {
				binary.LittleEndian.PutUint32(b[32+24+16:], 1)
			})
		}, abi.CodeMalformedInput, "keys that leave the key area's end unused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size()
			if got := abi.ErrorCode(int64(call(abi.ExportTTL, uint64(tc.ptr), uint64(size)))); got != tc.want {
				t.Errorf("wisp_ttl(%d, %d) with %s = %d; want %d", tc.ptr, size, tc.reason, got, tc.want)
			}
		})
	}

	// A thousand free-and-allocate rounds, as the host's buffer growth
	// never does that often: memory stays as it was.
	for range 1000 {
		call(abi.ExportFree, uint64(big), abi.InputSizeBytesMax)
		if q := uint32(call(abi.ExportAllocate, abi.InputSizeBytesMax)); q != big {
			t.Fatalf("wisp_allocate = %d; want %d again", q, big)
		}
	}
	if got := m.Memory().Size(); got != pagesAfterGrowth {
		t.Errorf("memory is %d bytes after 1,000 rounds; want %d", got, pagesAfterGrowth)
	}
}

// TestUpToDate rebuilds the module from src/ttlprefix.c with build.sh (clang and
// wasm-ld; skipped if either is missing: .ci/run installs them). The
// rebuilt module must answer as the committed one does, and with the clang
// that built the committed module (builtWith), be the same bytes.
func TestUpToDate(t *testing.T) {
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: apt-get install clang lld): %v", tool, err)
		}
	}
	out := filepath.Join(t.TempDir(), "ttlprefix.wasm")
	if msg, err := exec.Command("sh", "build.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, msg)
	}
	built := wasmtest.ReadFile(t, out)

	h := wasmtest.NewHost(t)
	checkSame(t, load(t, h, built, "rebuilt"), load(t, h, wasmtest.ReadFile(t, modulePath), "committed"))

	version, err := exec.Command("clang", "--version").Output()
	if err != nil {
		t.Fatalf("clang --version: %v", err)
	}
	if first, _, _ := strings.Cut(string(version), "\n"); !strings.HasPrefix(first, builtWith) {
		t.Skipf("the committed module was built with %s, this is %s: it answers alike; bytes not compared", builtWith, first)
	}
	wasmtest.CheckUpToDate(t, modulePath, built, "./build.sh")
}

func callTTL(t *testing.T, p *plugins.TTL, key string, requestedTTLMs int64) int64 {
	t.Helper()
	got, err := p.TTL(context.Background(), []byte(key), 100, requestedTTLMs, now)
	if err != nil {
		t.Fatalf("TTL(%.40q) = %v", key, err)
	}
	return got
}
