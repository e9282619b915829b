package transport

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Layer is one group's stream layer on a Mux: it implements
// raft.StreamLayer, so a group builds its transport with
//
//	raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: layer, ...})
//
// Accept yields the inbound connections whose handshake named this group;
// Dial connects to the same group id on another node's Mux. Closing the
// Layer (hashicorp/raft's NetworkTransport.Close does it) closes the group:
// its queued and open connections, in both directions, and later handshakes
// for its id are refused. Safe for concurrent use.
type Layer struct {
	m  *Mux
	id uint64

	// acceptCh holds handshaken inbound connections until Accept takes
	// them. Bounded by WithAcceptQueueLen.
	acceptCh chan net.Conn
	// done is closed by Close.
	done chan struct{}

	mu     sync.Mutex
	conns  map[*conn]struct{} // guarded by mu: open connections, both directions (nil once closed)
	closed bool               // guarded by mu
}

var _ raft.StreamLayer = (*Layer)(nil)

// ID is the group id this layer serves.
func (l *Layer) ID() uint64 { return l.id }

// Accept waits for the next inbound connection of this group. After Close it
// returns an error that wraps net.ErrClosed.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.closedErr()
	default:
	}
	select {
	case c := <-l.acceptCh:
		return c, nil
	case <-l.done:
		return nil, l.closedErr()
	}
}

// Addr is the node's advertised Raft address, shared by all its groups.
func (l *Layer) Addr() net.Addr { return l.m.advertise }

// Close closes the group on this node: queued and open connections are
// closed, Accept returns, and later handshakes for the id are refused with
// ErrUnknownGroup until the id is opened again with Mux.Group. Safe to call
// twice.
func (l *Layer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()

	l.m.unregister(l)
	for c := range conns {
		c.Close()
	}
	return nil
}

// Dial connects to this group on the node at address, within timeout (zero:
// the connect waits as the OS allows and the handshake for the Mux's
// handshake timeout). A node that does not have the group open answers at
// once, and Dial returns an error wrapping ErrUnknownGroup.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(l.m.ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("transport: dial group %d at %s: %w", l.id, address, err)
	}
	tc, ok := l.track(raw)
	if !ok {
		raw.Close()
		return nil, fmt.Errorf("transport: dial group %d at %s: %w", l.id, address, l.closedErr())
	}
	deadline := start.Add(l.m.opts.handshakeTimeout)
	if timeout > 0 {
		deadline = start.Add(timeout)
	}
	if err := handshake(raw, l.id, deadline); err != nil {
		tc.Close()
		return nil, fmt.Errorf("transport: dial group %d at %s: %w", l.id, address, err)
	}
	l.m.dialed.Add(1)
	return tc, nil
}

// handshake sends the header for groupID on a fresh connection and reads
// the reply, all before deadline; on success the deadline is cleared.
func handshake(c net.Conn, groupID uint64, deadline time.Time) error {
	c.SetDeadline(deadline)
	var buf [headerLen]byte
	if _, err := c.Write(appendHeader(buf[:0], groupID)); err != nil {
		return fmt.Errorf("send header: %w", err)
	}
	var reply [1]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if err := replyError(reply[0]); err != nil {
		return err
	}
	c.SetDeadline(time.Time{})
	return nil
}

// deliver tracks an inbound connection and queues it for Accept, waiting
// until deadline for room. It returns replyOK, or the refusal code to send
// (the connection is then no longer tracked, and the caller closes it).
func (l *Layer) deliver(raw net.Conn, deadline time.Time) (*conn, byte) {
	tc, ok := l.track(raw)
	if !ok {
		return nil, replyUnknownGroup
	}
	select {
	case l.acceptCh <- tc:
		return tc, replyOK
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case l.acceptCh <- tc:
		return tc, replyOK
	case <-l.done:
		l.untrack(tc)
		return nil, replyUnknownGroup
	case <-t.C:
		l.untrack(tc)
		return nil, replyBusy
	}
}

func (l *Layer) closedErr() error {
	return fmt.Errorf("transport: group %d: %w", l.id, net.ErrClosed)
}

// track wraps raw and records it as open; false once the layer is closed.
func (l *Layer) track(raw net.Conn) (*conn, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	c := &conn{Conn: raw, l: l}
	l.conns[c] = struct{}{}
	l.m.openConns.Add(1)
	return c, true
}

// untrack forgets c; it runs once per tracked connection.
func (l *Layer) untrack(c *conn) {
	c.once.Do(func() {
		l.mu.Lock()
		delete(l.conns, c) // no-op once Close took the map
		l.mu.Unlock()
		l.m.openConns.Add(-1)
	})
}

// conn is a connection of one group, closed with it.
type conn struct {
	net.Conn
	l    *Layer
	once sync.Once
}

// Close closes the connection and forgets it.
func (c *conn) Close() error {
	c.l.untrack(c)
	return c.Conn.Close()
}
