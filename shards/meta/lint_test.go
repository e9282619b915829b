package meta

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports keep the map deterministic: no clock, randomness, files,
// goroutines or Raft. net and net/url are allowed for parsing addresses
// only (net.SplitHostPort, url.Parse); no dialing happens here.
var forbiddenImports = []string{"crypto/rand", "math/rand", "os", "sync", "syscall", "time", "unsafe", "github.com/hashicorp"}

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
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbiddenImports {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %q; the cluster map must stay free of %q", name, path, bad)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no non-test files found")
	}
}
