package main

import (
	"bytes"
	"errors"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/plugins"
)

// wispRoot returns the root of the checkout holding this test, from the
// package's directory (cmd/wisp).
func wispRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if mod, _, err := readGoMod(filepath.Join(root, "go.mod")); err != nil || mod != wispModule {
		t.Fatalf("%s/go.mod: module %q, %v; want %s", root, mod, err, wispModule)
	}
	return root
}

// runPluginInit runs wisp plugin init with args and returns its output.
func runPluginInit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newPluginInitCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.Execute()
	return out.String(), err
}

// goCmd runs the go command in dir with the extra environment env and
// fails t if it fails.
func goCmd(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// TestPluginInit makes a project of each kind against this checkout, and
// builds and tests it as made: the module for WASI as the README says, then
// go test, whose TestModule builds it again, validates it and calls it on
// the real host. Offline (GOPROXY=off): everything comes from the checkout
// and the module cache.
func TestPluginInit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests two Go projects")
	}
	t.Setenv("GOPROXY", "off")
	root := wispRoot(t)
	for _, kind := range pluginInitKinds {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-"+kind)
			out, err := runPluginInit(t, "--kind", kind, "--sdk", root, dir)
			if err != nil {
				t.Fatalf("plugin init = %v\n%s", err, out)
			}
			for _, want := range []string{"Created the " + kind + " plugin my-" + kind, "go.sum", "wisp plugin upload my-" + kind + ".wasm --kind " + kind} {
				if !strings.Contains(out, want) {
					t.Errorf("plugin init printed %q; want it to contain %q", out, want)
				}
			}
			for _, name := range []string{"go.mod", "go.sum", "main.go", "main_test.go", "Makefile", "README.md"} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatalf("plugin init wrote no %s: %v", name, err)
				}
				if strings.HasSuffix(name, ".go") {
					if f, err := format.Source(b); err != nil || !bytes.Equal(f, b) {
						t.Errorf("%s is not gofmt-clean (%v):\n%s", name, err, b)
					}
				}
			}
			mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			for _, want := range []string{"module my-" + kind + "\n", "replace github.com/wisp-db/wisp => " + root} {
				if !strings.Contains(string(mod), want) {
					t.Errorf("go.mod:\n%s\nwant it to contain %q", mod, want)
				}
			}

			wasm := filepath.Join(dir, "my-"+kind+".wasm")
			goCmd(t, dir, []string{"GOOS=wasip1", "GOARCH=wasm"}, "build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-o", wasm, ".")
			fi, err := os.Stat(wasm)
			if err != nil {
				t.Fatalf("go build wrote no module: %v", err)
			}
			if fi.Size() > plugins.DefaultModuleSizeBytesMax {
				t.Errorf("the module is %d bytes; want at most %d", fi.Size(), plugins.DefaultModuleSizeBytesMax)
			}
			if out := goCmd(t, dir, nil, "test", "-count=1", "-v", "./..."); !strings.Contains(out, "--- PASS: TestModule") {
				t.Errorf("go test passed without running TestModule:\n%s", out)
			}
		})
	}
}

// TestPluginInitRefuses: a non-empty DIR (left as it was), an unknown kind
// or language, a DIR whose base is no module name, an --sdk that is not a
// wisp checkout.
func TestPluginInitRefuses(t *testing.T) {
	root := wispRoot(t)
	full := t.TempDir()
	keep := filepath.Join(full, "keep.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool   // a usage error (exit 2)
		want  string // in the error
	}{
		{"non-empty dir", []string{"--kind", "ttl", "--sdk", root, full}, false, "directory is not empty"},
		{"unknown kind", []string{"--kind", "hotkey", "--sdk", root, filepath.Join(t.TempDir(), "p")}, true, `invalid --kind "hotkey"`},
		{"no kind", []string{"--sdk", root, filepath.Join(t.TempDir(), "p")}, true, `invalid --kind ""`},
		{"unknown lang", []string{"--kind", "ttl", "--lang", "rust", "--sdk", root, filepath.Join(t.TempDir(), "p")}, true, `invalid --lang "rust"`},
		{"no module name", []string{"--kind", "ttl", "--sdk", root, filepath.Join(t.TempDir(), "my plugin")}, true, `its base "my plugin" names the module`},
		{"sdk not wisp", []string{"--kind", "ttl", "--sdk", t.TempDir(), filepath.Join(t.TempDir(), "p")}, true, "invalid --sdk"},
		{"two dirs", []string{"--kind", "ttl", "a", "b"}, true, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPluginInit(t, tc.args...)
			if err == nil {
				t.Fatalf("plugin init %v = nil error; want one containing %q\n%s", tc.args, tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("plugin init %v = %v; want it to contain %q", tc.args, err, tc.want)
			}
			var ue *usageError
			if got := errors.As(err, &ue); got != tc.usage {
				t.Errorf("plugin init %v = %v, a usage error: %v; want %v", tc.args, err, got, tc.usage)
			}
		})
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Errorf("%s after a refusal: %q, %v; want it untouched", keep, b, err)
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Errorf("%s holds %d entries after a refusal; want only keep.txt", full, len(entries))
	}
}

// TestFindWispCheckout: the checkout is found from a directory inside it,
// and none from one outside.
func TestFindWispCheckout(t *testing.T) {
	root := wispRoot(t)
	for _, dir := range []string{root, filepath.Join(root, "cmd", "wisp"), filepath.Join(root, "examples", "plugins", "gdsf")} {
		if got := findWispCheckout(dir); got != root {
			t.Errorf("findWispCheckout(%s) = %q; want %q", dir, got, root)
		}
	}
	if got := findWispCheckout(t.TempDir()); got != "" {
		t.Errorf("findWispCheckout(a temporary directory) = %q; want none", got)
	}
}
