package raftgroup

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger bridges hashicorp/raft's hclog output into slog.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hclog.Info,
		Output:          slogWriter{l},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter turns hclog's text lines ("[INFO]  raft: message: k=v") into
// slog records. Levels are mapped for an operator of many groups, not one:
// raft's INFO lines are routine state changes of one group (entering
// follower state, pipelining, initial configuration: ~130 lines for a
// 3-node, 8-shard start), so they are DEBUG; WARN and ERROR stay, since
// they mark elections after a lost leader and failures, except the first
// election of a group that never had a leader, which is start-up routine,
// and a leader's failed heartbeat or append to one peer, which is WARN: the
// peer is down, stopping or not yet serving the group (a fact about the
// peer, which gossip and the placement driver act on, not a failure here),
// and a rolling restart would otherwise log ERROR on every other node. So
// is "peer has newer term": a leader learning it was replaced, as every
// leadership transfer does.
//
// Raft's WARN lines that are the routine of elections and catch-up after
// a restart or a move (routineWarnings) are DEBUG too: a follower behind
// the leader's log, a vote refused by a replica that knows a later term,
// a replica the group removed declining to stand. A cluster restart
// logged dozens of them per node.
type slogWriter struct{ l *slog.Logger }

// routineWarnings are the prefixes of raft's WARN lines logged as DEBUG.
var routineWarnings = [][]byte{
	[]byte("raft: failed to get previous log"),
	[]byte("raft: appendEntries rejected, sending older logs"),
	[]byte("raft: rejecting pre-vote request"),
	[]byte("raft: rejecting vote request"),
	[]byte("raft: Election timeout reached, restarting election"),
	[]byte("raft: not part of stable configuration, aborting election"),
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, m := range []struct {
		tag   string
		level slog.Level
	}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}, {"[INFO]", slog.LevelDebug}} {
		if bytes.HasPrefix(line, []byte(m.tag)) {
			level = m.level
			line = bytes.TrimSpace(line[len(m.tag):])
			break
		}
	}
	if level == slog.LevelWarn && bytes.HasPrefix(line, []byte("raft: heartbeat timeout reached")) && bytes.HasSuffix(line, []byte("last-leader-id=")) {
		level = slog.LevelDebug // a first election: no leader was lost
	}
	if level == slog.LevelError && (bytes.HasPrefix(line, []byte("raft: failed to heartbeat to")) || bytes.HasPrefix(line, []byte("raft: failed to appendEntries to")) ||
		bytes.HasPrefix(line, []byte("raft: peer has newer term, stopping replication"))) {
		level = slog.LevelWarn
	}
	if level == slog.LevelWarn {
		for _, routine := range routineWarnings {
			if bytes.HasPrefix(line, routine) {
				level = slog.LevelDebug
				break
			}
		}
	}
	w.l.Log(context.Background(), level, string(line), "component", "raft")
	return len(p), nil
}
