package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/shards/raftlog"
)

// Sentinel errors callers branch on.
var (
	// ErrNotLeader means this replica is not the leader; nothing was proposed,
	// so the call is safe to retry elsewhere. Leader tells where to go.
	ErrNotLeader = errors.New("not the leader")
	// ErrOutcomeUnknown means the command was proposed but leadership was lost
	// before it committed: it may or may not be applied.
	ErrOutcomeUnknown = errors.New("leadership lost while the command was in flight; it may or may not have been applied")
)

// Peer is one voting member of a group.
type Peer struct {
	ID   string // node id, unique in the cluster
	Addr string // host:port of its Raft transport
}

// Consistency is the guarantee a read asks for.
type Consistency uint8

const (
	// Linearizable reads see every write acknowledged before they began.
	Linearizable Consistency = iota
	// Stale reads are served from the local replica, possibly behind.
	Stale
)

// Timing holds the Raft timeouts. Zero fields take the defaults below.
type Timing struct {
	// HeartbeatTimeout is how long a follower waits without contact before it
	// starts an election (randomised up to twice this). Default 600ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout bounds a candidate's election round. Default 600ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader keeps leading without hearing
	// from a quorum. Default 300ms.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is the idle interval (randomised up to twice this)
	// after which the leader sends each follower an AppendEntries, empty if
	// it has nothing new, to spread the commit index. Default 250ms: under
	// load new entries carry the commit index anyway, and at idle these
	// sends were the biggest cost (an idle 8-shard dev cluster: 12-14 % of
	// a core at 50ms, 7-9 % at 250ms). The price: after a burst of writes
	// stops, followers apply its last entries up to 2 × CommitTimeout
	// later, so a STALE read on a follower may lag by that much.
	CommitTimeout time.Duration
}

func (t Timing) withDefaults() Timing {
	if t.HeartbeatTimeout == 0 {
		t.HeartbeatTimeout = 600 * time.Millisecond
	}
	if t.ElectionTimeout == 0 {
		t.ElectionTimeout = 600 * time.Millisecond
	}
	if t.LeaderLeaseTimeout == 0 {
		t.LeaderLeaseTimeout = 300 * time.Millisecond
	}
	if t.CommitTimeout == 0 {
		t.CommitTimeout = 250 * time.Millisecond
	}
	return t
}

// Config describes one replica.
type Config struct {
	// NodeID is this replica's server id (the node's id).
	NodeID string
	// Dir holds raft.db (log and stable store) and snapshots/. Created if missing.
	Dir string
	// RaftAddr is the host:port the Raft TCP transport listens on and
	// advertises. Use a concrete address (not :0) so peers can find it.
	RaftAddr string
	// Peers are the initial voters, used to bootstrap a brand-new group. On a
	// restart the stored configuration wins and Peers is ignored.
	Peers []Peer
	// Join makes a replica without stored state start empty and wait to be
	// added to the running group by its leader (AddLearner), instead of
	// bootstrapping one from Peers, which must then be empty. A replica
	// created to replace or add to a group's members joins.
	Join bool
	// Logger receives the group's and hashicorp/raft's logs. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock stamped into proposals. Default: time.Now.
	Now func() time.Time
	// Timing overrides the Raft timeouts.
	Timing Timing
	// SnapshotThreshold is how many entries since the last snapshot trigger a
	// new one. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a snapshot leaves in the log, so a
	// follower that is only a little behind catches up from the log rather
	// than a whole snapshot. Default 10240 (hashicorp/raft's).
	TrailingLogs uint64
	// NoSync turns off fsync on log appends. Unsafe: benchmarks only.
	NoSync bool
	// DeferElection makes this replica wait deferFactor times longer than
	// Timing says before it stands for election, until the group first has
	// a leader; then it takes the normal timeouts. Set it on every replica
	// but the one that should lead, so that one usually wins the first
	// election and no leadership hand-off is needed after start.
	DeferElection bool
	// MaxInflightPacks bounds the packs of commands proposed and not yet
	// applied (see proposer.go); default 4. Lower values pack more commands
	// per entry when few clients write to the group at once.
	MaxInflightPacks int

	// Stream, if set, carries the group's Raft traffic: a transport.Layer
	// on the node's shared Raft port. RaftAddr must then be that port's
	// advertised address. If nil, the group listens on RaftAddr itself.
	Stream raft.StreamLayer
	// Logs and Stable, if both set, are the group's log and stable stores
	// (a node's shared raftlog.Store); the caller owns and closes them. If
	// nil, the group keeps its own raft-boltdb file, Dir/raft.db.
	Logs   raft.LogStore
	Stable raft.StableStore
	// Transport, if set with Stream, builds the transport the group's Raft
	// uses around its NetworkTransport on Stream (which then carries only
	// snapshots): a node's transport.Hub, which batches every group's RPCs
	// per peer. The built transport owns the NetworkTransport and closes it.
	// Every replica of a group must be built the same way.
	Transport func(snapshots *raft.NetworkTransport) (raft.Transport, error)
}

// Group is one running replica. Safe for concurrent use.
type Group struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	fsm       *fsm
	store     *raftboltdb.BoltStore // nil when the stores were given in Config
	transport *raft.NetworkTransport
	// trans is what Raft uses: transport, or what Config.Transport built
	// around it (which then owns transport).
	trans    raft.Transport
	verifier verifier
	metrics  groupMetrics

	proposals chan *proposal // to the proposer goroutine
	// stop is closed by Kill: every goroutine of the group and every wait
	// on a raft future watches it.
	stop chan struct{}
	wg   sync.WaitGroup // the proposer and the pack waiters

	// barrierTerm is the term in which this replica, as leader, last
	// completed a Barrier: reads in that term may use the local FSM.
	barrierTerm atomic.Uint64
	barrierMu   sync.Mutex // serialises term barriers

	// openLastIndex is the last index of the log when the group opened;
	// replayed latches once the replica has caught up (see Replayed).
	openLastIndex uint64
	replayed      atomic.Bool

	closeOnce sync.Once
	closeErr  error
	killOnce  sync.Once
	killErr   error
}

// maxPool is the number of idle connections kept per peer by the transport.
const maxPool = 4

// logCacheEntries and logCacheBytes bound the recent log entries kept in
// memory for replication (raftlog.Cache): 1,024 entries of 256-byte
// commands (about 400 KiB), or 1 MiB of bigger ones, one full pack
// (maxPackBytes). Bounded in bytes too, because each group's cache is
// memory outside the data budget: 64 KiB values would make 1,024 entries
// 64 MiB per group (issue 9).
const (
	logCacheEntries = 1024
	logCacheBytes   = 1 << 20
)

// TransportTimeout bounds one transport I/O operation: a dial, a write, a
// call's wait for its answer.
const TransportTimeout = 10 * time.Second

// Open starts a replica. A replica without stored state bootstraps the group
// from cfg.Peers (every initial peer does the same, with the same list).
func Open(cfg Config) (*Group, error) {
	if cfg.NodeID == "" || cfg.Dir == "" || cfg.RaftAddr == "" {
		return nil, errors.New("raftgroup: NodeID, Dir and RaftAddr are required")
	}
	if (cfg.Logs == nil) != (cfg.Stable == nil) {
		return nil, errors.New("raftgroup: Logs and Stable are set together or not at all")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	timing := cfg.Timing.withDefaults()
	log := cfg.Logger.With("node", cfg.NodeID)

	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("raftgroup %s: %w", cfg.NodeID, err)
	}
	hlog := newHCLogger(log)

	g := &Group{
		cfg: cfg, log: log, fsm: newFSM(),
		proposals: make(chan *proposal, proposalQueue), stop: make(chan struct{}),
	}
	g.metrics.init()
	logStore, stable := cfg.Logs, cfg.Stable
	if logStore == nil {
		store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"), NoSync: cfg.NoSync})
		if err != nil {
			return nil, fmt.Errorf("raftgroup %s: open log store: %w", cfg.NodeID, err)
		}
		g.store, logStore, stable = store, store, store
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		g.closeStores()
		return nil, fmt.Errorf("raftgroup %s: open snapshot store: %w", cfg.NodeID, err)
	}
	if cfg.Stream != nil {
		g.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: cfg.Stream, MaxPool: maxPool, Timeout: TransportTimeout, Logger: hlog,
		})
	} else {
		addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
		if err != nil {
			g.closeStores()
			return nil, fmt.Errorf("raftgroup %s: raft address %q: %w", cfg.NodeID, cfg.RaftAddr, err)
		}
		g.transport, err = raft.NewTCPTransportWithLogger(cfg.RaftAddr, addr, maxPool, TransportTimeout, hlog)
		if err != nil {
			g.closeStores()
			return nil, fmt.Errorf("raftgroup %s: listen on %s: %w", cfg.NodeID, cfg.RaftAddr, err)
		}
	}
	g.trans = g.transport
	if cfg.Transport != nil {
		if cfg.Stream == nil {
			g.closeStores()
			return nil, fmt.Errorf("raftgroup %s: Transport needs Stream", cfg.NodeID)
		}
		t, err := cfg.Transport(g.transport)
		if err != nil {
			g.closeStores()
			return nil, fmt.Errorf("raftgroup %s: transport: %w", cfg.NodeID, err)
		}
		g.trans = t
	}
	transport := g.trans

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = timing.HeartbeatTimeout
	rc.ElectionTimeout = timing.ElectionTimeout
	if cfg.DeferElection {
		rc.HeartbeatTimeout *= deferFactor
		rc.ElectionTimeout *= deferFactor
	}
	rc.LeaderLeaseTimeout = timing.LeaderLeaseTimeout
	rc.CommitTimeout = timing.CommitTimeout
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}

	existing, err := raft.HasExistingState(logStore, stable, snaps)
	if err != nil {
		g.closeStores()
		return nil, fmt.Errorf("raftgroup %s: inspect state: %w", cfg.NodeID, err)
	}
	switch {
	case cfg.Join && len(cfg.Peers) > 0:
		g.closeStores()
		return nil, fmt.Errorf("raftgroup %s: a joining replica takes no Peers", cfg.NodeID)
	case !existing && !cfg.Join:
		if len(cfg.Peers) == 0 {
			g.closeStores()
			return nil, fmt.Errorf("raftgroup %s: no stored state and no peers to bootstrap from", cfg.NodeID)
		}
		var conf raft.Configuration
		for _, p := range cfg.Peers {
			conf.Servers = append(conf.Servers, raft.Server{
				Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr),
			})
		}
		if err := raft.BootstrapCluster(rc, logStore, stable, snaps, transport, conf); err != nil {
			g.closeStores()
			return nil, fmt.Errorf("raftgroup %s: bootstrap: %w", cfg.NodeID, err)
		}
	}
	// The leader reads recent entries back to replicate them; serve those
	// from memory instead of bolt.
	logs := raftlog.NewCache(logStore, logCacheEntries, logCacheBytes)
	r, err := raft.NewRaft(rc, measuredFSM{g.fsm, &g.metrics}, logs, stable, snaps, transport)
	if err != nil {
		g.closeStores()
		return nil, fmt.Errorf("raftgroup %s: start raft: %w", cfg.NodeID, err)
	}
	g.raft = r
	g.openLastIndex = r.LastIndex()
	r.RegisterObserver(g.metrics.observer())
	g.verifier.raft = r
	g.verifier.stop = g.stop
	g.wg.Add(1)
	go g.runProposer()
	if cfg.DeferElection {
		g.wg.Add(1)
		go g.undefer(timing)
	}
	return g, nil
}

// deferFactor stretches a deferring replica's election timeouts.
const deferFactor = 3

// undefer restores the normal timeouts once the group has a leader (or at
// Kill). It is owned by the Group.
func (g *Group) undefer(t Timing) {
	defer g.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		if id, _ := g.Leader(); id == "" {
			continue
		}
		rc := g.raft.ReloadableConfig()
		rc.HeartbeatTimeout, rc.ElectionTimeout = t.HeartbeatTimeout, t.ElectionTimeout
		if err := g.raft.ReloadConfig(rc); err != nil {
			g.log.Warn("restore election timeouts", "err", err)
		}
		return
	}
}

// closeStores closes what Open opened: the transport and the group's own
// log store (stores given in Config belong to the caller).
func (g *Group) closeStores() error {
	var errs []error
	// g.trans is g.transport or owns it; before it is set, only g.transport
	// may be open.
	var trans raft.WithClose
	if c, ok := g.trans.(raft.WithClose); ok {
		trans = c
	} else if g.transport != nil {
		trans = g.transport
	}
	if trans != nil {
		if err := trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport: %w", err))
		}
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close log store: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (g *Group) proposeError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return ErrOutcomeUnknown
	}
	return fmt.Errorf("raftgroup %s: apply: %w", g.cfg.NodeID, err)
}

// Read runs fn against the replica's engine at the given consistency. fn runs
// under a read lock: it must not retain the engine or block.
//
// Linearizable reads need this replica to be the leader (else ErrNotLeader).
func (g *Group) Read(ctx context.Context, c Consistency, fn func(*engine.Engine)) error {
	if c == Linearizable {
		if err := g.readIndex(ctx); err != nil {
			return err
		}
	}
	g.fsm.read(fn)
	return nil
}

// readIndex makes the local FSM safe for a linearizable read: see doc.go.
func (g *Group) readIndex(ctx context.Context) error {
	if g.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	term := g.raft.CurrentTerm()
	if g.barrierTerm.Load() != term {
		if err := g.termBarrier(ctx, term); err != nil {
			return err
		}
	}
	if err := g.verifier.verify(ctx); err != nil {
		return err
	}
	if g.raft.CurrentTerm() != term {
		return ErrNotLeader
	}
	return nil
}

// termBarrier runs one Barrier for term, shared by the reads that need it.
func (g *Group) termBarrier(ctx context.Context, term uint64) error {
	g.barrierMu.Lock()
	defer g.barrierMu.Unlock()
	if g.barrierTerm.Load() == term {
		return nil
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	if err := waitFuture(g.raft.Barrier(timeout), g.stop); err != nil {
		// Reads have no outcome to lose: whatever went wrong, this replica
		// cannot serve them as leader now.
		g.log.Debug("term barrier failed", "term", term, "err", err)
		return ErrNotLeader
	}
	if g.raft.CurrentTerm() != term || g.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	g.barrierTerm.Store(term)
	return nil
}

// NowUnixMs is the group's time: the later of this node's clock and the
// latest time any leader stamped into an applied command. Proposals and reads
// use it, so time never runs backwards across a leader change to a node
// whose clock is behind: a key expired under one leader stays expired.
func (g *Group) NowUnixMs() int64 {
	return max(g.cfg.Now().UnixMilli(), g.fsm.clock.Load())
}

// Leader returns the current leader's node id and Raft address, empty if unknown.
func (g *Group) Leader() (id, addr string) {
	a, i := g.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this replica is the leader right now.
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Changed returns a channel closed when this replica next applies entries
// or restores a snapshot: a watch on its state without polling. Take the
// channel before reading the state it guards, then wait on it.
func (g *Group) Changed() <-chan struct{} { return g.fsm.changes() }

// LastIndex is the index of the last entry in this replica's log.
func (g *Group) LastIndex() uint64 { return g.raft.LastIndex() }

// AppliedIndex is the highest index applied to this replica's engine.
func (g *Group) AppliedIndex() uint64 { return g.fsm.applied.Load() }

// Digest returns a hash of the engine's whole state and its applied index;
// replicas at the same index have equal digests.
func (g *Group) Digest() [32]byte {
	var d [32]byte
	g.fsm.read(func(e *engine.Engine) { d = e.Digest() })
	return d
}

// Status describes one replica.
type Status struct {
	NodeID       string
	State        string // leader, follower, candidate, shutdown
	Term         uint64
	LeaderID     string
	AppliedIndex uint64
	CommitIndex  uint64
	LastLogIndex uint64
	KeyCount     uint64
	Members      []Member
}

// Member is one server in the group's configuration.
type Member struct {
	ID, Addr string
	Voter    bool
}

// Status reports this replica's view of the group.
func (g *Group) Status() Status {
	leader, _ := g.Leader()
	st := Status{
		NodeID:       g.cfg.NodeID,
		State:        stateName(g.raft.State()),
		Term:         g.raft.CurrentTerm(),
		LeaderID:     leader,
		AppliedIndex: g.fsm.applied.Load(),
		CommitIndex:  g.raft.CommitIndex(),
		LastLogIndex: g.raft.LastIndex(),
	}
	g.fsm.read(func(e *engine.Engine) { st.KeyCount = uint64(e.Len()) })
	if f := g.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Members = append(st.Members, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
		}
	}
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return "unknown"
}

// Snapshot forces a snapshot now (tests, operators). It returns once the
// snapshot is durable.
func (g *Group) Snapshot() error {
	if err := g.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raftgroup %s: snapshot: %w", g.cfg.NodeID, err)
	}
	return nil
}

// transferTimeout bounds the leadership hand-off on graceful shutdown.
const transferTimeout = 3 * time.Second

// Close stops the replica. A leader first hands leadership to a caught-up
// follower so the group keeps serving without waiting for an election. Safe
// to call twice.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		if g.raft.State() == raft.Leader && g.reachesQuorum() {
			f := g.raft.LeadershipTransfer()
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				if err != nil {
					g.log.Warn("leadership transfer on shutdown failed", "err", err, "component", "raft")
				}
			case <-time.After(transferTimeout):
				g.log.Warn("leadership transfer on shutdown timed out", "component", "raft")
			}
		}
		g.closeErr = g.Kill()
	})
	return g.closeErr
}

// reachesQuorum reports whether this leader can still reach a quorum (one
// VerifyLeader round, bounded). A leader whose peers have gone has no one to
// hand leadership to: Close then skips the hand-off instead of waiting
// transferTimeout for it to fail.
func (g *Group) reachesQuorum() bool {
	done := make(chan error, 1)
	f := g.raft.VerifyLeader()
	go func() { done <- waitFuture(f, g.stop) }()
	select {
	case err := <-done:
		return err == nil
	case <-time.After(quorumCheckTimeout):
		return false
	}
}

// quorumCheckTimeout bounds reachesQuorum: a leader that cannot reach a
// quorum steps down within its lease (300 ms by default).
const quorumCheckTimeout = time.Second

// Kill stops the replica at once, without handing over leadership: to peers
// it looks like a crash (tests use it to inject failures). Durable state is
// kept. Safe to call twice; Close after Kill does nothing more.
func (g *Group) Kill() error {
	g.killOnce.Do(func() { g.killErr = g.kill() })
	return g.killErr
}

func (g *Group) kill() error {
	var errs []error
	if err := g.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
	}
	close(g.stop)
	g.verifier.stopAndWait()
	g.wg.Wait()
	if err := g.closeStores(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftgroup %s: %w", g.cfg.NodeID, err)
	}
	return nil
}

// TransferLeadership hands this replica's leadership to the member id at
// addr and returns once it has moved or the attempt failed. Nodes use it to
// spread leaders evenly (see shards/node).
func (g *Group) TransferLeadership(id, addr string) error {
	if g.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	f := g.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	if err := waitFuture(f, g.stop); err != nil {
		return fmt.Errorf("raftgroup %s: transfer leadership to %s: %w", g.cfg.NodeID, id, err)
	}
	return nil
}
