package raftgroup

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestSlogWriterLevels checks how hashicorp/raft's lines are leveled for an
// operator of many groups.
func TestSlogWriterLevels(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[INFO]  raft: entering follower state: follower=x", "level=DEBUG"},
		{"[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=", "level=DEBUG"},
		{"[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:1 last-leader-id=n1", "level=WARN"},
		{`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:1 backoff time=10ms error="transport: group 7: unknown group"`, "level=WARN"},
		{`[ERROR] raft: failed to appendEntries to: peer={Voter n2 127.0.0.1:2} error="dial tcp: connection refused"`, "level=WARN"},
		{`[ERROR] raft: peer has newer term, stopping replication: peer="{Voter n4 127.0.0.1:4}"`, "level=WARN"},
		{"[ERROR] raft: failed to take snapshot: error=disk full", "level=ERROR"},
		{`[WARN]  raft: failed to get previous log: previous-index=10 last-index=9 error="log not found"`, "level=DEBUG"},
		{`[WARN]  raft: appendEntries rejected, sending older logs: peer="{Voter n1 127.0.0.1:7080}" next=10`, "level=DEBUG"},
		{"[WARN]  raft: rejecting pre-vote request since our last term is greater: candidate=127.0.0.1:7080 last-term=6 last-candidate-term=5", "level=DEBUG"},
		{"[WARN]  raft: Election timeout reached, restarting election", "level=DEBUG"},
		{"[WARN]  raft: failed to contact quorum of nodes, stepping down", "level=WARN"},
	} {
		var buf bytes.Buffer
		w := slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		if _, err := w.Write([]byte(tc.in + "\n")); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); !strings.Contains(got, tc.want) || !strings.Contains(got, "component=raft") {
			t.Errorf("%q logged as %q, want %s", tc.in, got, tc.want)
		}
	}
}
