package eviction

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports keeps the policies and the Evictor free of I/O and of a
// clock: time arrives as nowUnixMs, randomness as rnd or a seeded generator.
var forbiddenImports = []string{"net", "os", "os/exec", "syscall", "time", "unsafe", "testing"}

// TestImports fails if a non-test file imports a forbidden package or one
// below it, like the engine's TestImports.
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
			for _, bad := range forbiddenImports {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %q; the eviction package must stay free of %q", name, path, bad)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no non-test files found")
	}
}
