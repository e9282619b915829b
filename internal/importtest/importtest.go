// Package importtest checks, from a package's own tests, that its non-test
// files import nothing they must not: how the pure packages (engine, the
// rings, the planner, the cluster map) keep the network, files, the clock
// and randomness out, like pebble's internal/lint.
package importtest

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Pure lists what a deterministic package without I/O must not import:
// network, files, clock, randomness, goroutine machinery, unsafe memory,
// and testing (each path also forbids those below it: net forbids
// net/http).
var Pure = []string{"crypto/rand", "math/rand", "net", "os", "sync", "syscall", "testing", "time", "unsafe"}

// Forbid fails t if a non-test Go file in the current directory (a
// package's own directory, where go test runs its tests) imports a path in
// forbidden, or one below it (net forbids net/http), unless the path is in
// allowed. It also fails if it finds no file to check.
func Forbid(t testing.TB, forbidden, allowed []string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(allowed, path) {
				continue
			}
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %q; this package must stay free of %q", name, path, bad)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no non-test files found")
	}
}
