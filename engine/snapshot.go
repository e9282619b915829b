package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/tidwall/btree"
)

// Snapshot stream layout (see doc.go):
//
//	magic "WISPSNAP" | format version byte | uvarint applied index |
//	uvarint entry count | entries | crc32c, 4 bytes little-endian
//
// An entry is uvarint key length, uvarint value length, key, value, uvarint
// version, uvarint expiry (unix ms, 0: none). Keys are strictly ascending.
const (
	snapshotMagic         = "WISPSNAP"
	snapshotFormatVersion = 1
	// snapshotBufferBytes sizes the bufio buffers of WriteTo and Restore.
	snapshotBufferBytes = 64 << 10
	// restoreChunkBytes is the first allocation for a key+value read by
	// Restore; larger ones grow as data arrives, so a hostile length cannot
	// make Restore allocate much more than the stream actually holds.
	restoreChunkBytes = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrInvalidSnapshot is wrapped by Restore when the stream is not a valid
// snapshot: bad magic or format version, a broken invariant, a truncated
// stream or a checksum mismatch.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// Snapshot is a point-in-time, read-only view of an Engine. Later Apply and
// Restore calls on the Engine do not change it. Its methods are safe for
// concurrent use, with each other and with every Engine method.
type Snapshot struct {
	tree  *btree.BTreeG[slot] // never modified
	index uint64
}

// Snapshot returns a view of the Engine as of AppliedIndex in O(1): the view
// shares the tree copy-on-write. It is a write as far as the concurrency
// contract goes (it marks the Engine's tree as shared), so call it where you
// call Apply.
func (e *Engine) Snapshot() *Snapshot {
	return &Snapshot{tree: e.tree.Copy(), index: e.applied}
}

// Index returns the applied index the snapshot was taken at.
func (s *Snapshot) Index() uint64 {
	return s.index
}

// WriteTo streams the snapshot to w in the format Restore reads, returning
// the number of bytes written. It may run on any goroutine while the Engine
// keeps applying.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, snapshotBufferBytes)
	buf := make([]byte, 0, 64)
	buf = append(buf, snapshotMagic...)
	buf = append(buf, snapshotFormatVersion)
	buf = binary.AppendUvarint(buf, s.index)
	buf = binary.AppendUvarint(buf, uint64(s.tree.Len()))
	_, err := bw.Write(buf)
	s.tree.Scan(func(sl slot) bool {
		if err != nil {
			return false
		}
		buf = binary.AppendUvarint(buf[:0], uint64(len(sl.key)))
		buf = binary.AppendUvarint(buf, uint64(len(sl.e.value)))
		// A bufio.Writer's error sticks, so the last Write reports any.
		bw.Write(buf)
		bw.Write(sl.key)
		bw.Write(sl.e.value)
		buf = binary.AppendUvarint(buf[:0], sl.e.version)
		buf = binary.AppendUvarint(buf, uint64(sl.e.expiresAtUnixMs))
		_, err = bw.Write(buf)
		return err == nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return cw.n, fmt.Errorf("engine: write snapshot %d: %w", s.index, err)
	}
	n, err := w.Write(binary.LittleEndian.AppendUint32(buf[:0], cw.crc))
	if err != nil {
		return cw.n + int64(n), fmt.Errorf("engine: write snapshot %d: %w", s.index, err)
	}
	return cw.n + int64(n), nil
}

// crcWriter passes writes through, counting bytes and checksumming them.
type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

// Restore replaces the Engine's whole state, applied index included, with a
// snapshot read from r as written by Snapshot.WriteTo. It reads r through a
// buffer, never whole, and checks everything: on any error, which wraps
// ErrInvalidSnapshot for a malformed or truncated stream or else r's error,
// the Engine keeps its previous state. Snapshots taken earlier are not
// affected.
func (e *Engine) Restore(r io.Reader) error {
	tree, index, err := readSnapshot(r)
	if err != nil {
		return fmt.Errorf("engine: restore: %w", err)
	}
	e.tree, e.applied = tree, index
	return nil
}

func readSnapshot(r io.Reader) (*btree.BTreeG[slot], uint64, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, snapshotBufferBytes)}
	var header [len(snapshotMagic) + 1]byte
	if err := sr.full(header[:], "header"); err != nil {
		return nil, 0, err
	}
	if string(header[:len(snapshotMagic)]) != snapshotMagic {
		return nil, 0, fmt.Errorf("%w: bad magic %q", ErrInvalidSnapshot, header[:len(snapshotMagic)])
	}
	if v := header[len(snapshotMagic)]; v != snapshotFormatVersion {
		return nil, 0, fmt.Errorf("%w: unknown format version %d", ErrInvalidSnapshot, v)
	}
	index, err := sr.uvarint("applied index")
	if err != nil {
		return nil, 0, err
	}
	count, err := sr.uvarint("entry count")
	if err != nil {
		return nil, 0, err
	}
	tree := newTree()
	var prevKey []byte
	for i := uint64(0); i < count; i++ {
		s, err := sr.entry(index)
		if err != nil {
			return nil, 0, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && bytes.Compare(prevKey, s.key) >= 0 {
			return nil, 0, fmt.Errorf("%w: entry %d: key %q not above previous key %q", ErrInvalidSnapshot, i, s.key, prevKey)
		}
		tree.Load(s)
		prevKey = s.key
	}
	want := sr.crc
	var sum [4]byte
	if err := sr.full(sum[:], "checksum"); err != nil {
		return nil, 0, err
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return nil, 0, fmt.Errorf("%w: checksum %#08x, want %#08x", ErrInvalidSnapshot, got, want)
	}
	switch _, err := sr.br.ReadByte(); {
	case err == nil:
		return nil, 0, fmt.Errorf("%w: trailing data after checksum", ErrInvalidSnapshot)
	case err != io.EOF:
		return nil, 0, fmt.Errorf("after checksum: %w", err)
	}
	return tree, index, nil
}

// snapshotReader reads snapshot fields, checksumming what it consumes.
type snapshotReader struct {
	br  *bufio.Reader
	crc uint32
}

// entry reads one entry of a snapshot taken at index.
func (r *snapshotReader) entry(index uint64) (slot, error) {
	keyLen, err := r.uvarint("key length")
	if err != nil {
		return slot{}, err
	}
	if keyLen == 0 || keyLen > maxKeyBytes {
		return slot{}, fmt.Errorf("%w: key length %d not in [1, %d]", ErrInvalidSnapshot, keyLen, maxKeyBytes)
	}
	valueLen, err := r.uvarint("value length")
	if err != nil {
		return slot{}, err
	}
	if valueLen > maxValueBytes {
		return slot{}, fmt.Errorf("%w: value length %d exceeds %d", ErrInvalidSnapshot, valueLen, maxValueBytes)
	}
	buf, err := r.bytes(int(keyLen+valueLen), "key and value")
	if err != nil {
		return slot{}, err
	}
	version, err := r.uvarint("version")
	if err != nil {
		return slot{}, err
	}
	if version == 0 || version > index {
		return slot{}, fmt.Errorf("%w: version %d not in [1, %d]", ErrInvalidSnapshot, version, index)
	}
	expiresAtUnixMs, err := r.uvarint("expiry")
	if err != nil {
		return slot{}, err
	}
	if expiresAtUnixMs > math.MaxInt64 {
		return slot{}, fmt.Errorf("%w: expiry %d out of range", ErrInvalidSnapshot, expiresAtUnixMs)
	}
	return slot{
		key: buf[:keyLen:keyLen],
		e:   &entry{value: buf[keyLen:], version: version, expiresAtUnixMs: int64(expiresAtUnixMs)},
	}, nil
}

// uvarint reads one canonical uvarint.
func (r *snapshotReader) uvarint(what string) (uint64, error) {
	var b [binary.MaxVarintLen64]byte
	for n := 0; n < len(b); n++ {
		c, err := r.br.ReadByte()
		if err != nil {
			return 0, r.readError(what, err)
		}
		b[n] = c
		if c < 0x80 {
			v, m := binary.Uvarint(b[:n+1])
			if m != n+1 || m != uvarintLen(v) {
				break
			}
			r.crc = crc32.Update(r.crc, castagnoli, b[:m])
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: %s: malformed uvarint", ErrInvalidSnapshot, what)
}

// bytes reads n bytes, n already bounded by the caller. The buffer starts
// small and doubles as data arrives, ending at exactly n bytes.
func (r *snapshotReader) bytes(n int, what string) ([]byte, error) {
	buf := make([]byte, min(n, restoreChunkBytes))
	for filled := 0; ; {
		if err := r.full(buf[filled:], what); err != nil {
			return nil, err
		}
		if len(buf) == n {
			return buf, nil
		}
		filled = len(buf)
		grown := make([]byte, min(n, 2*len(buf)))
		copy(grown, buf)
		buf = grown
	}
}

// full fills p.
func (r *snapshotReader) full(p []byte, what string) error {
	if _, err := io.ReadFull(r.br, p); err != nil {
		return r.readError(what, err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, p)
	return nil
}

// readError reports a premature end of the stream as an invalid snapshot.
func (r *snapshotReader) readError(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %s: %w", ErrInvalidSnapshot, what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}
