package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/sdk/client"
)

// TestConfigTable: config get's columns fit their widest cell, whatever the
// settings, so that a long size such as "512 MiB (536870912)" does not run
// into the next column.
func TestConfigTable(t *testing.T) {
	ptr := func(v int64) *int64 { return &v }
	str := func(s string) *string { return &s }
	tests := []struct {
		name     string
		set, eff client.Config
	}{
		{"unset", client.Config{}, client.Config{MaxMemoryBytes: ptr(0), EvictionPolicy: str("noeviction")}},
		{"set", client.Config{MaxMemoryBytes: ptr(512 << 20), EvictionPolicy: str("allkeys-lfu")},
			client.Config{MaxMemoryBytes: ptr(512 << 20), EvictionPolicy: str("allkeys-lfu")}},
		{"large", client.Config{MaxMemoryBytes: ptr(3 << 40), EvictionPolicy: str("volatile-random")},
			client.Config{MaxMemoryBytes: ptr(3 << 40), EvictionPolicy: str("volatile-random")}},
		{"unknown", client.Config{}, client.Config{}},
	}
	var all strings.Builder
	for _, tc := range tests {
		var buf bytes.Buffer
		if err := writeConfigTable(&buf, tc.set, tc.eff); err != nil {
			t.Fatal(err)
		}
		checkColumns(t, tc.name, buf.String())
		fmt.Fprintf(&all, "# %s\n%s\n", tc.name, buf.String())
	}
	golden(t, "config.txt", all.String())
}

// checkColumns checks that every row of the 3-column table out starts its
// second and third cells where the header's do, after at least two
// spaces.
func checkColumns(t *testing.T, name, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := lines[0]
	inForce, clusterWide := strings.Index(header, "IN FORCE"), strings.Index(header, "CLUSTER-WIDE")
	for _, line := range lines[1:] {
		if len(line) <= clusterWide ||
			line[inForce-2:inForce] != "  " || line[inForce] == ' ' ||
			line[clusterWide-2:clusterWide] != "  " || line[clusterWide] == ' ' {
			t.Errorf("%s: row %q is not aligned with the header %q", name, line, header)
		}
	}
}
