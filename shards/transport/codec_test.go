package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// codecHeader is a typical RPCHeader.
var codecHeader = raft.RPCHeader{
	ProtocolVersion: raft.ProtocolVersionMax,
	ID:              []byte("node-1"),
	Addr:            []byte("10.0.0.1:7000"),
}

// codecMaxHeader has the largest values the fields can hold.
var codecMaxHeader = raft.RPCHeader{
	ProtocolVersion: raft.ProtocolVersion(int(^uint(0) >> 1)),
	ID:              bytes.Repeat([]byte{0xff}, 300),
	Addr:            []byte("[fe80::1%eth0]:65535"),
}

// codecEntries returns n entries of size bytes of data each, starting at
// index first.
func codecEntries(first uint64, n, size int) []*raft.Log {
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	logs := make([]*raft.Log, n)
	for i := range logs {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i + j)
		}
		logs[i] = &raft.Log{
			Index:      first + uint64(i),
			Term:       7,
			Type:       raft.LogCommand,
			Data:       data,
			AppendedAt: at.Add(time.Duration(i) * time.Microsecond),
		}
	}
	return logs
}

// codecBenchRequest is the request BenchmarkAppendEntriesCodec encodes: a
// typical replication batch of 4 entries of 256 bytes.
func codecBenchRequest() *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader:         codecHeader,
		Term:              7,
		PrevLogEntry:      1000,
		PrevLogTerm:       7,
		Entries:           codecEntries(1001, 4, 256),
		LeaderCommitIndex: 1000,
	}
}

// codecCases are messages that must round-trip. msg is a pointer to one of
// the raft RPC types codecAppend handles.
var codecCases = []struct {
	name string
	msg  any
}{
	{"AppendEntriesRequest/empty", &raft.AppendEntriesRequest{}},
	{"AppendEntriesRequest/empty non-nil slices", &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte{}, Addr: []byte{}}, Leader: []byte{}, Entries: []*raft.Log{},
	}},
	{"AppendEntriesRequest/heartbeat", &raft.AppendEntriesRequest{
		RPCHeader: codecHeader, Term: 7, PrevLogEntry: 1000, PrevLogTerm: 7, LeaderCommitIndex: 1000,
	}},
	{"AppendEntriesRequest/typical", codecBenchRequest()},
	{"AppendEntriesRequest/deprecated leader", &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: 0}, Term: 1, Leader: []byte("10.0.0.1:7000"),
		Entries: codecEntries(1, 1, 10),
	}},
	{"AppendEntriesRequest/many entries", &raft.AppendEntriesRequest{
		RPCHeader: codecHeader, Term: 9, PrevLogEntry: 1 << 20, PrevLogTerm: 8,
		Entries: codecEntries(1<<20+1, 1000, 3), LeaderCommitIndex: 1 << 20,
	}},
	{"AppendEntriesRequest/big data", &raft.AppendEntriesRequest{
		RPCHeader: codecHeader, Term: 3, Entries: codecEntries(5, 1, 1<<20),
	}},
	{"AppendEntriesRequest/all log types", &raft.AppendEntriesRequest{
		RPCHeader: codecHeader, Term: 2, Entries: []*raft.Log{
			{Index: 1, Term: 2, Type: raft.LogCommand, Data: []byte("set x 1")},
			{Index: 2, Term: 2, Type: raft.LogNoop},
			{Index: 3, Term: 2, Type: raft.LogAddPeerDeprecated, Data: []byte("peer")},
			{Index: 4, Term: 2, Type: raft.LogRemovePeerDeprecated, Data: []byte("peer")},
			{Index: 5, Term: 2, Type: raft.LogBarrier},
			{Index: 6, Term: 2, Type: raft.LogConfiguration, Data: []byte{0x81, 0xa7}},
			{Index: 7, Term: 2, Type: raft.LogType(255), Data: []byte("from the future")},
		},
	}},
	{"AppendEntriesRequest/nil entry", &raft.AppendEntriesRequest{ // raft never sends one; written as a zero Log
		Term: 1, Entries: []*raft.Log{{Index: 1, Term: 1}, nil, {Index: 3, Term: 1}},
	}},
	{"AppendEntriesRequest/extensions and times", &raft.AppendEntriesRequest{
		RPCHeader: codecHeader, Term: 4, Entries: []*raft.Log{
			{Index: 1, Term: 4, Data: []byte("a"), Extensions: []byte("chunk 1/3"), AppendedAt: time.Now()}, // monotonic reading
			{Index: 2, Term: 4, Extensions: []byte{0}, AppendedAt: time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)},
			{Index: 3, Term: 4, AppendedAt: time.Date(2262, 4, 11, 0, 0, 0, 0, time.FixedZone("UTC+5", 5*3600))},
			{Index: 4, Term: 4, AppendedAt: time.Unix(0, 1)},
			{Index: 5, Term: 4, AppendedAt: time.Unix(0, -1)},
			{Index: 6, Term: 4}, // zero AppendedAt
		},
	}},
	{"AppendEntriesRequest/max values", &raft.AppendEntriesRequest{
		RPCHeader: codecMaxHeader, Term: ^uint64(0), Leader: []byte("l"), PrevLogEntry: ^uint64(0),
		PrevLogTerm: ^uint64(0), LeaderCommitIndex: ^uint64(0), Entries: []*raft.Log{
			{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogType(255), Data: []byte{0xff},
				Extensions: []byte{0xff}, AppendedAt: time.Unix(0, 1<<63-1)},
		},
	}},
	{"AppendEntriesRequest/negative protocol version", &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: -1},
	}},

	{"AppendEntriesResponse/empty", &raft.AppendEntriesResponse{}},
	{"AppendEntriesResponse/success", &raft.AppendEntriesResponse{RPCHeader: codecHeader, Term: 7, LastLog: 1004, Success: true}},
	{"AppendEntriesResponse/no retry backoff", &raft.AppendEntriesResponse{RPCHeader: codecHeader, Term: 7, LastLog: 10, NoRetryBackoff: true}},
	{"AppendEntriesResponse/max values", &raft.AppendEntriesResponse{
		RPCHeader: codecMaxHeader, Term: ^uint64(0), LastLog: ^uint64(0), Success: true, NoRetryBackoff: true,
	}},

	{"RequestVoteRequest/empty", &raft.RequestVoteRequest{}},
	{"RequestVoteRequest/typical", &raft.RequestVoteRequest{RPCHeader: codecHeader, Term: 8, LastLogIndex: 1004, LastLogTerm: 7}},
	{"RequestVoteRequest/leadership transfer", &raft.RequestVoteRequest{
		RPCHeader: codecHeader, Term: 8, LastLogIndex: 1004, LastLogTerm: 7, LeadershipTransfer: true,
	}},
	{"RequestVoteRequest/deprecated candidate", &raft.RequestVoteRequest{Term: 2, Candidate: []byte("10.0.0.2:7000")}},
	{"RequestVoteRequest/max values", &raft.RequestVoteRequest{
		RPCHeader: codecMaxHeader, Term: ^uint64(0), Candidate: []byte("c"), LastLogIndex: ^uint64(0),
		LastLogTerm: ^uint64(0), LeadershipTransfer: true,
	}},

	{"RequestVoteResponse/empty", &raft.RequestVoteResponse{}},
	{"RequestVoteResponse/granted", &raft.RequestVoteResponse{RPCHeader: codecHeader, Term: 8, Granted: true}},
	{"RequestVoteResponse/deprecated peers", &raft.RequestVoteResponse{Term: 8, Peers: []byte{0x92, 0xa1, 'a', 0xa1, 'b'}}},
	{"RequestVoteResponse/max values", &raft.RequestVoteResponse{
		RPCHeader: codecMaxHeader, Term: ^uint64(0), Peers: []byte("p"), Granted: true,
	}},

	{"RequestPreVoteRequest/empty", &raft.RequestPreVoteRequest{}},
	{"RequestPreVoteRequest/typical", &raft.RequestPreVoteRequest{RPCHeader: codecHeader, Term: 9, LastLogIndex: 1004, LastLogTerm: 7}},
	{"RequestPreVoteRequest/max values", &raft.RequestPreVoteRequest{
		RPCHeader: codecMaxHeader, Term: ^uint64(0), LastLogIndex: ^uint64(0), LastLogTerm: ^uint64(0),
	}},

	{"RequestPreVoteResponse/empty", &raft.RequestPreVoteResponse{}},
	{"RequestPreVoteResponse/granted", &raft.RequestPreVoteResponse{RPCHeader: codecHeader, Term: 9, Granted: true}},
	{"RequestPreVoteResponse/max values", &raft.RequestPreVoteResponse{RPCHeader: codecMaxHeader, Term: ^uint64(0), Granted: true}},

	{"TimeoutNowRequest/empty", &raft.TimeoutNowRequest{}},
	{"TimeoutNowRequest/typical", &raft.TimeoutNowRequest{RPCHeader: codecHeader}},
	{"TimeoutNowRequest/max values", &raft.TimeoutNowRequest{RPCHeader: codecMaxHeader}},

	{"TimeoutNowResponse/empty", &raft.TimeoutNowResponse{}},
	{"TimeoutNowResponse/typical", &raft.TimeoutNowResponse{RPCHeader: codecHeader}},
	{"TimeoutNowResponse/max values", &raft.TimeoutNowResponse{RPCHeader: codecMaxHeader}},
}

// codecAppend calls the append function for m's type.
func codecAppend(b []byte, m any) []byte {
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		return appendAppendEntriesRequest(b, m)
	case *raft.AppendEntriesResponse:
		return appendAppendEntriesResponse(b, m)
	case *raft.RequestVoteRequest:
		return appendRequestVoteRequest(b, m)
	case *raft.RequestVoteResponse:
		return appendRequestVoteResponse(b, m)
	case *raft.RequestPreVoteRequest:
		return appendRequestPreVoteRequest(b, m)
	case *raft.RequestPreVoteResponse:
		return appendRequestPreVoteResponse(b, m)
	case *raft.TimeoutNowRequest:
		return appendTimeoutNowRequest(b, m)
	case *raft.TimeoutNowResponse:
		return appendTimeoutNowResponse(b, m)
	}
	panic(fmt.Sprintf("no codec for %T", m))
}

// codecDecode calls the decode function for m's type.
func codecDecode(b []byte, m any) error {
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		return decodeAppendEntriesRequest(b, m)
	case *raft.AppendEntriesResponse:
		return decodeAppendEntriesResponse(b, m)
	case *raft.RequestVoteRequest:
		return decodeRequestVoteRequest(b, m)
	case *raft.RequestVoteResponse:
		return decodeRequestVoteResponse(b, m)
	case *raft.RequestPreVoteRequest:
		return decodeRequestPreVoteRequest(b, m)
	case *raft.RequestPreVoteResponse:
		return decodeRequestPreVoteResponse(b, m)
	case *raft.TimeoutNowRequest:
		return decodeTimeoutNowRequest(b, m)
	case *raft.TimeoutNowResponse:
		return decodeTimeoutNowResponse(b, m)
	}
	panic(fmt.Sprintf("no codec for %T", m))
}

// codecNew returns a new zero message of the same type as m.
func codecNew(m any) any { return reflect.New(reflect.TypeOf(m).Elem()).Interface() }

// checkCodecEqual fails t unless got carries the same message as want: the
// same fields, where nil and empty slices are the same and times are compared
// with time.Time.Equal.
func checkCodecEqual(t testing.TB, want, got any) {
	t.Helper()
	var wantTimes, gotTimes []time.Time
	w := canonical(reflect.ValueOf(want), &wantTimes).Interface()
	g := canonical(reflect.ValueOf(got), &gotTimes).Interface()
	if !reflect.DeepEqual(w, g) {
		t.Fatalf("decoded message differs:\n got  %s\n want %s", brief(g), brief(w))
	}
	for i := range wantTimes { // same length: the entries compared equal
		if !wantTimes[i].Equal(gotTimes[i]) {
			t.Fatalf("time %d = %v; want %v", i, gotTimes[i], wantTimes[i])
		}
	}
}

// canonical returns a deep copy of v where empty slices are nil, nil pointers
// point to zero values (the encoder writes a nil *raft.Log as a zero Log) and
// every time.Time is zero, its value appended to times instead.
func canonical(v reflect.Value, times *[]time.Time) reflect.Value {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		*times = append(*times, v.Interface().(time.Time))
		return reflect.Zero(v.Type())
	case v.Kind() == reflect.Pointer:
		c := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			c.Elem().Set(canonical(v.Elem(), times))
		} else {
			c.Elem().Set(canonical(c.Elem(), times))
		}
		return c
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(canonical(v.Index(i), times))
		}
		return c
	case v.Kind() == reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			c.Field(i).Set(canonical(v.Field(i), times))
		}
		return c
	}
	return v
}

// brief formats a message for a failure, eliding long byte slices.
func brief(m any) string {
	s := fmt.Sprintf("%+v", m)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			enc := codecAppend(nil, tc.msg)
			got := codecNew(tc.msg)
			if err := codecDecode(enc, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkCodecEqual(t, tc.msg, got)

			// Appending to a non-empty slice keeps what was there.
			prefixed := codecAppend([]byte("keep"), tc.msg)
			if !bytes.HasPrefix(prefixed, []byte("keep")) || !bytes.Equal(prefixed[4:], enc) {
				t.Fatalf("append to a non-empty slice changed the prefix or the encoding")
			}

			// Decoding into a used message overwrites every field.
			if err := codecDecode(codecAppend(nil, codecNew(tc.msg)), got); err != nil {
				t.Fatalf("decode zero message: %v", err)
			}
			checkCodecEqual(t, codecNew(tc.msg), got)
		})
	}
}

// TestCodecCoversAllFields fills every field of every message, recursively,
// with a non-zero value and checks it survives a round trip: a field raft
// adds in a later version fails here until the codec carries it.
func TestCodecCoversAllFields(t *testing.T) {
	for _, m := range []any{
		&raft.AppendEntriesRequest{}, &raft.AppendEntriesResponse{},
		&raft.RequestVoteRequest{}, &raft.RequestVoteResponse{},
		&raft.RequestPreVoteRequest{}, &raft.RequestPreVoteResponse{},
		&raft.TimeoutNowRequest{}, &raft.TimeoutNowResponse{},
	} {
		t.Run(reflect.TypeOf(m).Elem().Name(), func(t *testing.T) {
			n := 0
			fillNonZero(t, reflect.ValueOf(m).Elem(), &n)
			got := codecNew(m)
			if err := codecDecode(codecAppend(nil, m), got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkCodecEqual(t, m, got)
		})
	}
}

// fillNonZero sets every field reachable from v to a distinct non-zero value.
func fillNonZero(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Unix(1_700_000_000, int64(*n))))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			fillNonZero(t, v.Field(i), n)
		}
	case v.Kind() == reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillNonZero(t, v.Elem(), n)
	case v.Kind() == reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 3, 3))
		for i := range 3 {
			fillNonZero(t, v.Index(i), n)
		}
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.CanUint():
		v.SetUint(uint64(*n))
	case v.CanInt():
		v.SetInt(int64(*n))
	default:
		t.Fatalf("fillNonZero: unhandled %s", v.Type())
	}
}

func TestCodecTruncated(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			enc := codecAppend(nil, tc.msg)
			// Every proper prefix; for the few encodings over 16 KiB, every
			// prefix near either end and a sample in between, since each
			// decode of a long prefix costs as much as a whole message.
			step := 1
			if len(enc) > 16<<10 {
				step = 97
			}
			for i := 0; i < len(enc); i++ {
				if step > 1 && i > 4096 && i < len(enc)-4096 && i%step != 0 {
					continue
				}
				err := codecDecode(enc[:i], codecNew(tc.msg))
				if !errors.Is(err, errMalformed) {
					t.Fatalf("decode of the first %d of %d bytes: error = %v; want errMalformed", i, len(enc), err)
				}
			}
		})
	}
}

func TestCodecTrailingBytes(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, extra := range [][]byte{{0}, {1}, []byte("garbage")} {
				enc := append(codecAppend(nil, tc.msg), extra...)
				err := codecDecode(enc, codecNew(tc.msg))
				if !errors.Is(err, errMalformed) {
					t.Fatalf("decode with %d trailing bytes: error = %v; want errMalformed", len(extra), err)
				}
			}
		})
	}
}

func TestCodecUnknownVersion(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []byte{0, 2, 255} {
				enc := codecAppend(nil, tc.msg)
				enc[0] = v
				err := codecDecode(enc, codecNew(tc.msg))
				if !errors.Is(err, errMalformed) {
					t.Fatalf("decode with version %d: error = %v; want errMalformed", v, err)
				}
			}
		})
	}
}

// codecAERPrefix returns the start of an AppendEntriesRequest up to, not
// including, the entry count: version, empty header, Term, Leader,
// PrevLogEntry, PrevLogTerm.
func codecAERPrefix() []byte { return []byte{codecVersion, 0, 0, 0, 0, 0, 0, 0} }

func TestDecodeHostile(t *testing.T) {
	uv := binary.AppendUvarint
	for _, tc := range []struct {
		name string
		in   []byte
		msg  any
	}{
		{"empty payload", nil, &raft.AppendEntriesRequest{}},
		{"huge entry count", uv(codecAERPrefix(), 1<<40), &raft.AppendEntriesRequest{}},
		{"max entry count", uv(codecAERPrefix(), ^uint64(0)), &raft.AppendEntriesRequest{}},
		// Two entries need 12 bytes; 11 are left.
		{"entry count just over", append(uv(codecAERPrefix(), 2), make([]byte, 11)...), &raft.AppendEntriesRequest{}},
		{"huge ID length", uv([]byte{codecVersion, 0}, 1<<62), &raft.TimeoutNowRequest{}},
		{"ID length one over", []byte{codecVersion, 0, 3, 'a', 'b'}, &raft.TimeoutNowRequest{}},
		{"varint overflow", append([]byte{codecVersion}, bytes.Repeat([]byte{0xff}, 11)...), &raft.TimeoutNowRequest{}},
		{"bool 2", []byte{codecVersion, 0, 0, 0, 0, 2}, &raft.RequestPreVoteResponse{}},
		{"bool 255", []byte{codecVersion, 0, 0, 0, 0, 0, 0, 0, 255}, &raft.RequestVoteRequest{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := codecDecode(tc.in, tc.msg)
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error = %v; want errMalformed", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

// TestDecodeHugeCountDoesNotAllocate checks that an entry count the payload
// cannot hold is refused before anything is allocated for the entries: a
// 14-byte payload claiming 1<<40 entries, and one claiming 1000 entries with
// one byte fewer than 1000 minimal entries take. Only the error is
// allocated: a handful of small allocations formatting its message.
func TestDecodeHugeCountDoesNotAllocate(t *testing.T) {
	tiny := binary.AppendUvarint(codecAERPrefix(), 1<<40)
	if len(tiny) > 16 {
		t.Fatalf("payload is %d bytes; want a tiny one", len(tiny))
	}
	short := append(binary.AppendUvarint(codecAERPrefix(), 1000), make([]byte, 1000*minLogSize-1)...)
	for _, in := range [][]byte{tiny, short} {
		var m raft.AppendEntriesRequest
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 100
		allocs := testing.AllocsPerRun(runs, func() {
			if err := decodeAppendEntriesRequest(in, &m); !errors.Is(err, errMalformed) {
				t.Fatalf("error = %v; want errMalformed", err)
			}
		})
		runtime.ReadMemStats(&after)
		perRun := (after.TotalAlloc - before.TotalAlloc) / (runs + 1) // AllocsPerRun warms up once
		t.Logf("%d-byte payload: %.0f allocs, about %d bytes per decode (the error message)", len(in), allocs, perRun)
		// The counters are process-wide: goroutines left by other tests
		// may allocate meanwhile, so bound the bytes loosely. A decoder
		// that sized its entries by the claimed count would take
		// 1<<40 × 8 bytes (it could not) or ~100 KB for the short one.
		if perRun > 16<<10 {
			t.Fatalf("decode of a %d-byte payload allocated %.0f times, about %d bytes per run; want only the error",
				len(in), allocs, perRun)
		}
	}
}

// TestDecodeAllocs checks the hot path's allocation budget: a decoded
// AppendEntriesRequest costs two allocations plus one per entry (its own
// Data and Extensions), and the other messages none.
func TestDecodeAllocs(t *testing.T) {
	req := codecBenchRequest()
	enc := appendAppendEntriesRequest(nil, req)
	var m raft.AppendEntriesRequest
	want := float64(2 + len(req.Entries))
	if n := testing.AllocsPerRun(100, func() { _ = decodeAppendEntriesRequest(enc, &m) }); n != want {
		t.Errorf("decodeAppendEntriesRequest: %.0f allocs; want %.0f", n, want)
	}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = appendAppendEntriesRequest(buf[:0], req) }); n != 0 {
		t.Errorf("appendAppendEntriesRequest into a big enough buffer: %.0f allocs; want 0", n)
	}
	resp := appendAppendEntriesResponse(nil, &raft.AppendEntriesResponse{RPCHeader: codecHeader, Term: 7, LastLog: 1004, Success: true})
	var r raft.AppendEntriesResponse
	if n := testing.AllocsPerRun(100, func() { _ = decodeAppendEntriesResponse(resp, &r) }); n != 0 {
		t.Errorf("decodeAppendEntriesResponse: %.0f allocs; want 0", n)
	}
}

// TestCodecDecodedSlicesAreCapped checks that appending to one decoded byte
// field cannot overwrite the payload bytes after it.
func TestCodecDecodedSlicesAreCapped(t *testing.T) {
	enc := appendAppendEntriesRequest(nil, codecBenchRequest())
	var m raft.AppendEntriesRequest
	if err := decodeAppendEntriesRequest(enc, &m); err != nil {
		t.Fatal(err)
	}
	_ = append(m.Entries[0].Data, bytes.Repeat([]byte{0xee}, 64)...)
	_ = append(m.ID, bytes.Repeat([]byte{0xee}, 64)...)
	checkCodecEqual(t, codecBenchRequest(), &m)
}

// TestCodecEntriesOwnTheirBytes checks that decoded entries do not alias
// the payload: hashicorp/raft keeps entries cached after the payload is
// done with, and an entry must not keep the payload alive (issue 9).
func TestCodecEntriesOwnTheirBytes(t *testing.T) {
	req := codecBenchRequest()
	req.Entries[1].Extensions = []byte("ext")
	enc := appendAppendEntriesRequest(nil, req)
	var m raft.AppendEntriesRequest
	if err := decodeAppendEntriesRequest(enc, &m); err != nil {
		t.Fatal(err)
	}
	// The payload buffer, reused (the header's ID and Addr alias it).
	clear(enc)
	_ = append(m.Entries[1].Data, bytes.Repeat([]byte{0xee}, 64)...) // capped: cannot reach Extensions
	for i, l := range m.Entries {
		w := req.Entries[i]
		if !bytes.Equal(l.Data, w.Data) || !bytes.Equal(l.Extensions, w.Extensions) {
			t.Errorf("entry %d after the payload was cleared: Data %q, Extensions %q; want %q, %q", i, l.Data, l.Extensions, w.Data, w.Extensions)
		}
	}
}

// TestCodecMsgpackBaseline checks that the msgpack half of
// BenchmarkAppendEntriesCodec really round-trips the request, so the
// benchmark compares like with like.
func TestCodecMsgpackBaseline(t *testing.T) {
	req := codecBenchRequest()
	var got raft.AppendEntriesRequest
	msgpackRoundTrip(t, newMsgpackCodec(), req, &got)
	checkCodecEqual(t, req, &got)
}

// fuzzCodec checks that decoding any input does not panic, fails only with
// errMalformed, and that whatever decodes re-encodes to a payload that
// decodes to an equal message and re-encodes to the same bytes.
func fuzzCodec[T any](f *testing.F, enc func([]byte, *T) []byte, dec func([]byte, *T) error) {
	// Seeds over 4 KiB (many entries, big data) are left out: the fuzzer
	// minimizes every new interesting input, and on inputs that size it
	// spends the whole run doing so. The round-trip tests cover them.
	for _, tc := range codecCases {
		if m, ok := tc.msg.(*T); ok {
			if b := enc(nil, m); len(b) <= 4<<10 {
				f.Add(b)
			}
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var m T
		if err := dec(in, &m); err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		again := enc(nil, &m)
		var m2 T
		if err := dec(again, &m2); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		checkCodecEqual(t, &m, &m2)
		if third := enc(nil, &m2); !bytes.Equal(third, again) {
			t.Fatalf("re-encoding is not stable:\n %x\n %x", again, third)
		}
	})
}

func FuzzDecodeAppendEntriesRequest(f *testing.F) {
	fuzzCodec(f, appendAppendEntriesRequest, decodeAppendEntriesRequest)
}

func FuzzDecodeRequestVoteRequest(f *testing.F) {
	fuzzCodec(f, appendRequestVoteRequest, decodeRequestVoteRequest)
}

// msgpackCodec encodes and decodes as hashicorp/raft's NetworkTransport does
// with its default configuration: go-msgpack's MsgpackHandle, with
// TimeNotBuiltin set on the encoding side (MsgpackUseNewTimeFormat false).
type msgpackCodec struct {
	buf []byte
	enc *codec.Encoder
	dec *codec.Decoder
}

func newMsgpackCodec() *msgpackCodec {
	encHandle := &codec.MsgpackHandle{}
	encHandle.TimeNotBuiltin = true
	c := &msgpackCodec{}
	c.enc = codec.NewEncoderBytes(&c.buf, encHandle)
	c.dec = codec.NewDecoderBytes(nil, &codec.MsgpackHandle{})
	return c
}

// msgpackRoundTrip encodes req with c and decodes the result into out.
func msgpackRoundTrip(tb testing.TB, c *msgpackCodec, req, out *raft.AppendEntriesRequest) {
	c.buf = c.buf[:0]
	c.enc.ResetBytes(&c.buf)
	if err := c.enc.Encode(req); err != nil {
		tb.Fatal(err)
	}
	c.dec.ResetBytes(c.buf)
	if err := c.dec.Decode(out); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkAppendEntriesCodec compares one encode and one decode of a typical
// AppendEntries batch (4 entries of 256 bytes) in this package's format and
// in msgpack as hashicorp/raft sends it. Each decode is into a fresh message,
// as the transport does.
func BenchmarkAppendEntriesCodec(b *testing.B) {
	req := codecBenchRequest()
	b.Run("wisp", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendAppendEntriesRequest(buf[:0], req)
			var out raft.AppendEntriesRequest
			if err := decodeAppendEntriesRequest(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "wire-bytes")
	})
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		c := newMsgpackCodec()
		for b.Loop() {
			var out raft.AppendEntriesRequest
			msgpackRoundTrip(b, c, req, &out)
		}
		b.ReportMetric(float64(len(c.buf)), "wire-bytes")
	})
}
