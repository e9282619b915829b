// Package raftgroup runs one Raft group: a replica of one shard, built on
// hashicorp/raft with a raft-boltdb/v2 log and stable store (fsync on every
// append) and file snapshots, applying committed entries to an engine.Engine.
//
// The package stays thin: it encodes commands, proposes them, decodes
// committed entries, calls the engine and returns typed results. Nothing from
// hashicorp/raft leaks out of it.
//
// # Writes
//
// Propose stamps the leader's clock into the command (the only time the engine
// ever sees), encodes it and hands it to raft.Apply. hashicorp/raft batches
// entries that queue up while a disk write is in flight into one append and one
// fsync (BatchApplyCh), and the FSM applies committed entries in batches
// (BatchingFSM), taking the engine's write lock once per batch.
//
// # Linearizable reads (read index, no log write per read)
//
// hashicorp/raft never hands LogNoop or LogBarrier entries to the FSM, and its
// AppliedIndex counts entries dispatched to the FSM rather than applied, so
// "wait until applied >= commit" is unsound. Instead:
//
//  1. Once per leadership term the leader runs a Barrier before serving reads:
//     afterwards every entry committed by earlier leaders is in its FSM.
//  2. Per read, VerifyLeader confirms that a quorum still follows this leader.
//     Rounds are coalesced: every read waiting when a round starts shares it,
//     and a read that arrives during a round joins the next one (a round that
//     began before the read cannot vouch for it).
//  3. If the term did not change meanwhile, the local FSM is read. Every write
//     acknowledged to any client was applied to the leader's FSM before its
//     future returned, so the read sees it.
//
// # Goroutines
//
// Besides hashicorp/raft's own, a Group owns at most one goroutine: the
// leadership verifier, started on demand and gone when no read waits. Propose
// waits for its future in a short-lived goroutine per call so that the
// caller's context is honoured. Close stops everything and is safe to call
// twice.
//
// hashicorp/raft v1.8.0 can lose a future queued just as it shuts down (it
// sits in a buffered channel nobody drains): every wait on a future also
// watches the group's stop channel, so Kill and Close never hang on one.
package raftgroup
