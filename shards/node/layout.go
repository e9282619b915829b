package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// layoutFile records, in a node's data directory, what was fixed when the
// cluster was created: the shard count, the key ring's vnodes and the
// members. Keys map to shards by the first two, and shards to nodes by the
// members, so a node refuses to start with other values: a replica placed
// by another member list would open a Raft group whose stored
// configuration names other nodes, and acknowledged writes could be lost.
const layoutFile = "cluster.json"

// layoutFormat is the version of the data directory's layout.
const layoutFormat = 1

type layout struct {
	Format    int `json:"format"`
	Shards    int `json:"shards"`
	KeyVnodes int `json:"key_vnodes"`
	// Members is the cluster's member list, sorted by id. Absent in files
	// written before it was recorded: such a file gets it on the next start.
	Members []layoutMember `json:"members,omitempty"`
}

// layoutMember is what of a Peer decides placement and Raft addressing.
// The API URL is not part of it: it may change between starts.
type layoutMember struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Zone     string `json:"zone,omitempty"`
}

func layoutMembers(peers []Peer) []layoutMember {
	ms := make([]layoutMember, 0, len(peers))
	for _, p := range peers {
		ms = append(ms, layoutMember{ID: p.ID, RaftAddr: p.RaftAddr, Zone: p.Zone})
	}
	slices.SortFunc(ms, func(a, b layoutMember) int { return strings.Compare(a.ID, b.ID) })
	return ms
}

// ErrMembersChanged is returned (wrapped in a *MembersChangedError) when a
// node starts with a member list other than the one its data directory was
// created with. Membership changes are not supported yet.
var ErrMembersChanged = errors.New("cluster members changed")

// MembersChangedError says which members a data directory was created with.
type MembersChangedError struct {
	Path    string   // the layout file
	Created []string // member ids (with raft addresses) the cluster was created with
	Given   []string // member ids (with raft addresses) of this start
}

func (e *MembersChangedError) Error() string {
	return fmt.Sprintf("%s: the cluster was created with %d members (%s), not these %d (%s): changing a cluster's members is not supported yet; start with the members it was created with, or on an empty --data-dir",
		e.Path, len(e.Created), strings.Join(e.Created, ", "), len(e.Given), strings.Join(e.Given, ", "))
}

func (e *MembersChangedError) Unwrap() error { return ErrMembersChanged }

func memberNames(ms []layoutMember) []string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.ID + "@" + m.RaftAddr
		if m.Zone != "" {
			names[i] += " zone " + m.Zone
		}
	}
	return names
}

// checkLayout creates dir and its layout file, or checks an existing one
// against the configured shard count, vnodes and members. Nil peers: the
// node has a cluster map, which decides the members; they are not checked.
func checkLayout(dir string, shards, keyVnodes int, peers []Peer) error {
	want := layout{Format: layoutFormat, Shards: shards, KeyVnodes: keyVnodes}
	if peers != nil {
		want.Members = layoutMembers(peers)
	}
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
		return writeLayout(path, want)
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
	case peers == nil:
	case got.Members == nil:
		// Written before members were recorded: record them now.
		return writeLayout(path, want)
	case !slices.Equal(got.Members, want.Members):
		return &MembersChangedError{Path: path, Created: memberNames(got.Members), Given: memberNames(want.Members)}
	}
	return nil
}

func writeLayout(path string, l layout) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", layoutFile, err)
	}
	return writeFileSync(path, append(b, '\n'))
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
