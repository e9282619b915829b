package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/wisp-db/wisp/buildinfo"
)

var (
	// ErrClosed is returned by calls on a closed Membership or Subscription.
	ErrClosed = errors.New("membership: closed")
	// ErrLeft is returned by UpdateMeta and Join after Leave.
	ErrLeft = errors.New("membership: left the cluster")
	// ErrIDTaken is returned by Start and Join when a live node of the
	// cluster already has this node's id at another gossip address.
	ErrIDTaken = errors.New("membership: node id taken")
	// ErrUnconfirmed is returned by UpdateMeta and Leave when memberlist did
	// not confirm the message went out to peers in time (lost or delayed
	// gossip, a starved machine). The change is made locally and still
	// spreads, at the latest with the next push/pull sync.
	ErrUnconfirmed = errors.New("membership: broadcast not confirmed in time")
)

// Bounds, each with its reason.
const (
	// joinBackoffFirst and joinBackoffMax bound the wait between join
	// attempts: quick retries while the first nodes of a cluster start
	// together, then at most one attempt every 5 s per joining node.
	joinBackoffFirst = 100 * time.Millisecond
	joinBackoffMax   = 5 * time.Second
	// broadcastTimeout bounds UpdateMeta's and Leave's wait for their
	// message to go out, when ctx has no earlier deadline.
	broadcastTimeout = 5 * time.Second
	// maxConcurrentPings bounds the pings of one round in flight: with
	// many unreachable members a round still ends within a few
	// ProbeTimeouts, without a goroutine per member.
	maxConcurrentPings = 16
	// maxMembers bounds the member table against gossip that makes up node
	// ids: Wisp clusters have tens of nodes; past this, new ids are
	// refused (each entry takes well under 1 KiB).
	maxMembers = 4096
	// forgetAfter is how long a dead or left member stays in the table. The
	// cluster map (shards/meta) keeps the durable record; this only bounds
	// the gossip view under churn of ids.
	forgetAfter = 24 * time.Hour
)

// Status is a member's liveness as this node sees it.
type Status uint8

const (
	// StatusAlive: memberlist counts the node live and it answers this
	// node's pings.
	StatusAlive Status = iota + 1
	// StatusSuspect: memberlist still counts the node live, but it did not
	// answer this node's last ping. Advisory: memberlist's own suspicion is
	// not visible through its API (its Members never reports it), so this
	// is this node's direct view; a lost packet can show a member suspect
	// for one ping round. Act on StatusDead.
	StatusSuspect
	// StatusDead: memberlist declared the node failed.
	StatusDead
	// StatusLeft: the node left gracefully.
	StatusLeft
)

// String returns the status in lower case ("alive", "dead").
func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusSuspect:
		return "suspect"
	case StatusDead:
		return "dead"
	case StatusLeft:
		return "left"
	}
	return fmt.Sprintf("Status(%d)", s)
}

// Member is one node as this node sees it.
type Member struct {
	// ID is the node's id (Meta.NodeID).
	ID string
	// Addr is the node's gossip address, ip:port.
	Addr string
	// Meta is the metadata the node gossiped last.
	Meta Meta
	// Status is the node's liveness.
	Status Status
	// Since is when this node saw Status begin (its local clock).
	Since time.Time
	// RTT is the round trip of this node's last answered ping to the
	// member; 0 if none yet (and for the local node).
	RTT time.Duration
}

// Config configures Start.
type Config struct {
	// NodeID is this node's id: 1 to 64 bytes of [A-Za-z0-9._-]. Required.
	NodeID string
	// BindAddr is the gossip address to listen on, UDP and TCP, as ip:port.
	// An empty host listens on every interface; port 0 picks a free port
	// (Addr reports it). Empty means ":7946", memberlist's default.
	BindAddr string
	// AdvertiseAddr is the ip:port other nodes reach this node at; empty:
	// the bound address (on every interface: a private IP of this host).
	AdvertiseAddr string
	// Join lists gossip addresses (host:port) of nodes already in the
	// cluster. Start retries them until one answers or ctx ends. This
	// node's own address is skipped; with none left the node starts alone.
	Join []string
	// Meta is what this node gossips. An empty Meta.NodeID takes NodeID, an
	// empty Build takes buildinfo.Get().Version; Leaving is ignored.
	Meta Meta
	// Logger receives this package's and memberlist's logs; nil:
	// slog.Default().
	Logger *slog.Logger
	// Timing sets probe, suspicion and gossip intervals; zero fields take
	// LANTiming's. FastTiming is for dev clusters and tests.
	Timing Timing
	// SecretKey, when set, encrypts and authenticates all gossip, UDP and
	// TCP, with AES-GCM: 16, 24 or 32 bytes (AES-128, -192, -256), the same
	// on every node. Gossip that is not sealed with it is dropped, so a
	// node without it, or with another key, cannot join nor be joined, and
	// its packets are ignored. ReadKeyFile reads one from a file. nil: no
	// encryption (anyone who reaches the gossip port takes part).
	SecretKey []byte
}

// Membership is this node's place in the cluster's gossip: the member table,
// failure detection and events. Its methods are safe for concurrent use.
type Membership struct {
	id     string
	log    *slog.Logger
	timing Timing
	list   *memberlist.Memberlist // set once in Start
	addr   string                 // the advertised gossip address, ip:port
	bind   string                 // the bound gossip address, ip:port

	// lifeMu orders Leave and Close against UpdateMeta: memberlist panics
	// on Leave after Shutdown, and an update after Shutdown waits out its
	// timeout. UpdateMeta holds it shared, Leave and Close exclusively.
	lifeMu sync.RWMutex
	left   bool // guarded by lifeMu

	// metaMu guards meta and metaBytes, which memberlist reads through
	// NodeMeta. Never held while calling memberlist.
	metaMu    sync.Mutex
	meta      Meta
	metaBytes []byte // appendMeta(meta), what memberlist gossips

	// mu guards the member table, the subscriptions and closed. Lock
	// order: memberlist's node lock, then mu (memberlist calls the
	// delegates with its lock held), so nothing calls memberlist with mu
	// held.
	mu      sync.Mutex
	members map[string]*memberState
	subs    map[*Subscription]struct{}
	closed  bool
	// idTakenBy is the gossip address of a live node seen with this node's
	// id during the last join (NotifyMerge), or "".
	idTakenBy string

	closing   atomic.Bool   // set first in Close: memberlist's complaints while stopping are DEBUG
	done      chan struct{} // closed by Close; ends Join's waits
	closeOnce sync.Once
	closeErr  error
	stopPing  context.CancelFunc
	wg        sync.WaitGroup // the pinger

	refusals refusalLog
}

// memberState is one entry of the member table.
type memberState struct {
	Member
	// gen counts the member's joins; a ping result from an earlier
	// generation (the node restarted meanwhile) is dropped.
	gen uint64
}

// Start creates this node's gossip listener, joins the cluster through
// cfg.Join (retrying with backoff until one address answers or ctx ends) and
// starts failure detection. The returned Membership runs until Close.
//
// Start fails with ErrIDTaken when a live node of the cluster already has
// cfg.NodeID at another address; it does not retry then.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	if err := validateID(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("membership: NodeID: %w", err)
	}
	timing, err := cfg.Timing.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("membership %s: Timing: %w", cfg.NodeID, err)
	}
	if len(cfg.SecretKey) > 0 {
		if err := checkKeySize(len(cfg.SecretKey)); err != nil {
			return nil, fmt.Errorf("membership %s: SecretKey: %w", cfg.NodeID, err)
		}
	}
	meta, err := completeMeta(cfg.NodeID, cfg.Meta, false)
	if err != nil {
		return nil, fmt.Errorf("membership %s: Meta: %w", cfg.NodeID, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "membership", "node", cfg.NodeID)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	timing.apply(mc)
	if mc.BindAddr, mc.BindPort, err = splitIPPort(cfg.BindAddr, "0.0.0.0", 7946); err != nil {
		return nil, fmt.Errorf("membership %s: BindAddr %q: %w", cfg.NodeID, cfg.BindAddr, err)
	}
	mc.AdvertisePort = mc.BindPort
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitIPPort(cfg.AdvertiseAddr, "", 0); err != nil || mc.AdvertiseAddr == "" || mc.AdvertisePort == 0 {
			return nil, fmt.Errorf("membership %s: AdvertiseAddr %q: want ip:port with a port above 0", cfg.NodeID, cfg.AdvertiseAddr)
		}
	}
	if len(cfg.SecretKey) > 0 {
		// The keyring's one key seals every message; verifying both ways
		// (DefaultLANConfig's values, set here so that a changed default
		// cannot turn them off) drops whatever is not sealed with it
		// rather than reading it as plain text.
		if mc.Keyring, err = memberlist.NewKeyring(nil, slices.Clone(cfg.SecretKey)); err != nil {
			return nil, fmt.Errorf("membership %s: SecretKey: %w", cfg.NodeID, err)
		}
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}

	m := &Membership{
		id:        cfg.NodeID,
		log:       logger,
		timing:    timing,
		meta:      meta,
		metaBytes: appendMeta(nil, &meta),
		members:   make(map[string]*memberState),
		subs:      make(map[*Subscription]struct{}),
		done:      make(chan struct{}),
	}
	d := &delegate{m: m}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	mc.Conflict = d
	mc.Merge = d
	mc.Logger = log.New(&logWriter{log: logger, closing: &m.closing}, "", 0)

	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership %s: listen on %s: %w", cfg.NodeID, cfg.BindAddr, err)
	}
	m.list = list
	m.addr = list.LocalNode().Address()
	m.bind = net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort))

	pingCtx, cancel := context.WithCancel(context.Background())
	m.stopPing = cancel
	m.wg.Add(1)
	go m.runPinger(pingCtx)

	if joins := m.others(cfg.Join); len(joins) > 0 {
		if _, err := m.Join(ctx, joins...); err != nil {
			m.Close()
			return nil, err
		}
	}
	m.log.Debug("gossip started", "addr", m.addr, "members", len(m.Members()))
	return m, nil
}

// completeMeta fills meta's defaults (NodeID, Build) and validates it.
func completeMeta(id string, meta Meta, leaving bool) (Meta, error) {
	if meta.NodeID == "" {
		meta.NodeID = id
	}
	if meta.NodeID != id {
		return Meta{}, fmt.Errorf("NodeID %q is not the node's id %q", clip(meta.NodeID), id)
	}
	if meta.Build == "" {
		meta.Build = clip(buildinfo.Get().Version)
		if len(meta.Build) > buildSizeMax || !printable(meta.Build) {
			meta.Build = "unknown"
		}
	}
	meta.Leaving = leaving
	return meta, meta.Validate()
}

// splitIPPort parses ip:port for memberlist, which wants an IP literal: an
// empty host is defaultHost, an empty string is defaultHost and defaultPort.
func splitIPPort(s, defaultHost string, defaultPort int) (string, int, error) {
	if s == "" {
		return defaultHost, defaultPort, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not 0 to 65535", port)
	}
	if host == "" {
		host = defaultHost
	} else if ip, err := netip.ParseAddr(host); err != nil || ip.Zone() != "" {
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	return host, int(p), nil
}

// others returns addrs without this node's own gossip address, compared as
// written and as parsed ip:port.
func (m *Membership) others(addrs []string) []string {
	self := map[string]bool{m.addr: true, m.bind: true}
	for a := range self {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			self[ap.String()] = true
		}
	}
	var out []string
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" || self[a] {
			continue
		}
		if ap, err := netip.ParseAddrPort(a); err == nil && self[ap.String()] {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Join contacts the given gossip addresses (host:port) and exchanges state
// with every one that answers, retrying with backoff (100 ms doubling to
// 5 s) until at least one answers or ctx ends. It returns how many answered.
// This node's own address is skipped; with none left Join returns 0, nil.
// A join fails at once with ErrIDTaken when a live node of the cluster has
// this node's id at another address.
//
// One attempt can take up to Timing.TCPTimeout per address that does not
// answer, whatever ctx says.
func (m *Membership) Join(ctx context.Context, addrs ...string) (int, error) {
	addrs = m.others(addrs)
	if len(addrs) == 0 {
		return 0, nil
	}
	backoff := joinBackoffFirst
	keyWarned := false // a refusal over the gossip key is logged at WARN once per Join
	for attempt := 1; ; attempt++ {
		if m.closing.Load() {
			return 0, ErrClosed
		}
		m.mu.Lock()
		m.idTakenBy = ""
		m.mu.Unlock()
		n, err := m.list.Join(addrs)
		m.mu.Lock()
		taken := m.idTakenBy
		m.mu.Unlock()
		if taken != "" {
			return 0, fmt.Errorf("membership %s: join %v: a live node at %s has this id: %w", m.id, addrs, taken, ErrIDTaken)
		}
		if n > 0 {
			m.log.Debug("joined", "contacted", n, "attempt", attempt)
			return n, nil
		}
		if err == nil {
			err = errors.New("no address answered")
		}
		// Jitter keeps nodes that started together from retrying in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		level, msg := slog.LevelDebug, "join failed; retrying" // nodes start in any order: routine
		if !keyWarned && strings.Contains(err.Error(), "crypt") {
			// memberlist's errors when one side seals gossip with a key
			// the other lacks ("... could decrypt ...", "encryption is
			// not configured", "... not encrypted"): not routine, and the
			// other side's WARN names only this node's address.
			level, msg, keyWarned = slog.LevelWarn, "join refused: gossip keys differ; retrying", true
		}
		m.log.Log(ctx, level, msg, "addrs", addrs, "attempt", attempt, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("membership %s: join %v: %w after %d attempts; last: %v", m.id, addrs, ctx.Err(), attempt, err)
		case <-m.done:
			t.Stop()
			return 0, ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// Addr returns the gossip address other nodes reach this node at (ip:port;
// the port memberlist picked when BindAddr's port was 0).
func (m *Membership) Addr() string { return m.addr }

// ID returns this node's id.
func (m *Membership) ID() string { return m.id }

// Members returns every member this node knows, itself included, sorted by
// id: live ones, and dead or left ones for a day after they went.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.membersLocked()
}

func (m *Membership) membersLocked() []Member {
	out := make([]Member, 0, len(m.members))
	for _, st := range m.members {
		out = append(out, st.Member)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Member returns the member with the given id, if this node knows it.
func (m *Membership) Member(id string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.members[id]; ok {
		return st.Member, true
	}
	return Member{}, false
}

// Meta returns the metadata this node gossips.
func (m *Membership) Meta() Meta {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	return m.meta
}

// UpdateMeta replaces the metadata this node gossips and waits until the
// update has gone out to other nodes (at once when there are none), until
// ctx ends or for at most 5 s. An empty NodeID or Build is filled in as in
// Start; Leaving keeps its value. On a timeout the new metadata is still in
// place and spreads with later gossip.
func (m *Membership) UpdateMeta(ctx context.Context, meta Meta) error {
	m.lifeMu.RLock()
	defer m.lifeMu.RUnlock()
	switch {
	case m.closing.Load():
		return ErrClosed
	case m.left:
		return ErrLeft
	}
	m.metaMu.Lock()
	meta, err := completeMeta(m.id, meta, m.meta.Leaving)
	if err == nil {
		m.meta, m.metaBytes = meta, appendMeta(nil, &meta)
	}
	m.metaMu.Unlock()
	if err != nil {
		return fmt.Errorf("membership %s: update meta: %w", m.id, err)
	}
	return m.broadcast(ctx, "update meta", m.list.UpdateNode)
}

// broadcast runs a memberlist call that waits for its message to go out,
// with a timeout from ctx (at most broadcastTimeout).
func (m *Membership) broadcast(ctx context.Context, what string, call func(time.Duration) error) error {
	timeout := broadcastTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("membership %s: %s: %w", m.id, what, err)
	}
	if timeout <= 0 {
		return fmt.Errorf("membership %s: %s: %w", m.id, what, context.DeadlineExceeded)
	}
	if err := call(timeout); err != nil {
		return fmt.Errorf("membership %s: %s: %w within %v (%v)", m.id, what, ErrUnconfirmed, timeout, err)
	}
	return nil
}

// Leave tells the cluster this node is going: it sets Meta.Leaving, so peers
// record StatusLeft rather than StatusDead, then broadcasts memberlist's
// leave and waits until it has gone out (until ctx ends, or at most 5 s
// per step). The node keeps gossiping until Close, which should follow.
// Calling Leave again does nothing.
func (m *Membership) Leave(ctx context.Context) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	switch {
	case m.closing.Load():
		return ErrClosed
	case m.left:
		return nil
	}
	m.metaMu.Lock()
	m.meta.Leaving = true
	m.metaBytes = appendMeta(nil, &m.meta)
	m.metaMu.Unlock()
	if err := m.broadcast(ctx, "leave: announce", m.list.UpdateNode); err != nil {
		// The leave message below still goes out; peers that missed the
		// flag record the node dead rather than left.
		m.log.Debug("leave flag not confirmed sent", "err", err)
	}
	m.left = true
	err := m.broadcast(ctx, "leave", m.list.Leave)
	m.log.Debug("left the cluster", "err", err) // the caller says it stops
	return err
}

// Close stops gossip and failure detection without a leave (peers see this
// node fail, unless Leave came first), closes every subscription, and waits
// for the goroutines this package started. memberlist's own goroutines end
// shortly after. Safe to call more than once; later calls return nil.
func (m *Membership) Close() error {
	first := false
	m.closeOnce.Do(func() {
		first = true
		m.closing.Store(true)
		close(m.done)
		m.lifeMu.Lock() // wait for a Leave or UpdateMeta in flight
		defer m.lifeMu.Unlock()
		m.stopPing()
		m.wg.Wait()
		if err := m.list.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("membership %s: shutdown: %w", m.id, err)
		}
		m.mu.Lock()
		m.closed = true
		for s := range m.subs {
			s.closeLocked()
		}
		clear(m.subs)
		m.mu.Unlock()
		m.log.Debug("gossip stopped")
	})
	if !first {
		return nil
	}
	return m.closeErr
}

// logWriter turns memberlist's log lines ("[WARN] memberlist: message")
// into slog records. memberlist logs a line per probe that misses, per
// refused message, per connection error; this package logs what matters to
// an operator itself (joins, failures, refusals), so:
//
//   - DEBUG and INFO are DEBUG (routine: probes, suspicions, state syncs);
//   - WARN stays WARN, except memberlist's echoes of an alive message or a
//     join this package refused (already logged, rate-limited, as a
//     refusal) and its refutations (a restarted node refutes its own death:
//     routine), DEBUG;
//   - ERR is WARN: a failure detector meets failing peers as a matter of
//     course (a refused connection, a reset push/pull); what follows from
//     them is a member event;
//   - everything is DEBUG once Close has begun (closed sockets).
type logWriter struct {
	log     *slog.Logger
	closing *atomic.Bool
}

var _ io.Writer = (*logWriter)(nil)

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, t := range []struct {
		tag   string
		level slog.Level
	}{{"[ERR]", slog.LevelWarn}, {"[ERROR]", slog.LevelWarn}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelDebug}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}} {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			level, line = t.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level == slog.LevelWarn && (strings.HasPrefix(line, "ignoring alive message for") ||
		strings.HasPrefix(line, "Failed push/pull merge: membership: refused") || strings.HasPrefix(line, "Refuting")) {
		level = slog.LevelDebug
	}
	if w.closing.Load() {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, line, "source", "memberlist")
	return len(p), nil
}
