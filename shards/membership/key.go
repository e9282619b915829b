package membership

// The gossip key file, as Consul's and Serf's `encrypt` key: the standard
// base64 encoding (with padding) of 16, 24 or 32 random bytes, for AES-128,
// -192 or -256. Whitespace around it (a final newline) is ignored.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
)

// keyFileSizeMax bounds what ReadKeyFile reads: a key file holds at most 44
// bytes of base64 and some whitespace; a bigger file is a wrong path, not
// read whole.
const keyFileSizeMax = 1 << 10

// ReadKeyFile reads a gossip key (Config.SecretKey) from the file at path:
// the base64 (standard encoding) of 16, 24 or 32 bytes, surrounding
// whitespace ignored. It refuses a file that group or others may access
// (mode & 0o077 != 0), a file that is not base64, and a key of another
// length. Its errors never quote the file's contents.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gossip key file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("gossip key file %s: mode %#o lets group or others access it; run chmod 600 %s", path, perm, path)
	}
	text, err := io.ReadAll(io.LimitReader(f, keyFileSizeMax+1))
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	if len(text) > keyFileSizeMax {
		return nil, fmt.Errorf("gossip key file %s: over %d bytes; want the base64 of 16, 24 or 32 bytes", path, keyFileSizeMax)
	}
	key, err := parseKey(text)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return key, nil
}

// parseKey decodes a key file's text: base64 (standard encoding) of 16, 24
// or 32 bytes, surrounding whitespace ignored.
func parseKey(text []byte) ([]byte, error) {
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return nil, errors.New("empty; want the base64 of 16, 24 or 32 bytes")
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(key, text)
	if err != nil {
		// base64's error gives an offset, never the text.
		return nil, fmt.Errorf("not base64 (standard encoding, with padding): %w", err)
	}
	key = key[:n]
	if err := checkKeySize(len(key)); err != nil {
		return nil, fmt.Errorf("holds a %w", err)
	}
	return key, nil
}

// checkKeySize accepts the sizes of an AES key: 16, 24 or 32 bytes.
func checkKeySize(n int) error {
	switch n {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%d-byte key; want 16, 24 or 32 bytes (AES-128, -192 or -256)", n)
}
