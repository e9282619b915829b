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
//	uvarint entry count | entries | [settings] | crc32c, 4 bytes little-endian
//
// An entry is uvarint key length, uvarint value length, key, value, uvarint
// version, uvarint expiry (unix ms, 0: none). Keys are strictly ascending.
// The settings are there iff the format version is 2: uvarint count (at
// least 1), then per setting uvarint name length, name, uvarint value
// length, value, names strictly ascending. An engine without settings
// writes format version 1, byte for byte as before settings existed, so
// that every state has exactly one encoding.
const (
	snapshotMagic          = "WISPSNAP"
	snapshotFormatVersion1 = 1
	// snapshotFormatVersion2 adds the settings map.
	snapshotFormatVersion2 = 2
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
	meta  []metaEntry         // never modified
	index uint64
}

// Snapshot returns a view of the Engine as of AppliedIndex in O(1): the view
// shares the tree copy-on-write. It is a write as far as the concurrency
// contract goes (it marks the Engine's tree as shared), so call it where you
// call Apply.
func (e *Engine) Snapshot() *Snapshot {
	return &Snapshot{tree: e.tree.Copy(), meta: e.meta, index: e.applied}
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
	if len(s.meta) == 0 {
		buf = append(buf, snapshotFormatVersion1)
	} else {
		buf = append(buf, snapshotFormatVersion2)
	}
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
	if err == nil && len(s.meta) > 0 {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s.meta)))
		for _, m := range s.meta {
			buf = binary.AppendUvarint(buf, uint64(len(m.name)))
			buf = append(buf, m.name...)
			buf = binary.AppendUvarint(buf, uint64(len(m.value)))
			bw.Write(buf)
			_, err = bw.Write(m.value)
			buf = buf[:0]
		}
	}
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

// Restore replaces the Engine's whole state, applied index and settings
// included, with a snapshot read from r as written by Snapshot.WriteTo (in
// either format version). It reads r through a buffer, never whole, and
// checks everything: on any error, which wraps ErrInvalidSnapshot for a
// malformed or truncated stream or else r's error, the Engine keeps its
// previous state. Snapshots taken earlier are not affected.
//
// Restore rebuilds the TTL index and MemoryUsed as it reads, and resets the
// Stats counters. Restored keys count as accessed now on the access clock,
// with the LFU counter of a new key, undecayed until their first access:
// snapshots carry no access metadata.
func (e *Engine) Restore(r io.Reader) error {
	st, err := readSnapshot(r, uint32(e.clock.Load()))
	if err != nil {
		return fmt.Errorf("engine: restore: %w", err)
	}
	e.tree, e.ttl, e.meta, e.applied, e.memoryUsed = st.tree, st.ttl, st.meta, st.index, st.memoryUsed
	e.expiredTotal, e.evictedTotal = 0, 0
	return nil
}

// restored is the state readSnapshot builds.
type restored struct {
	tree       *btree.BTreeG[slot]
	ttl        *btree.BTreeG[ttlItem]
	meta       []metaEntry
	index      uint64
	memoryUsed int64
}

// readSnapshot reads a snapshot, stamping each entry's last access lru.
func readSnapshot(r io.Reader, lru uint32) (*restored, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, snapshotBufferBytes)}
	var header [len(snapshotMagic) + 1]byte
	if err := sr.full(header[:], "header"); err != nil {
		return nil, err
	}
	if string(header[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrInvalidSnapshot, header[:len(snapshotMagic)])
	}
	version := header[len(snapshotMagic)]
	if version != snapshotFormatVersion1 && version != snapshotFormatVersion2 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrInvalidSnapshot, version)
	}
	index, err := sr.uvarint("applied index")
	if err != nil {
		return nil, err
	}
	count, err := sr.uvarint("entry count")
	if err != nil {
		return nil, err
	}
	st := &restored{tree: newTree(), ttl: newTTLIndex(), index: index}
	var prevKey []byte
	for i := uint64(0); i < count; i++ {
		s, err := sr.entry(index)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && bytes.Compare(prevKey, s.key) >= 0 {
			return nil, fmt.Errorf("%w: entry %d: key %q not above previous key %q", ErrInvalidSnapshot, i, s.key, prevKey)
		}
		s.e.lru.Store(lru)
		s.e.lfu.Store(lfuInitVal) // untimed: see lfuTimed
		st.tree.Load(s)
		if s.e.expiresAtUnixMs != 0 {
			st.ttl.Set(ttlItem{expiresAtUnixMs: s.e.expiresAtUnixMs, key: s.key})
		}
		st.memoryUsed += s.footprint()
		prevKey = s.key
	}
	if version == snapshotFormatVersion2 {
		if st.meta, err = sr.meta(); err != nil {
			return nil, err
		}
	}
	want := sr.crc
	var sum [4]byte
	if err := sr.full(sum[:], "checksum"); err != nil {
		return nil, err
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %#08x, want %#08x", ErrInvalidSnapshot, got, want)
	}
	switch _, err := sr.br.ReadByte(); {
	case err == nil:
		return nil, fmt.Errorf("%w: trailing data after checksum", ErrInvalidSnapshot)
	case err != io.EOF:
		return nil, fmt.Errorf("after checksum: %w", err)
	}
	return st, nil
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

// meta reads the settings of a format version 2 snapshot.
func (r *snapshotReader) meta() ([]metaEntry, error) {
	count, err := r.uvarint("setting count")
	if err != nil {
		return nil, err
	}
	if count == 0 || count > maxMetaSettings {
		// No settings is written as format version 1.
		return nil, fmt.Errorf("%w: setting count %d not in [1, %d]", ErrInvalidSnapshot, count, maxMetaSettings)
	}
	meta := make([]metaEntry, 0, count)
	for i := range count {
		name, err := r.field("setting name", maxMetaNameBytes)
		if err != nil {
			return nil, fmt.Errorf("setting %d: %w", i, err)
		}
		if i > 0 && meta[i-1].name >= string(name) {
			return nil, fmt.Errorf("%w: setting %d: name %q not above previous name %q", ErrInvalidSnapshot, i, name, meta[i-1].name)
		}
		value, err := r.field("setting value", maxMetaValueBytes)
		if err != nil {
			return nil, fmt.Errorf("setting %d: %w", i, err)
		}
		meta = append(meta, metaEntry{name: string(name), value: value})
	}
	return meta, nil
}

// field reads a uvarint length in [1, limit] and that many bytes.
func (r *snapshotReader) field(what string, limit int) ([]byte, error) {
	n, err := r.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if n == 0 || n > uint64(limit) {
		return nil, fmt.Errorf("%w: %s length %d not in [1, %d]", ErrInvalidSnapshot, what, n, limit)
	}
	return r.bytes(int(n), what)
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
