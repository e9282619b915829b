// Package transport carries all the Raft groups of one node over a single TCP
// port.
//
// A node opens one Mux with Listen. Each Raft group hosted on the node takes
// a Layer from Mux.Group(id); the Layer implements hashicorp/raft's
// StreamLayer, so the group builds an ordinary NetworkTransport on it:
//
//	mux, err := transport.Listen("10.0.0.1:7000")
//	layer, err := mux.Group(shardID)
//	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
//		Stream: layer, MaxPool: 4, Timeout: 10 * time.Second, Logger: hlog,
//	})
//
// The group id is the same on every node (the shard id), so a Layer dials the
// same id on its peers. Every peer of every group is addressed by its node's
// one Raft address, which Layer.Addr reports.
//
// # What it owns
//
// The Mux owns the listener, the accept loop, the handshakes in progress and
// the table of open groups. A Layer owns its group's connections, both the
// inbound ones it hands to Accept and the outbound ones Dial returns:
// closing the Layer (NetworkTransport.Close does it) closes them all, and
// closing the Mux closes every Layer, so a closed node looks crashed to its
// peers at once. (NetworkTransport.Close alone leaves its pooled and inbound
// connections open until the garbage collector or the peer closes them.)
// Everything above the handshake (framing, msgpack, pooling, pipelining)
// stays hashicorp/raft's.
//
// # Wire format
//
// A dialer opens a TCP connection and sends a 13-byte header:
//
//	offset size field
//	0      4    magic "WSPR"
//	4      1    format version, 1
//	5      8    group id, big-endian uint64
//
// and waits for one reply byte:
//
//	0  accepted: from the next byte on, the connection is the group's Raft stream
//	1  unknown group: not open on this node (never opened, or closed)
//	2  busy: the group's accept queue stayed full until the handshake deadline
//	3  unsupported version: the listener speaks another format version
//
// After a refusal the listener closes the connection, and Dial returns an
// error wrapping ErrUnknownGroup, ErrBusy or ErrUnsupportedVersion: a dialer
// learns in one round trip that the group is not there, instead of waiting
// for a Raft RPC to time out. A header with the wrong magic is not ours (a
// probe, a stray client): the connection is closed without a reply.
//
// The header has a fixed length so the listener reads exactly 13 bytes, with
// no buffering that could swallow the start of the Raft stream. The dialer
// sends nothing after the header until the reply arrives, so the reply never
// interleaves with Raft's own traffic. A later version keeps the magic and
// bumps the version byte; a version-1 listener refuses it with code 3, which
// tells the dialer to fall back.
//
// # Goroutines
//
// A Mux owns, and Close stops and waits for:
//
//   - the accept loop, one per Mux: takes a handshake slot, accepts a
//     connection, starts its handshake goroutine;
//   - one handshake goroutine per inbound connection whose header is being
//     read, at most WithMaxPendingHandshakes at once, each gone within the
//     handshake timeout: it reads the header, looks the group up, queues the
//     connection for the group's Accept and writes the reply.
//
// A Layer starts no goroutine; Dial runs in its caller's. hashicorp/raft's
// NetworkTransport runs its own on a Layer (a listen loop per group, a
// handler per inbound connection, a decoder per pipeline); they end when the
// Layer closes their connections and the transport shuts down.
//
// # Bounds
//
//   - Handshake timeout (WithHandshakeTimeout, default 3 s): a peer that
//     connects and stays silent, or sends half a header, holds a handshake
//     slot for at most this long and is then closed. It never holds the
//     accept loop, which only accepts.
//   - Pending handshakes (WithMaxPendingHandshakes, default 64): bounds the
//     goroutines and memory spent on connections that do not yet belong to a
//     group. With every slot taken the accept loop waits for one, and new
//     connections wait in the kernel's listen backlog, as with
//     golang.org/x/net/netutil.LimitListener.
//   - Accept queue per group (WithAcceptQueueLen, default 16): handshaken
//     connections waiting for the group's Accept. Raft takes them at once;
//     the queue absorbs a reconnection burst. A full queue makes the
//     connection wait until its handshake deadline, then it is refused busy.
//   - Connections per group: hashicorp/raft keeps at most MaxPool idle
//     outbound connections per peer, plus those in use (a pipeline and a
//     synchronous RPC, such as a heartbeat, at a time). Every connection of a
//     group is counted in Stats.OpenConns and closed with the group.
//
// # Why one TCP connection per Raft stream, not a multiplexer
//
// The group id travels once per connection, and after the handshake the
// bytes go straight between the kernel and Raft's buffered reader and
// writer. A stream multiplexer such as hashicorp/yamux shares one TCP
// connection per pair of nodes, but frames every write, runs flow-control
// windows and moves every frame through its session goroutines. Measured
// here (16 groups × 3 replicas, in-memory logs, 64 appliers, 2 cores):
// yamux used about 30 % more CPU per apply than this package and served
// about a quarter fewer applies per second, while this package matched one
// TCP port per group (raft.NewTCPTransport) within the noise. What yamux saves is connections: 6
// instead of about 70 for that cluster, well within file-descriptor limits at
// the cluster sizes Wisp targets. See BenchmarkRaftApply.
//
// # The hub: every group's RPCs on one connection per peer
//
// A Hub (hub.go) takes the reserved id HubID on the Mux and carries the
// Raft RPCs of all the node's groups: one connection per peer node in each
// direction. Unlike a stream multiplexer it works on whole messages: a
// group's GroupTransport (its raft.Transport) encodes each request into the
// connection's queue (codec.go: a hand-written, versioned encoding instead
// of msgpack), and the connection's writer goroutine sends everything
// queued in one write, so under load the appends and heartbeats of many
// groups share a system call and a wake-up on each side. The receiving hub answers
// heartbeats at once through the group's heartbeat handler and queues other
// requests for the group's dispatcher, which feeds Raft and sends the
// answers back. InstallSnapshot, which streams, stays on the group's own
// NetworkTransport over its Layer. Goroutines: the hub's accept loop, a
// reader and a writer per connection, a dispatcher and a snapshot
// forwarder per group; Hub.Close stops and waits for them all. Bounds:
// frames up to 257 MiB (an append of 256 entries of 1 MiB), 64 MiB queued
// per connection (then senders get an error), 256 requests queued per
// group (then the peer gets an error), 2 pipelined appends per follower,
// and TransportTimeout-style deadlines on dials, writes and calls. Measured
// against NetworkTransports on the Mux (BenchmarkRaftApply, 16 groups × 3
// replicas, in-memory logs): about 35 % more applies per second, 28 % less
// CPU per apply, 6 connections instead of about 68.
package transport
