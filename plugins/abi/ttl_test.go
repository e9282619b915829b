package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// sampleTTLInput is the TTL input the golden file pins.
func sampleTTLInput() *TTLInput {
	return &TTLInput{NowUnixMs: 1_700_000_000_123, RequestedTTLMs: 60_000, ValueSizeBytes: 300, Key: []byte("session/42")}
}

var ttlHeaderLayout = []field{
	{"abiVersion u32", 4}, {"headerSizeBytes u16", 2}, {"reserved u16", 2},
	{"nowUnixMs i64", 8}, {"requestedTTLMs i64", 8}, {"valueSizeBytes u32", 4}, {"keySizeBytes u32", 4},
}

// TestGoldenTTLInput pins the ttl input's layout byte by byte.
func TestGoldenTTLInput(t *testing.T) {
	in := sampleTTLInput()
	b := AppendTTLInput(nil, in)
	var w strings.Builder
	w.WriteString("# ttl input, ABI v1: header, then the key's bytes (little-endian)\n")
	off := dump(&w, b, 0, "", ttlHeaderLayout)
	if off != TTLHeaderSizeBytes {
		t.Fatalf("header layout covers %d bytes; want %d", off, TTLHeaderSizeBytes)
	}
	w.WriteString(hexKey(off, b[off:]))
	if len(b) != TTLInputSizeBytes(len(in.Key)) {
		t.Fatalf("len = %d; want %d", len(b), TTLInputSizeBytes(len(in.Key)))
	}
	golden(t, "ttl_input_v1.golden", w.String())
}

// hexKey annotates a key's bytes, 8 to a line.
func hexKey(off int, key []byte) string {
	var w strings.Builder
	for i := 0; i < len(key); i += 8 {
		chunk := key[i:min(i+8, len(key))]
		fmt.Fprintf(&w, "%04x  %-23s  key[%d:%d] = %q\n", off+i, hex.EncodeToString(chunk), i, i+len(chunk), chunk)
	}
	return w.String()
}

// TestGoldenTTLOutput pins the ttl output's layout.
func TestGoldenTTLOutput(t *testing.T) {
	var w strings.Builder
	w.WriteString("# ttl output, ABI v1: the ttl to apply in ms (0: none; -1: keep the requested one)\n")
	for _, v := range []int64{1_800_000, 0, TTLKeepRequested} {
		dump(&w, AppendTTLOutput(nil, v), 0, "", []field{{"ttlMs i64", 8}})
	}
	golden(t, "ttl_output_v1.golden", w.String())
}

func TestTTLInputRoundTrip(t *testing.T) {
	in := sampleTTLInput()
	b := AppendTTLInput([]byte("prefix"), in)
	var got TTLInput
	if err := DecodeTTLInput(b[len("prefix"):], &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, in) {
		t.Errorf("DecodeTTLInput(AppendTTLInput(in)) = %+v; want %+v", got, *in)
	}
	long := &TTLInput{Key: bytes.Repeat([]byte("k"), TTLKeySizeBytesMax)}
	if err := DecodeTTLInput(AppendTTLInput(nil, long), &got); err != nil || len(got.Key) != TTLKeySizeBytesMax {
		t.Errorf("DecodeTTLInput(largest key) = %v, key of %d bytes", err, len(got.Key))
	}
}

func TestDecodeTTLInputRejects(t *testing.T) {
	good := AppendTTLInput(nil, sampleTTLInput())
	with := func(off int, put func([]byte)) []byte {
		b := bytes.Clone(good)
		put(b[off:])
		return b
	}
	u32 := func(v uint32) func([]byte) { return func(b []byte) { binary.LittleEndian.PutUint32(b, v) } }
	u16 := func(v uint16) func([]byte) { return func(b []byte) { binary.LittleEndian.PutUint16(b, v) } }
	u64 := func(v uint64) func([]byte) { return func(b []byte) { binary.LittleEndian.PutUint64(b, v) } }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:TTLHeaderSizeBytes-1]},
		{"version 2", with(0, u32(2))},
		{"header size", with(4, u16(40))},
		{"reserved", with(6, u16(1))},
		{"negative requested ttl", with(16, u64(1<<63))},
		{"empty key", with(28, u32(0))},
		{"key past max", with(28, u32(TTLKeySizeBytesMax+1))},
		{"key past bytes", with(28, u32(11))},
		{"key short of bytes", with(28, u32(9))},
		{"trailing byte", append(bytes.Clone(good), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in TTLInput
			if err := DecodeTTLInput(tc.b, &in); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeTTLInput = %v; want ErrMalformed", err)
			}
		})
	}
}

// ttlOutputCases are DecodeTTLOutput's table, and the fuzz target's seeds.
var ttlOutputCases = []struct {
	name string
	b    []byte
	want int64
	err  error
}{
	{"ttl", AppendTTLOutput(nil, 1_800_000), 1_800_000, nil},
	{"none", AppendTTLOutput(nil, 0), 0, nil},
	{"keep", AppendTTLOutput(nil, TTLKeepRequested), TTLKeepRequested, nil},
	{"ten years", AppendTTLOutput(nil, TTLMsMax), TTLMsMax, nil},
	{"past ten years", AppendTTLOutput(nil, TTLMsMax+1), 0, ErrTTLOutOfRange},
	{"minus two", AppendTTLOutput(nil, -2), 0, ErrTTLOutOfRange},
	{"most negative", AppendTTLOutput(nil, -1<<63), 0, ErrTTLOutOfRange},
	{"short", []byte{1, 2, 3}, 0, ErrMalformed},
	{"long", append(AppendTTLOutput(nil, 5), 0), 0, ErrMalformed},
	{"empty", nil, 0, ErrMalformed},
}

func TestDecodeTTLOutput(t *testing.T) {
	for _, tc := range ttlOutputCases {
		got, err := DecodeTTLOutput(tc.b)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) || got != tc.want {
			t.Errorf("%s: DecodeTTLOutput(%x) = %d, %v; want %d, %v", tc.name, tc.b, got, err, tc.want, tc.err)
		}
	}
}

// FuzzDecodeTTLOutput: the host's decoder never panics, and what it accepts
// is in range and re-encodes to the same bytes.
func FuzzDecodeTTLOutput(f *testing.F) {
	for _, tc := range ttlOutputCases {
		f.Add(tc.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ttl, err := DecodeTTLOutput(b)
		if err != nil {
			return
		}
		if ttl != TTLKeepRequested && (ttl < 0 || ttl > TTLMsMax) {
			t.Fatalf("DecodeTTLOutput(%x) accepted %d", b, ttl)
		}
		if re := AppendTTLOutput(nil, ttl); !bytes.Equal(re, b) {
			t.Fatalf("DecodeTTLOutput(%x) = %d, which encodes to %x", b, ttl, re)
		}
	})
}

// FuzzDecodeTTLInput: the guest's decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzDecodeTTLInput(f *testing.F) {
	f.Add(AppendTTLInput(nil, sampleTTLInput()))
	f.Add(AppendTTLInput(nil, &TTLInput{Key: []byte("k")}))
	f.Add([]byte{1, 0, 0, 0, 32, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in TTLInput
		if err := DecodeTTLInput(b, &in); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeTTLInput error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if re := AppendTTLInput(nil, &in); !bytes.Equal(re, b) {
			t.Fatalf("DecodeTTLInput(%x) = %+v, which encodes to %x", b, in, re)
		}
	})
}
