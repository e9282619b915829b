// Package buildinfo reports which Wisp this binary is: the module version and
// the VCS revision Go stamped into it (debug.ReadBuildInfo), for `wisp
// version`, `wispd version` and the wisp_build_info metric.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Info describes the running binary. Fields Go did not record are empty;
// Version is "(devel)" for a binary built from a checkout, as Go reports it.
type Info struct {
	Version   string `json:"version"`    // module version, e.g. v0.3.0 or (devel)
	Revision  string `json:"revision"`   // VCS commit, empty if unknown
	Time      string `json:"time"`       // commit time (RFC 3339), empty if unknown
	Modified  bool   `json:"modified"`   // the work tree had uncommitted changes
	GoVersion string `json:"go_version"` // the toolchain that built it
}

// Get returns the binary's build information, read once.
var Get = sync.OnceValue(func() Info {
	info := Info{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
})

// String is the one-line form: "v0.3.0 (abc123def456, modified) go1.26.8".
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		rev = "unknown revision"
	}
	if i.Modified {
		rev += ", modified"
	}
	return fmt.Sprintf("%s (%s) %s", i.Version, rev, i.GoVersion)
}
