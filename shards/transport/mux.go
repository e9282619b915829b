package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mux is one node's Raft listener: a single TCP port shared by all the
// node's Raft groups. Each group takes its stream layer from Group. Safe for
// concurrent use.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	opts      options
	log       *slog.Logger

	// ctx is cancelled by Close: it stops the accept loop's wait for a
	// handshake slot and aborts dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	// slots holds one token per handshake goroutine running.
	// Invariant: len(slots) == number of handshake goroutines alive.
	slots chan struct{}

	mu      sync.Mutex
	groups  map[uint64]*Layer     // guarded by mu: the open groups
	pending map[net.Conn]struct{} // guarded by mu: inbound conns still in their handshake
	closed  bool                  // guarded by mu

	// wg counts the accept loop and the handshake goroutines. Add only
	// under mu while !closed, so Close's Wait sees every goroutine.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	accepted      atomic.Uint64
	dialed        atomic.Uint64
	refused       atomic.Uint64
	badHandshakes atomic.Uint64
	openConns     atomic.Int64
}

// Listen opens the node's Raft port on addr ("host:port"; port 0 picks one)
// and starts the accept loop. Close stops it. If addr's host is unspecified
// (":7000", "0.0.0.0:7000"), WithAdvertiseAddr must say where peers dial.
func Listen(addr string, opts ...Option) (*Mux, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", addr, err)
	}
	var adv net.Addr = ln.Addr()
	if o.advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", o.advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("transport: advertise address %q: %w", o.advertise, err)
		}
		adv = a
	}
	if a, ok := adv.(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() || a.Port == 0 {
		ln.Close()
		return nil, fmt.Errorf("transport: address %s is not one peers can dial: set WithAdvertiseAddr", adv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		ln:        ln,
		advertise: adv,
		opts:      o,
		log:       o.log.With("component", "raft-transport", "addr", adv.String()),
		ctx:       ctx,
		cancel:    cancel,
		slots:     make(chan struct{}, o.maxPendingHandshakes),
		groups:    make(map[uint64]*Layer),
		pending:   make(map[net.Conn]struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr is the address peers dial to reach this node: the advertise address
// if one was set, else the listener's.
func (m *Mux) Addr() net.Addr { return m.advertise }

// Group opens group id on this node and returns its stream layer, for
// raft.NewNetworkTransportWithConfig. From now on inbound connections for id
// are handed to the layer; before, and after the layer is closed, they are
// refused with ErrUnknownGroup. It fails with ErrGroupExists if id is open
// already, and with net.ErrClosed after Close.
func (m *Mux) Group(id uint64) (*Layer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("transport: group %d: %w", id, net.ErrClosed)
	}
	if _, ok := m.groups[id]; ok {
		return nil, fmt.Errorf("transport: group %d: %w", id, ErrGroupExists)
	}
	l := &Layer{
		m:        m,
		id:       id,
		acceptCh: make(chan net.Conn, m.opts.acceptQueueLen),
		done:     make(chan struct{}),
		conns:    make(map[*conn]struct{}),
	}
	m.groups[id] = l
	return l, nil
}

// Close closes the listener and every open group (with all their
// connections, in both directions), and waits until the mux's goroutines
// have exited. To peers the node looks crashed. Safe to call twice.
//
// On a clean shutdown, shut the node's Raft groups down first: a
// NetworkTransport whose Layer is closed under it logs accept errors (with
// backoff) until it is closed too.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		layers := make([]*Layer, 0, len(m.groups))
		for _, l := range m.groups {
			layers = append(layers, l)
		}
		pending := make([]net.Conn, 0, len(m.pending))
		for c := range m.pending {
			pending = append(pending, c)
		}
		m.mu.Unlock()

		m.cancel()
		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("transport: close listener: %w", err)
		}
		for _, c := range pending {
			c.Close() // the handshake goroutine sees the error and exits
		}
		for _, l := range layers {
			l.Close()
		}
		m.wg.Wait()
	})
	return m.closeErr
}

// Stats are a Mux's counters since Listen.
type Stats struct {
	// Accepted counts inbound connections handed to a group.
	Accepted uint64
	// Dialed counts outbound connections that completed the handshake.
	Dialed uint64
	// Refused counts inbound handshakes answered with a refusal (unknown or
	// closed group, busy, unsupported version).
	Refused uint64
	// BadHandshakes counts inbound connections closed without an answer:
	// bad magic, or no full header before the handshake timeout.
	BadHandshakes uint64
	// OpenConns is the number of TCP connections open right now through
	// this mux's groups, inbound and outbound.
	OpenConns int64
	// PendingHandshakes is the number of inbound connections whose header
	// is being read right now (at most WithMaxPendingHandshakes).
	PendingHandshakes int
	// Groups is the number of open groups.
	Groups int
}

// Stats returns the mux's counters.
func (m *Mux) Stats() Stats {
	m.mu.Lock()
	groups, pending := len(m.groups), len(m.pending)
	m.mu.Unlock()
	return Stats{
		Accepted:          m.accepted.Load(),
		Dialed:            m.dialed.Load(),
		Refused:           m.refused.Load(),
		BadHandshakes:     m.badHandshakes.Load(),
		OpenConns:         m.openConns.Load(),
		PendingHandshakes: pending,
		Groups:            groups,
	}
}

// Accept-error backoff, as in net/http: a persistent error (out of file
// descriptors) must not spin the loop.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptLoop takes a handshake slot, accepts one connection and hands it to
// a handshake goroutine. Owned by the Mux; exits on Close.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		select {
		case m.slots <- struct{}{}:
		case <-m.ctx.Done():
			return
		}
		c, err := m.ln.Accept()
		if err != nil {
			<-m.slots
			if errors.Is(err, net.ErrClosed) || m.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			m.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-m.ctx.Done():
				return
			}
		}
		backoff = 0
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			<-m.slots
			return
		}
		m.pending[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.handshake(c)
	}
}

// handshake reads one inbound connection's header and hands the connection
// to its group, or refuses it. It returns within the handshake timeout (or
// at once on Close), and then gives its slot back.
func (m *Mux) handshake(c net.Conn) {
	defer m.wg.Done()
	defer func() { <-m.slots }()
	defer func() {
		m.mu.Lock()
		delete(m.pending, c)
		m.mu.Unlock()
	}()

	deadline := time.Now().Add(m.opts.handshakeTimeout)
	c.SetDeadline(deadline)
	h, err := readHeader(c)
	if err != nil {
		m.badHandshakes.Add(1)
		m.log.Debug("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	// From here on the connection has no deadline: the group's Raft
	// transport sets none on inbound connections, and the only writes left
	// are one reply byte into a fresh socket's empty send buffer, which
	// cannot block.
	c.SetDeadline(time.Time{})
	if h.version != version {
		m.log.Warn("refused connection: unsupported handshake version", "remote", c.RemoteAddr().String(), "version", h.version)
		m.refuse(c, replyUnsupportedVersion)
		return
	}
	m.mu.Lock()
	l := m.groups[h.groupID]
	m.mu.Unlock()
	if l == nil {
		m.log.Debug("refused connection: unknown group", "remote", c.RemoteAddr().String(), "group", h.groupID)
		m.refuse(c, replyUnknownGroup)
		return
	}
	tc, code := l.deliver(c, deadline)
	if code != replyOK {
		m.log.Debug("refused connection", "remote", c.RemoteAddr().String(), "group", h.groupID, "err", replyError(code))
		m.refuse(c, code)
		return
	}
	// The dialer sends nothing before this reply, so the group's handler
	// neither reads nor writes anything until it arrives.
	if _, err := c.Write([]byte{replyOK}); err != nil {
		tc.Close()
		return
	}
	m.accepted.Add(1)
}

// refuse answers a handshake with a refusal code and closes the connection.
func (m *Mux) refuse(c net.Conn, code byte) {
	m.refused.Add(1)
	c.Write([]byte{code})
	c.Close()
}

// unregister forgets l if it is still the open layer for its id.
func (m *Mux) unregister(l *Layer) {
	m.mu.Lock()
	if m.groups[l.id] == l {
		delete(m.groups, l.id)
	}
	m.mu.Unlock()
}
