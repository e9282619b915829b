package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/wisp-db/wisp/shards/ring"
)

// layoutFile records, in a node's data directory, what was fixed when the
// cluster was created: the shard count and the key ring's vnodes. Keys map
// to shards by them, so a node refuses to start with other values.
const layoutFile = "cluster.json"

// layoutFormat is the version of the data directory's layout.
const layoutFormat = 1

type layout struct {
	Format    int `json:"format"`
	Shards    int `json:"shards"`
	KeyVnodes int `json:"key_vnodes"`
}

// checkLayout creates dir and its layout file, or checks an existing one
// against the configured shard count and vnodes.
func checkLayout(dir string, shards, keyVnodes int) error {
	want := layout{Format: layoutFormat, Shards: shards, KeyVnodes: keyVnodes}
	path := filepath.Join(dir, layoutFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if old, _ := filepath.Glob(filepath.Join(dir, "shard-*", "raft.db")); len(old) > 0 && !fileExists(filepath.Join(dir, "raft-log.db")) {
			return fmt.Errorf("data directory %s was written by an older Wisp (one shard, no %s): start on an empty --data-dir", dir, layoutFile)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		b, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			return fmt.Errorf("encode %s: %w", layoutFile, err)
		}
		return writeFileSync(path, append(b, '\n'))
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	}
	var got layout
	if err := json.Unmarshal(b, &got); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case got.Format != layoutFormat:
		return fmt.Errorf("%s: data directory format %d, this Wisp reads %d", path, got.Format, layoutFormat)
	case got.Shards != shards || got.KeyVnodes != keyVnodes:
		return fmt.Errorf("%s: the cluster was created with %d shards and %d key vnodes, not %d and %d: the shard count is fixed when a cluster is created (start with --shards %d)",
			path, got.Shards, got.KeyVnodes, shards, keyVnodes, got.Shards)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFileSync writes path atomically and durably: a temporary file,
// fsynced, renamed over path, and the directory fsynced.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(path), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}

// layoutEpoch identifies the layout clients route by: shard count, key
// vnodes, the members and the placement. Every node computes the same value
// from the same configuration.
func layoutEpoch(cfg Config, p ring.Placement) uint64 {
	var d xxhash.Digest
	d.Reset()
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(cfg.Shards))
	binary.BigEndian.PutUint32(b[4:], uint32(cfg.KeyVnodes))
	d.Write(b[:])
	peers := slices.Clone(cfg.Peers)
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	for _, p := range peers {
		fmt.Fprintf(&d, "%q %q %q %q\n", p.ID, p.URL, p.RaftAddr, p.Zone)
	}
	for i, s := range p.Shards {
		fmt.Fprintf(&d, "%d %q %q\n", i, s.Replicas, s.Leader)
	}
	return d.Sum64()
}
