package raftgroup

// Replayed reports whether the replica has caught up after it opened, so a
// stale read from it cannot go back in time from what it served before a
// restart. hashicorp/raft restores the latest snapshot at start but applies
// the log entries after it only once a leader tells it they are committed,
// so for a moment after a restart the engine holds older data than the
// replica served before it stopped (keys written long ago can read as
// absent). Before the stop, every state it served was at most its log's
// last index, and was committed. So the replica has caught up once its
// state machine has applied
//   - the last index its log held when it opened, or
//   - the commit index a leader of this run told it (commitIndex starts at
//     0 on open and only a leader raises it), which covers everything
//     committed before the stop even when an uncommitted tail of its log
//     was replaced.
//
// It latches: once true it stays true. Linearizable reads need no such
// check (the leader's term barrier covers them); callers serving STALE
// reads must, and send the read elsewhere while it is false.
func (g *Group) Replayed() bool {
	if g.replayed.Load() {
		return true
	}
	applied := g.fsm.applied.Load()
	commit := g.raft.CommitIndex()
	leader, _ := g.Leader()
	if applied >= g.openLastIndex || (leader != "" && commit > 0 && applied >= commit) {
		g.replayed.Store(true)
		return true
	}
	return false
}
