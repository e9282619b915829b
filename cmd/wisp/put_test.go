package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestPutValueSources: put takes its value from the argument, from stdin
// (-) or from --file, byte for byte.
func TestPutValueSources(t *testing.T) {
	s := newFakeServer(t, nil)
	ep := "--endpoint=" + s.URL
	dir := t.TempDir()
	path := filepath.Join(dir, "value")
	fileValue := "line 1\nline 2\n\x00\xff"
	if err := os.WriteFile(path, []byte(fileValue), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"argument", "ignored", []string{"kv", "put", "k", "v"}, "v"},
		{"stdin", "from\nstdin\n", []string{"kv", "put", "k", "-"}, "from\nstdin\n"},
		{"empty stdin", "", []string{"kv", "put", "k", "-"}, ""},
		{"file", "ignored", []string{"kv", "put", "k", "--file", path}, fileValue},
		{"file before key", "", []string{"kv", "put", "--file=" + path, "k", "--ttl", "1h"}, fileValue},
		{"empty file", "", []string{"kv", "put", "k", "--file", empty}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := wispIn(t, strings.NewReader(tc.stdin), append([]string{ep}, tc.args...)...)
			if r.code != exitOK || !strings.HasPrefix(r.stdout, "OK version=") {
				t.Fatalf("wisp %q = exit %d, stdout %q, stderr %q; want OK version=N", tc.args, r.code, r.stdout, r.stderr)
			}
			if r := wisp(t, ep, "kv", "get", "k"); r.code != exitOK || r.stdout != tc.want+"\n" {
				t.Errorf("after wisp %q, get = exit %d, %q; want %q", tc.args, r.code, r.stdout, tc.want+"\n")
			}
		})
	}
}

func TestPutValueErrors(t *testing.T) {
	const endpoint = "--endpoint=http://127.0.0.1:1" // never dialed
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: the size check refuses it without reading.
	if err := f.Truncate(maxValueReadBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()

	usage := []struct {
		args   []string
		stderr string
	}{
		{[]string{"kv", "put", "k"}, "Error: missing VALUE: give it as an argument, - to read stdin, or --file PATH\n"},
		{[]string{"kv", "put", "k", "v", "--file", big}, "Error: give VALUE or --file, not both\n"},
		{[]string{"kv", "put", "k", "-", "--file", big}, "Error: give VALUE or --file, not both\n"},
		{[]string{"kv", "put", "k", "--file", ""}, "Error: --file needs a path\n"},
		{[]string{"kv", "put", "k", "--file"}, "Error: flag needs an argument: --file\n"},
		{[]string{"kv", "put"}, "Error: accepts between 1 and 2 arg(s), received 0\n"},
	}
	for _, tc := range usage {
		r := wisp(t, append([]string{endpoint}, tc.args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tc.stderr) {
			t.Errorf("wisp %q = exit %d, stderr %q; want %d, %q", tc.args, r.code, r.stderr, exitUsage, tc.stderr)
		}
	}

	failures := []struct {
		name   string
		stdin  io.Reader
		args   []string
		stderr string
	}{
		{"missing file", nil, []string{"kv", "put", "k", "--file", filepath.Join(dir, "nope")},
			"Error: read --file: open " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{"directory", nil, []string{"kv", "put", "k", "--file", dir},
			"Error: read value from " + dir + ": read " + dir + ": is a directory\n"},
		{"big file", nil, []string{"kv", "put", "k", "--file", big},
			"Error: value from " + big + " is over 64 MiB: wisp kv put reads at most that (and the server's limit, --max-value-bytes, is 1 MiB unless set)\n"},
		{"endless stdin", zeros{}, []string{"kv", "put", "k", "-"},
			"Error: value from stdin is over 64 MiB: wisp kv put reads at most that (and the server's limit, --max-value-bytes, is 1 MiB unless set)\n"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			stdin := tc.stdin
			if stdin == nil {
				stdin = strings.NewReader("")
			}
			r := wispIn(t, stdin, append([]string{endpoint}, tc.args...)...)
			if r.code != exitFailure || r.stderr != tc.stderr {
				t.Errorf("wisp %q = exit %d, stderr %q; want %d, %q", tc.args, r.code, r.stderr, exitFailure, tc.stderr)
			}
		})
	}
}
