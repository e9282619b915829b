package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. It is a type of its own so that
// memberlist's interfaces stay off Membership's method set.
//
// memberlist calls NotifyAlive, NotifyJoin, NotifyLeave, NotifyUpdate and
// NotifyConflict with its node lock held, from its packet, stream and timer
// goroutines: they take m.mu, never call memberlist, and log after
// unlocking. They may run after Close (a suspicion timer firing late); the
// table then changes but no subscriber hears of it.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.AliveDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
	_ memberlist.MergeDelegate    = (*delegate)(nil)
)

// NodeMeta returns this node's encoded metadata (memberlist.Delegate).
func (d *delegate) NodeMeta(limit int) []byte {
	m := d.m
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if len(m.metaBytes) > limit { // cannot happen: metaSizeMax < MetaMaxSize
		panic(fmt.Sprintf("membership: meta is %d bytes, over memberlist's limit %d", len(m.metaBytes), limit))
	}
	return m.metaBytes
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState carry user
// messages and state, which this package does not use.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// checkPeer decides whether gossip about a live node may be believed: its
// name is a valid id, its metadata decodes and names the same id, and no
// other live member holds that id at another address. It returns the decoded
// metadata, or why the node is refused. Called with m.mu held.
func (m *Membership) checkPeerLocked(name, addr string, rawMeta []byte) (Meta, error) {
	if err := validateID(name); err != nil {
		return Meta{}, fmt.Errorf("name: %w", err)
	}
	meta, err := decodeMeta(rawMeta)
	if err != nil {
		return Meta{}, err
	}
	if meta.NodeID != name {
		return Meta{}, fmt.Errorf("metadata names node %q", meta.NodeID)
	}
	st, known := m.members[name]
	switch {
	case known && st.Addr != addr && (st.Status == StatusAlive || st.Status == StatusSuspect):
		return Meta{}, fmt.Errorf("%w: live at %s", errIDConflict, st.Addr)
	case !known && len(m.members) >= maxMembers:
		return Meta{}, fmt.Errorf("member table full (%d)", maxMembers)
	}
	return meta, nil
}

// errIDConflict marks a refusal because another live node has the id.
var errIDConflict = errors.New("node id in use")

// NotifyAlive vets every alive message before memberlist believes it
// (memberlist.AliveDelegate); an error makes memberlist ignore the message.
func (d *delegate) NotifyAlive(peer *memberlist.Node) error {
	m := d.m
	addr := nodeAddr(peer)
	m.mu.Lock()
	_, err := m.checkPeerLocked(peer.Name, addr, peer.Meta)
	m.mu.Unlock()
	if err != nil {
		m.refused("alive message", peer.Name, addr, err)
	}
	return err
}

// NotifyMerge vets the node list of a node joining us, or of the node we
// join (memberlist.MergeDelegate): one invalid or conflicting entry cancels
// the join. When the conflict is over this node's own id, Join reports
// ErrIDTaken.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	m := d.m
	var err error
	var name, addr string
	m.mu.Lock()
	for _, p := range peers {
		name, addr = p.Name, nodeAddr(p)
		if p.State != memberlist.StateAlive && p.State != memberlist.StateSuspect {
			// A dead or left entry becomes at most a suspicion here; memberlist
			// ignores it for nodes it does not know as live.
			if err = validateID(p.Name); err != nil {
				err = fmt.Errorf("name: %w", err)
				break
			}
			continue
		}
		if _, err = m.checkPeerLocked(p.Name, addr, p.Meta); err != nil {
			if p.Name == m.id && errors.Is(err, errIDConflict) {
				// The other side knows our id live elsewhere: we are the
				// newcomer (our own entry was made at Start).
				m.idTakenBy = addr
			}
			break
		}
	}
	m.mu.Unlock()
	if err != nil {
		m.refused("join", name, addr, err)
		return fmt.Errorf("membership: refused node %q at %s: %w", clip(name), addr, err)
	}
	return nil
}

// NotifyConflict hears of an alive message for a known id from another
// address that memberlist refused itself (memberlist.ConflictDelegate):
// NotifyAlive refuses live conflicts first, so these are claims on a dead
// node's id, which memberlist allows only once it has forgotten the node
// (Timing.GossipToTheDeadTime) or after it left.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.refused("alive message", other.Name, nodeAddr(other),
		fmt.Errorf("%w: dead at %s, not yet forgotten", errIDConflict, nodeAddr(existing)))
}

// NotifyJoin records a node becoming live (memberlist.EventDelegate).
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	m := d.m
	addr := nodeAddr(n)
	meta, err := decodeMeta(n.Meta)
	if err != nil { // NotifyAlive let only valid metadata through
		m.log.Error("join with metadata that was not vetted; ignored", "member", clip(n.Name), "addr", addr, "err", err)
		return
	}
	// Finding the members is routine (every node finds every other at
	// start): DEBUG. A member back after it failed or left is news: INFO.
	level := slog.LevelDebug
	m.mu.Lock()
	st := m.members[n.Name]
	if st == nil {
		st = &memberState{}
		m.members[n.Name] = st
	} else if st.Status == StatusDead || st.Status == StatusLeft {
		level = slog.LevelInfo
	}
	st.gen++
	st.Member = Member{ID: n.Name, Addr: addr, Meta: meta, Status: StatusAlive, Since: time.Now()}
	ev := Event{Kind: EventJoin, Member: st.Member}
	behind := m.publishLocked(ev)
	m.mu.Unlock()
	m.logEvent(level, ev, behind)
}

// NotifyUpdate records a live node's new metadata (memberlist.EventDelegate).
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	m := d.m
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		m.log.Error("update with metadata that was not vetted; ignored", "member", clip(n.Name), "err", err)
		return
	}
	m.mu.Lock()
	st := m.members[n.Name]
	if st == nil { // memberlist announces a join before any update
		m.mu.Unlock()
		m.log.Error("update for an unknown member; ignored", "member", n.Name)
		return
	}
	st.Meta = meta
	st.Addr = nodeAddr(n)
	ev := Event{Kind: EventUpdate, Member: st.Member}
	behind := m.publishLocked(ev)
	m.mu.Unlock()
	m.logEvent(slog.LevelDebug, ev, behind)
}

// NotifyLeave records a node memberlist no longer counts live: left if its
// last metadata said Leaving, else dead (memberlist.EventDelegate; memberlist
// does not say which).
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	m := d.m
	m.mu.Lock()
	st := m.members[n.Name]
	if st == nil {
		m.mu.Unlock()
		return
	}
	kind, status, level := EventDead, StatusDead, slog.LevelWarn
	if st.Meta.Leaving {
		kind, status, level = EventLeave, StatusLeft, slog.LevelInfo
	}
	st.Status, st.Since = status, time.Now()
	ev := Event{Kind: kind, Member: st.Member}
	behind := m.publishLocked(ev)
	m.mu.Unlock()
	m.logEvent(level, ev, behind)
}

func (m *Membership) logEvent(level slog.Level, ev Event, fellBehind int) {
	if ev.Member.ID == m.id && ev.Kind != EventDead {
		level = slog.LevelDebug // our own join, update, leave
	}
	m.log.Log(context.Background(), level, "member "+ev.Kind.String(),
		"member", ev.Member.ID, "addr", ev.Member.Addr, "zone", ev.Member.Meta.Zone, "build", ev.Member.Meta.Build)
	if fellBehind > 0 {
		m.log.Warn("subscribers fell behind; they will get a full sync", "subscribers", fellBehind, "queue", subscriptionQueueMax)
	}
}

// nodeAddr is a memberlist node's gossip address as ip:port.
func nodeAddr(n *memberlist.Node) string {
	ip, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return fmt.Sprintf("invalid-ip:%d", n.Port)
	}
	return netip.AddrPortFrom(ip.Unmap(), n.Port).String()
}

// refusalLog rate-limits the log of refused gossip: a hostile or confused
// peer repeats its message every gossip round, so each (peer, address,
// what) is logged at most once per refusalLogEvery, with the count of
// repeats left out. It remembers at most refusalLogMax keys, forgetting all
// when full: the cost of a flood of made-up names is then a log line each,
// not memory.
type refusalLog struct {
	mu   sync.Mutex
	seen map[string]*refusal // guarded by mu
}

type refusal struct {
	at         time.Time
	suppressed int
}

const (
	refusalLogEvery = time.Minute
	refusalLogMax   = 256
)

// refused logs a refusal of gossip about node name at addr.
func (m *Membership) refused(what, name, addr string, err error) {
	key := what + "\x00" + name + "\x00" + addr
	r := &m.refusals
	r.mu.Lock()
	if r.seen == nil || len(r.seen) >= refusalLogMax {
		r.seen = make(map[string]*refusal)
	}
	now := time.Now()
	e := r.seen[key]
	if e != nil && now.Sub(e.at) < refusalLogEvery {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := 0
	if e != nil {
		suppressed = e.suppressed
	}
	r.seen[key] = &refusal{at: now}
	r.mu.Unlock()
	m.log.Warn("refused gossip", "what", what, "member", clip(name), "addr", addr, "err", err, "repeats", suppressed)
}

// runPinger pings every live member once per ProbeInterval and marks one
// that does not answer within ProbeTimeout suspect (and one that answers
// again alive). memberlist keeps its own suspicion to itself: its Members
// lists suspects as live, with Node.State unset. This costs one ping and
// ack per member per interval on every node (n² per interval in all):
// 100 ms of a core a second at 100 nodes with FastTiming, little at the
// tens of nodes Wisp targets.
func (m *Membership) runPinger(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.timing.ProbeInterval)
	defer t.Stop()
	sem := make(chan struct{}, maxConcurrentPings)
	var pings sync.WaitGroup
	defer pings.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.forgetOld(now)
		}
		for _, tg := range m.pingTargets() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			pings.Add(1)
			go func() {
				defer pings.Done()
				defer func() { <-sem }()
				rtt, err := m.list.Ping(tg.id, tg.addr)
				if ctx.Err() == nil {
					m.pinged(tg, rtt, err)
				}
			}()
		}
		pings.Wait() // one round at a time; the ticker drops the ticks missed
	}
}

type pingTarget struct {
	id   string
	addr *net.UDPAddr
	gen  uint64
}

func (m *Membership) pingTargets() []pingTarget {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pingTarget
	for id, st := range m.members {
		if id == m.id || (st.Status != StatusAlive && st.Status != StatusSuspect) {
			continue
		}
		ap, err := netip.ParseAddrPort(st.Addr)
		if err != nil {
			continue
		}
		out = append(out, pingTarget{id: id, addr: net.UDPAddrFromAddrPort(ap), gen: st.gen})
	}
	return out
}

// pinged applies one ping's outcome, unless the member changed meanwhile.
func (m *Membership) pinged(tg pingTarget, rtt time.Duration, err error) {
	m.mu.Lock()
	st := m.members[tg.id]
	if st == nil || st.gen != tg.gen || (st.Status != StatusAlive && st.Status != StatusSuspect) {
		m.mu.Unlock()
		return
	}
	var ev Event
	switch {
	case err == nil:
		st.RTT = rtt
		if st.Status == StatusSuspect {
			st.Status, st.Since = StatusAlive, time.Now()
			ev = Event{Kind: EventRecover, Member: st.Member}
		}
	case st.Status == StatusAlive:
		st.Status, st.Since = StatusSuspect, time.Now()
		ev = Event{Kind: EventSuspect, Member: st.Member}
	}
	if ev.Kind == 0 {
		m.mu.Unlock()
		return
	}
	behind := m.publishLocked(ev)
	m.mu.Unlock()
	m.logEvent(slog.LevelInfo, ev, behind)
}

// forgetOld drops dead and left members that went more than forgetAfter
// ago. The pinger calls it every round.
func (m *Membership) forgetOld(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, st := range m.members {
		if (st.Status == StatusDead || st.Status == StatusLeft) && now.Sub(st.Since) > forgetAfter {
			delete(m.members, id)
		}
	}
}
