// Package meta is the cluster map as a deterministic state machine: the
// nodes and their states, the shard layout, the cluster-wide settings and
// the membership moves in progress. It is the state of the cluster's meta
// Raft group (hosted like any shard, on up to five nodes), and what every
// node routes by and the placement driver plans from.
//
// Like engine, it is pure: commands in, a new map and a result out; no
// network, disk, goroutines, clock or randomness (time comes in the
// command). Every change raises Epoch by one, so "the map at epoch E" names
// one map on every replica, and clients notice a changed map by its epoch
// (the Wisp-Epoch header).
//
// What the map does not hold: where each shard's replicas are. That is each
// shard's own Raft configuration (the truth Raft acts on); the placement
// driver reads it from the shard leaders and records only the moves it has
// under way (Moves), so a new meta leader resumes them and status shows
// them.
//
// Encoding: commands and snapshots are JSON with a format number, decoded
// strictly (unknown fields refused, sizes bounded, every value validated).
// The map is small (nodes by the dozen, shards by the thousand at most)
// and changes a few times a minute at most, so readability beats
// compactness here; the hot paths (engine commands, Raft RPCs) keep their
// binary codecs.
//
// Invariants (checked by Validate after every Apply in tests):
//   - Nodes are sorted by ID, IDs are unique and valid, Raft addresses are
//     unique among nodes.
//   - Epoch is 0 only before Bootstrap; Shards and KeyVnodes are set by
//     Bootstrap and never change.
//   - Moves are sorted by shard, at most one per shard, each naming a shard
//     below Shards and a node in Nodes.
package meta
