package transport

import (
	"log/slog"
	"time"
)

// Defaults of the options below, with the reason for each bound.
const (
	// defaultHandshakeTimeout bounds how long one inbound connection may take
	// to send its header, and how long a Dial waits for the reply when Raft
	// gives no timeout. A healthy handshake takes one round trip (tens of
	// microseconds on a LAN, a few milliseconds on a busy 2-core machine);
	// three seconds stays clear of scheduler stalls while a silent peer holds
	// a handshake slot for at most that long.
	defaultHandshakeTimeout = 3 * time.Second
	// defaultMaxPendingHandshakes bounds the handshake goroutines (and so the
	// connections read before they belong to a group). When a node restarts,
	// every peer's groups reconnect at once: with 5 nodes × 64 groups that is
	// a few hundred handshakes of microseconds each, which 64 slots absorb in
	// well under a millisecond. Past the bound the accept loop waits for a
	// free slot and new connections queue in the kernel's listen backlog.
	defaultMaxPendingHandshakes = 64
	// defaultAcceptQueueLen is each group's buffer of accepted connections
	// that its Raft transport has not taken yet. hashicorp/raft's listen loop
	// takes them at once (it starts a goroutine per connection), so the
	// buffer only absorbs a burst: after a partition heals, each peer opens
	// one pipeline plus up to MaxPool pooled connections per group, about 10
	// for two peers at MaxPool 4.
	defaultAcceptQueueLen = 16
)

type options struct {
	handshakeTimeout     time.Duration
	maxPendingHandshakes int
	acceptQueueLen       int
	advertise            string
	log                  *slog.Logger
}

func defaultOptions() options {
	return options{
		handshakeTimeout:     defaultHandshakeTimeout,
		maxPendingHandshakes: defaultMaxPendingHandshakes,
		acceptQueueLen:       defaultAcceptQueueLen,
		log:                  slog.Default(),
	}
}

// Option configures a Mux.
type Option func(*options)

// WithHandshakeTimeout bounds how long an inbound connection may take to send
// its header (and to be taken by its group), and how long Dial waits for the
// reply when Raft passes no timeout. Default 3s; zero or negative keeps the
// default.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithMaxPendingHandshakes bounds the inbound connections whose header is
// still being read (one goroutine each). When all slots are taken the accept
// loop waits, and new connections wait in the kernel's backlog. Default 64;
// zero or negative keeps the default.
func WithMaxPendingHandshakes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxPendingHandshakes = n
		}
	}
}

// WithAcceptQueueLen sets each group's buffer of accepted connections that
// its Raft transport has not taken yet. A connection that finds the buffer
// full waits until the handshake deadline and is then refused with ErrBusy.
// Default 16; zero or negative keeps the default.
func WithAcceptQueueLen(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.acceptQueueLen = n
		}
	}
}

// WithAdvertiseAddr sets the host:port peers dial to reach this node, which
// every Layer reports as its Addr (Raft stores it in the group
// configuration). Default: the listener's address, which must then not be
// unspecified (":7000" needs an advertise address). Empty keeps the default.
func WithAdvertiseAddr(addr string) Option {
	return func(o *options) { o.advertise = addr }
}

// WithLogger sets where refusals and accept errors are logged. Default
// slog.Default(); nil keeps the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}
