package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

var headerCases = []struct {
	name    string
	in      []byte
	want    header
	wantErr error // nil: decodes
}{
	{"group 0", appendHeader(nil, 0), header{version: 1, groupID: 0}, nil},
	{"group 7", appendHeader(nil, 7), header{version: 1, groupID: 7}, nil},
	{"max group", appendHeader(nil, ^uint64(0)), header{version: 1, groupID: ^uint64(0)}, nil},
	{"trailing raft bytes ignored", append(appendHeader(nil, 9), 0x01, 0x02), header{version: 1, groupID: 9}, nil},
	{"future version", []byte{'W', 'S', 'P', 'R', 2, 0, 0, 0, 0, 0, 0, 0, 5}, header{version: 2, groupID: 5}, nil},
	{"empty", nil, header{}, io.EOF},
	{"short", appendHeader(nil, 7)[:headerLen-1], header{}, io.ErrUnexpectedEOF},
	{"bad magic", []byte("GET / HTTP/1.1\r\n"), header{}, ErrBadHandshake},
	{"lower-case magic", []byte{'w', 's', 'p', 'r', 1, 0, 0, 0, 0, 0, 0, 0, 1}, header{}, ErrBadHandshake},
}

func TestReadHeader(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(tc.in)}
			got, err := readHeader(r)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("readHeader(%q) error = %v; want %v", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readHeader(%q) error = %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("readHeader(%q) = %+v; want %+v", tc.in, got, tc.want)
			}
			if r.n != headerLen {
				t.Fatalf("readHeader(%q) read %d bytes; want %d", tc.in, r.n, headerLen)
			}
		})
	}
}

func TestReplyError(t *testing.T) {
	for _, tc := range []struct {
		code byte
		want error
	}{
		{replyOK, nil},
		{replyUnknownGroup, ErrUnknownGroup},
		{replyBusy, ErrBusy},
		{replyUnsupportedVersion, ErrUnsupportedVersion},
		{4, ErrBadHandshake},
		{0xff, ErrBadHandshake},
	} {
		if err := replyError(tc.code); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("replyError(%d) = %v; want %v", tc.code, err, tc.want)
		}
	}
}

// FuzzHandshake feeds arbitrary bytes to the listener's header decoder and
// the dialer's reply decoder: they never panic, never read past the header,
// and whatever decodes re-encodes to the same bytes.
func FuzzHandshake(f *testing.F) {
	for _, tc := range headerCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &countingReader{r: bytes.NewReader(in)}
		h, err := readHeader(r)
		if r.n > headerLen {
			t.Fatalf("readHeader read %d bytes; want at most %d", r.n, headerLen)
		}
		if len(in) < headerLen && err == nil {
			t.Fatalf("readHeader(%q) accepted a short header", in)
		}
		if err == nil {
			b := appendHeader(nil, h.groupID)
			b[4] = h.version
			if !bytes.Equal(b, in[:headerLen]) {
				t.Fatalf("readHeader(%q) = %+v, which encodes to %q", in, h, b)
			}
		}
		if len(in) > 0 {
			err := replyError(in[0])
			if (err == nil) != (in[0] == replyOK) {
				t.Fatalf("replyError(%d) = %v", in[0], err)
			}
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
