package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// A pack is one Raft log entry holding several independent commands, so a
// leader that has many proposals waiting pays the log's per-entry costs
// (encoding, storage, replication bookkeeping, futures) once for all of
// them. Its encoding:
//
//	byte    packFormat (0x50, 'P': never a command format version)
//	uvarint command count, 1 to maxPackCommands
//	per command:
//	  uvarint length, then the command as AppendCommand encodes it
//
// Varints are minimal, so every pack has exactly one encoding. IsPack tells
// a pack from a single command by the first byte.
const (
	packFormat = 0x50
	// maxPackCommands bounds the commands in one pack, and so the work one
	// entry asks of Apply and the results it allocates.
	maxPackCommands = 4096
	// minCommandBytes is the smallest encoded command (format, now, count);
	// it bounds the count before DecodePack allocates.
	minCommandBytes = 3
)

// AppendPack appends the pack encoding of cmds to dst and returns the
// extended buffer. It grows dst at most once, to exactly the size needed:
// the buffer becomes a Raft log entry, which raftlog.Cache bounds by
// capacity, so slack would be memory held and not counted.
func AppendPack(dst []byte, cmds []*Command) []byte {
	n := 1 + uvarintLen(uint64(len(cmds)))
	for _, c := range cmds {
		size := encodedSize(c)
		n += uvarintLen(uint64(size)) + size
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, packFormat)
	dst = binary.AppendUvarint(dst, uint64(len(cmds)))
	for _, c := range cmds {
		dst = binary.AppendUvarint(dst, uint64(encodedSize(c)))
		dst = AppendCommand(dst, c)
	}
	return dst
}

// IsPack reports whether the entry b is a pack (else it is one command).
func IsPack(b []byte) bool { return len(b) > 0 && b[0] == packFormat }

// DecodePack decodes a pack. The commands' byte fields alias b. Errors wrap
// ErrInvalidCommand.
func DecodePack(b []byte) ([]Command, error) {
	if !IsPack(b) {
		return nil, fmt.Errorf("%w: not a pack", ErrInvalidCommand)
	}
	rest := b[1:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || k != uvarintLen(n) {
		return nil, fmt.Errorf("%w: pack: bad command count", ErrInvalidCommand)
	}
	rest = rest[k:]
	if n == 0 || n > maxPackCommands || n > uint64(len(rest)/(1+minCommandBytes)) {
		return nil, fmt.Errorf("%w: pack: command count %d out of range", ErrInvalidCommand, n)
	}
	cmds := make([]Command, n)
	for i := range cmds {
		size, k := binary.Uvarint(rest)
		if k <= 0 || k != uvarintLen(size) || size > uint64(len(rest)-k) {
			return nil, fmt.Errorf("%w: pack: command %d: bad length", ErrInvalidCommand, i)
		}
		rest = rest[k:]
		c, err := DecodeCommand(rest[:size])
		if err != nil {
			return nil, fmt.Errorf("pack: command %d: %w", i, err)
		}
		cmds[i] = c
		rest = rest[size:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: pack: %d trailing bytes", ErrInvalidCommand, len(rest))
	}
	return cmds, nil
}
