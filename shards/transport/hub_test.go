package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// hubNode is one node of a hub test: a Mux and its Hub.
type hubNode struct {
	mux *Mux
	hub *Hub
}

func startHubNode(t *testing.T, timeout time.Duration) *hubNode {
	t.Helper()
	m, err := Listen("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHub(m, timeout)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	n := &hubNode{mux: m, hub: h}
	t.Cleanup(func() {
		h.Close()
		m.Close()
	})
	return n
}

// openGroup opens group id on n's hub, with its snapshot transport on the
// group's Mux layer.
func (n *hubNode) openGroup(t *testing.T, id uint64) *GroupTransport {
	t.Helper()
	l, err := n.mux.Group(id)
	if err != nil {
		t.Fatal(err)
	}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: l, MaxPool: 1, Timeout: netTimeout, Logger: hclog.NewNullLogger(),
	})
	gt, err := n.hub.Transport(id, nt)
	if err != nil {
		nt.Close()
		t.Fatal(err)
	}
	return gt
}

// answerVotes plays Raft for t until t closes: it answers each vote
// request it takes from t's consumer with what answer returns.
func answerVotes(t *GroupTransport, answer func(*raft.RequestVoteRequest) (any, error)) {
	go func() {
		for {
			select {
			case rpc := <-t.Consumer():
				rpc.Respond(answer(rpc.Command.(*raft.RequestVoteRequest)))
			case <-t.shutdown:
				return
			}
		}
	}()
}

// voteTerm answers every vote request with term.
func voteTerm(term uint64) func(*raft.RequestVoteRequest) (any, error) {
	return func(*raft.RequestVoteRequest) (any, error) { return &raft.RequestVoteResponse{Term: term}, nil }
}

func voteRequest() *raft.RequestVoteRequest {
	return &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte("a:1")},
		Term:      7, LastLogIndex: 3, LastLogTerm: 2,
	}
}

// TestHubRoundTrip: a vote request reaches the peer group's consumer as
// sent, and the answer Raft gives comes back; an error answer comes back as
// an error.
func TestHubRoundTrip(t *testing.T) {
	a, b := startHubNode(t, netTimeout), startHubNode(t, netTimeout)
	ta := a.openGroup(t, 3)
	tb := b.openGroup(t, 3)
	calls := 0
	answerVotes(tb, func(req *raft.RequestVoteRequest) (any, error) {
		calls++ // only the answering goroutine touches it
		if calls == 1 {
			return &raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil
		}
		return nil, errors.New("no vote for you")
	})
	var resp raft.RequestVoteResponse
	if err := ta.RequestVote("b", tb.LocalAddr(), voteRequest(), &resp); err != nil {
		t.Fatalf("RequestVote: %v", err)
	}
	if resp.Term != 7 || !resp.Granted {
		t.Errorf("RequestVote answer = %+v; want term 7, granted", resp)
	}
	err := ta.RequestVote("b", tb.LocalAddr(), voteRequest(), &resp)
	if err == nil || !strings.Contains(err.Error(), "no vote for you") {
		t.Errorf("RequestVote error = %v; want the peer's error text", err)
	}
}

// TestHubUnknownGroup: a call to a group the peer does not host fails at
// once with the peer's word for it, not after a timeout.
func TestHubUnknownGroup(t *testing.T) {
	a, b := startHubNode(t, netTimeout), startHubNode(t, netTimeout)
	ta := a.openGroup(t, 1)
	start := time.Now()
	var resp raft.RequestVoteResponse
	err := ta.RequestVote("b", raft.ServerAddress(b.mux.Addr().String()), voteRequest(), &resp)
	if err == nil || !strings.Contains(err.Error(), ErrUnknownGroup.Error()) {
		t.Fatalf("RequestVote to an unknown group = %v; want %q", err, ErrUnknownGroup)
	}
	if d := time.Since(start); d > netTimeout/2 {
		t.Errorf("refusal took %v; want one round trip", d)
	}
}

// TestHubTimeout: a peer group that never answers fails the call after the
// hub's timeout, and a later call on a new wire works once it answers.
func TestHubTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a, b := startHubNode(t, timeout), startHubNode(t, timeout)
	ta := a.openGroup(t, 1)
	tb := b.openGroup(t, 1) // nobody reads its Consumer yet
	var resp raft.RequestVoteResponse
	err := ta.RequestVote("b", tb.LocalAddr(), voteRequest(), &resp)
	if !errors.Is(err, errTimeout) {
		t.Fatalf("RequestVote to a silent group = %v; want errTimeout", err)
	}
	// Raft answers the request that was queued (into the void), then the
	// next one.
	answerVotes(tb, voteTerm(9))
	if err := ta.RequestVote("b", tb.LocalAddr(), voteRequest(), &resp); err != nil || resp.Term != 9 {
		t.Fatalf("RequestVote after the timeout = %+v, %v; want term 9", resp, err)
	}
}

// TestHubHostileFrames: what is not a well-formed frame closes that
// connection, and the hub keeps serving everyone else.
func TestHubHostileFrames(t *testing.T) {
	a, b := startHubNode(t, netTimeout), startHubNode(t, netTimeout)
	ta := a.openGroup(t, 1)
	tb := b.openGroup(t, 1)
	answerVotes(tb, voteTerm(1))
	frame := func(n uint32, kind byte, payload []byte) []byte {
		f := binary.BigEndian.AppendUint32(nil, n)
		f = append(f, kind)
		f = binary.BigEndian.AppendUint64(f, 1)
		f = binary.BigEndian.AppendUint64(f, 1)
		return append(f, payload...)
	}
	for name, raw := range map[string][]byte{
		"length under the header":  frame(3, kindRequestVote, nil),
		"length over the bound":    frame(maxFrameBytes+1, kindRequestVote, nil),
		"unknown kind":             frame(17+2, 0x42, []byte{1, 0}),
		"bad payload":              frame(17+3, kindRequestVote, []byte{9, 9, 9}),
		"truncated append payload": frame(17+2, kindAppendEntries, []byte{1, 0}),
	} {
		t.Run(name, func(t *testing.T) {
			// Connect to b's hub as a peer hub would.
			c, err := net.Dial("tcp", b.mux.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := handshake(c, HubID, time.Now().Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(raw); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			for {
				_, err = c.Read(buf)
				if err != nil {
					break
				}
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open 5s after %s", name)
			}
			if err != io.EOF && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Logf("read ended with %v", err)
			}
			var resp raft.RequestVoteResponse
			if err := ta.RequestVote("b", tb.LocalAddr(), voteRequest(), &resp); err != nil {
				t.Fatalf("a well-behaved peer after the hostile one: %v", err)
			}
		})
	}
}

// TestHubInstallSnapshot: a replica that lost its state catches up from a
// snapshot, which travels on the group's NetworkTransport while everything
// else goes through the hub.
func TestHubInstallSnapshot(t *testing.T) {
	base := runtime.NumGoroutine()
	nodes := []*hubNode{startHubNode(t, netTimeout), startHubNode(t, netTimeout), startHubNode(t, netTimeout)}
	const group = 5
	type replica struct {
		tr  *GroupTransport
		r   *raft.Raft
		fsm *countFSM
	}
	conf := raft.Configuration{}
	for i, n := range nodes {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: nodeID(i), Address: raft.ServerAddress(n.mux.Addr().String())})
	}
	start := func(i int, bootstrap bool) *replica {
		rc := raft.DefaultConfig()
		rc.LocalID = nodeID(i)
		rc.Logger = hclog.NewNullLogger()
		rc.HeartbeatTimeout, rc.ElectionTimeout = testTiming.heartbeat, testTiming.election
		rc.LeaderLeaseTimeout, rc.CommitTimeout = testTiming.lease, testTiming.commit
		rc.SnapshotThreshold, rc.TrailingLogs, rc.SnapshotInterval = 50, 10, 50*time.Millisecond
		store, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
		tr := nodes[i].openGroup(t, group)
		if bootstrap {
			if err := raft.BootstrapCluster(rc, store, store, snaps, tr, conf); err != nil {
				t.Fatal(err)
			}
		}
		fsm := &countFSM{}
		r, err := raft.NewRaft(rc, fsm, store, store, snaps, tr)
		if err != nil {
			t.Fatal(err)
		}
		return &replica{tr: tr, r: r, fsm: fsm}
	}
	reps := []*replica{start(0, true), start(1, true), start(2, true)}
	defer func() {
		for _, rp := range reps {
			rp.r.Shutdown().Error()
			rp.tr.Close()
		}
	}()
	leaderOf := func() *replica {
		var l *replica
		waitFor(t, "a leader", 20*time.Second, func() bool {
			for _, rp := range reps {
				if rp.r.State() == raft.Leader {
					l = rp
					return true
				}
			}
			return false
		})
		return l
	}
	// Stop a follower and wipe it: it will need a snapshot.
	l := leaderOf()
	lost := 0
	for reps[lost] == l {
		lost++
	}
	reps[lost].r.Shutdown().Error()
	reps[lost].tr.Close()
	for i := range 300 {
		if err := leaderOf().r.Apply(binary.BigEndian.AppendUint64(nil, uint64(i)), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	// Both live replicas snapshot and compact their logs, so that whichever
	// leads when the wiped one returns (leadership may move under -race)
	// can only send it a snapshot.
	for i, rp := range reps {
		if i == lost {
			continue
		}
		waitFor(t, "a live replica to snapshot and compact its log", 20*time.Second, func() bool {
			return rp.r.Stats()["last_snapshot_index"] != "0"
		})
		if err := rp.r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("Snapshot: %v", err)
		}
	}
	reps[lost] = start(lost, false)
	waitFor(t, "the wiped replica to catch up", 20*time.Second, func() bool {
		return reps[lost].fsm.n.Load() >= 300
	})
	if idx := reps[lost].r.Stats()["last_snapshot_index"]; idx == "0" {
		t.Errorf("the wiped replica caught up without a snapshot (last_snapshot_index %s): the test did not exercise InstallSnapshot", idx)
	}
	for _, rp := range reps {
		rp.r.Shutdown().Error()
		rp.tr.Close()
	}
	reps = nil
	for _, n := range nodes {
		n.hub.Close()
		n.mux.Close()
	}
	checkGoroutines(t, base)
}

// TestHubBatchesWrites: many groups calling at once share write calls.
func TestHubBatchesWrites(t *testing.T) {
	a, b := startHubNode(t, netTimeout), startHubNode(t, netTimeout)
	const groups = 32
	var ts []*GroupTransport
	for g := range uint64(groups) {
		ts = append(ts, a.openGroup(t, g))
		tb := b.openGroup(t, g)
		answerVotes(tb, voteTerm(1))
	}
	target := raft.ServerAddress(b.mux.Addr().String())
	errs := make(chan error, groups)
	for range 20 {
		for _, ta := range ts {
			go func() {
				var resp raft.RequestVoteResponse
				errs <- ta.RequestVote("b", target, voteRequest(), &resp)
			}()
		}
		for range groups {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	sa, sb := a.hub.Stats(), b.hub.Stats()
	t.Logf("requests: %d frames in %d writes; answers: %d frames in %d writes", sa.Frames, sa.Writes, sb.Frames, sb.Writes)
	if sa.Frames != 20*groups || sb.Frames != 20*groups {
		t.Errorf("frames = %d and %d; want %d each way", sa.Frames, sb.Frames, 20*groups)
	}
	if sa.Writes >= sa.Frames && sb.Writes >= sb.Frames {
		t.Errorf("no write carried two frames (%+v, %+v)", sa, sb)
	}
}

// TestReadPayload: a payload arrives whole whatever its size, and a peer
// that announces more than it sends gets an error, not a hang or a
// buffer of the announced size.
func TestReadPayload(t *testing.T) {
	for _, n := range []int{0, 1, 1 << 20, 1<<20 + 1, 3<<20 + 7} {
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i * 7)
		}
		got, err := readPayload(strings.NewReader(string(want)+"trailing"), n)
		if err != nil || string(got) != string(want) {
			t.Fatalf("readPayload(%d bytes) = %d bytes, %v; want them back", n, len(got), err)
		}
	}
	if _, err := readPayload(strings.NewReader("short"), 200<<20); err == nil {
		t.Fatal("readPayload of a truncated stream: no error")
	}
}

// TestHubGroupClosed: a request Raft took but did not answer before its
// group closed, and one that comes after, are both refused at once, not
// left to time out.
func TestHubGroupClosed(t *testing.T) {
	a, b := startHubNode(t, netTimeout), startHubNode(t, netTimeout)
	ta := a.openGroup(t, 1)
	tb := b.openGroup(t, 1)
	target := tb.LocalAddr()
	errc := make(chan error, 1)
	go func() {
		var resp raft.RequestVoteResponse
		errc <- ta.RequestVote("b", target, voteRequest(), &resp)
	}()
	select {
	case <-tb.Consumer(): // "Raft" takes the request and never answers
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the peer group")
	}
	start := time.Now()
	tb.Close()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), raft.ErrTransportShutdown.Error()) {
			t.Errorf("RequestVote to a group that closed = %v; want %q", err, raft.ErrTransportShutdown)
		}
	case <-time.After(netTimeout / 2):
		t.Fatal("RequestVote still waiting after the group closed")
	}
	t.Logf("refused %v after Close", time.Since(start))
	var resp raft.RequestVoteResponse
	if err := ta.RequestVote("b", target, voteRequest(), &resp); err == nil || !strings.Contains(err.Error(), ErrUnknownGroup.Error()) {
		t.Errorf("RequestVote after the close = %v; want %q", err, ErrUnknownGroup)
	}
}
