package engine

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// Command encoding (see doc.go):
//
//	format version byte | varint NowUnixMs | [varint MaxMemoryBytes] |
//	uvarint mutation count | mutations
//
// MaxMemoryBytes is there, non-zero, iff the format version is 2; a command
// without one is encoded in format version 1, byte for byte as before the
// field existed. A mutation is op byte | flags byte | uvarint key length |
// key, then, in this order and only if its flag is set, uvarint value
// length | value, varint Delta, varint TTLMs, uvarint IfVersion. A flag is
// set iff the field is non-zero (non-empty), so every command has exactly
// one encoding.
const (
	commandFormatVersion1 = 1
	// commandFormatVersion2 adds MaxMemoryBytes.
	commandFormatVersion2 = 2
)

// lastOp is the highest op number Apply and DecodeCommand know.
const lastOp = OpSetMeta

const (
	flagIfAbsent = 1 << iota
	flagValue
	flagDelta
	flagTTL
	flagIfVersion

	knownFlags = flagIfAbsent | flagValue | flagDelta | flagTTL | flagIfVersion
	// minMutationBytes is the smallest encoded mutation: op, flags and a
	// zero key length. It bounds the count before DecodeCommand allocates.
	minMutationBytes = 3
)

// AppendCommand appends the encoding of cmd to dst and returns the extended
// buffer; it allocates at most once. It encodes any command, but
// DecodeCommand, like Apply, rejects more than 10,000 mutations, keys over
// 64 KiB and values over 64 MiB: check those before proposing.
func AppendCommand(dst []byte, cmd *Command) []byte {
	dst = slices.Grow(dst, encodedSize(cmd))
	if cmd.MaxMemoryBytes == 0 {
		dst = append(dst, commandFormatVersion1)
		dst = binary.AppendVarint(dst, cmd.NowUnixMs)
	} else {
		dst = append(dst, commandFormatVersion2)
		dst = binary.AppendVarint(dst, cmd.NowUnixMs)
		dst = binary.AppendVarint(dst, cmd.MaxMemoryBytes)
	}
	dst = binary.AppendUvarint(dst, uint64(len(cmd.Mutations)))
	for i := range cmd.Mutations {
		m := &cmd.Mutations[i]
		var flags byte
		if m.IfAbsent {
			flags |= flagIfAbsent
		}
		if len(m.Value) != 0 {
			flags |= flagValue
		}
		if m.Delta != 0 {
			flags |= flagDelta
		}
		if m.TTLMs != 0 {
			flags |= flagTTL
		}
		if m.IfVersion != 0 {
			flags |= flagIfVersion
		}
		dst = append(dst, byte(m.Op), flags)
		dst = binary.AppendUvarint(dst, uint64(len(m.Key)))
		dst = append(dst, m.Key...)
		if flags&flagValue != 0 {
			dst = binary.AppendUvarint(dst, uint64(len(m.Value)))
			dst = append(dst, m.Value...)
		}
		if flags&flagDelta != 0 {
			dst = binary.AppendVarint(dst, m.Delta)
		}
		if flags&flagTTL != 0 {
			dst = binary.AppendVarint(dst, m.TTLMs)
		}
		if flags&flagIfVersion != 0 {
			dst = binary.AppendUvarint(dst, m.IfVersion)
		}
	}
	return dst
}

// EncodedSize returns the exact length of AppendCommand's encoding of cmd,
// without encoding it.
func EncodedSize(cmd *Command) int { return encodedSize(cmd) }

// encodedSize returns the exact length of cmd's encoding.
func encodedSize(cmd *Command) int {
	n := 1 + varintLen(cmd.NowUnixMs) + uvarintLen(uint64(len(cmd.Mutations)))
	if cmd.MaxMemoryBytes != 0 {
		n += varintLen(cmd.MaxMemoryBytes)
	}
	for i := range cmd.Mutations {
		m := &cmd.Mutations[i]
		n += 2 + uvarintLen(uint64(len(m.Key))) + len(m.Key)
		if len(m.Value) != 0 {
			n += uvarintLen(uint64(len(m.Value))) + len(m.Value)
		}
		if m.Delta != 0 {
			n += varintLen(m.Delta)
		}
		if m.TTLMs != 0 {
			n += varintLen(m.TTLMs)
		}
		if m.IfVersion != 0 {
			n += uvarintLen(m.IfVersion)
		}
	}
	return n
}

// DecodeCommand decodes a command encoded by AppendCommand, in either
// format version. The mutations' Key and Value alias b. Every error wraps
// ErrInvalidCommand: an unknown format version, op or flag, a field beyond
// its limit, a non-canonical encoding (format version 2 with a zero
// MaxMemoryBytes included), a truncated input or trailing bytes. An empty
// key or value decodes as nil. Op-specific limits (a setting name's length,
// a missing TTLMs) are Apply's to check.
func DecodeCommand(b []byte) (Command, error) {
	cmd, err := decodeCommand(b)
	if err != nil {
		return Command{}, fmt.Errorf("engine: decode command: %w", err)
	}
	return cmd, nil
}

func decodeCommand(b []byte) (Command, error) {
	var cmd Command
	if len(b) == 0 {
		return Command{}, invalid("empty input")
	}
	if b[0] != commandFormatVersion1 && b[0] != commandFormatVersion2 {
		return Command{}, invalid("unknown format version %d", b[0])
	}
	d := decoder{b: b[1:]}
	cmd.NowUnixMs = d.varint("now")
	if b[0] == commandFormatVersion2 {
		// Zero would have been encoded in format version 1.
		cmd.MaxMemoryBytes = d.nonZeroVarint("max memory")
	}
	count := d.uvarint("mutation count")
	if d.err != nil {
		return Command{}, d.err
	}
	if count > maxMutations || count > uint64(len(d.b)/minMutationBytes) {
		return Command{}, invalid("mutation count %d exceeds %d or the input", count, min(maxMutations, len(d.b)/minMutationBytes))
	}
	if count > 0 {
		cmd.Mutations = make([]Mutation, count)
	}
	for i := range cmd.Mutations {
		if err := d.mutation(&cmd.Mutations[i]); err != nil {
			return Command{}, fmt.Errorf("mutation %d: %w", i, err)
		}
	}
	if len(d.b) != 0 {
		return Command{}, invalid("%d trailing bytes", len(d.b))
	}
	return cmd, nil
}

// invalid returns an error wrapping ErrInvalidCommand.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCommand, fmt.Sprintf(format, args...))
}

// decoder consumes b. After the first error, d.err is set and every method
// returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) mutation(m *Mutation) error {
	if len(d.b) < 2 {
		return invalid("truncated op")
	}
	m.Op = Op(d.b[0])
	flags := d.b[1]
	d.b = d.b[2:]
	if m.Op < OpPut || m.Op > lastOp {
		return invalid("unknown op %d", m.Op)
	}
	if flags&^knownFlags != 0 {
		return invalid("unknown flags %#x", flags)
	}
	m.IfAbsent = flags&flagIfAbsent != 0
	m.Key = d.bytes("key", maxKeyBytes, false)
	if flags&flagValue != 0 {
		m.Value = d.bytes("value", maxValueBytes, true)
	}
	if flags&flagDelta != 0 {
		m.Delta = d.nonZeroVarint("delta")
	}
	if flags&flagTTL != 0 {
		m.TTLMs = d.nonZeroVarint("ttl")
	}
	if flags&flagIfVersion != 0 {
		if m.IfVersion = d.uvarint("if-version"); m.IfVersion == 0 && d.err == nil {
			d.err = invalid("if-version: flagged but zero")
		}
	}
	return d.err
}

// uvarint reads a canonical (shortest) uvarint.
func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.err = invalid("%s: truncated or malformed varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a canonical zig-zag varint, as binary.AppendVarint writes.
func (d *decoder) varint(what string) int64 {
	u := d.uvarint(what)
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) nonZeroVarint(what string) int64 {
	v := d.varint(what)
	if v == 0 && d.err == nil {
		d.err = invalid("%s: flagged but zero", what)
	}
	return v
}

// bytes reads a length-prefixed field of at most limit bytes, aliasing d.b.
// An empty field is nil, and an error unless it may be flagged empty.
func (d *decoder) bytes(what string, limit int, nonEmpty bool) []byte {
	n := d.uvarint(what)
	switch {
	case d.err != nil:
		return nil
	case n > uint64(limit):
		d.err = invalid("%s length %d exceeds %d", what, n, limit)
		return nil
	case n > uint64(len(d.b)):
		d.err = invalid("%s length %d exceeds the %d bytes left", what, n, len(d.b))
		return nil
	case n == 0:
		if nonEmpty {
			d.err = invalid("%s: flagged but empty", what)
		}
		return nil
	}
	f := d.b[:n:n]
	d.b = d.b[n:]
	return f
}

// uvarintLen returns the length of v's canonical uvarint encoding.
func uvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// varintLen returns the length of v's zig-zag varint encoding.
func varintLen(v int64) int {
	return uvarintLen(uint64(v<<1) ^ uint64(v>>63))
}
