package engine

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
)

// commandCases are valid commands; each must survive encode and decode.
var commandCases = []struct {
	name string
	cmd  Command
}{
	{"no mutations", Command{NowUnixMs: 1}},
	{"zero", Command{}},
	{"put", at(1000, put("a", "1"))},
	{"put with ttl and if version", at(1_700_000_000_000, ifVersion(putTTL("key", "value", 60_000), 42))},
	{"put if absent", at(5, ifAbsent(put("k", "")))},
	{"delete", at(-7, ifVersion(del("k"), math.MaxUint64))},
	{"increment", at(math.MaxInt64, incr("n", math.MinInt64), incr("n", math.MaxInt64), incr("n", -1))},
	{"expire", at(math.MinInt64, ifVersion(expire("k"), 3))},
	{"invalid but encodable", at(1, Mutation{Op: OpDelete, Value: []byte("v"), Delta: 1, TTLMs: -5, IfAbsent: true})},
	{"batch", at(9, put("a", "1"), del("b"), incr("c", 2), expire("d"), putTTL("e", "5", 1))},
	{"largest key", at(1, put(strings.Repeat("k", maxKeyBytes), "v"))},
	{"max memory", withMax(at(1000, put("a", "1")), 1<<30)},
	{"max memory without mutations", withMax(at(0), 1)},
	{"negative max memory (invalid but encodable)", withMax(at(1, del("a")), math.MinInt64)},
	{"ttl ops", at(5, setTTL("k", 100), ifVersion(persist("k"), 7), evict("k", 9), setMeta("policy", "allkeys-lru"), setMeta("policy", ""))},
}

func equalCommands(a, b *Command) bool {
	if a.NowUnixMs != b.NowUnixMs || a.MaxMemoryBytes != b.MaxMemoryBytes || len(a.Mutations) != len(b.Mutations) {
		return false
	}
	for i := range a.Mutations {
		x, y := &a.Mutations[i], &b.Mutations[i]
		if x.Op != y.Op || !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) || x.Delta != y.Delta ||
			x.TTLMs != y.TTLMs || x.IfVersion != y.IfVersion || x.IfAbsent != y.IfAbsent {
			return false
		}
	}
	return true
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tt := range commandCases {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b := AppendCommand(bytes.Clone(prefix), &tt.cmd)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendCommand clobbered dst: %q", b)
			}
			b = b[len(prefix):]
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand(%x) = %v", b, err)
			}
			if !equalCommands(&got, &tt.cmd) {
				t.Fatalf("DecodeCommand(AppendCommand(%+v)) = %+v", tt.cmd, got)
			}
			for cut := range len(b) {
				if _, err := DecodeCommand(b[:cut]); !errors.Is(err, ErrInvalidCommand) {
					t.Fatalf("DecodeCommand(%x) (truncated at %d) = %v; want ErrInvalidCommand", b[:cut], cut, err)
				}
			}
		})
	}
}

// TestCommandEncoding pins the format: a change here breaks every Raft log
// already written.
func TestCommandEncoding(t *testing.T) {
	tests := []struct {
		cmd  Command
		want string
	}{
		{at(1000, put("a", "1")), "01d00f01" + "0102" + "0161" + "0131"},
		{at(-1, ifVersion(putTTL("k", "", 5), 300), incr("n", -2), ifAbsent(del("d"))),
			"010103" + "0118016b0aac02" + "0304016e03" + "0201" + "0164"},
		// Format version 2 only carries a non-zero MaxMemoryBytes.
		{withMax(at(1000, put("a", "1")), 1000), "02d00fd00f01" + "0102" + "0161" + "0131"},
		{withMax(at(1000), -1), "02d00f0100"},
		{at(1, setTTL("k", 5), persist("k"), evict("k", 3), setMeta("m", "v")),
			"010204" + "0508016b0a" + "0600016b" + "0710016b03" + "0802016d0176"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(AppendCommand(nil, &tt.cmd)); got != tt.want {
			t.Errorf("AppendCommand(%+v) = %s; want %s", tt.cmd, got, tt.want)
		}
	}
}

// badCommands are inputs DecodeCommand must reject.
var badCommands = []struct {
	name  string
	input string // hex
}{
	{"empty", ""},
	{"format version 0", "00"},
	{"format version 2 with zero max memory", "02d00f00" + "00"},
	{"format version 3", "03d00f00"},
	{"truncated max memory", "02d00f80"},
	{"non-canonical max memory", "02d00f8000" + "00"},
	{"format version 2 without count", "02d00f02"},
	{"truncated now", "0180"},
	{"non-canonical now", "018000" + "00"},
	{"count above input", "010205" + "010001"},
	{"count above max", "0100" + "914e"},
	{"unknown op 0", "010001" + "000001" + "61"},
	{"unknown op 9", "010001" + "090001" + "61"},
	{"unknown flag", "010001" + "012001" + "61"},
	{"key above max", "010001" + "0100" + "818004"},
	{"key above input", "010001" + "010005" + "61"},
	{"value flagged but empty", "010001" + "010201" + "61" + "00"},
	{"delta flagged but zero", "010001" + "030401" + "61" + "00"},
	{"ttl flagged but zero", "010001" + "010801" + "61" + "00"},
	{"if version flagged but zero", "010001" + "021001" + "61" + "00"},
	{"non-canonical key length", "010001" + "01008100" + "61"},
	{"varint overflow", "010001" + "0110" + "01" + "61" + "ffffffffffffffffff7f"},
	{"trailing bytes", "01d00f01" + "0102" + "0161" + "0131" + "00"},
	{"missing mutation", "010002" + "010001" + "61" + "0100"},
}

func TestDecodeCommandRejects(t *testing.T) {
	for _, tt := range badCommands {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.input)
			if err != nil {
				t.Fatal(err)
			}
			if cmd, err := DecodeCommand(b); !errors.Is(err, ErrInvalidCommand) {
				t.Errorf("DecodeCommand(%s) = %+v, %v; want ErrInvalidCommand", tt.input, cmd, err)
			}
		})
	}
}

// TestDecodeCommandLimits checks the bounds at their edges.
func TestDecodeCommandLimits(t *testing.T) {
	many := Command{Mutations: make([]Mutation, maxMutations)}
	for i := range many.Mutations {
		many.Mutations[i] = del("k")
	}
	if _, err := DecodeCommand(AppendCommand(nil, &many)); err != nil {
		t.Errorf("DecodeCommand(%d mutations) = %v; want nil", maxMutations, err)
	}
	many.Mutations = append(many.Mutations, del("k"))
	if _, err := DecodeCommand(AppendCommand(nil, &many)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("DecodeCommand(%d mutations) = %v; want ErrInvalidCommand", maxMutations+1, err)
	}
	long := at(1, put(strings.Repeat("k", maxKeyBytes+1), ""))
	if _, err := DecodeCommand(AppendCommand(nil, &long)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("DecodeCommand(key of %d bytes) = %v; want ErrInvalidCommand", maxKeyBytes+1, err)
	}
	big := at(1, put("k", strings.Repeat("v", maxValueBytes+1)))
	if _, err := DecodeCommand(AppendCommand(nil, &big)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("DecodeCommand(value of %d bytes) = %v; want ErrInvalidCommand", maxValueBytes+1, err)
	}
}

// FuzzDecodeCommand checks that DecodeCommand never panics, that it
// rejects only with ErrInvalidCommand, and that what it accepts is
// canonical: AppendCommand gives back the input bytes.
func FuzzDecodeCommand(f *testing.F) {
	for _, tt := range commandCases {
		if len(tt.cmd.Mutations) > 0 && len(tt.cmd.Mutations[0].Key) > 100 {
			continue
		}
		f.Add(AppendCommand(nil, &tt.cmd))
	}
	for _, tt := range badCommands {
		b, _ := hex.DecodeString(tt.input)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("DecodeCommand(%x) = %v; want ErrInvalidCommand", b, err)
			}
			return
		}
		enc := AppendCommand(nil, &cmd)
		if !bytes.Equal(enc, b) {
			t.Fatalf("AppendCommand(DecodeCommand(%x)) = %x", b, enc)
		}
		again, err := DecodeCommand(enc)
		if err != nil || !equalCommands(&again, &cmd) {
			t.Fatalf("DecodeCommand(AppendCommand(%+v)) = %+v, %v", cmd, again, err)
		}
	})
}

func TestEncodedSize(t *testing.T) {
	for _, tt := range commandCases {
		if got, want := encodedSize(&tt.cmd), len(AppendCommand(nil, &tt.cmd)); got != want {
			t.Errorf("encodedSize(%s) = %d; want %d", tt.name, got, want)
		}
	}
}
