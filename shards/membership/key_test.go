package membership

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keyCases are key file contents ReadKeyFile accepts (want set) or refuses
// (errWant, a part of the error); FuzzParseKey starts from them.
var keyCases = []struct {
	name    string
	text    string
	want    []byte
	errWant string
}{
	{"16 bytes", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), []byte("0123456789abcdef"), ""},
	{"24 bytes, newline", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 24)) + "\n", bytes.Repeat([]byte{0xa5}, 24), ""},
	{"32 bytes, whitespace around", " \t" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\r\n\n", bytes.Repeat([]byte{7}, 32), ""},
	{"empty", "", nil, "empty"},
	{"only whitespace", " \n", nil, "empty"},
	{"not base64", "this is not base64!", nil, "not base64"},
	{"URL encoding", strings.Repeat("-_", 11) + "==", nil, "not base64"},
	{"no padding", strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 32)), "="), nil, "not base64"},
	{"20 bytes", base64.StdEncoding.EncodeToString(make([]byte, 20)), nil, "20-byte key; want 16, 24 or 32"},
	{"64 bytes", base64.StdEncoding.EncodeToString(make([]byte, 64)), nil, "64-byte key; want 16, 24 or 32"},
	{"two keys", base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n" + base64.StdEncoding.EncodeToString(make([]byte, 16)), nil, "not base64"},
}

func writeKeyFile(t *testing.T, text string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(path, []byte(text), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return path
}

func TestReadKeyFile(t *testing.T) {
	for _, tc := range keyCases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeKeyFile(t, tc.text, 0o600)
			key, err := ReadKeyFile(path)
			if tc.errWant == "" {
				if err != nil || !bytes.Equal(key, tc.want) {
					t.Fatalf("ReadKeyFile(%q) = %x, %v; want %x", tc.text, key, err, tc.want)
				}
				// What it reads is a key Start takes.
				cfg := testConfig(newLogSink(t), "n1")
				cfg.SecretKey = key
				startNode(t, cfg)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errWant) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ReadKeyFile(%q) = %x, %v; want an error naming the file and saying %q", tc.text, key, err, tc.errWant)
			}
			if strings.TrimSpace(tc.text) != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.text)) {
				t.Errorf("ReadKeyFile's error %q quotes the file", err)
			}
		})
	}

	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o700 | 0o001} {
		path := writeKeyFile(t, good, perm)
		if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("ReadKeyFile of a file with mode %#o = %v; want an error saying chmod 600 %s", perm, err, path)
		}
	}
	for _, perm := range []os.FileMode{0o600, 0o400} {
		if _, err := ReadKeyFile(writeKeyFile(t, good, perm)); err != nil {
			t.Errorf("ReadKeyFile of a file with mode %#o = %v; want the key", perm, err)
		}
	}

	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none")
		if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("ReadKeyFile of a missing file = %v; want an error naming it", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadKeyFile of a directory = %v; want 'not a regular file'", err)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		path := writeKeyFile(t, good+strings.Repeat(" ", keyFileSizeMax), 0o600)
		if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "over 1024 bytes") {
			t.Errorf("ReadKeyFile of a %d-byte file = %v; want 'over 1024 bytes'", len(good)+keyFileSizeMax, err)
		}
	})
}

// FuzzParseKey: parseKey never panics, and what it accepts is an AES key.
func FuzzParseKey(f *testing.F) {
	for _, tc := range keyCases {
		f.Add([]byte(tc.text))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		key, err := parseKey(text)
		if err != nil {
			return
		}
		if checkKeySize(len(key)) != nil {
			t.Fatalf("parseKey(%q) accepted a %d-byte key", text, len(key))
		}
	})
}
