package main

import (
	"encoding/json"
	"testing"

	"github.com/wisp-db/wisp/buildinfo"
)

func TestVersion(t *testing.T) {
	// Nothing listens at the endpoint: version makes no call.
	const endpoint = "--endpoint=http://127.0.0.1:1"
	info := buildinfo.Get()
	r := wisp(t, endpoint, "version")
	if want := "wisp " + info.String() + "\n"; r.code != exitOK || r.stdout != want || r.stderr != "" {
		t.Errorf("version = exit %d, stdout %q, stderr %q; want 0, %q", r.code, r.stdout, r.stderr, want)
	}

	r = wisp(t, endpoint, "--output", "json", "version")
	var got buildinfo.Info
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != exitOK || err != nil || got != info {
		t.Errorf("version -o json = exit %d, %q (%v); want %+v", r.code, r.stdout, err, info)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "revision", "time", "modified", "go_version"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("version -o json = %s; want a %q field", r.stdout, k)
		}
	}

	if r := wisp(t, endpoint, "version", "extra"); r.code != exitUsage {
		t.Errorf("version extra = exit %d; want %d", r.code, exitUsage)
	}
}
