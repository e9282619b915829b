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
// Each shard's replicas are recorded here (Replicas) as its group last
// committed them: nodes and clients route by the map. The shard's own Raft
// configuration is the truth Raft acts on; the placement driver changes it
// one step at a time and records each committed step here, along with the
// move under way (Moves), so a new meta leader resumes it and status shows
// it. Between a committed change and its record the map lags by one step,
// which routing survives (a refusal names the leader; see shards/node).
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
//     below Shards (or MetaShard) and a node in Nodes.
//   - Replicas has one set per shard; each set names distinct members, at
//     least one a voter; so has Meta, the meta group's, once recorded. A
//     node that holds a replica cannot be removed.
//   - Plugins are sorted by name; each keeps 1 to MaxPluginVersions
//     versions, ascending, its active and previous versions among them and
//     never the same one; at most one plugin of a kind is active for a
//     given prefix (the longest matching prefix wins where scopes nest).
package meta
