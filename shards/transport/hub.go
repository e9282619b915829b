package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// HubID is the handshake id a Hub takes on its Mux: no group may use it.
const HubID = ^uint64(0)

// Bounds of the hub, each with its reason.
const (
	// maxFrameBytes bounds one frame: an AppendEntries of MaxAppendEntries
	// (256) entries of at most 1 MiB each fits, with room for the headers.
	// A longer announced frame is a broken or hostile peer: the wire closes.
	maxFrameBytes = 257 << 20
	// maxQueuedBytes bounds the frames waiting for one wire's writer. A
	// healthy wire drains in microseconds; past this the peer is not
	// reading, and senders get errBacklog (Raft backs off and retries)
	// instead of growing memory without end.
	maxQueuedBytes = 64 << 20
	// inboxLen bounds the requests queued for one group's dispatcher. A
	// leader keeps at most maxPipelineInflight appends plus one heartbeat
	// and one synchronous call in flight to a follower, and there are at
	// most a few leaders and candidates at a time, so a full inbox means a
	// misbehaving peer: its requests are answered with errBusyGroup.
	inboxLen = 256
	// maxPipelineInflight bounds the appends a pipeline has sent and not
	// yet seen answered, as NetworkTransport's default does (2): while they
	// are out, Raft gathers what follows into the next, bigger append.
	maxPipelineInflight = 2
	// pipelineDoneLen is the room for answered appends that Raft's pipeline
	// decoder has not taken yet (hashicorp/raft's rpcMaxPipeline).
	pipelineDoneLen = 128
	// readBufferBytes is each wire's read buffer: one read takes many
	// frames when the peer batched them.
	readBufferBytes = 64 << 10
	// keepBufferBytes: a writer keeps its swap buffer for reuse up to this
	// capacity, and lets a bigger one go after a burst.
	keepBufferBytes = 4 << 20
)

var (
	errBacklog   = errors.New("transport: peer is not reading: send backlog full")
	errBusyGroup = errors.New("transport: group inbox full")
	errTimeout   = errors.New("transport: no answer in time")
	errHubClosed = errors.New("transport: hub closed")
)

// Frame kinds. A response's kind is its request's with respBit set;
// kindError answers any request with an error text instead.
const (
	kindAppendEntries  byte = 1
	kindRequestVote    byte = 2
	kindRequestPreVote byte = 3
	kindTimeoutNow     byte = 4
	respBit            byte = 0x80
	kindError          byte = 0xff
)

// frameHeaderBytes: length (4, counting what follows it), kind (1), group
// (8), call id (8), all big-endian.
const frameHeaderBytes = 4 + 1 + 8 + 8

// Hub carries the Raft RPCs of all the groups of one node over one TCP
// connection per peer node in each direction, and coalesces what the groups
// send at the same moment into one write: under load one system call and one
// wake-up carry the appends and heartbeats of many groups, where
// hashicorp/raft's NetworkTransport pays a write, a read and a goroutine
// wake-up per RPC per group. Messages use the compact encoding of codec.go.
// InstallSnapshot, which streams, stays on each group's NetworkTransport.
//
// A Hub owns, and Close stops and waits for: the accept loop of its Mux
// id (HubID), a reader and a writer goroutine per wire (connection), and
// each open group's dispatcher and snapshot forwarder. Safe for concurrent
// use.
type Hub struct {
	layer   *Layer
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	groups map[uint64]*GroupTransport // guarded by mu
	peers  map[string]*wire           // guarded by mu: outbound wires by address
	dials  map[string]*sync.Mutex     // guarded by mu: one dial at a time per address
	wires  map[*wire]struct{}         // guarded by mu: every live wire
	closed bool                       // guarded by mu

	wg sync.WaitGroup // accept loop, wire readers and writers, dispatchers, snapshot forwarders

	frames atomic.Uint64 // frames written
	writes atomic.Uint64 // write system calls that carried them
}

// NewHub opens the hub on m (taking HubID) and starts accepting wires.
// timeout bounds a dial, a write and a synchronous call's wait for its
// answer (hashicorp/raft's NetworkTransport Timeout).
func NewHub(m *Mux, timeout time.Duration) (*Hub, error) {
	layer, err := m.Group(HubID)
	if err != nil {
		return nil, fmt.Errorf("transport: hub: %w", err)
	}
	h := &Hub{
		layer:   layer,
		log:     m.log.With("component", "raft-hub"),
		timeout: timeout,
		groups:  make(map[uint64]*GroupTransport),
		peers:   make(map[string]*wire),
		dials:   make(map[string]*sync.Mutex),
		wires:   make(map[*wire]struct{}),
	}
	h.wg.Add(1)
	go h.acceptLoop()
	return h, nil
}

// HubStats counts a hub's traffic.
type HubStats struct {
	Frames uint64 // frames written
	Writes uint64 // write calls that carried them: Frames/Writes is the batching
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{Frames: h.frames.Load(), Writes: h.writes.Load()}
}

// Close closes every wire and group transport and waits for the hub's
// goroutines. Safe to call twice.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	groups := make([]*GroupTransport, 0, len(h.groups))
	for _, t := range h.groups {
		groups = append(groups, t)
	}
	wires := make([]*wire, 0, len(h.wires))
	for w := range h.wires {
		wires = append(wires, w)
	}
	h.mu.Unlock()
	for _, t := range groups {
		t.Close()
	}
	err := h.layer.Close()
	for _, w := range wires {
		w.fail(errHubClosed)
	}
	h.wg.Wait()
	return err
}

func (h *Hub) acceptLoop() {
	defer h.wg.Done()
	for {
		c, err := h.layer.Accept()
		if err != nil {
			return // the layer closed
		}
		if _, err := h.startWire(c, ""); err != nil {
			c.Close()
		}
	}
}

// startWire starts the loops of a new wire; addr is the peer's address for
// an outbound wire, "" for an inbound one.
func (h *Hub) startWire(c net.Conn, addr string) (*wire, error) {
	w := &wire{
		h: h, c: c, addr: addr,
		calls: make(map[uint64]*call),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHubClosed
	}
	h.wires[w] = struct{}{}
	if addr != "" {
		h.peers[addr] = w
	}
	h.wg.Add(2)
	go w.readLoop()
	go w.writeLoop()
	return w, nil
}

// wireTo returns the live outbound wire to addr, dialing one if there is
// none. One dial runs at a time per address; callers behind it use its
// wire.
func (h *Hub) wireTo(addr string) (*wire, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errHubClosed
	}
	if w := h.peers[addr]; w != nil {
		h.mu.Unlock()
		return w, nil
	}
	dial := h.dials[addr]
	if dial == nil {
		dial = new(sync.Mutex)
		h.dials[addr] = dial
	}
	h.mu.Unlock()

	dial.Lock()
	defer dial.Unlock()
	h.mu.Lock()
	w := h.peers[addr]
	h.mu.Unlock()
	if w != nil {
		return w, nil // dialed while we waited
	}
	c, err := h.layer.Dial(raft.ServerAddress(addr), h.timeout)
	if err != nil {
		return nil, fmt.Errorf("transport: hub dial %s: %w", addr, err)
	}
	w, err = h.startWire(c, addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	return w, nil
}

func (h *Hub) group(id uint64) *GroupTransport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.groups[id]
}

// Transport opens group id on the hub and returns its raft.Transport.
// snapshots is the group's own NetworkTransport (on its Mux Layer): it
// carries InstallSnapshot, and the returned transport takes it over: its
// Close closes snapshots too. Every node of the group must use a hub.
func (h *Hub) Transport(id uint64, snapshots *raft.NetworkTransport) (*GroupTransport, error) {
	if id == HubID {
		return nil, fmt.Errorf("transport: group %d: the id is the hub's", id)
	}
	t := &GroupTransport{
		h: h, id: id, snapshots: snapshots,
		consumeCh: make(chan raft.RPC),
		inbox:     make(chan *inbound, inboxLen),
		shutdown:  make(chan struct{}),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("transport: group %d: %w", id, errHubClosed)
	}
	if _, ok := h.groups[id]; ok {
		return nil, fmt.Errorf("transport: group %d: %w", id, ErrGroupExists)
	}
	h.groups[id] = t
	h.wg.Add(2)
	go t.dispatchLoop()
	go t.forwardSnapshots()
	return t, nil
}

// wire is one TCP connection between two hubs. The dialing side sends
// requests on it and reads their answers; the accepting side reads requests
// and writes answers. A wire that fails is closed and forgotten, and every
// call waiting on it fails; the next call dials a new one.
type wire struct {
	h    *Hub
	c    net.Conn
	addr string // the peer's address if we dialed it, else ""

	mu     sync.Mutex
	out    []byte           // guarded by mu: frames waiting for the writer
	calls  map[uint64]*call // guarded by mu: calls waiting for answers
	nextID uint64           // guarded by mu
	err    error            // guarded by mu: why the wire failed, once it has

	kick chan struct{} // capacity 1: frames are waiting in out
	done chan struct{} // closed when the wire fails
}

// call is one request waiting for its answer.
type call struct {
	id     uint64 // set when the call is queued
	kind   byte
	result any           // the decoded answer, set before done/fut completes
	done   chan error    // capacity 1: a synchronous call's outcome
	fut    *appendFuture // a pipelined append, or nil
}

// enqueue appends one frame, built by payload, to the writer's queue. If c
// is not nil it is registered under a fresh call id first.
func (w *wire) enqueue(kind byte, group, id uint64, c *call, payload func([]byte) []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if len(w.out) > maxQueuedBytes {
		w.mu.Unlock()
		return errBacklog
	}
	if c != nil {
		w.nextID++
		id = w.nextID
		c.id = id
		w.calls[id] = c
	}
	start := len(w.out)
	w.out = append(w.out, 0, 0, 0, 0, kind)
	w.out = binary.BigEndian.AppendUint64(w.out, group)
	w.out = binary.BigEndian.AppendUint64(w.out, id)
	w.out = payload(w.out)
	n := len(w.out) - start - 4
	if n > maxFrameBytes {
		w.out = w.out[:start]
		if c != nil {
			delete(w.calls, id)
		}
		w.mu.Unlock()
		return fmt.Errorf("transport: frame of %d bytes is over the %d-byte bound", n, maxFrameBytes)
	}
	binary.BigEndian.PutUint32(w.out[start:], uint32(n))
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // the writer is already due to run
	}
	return nil
}

// writeLoop writes whatever frames have queued, all in one write, until the
// wire fails: while it writes, frames from every group queue for the next
// one. (Measured against the sender doing the write itself, flat combining:
// BenchmarkRaftApply/hub 24.4-24.7k applies/s at 0.076-0.080 CPU-ms against
// 17.3-20.4k at 0.094-0.109, paired runs; idle CPU the same.)
func (w *wire) writeLoop() {
	defer w.h.wg.Done()
	var spare []byte
	for {
		select {
		case <-w.kick:
		case <-w.done:
			return
		}
		w.mu.Lock()
		buf := w.out
		w.out = spare[:0]
		w.mu.Unlock()
		if len(buf) == 0 {
			spare = buf
			continue
		}
		w.h.frames.Add(countFrames(buf))
		w.h.writes.Add(1)
		if w.h.timeout > 0 {
			_ = w.c.SetWriteDeadline(time.Now().Add(w.h.timeout))
		}
		if _, err := w.c.Write(buf); err != nil {
			w.fail(err)
			return
		}
		if cap(buf) <= keepBufferBytes {
			spare = buf[:0]
		} else {
			spare = nil
		}
	}
}

// forget drops a call that stopped waiting; a late answer is then ignored.
func (w *wire) forget(c *call) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.calls, c.id)
}

// fail closes the wire once, removes it from the hub and fails its calls.
func (w *wire) fail(err error) {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return
	}
	w.err = fmt.Errorf("transport: wire to %s: %w", w.c.RemoteAddr(), err)
	calls := w.calls
	w.calls = nil
	w.out = nil
	close(w.done)
	w.mu.Unlock()
	w.c.Close()

	h := w.h
	h.mu.Lock()
	delete(h.wires, w)
	if w.addr != "" && h.peers[w.addr] == w {
		delete(h.peers, w.addr)
	}
	h.mu.Unlock()
	for _, c := range calls {
		c.finish(nil, w.err)
	}
}

// countFrames counts the frames in buf, a run of whole frames.
func countFrames(buf []byte) uint64 {
	var n uint64
	for len(buf) >= 4 {
		n++
		buf = buf[min(len(buf), 4+int(binary.BigEndian.Uint32(buf))):]
	}
	return n
}

// readLoop reads frames until the wire fails, handing requests to their
// group's dispatcher and answers to the calls waiting for them.
func (w *wire) readLoop() {
	defer w.h.wg.Done()
	r := bufio.NewReaderSize(w.c, readBufferBytes)
	var hdr [frameHeaderBytes]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			w.fail(err)
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < frameHeaderBytes-4 || n > maxFrameBytes {
			w.fail(fmt.Errorf("%w: frame length %d", errMalformed, n))
			return
		}
		kind := hdr[4]
		group := binary.BigEndian.Uint64(hdr[5:13])
		id := binary.BigEndian.Uint64(hdr[13:21])
		// A fresh buffer per frame: decoded messages keep slices of it.
		payload, err := readPayload(r, n-(frameHeaderBytes-4))
		if err != nil {
			w.fail(err)
			return
		}
		if kind&respBit != 0 {
			err = w.answer(kind, id, payload)
		} else {
			err = w.request(kind, group, id, payload)
		}
		if err != nil {
			w.fail(err)
			return
		}
	}
}

// readPayload reads n bytes into a new slice, growing it as the bytes
// arrive, so that a peer announcing a big frame and sending nothing costs
// no memory.
func readPayload(r io.Reader, n int) ([]byte, error) {
	const step = 1 << 20
	b := make([]byte, 0, min(n, step))
	for len(b) < n {
		m := min(n-len(b), step)
		b = slices.Grow(b, m)
		if _, err := io.ReadFull(r, b[len(b):len(b)+m]); err != nil {
			return nil, err
		}
		b = b[:len(b)+m]
	}
	return b, nil
}

// answer completes the call that id names. An answer to a call that gave
// up waiting is dropped.
func (w *wire) answer(kind byte, id uint64, payload []byte) error {
	w.mu.Lock()
	c := w.calls[id]
	delete(w.calls, id)
	w.mu.Unlock()
	if c == nil {
		return nil
	}
	if kind == kindError {
		c.finish(nil, errors.New(string(payload)))
		return nil
	}
	if kind != c.kind|respBit {
		err := fmt.Errorf("%w: answer kind %#x to a call of kind %#x", errMalformed, kind, c.kind)
		c.finish(nil, err)
		return err
	}
	res, err := decodeResponse(c.kind, payload)
	if err != nil {
		c.finish(nil, err)
		return err
	}
	c.finish(res, nil)
	return nil
}

func (c *call) finish(res any, err error) {
	c.result = res
	if c.fut != nil {
		c.fut.complete(res, err)
		return
	}
	c.done <- err
}

// inbound is a request waiting for its group's dispatcher.
type inbound struct {
	w    *wire
	kind byte
	id   uint64
	rpc  raft.RPC
	resp chan raft.RPCResponse
}

// request decodes a request and queues it for its group. Heartbeats go to
// the group's heartbeat handler at once, as NetworkTransport does, so they
// never wait behind appends.
func (w *wire) request(kind byte, group, id uint64, payload []byte) error {
	cmd, err := decodeRequest(kind, payload)
	if err != nil {
		return err
	}
	t := w.h.group(group)
	if t == nil {
		return w.enqueue(kindError, group, id, nil, func(b []byte) []byte {
			return append(b, fmt.Sprintf("transport: group %d: %v", group, ErrUnknownGroup)...)
		})
	}
	in := &inbound{w: w, kind: kind, id: id, resp: make(chan raft.RPCResponse, 1)}
	in.rpc = raft.RPC{Command: cmd, RespChan: in.resp}
	if ae, ok := cmd.(*raft.AppendEntriesRequest); ok && isHeartbeat(ae) {
		if fn := t.heartbeatHandler(); fn != nil {
			fn(in.rpc)
			select {
			case r := <-in.resp:
				return t.respond(in, r)
			default: // not answered at once: the dispatcher waits for it
				in.rpc.Command = nil
			}
		}
	}
	select {
	case t.inbox <- in:
		return nil
	default:
		return w.enqueue(kindError, group, id, nil, func(b []byte) []byte {
			return append(b, errBusyGroup.Error()...)
		})
	}
}

// isHeartbeat is NetworkTransport's test for a heartbeat.
func isHeartbeat(r *raft.AppendEntriesRequest) bool {
	leader := r.Addr
	if len(leader) == 0 {
		leader = r.Leader
	}
	return r.Term != 0 && leader != nil && r.PrevLogEntry == 0 && r.PrevLogTerm == 0 &&
		len(r.Entries) == 0 && r.LeaderCommitIndex == 0
}

func decodeRequest(kind byte, b []byte) (any, error) {
	switch kind {
	case kindAppendEntries:
		m := new(raft.AppendEntriesRequest)
		return m, decodeAppendEntriesRequest(b, m)
	case kindRequestVote:
		m := new(raft.RequestVoteRequest)
		return m, decodeRequestVoteRequest(b, m)
	case kindRequestPreVote:
		m := new(raft.RequestPreVoteRequest)
		return m, decodeRequestPreVoteRequest(b, m)
	case kindTimeoutNow:
		m := new(raft.TimeoutNowRequest)
		return m, decodeTimeoutNowRequest(b, m)
	}
	return nil, fmt.Errorf("%w: request kind %#x", errMalformed, kind)
}

func decodeResponse(kind byte, b []byte) (any, error) {
	switch kind {
	case kindAppendEntries:
		m := new(raft.AppendEntriesResponse)
		return m, decodeAppendEntriesResponse(b, m)
	case kindRequestVote:
		m := new(raft.RequestVoteResponse)
		return m, decodeRequestVoteResponse(b, m)
	case kindRequestPreVote:
		m := new(raft.RequestPreVoteResponse)
		return m, decodeRequestPreVoteResponse(b, m)
	case kindTimeoutNow:
		m := new(raft.TimeoutNowResponse)
		return m, decodeTimeoutNowResponse(b, m)
	}
	return nil, fmt.Errorf("%w: response kind %#x", errMalformed, kind)
}

// appendResponse encodes Raft's answer to a request of kind.
func appendResponse(b []byte, kind byte, resp any) ([]byte, error) {
	switch m := resp.(type) {
	case *raft.AppendEntriesResponse:
		if kind == kindAppendEntries {
			return appendAppendEntriesResponse(b, m), nil
		}
	case *raft.RequestVoteResponse:
		if kind == kindRequestVote {
			return appendRequestVoteResponse(b, m), nil
		}
	case *raft.RequestPreVoteResponse:
		if kind == kindRequestPreVote {
			return appendRequestPreVoteResponse(b, m), nil
		}
	case *raft.TimeoutNowResponse:
		if kind == kindTimeoutNow {
			return appendTimeoutNowResponse(b, m), nil
		}
	}
	return b, fmt.Errorf("transport: raft answered a request of kind %#x with %T", kind, resp)
}

// GroupTransport is one group's raft.Transport on a Hub. Safe for
// concurrent use.
type GroupTransport struct {
	h         *Hub
	id        uint64
	snapshots *raft.NetworkTransport

	consumeCh chan raft.RPC
	inbox     chan *inbound // requests for the dispatcher; bounded by inboxLen

	hbMu sync.Mutex
	hbFn func(raft.RPC) // guarded by hbMu

	shutdown  chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
}

var (
	_ raft.Transport   = (*GroupTransport)(nil)
	_ raft.WithClose   = (*GroupTransport)(nil)
	_ raft.WithPreVote = (*GroupTransport)(nil)
)

// Consumer returns the channel of requests for Raft.
func (t *GroupTransport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr is the node's Raft address.
func (t *GroupTransport) LocalAddr() raft.ServerAddress { return t.snapshots.LocalAddr() }

// SetHeartbeatHandler sets the fast path for heartbeats.
func (t *GroupTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.hbMu.Lock()
	t.hbFn = cb
	t.hbMu.Unlock()
	t.snapshots.SetHeartbeatHandler(cb)
}

func (t *GroupTransport) heartbeatHandler() func(raft.RPC) {
	t.hbMu.Lock()
	defer t.hbMu.Unlock()
	return t.hbFn
}

// EncodePeer and DecodePeer are NetworkTransport's.
func (t *GroupTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return t.snapshots.EncodePeer(id, addr)
}

// DecodePeer is NetworkTransport's.
func (t *GroupTransport) DecodePeer(b []byte) raft.ServerAddress { return t.snapshots.DecodePeer(b) }

// InstallSnapshot streams a snapshot over the group's own NetworkTransport.
func (t *GroupTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.snapshots.InstallSnapshot(id, target, args, resp, data)
}

// AppendEntries sends one append and waits for its answer.
func (t *GroupTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return call1(t, target, kindAppendEntries, appendAppendEntriesRequest, args, resp)
}

// RequestVote sends a vote request and waits for its answer.
func (t *GroupTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return call1(t, target, kindRequestVote, appendRequestVoteRequest, args, resp)
}

// RequestPreVote sends a pre-vote request and waits for its answer.
func (t *GroupTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return call1(t, target, kindRequestPreVote, appendRequestPreVoteRequest, args, resp)
}

// TimeoutNow asks target to stand for election at once.
func (t *GroupTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return call1(t, target, kindTimeoutNow, appendTimeoutNowRequest, args, resp)
}

// call1 makes one synchronous call: it sends args, encoded by encode, and
// on success copies the answer into resp.
func call1[Req, Resp any](t *GroupTransport, target raft.ServerAddress, kind byte, encode func([]byte, *Req) []byte, args *Req, resp *Resp) error {
	res, err := t.roundTrip(target, kind, func(b []byte) []byte { return encode(b, args) })
	if err == nil {
		*resp = *res.(*Resp)
	}
	return err
}

// roundTrip sends one request and waits, within the hub's timeout, for the
// decoded answer. The answer is decoded into memory of its own, so a late
// one never touches the caller's response.
func (t *GroupTransport) roundTrip(target raft.ServerAddress, kind byte, payload func([]byte) []byte) (any, error) {
	select {
	case <-t.shutdown:
		return nil, raft.ErrTransportShutdown
	default:
	}
	w, err := t.h.wireTo(string(target))
	if err != nil {
		return nil, err
	}
	c := &call{kind: kind, done: make(chan error, 1)}
	if err := w.enqueue(kind, t.id, 0, c, payload); err != nil {
		return nil, err
	}
	var timeout <-chan time.Time
	if t.h.timeout > 0 {
		timer := time.NewTimer(t.h.timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case err := <-c.done:
		return c.result, err
	case <-timeout:
		// As NetworkTransport drops a connection that timed out: the next
		// call dials afresh and learns whether the peer is still there.
		err := fmt.Errorf("transport: group %d to %s: %w", t.id, target, errTimeout)
		w.fail(err)
		return nil, err
	case <-t.shutdown:
		w.forget(c)
		return nil, raft.ErrTransportShutdown
	}
}

// AppendEntriesPipeline opens a pipeline of appends to target on the wire
// to it.
func (t *GroupTransport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	w, err := t.h.wireTo(string(target))
	if err != nil {
		return nil, err
	}
	return &pipeline{
		t: t, w: w,
		inflight: make(chan struct{}, maxPipelineInflight),
		doneCh:   make(chan raft.AppendFuture, pipelineDoneLen),
		shutdown: make(chan struct{}),
	}, nil
}

// Close closes the group on the hub and its snapshot transport: requests
// for it are answered with ErrUnknownGroup. Safe to call twice.
func (t *GroupTransport) Close() error {
	t.closeOnce.Do(func() {
		h := t.h
		h.mu.Lock()
		if h.groups[t.id] == t {
			delete(h.groups, t.id)
		}
		h.mu.Unlock()
		close(t.shutdown)
		t.closeErr = t.snapshots.Close()
	})
	return t.closeErr
}

// dispatchLoop hands queued requests to Raft one at a time, as Raft takes
// them, and sends each answer back on the wire the request came by.
func (t *GroupTransport) dispatchLoop() {
	defer t.h.wg.Done()
	for {
		var in *inbound
		select {
		case in = <-t.inbox:
		case <-t.shutdown:
			t.refuseQueued(nil)
			return
		}
		if in.rpc.Command != nil {
			select {
			case t.consumeCh <- in.rpc:
			case <-t.shutdown:
				t.refuseQueued(in)
				return
			}
		}
		select {
		case r := <-in.resp:
			if err := t.respond(in, r); err != nil {
				in.w.fail(err)
			}
		case <-t.shutdown:
			t.refuseQueued(in)
			return
		}
	}
}

// refuseQueued answers in (if not nil) and the requests still queued with
// raft.ErrTransportShutdown's text, once the group has closed, so their
// callers learn it at once instead of waiting out their timeout.
func (t *GroupTransport) refuseQueued(in *inbound) {
	refuse := func(in *inbound) {
		_ = in.w.enqueue(kindError, t.id, in.id, nil, func(b []byte) []byte {
			return append(b, raft.ErrTransportShutdown.Error()...)
		})
	}
	if in != nil {
		refuse(in)
	}
	for {
		select {
		case in := <-t.inbox:
			refuse(in)
		default:
			return
		}
	}
}

// respond sends Raft's answer to in.
func (t *GroupTransport) respond(in *inbound, r raft.RPCResponse) error {
	if r.Error != nil {
		return in.w.enqueue(kindError, t.id, in.id, nil, func(b []byte) []byte { return append(b, r.Error.Error()...) })
	}
	var encErr error
	err := in.w.enqueue(in.kind|respBit, t.id, in.id, nil, func(b []byte) []byte {
		out, err := appendResponse(b, in.kind, r.Response)
		encErr = err
		return out
	})
	if encErr != nil {
		return encErr
	}
	return err
}

// forwardSnapshots passes the snapshot transport's requests to Raft.
func (t *GroupTransport) forwardSnapshots() {
	defer t.h.wg.Done()
	for {
		select {
		case rpc := <-t.snapshots.Consumer():
			select {
			case t.consumeCh <- rpc:
			case <-t.shutdown:
				return
			}
		case <-t.shutdown:
			return
		}
	}
}

// pipeline is a run of appends to one follower on one wire.
type pipeline struct {
	t        *GroupTransport
	w        *wire
	inflight chan struct{} // one token per append sent and not yet answered
	doneCh   chan raft.AppendFuture

	closeOnce sync.Once
	shutdown  chan struct{}
}

// AppendEntries sends args without waiting for the answer, which arrives
// on Consumer in order. It blocks while maxPipelineInflight appends are
// out.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case p.inflight <- struct{}{}:
	case <-p.shutdown:
		return nil, raft.ErrPipelineShutdown
	case <-p.w.done:
		return nil, p.w.failure()
	}
	f := &appendFuture{p: p, start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	c := &call{kind: kindAppendEntries, fut: f}
	if err := p.w.enqueue(kindAppendEntries, p.t.id, 0, c, func(b []byte) []byte { return appendAppendEntriesRequest(b, args) }); err != nil {
		<-p.inflight
		return nil, err
	}
	return f, nil
}

func (w *wire) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Consumer yields the answered appends in the order they were sent.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close stops the pipeline; appends still out are answered into the void.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() { close(p.shutdown) })
	return nil
}

// appendFuture is one pipelined append.
type appendFuture struct {
	p     *pipeline
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	err   error         // set before done closes
	done  chan struct{} // closed when answered or failed
}

// complete records the answer and hands the future to Raft's pipeline
// decoder. Answers arrive in send order (one wire, one dispatcher per
// group), so Consumer sees them in order.
func (f *appendFuture) complete(res any, err error) {
	if err == nil {
		*f.resp = *res.(*raft.AppendEntriesResponse)
	}
	f.err = err
	close(f.done)
	<-f.p.inflight
	select {
	case f.p.doneCh <- f:
	case <-f.p.shutdown:
	}
}

func (f *appendFuture) Error() error {
	<-f.done
	return f.err
}
func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
