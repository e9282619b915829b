package engine

import (
	"bytes"
	"fmt"
	"strings"
)

// recomputeMemory returns MemoryUsed the slow way: a walk summing every
// stored key's footprint.
func (e *Engine) recomputeMemory() int64 {
	var n int64
	e.tree.Scan(func(s slot) bool {
		n += s.footprint()
		return true
	})
	return n
}

// checkInvariants walks the whole engine and reports the first broken
// invariant: MemoryUsed against a recomputation, the TTL index against the
// keyspace (exactly the volatile keys, aliasing their slots' keys), and the
// settings map's order and bounds.
func (e *Engine) checkInvariants() error {
	if got, want := e.MemoryUsed(), e.recomputeMemory(); got != want {
		return fmt.Errorf("MemoryUsed() = %d; recomputed %d", got, want)
	}
	var want []ttlItem
	e.tree.Scan(func(s slot) bool {
		if s.e.expiresAtUnixMs != 0 {
			want = append(want, ttlItem{s.e.expiresAtUnixMs, s.key})
		}
		return true
	})
	if got := e.ttl.Len(); got != len(want) {
		return fmt.Errorf("TTL index holds %d items; the keyspace has %d volatile keys", got, len(want))
	}
	var err error
	e.ttl.Scan(func(it ttlItem) bool {
		s, ok := e.tree.Get(slot{key: it.key})
		switch {
		case !ok:
			err = fmt.Errorf("TTL index holds %q@%d, absent from the keyspace", it.key, it.expiresAtUnixMs)
		case s.e.expiresAtUnixMs != it.expiresAtUnixMs:
			err = fmt.Errorf("TTL index holds %q@%d; the key expires at %d", it.key, it.expiresAtUnixMs, s.e.expiresAtUnixMs)
		case &s.key[0] != &it.key[0]:
			err = fmt.Errorf("TTL index item %q does not alias its slot's key", it.key)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	for i, m := range e.meta {
		switch {
		case len(m.name) == 0 || len(m.name) > maxMetaNameBytes || len(m.value) == 0 || len(m.value) > maxMetaValueBytes:
			return fmt.Errorf("setting %q=%q out of bounds", m.name, m.value)
		case i > 0 && e.meta[i-1].name >= m.name:
			return fmt.Errorf("settings %q and %q out of order", e.meta[i-1].name, m.name)
		}
	}
	if len(e.meta) > maxMetaSettings || (e.meta != nil && len(e.meta) == 0) {
		return fmt.Errorf("%d settings (nil: %v)", len(e.meta), e.meta == nil)
	}
	return nil
}

// dumpMeta lists the settings as "name=value" separated by spaces.
func dumpMeta(e *Engine) string {
	var b strings.Builder
	for i, name := range e.MetaNames() {
		if i > 0 {
			b.WriteByte(' ')
		}
		v, _ := e.Meta(name)
		fmt.Fprintf(&b, "%s=%s", name, bytes.Clone(v))
	}
	return b.String()
}
