package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"testing"
)

// snapshotFixture returns an engine holding keys live, expiring and expired
// keys, a value of bigBytes, a counter, two settings, and a rejected
// command's index as its applied index.
func snapshotFixture(t testing.TB, keys, bigBytes int) *Engine {
	e := New()
	for i := range keys {
		c := at(testNow, put(fmt.Sprintf("key/%05d", i), strings.Repeat("v", i%200)))
		switch i % 3 {
		case 1:
			c.Mutations[0].TTLMs = 10 // expired at testNow+10, still stored
		case 2:
			c.Mutations[0].TTLMs = math.MaxInt32
		}
		applyAll(t, e, c)
	}
	applyAll(t, e, at(testNow, put("big", strings.Repeat("x", bigBytes)), incr("counter", 42)))
	applyAll(t, e, at(testNow, setMeta("maxmemory", "1000000"), setMeta("policy", "allkeys-lru")))
	rejected := at(testNow, put("", ""))
	e.Apply(e.AppliedIndex()+1, &rejected)
	return e
}

func writeSnapshot(t testing.TB, s *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d; wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// pausingWriter blocks its first Write until proceed is closed, after
// telling started.
type pausingWriter struct {
	buf      bytes.Buffer
	started  chan struct{}
	proceed  chan struct{}
	announce bool
}

func (w *pausingWriter) Write(p []byte) (int, error) {
	if !w.announce {
		w.announce = true
		close(w.started)
		<-w.proceed
	}
	return w.buf.Write(p)
}

// TestSnapshotRoundTrip writes a snapshot on another goroutine while the
// Engine keeps applying commands that overwrite, delete and expire the
// snapshot's keys, then restores it: the restored Engine must equal the
// Engine at snapshot time. Run it with -race.
func TestSnapshotRoundTrip(t *testing.T) {
	e := snapshotFixture(t, 3000, 1<<20)
	wantDigest, wantDump, wantIndex, wantStats := e.Digest(), dump(e), e.AppliedIndex(), e.Stats()
	snap := e.Snapshot()
	if snap.Index() != wantIndex {
		t.Fatalf("Snapshot().Index() = %d; want %d", snap.Index(), wantIndex)
	}

	w := &pausingWriter{started: make(chan struct{}), proceed: make(chan struct{})}
	type written struct {
		n   int64
		err error
	}
	done := make(chan written)
	go func() {
		n, err := snap.WriteTo(w)
		done <- written{n, err}
	}()
	churn := func(from, to int) {
		for i := from; i < to; i++ {
			k := fmt.Sprintf("key/%05d", i)
			c := at(testNow+20, put(k, "new"), del(fmt.Sprintf("key/%05d", i+1)), expire(fmt.Sprintf("key/%05d", i+2)), put("new/"+k, "n"),
				setTTL(fmt.Sprintf("key/%05d", i+3), 5), evict(fmt.Sprintf("key/%05d", i+4), uint64(i+5)), setMeta("policy", k))
			applyAll(t, e, c)
		}
	}
	<-w.started // WriteTo is stopped mid-scan
	churn(0, 1000)
	close(w.proceed)
	churn(1000, 3000) // while WriteTo scans the rest
	res := <-done
	if res.err != nil {
		t.Fatalf("WriteTo: %v", res.err)
	}
	if res.n != int64(w.buf.Len()) {
		t.Fatalf("WriteTo = %d; wrote %d bytes", res.n, w.buf.Len())
	}
	if again := writeSnapshot(t, snap); !bytes.Equal(again, w.buf.Bytes()) {
		t.Fatalf("second WriteTo of the same snapshot wrote different bytes")
	}

	r := New()
	applyAll(t, r, at(testNow, put("old", "state")))
	if err := r.Restore(bytes.NewReader(w.buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if r.Digest() != wantDigest {
		t.Errorf("restored Digest differs from the digest at snapshot time")
	}
	if got := dump(r); got != wantDump {
		t.Errorf("restored state differs:\n got %.300s\nwant %.300s", got, wantDump)
	}
	if r.AppliedIndex() != wantIndex {
		t.Errorf("restored AppliedIndex() = %d; want %d", r.AppliedIndex(), wantIndex)
	}
	if err := r.checkInvariants(); err != nil {
		t.Errorf("restored engine: %v", err)
	}
	if got := r.Stats(); got != wantStats {
		t.Errorf("restored Stats() = %+v; want %+v", got, wantStats)
	}
	if got, want := dumpMeta(r), "maxmemory=1000000 policy=allkeys-lru"; got != want {
		t.Errorf("restored settings = %q; want %q", got, want)
	}
	// The restored engine carries on: expired keys are still absent, and
	// the next index applies.
	if _, ok := r.Get([]byte("key/00001"), testNow+10); ok {
		t.Errorf("Get(%q) found an expired key after Restore", "key/00001")
	}
	applyAll(t, r, at(testNow, incr("counter", 1)))
	if it, _ := r.Get([]byte("counter"), testNow); string(it.Value) != "43" {
		t.Errorf("Get(%q) = %q; want %q", "counter", it.Value, "43")
	}
}

func TestSnapshotUnaffectedByRestore(t *testing.T) {
	e := snapshotFixture(t, 10, 100)
	snap := e.Snapshot()
	before := writeSnapshot(t, snap)
	if err := e.Restore(bytes.NewReader(writeSnapshot(t, New().Snapshot()))); err != nil {
		t.Fatalf("Restore(empty): %v", err)
	}
	if e.Len() != 0 || e.AppliedIndex() != 0 {
		t.Fatalf("after Restore(empty): Len() = %d, AppliedIndex() = %d; want 0, 0", e.Len(), e.AppliedIndex())
	}
	if after := writeSnapshot(t, snap); !bytes.Equal(before, after) {
		t.Errorf("snapshot changed after Restore on its Engine")
	}
}

// Helpers that build raw snapshot streams.

func uv(x uint64) []byte { return binary.AppendUvarint(nil, x) }

func rawEntry(key, value string, version, expiry uint64) []byte {
	b := append(uv(uint64(len(key))), uv(uint64(len(value)))...)
	b = append(b, key...)
	b = append(b, value...)
	return append(append(b, uv(version)...), uv(expiry)...)
}

func rawSetting(name, value string) []byte {
	b := append(uv(uint64(len(name))), name...)
	return append(append(b, uv(uint64(len(value)))...), value...)
}

// rawSnapshot joins parts after the magic and format version 1 and appends
// the checksum.
func rawSnapshot(parts ...[]byte) []byte {
	return rawSnapshotV(snapshotFormatVersion1, parts...)
}

// rawSnapshotV is rawSnapshot in the given format version.
func rawSnapshotV(version byte, parts ...[]byte) []byte {
	b := append([]byte(snapshotMagic), version)
	for _, p := range parts {
		b = append(b, p...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// TestSnapshotEncoding pins the format: an engine without settings writes
// format version 1, byte for byte as before settings existed, and one with
// settings format version 2.
func TestSnapshotEncoding(t *testing.T) {
	e := New()
	applyAll(t, e, at(testNow, put("a", "1"), putTTL("b", "2", 5)))
	if got, want := writeSnapshot(t, e.Snapshot()), rawSnapshot(uv(1), uv(2), rawEntry("a", "1", 1, 0), rawEntry("b", "2", 1, testNow+5)); !bytes.Equal(got, want) {
		t.Errorf("WriteTo = %x; want %x", got, want)
	}
	applyAll(t, e, at(testNow, setMeta("q", "y"), setMeta("p", "x")))
	want := rawSnapshotV(2, uv(2), uv(2), rawEntry("a", "1", 1, 0), rawEntry("b", "2", 1, testNow+5), uv(2), rawSetting("p", "x"), rawSetting("q", "y"))
	if got := writeSnapshot(t, e.Snapshot()); !bytes.Equal(got, want) {
		t.Errorf("WriteTo = %x; want %x", got, want)
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

func TestRestoreRejects(t *testing.T) {
	valid := rawSnapshot(uv(5), uv(2), rawEntry("a", "1", 1, 0), rawEntry("b", "2", 5, 99))
	withoutSum := valid[:len(valid)-4]
	entries := append(append(uv(5), uv(1)...), rawEntry("a", "1", 1, 0)...)
	valid2 := rawSnapshotV(2, entries, uv(2), rawSetting("p", "x"), rawSetting("q", "y"))
	errBoom := errors.New("boom")
	tests := []struct {
		name  string
		input []byte
		want  error
		r     io.Reader // overrides input
	}{
		{name: "empty", input: nil},
		{name: "bad magic", input: append([]byte("WISPSNAQ"), valid[8:]...)},
		{name: "magic only", input: []byte(snapshotMagic)},
		{name: "format version 3", input: func() []byte { b := bytes.Clone(valid); b[8] = 3; return b }()},
		{name: "format version 2 without settings", input: rawSnapshotV(2, entries)},
		{name: "format version 2 with zero settings", input: rawSnapshotV(2, entries, uv(0))},
		{name: "format version 1 with settings", input: rawSnapshotV(1, entries, uv(1), rawSetting("p", "x"))},
		{name: "settings count above settings", input: rawSnapshotV(2, entries, uv(2), rawSetting("p", "x"))},
		{name: "settings count above max", input: rawSnapshotV(2, entries, uv(maxMetaSettings+1), rawSetting("p", "x"))},
		{name: "settings descending", input: rawSnapshotV(2, entries, uv(2), rawSetting("q", "x"), rawSetting("p", "y"))},
		{name: "duplicate setting", input: rawSnapshotV(2, entries, uv(2), rawSetting("p", "x"), rawSetting("p", "y"))},
		{name: "empty setting name", input: rawSnapshotV(2, entries, uv(1), rawSetting("", "x"))},
		{name: "empty setting value", input: rawSnapshotV(2, entries, uv(1), rawSetting("p", ""))},
		{name: "setting name too long", input: rawSnapshotV(2, entries, uv(1), rawSetting(strings.Repeat("n", maxMetaNameBytes+1), "x"))},
		{name: "setting value too long", input: rawSnapshotV(2, entries, uv(1), uv(1), []byte("p"), uv(maxMetaValueBytes+1))},
		{name: "bad checksum", input: append(bytes.Clone(withoutSum), 0, 0, 0, 0)},
		{name: "trailing data", input: append(bytes.Clone(valid), 0)},
		{name: "count above entries", input: rawSnapshot(uv(5), uv(3), rawEntry("a", "1", 1, 0), rawEntry("b", "2", 5, 99))},
		{name: "count below entries", input: rawSnapshot(uv(5), uv(1), rawEntry("a", "1", 1, 0), rawEntry("b", "2", 5, 99))},
		{name: "keys descending", input: rawSnapshot(uv(5), uv(2), rawEntry("b", "1", 1, 0), rawEntry("a", "2", 5, 99))},
		{name: "duplicate key", input: rawSnapshot(uv(5), uv(2), rawEntry("a", "1", 1, 0), rawEntry("a", "2", 5, 99))},
		{name: "empty key", input: rawSnapshot(uv(5), uv(1), rawEntry("", "1", 1, 0))},
		{name: "key too long", input: rawSnapshot(uv(5), uv(1), uv(maxKeyBytes+1), uv(0))},
		{name: "value too long", input: rawSnapshot(uv(5), uv(1), uv(1), uv(maxValueBytes+1))},
		{name: "value longer than stream", input: rawSnapshot(uv(5), uv(1), uv(1), uv(maxValueBytes), []byte("k"))},
		{name: "huge count", input: rawSnapshot(uv(5), uv(math.MaxUint64))},
		{name: "version zero", input: rawSnapshot(uv(5), uv(1), rawEntry("a", "1", 0, 0))},
		{name: "version above index", input: rawSnapshot(uv(5), uv(1), rawEntry("a", "1", 6, 0))},
		{name: "expiry beyond int64", input: rawSnapshot(uv(5), uv(1), rawEntry("a", "1", 1, math.MaxInt64+1))},
		{name: "non-canonical uvarint", input: rawSnapshot([]byte{0x85, 0x00}, uv(0))},
		{name: "uvarint overflow", input: rawSnapshot(bytes.Repeat([]byte{0xff}, 10), []byte{1}, uv(0))},
		{name: "reader error", r: &failingReader{r: bytes.NewReader(withoutSum), err: errBoom}, want: errBoom},
	}
	for v, stream := range [][]byte{valid, valid2} {
		for cut := range len(stream) {
			tests = append(tests, struct {
				name  string
				input []byte
				want  error
				r     io.Reader
			}{name: fmt.Sprintf("v%d truncated at %d", v+1, cut), input: stream[:cut]})
		}
		for i := range len(stream) {
			b := bytes.Clone(stream)
			b[i] ^= 0x41
			tests = append(tests, struct {
				name  string
				input []byte
				want  error
				r     io.Reader
			}{name: fmt.Sprintf("v%d byte %d flipped", v+1, i), input: b})
		}
	}

	// The valid streams themselves restore.
	for _, stream := range [][]byte{valid, valid2} {
		if err := New().Restore(bytes.NewReader(stream)); err != nil {
			t.Fatalf("Restore(%x) = %v", stream, err)
		}
	}
	e := snapshotFixture(t, 20, 100)
	wantDigest, wantIndex := e.Digest(), e.AppliedIndex()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, want := tt.r, tt.want
			if r == nil {
				r = bytes.NewReader(tt.input)
			}
			if want == nil {
				want = ErrInvalidSnapshot
			}
			err := e.Restore(r)
			if !errors.Is(err, want) {
				t.Fatalf("Restore = %v; want an error wrapping %v", err, want)
			}
			if e.Digest() != wantDigest || e.AppliedIndex() != wantIndex {
				t.Fatalf("Restore error %v changed the engine", err)
			}
		})
	}
}

// FuzzRestore checks that no input panics, that a rejected input leaves the
// engine alone, and that an accepted input is exactly what WriteTo writes
// for the restored state (the format is canonical). Each input is also tried
// with its last four bytes replaced by the right checksum, so that the
// fuzzer gets past the checksum to the rest of the validation.
func FuzzRestore(f *testing.F) {
	f.Add(writeSnapshot(f, snapshotFixture(f, 5, 10).Snapshot()))
	f.Add(writeSnapshot(f, New().Snapshot()))
	f.Add(rawSnapshot(uv(5), uv(2), rawEntry("a", "1", 1, 0), rawEntry("b", "2", 5, 99)))
	f.Add(rawSnapshot(uv(5), uv(1), uv(1), uv(maxValueBytes)))
	f.Add(rawSnapshotV(2, uv(5), uv(1), rawEntry("a", "1", 1, 0), uv(2), rawSetting("p", "x"), rawSetting("q", "y")))
	f.Add(rawSnapshotV(2, uv(0), uv(0), uv(1), rawSetting("p", "x")))
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRestore(t, data)
		if n := len(data) - 4; n >= 0 {
			fixed := bytes.Clone(data)
			binary.LittleEndian.PutUint32(fixed[n:], crc32.Checksum(fixed[:n], castagnoli))
			checkRestore(t, fixed)
		}
	})
}

func checkRestore(t *testing.T, data []byte) {
	e := New()
	applyAll(t, e, at(testNow, put("a", "1")))
	before := e.Digest()
	if err := e.Restore(bytes.NewReader(data)); err != nil {
		if !errors.Is(err, ErrInvalidSnapshot) {
			t.Fatalf("Restore = %v; want an error wrapping ErrInvalidSnapshot", err)
		}
		if e.Digest() != before || e.AppliedIndex() != 1 {
			t.Fatalf("rejected Restore (%v) changed the engine", err)
		}
		return
	}
	if again := writeSnapshot(t, e.Snapshot()); !bytes.Equal(again, data) {
		t.Fatalf("WriteTo after Restore = %x; want the input %x", again, data)
	}
	if err := e.checkInvariants(); err != nil {
		t.Fatalf("after Restore(%x): %v", data, err)
	}
}

// limitedWriter fails once it has taken n bytes.
type limitedWriter struct{ n int }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSnapshotWriteToError(t *testing.T) {
	snap := snapshotFixture(t, 100, 1<<17).Snapshot()
	size := len(writeSnapshot(t, snap))
	for _, limit := range []int{0, 10, snapshotBufferBytes, size - 4, size - 1} {
		n, err := snap.WriteTo(&limitedWriter{n: limit})
		if err == nil || n != int64(limit) {
			t.Errorf("WriteTo(writer failing after %d of %d bytes) = %d, %v; want %d, an error", limit, size, n, err, limit)
		}
	}
}
