package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/shards/membership"
)

// wispd runs the command line args in this process and returns its output.
func wispd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// TestKeygen: `wispd keygen` prints a key that --gossip-key-file reads
// back, 32 bytes, a new one each time.
func TestKeygen(t *testing.T) {
	var keys []string
	for range 2 {
		out, err := wispd(t, "keygen")
		if err != nil {
			t.Fatalf("wispd keygen: %v", err)
		}
		path := filepath.Join(t.TempDir(), "gossip.key")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := membership.ReadKeyFile(path)
		if err != nil || len(key) != keygenSizeBytes {
			t.Fatalf("ReadKeyFile of keygen's output %q = %d bytes, %v; want %d bytes", out, len(key), err, keygenSizeBytes)
		}
		keys = append(keys, out)
	}
	if keys[0] == keys[1] {
		t.Errorf("wispd keygen printed %q twice", keys[0])
	}
}

// TestGossipKeyFileRefused: `wispd start` and `wispd dev` with a key file
// they cannot use fail with a message saying why, before they create their
// data directory or listen.
func TestGossipKeyFileRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, perm os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return path
	}
	const good = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	for _, tc := range []struct {
		name, file, want string
	}{
		{"readable by others", write("open.key", good, 0o644), "run chmod 600"},
		{"bad base64", write("garbled.key", "not a key!", 0o600), "not base64"},
		{"wrong length", write("short.key", "c2hvcnQ=", 0o600), "5-byte key; want 16, 24 or 32"},
		{"missing", filepath.Join(dir, "none.key"), "no such file"},
	} {
		for _, sub := range []string{"start", "dev"} {
			t.Run(tc.name+"/"+sub, func(t *testing.T) {
				data := filepath.Join(t.TempDir(), "data")
				args := []string{sub, "--gossip-key-file", tc.file, "--data-dir", data, "--http-addr", "127.0.0.1:18080"}
				if sub == "start" {
					args = append(args, "--node-id", "n1", "--raft-addr", "127.0.0.1:7080", "--join", "127.0.0.1:7180")
				}
				_, err := wispd(t, args...)
				if err == nil || !strings.HasPrefix(err.Error(), "--gossip-key-file: ") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("wispd %s = %v; want an error on --gossip-key-file saying %q", strings.Join(args, " "), err, tc.want)
				}
				if _, err := os.Stat(data); !os.IsNotExist(err) {
					t.Errorf("wispd %s made its data directory (stat: %v)", sub, err)
				}
			})
		}
	}
}
