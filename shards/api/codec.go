package api

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// strictJSON is Connect's JSON codec with one change: a request naming a
// field the message does not have is refused (INVALID_ARGUMENT, naming the
// field) instead of having the field dropped. For a database a mistyped
// field must not be a silent no-op: {"ttl": "30s"} instead of "ttlMs" would
// store a key that never expires. Binary protobuf keeps its
// forward-compatible behaviour (unknown fields are kept and ignored), so
// newer clients still talk to older servers.
type strictJSON struct{ name string }

// strictJSONCodecs replace Connect's two JSON codec names.
var strictJSONCodecs = []connect.HandlerOption{
	connect.WithCodec(strictJSON{"json"}),
	connect.WithCodec(strictJSON{"json; charset=utf-8"}),
}

func (c strictJSON) Name() string { return c.name }

func (strictJSON) IsBinary() bool { return false }

func (strictJSON) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("json codec: %T is not a protobuf message", m)
	}
	return protojson.Marshal(pm)
}

func (strictJSON) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("json codec: %T is not a protobuf message", m)
	}
	if len(b) == 0 {
		return errors.New("empty body: want a JSON object")
	}
	if err := protojson.Unmarshal(b, pm); err != nil {
		// protojson's message names the field ("unknown field \"ttl\"") and
		// where it is; the message type tells which request it was.
		return fmt.Errorf("%s: %w", pm.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}
