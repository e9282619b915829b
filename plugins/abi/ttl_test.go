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

// sampleTTLInput is the TTL input the golden file pins: three writes whose
// fields are easy to tell apart.
func sampleTTLInput() *TTLInput {
	return &TTLInput{
		NowUnixMs: 1_700_000_000_123,
		Writes: []TTLWrite{
			{RequestedTTLMs: 0, ValueSizeBytes: 300, Key: []byte("session/42")},
			{RequestedTTLMs: 60_000, ValueSizeBytes: 64 << 20, Key: []byte("cache/x")},
			{RequestedTTLMs: 1, ValueSizeBytes: 0, Key: []byte("k")},
		},
	}
}

var (
	ttlHeaderLayout = []field{
		{"abiVersion u32", 4}, {"headerSizeBytes u16", 2}, {"writeSizeBytes u16", 2},
		{"count u32", 4}, {"keysSizeBytes u32", 4}, {"nowUnixMs i64", 8}, {"reserved u64", 8},
	}
	ttlWriteLayout = []field{
		{"requestedTTLMs i64", 8}, {"valueSizeBytes u32", 4}, {"keyOffset u32", 4},
		{"keySizeBytes u32", 4}, {"reserved u32", 4},
	}
)

// TestGoldenTTLInput pins the ttl input's layout byte by byte.
func TestGoldenTTLInput(t *testing.T) {
	in := sampleTTLInput()
	b := AppendTTLInput(nil, in)
	var w strings.Builder
	w.WriteString("# ttl input, ABI v1: header, then one record per write, then the keys (little-endian)\n")
	off := dump(&w, b, 0, "", ttlHeaderLayout)
	if off != TTLHeaderSizeBytes {
		t.Fatalf("header layout covers %d bytes; want %d", off, TTLHeaderSizeBytes)
	}
	for i := range in.Writes {
		start := off
		off = dump(&w, b, off, fmt.Sprintf("writes[%d].", i), ttlWriteLayout)
		if off-start != TTLWriteSizeBytes {
			t.Fatalf("write layout covers %d bytes; want %d", off-start, TTLWriteSizeBytes)
		}
	}
	keysSize := 0
	for i, wr := range in.Writes {
		w.WriteString(hexKey(off, fmt.Sprintf("keys[%d]", i), wr.Key))
		off += len(wr.Key)
		keysSize += len(wr.Key)
	}
	if len(b) != off || len(b) != TTLInputSizeBytes(len(in.Writes), keysSize) {
		t.Fatalf("len = %d; want %d", len(b), TTLInputSizeBytes(len(in.Writes), keysSize))
	}
	golden(t, "ttl_input_v1.golden", w.String())
}

// hexKey annotates a key's bytes, 8 to a line.
func hexKey(off int, name string, key []byte) string {
	var w strings.Builder
	for i := 0; i < len(key); i += 8 {
		chunk := key[i:min(i+8, len(key))]
		fmt.Fprintf(&w, "%04x  %-23s  %s[%d:%d] = %q\n", off+i, hex.EncodeToString(chunk), name, i, i+len(chunk), chunk)
	}
	return w.String()
}

// TestGoldenTTLOutput pins the ttl output's layout.
func TestGoldenTTLOutput(t *testing.T) {
	var w strings.Builder
	w.WriteString("# ttl output, ABI v1: one ttl per write, in order, in ms (0: none; -1: keep the requested one)\n")
	var b []byte
	for _, v := range []int64{1_800_000, 0, TTLKeepRequested} {
		b = AppendTTLOutput(b, v)
	}
	off := 0
	for i := range 3 {
		off = dump(&w, b, off, "", []field{{fmt.Sprintf("ttlMs[%d] i64", i), 8}})
	}
	if off != TTLOutputSizeBytes(3) {
		t.Fatalf("output of %d bytes; want %d", off, TTLOutputSizeBytes(3))
	}
	golden(t, "ttl_output_v1.golden", w.String())
}

func TestTTLInputRoundTrip(t *testing.T) {
	for _, in := range []*TTLInput{
		sampleTTLInput(),
		{NowUnixMs: -5, Writes: []TTLWrite{{Key: []byte("k")}}},
		// The largest input: TTLWritesMax writes, TTLKeysSizeBytesMax bytes
		// of keys, the first of the largest size.
		largestTTLInput(),
	} {
		b := AppendTTLInput([]byte("prefix"), in)
		var got TTLInput
		if err := DecodeTTLInput(b[len("prefix"):], &got); err != nil {
			t.Fatalf("DecodeTTLInput(%d writes) = %v", len(in.Writes), err)
		}
		if !reflect.DeepEqual(&got, in) {
			t.Errorf("DecodeTTLInput(AppendTTLInput(in)) = %+v; want %+v", got, *in)
		}
	}
	if n := len(AppendTTLInput(nil, largestTTLInput())); n != TTLInputSizeBytesMax || n > InputSizeBytesMax {
		t.Errorf("largest ttl input of %d bytes; want %d, at most %d", n, TTLInputSizeBytesMax, InputSizeBytesMax)
	}
}

// largestTTLInput is a TTL input of the largest size.
func largestTTLInput() *TTLInput {
	in := &TTLInput{Writes: make([]TTLWrite, TTLWritesMax)}
	rest := TTLKeysSizeBytesMax - TTLKeySizeBytesMax
	for i := range in.Writes {
		w := &in.Writes[i]
		w.RequestedTTLMs, w.ValueSizeBytes = int64(i), uint32(i)
		if i == 0 {
			w.Key = bytes.Repeat([]byte{'k'}, TTLKeySizeBytesMax)
			continue
		}
		w.Key = []byte{byte(i)}
		rest--
	}
	if rest < 0 {
		panic("largestTTLInput: keys past the bound")
	}
	in.Writes[1].Key = append(in.Writes[1].Key, make([]byte, rest)...)
	return in
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
	rec := func(i, field int) int { return TTLHeaderSizeBytes + i*TTLWriteSizeBytes + field }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:TTLHeaderSizeBytes-1]},
		{"version 2", with(0, u32(2))},
		{"header size", with(4, u16(40))},
		{"record size", with(6, u16(16))},
		{"no writes", with(8, u32(0))},
		{"count past max", with(8, u32(TTLWritesMax+1))},
		{"count past bytes", with(8, u32(4))},
		{"count short of bytes", with(8, u32(2))},
		{"keys past max", with(12, u32(TTLKeysSizeBytesMax+1))},
		{"keys past bytes", with(12, u32(19))},
		{"keys short of bytes", with(12, u32(17))},
		{"header reserved", with(24, u64(1))},
		{"negative requested ttl", with(rec(1, 0), u64(1<<63))},
		{"empty key", with(rec(2, 16), u32(0))},
		{"key past max", with(rec(0, 16), u32(TTLKeySizeBytesMax+1))},
		{"key past the area", with(rec(2, 16), u32(2))},
		{"keys short of the area", with(rec(1, 16), u32(6))},
		{"key offset gap", with(rec(1, 12), u32(11))},
		{"key offset overlap", with(rec(1, 12), u32(9))},
		{"key offset of another", with(rec(2, 12), u32(0))},
		{"record reserved", with(rec(0, 20), u32(1))},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"cut key", good[:len(good)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in TTLInput
			if err := DecodeTTLInput(tc.b, &in); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeTTLInput = %v; want ErrMalformed", err)
			}
		})
	}
}

// ttlOutput encodes ttls as a guest answers them.
func ttlOutput(ttls ...int64) []byte {
	var b []byte
	for _, v := range ttls {
		b = AppendTTLOutput(b, v)
	}
	return b
}

// ttlOutputCases are DecodeTTLOutput's table, and the fuzz target's seeds.
var ttlOutputCases = []struct {
	name  string
	b     []byte
	count int
	want  []int64
	err   error
}{
	{"ttl", ttlOutput(1_800_000), 1, []int64{1_800_000}, nil},
	{"none", ttlOutput(0), 1, []int64{0}, nil},
	{"keep", ttlOutput(TTLKeepRequested), 1, []int64{TTLKeepRequested}, nil},
	{"ten years", ttlOutput(TTLMsMax), 1, []int64{TTLMsMax}, nil},
	{"three", ttlOutput(5, TTLKeepRequested, 0), 3, []int64{5, TTLKeepRequested, 0}, nil},
	{"past ten years", ttlOutput(TTLMsMax + 1), 1, nil, ErrTTLOutOfRange},
	{"minus two", ttlOutput(-2), 1, nil, ErrTTLOutOfRange},
	{"most negative", ttlOutput(-1 << 63), 1, nil, ErrTTLOutOfRange},
	{"last out of range", ttlOutput(1, 2, -2), 3, nil, ErrTTLOutOfRange},
	{"first out of range", ttlOutput(TTLMsMax+1, 2, 3), 3, nil, ErrTTLOutOfRange},
	{"short", []byte{1, 2, 3}, 1, nil, ErrMalformed},
	{"long", append(ttlOutput(5), 0), 1, nil, ErrMalformed},
	{"empty", nil, 1, nil, ErrMalformed},
	{"one short", ttlOutput(1, 2), 3, nil, ErrMalformed},
	{"one too many", ttlOutput(1, 2, 3), 2, nil, ErrMalformed},
	{"largest", make([]byte, TTLOutputSizeBytesMax), TTLWritesMax, make([]int64, TTLWritesMax), nil},
}

func TestDecodeTTLOutput(t *testing.T) {
	for _, tc := range ttlOutputCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeTTLOutput(tc.b, tc.count, []int64{99})
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("DecodeTTLOutput(%.40x, %d) error = %v; want %v", tc.b, tc.count, err, tc.err)
			}
			if want := append([]int64{99}, tc.want...); !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeTTLOutput(%.40x, %d) = %v; want %v", tc.b, tc.count, got, want)
			}
		})
	}
}

// FuzzDecodeTTLOutput: the host's decoder of guest answers never panics,
// and what it accepts is one TTL per write, each in range, and re-encodes
// to the same bytes.
func FuzzDecodeTTLOutput(f *testing.F) {
	for _, tc := range ttlOutputCases {
		f.Add(tc.b, uint16(tc.count))
	}
	f.Fuzz(func(t *testing.T, b []byte, count uint16) {
		n := 1 + int(count)%TTLWritesMax
		got, err := DecodeTTLOutput(b, n, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTTLOutOfRange) {
				t.Fatalf("DecodeTTLOutput error %v wraps neither ErrMalformed nor ErrTTLOutOfRange", err)
			}
			if len(got) != 0 {
				t.Fatalf("DecodeTTLOutput failed (%v) but returned %v", err, got)
			}
			return
		}
		if len(got) != n {
			t.Fatalf("DecodeTTLOutput accepted %d ttls for %d writes", len(got), n)
		}
		for i, ttl := range got {
			if ttl != TTLKeepRequested && (ttl < 0 || ttl > TTLMsMax) {
				t.Fatalf("DecodeTTLOutput(%x) accepted %d for write %d", b, ttl, i)
			}
		}
		if re := ttlOutput(got...); !bytes.Equal(re, b) {
			t.Fatalf("DecodeTTLOutput(%x) = %v, which encodes to %x", b, got, re)
		}
	})
}

// FuzzDecodeTTLInput: the guest's decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzDecodeTTLInput(f *testing.F) {
	f.Add(AppendTTLInput(nil, sampleTTLInput()))
	f.Add(AppendTTLInput(nil, &TTLInput{Writes: []TTLWrite{{Key: []byte("k")}}}))
	f.Add([]byte{1, 0, 0, 0, 32, 0, 24, 0})
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
