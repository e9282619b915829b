package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestImports keeps the layout pure: it builds for guests and host alike.
func TestImports(t *testing.T) { importtest.Forbid(t, importtest.Pure, nil) }

// sampleInput is the input the golden file pins: every field set to a value
// whose bytes are easy to tell apart.
func sampleInput() *EvictionInput {
	return &EvictionInput{
		NowUnixMs:   1_700_000_000_123,
		AccessClock: 0x1122334455667788,
		VictimsMax:  2,
		Candidates: []Candidate{
			{KeyHash: 0xa1a2a3a4a5a6a7a8, Version: 7, LastAccess: 100, ExpiresAtUnixMs: 0, SizeBytes: 300, Frequency: 5},
			{KeyHash: 0xb1b2b3b4b5b6b7b8, Version: 1 << 40, LastAccess: 42, ExpiresAtUnixMs: 1_700_000_000_000, SizeBytes: 64 << 20, Frequency: 255},
			{KeyHash: 1, Version: 2, LastAccess: 3, ExpiresAtUnixMs: 1_800_000_000_000, SizeBytes: 4, Frequency: 6},
		},
	}
}

// field is one field of a layout, for the annotated dump.
type field struct {
	name      string
	sizeBytes int
}

var (
	headerLayout = []field{
		{"abiVersion u32", 4}, {"headerSizeBytes u16", 2}, {"candidateSizeBytes u16", 2},
		{"count u32", 4}, {"victimsMax u32", 4}, {"nowUnixMs i64", 8}, {"accessClock u64", 8},
	}
	candidateLayout = []field{
		{"keyHash u64", 8}, {"version u64", 8}, {"lastAccess u64", 8},
		{"expiresAtUnixMs i64", 8}, {"sizeBytes u32", 4}, {"frequency u32", 4},
	}
)

// dump annotates b field by field: offset, bytes in hex, name, value. The
// layout tables are this test's reading of docs/PLUGINS.md.
func dump(w *strings.Builder, b []byte, off int, prefix string, layout []field) int {
	for _, f := range layout {
		v := b[off : off+f.sizeBytes]
		var x uint64
		for i := len(v) - 1; i >= 0; i-- {
			x = x<<8 | uint64(v[i])
		}
		if strings.HasSuffix(f.name, "i64") {
			fmt.Fprintf(w, "%04x  %-23s  %s%s = %d\n", off, hex.EncodeToString(v), prefix, f.name, int64(x))
		} else {
			fmt.Fprintf(w, "%04x  %-23s  %s%s = %d\n", off, hex.EncodeToString(v), prefix, f.name, x)
		}
		off += f.sizeBytes
	}
	return off
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the encoder's output; the ABI layout changed? got:\n%s", path, got)
	}
}

// TestGoldenEvictionInput pins the eviction input's layout byte by byte.
func TestGoldenEvictionInput(t *testing.T) {
	in := sampleInput()
	b := AppendEvictionInput(nil, in)
	if len(b) != EvictionInputSizeBytes(len(in.Candidates)) {
		t.Fatalf("len = %d; want %d", len(b), EvictionInputSizeBytes(len(in.Candidates)))
	}
	var w strings.Builder
	w.WriteString("# eviction input, ABI v1: header, then one record per candidate (little-endian)\n")
	off := dump(&w, b, 0, "", headerLayout)
	if off != EvictionHeaderSizeBytes {
		t.Fatalf("header layout covers %d bytes; want %d", off, EvictionHeaderSizeBytes)
	}
	for i := range in.Candidates {
		start := off
		off = dump(&w, b, off, fmt.Sprintf("candidates[%d].", i), candidateLayout)
		if off-start != CandidateSizeBytes {
			t.Fatalf("candidate layout covers %d bytes; want %d", off-start, CandidateSizeBytes)
		}
	}
	if off != len(b) {
		t.Fatalf("layout covers %d of %d bytes", off, len(b))
	}
	golden(t, "eviction_input_v1.golden", w.String())
}

// TestGoldenVictims pins the output's layout.
func TestGoldenVictims(t *testing.T) {
	b := AppendVictims(nil, []int{2, 0})
	var w strings.Builder
	w.WriteString("# eviction output, ABI v1: count, then the victims' indexes, best first (little-endian)\n")
	off := dump(&w, b, 0, "", []field{{"count u32", 4}})
	for i := range 2 {
		off = dump(&w, b, off, "", []field{{fmt.Sprintf("victims[%d] u32", i), 4}})
	}
	golden(t, "eviction_output_v1.golden", w.String())
}

func TestEvictionInputRoundTrip(t *testing.T) {
	in := sampleInput()
	b := AppendEvictionInput([]byte("prefix"), in)
	var got EvictionInput
	if err := DecodeEvictionInput(b[len("prefix"):], &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, in) {
		t.Errorf("DecodeEvictionInput(AppendEvictionInput(in)) = %+v; want %+v", got, *in)
	}
	// No candidates at all is a valid input.
	empty := &EvictionInput{NowUnixMs: -5}
	if err := DecodeEvictionInput(AppendEvictionInput(nil, empty), &got); err != nil || len(got.Candidates) != 0 || got.NowUnixMs != -5 {
		t.Errorf("DecodeEvictionInput(empty) = %+v, %v", got, err)
	}
}

func TestDecodeEvictionInputRejects(t *testing.T) {
	good := AppendEvictionInput(nil, sampleInput())
	with := func(off int, put func([]byte)) []byte {
		b := bytes.Clone(good)
		put(b[off:])
		return b
	}
	u32 := func(v uint32) func([]byte) { return func(b []byte) { binary.LittleEndian.PutUint32(b, v) } }
	u16 := func(v uint16) func([]byte) { return func(b []byte) { binary.LittleEndian.PutUint16(b, v) } }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:EvictionHeaderSizeBytes-1]},
		{"version 2", with(0, u32(2))},
		{"header size", with(4, u16(40))},
		{"record size", with(6, u16(48))},
		{"count past max", with(8, u32(CandidatesMax+1))},
		{"count past bytes", with(8, u32(4))},
		{"count short of bytes", with(8, u32(2))},
		{"victimsMax past count", with(12, u32(4))},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"cut record", good[:len(good)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in EvictionInput
			if err := DecodeEvictionInput(tc.b, &in); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeEvictionInput = %v; want ErrMalformed", err)
			}
		})
	}
}

// victimsCases are DecodeVictims's table, and the fuzz target's seeds.
var victimsCases = []struct {
	name       string
	b          []byte
	candidates int
	victimsMax int
	want       []int
	err        error
}{
	{"none", AppendVictims(nil, nil), 3, 2, nil, nil},
	{"two", AppendVictims(nil, []int{2, 0}), 3, 2, []int{2, 0}, nil},
	{"all of max", AppendVictims(nil, []int{0, 1, 2}), 3, 3, []int{0, 1, 2}, nil},
	{"empty", nil, 3, 2, nil, ErrMalformed},
	{"short count", []byte{1, 0, 0}, 3, 2, nil, ErrMalformed},
	{"count past bytes", []byte{2, 0, 0, 0, 1, 0, 0, 0}, 3, 2, nil, ErrMalformed},
	{"trailing bytes", append(AppendVictims(nil, []int{1}), 0), 3, 2, nil, ErrMalformed},
	{"too many", AppendVictims(nil, []int{0, 1, 2}), 3, 2, nil, ErrTooManyVictims},
	{"huge count", []byte{0xff, 0xff, 0xff, 0xff}, 3, 2, nil, ErrTooManyVictims},
	{"unknown index", AppendVictims(nil, []int{3}), 3, 2, nil, ErrUnknownIndex},
	{"negative index", AppendVictims(nil, []int{-1}), 3, 2, nil, ErrUnknownIndex},
	{"duplicate", AppendVictims(nil, []int{1, 1}), 3, 2, nil, ErrDuplicateVictim},
	{"no candidates", AppendVictims(nil, nil), 0, 0, nil, nil},
	{"last of max", AppendVictims(nil, []int{CandidatesMax - 1, 0}), CandidatesMax, 2, []int{CandidatesMax - 1, 0}, nil},
}

func TestDecodeVictims(t *testing.T) {
	for _, tc := range victimsCases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []int{99}
			got, err := DecodeVictims(tc.b, tc.candidates, tc.victimsMax, dst)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("DecodeVictims(%x) error = %v; want %v", tc.b, err, tc.err)
			}
			want := append([]int{99}, tc.want...)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeVictims(%x) = %v; want %v", tc.b, got, want)
			}
		})
	}
}

func TestPackResult(t *testing.T) {
	for _, tc := range []struct{ ptr, size uint32 }{{0, 0}, {1024, 8}, {0x7fffffff, 0xffffffff}} {
		ptr, size, _, ok := UnpackResult(PackResult(tc.ptr, tc.size))
		if !ok || ptr != tc.ptr || size != tc.size {
			t.Errorf("UnpackResult(PackResult(%d, %d)) = %d, %d, %v", tc.ptr, tc.size, ptr, size, ok)
		}
	}
	if _, _, code, ok := UnpackResult(int64(CodeNoHandler)); ok || code != CodeNoHandler {
		t.Errorf("UnpackResult(%d) = code %d, ok %v; want the code", CodeNoHandler, code, ok)
	}
}

// FuzzDecodeVictims checks the host's decoder of guest answers: it never
// panics, and what it accepts is a valid answer that re-encodes to the same
// bytes.
func FuzzDecodeVictims(f *testing.F) {
	for _, tc := range victimsCases {
		f.Add(tc.b, uint16(tc.candidates), uint16(tc.victimsMax))
	}
	f.Fuzz(func(t *testing.T, b []byte, candidates, victimsMax uint16) {
		n := int(candidates) % (CandidatesMax + 1)
		m := 0
		if n > 0 {
			m = int(victimsMax) % (n + 1)
		}
		got, err := DecodeVictims(b, n, m, nil)
		if err != nil {
			if len(got) != 0 {
				t.Fatalf("DecodeVictims failed (%v) but returned %v", err, got)
			}
			return
		}
		if len(got) > m {
			t.Fatalf("DecodeVictims accepted %d victims, max %d", len(got), m)
		}
		seen := map[int]bool{}
		for _, i := range got {
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("DecodeVictims accepted index %d (of %d, seen %v)", i, n, seen[i])
			}
			seen[i] = true
		}
		if re := AppendVictims(nil, got); !bytes.Equal(re, b) {
			t.Fatalf("DecodeVictims(%x) = %v, which encodes to %x", b, got, re)
		}
	})
}

// FuzzDecodeEvictionInput checks the guest's decoder: it never panics, and
// what it accepts re-encodes to the same bytes.
func FuzzDecodeEvictionInput(f *testing.F) {
	f.Add(AppendEvictionInput(nil, sampleInput()))
	f.Add(AppendEvictionInput(nil, &EvictionInput{}))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in EvictionInput
		if err := DecodeEvictionInput(b, &in); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeEvictionInput error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if re := AppendEvictionInput(nil, &in); !bytes.Equal(re, b) {
			t.Fatalf("DecodeEvictionInput(%x) = %+v, which encodes to %x", b, in, re)
		}
	})
}
