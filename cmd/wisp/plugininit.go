package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/buildinfo"
)

// wispModule is the module path of the wisp repository, which holds the
// plugin SDK (sdk/plugin) and host (plugins).
const wispModule = "github.com/wisp-db/wisp"

// pluginTemplates are the files of a new plugin project, by language:
// plugintmpl/LANG/common for every kind, plugintmpl/LANG/KIND for one.
// Each NAME.tmpl becomes NAME (a .go.tmpl name keeps the go command from
// reading the templates as Go source).
//
//go:embed plugintmpl
var pluginTemplates embed.FS

// pluginInitKinds and pluginInitLangs are what plugin init can make.
var (
	pluginInitKinds = []string{"eviction", "ttl"}
	pluginInitLangs = []string{"go"}
)

// errDirNotEmpty: plugin init writes only into a new or empty directory.
var errDirNotEmpty = errors.New("directory is not empty")

// moduleNameRE is what plugin init accepts as a module name, the base of
// DIR: a single path element the go command takes as a module path.
var moduleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// pluginInit is what one plugin init makes.
type pluginInit struct {
	dir  string // absolute; the module is named for its base
	kind string // one of pluginInitKinds
	lang string // one of pluginInitLangs
	// sdk is the absolute path of a wisp checkout that go.mod replaces
	// the wisp module with; "" for none (go.mod then requires the version
	// this binary was built from).
	sdk  string
	tidy bool // run go mod tidy in dir afterwards (writes go.sum)
}

// templateData is what the templates see.
type templateData struct {
	Module      string // the module path: DIR's base
	Kind        string
	SDKPath     string // "" for no replace directive
	WispVersion string // the required version of the wisp module
	GoVersion   string // the go directive
}

func newPluginInitCmd() *cobra.Command {
	var (
		p      pluginInit
		noTidy bool
	)
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a new plugin project in DIR",
		Long: `Create a plugin project in DIR, a new or empty directory: a Go module
named for DIR's base, with main.go (an LRU policy for --kind eviction, a
fixed 10-minute TTL for --kind ttl), main_test.go (the function natively,
then the module built for WASI, validated and called on the real host), a
Makefile and a README. It then runs go mod tidy there, which writes go.sum
(from the checkout's sums when it uses one, so offline).

The plugin SDK lives in the wisp repository and is not published: go.mod
replaces the wisp module with a checkout, --sdk, by default the checkout
around the current directory (the nearest go.mod above it of module
` + wispModule + `). Without one, go.mod requires the version this wisp was
built from, and the README says how to point it at a checkout.

The project builds and passes its tests as made:

  cd DIR && make && go test ./...

docs/PLUGINS.md ("Writing a plugin") is the guide.`,
		Example: `  wisp plugin init --kind eviction my-policy
  wisp plugin init --kind ttl --sdk ~/src/wisp ./session-ttl`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(pluginInitKinds, p.kind) {
				return usageErrorf("invalid --kind %q: want %s", p.kind, strings.Join(pluginInitKinds, " or "))
			}
			if !slices.Contains(pluginInitLangs, p.lang) {
				return usageErrorf("invalid --lang %q: want %s (for C, see examples/plugins/ttlprefix-c)", p.lang, strings.Join(pluginInitLangs, " or "))
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return fmt.Errorf("plugin init: %w", err)
			}
			p.dir = dir
			if name := filepath.Base(dir); !moduleNameRE.MatchString(name) {
				return usageErrorf("invalid DIR %q: its base %q names the module: want letters, digits, '.', '-' and '_'", args[0], name)
			}
			if p.sdk, err = resolveSDK(p.sdk); err != nil {
				return err
			}
			p.tidy = !noTidy
			files, err := p.run(cmd.Context())
			if err != nil {
				return err
			}
			return writePluginInitReport(cmd, &p, files)
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.kind, "kind", "", "the plugin's kind: "+strings.Join(pluginInitKinds, " or ")+" (required)")
	f.StringVar(&p.lang, "lang", "go", "the plugin's language: "+strings.Join(pluginInitLangs, " or "))
	f.StringVar(&p.sdk, "sdk", "", "a wisp checkout for go.mod to replace the wisp module with (default: the one around the current directory)")
	f.BoolVar(&noTidy, "no-tidy", false, "do not run go mod tidy (go.sum is then missing)")
	return cmd
}

// resolveSDK returns the absolute path of the wisp checkout at sdk, or, if
// sdk is "", of the one around the current directory, or "" if there is
// none.
func resolveSDK(sdk string) (string, error) {
	if sdk != "" {
		abs, err := filepath.Abs(sdk)
		if err != nil {
			return "", fmt.Errorf("plugin init: --sdk: %w", err)
		}
		if mod, _, err := readGoMod(filepath.Join(abs, "go.mod")); err != nil || mod != wispModule {
			return "", usageErrorf("invalid --sdk %q: want a checkout of %s (its go.mod: module %q, %v)", sdk, wispModule, mod, err)
		}
		return abs, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("plugin init: %w", err)
	}
	return findWispCheckout(wd), nil
}

// findWispCheckout returns the nearest directory from dir up whose go.mod
// declares the wisp module, or "" if there is none.
func findWispCheckout(dir string) string {
	for {
		if mod, _, err := readGoMod(filepath.Join(dir, "go.mod")); err == nil && mod == wispModule {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// readGoMod returns the module path and go version a go.mod declares.
func readGoMod(file string) (module, goVersion string, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "module" {
			module = strings.Trim(fields[1], `"`)
		}
		if len(fields) == 2 && fields[0] == "go" {
			goVersion = fields[1]
		}
	}
	return module, goVersion, sc.Err()
}

// run makes the project and returns the files it wrote, relative to p.dir.
func (p *pluginInit) run(ctx context.Context) ([]string, error) {
	data, err := p.templateData()
	if err != nil {
		return nil, err
	}
	if err := checkEmptyDir(p.dir); err != nil {
		return nil, err
	}
	var files []string
	for _, sub := range []string{"common", p.kind} {
		root := path.Join("plugintmpl", p.lang, sub)
		entries, err := fs.ReadDir(pluginTemplates, root)
		if err != nil {
			return nil, fmt.Errorf("plugin init: templates %s: %w", root, err)
		}
		for _, e := range entries {
			name := strings.TrimSuffix(e.Name(), ".tmpl")
			if err := renderTemplate(path.Join(root, e.Name()), filepath.Join(p.dir, name), data); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
	}
	if p.sdk != "" {
		// The checkout's go.sum holds the sums of the modules the SDK and
		// the host need: with it, go mod tidy verifies them offline
		// instead of asking the checksum database, and drops the rest.
		sums, err := os.ReadFile(filepath.Join(p.sdk, "go.sum"))
		if err != nil {
			return nil, fmt.Errorf("plugin init: the sums of the wisp checkout: %w", err)
		}
		if err := os.WriteFile(filepath.Join(p.dir, "go.sum"), sums, 0o644); err != nil {
			return nil, fmt.Errorf("plugin init: %w", err)
		}
		files = append(files, "go.sum")
	}
	if p.tidy {
		if err := goModTidy(ctx, p.dir); err != nil {
			return nil, fmt.Errorf("plugin init: the files are written in %s, but %w", p.dir, err)
		}
		if p.sdk == "" {
			files = append(files, "go.sum")
		}
	}
	slices.Sort(files)
	return files, nil
}

// goModTidy runs go mod tidy in dir, then checks that every package the
// project builds and tests with resolves. Tidy runs with -e: it also looks
// for the imports of the tests of dependencies whose modules predate module
// graph pruning (hdrhistogram-go's tests import testify, gonum, go-cmp),
// which the project never builds and which need not be in the module
// cache; go list -deps -test then reports any error that matters.
func goModTidy(ctx context.Context, dir string) error {
	for _, args := range [][]string{{"mod", "tidy", "-e"}, {"list", "-deps", "-test", "./..."}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s failed there (fix go.mod, then run go mod tidy): %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
	}
	return nil
}

// templateData returns what the templates see for p.
func (p *pluginInit) templateData() (templateData, error) {
	d := templateData{Module: filepath.Base(p.dir), Kind: p.kind, SDKPath: p.sdk}
	if p.sdk != "" {
		// Any version will do: the replace directive decides.
		d.WispVersion = "v0.0.0-00010101000000-000000000000"
		if _, v, err := readGoMod(filepath.Join(p.sdk, "go.mod")); err == nil && v != "" {
			d.GoVersion = v
		}
	} else {
		v := buildinfo.Get().Version
		if !strings.HasPrefix(v, "v") {
			return d, usageErrorf("no checkout of %s around the current directory, and this wisp is a development build (version %s), so go.mod cannot require a published version: pass --sdk PATH of a wisp checkout", wispModule, v)
		}
		d.WispVersion = v
	}
	if d.GoVersion == "" {
		// The toolchain that built this binary: go1.26.8 -> 1.26.8.
		d.GoVersion = strings.TrimPrefix(strings.Fields(runtime.Version())[0], "go")
	}
	return d, nil
}

// checkEmptyDir fails unless dir is missing or an empty directory; it
// makes dir if it is missing.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("plugin init: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("plugin init: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("plugin init: %s: %w (it holds %s): choose a new directory", dir, errDirNotEmpty, entries[0].Name())
	}
	return nil
}

// renderTemplate executes the embedded template name with data into the
// file out.
func renderTemplate(name, out string, data templateData) error {
	src, err := fs.ReadFile(pluginTemplates, name)
	if err != nil {
		return fmt.Errorf("plugin init: template %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{"quote": strconv.Quote}).Parse(string(src))
	if err != nil {
		return fmt.Errorf("plugin init: template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("plugin init: template %s: %w", name, err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("plugin init: %w", err)
	}
	return nil
}

// writePluginInitReport tells what plugin init made and what to do next.
func writePluginInitReport(cmd *cobra.Command, p *pluginInit, files []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Created the %s plugin %s in %s:\n", p.kind, filepath.Base(p.dir), p.dir)
	for _, f := range files {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	if p.sdk != "" {
		fmt.Fprintf(&b, "go.mod uses the wisp checkout %s.\n", p.sdk)
	}
	name := filepath.Base(p.dir)
	fmt.Fprintf(&b, "\nNext:\n  cd %s\n  make && go test ./...\n  wisp plugin upload %s.wasm --kind %s --name %s\n  wisp plugin activate %s@1\n",
		p.dir, name, p.kind, name, name)
	return writef(cmd.OutOrStdout(), "%s", b.String())
}
