package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestCodesInOneFile: this package (the client-facing API) and
// shards/node (the control plane between nodes) each set Connect codes in
// their errors.go only (connect.NewError), so that which code a client
// sees, and that no internal text reaches it, is decided in one place per
// plane.
func TestCodesInOneFile(t *testing.T) {
	for _, dir := range []string{".", "../node"} {
		t.Run(dir, func(t *testing.T) { codesInOneFile(t, dir) })
	}
}

func codesInOneFile(t *testing.T, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || filepath.Base(name) == "errors.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "connect" && sel.Sel.Name == "NewError" {
				t.Errorf("%s: connect.NewError outside errors.go: build the error there", fset.Position(sel.Pos()))
			}
			return true
		})
	}
	if checked < 8 {
		t.Fatalf("checked %d files; the package has more: is the test in the wrong directory?", checked)
	}
}
