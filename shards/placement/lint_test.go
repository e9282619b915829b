package placement

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports keeps the planner deterministic and free of I/O: no
// network, files, clock, randomness, goroutine machinery or unsafe memory.
var forbiddenImports = []string{
	"crypto/rand",
	"math/rand",
	"math/rand/v2",
	"net",
	"os",
	"os/exec",
	"sync",
	"sync/atomic",
	"syscall",
	"testing",
	"time",
	"unsafe",
}

// allowedImports are exceptions below a forbidden package (none: the planner
// is pure).
var allowedImports = []string{}

// TestImports fails if a non-test file of the package imports a forbidden
// package or one below it (net/http, os/signal, ...), like pebble's
// internal/lint.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(allowedImports, path) {
				continue
			}
			for _, bad := range forbiddenImports {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %q; the planner must stay free of %q", name, path, bad)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no non-test files found")
	}
}
