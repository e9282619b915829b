package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The handshake a dialer sends first on every new connection (see doc.go):
//
//	offset size field
//	0      4    magic "WSPR"
//	4      1    version (1)
//	5      8    group id, big-endian uint64
//
// The listener answers with one reply byte (replyOK or a refusal code). After
// replyOK the connection carries the group's Raft traffic, unchanged.
const (
	// headerLen is the exact size of a version-1 header. The listener reads
	// exactly this many bytes, never more, so nothing of the Raft stream that
	// follows is consumed by the handshake.
	headerLen = 13
	// version is the only format version this package speaks.
	version = 1
)

// magic opens every header: it tells a Wisp Raft connection from a stray one
// (an HTTP probe, a port scan, an old build pointed at the wrong port).
var magic = [4]byte{'W', 'S', 'P', 'R'}

// Reply codes, one byte, sent by the listener after reading a header.
const (
	replyOK                 byte = 0 // accepted: Raft traffic follows
	replyUnknownGroup       byte = 1 // no open group with that id on this node
	replyBusy               byte = 2 // the group's accept queue stayed full until the handshake deadline
	replyUnsupportedVersion byte = 3 // header version is not one this node speaks
)

// Sentinel errors callers branch on. Dial wraps them with the group id and
// address.
var (
	// ErrUnknownGroup means the remote node has no open group with this id:
	// it never hosted it, or the group was closed. Raft retries with its own
	// backoff; the remote may host the group later.
	ErrUnknownGroup = errors.New("unknown group")
	// ErrBusy means the remote group did not take the connection before the
	// handshake deadline (its accept queue stayed full). Safe to retry.
	ErrBusy = errors.New("group busy")
	// ErrUnsupportedVersion means the two nodes speak different handshake
	// versions.
	ErrUnsupportedVersion = errors.New("unsupported handshake version")
	// ErrBadHandshake means the bytes read were not a handshake header or
	// reply of this protocol.
	ErrBadHandshake = errors.New("bad handshake")
	// ErrGroupExists is returned by Mux.Group for an id that is already open.
	ErrGroupExists = errors.New("group already open")
)

// header is a decoded handshake header.
type header struct {
	version byte
	groupID uint64
}

// appendHeader appends the version-1 header for groupID to b.
func appendHeader(b []byte, groupID uint64) []byte {
	b = append(b, magic[:]...)
	b = append(b, version)
	return binary.BigEndian.AppendUint64(b, groupID)
}

// readHeader reads exactly headerLen bytes from r and decodes them. It never
// reads more than headerLen bytes. A header with the right magic but another
// version decodes without error (h.version tells): the caller refuses it with
// replyUnsupportedVersion, which a dialer of another version understands.
func readHeader(r io.Reader) (header, error) {
	var buf [headerLen]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return header{}, fmt.Errorf("read header: %w", err)
	}
	return decodeHeader(buf)
}

// decodeHeader decodes one header.
func decodeHeader(buf [headerLen]byte) (header, error) {
	if [4]byte(buf[:4]) != magic {
		return header{}, fmt.Errorf("%w: magic %q", ErrBadHandshake, buf[:4])
	}
	return header{version: buf[4], groupID: binary.BigEndian.Uint64(buf[5:])}, nil
}

// replyError maps a reply byte to the error Dial returns; nil for replyOK.
func replyError(code byte) error {
	switch code {
	case replyOK:
		return nil
	case replyUnknownGroup:
		return ErrUnknownGroup
	case replyBusy:
		return ErrBusy
	case replyUnsupportedVersion:
		return ErrUnsupportedVersion
	}
	return fmt.Errorf("%w: reply code %d", ErrBadHandshake, code)
}
