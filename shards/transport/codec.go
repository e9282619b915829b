package transport

// A compact binary encoding of hashicorp/raft's RPC messages, written by hand
// so the hot path (AppendEntries and its response) needs no reflection. The
// append functions add one message's payload to a byte slice; the decode
// functions read one payload back. Framing (the RPC type, the payload length)
// belongs to the caller.
//
// Every payload starts with the format version byte, codecVersion (1); a
// decoder rejects any other value. The fields follow in the order of the
// tables below, with nothing between them and nothing after the last:
//
//	uvarint  binary.AppendUvarint, 1 to 10 bytes
//	varint   binary.AppendVarint (zigzag), for the signed ProtocolVersion and AppendedAt
//	bool     one byte, 0 or 1; any other value is rejected
//	byte     one byte
//	bytes    uvarint length, then that many bytes; nil and empty both decode to nil
//
// RPCHeader, written where a table says "header":
//
//	varint   ProtocolVersion
//	bytes    ID
//	bytes    Addr
//
// Log, one per entry of AppendEntriesRequest:
//
//	uvarint  Index
//	uvarint  Term
//	byte     Type
//	bytes    Data
//	bytes    Extensions
//	varint   AppendedAt as UnixNano; the zero time.Time is 0, and 0 decodes to
//	         the zero time.Time (so the Unix epoch itself also decodes to zero).
//	         Times outside the years 1678 to 2262 do not fit and are not kept.
//
// AppendEntriesRequest:
//
//	byte     version (1)
//	header
//	uvarint  Term
//	bytes    Leader (deprecated)
//	uvarint  PrevLogEntry
//	uvarint  PrevLogTerm
//	uvarint  number of entries, then each entry as a Log (a nil *Log is
//	         written as a zero Log)
//	uvarint  LeaderCommitIndex
//
// AppendEntriesResponse:
//
//	byte     version (1)
//	header
//	uvarint  Term
//	uvarint  LastLog
//	bool     Success
//	bool     NoRetryBackoff
//
// RequestVoteRequest:
//
//	byte     version (1)
//	header
//	uvarint  Term
//	bytes    Candidate (deprecated)
//	uvarint  LastLogIndex
//	uvarint  LastLogTerm
//	bool     LeadershipTransfer
//
// RequestVoteResponse:
//
//	byte     version (1)
//	header
//	uvarint  Term
//	bytes    Peers (deprecated)
//	bool     Granted
//
// RequestPreVoteRequest:
//
//	byte     version (1)
//	header
//	uvarint  Term
//	uvarint  LastLogIndex
//	uvarint  LastLogTerm
//
// RequestPreVoteResponse:
//
//	byte     version (1)
//	header
//	uvarint  Term
//	bool     Granted
//
// TimeoutNowRequest and TimeoutNowResponse:
//
//	byte     version (1)
//	header
//
// Decoding allocates only for AppendEntriesRequest's entries: one array of
// Logs and one of pointers into it, sized after checking that the payload is
// long enough to hold that many entries, and one buffer per entry for its
// Data and Extensions. Every other byte field (the header's ID and Addr, the
// deprecated fields) is a sub-slice of the payload, capped so that appending
// to one cannot overwrite the next; the caller must not reuse the payload
// buffer while the message is in use.
//
// Why copy the entries' bytes: hashicorp/raft keeps the entries it stores
// (raftlog.Cache serves recent ones from memory), and an entry that aliased
// its payload would keep the whole payload alive, every other entry of the
// append with it, as long as it stays cached: a cache bounded in bytes would
// then not bound memory (issue 9). The copy is one allocation and a memmove
// per entry, small beside the entry's fsync and apply.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// codecVersion is the format version byte that opens every payload.
const codecVersion = 1

// minLogSize is the fewest bytes one encoded Log takes: one each for Index,
// Term, Type, the two lengths and AppendedAt. A decoder refuses an entry count
// the remaining bytes cannot hold before allocating anything for it.
const minLogSize = 6

// errMalformed is wrapped by every decode error: the payload is truncated,
// has trailing bytes, has an unknown format version, or holds a value that
// cannot be right (an oversized length or count, a bool other than 0 or 1).
var errMalformed = errors.New("transport: malformed message")

// appendAppendEntriesRequest appends the encoding of m to b and returns the
// extended slice.
func appendAppendEntriesRequest(b []byte, m *raft.AppendEntriesRequest) []byte {
	b = appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
	b = binary.AppendUvarint(b, m.Term)
	b = appendLenBytes(b, m.Leader)
	b = binary.AppendUvarint(b, m.PrevLogEntry)
	b = binary.AppendUvarint(b, m.PrevLogTerm)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, l := range m.Entries {
		b = appendLog(b, l)
	}
	return binary.AppendUvarint(b, m.LeaderCommitIndex)
}

// decodeAppendEntriesRequest decodes m from b, which is exactly one payload.
// It overwrites all of m.
func decodeAppendEntriesRequest(b []byte, m *raft.AppendEntriesRequest) error {
	*m = raft.AppendEntriesRequest{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	m.Term = r.uvarint("Term")
	m.Leader = r.bytes("Leader")
	m.PrevLogEntry = r.uvarint("PrevLogEntry")
	m.PrevLogTerm = r.uvarint("PrevLogTerm")
	m.Entries = r.entries()
	m.LeaderCommitIndex = r.uvarint("LeaderCommitIndex")
	return r.finish("AppendEntriesRequest")
}

// appendAppendEntriesResponse appends the encoding of m to b and returns the
// extended slice.
func appendAppendEntriesResponse(b []byte, m *raft.AppendEntriesResponse) []byte {
	b = appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
	b = binary.AppendUvarint(b, m.Term)
	b = binary.AppendUvarint(b, m.LastLog)
	b = appendBool(b, m.Success)
	return appendBool(b, m.NoRetryBackoff)
}

// decodeAppendEntriesResponse decodes m from b, which is exactly one payload.
// It overwrites all of m.
func decodeAppendEntriesResponse(b []byte, m *raft.AppendEntriesResponse) error {
	*m = raft.AppendEntriesResponse{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	m.Term = r.uvarint("Term")
	m.LastLog = r.uvarint("LastLog")
	m.Success = r.bool("Success")
	m.NoRetryBackoff = r.bool("NoRetryBackoff")
	return r.finish("AppendEntriesResponse")
}

// appendRequestVoteRequest appends the encoding of m to b and returns the
// extended slice.
func appendRequestVoteRequest(b []byte, m *raft.RequestVoteRequest) []byte {
	b = appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
	b = binary.AppendUvarint(b, m.Term)
	b = appendLenBytes(b, m.Candidate)
	b = binary.AppendUvarint(b, m.LastLogIndex)
	b = binary.AppendUvarint(b, m.LastLogTerm)
	return appendBool(b, m.LeadershipTransfer)
}

// decodeRequestVoteRequest decodes m from b, which is exactly one payload. It
// overwrites all of m.
func decodeRequestVoteRequest(b []byte, m *raft.RequestVoteRequest) error {
	*m = raft.RequestVoteRequest{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	m.Term = r.uvarint("Term")
	m.Candidate = r.bytes("Candidate")
	m.LastLogIndex = r.uvarint("LastLogIndex")
	m.LastLogTerm = r.uvarint("LastLogTerm")
	m.LeadershipTransfer = r.bool("LeadershipTransfer")
	return r.finish("RequestVoteRequest")
}

// appendRequestVoteResponse appends the encoding of m to b and returns the
// extended slice.
func appendRequestVoteResponse(b []byte, m *raft.RequestVoteResponse) []byte {
	b = appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
	b = binary.AppendUvarint(b, m.Term)
	b = appendLenBytes(b, m.Peers)
	return appendBool(b, m.Granted)
}

// decodeRequestVoteResponse decodes m from b, which is exactly one payload.
// It overwrites all of m.
func decodeRequestVoteResponse(b []byte, m *raft.RequestVoteResponse) error {
	*m = raft.RequestVoteResponse{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	m.Term = r.uvarint("Term")
	m.Peers = r.bytes("Peers")
	m.Granted = r.bool("Granted")
	return r.finish("RequestVoteResponse")
}

// appendRequestPreVoteRequest appends the encoding of m to b and returns the
// extended slice.
func appendRequestPreVoteRequest(b []byte, m *raft.RequestPreVoteRequest) []byte {
	b = appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
	b = binary.AppendUvarint(b, m.Term)
	b = binary.AppendUvarint(b, m.LastLogIndex)
	return binary.AppendUvarint(b, m.LastLogTerm)
}

// decodeRequestPreVoteRequest decodes m from b, which is exactly one payload.
// It overwrites all of m.
func decodeRequestPreVoteRequest(b []byte, m *raft.RequestPreVoteRequest) error {
	*m = raft.RequestPreVoteRequest{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	m.Term = r.uvarint("Term")
	m.LastLogIndex = r.uvarint("LastLogIndex")
	m.LastLogTerm = r.uvarint("LastLogTerm")
	return r.finish("RequestPreVoteRequest")
}

// appendRequestPreVoteResponse appends the encoding of m to b and returns the
// extended slice.
func appendRequestPreVoteResponse(b []byte, m *raft.RequestPreVoteResponse) []byte {
	b = appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
	b = binary.AppendUvarint(b, m.Term)
	return appendBool(b, m.Granted)
}

// decodeRequestPreVoteResponse decodes m from b, which is exactly one
// payload. It overwrites all of m.
func decodeRequestPreVoteResponse(b []byte, m *raft.RequestPreVoteResponse) error {
	*m = raft.RequestPreVoteResponse{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	m.Term = r.uvarint("Term")
	m.Granted = r.bool("Granted")
	return r.finish("RequestPreVoteResponse")
}

// appendTimeoutNowRequest appends the encoding of m to b and returns the
// extended slice.
func appendTimeoutNowRequest(b []byte, m *raft.TimeoutNowRequest) []byte {
	return appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
}

// decodeTimeoutNowRequest decodes m from b, which is exactly one payload. It
// overwrites all of m.
func decodeTimeoutNowRequest(b []byte, m *raft.TimeoutNowRequest) error {
	*m = raft.TimeoutNowRequest{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	return r.finish("TimeoutNowRequest")
}

// appendTimeoutNowResponse appends the encoding of m to b and returns the
// extended slice.
func appendTimeoutNowResponse(b []byte, m *raft.TimeoutNowResponse) []byte {
	return appendRPCHeader(append(b, codecVersion), &m.RPCHeader)
}

// decodeTimeoutNowResponse decodes m from b, which is exactly one payload. It
// overwrites all of m.
func decodeTimeoutNowResponse(b []byte, m *raft.TimeoutNowResponse) error {
	*m = raft.TimeoutNowResponse{}
	r := openPayload(b)
	r.header(&m.RPCHeader)
	return r.finish("TimeoutNowResponse")
}

// appendRPCHeader appends the header fields every message starts with.
func appendRPCHeader(b []byte, h *raft.RPCHeader) []byte {
	b = binary.AppendVarint(b, int64(h.ProtocolVersion))
	b = appendLenBytes(b, h.ID)
	return appendLenBytes(b, h.Addr)
}

// appendLog appends one entry of an AppendEntriesRequest. A nil entry, which
// raft never sends, is written as a zero Log rather than panicking.
func appendLog(b []byte, l *raft.Log) []byte {
	if l == nil {
		l = &raft.Log{}
	}
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = appendLenBytes(b, l.Data)
	b = appendLenBytes(b, l.Extensions)
	var nanos int64 // the zero time.Time is 0; its UnixNano is not
	if !l.AppendedAt.IsZero() {
		nanos = l.AppendedAt.UnixNano()
	}
	return binary.AppendVarint(b, nanos)
}

// appendLenBytes appends p as its uvarint length followed by its bytes.
func appendLenBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// appendBool appends v as one byte, 0 or 1.
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// msgReader reads the fields of one payload in order. The first problem it
// meets is kept in err; every later read then returns a zero value, so a
// decoder reads all its fields unconditionally and checks once, in finish.
type msgReader struct {
	b   []byte // the bytes not read yet
	err error  // the first problem, without errMalformed (finish adds it)
}

// openPayload starts reading b, checking the format version byte.
func openPayload(b []byte) msgReader {
	r := msgReader{b: b}
	switch {
	case len(b) == 0:
		r.err = errors.New("empty payload")
	case b[0] != codecVersion:
		r.err = fmt.Errorf("unknown format version %d", b[0])
	default:
		r.b = b[1:]
	}
	return r
}

// fail records the first problem, naming the field it was met in.
func (r *msgReader) fail(field, problem string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %s", field, problem)
	}
}

// finish reports the first problem met, or trailing bytes, as an error
// wrapping errMalformed and naming the message.
func (r *msgReader) finish(msg string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("%w: %s: %w", errMalformed, msg, r.err)
	}
	return nil
}

// uvarint reads an unsigned varint.
func (r *msgReader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.varintFailed(field, n)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a signed (zigzag) varint.
func (r *msgReader) varint(field string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.varintFailed(field, n)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varintFailed records why binary.Uvarint or binary.Varint returned n <= 0.
func (r *msgReader) varintFailed(field string, n int) {
	if n == 0 {
		r.fail(field, "truncated")
	} else {
		r.fail(field, "varint overflows 64 bits")
	}
}

// u8 reads one byte.
func (r *msgReader) u8(field string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(field, "truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// bool reads one byte that must be 0 or 1.
func (r *msgReader) bool(field string) bool {
	switch v := r.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail(field, fmt.Sprintf("bool byte %d", v))
		return false
	}
}

// bytes reads a length-prefixed byte string as a sub-slice of the payload,
// capped at its own length. Empty reads as nil.
func (r *msgReader) bytes(field string) []byte {
	n := r.uvarint(field)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(field, fmt.Sprintf("length %d exceeds the %d bytes left", n, len(r.b)))
		return nil
	}
	if n == 0 {
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// header reads the RPCHeader fields.
func (r *msgReader) header(h *raft.RPCHeader) {
	v := r.varint("ProtocolVersion")
	if int64(int(v)) != v { // only on 32-bit platforms
		r.fail("ProtocolVersion", fmt.Sprintf("%d overflows int", v))
	}
	h.ProtocolVersion = raft.ProtocolVersion(v)
	h.ID = r.bytes("ID")
	h.Addr = r.bytes("Addr")
}

// entries reads AppendEntriesRequest's entry count and entries. It allocates
// two slices, one of Logs and one of pointers into it, rather than one Log per
// entry, and only once the count has been checked against the bytes left;
// then one buffer per entry that holds its Data and Extensions, which own
// their memory instead of aliasing the payload (see the package comment).
func (r *msgReader) entries() []*raft.Log {
	n := r.uvarint("Entries")
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b))/minLogSize {
		r.fail("Entries", fmt.Sprintf("count %d exceeds what the %d bytes left can hold", n, len(r.b)))
		return nil
	}
	logs := make([]raft.Log, n)
	ptrs := make([]*raft.Log, n)
	for i := range logs {
		l := &logs[i]
		l.Index = r.uvarint("Index")
		l.Term = r.uvarint("Term")
		l.Type = raft.LogType(r.u8("Type"))
		l.Data, l.Extensions = ownBytes(r.bytes("Data"), r.bytes("Extensions"))
		if nanos := r.varint("AppendedAt"); nanos != 0 {
			l.AppendedAt = time.Unix(0, nanos)
		}
		if r.err != nil {
			r.err = fmt.Errorf("entry %d of %d: %w", i, n, r.err)
			return nil
		}
		ptrs[i] = l
	}
	return ptrs
}

// ownBytes copies data and ext, sub-slices of a payload, into one new
// buffer and returns the copies, each capped at its length; empty stays nil.
func ownBytes(data, ext []byte) ([]byte, []byte) {
	if len(data)+len(ext) == 0 {
		return nil, nil
	}
	buf := make([]byte, len(data)+len(ext))
	n := copy(buf, data)
	copy(buf[n:], ext)
	var d, e []byte
	if len(data) > 0 {
		d = buf[:n:n]
	}
	if len(ext) > 0 {
		e = buf[n:]
	}
	return d, e
}
