package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// entryVersion is the first byte of every encoded entry. A new layout gets a
// new version; decoders keep reading the old ones.
const entryVersion = 1

// maxEntryBytes bounds an entry's Data and its Extensions, each. Commands are
// small (engine values are capped far below this); the bound keeps a corrupt
// length from asking for a huge allocation and keeps one entry well below
// bbolt's 2 GiB value limit.
const maxEntryBytes = 32 << 20

// flagAppendedAt marks an entry that carries AppendedAt. Other flag bits
// are reserved and must be zero.
const flagAppendedAt = 1 << 0

// entryTrailerBytes is the CRC-32C at the end of an entry.
const entryTrailerBytes = 4

// minEntryBytes is the shortest valid entry: version, type, flags, one-byte
// index, term and the two lengths, and the trailer.
const minEntryBytes = 3 + 4 + entryTrailerBytes

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt means a stored entry failed to decode: bad checksum, unknown
// version, or lengths that do not fit. Errors wrap it with the group and
// index.
var ErrCorrupt = errors.New("corrupt log entry")

// encodedSize returns an upper bound of the encoded size of l.
func encodedSize(l *raft.Log) int {
	n := 3 + 2*binary.MaxVarintLen64 + entryTrailerBytes
	if !l.AppendedAt.IsZero() {
		n += 2 * binary.MaxVarintLen64
	}
	n += binary.MaxVarintLen64 + len(l.Data)
	n += binary.MaxVarintLen64 + len(l.Extensions)
	return n
}

// appendEntry appends the encoding of l to dst:
//
//	version     u8 (entryVersion)
//	type        u8 (raft.LogType)
//	flags       u8 (flagAppendedAt)
//	index       uvarint
//	term        uvarint
//	appendedAt  varint unix seconds, uvarint nanoseconds (< 1e9); only with flagAppendedAt
//	data        uvarint length, bytes
//	extensions  uvarint length, bytes
//	crc         u32 little-endian, CRC-32C (Castagnoli) of everything before it
//
// AppendedAt keeps its instant but not its location or monotonic reading.
func appendEntry(dst []byte, l *raft.Log) []byte {
	start := len(dst)
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	dst = append(dst, entryVersion, byte(l.Type), flags)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	if flags&flagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeEntry decodes b into l. Data and Extensions are copied (into one
// allocation), so b may be reused: bbolt's memory is only valid inside its
// transaction. Empty Data or Extensions decode as nil. It never panics;
// every error wraps ErrCorrupt.
func decodeEntry(b []byte, l *raft.Log) error {
	if len(b) < minEntryBytes {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrCorrupt, len(b), minEntryBytes)
	}
	body, trailer := b[:len(b)-entryTrailerBytes], b[len(b)-entryTrailerBytes:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(trailer); got != want {
		return fmt.Errorf("%w: checksum %#08x, stored %#08x", ErrCorrupt, got, want)
	}
	return decodeBody(body, l)
}

// decodeBody decodes an entry without its checksum trailer.
func decodeBody(b []byte, l *raft.Log) error {
	d := decoder{b: b}
	if v := d.byte("version"); d.err == nil && v != entryVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, entryVersion)
	}
	typ := raft.LogType(d.byte("type"))
	flags := d.byte("flags")
	if d.err == nil && flags&^flagAppendedAt != 0 {
		return fmt.Errorf("%w: reserved flags %#02x set", ErrCorrupt, flags)
	}
	index := d.uvarint("index")
	term := d.uvarint("term")
	var appendedAt time.Time
	if flags&flagAppendedAt != 0 {
		sec := d.varint("appendedAt seconds")
		nsec := d.uvarint("appendedAt nanoseconds")
		if d.err == nil && nsec >= 1e9 {
			return fmt.Errorf("%w: appendedAt nanoseconds %d out of range", ErrCorrupt, nsec)
		}
		appendedAt = time.Unix(sec, int64(nsec))
	}
	dataLen := d.length("data length")
	dataAt := d.skip(dataLen)
	extLen := d.length("extensions length")
	extAt := d.skip(extLen)
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	*l = raft.Log{Index: index, Term: term, Type: typ, AppendedAt: appendedAt}
	if dataLen+extLen > 0 {
		buf := make([]byte, dataLen+extLen)
		copy(buf, b[dataAt:dataAt+dataLen])
		copy(buf[dataLen:], b[extAt:extAt+extLen])
		if dataLen > 0 {
			l.Data = buf[:dataLen:dataLen]
		}
		if extLen > 0 {
			l.Extensions = buf[dataLen:]
		}
	}
	return nil
}

// decoder reads fields off b; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	off int // bytes consumed so far, for skip
	err error
}

func (d *decoder) fail(field, what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrCorrupt, field, what)
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(field, "truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	d.off++
	return v
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(field, "bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	d.off += n
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(field, "bad varint")
		return 0
	}
	d.b = d.b[n:]
	d.off += n
	return v
}

// length reads a byte count (field names it) and checks it against maxEntryBytes and what is
// left of the input.
func (d *decoder) length(field string) int {
	v := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if v > maxEntryBytes || v > math.MaxInt32 {
		d.fail(field, fmt.Sprintf("length %d over the %d-byte bound", v, maxEntryBytes))
		return 0
	}
	if v > uint64(len(d.b)) {
		d.fail(field, fmt.Sprintf("length %d, only %d bytes left", v, len(d.b)))
		return 0
	}
	return int(v)
}

// skip consumes n bytes (already checked by length) and returns the offset
// they start at.
func (d *decoder) skip(n int) int {
	if d.err != nil {
		return 0
	}
	at := d.off
	d.b = d.b[n:]
	d.off += n
	return at
}
