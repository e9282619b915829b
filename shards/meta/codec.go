package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Encodings: a command is a JSON object {"format":1,"command":{...}}; a map
// snapshot is {"format":1,"map":{...}}. Decoding refuses unknown fields,
// trailing data and anything over its size bound, and validates what it
// decodes, so a corrupt or hostile entry fails loudly instead of applying
// half of something.
const formatVersion = 1

// Size bounds. A map of MaxNodes nodes and MaxShards moves stays well under
// MaxMapBytes.
const (
	// MaxCommandBytes bounds an encoded command (a Bootstrap listing
	// MaxNodes nodes is the largest).
	MaxCommandBytes = 1 << 20
	// MaxMapBytes bounds an encoded map snapshot.
	MaxMapBytes = 4 << 20
)

type commandEnvelope struct {
	Format  int      `json:"format"`
	Command *Command `json:"command"`
}

type mapEnvelope struct {
	Format int  `json:"format"`
	Map    *Map `json:"map"`
}

// EncodeCommand returns cmd's encoding, after checking it.
func EncodeCommand(cmd *Command) ([]byte, error) {
	if err := cmd.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(commandEnvelope{Format: formatVersion, Command: cmd})
	if err != nil {
		return nil, fmt.Errorf("meta: encode command: %w", err)
	}
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("%w: command is %d bytes, over %d", ErrInvalid, len(b), MaxCommandBytes)
	}
	return b, nil
}

// DecodeCommand decodes and checks a command.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("meta: command is %d bytes, over %d", len(b), MaxCommandBytes)
	}
	var env commandEnvelope
	if err := decodeStrict(b, &env); err != nil {
		return nil, fmt.Errorf("meta: decode command: %w", err)
	}
	if env.Format != formatVersion || env.Command == nil {
		return nil, fmt.Errorf("meta: decode command: format %d (want %d) or no command", env.Format, formatVersion)
	}
	if err := env.Command.check(); err != nil {
		return nil, err
	}
	return env.Command, nil
}

// WriteMap writes m's snapshot encoding to w.
func WriteMap(w io.Writer, m *Map) error {
	b, err := json.Marshal(mapEnvelope{Format: formatVersion, Map: m})
	if err != nil {
		return fmt.Errorf("meta: encode map: %w", err)
	}
	if len(b) > MaxMapBytes {
		return fmt.Errorf("meta: map is %d bytes, over %d", len(b), MaxMapBytes)
	}
	_, err = w.Write(b)
	return err
}

// ReadMap reads a snapshot written by WriteMap and validates it.
func ReadMap(r io.Reader) (*Map, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxMapBytes+1))
	if err != nil {
		return nil, fmt.Errorf("meta: read map: %w", err)
	}
	if len(b) > MaxMapBytes {
		return nil, fmt.Errorf("meta: map snapshot over %d bytes", MaxMapBytes)
	}
	var env mapEnvelope
	if err := decodeStrict(b, &env); err != nil {
		return nil, fmt.Errorf("meta: decode map: %w", err)
	}
	if env.Format != formatVersion || env.Map == nil {
		return nil, fmt.Errorf("meta: decode map: format %d (want %d) or no map", env.Format, formatVersion)
	}
	if err := env.Map.Validate(); err != nil {
		return nil, err
	}
	return env.Map, nil
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}
