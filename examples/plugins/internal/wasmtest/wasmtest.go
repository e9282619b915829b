// Package wasmtest holds what the example plugins' tests share: a real
// plugins.Host, and the check that a committed module is what its source
// builds to today. It is imported by _test.go files only.
package wasmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wisp-db/wisp/plugins"
)

// NewHost returns a host with the default limits (64 MiB per instance, 100
// ms per call, 8 MiB per module), closed when t ends.
func NewHost(t testing.TB) *plugins.Host {
	t.Helper()
	ctx := context.Background()
	h, err := plugins.NewHost(ctx)
	if err != nil {
		t.Fatalf("plugins.NewHost: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(ctx); err != nil {
			t.Errorf("Host.Close: %v", err)
		}
	})
	return h
}

// ReadFile returns the bytes of the file at path, or fails t.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read module: %v", err)
	}
	return b
}

// GoBuildFlags are the flags every Go example is built with (see each
// example's Makefile): a WASI reactor, reproducible (-trimpath,
// -buildvcs=false), so that the same source gives the same bytes.
var GoBuildFlags = []string{"-buildmode=c-shared", "-trimpath", "-buildvcs=false"}

// GoBuild builds the Go main package in dir for GOOS=wasip1 GOARCH=wasm
// into t.TempDir() and returns the module's bytes, with the go command on
// PATH (the one running the test); the build cache makes a second build
// cheap.
func GoBuild(t testing.TB, dir string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "module.wasm")
	args := append([]string{"build"}, GoBuildFlags...)
	args = append(args, "-o", out, ".")
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v in %s: %v\n%s", args, dir, err, msg)
	}
	return ReadFile(t, out)
}

// CheckUpToDate fails t unless built, the module its source builds to
// now, is byte for byte the committed module at path. rebuild is the
// command that regenerates it, for the message.
func CheckUpToDate(t testing.TB, path string, built []byte, rebuild string) {
	t.Helper()
	committed := ReadFile(t, path)
	if !bytes.Equal(committed, built) {
		t.Errorf("%s is stale: committed %s, its source builds %s; run %q and commit it",
			path, describe(committed), describe(built), rebuild)
	}
}

func describe(b []byte) string {
	return fmt.Sprintf("%d bytes (sha256 %x)", len(b), sha256.Sum256(b))
}
