package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	info := Get()
	if info.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q; want %q", info.GoVersion, runtime.Version())
	}
	if info.Version == "" {
		t.Error("Version is empty; want the module version or (devel)")
	}
	if s := info.String(); !strings.Contains(s, info.Version) || !strings.HasSuffix(s, runtime.Version()) {
		t.Errorf("String() = %q; want the version and the Go version", s)
	}
}

func TestStringShortensRevision(t *testing.T) {
	i := Info{Version: "v1.2.3", Revision: "0123456789abcdef0123", Modified: true, GoVersion: "go1.26.8"}
	if got, want := i.String(), "v1.2.3 (0123456789ab, modified) go1.26.8"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
