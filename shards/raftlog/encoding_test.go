package raftlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// entryCases are valid entries; they also seed FuzzDecodeLog.
var entryCases = []struct {
	name string
	log  raft.Log
}{
	{"zero", raft.Log{}},
	{"command", raft.Log{Index: 7, Term: 2, Type: raft.LogCommand, Data: []byte("put k v"),
		AppendedAt: time.Unix(1_700_000_000, 123_456_789)}},
	{"noop", raft.Log{Index: 1, Term: 1, Type: raft.LogNoop, AppendedAt: time.Unix(1, 0)}},
	{"configuration with extensions", raft.Log{Index: 300, Term: 9, Type: raft.LogConfiguration,
		Data: []byte{0, 1, 2}, Extensions: []byte("ext")}},
	{"extensions only", raft.Log{Index: 2, Term: 2, Extensions: []byte{0xff}}},
	{"max index and term", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogBarrier}},
	{"before 1970", raft.Log{Index: 3, Term: 1, AppendedAt: time.Unix(-86_400*365*100, 999_999_999)}},
	{"unknown type", raft.Log{Index: 4, Term: 4, Type: 200, Data: bytes.Repeat([]byte{'x'}, 300)}},
}

func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func TestEntryRoundTrip(t *testing.T) {
	for _, tc := range entryCases {
		t.Run(tc.name, func(t *testing.T) {
			enc := appendEntry([]byte("prefix"), &tc.log)
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatalf("appendEntry overwrote dst")
			}
			enc = enc[len("prefix"):]
			if n := encodedSize(&tc.log); len(enc) > n {
				t.Fatalf("encoded %d bytes; encodedSize says at most %d", len(enc), n)
			}
			var got raft.Log
			if err := decodeEntry(enc, &got); err != nil {
				t.Fatalf("decodeEntry: %v", err)
			}
			if !logsEqual(&got, &tc.log) {
				t.Fatalf("decodeEntry = %+v; want %+v", got, tc.log)
			}
		})
	}
}

// TestEntryGolden pins the encoding: it is on disk, so a change needs a new
// entryVersion.
func TestEntryGolden(t *testing.T) {
	l := raft.Log{Index: 300, Term: 2, Type: raft.LogCommand, Data: []byte("ab"), Extensions: []byte("c"),
		AppendedAt: time.Unix(1_700_000_000, 5)}
	const want = "01000" + "1" + "ac02" + "02" + "80c49fd50c" + "05" + "026162" + "0163" + "0dcc8da3"
	if got := hex.EncodeToString(appendEntry(nil, &l)); got != want {
		t.Fatalf("appendEntry = %s; want %s", got, want)
	}
}

// withCRC appends the checksum trailer to body.
func withCRC(body []byte) []byte {
	out := append([]byte{}, body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

func TestDecodeEntryCorrupt(t *testing.T) {
	valid := appendEntry(nil, &raft.Log{Index: 5, Term: 1, Data: []byte("hello")})
	body := valid[:len(valid)-entryTrailerBytes]
	flipped := append([]byte{}, valid...)
	flipped[len(flipped)-6] ^= 1
	hugeLen := withCRC(append([]byte{entryVersion, 0, 0, 5, 1}, binary.AppendUvarint(nil, maxEntryBytes+1)...))
	overLen := withCRC([]byte{entryVersion, 0, 0, 5, 1, 10, 'a', 0})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", valid[:minEntryBytes-1]},
		{"truncated", valid[:len(valid)-1]},
		{"bit flip", flipped},
		{"version 2", withCRC(append([]byte{2}, body[1:]...))},
		{"reserved flag", withCRC(append([]byte{entryVersion, 0, 2}, body[3:]...))},
		{"trailing bytes", withCRC(append(append([]byte{}, body...), 0))},
		{"data over bound", hugeLen},
		{"data over input", overLen},
		{"bad uvarint", withCRC([]byte{entryVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
		{"nanoseconds out of range", withCRC(append([]byte{entryVersion, 0, flagAppendedAt, 5, 1, 0},
			append(binary.AppendUvarint(nil, 1e9), 0, 0)...))},
		{"missing extensions", withCRC([]byte{entryVersion, 0, 0, 5, 1, 0, 0, 0})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l raft.Log
			if err := decodeEntry(tc.b, &l); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeEntry(%x) = %v; want ErrCorrupt", tc.b, err)
			}
		})
	}
}

// FuzzDecodeLog feeds arbitrary bytes to the decoder, both as a whole entry
// (which the checksum mostly rejects) and as a body with a valid checksum
// appended, so the field parsing is reached. Decoding must not panic, and
// whatever decodes must re-encode to something that decodes the same.
func FuzzDecodeLog(f *testing.F) {
	for _, tc := range entryCases {
		enc := appendEntry(nil, &tc.log)
		f.Add(enc)
		f.Add(enc[:len(enc)-entryTrailerBytes])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, withCRC(b)} {
			var l raft.Log
			if err := decodeEntry(in, &l); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decodeEntry error %v does not wrap ErrCorrupt", err)
				}
				continue
			}
			var again raft.Log
			if err := decodeEntry(appendEntry(nil, &l), &again); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if !logsEqual(&l, &again) {
				t.Fatalf("re-decode = %+v; want %+v", again, l)
			}
		}
	})
}

func BenchmarkEntry(b *testing.B) {
	l := raft.Log{Index: 123456, Term: 7, Data: bytes.Repeat([]byte{'v'}, 256), AppendedAt: time.Now()}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, encodedSize(&l))
		for b.Loop() {
			buf = appendEntry(buf[:0], &l)
		}
		b.ReportMetric(float64(len(buf)), "bytes/entry")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		enc := appendEntry(nil, &l)
		var out raft.Log
		for b.Loop() {
			if err := decodeEntry(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
