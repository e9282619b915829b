package engine

import (
	"fmt"
	"slices"
	"strings"
)

// The settings map (OpSetMeta): a few named values replicated beside the
// keyspace, such as the memory budget and the eviction policy. It is not in
// the key tree, so keyspace reads, scans, samples and MemoryUsed never see
// it; Digest and snapshots carry it.

// Bounds of the settings map. Every snapshot and digest carries it whole,
// and every write copies its index, so it stays small: at most
// 256 × (256 B + 64 KiB), about 16 MiB, and in practice a few hundred bytes.
const (
	maxMetaNameBytes  = 256
	maxMetaValueBytes = 64 << 10
	maxMetaSettings   = 256
)

// metaEntry is one setting. Immutable once built.
type metaEntry struct {
	name  string
	value []byte // non-empty
}

func compareMeta(m metaEntry, name string) int { return strings.Compare(m.name, name) }

// Meta returns the value of the setting name and whether it is set. The
// value is shared with the Engine and must not be modified.
func (e *Engine) Meta(name string) ([]byte, bool) {
	if i, ok := slices.BinarySearchFunc(e.meta, name, compareMeta); ok {
		return e.meta[i].value, true
	}
	return nil, false
}

// MetaNames returns the names of the settings, sorted; nil if there are none.
func (e *Engine) MetaNames() []string {
	if len(e.meta) == 0 {
		return nil
	}
	names := make([]string, len(e.meta))
	for i, m := range e.meta {
		names[i] = m.name
	}
	return names
}

// setMeta sets the setting name to a copy of value, or deletes it if value
// is empty, and reports whether it was set before. It builds a new slice
// (e.meta is copy-on-write: snapshots and Apply's rollback hold old ones).
// It fails, wrapping ErrInvalidCommand, if the map would exceed
// maxMetaSettings; validate checked the name and value lengths.
func (e *Engine) setMeta(name []byte, value []byte) (existed bool, err error) {
	i, found := slices.BinarySearchFunc(e.meta, string(name), compareMeta)
	switch {
	case len(value) == 0 && !found:
		return false, nil
	case len(value) == 0:
		e.meta = slices.Delete(slices.Clone(e.meta), i, i+1)
		if len(e.meta) == 0 {
			e.meta = nil
		}
		return true, nil
	case !found && len(e.meta) >= maxMetaSettings:
		return false, fmt.Errorf("%w: setting %q would exceed %d settings", ErrInvalidCommand, name, maxMetaSettings)
	}
	m := metaEntry{name: string(name), value: clone(value)}
	if found {
		e.meta = slices.Clone(e.meta)
		e.meta[i] = m
	} else {
		e.meta = slices.Insert(slices.Clip(e.meta), i, m)
	}
	return found, nil
}

// clone returns a copy of b, never aliasing it.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}
