package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wisp-db/wisp/sdk/client"
)

// itemJSON is an item in --output json. Keys and values are strings when
// valid UTF-8, else base64 with the matching *_encoding field set.
type itemJSON struct {
	Key           string     `json:"key"`
	KeyEncoding   string     `json:"key_encoding,omitempty"`
	Value         *string    `json:"value,omitempty"` // nil only for scan --keys-only
	ValueEncoding string     `json:"value_encoding,omitempty"`
	Version       uint64     `json:"version"`
	ExpiresAt     *time.Time `json:"expires_at"` // null: no TTL
}

func newItemJSON(it client.Item, withValue bool) itemJSON {
	out := itemJSON{Version: it.Version}
	out.Key, out.KeyEncoding = encodeBytes([]byte(it.Key))
	if withValue {
		v, enc := encodeBytes(it.Value)
		out.Value, out.ValueEncoding = &v, enc
	}
	if !it.ExpiresAt.IsZero() {
		t := it.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

// encodeBytes returns b as a JSON-safe string and its encoding: "" for
// valid UTF-8 as is, "base64" otherwise.
func encodeBytes(b []byte) (s, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeProtoJSON writes m in the protobuf JSON mapping, with .proto field
// names and zero values shown, indented like writeJSON. protojson varies
// its whitespace on purpose, so the output is re-indented to be stable.
func writeProtoJSON(w io.Writer, m proto.Message) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(w)
	return err
}

// writeLine writes the parts and a newline, failing on a write error (a
// closed pipe, a full disk) rather than dropping output.
func writeLine(w io.Writer, parts ...[]byte) error {
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	_, err := w.Write([]byte{'\n'})
	return err
}

func writef(w io.Writer, format string, args ...any) error {
	_, err := fmt.Fprintf(w, format, args...)
	return err
}
