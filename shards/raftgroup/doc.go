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
// Propose hands the command to the group's proposer goroutine, which packs
// the commands waiting at that moment into one entry (engine.AppendPack; a key
// is written at most once per entry, so versions stay unique), stamps the
// leader's clock into them (the only time the engine ever sees) and calls
// raft.Apply. At most Config.MaxInflightPacks entries (default 4) are in flight; while they are,
// commands queue, so packs grow with load and a lone client goes straight
// through. hashicorp/raft batches entries that queue up while a disk write is
// in flight into one append and one fsync (BatchApplyCh), and the FSM applies
// committed entries in batches (BatchingFSM), taking the engine's write lock
// once per batch.
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
// Besides hashicorp/raft's own, a Group owns: the proposer (for its
// lifetime), one waiter per entry in flight (at most Config.MaxInflightPacks), and
// the leadership verifier, started on demand and gone when no read waits.
// Kill closes the stop channel they all watch and waits for them. Close
// stops everything and is safe to call twice.
//
// hashicorp/raft v1.8.0 can lose a future queued just as it shuts down (it
// sits in a buffered channel nobody drains): every wait on a future also
// watches the group's stop channel, so Kill and Close never hang on one.
package raftgroup
