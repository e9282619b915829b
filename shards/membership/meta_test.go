package membership

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func validMeta() Meta {
	return Meta{
		NodeID:            "n1",
		APIURL:            "http://127.0.0.1:8080",
		RaftAddr:          "127.0.0.1:7080",
		Zone:              "eu-west-1a",
		Build:             "v0.3.0",
		MemoryUsedBytes:   123 << 20,
		MemoryBudgetBytes: 1 << 30,
		Draining:          true,
	}
}

// largestMeta has every field at its bound.
func largestMeta() Meta {
	url := "https://" + strings.Repeat("a", apiURLSizeMax-len("https://")-len(":65535")) + ":65535"
	raft := strings.Repeat("r", raftAddrSizeMax-len(":65535")) + ":65535"
	return Meta{
		NodeID:            strings.Repeat("i", idSizeMax),
		APIURL:            url,
		RaftAddr:          raft,
		Zone:              strings.Repeat("z", zoneSizeMax),
		Build:             strings.Repeat("b", buildSizeMax),
		MemoryUsedBytes:   ^uint64(0),
		MemoryBudgetBytes: ^uint64(0),
		Draining:          true,
		Leaving:           true,
		Bootstrapped:      true,
		Expecting:         true,
	}
}

// rawMeta encodes fields without validating them: the five strings, then
// the three uvarints.
func rawMeta(version byte, strs [5]string, used, budget, flags uint64) []byte {
	b := []byte{version}
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, used)
	b = binary.AppendUvarint(b, budget)
	return binary.AppendUvarint(b, flags)
}

func validStrs() [5]string {
	m := validMeta()
	return [5]string{m.NodeID, m.APIURL, m.RaftAddr, m.Zone, m.Build}
}

func with(i int, s string) [5]string {
	strs := validStrs()
	strs[i] = s
	return strs
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		validMeta(),
		largestMeta(),
		{NodeID: "a", APIURL: "https://[::1]:1/", RaftAddr: "[2001:db8::1]:7080"},
		{NodeID: "node-1.eu_2", APIURL: "http://wisp-1.example.com:8080", RaftAddr: "wisp-1.example.com:7080", Leaving: true},
		{NodeID: "b", APIURL: "http://10.0.0.1:8080", RaftAddr: "10.0.0.1:7080", Bootstrapped: true},
		{NodeID: "c", APIURL: "http://10.0.0.1:8080", RaftAddr: "10.0.0.1:7080", Expecting: true},
	} {
		b, err := encodeMeta(&m)
		if err != nil {
			t.Fatalf("encodeMeta(%+v): %v", m, err)
		}
		if len(b) > metaSizeMax || len(b) > memberlist.MetaMaxSize {
			t.Errorf("encodeMeta(%q) is %d bytes; want at most %d", m.NodeID, len(b), metaSizeMax)
		}
		got, err := decodeMeta(b)
		if err != nil {
			t.Fatalf("decodeMeta(encodeMeta(%+v)): %v", m, err)
		}
		if got != m {
			t.Errorf("decodeMeta(encodeMeta(m)) = %+v; want %+v", got, m)
		}
	}
	big := largestMeta()
	if b, _ := encodeMeta(&big); len(b) != metaSizeMax {
		t.Errorf("largest meta encodes to %d bytes; metaSizeMax is %d", len(b), metaSizeMax)
	}
}

func TestMetaValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Meta)
		ok   bool
	}{
		{"valid", func(*Meta) {}, true},
		{"no zone, build or memory", func(m *Meta) { m.Zone, m.Build, m.MemoryUsedBytes, m.MemoryBudgetBytes = "", "", 0, 0 }, true},
		{"https with slash", func(m *Meta) { m.APIURL = "https://h.example:443/" }, true},
		{"ipv6 raft", func(m *Meta) { m.RaftAddr = "[::1]:7080" }, true},
		{"build (devel)", func(m *Meta) { m.Build = "(devel)" }, true},
		{"empty id", func(m *Meta) { m.NodeID = "" }, false},
		{"id too long", func(m *Meta) { m.NodeID = strings.Repeat("a", 65) }, false},
		{"id with space", func(m *Meta) { m.NodeID = "n 1" }, false},
		{"id with slash", func(m *Meta) { m.NodeID = "../n1" }, false},
		{"id non-ascii", func(m *Meta) { m.NodeID = "nö" }, false},
		{"url empty", func(m *Meta) { m.APIURL = "" }, false},
		{"url ftp", func(m *Meta) { m.APIURL = "ftp://h:1" }, false},
		{"url no port", func(m *Meta) { m.APIURL = "http://h" }, false},
		{"url port 0", func(m *Meta) { m.APIURL = "http://h:0" }, false},
		{"url port 65536", func(m *Meta) { m.APIURL = "http://h:65536" }, false},
		{"url path", func(m *Meta) { m.APIURL = "http://h:1/api" }, false},
		{"url query", func(m *Meta) { m.APIURL = "http://h:1?x" }, false},
		{"url user", func(m *Meta) { m.APIURL = "http://u:p@h:1" }, false},
		{"url fragment", func(m *Meta) { m.APIURL = "http://h:1#f" }, false},
		{"url control byte", func(m *Meta) { m.APIURL = "http://h\n:1" }, false},
		{"url too long", func(m *Meta) { m.APIURL = "http://" + strings.Repeat("h", 125) + ":1" }, false},
		{"url ipv6 zone", func(m *Meta) { m.APIURL = "http://[fe80::1%25eth0]:1" }, false},
		{"raft empty", func(m *Meta) { m.RaftAddr = "" }, false},
		{"raft no port", func(m *Meta) { m.RaftAddr = "h" }, false},
		{"raft empty host", func(m *Meta) { m.RaftAddr = ":7080" }, false},
		{"raft port +1", func(m *Meta) { m.RaftAddr = "h:+1" }, false},
		{"raft host starts with dash", func(m *Meta) { m.RaftAddr = "-h:1" }, false},
		{"raft bad ipv6", func(m *Meta) { m.RaftAddr = "[::g]:1" }, false},
		{"zone with space", func(m *Meta) { m.Zone = "eu west" }, false},
		{"zone too long", func(m *Meta) { m.Zone = strings.Repeat("z", 65) }, false},
		{"build with space", func(m *Meta) { m.Build = "v1 2" }, false},
		{"build too long", func(m *Meta) { m.Build = strings.Repeat("b", 65) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMeta()
			tt.edit(&m)
			err := m.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v; want ok %v", m, err, tt.ok)
			}
			if _, encErr := encodeMeta(&m); (encErr == nil) != tt.ok {
				t.Errorf("encodeMeta = %v; want ok %v", encErr, tt.ok)
			}
		})
	}
}

// decodeCases are hand-made encodings; they also seed FuzzDecodeMeta.
var decodeCases = []struct {
	name string
	b    []byte
	ok   bool
}{
	{"valid", rawMeta(1, validStrs(), 1, 2, 1), true},
	{"unknown flag bits ignored", rawMeta(1, validStrs(), 1, 2, 1<<40|flagLeaving), true},
	{"empty", nil, false},
	{"version 0", rawMeta(0, validStrs(), 1, 2, 0), false},
	{"version 2", rawMeta(2, validStrs(), 1, 2, 0), false},
	{"only version", []byte{1}, false},
	{"truncated in a string", rawMeta(1, validStrs(), 1, 2, 0)[:8], false},
	{"truncated flags", rawMeta(1, validStrs(), 1, 2, 300)[:len(rawMeta(1, validStrs(), 1, 2, 300))-1], false},
	{"trailing byte", append(rawMeta(1, validStrs(), 1, 2, 0), 0), false},
	{"id length over bound", rawMeta(1, with(0, strings.Repeat("a", 65)), 0, 0, 0), false},
	{"id length past end", append([]byte{1, 100}, "n1"...), false},
	{"id length huge", append([]byte{1}, binary.AppendUvarint(nil, 1<<62)...), false},
	{"varint overflow", append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...), false},
	{"empty id", rawMeta(1, with(0, ""), 0, 0, 0), false},
	{"bad id", rawMeta(1, with(0, "n\x001"), 0, 0, 0), false},
	{"bad url", rawMeta(1, with(1, "gopher://h:1"), 0, 0, 0), false},
	{"bad raft addr", rawMeta(1, with(2, "h:0"), 0, 0, 0), false},
	{"bad zone", rawMeta(1, with(3, "a/b"), 0, 0, 0), false},
	{"bad build", rawMeta(1, with(4, "v1\n"), 0, 0, 0), false},
	{"url length over bound", rawMeta(1, with(1, "http://"+strings.Repeat("h", 200)+":1"), 0, 0, 0), false},
	{"oversized", append(rawMeta(1, validStrs(), 0, 0, 0), make([]byte, memberlist.MetaMaxSize)...), false},
}

func TestDecodeMeta(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeMeta(tt.b)
			if (err == nil) != tt.ok {
				t.Fatalf("decodeMeta(%q) = %+v, %v; want ok %v", tt.b, m, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformedMeta) {
				t.Errorf("decodeMeta(%q) error %v does not wrap ErrMalformedMeta", tt.b, err)
			}
			if err != nil && m != (Meta{}) {
				t.Errorf("decodeMeta(%q) = %+v with an error; want the zero Meta", tt.b, m)
			}
		})
	}
}

// FuzzDecodeMeta: decoding never panics, and whatever decodes is valid,
// re-encodes within the size bound and decodes again to the same Meta.
func FuzzDecodeMeta(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add(tt.b)
	}
	for _, m := range []Meta{validMeta(), largestMeta()} {
		b, _ := encodeMeta(&m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedMeta) {
				t.Fatalf("decodeMeta error %v does not wrap ErrMalformedMeta", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decodeMeta returned %+v, which does not validate: %v", m, err)
		}
		b2, err := encodeMeta(&m)
		if err != nil {
			t.Fatalf("encodeMeta(decodeMeta(b)): %v", err)
		}
		if len(b2) > metaSizeMax {
			t.Fatalf("re-encoded to %d bytes, more than %d", len(b2), metaSizeMax)
		}
		m2, err := decodeMeta(b2)
		if err != nil || m2 != m {
			t.Fatalf("decodeMeta(encodeMeta(m)) = %+v, %v; want %+v", m2, err, m)
		}
	})
}
