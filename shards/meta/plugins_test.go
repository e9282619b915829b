package meta

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func sum(i int) string { return fmt.Sprintf("%064x", i) }

func addPlugin(name, kind string, module int) *Command {
	return &Command{Op: OpAddPlugin, Plugin: &PluginCommand{Name: name, Kind: kind, SHA256: sum(module), SizeBytes: 1000, AtUnixMs: 1}}
}

func activate(name string, v int, prefix string) *Command {
	return &Command{Op: OpActivatePlugin, Plugin: &PluginCommand{Name: name, Version: v, Prefix: prefix}}
}

func TestPluginLifecycle(t *testing.T) {
	m := bootstrapped(t, 3)
	m = mustApply(t, m, addPlugin("gdsf", PluginEviction, 1))
	m = mustApply(t, m, addPlugin("gdsf", PluginEviction, 2))
	p, _ := m.Plugin("gdsf")
	if len(p.Versions) != 2 || p.Versions[1].Version != 2 || p.Active != 0 {
		t.Fatalf("after two uploads: %+v", p)
	}

	// The same module again is its stored version: no change, no epoch.
	if again := mustApply(t, m, addPlugin("gdsf", PluginEviction, 1)); again != m {
		t.Errorf("re-uploading version 1's module changed the map")
	}

	m = mustApply(t, m, activate("gdsf", 1, ""))
	m = mustApply(t, m, activate("gdsf", 2, ""))
	p, _ = m.Plugin("gdsf")
	if p.Active != 2 || p.Previous != 1 || p.ActivatedEpoch != m.Epoch {
		t.Fatalf("after activating 1 then 2: active %d previous %d at epoch %d (map %d)", p.Active, p.Previous, p.ActivatedEpoch, m.Epoch)
	}
	m = mustApply(t, m, &Command{Op: OpRollbackPlugin, Plugin: &PluginCommand{Name: "gdsf"}})
	if p, _ = m.Plugin("gdsf"); p.Active != 1 || p.Previous != 2 {
		t.Fatalf("after rollback: active %d previous %d, want 1 and 2", p.Active, p.Previous)
	}
	m = mustApply(t, m, &Command{Op: OpDeactivatePlugin, Plugin: &PluginCommand{Name: "gdsf"}})
	if p, _ = m.Plugin("gdsf"); p.Active != 0 || p.Previous != 1 {
		t.Fatalf("after deactivate: active %d previous %d, want 0 and 1", p.Active, p.Previous)
	}
	m = mustApply(t, m, &Command{Op: OpRollbackPlugin, Plugin: &PluginCommand{Name: "gdsf"}})
	if p, _ = m.Plugin("gdsf"); p.Active != 1 || p.Previous != 0 {
		t.Fatalf("rollback after deactivate: active %d previous %d, want 1 and 0", p.Active, p.Previous)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPluginRefusals(t *testing.T) {
	m := bootstrapped(t, 3)
	m = mustApply(t, m, addPlugin("gdsf", PluginEviction, 1))
	m = mustApply(t, m, addPlugin("other", PluginEviction, 2))
	m = mustApply(t, m, activate("gdsf", 1, "cache/"))
	for _, tc := range []struct {
		name string
		cmd  *Command
		want error
	}{
		{"unknown kind", addPlugin("x", "hotkey", 3), ErrInvalid},
		{"bad name", addPlugin("Bad Name", PluginTTL, 3), ErrInvalid},
		{"name starting with a digit", addPlugin("1x", PluginTTL, 3), ErrInvalid},
		{"bad sha", &Command{Op: OpAddPlugin, Plugin: &PluginCommand{Name: "x", Kind: PluginTTL, SHA256: "abc", SizeBytes: 1}}, ErrInvalid},
		{"empty module", &Command{Op: OpAddPlugin, Plugin: &PluginCommand{Name: "x", Kind: PluginTTL, SHA256: sum(3)}}, ErrInvalid},
		{"version on an upload", &Command{Op: OpAddPlugin, Plugin: &PluginCommand{Name: "x", Kind: PluginTTL, SHA256: sum(3), SizeBytes: 1, Version: 2}}, ErrInvalid},
		{"another kind under a name", addPlugin("gdsf", PluginTTL, 3), ErrPluginConflict},
		{"unknown plugin", activate("nope", 1, ""), ErrUnknownPlugin},
		{"unknown version", activate("gdsf", 9, ""), ErrUnknownPlugin},
		{"version 0", activate("gdsf", 0, ""), ErrInvalid},
		{"long prefix", activate("gdsf", 1, strings.Repeat("p", MaxPluginPrefixBytes+1)), ErrInvalid},
		{"two active for one prefix", activate("other", 1, "cache/"), ErrPluginConflict},
		{"rollback without a previous", &Command{Op: OpRollbackPlugin, Plugin: &PluginCommand{Name: "gdsf"}}, ErrPluginConflict},
		{"no plugin argument", &Command{Op: OpDeactivatePlugin}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, err := Apply(m, tc.cmd)
			if !errors.Is(err, tc.want) || next != m {
				t.Errorf("Apply(%+v) = %v (map changed: %v), want %v", tc.cmd.Plugin, err, next != m, tc.want)
			}
		})
	}
	// Another prefix, or the whole keyspace, is another scope: allowed.
	mustApply(t, m, activate("other", 1, ""))
}

// TestPluginVersionsBounded: uploads beyond MaxPluginVersions drop the
// oldest version that is neither active nor previous, and numbers keep
// rising.
func TestPluginVersionsBounded(t *testing.T) {
	m := bootstrapped(t, 3)
	m = mustApply(t, m, addPlugin("p", PluginTTL, 1))
	m = mustApply(t, m, addPlugin("p", PluginTTL, 2))
	m = mustApply(t, m, activate("p", 1, ""))
	m = mustApply(t, m, activate("p", 2, ""))
	for i := 3; i <= 3*MaxPluginVersions; i++ {
		m = mustApply(t, m, addPlugin("p", PluginTTL, i))
	}
	p, _ := m.Plugin("p")
	if len(p.Versions) != MaxPluginVersions {
		t.Fatalf("%d versions kept, want %d", len(p.Versions), MaxPluginVersions)
	}
	if _, ok := p.Version(1); !ok {
		t.Error("the previous version 1 was dropped")
	}
	if _, ok := p.Version(2); !ok {
		t.Error("the active version 2 was dropped")
	}
	if last := p.Versions[len(p.Versions)-1].Version; last != 3*MaxPluginVersions {
		t.Errorf("newest version %d, want %d", last, 3*MaxPluginVersions)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestPluginChangeSharesNothing: a plugin change leaves the map it was
// applied to as it was.
func TestPluginChangeSharesNothing(t *testing.T) {
	m := bootstrapped(t, 3)
	m = mustApply(t, m, addPlugin("p", PluginTTL, 1))
	before, _ := encodeMap(m)
	mustApply(t, m, addPlugin("p", PluginTTL, 2))
	mustApply(t, m, activate("p", 1, "x/"))
	after, _ := encodeMap(m)
	if string(before) != string(after) {
		t.Errorf("applying to m changed m:\n%s\n%s", before, after)
	}
}

func randomPluginCommand(r *rand.Rand) *Command {
	name := []string{"a", "b", "c"}[r.IntN(3)]
	kind := PluginEviction
	if name == "c" || r.IntN(10) == 0 {
		kind = PluginTTL
	}
	switch r.IntN(5) {
	case 0, 1:
		return addPlugin(name, kind, r.IntN(30))
	case 2:
		return activate(name, 1+r.IntN(12), []string{"", "x/", "y/"}[r.IntN(3)])
	case 3:
		return &Command{Op: OpDeactivatePlugin, Plugin: &PluginCommand{Name: name}}
	default:
		return &Command{Op: OpRollbackPlugin, Plugin: &PluginCommand{Name: name}}
	}
}
