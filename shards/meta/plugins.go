package meta

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The plugin registry: the WebAssembly modules operators uploaded, by name
// and version, and which version of each is active where. Only the
// modules' SHA-256 and size are here; their bytes are kept beside the map
// in the meta group (shards/metastore), so that the map every node is
// pushed stays small.
//
// Activation is a map change like any other: every node switches to the
// new version when its map reaches the epoch that activated it, so "the
// policy at epoch E" is one policy everywhere.

// Plugin kinds: what decision a module makes (docs/PLUGINS.md).
const (
	PluginEviction = "eviction"
	PluginTTL      = "ttl"
)

// Plugin is one named plugin and its versions.
type Plugin struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Versions are the stored versions, ascending. At most
	// MaxPluginVersions are kept: a new upload drops the oldest one that
	// is neither active nor previous.
	Versions []PluginVersion `json:"versions"`
	// Active is the active version, 0 if none; Prefix is where it applies
	// ("" everywhere the kind applies; else keys with that prefix).
	Active int    `json:"active,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Previous is the version that was active before Active (or before
	// the plugin was deactivated): what rollback returns to. 0 if none.
	Previous int `json:"previous,omitempty"`
	// ActivatedEpoch is the epoch of the last activation, deactivation or
	// rollback.
	ActivatedEpoch uint64 `json:"activated_epoch,omitempty"`
}

// PluginVersion is one uploaded module.
type PluginVersion struct {
	Version int `json:"version"`
	// SHA256 is the module's SHA-256, in lowercase hex: the key of its
	// bytes in the meta group, and of nodes' compiled-module caches.
	SHA256         string `json:"sha256"`
	SizeBytes      int64  `json:"size_bytes"`
	UploadedUnixMs int64  `json:"uploaded_unix_ms"`
}

// PluginCommand is the argument of the plugin ops. Which fields matter
// depends on the op; the others must be zero.
type PluginCommand struct {
	Name string `json:"name"`
	// OpAddPlugin: the kind and the module.
	Kind      string `json:"kind,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
	AtUnixMs  int64  `json:"at_unix_ms,omitempty"`
	// OpActivatePlugin: the version and where it applies.
	Version int    `json:"version,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
}

// Limits of the registry.
const (
	// MaxPlugins bounds the named plugins.
	MaxPlugins = 64
	// MaxPluginVersions bounds the versions kept per plugin.
	MaxPluginVersions = 8
	// MaxPluginPrefixBytes bounds an activation's key prefix.
	MaxPluginPrefixBytes = 1024
	// MaxPluginModuleBytes bounds a module's size as the map records it
	// (the host's own limit, plugins.WithModuleSizeBytesMax, is lower by
	// default).
	MaxPluginModuleBytes = 64 << 20
)

// Errors of the plugin ops.
var (
	// ErrUnknownPlugin: no plugin has the name, or it has no such version.
	ErrUnknownPlugin = errors.New("unknown plugin")
	// ErrPluginConflict: the change contradicts the registry (another kind
	// under the name, another active plugin of the kind on the prefix, no
	// previous version to roll back to).
	ErrPluginConflict = errors.New("plugin change conflicts with the registry")
)

// Plugin returns the plugin called name.
func (m *Map) Plugin(name string) (Plugin, bool) {
	if i, ok := m.findPlugin(name); ok {
		return m.Plugins[i], true
	}
	return Plugin{}, false
}

// Version returns version v of p.
func (p *Plugin) Version(v int) (PluginVersion, bool) {
	i, ok := slices.BinarySearchFunc(p.Versions, v, func(pv PluginVersion, v int) int { return pv.Version - v })
	if !ok {
		return PluginVersion{}, false
	}
	return p.Versions[i], true
}

func (m *Map) findPlugin(name string) (int, bool) {
	return slices.BinarySearchFunc(m.Plugins, name, func(p Plugin, n string) int { return strings.Compare(p.Name, n) })
}

// applyPlugin makes a plugin op's change to next (a clone of the map at
// epoch); it reports false if nothing changes.
func (next *Map) applyPlugin(op Op, c *PluginCommand, epoch uint64) (bool, error) {
	i, found := next.findPlugin(c.Name)
	if op == OpAddPlugin {
		if !found {
			if len(next.Plugins) >= MaxPlugins {
				return false, fmt.Errorf("%w: more than %d plugins", ErrPluginConflict, MaxPlugins)
			}
			next.Plugins = slices.Insert(next.Plugins, i, Plugin{Name: c.Name, Kind: c.Kind})
		}
		p := clonePlugin(next.Plugins[i])
		if p.Kind != c.Kind {
			return false, fmt.Errorf("%w: %s is a %s plugin, not %s", ErrPluginConflict, p.Name, p.Kind, c.Kind)
		}
		if slices.ContainsFunc(p.Versions, func(v PluginVersion) bool { return v.SHA256 == c.SHA256 }) {
			return false, nil // the same module again: its version stands
		}
		v := 1
		if n := len(p.Versions); n > 0 {
			v = p.Versions[n-1].Version + 1
		}
		p.Versions = append(p.Versions, PluginVersion{Version: v, SHA256: c.SHA256, SizeBytes: c.SizeBytes, UploadedUnixMs: c.AtUnixMs})
		if len(p.Versions) > MaxPluginVersions {
			drop := slices.IndexFunc(p.Versions, func(pv PluginVersion) bool { return pv.Version != p.Active && pv.Version != p.Previous })
			p.Versions = slices.Delete(p.Versions, drop, drop+1)
		}
		next.Plugins[i] = p
		return true, nil
	}
	if !found {
		return false, fmt.Errorf("%w: %s", ErrUnknownPlugin, c.Name)
	}
	p := clonePlugin(next.Plugins[i])
	switch op {
	case OpActivatePlugin:
		if _, ok := p.Version(c.Version); !ok {
			return false, fmt.Errorf("%w: %s has no version %d", ErrUnknownPlugin, p.Name, c.Version)
		}
		if p.Active == c.Version && p.Prefix == c.Prefix {
			return false, nil
		}
		if err := next.scopeFree(p, c.Prefix); err != nil {
			return false, err
		}
		switch {
		case p.Active != 0 && p.Active != c.Version:
			p.Previous = p.Active
		case p.Previous == c.Version:
			p.Previous = 0 // re-activated: nothing older to return to
		}
		p.Active, p.Prefix = c.Version, c.Prefix
	case OpDeactivatePlugin:
		if p.Active == 0 {
			return false, nil
		}
		p.Previous, p.Active = p.Active, 0
	case OpRollbackPlugin:
		if p.Previous == 0 {
			return false, fmt.Errorf("%w: %s has no previous version to roll back to", ErrPluginConflict, p.Name)
		}
		if p.Active == 0 {
			if err := next.scopeFree(p, p.Prefix); err != nil {
				return false, err
			}
		}
		p.Active, p.Previous = p.Previous, p.Active
	}
	p.ActivatedEpoch = epoch + 1
	next.Plugins[i] = p
	return true, nil
}

// scopeFree refuses to make p active for prefix if another plugin of its
// kind is active there.
func (m *Map) scopeFree(p Plugin, prefix string) error {
	for _, o := range m.Plugins {
		if o.Name != p.Name && o.Kind == p.Kind && o.Active != 0 && o.Prefix == prefix {
			return fmt.Errorf("%w: %s@%d is the active %s plugin for %s: deactivate it first", ErrPluginConflict, o.Name, o.Active, o.Kind, prefixText(o.Prefix))
		}
	}
	return nil
}

// prefixText names an activation's scope in a message.
func prefixText(prefix string) string {
	if prefix == "" {
		return "the whole keyspace"
	}
	return fmt.Sprintf("prefix %q", prefix)
}

// clonePlugin copies p so that a change does not touch the map it came
// from (maps share nothing: see Map).
func clonePlugin(p Plugin) Plugin {
	p.Versions = slices.Clone(p.Versions)
	return p
}

// checkPluginCommand validates a plugin op's argument on its own.
func checkPluginCommand(op Op, c *PluginCommand) error {
	if err := CheckPluginName(c.Name); err != nil {
		return err
	}
	type fields struct{ add, version, prefix bool }
	has := fields{c.Kind != "" || c.SHA256 != "" || c.SizeBytes != 0 || c.AtUnixMs != 0, c.Version != 0, c.Prefix != ""}
	var want fields
	switch op {
	case OpAddPlugin:
		want = fields{add: true}
		if c.Kind != PluginEviction && c.Kind != PluginTTL {
			return fmt.Errorf("kind %q: want %s or %s", c.Kind, PluginEviction, PluginTTL)
		}
		if !isSHA256Hex(c.SHA256) {
			return fmt.Errorf("sha256 %q: want 64 lowercase hex digits", c.SHA256)
		}
		if c.SizeBytes < 1 || c.SizeBytes > MaxPluginModuleBytes || c.AtUnixMs < 0 {
			return fmt.Errorf("module of %d bytes at %d: want 1 to %d bytes", c.SizeBytes, c.AtUnixMs, MaxPluginModuleBytes)
		}
	case OpActivatePlugin:
		want = fields{version: true, prefix: has.prefix}
		if c.Version < 1 {
			return fmt.Errorf("version %d: want 1 or more", c.Version)
		}
		if len(c.Prefix) > MaxPluginPrefixBytes {
			return fmt.Errorf("prefix of %d bytes: at most %d", len(c.Prefix), MaxPluginPrefixBytes)
		}
	case OpDeactivatePlugin, OpRollbackPlugin:
	}
	if has != want {
		return fmt.Errorf("fields set %+v; the op takes %+v", has, want)
	}
	return nil
}

// CheckPluginName validates a plugin's name: 1 to 64 of [a-z0-9_-],
// starting with a letter, so that name@version reads unambiguously.
func CheckPluginName(name string) error {
	if name == "" || len(name) > maxIDBytes {
		return fmt.Errorf("plugin name %q: want 1 to %d bytes", name, maxIDBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_')
		if !ok {
			return fmt.Errorf("plugin name %q: byte %q at %d: want a lowercase letter first, then [a-z0-9_-]", name, c, i)
		}
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validatePlugins checks the registry's invariants.
func (m *Map) validatePlugins() error {
	if len(m.Plugins) > MaxPlugins {
		return fmt.Errorf("%d plugins, at most %d", len(m.Plugins), MaxPlugins)
	}
	type scope struct{ kind, prefix string }
	active := map[scope]string{}
	for i, p := range m.Plugins {
		if i > 0 && m.Plugins[i-1].Name >= p.Name {
			return fmt.Errorf("plugins not sorted or duplicated at %s", p.Name)
		}
		if err := CheckPluginName(p.Name); err != nil {
			return err
		}
		if p.Kind != PluginEviction && p.Kind != PluginTTL {
			return fmt.Errorf("plugin %s: kind %q", p.Name, p.Kind)
		}
		if len(p.Versions) == 0 || len(p.Versions) > MaxPluginVersions {
			return fmt.Errorf("plugin %s: %d versions", p.Name, len(p.Versions))
		}
		for j, v := range p.Versions {
			if v.Version < 1 || j > 0 && p.Versions[j-1].Version >= v.Version || !isSHA256Hex(v.SHA256) || v.SizeBytes < 1 || v.SizeBytes > MaxPluginModuleBytes {
				return fmt.Errorf("plugin %s: version %+v", p.Name, v)
			}
		}
		for _, v := range []int{p.Active, p.Previous} {
			if _, ok := p.Version(v); v != 0 && !ok {
				return fmt.Errorf("plugin %s: active or previous version %d is not stored", p.Name, v)
			}
		}
		if p.Active != 0 && p.Active == p.Previous {
			return fmt.Errorf("plugin %s: version %d both active and previous", p.Name, p.Active)
		}
		if len(p.Prefix) > MaxPluginPrefixBytes {
			return fmt.Errorf("plugin %s: prefix of %d bytes", p.Name, len(p.Prefix))
		}
		if p.Active != 0 {
			s := scope{p.Kind, p.Prefix}
			if other, dup := active[s]; dup {
				return fmt.Errorf("plugins %s and %s both active for %s %s", other, p.Name, p.Kind, prefixText(p.Prefix))
			}
			active[s] = p.Name
		}
	}
	return nil
}
