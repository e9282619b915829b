package client

import (
	"fmt"
	"net/http"
	"time"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Bounds on the retry loop. Every retry loop in this package is bounded by
// these, whatever the options say.
const (
	// defaultMaxAttempts is the attempts per call when WithMaxAttempts is not
	// given. With the default backoff the nine sleeps add up to at most
	// 6.35s (about half that on average, full jitter): enough to ride out
	// the election after a leader crash, which takes about a second.
	defaultMaxAttempts = 10
	// maxAttemptsLimit caps WithMaxAttempts, so that a misconfigured client
	// cannot hammer a struggling cluster forever.
	maxAttemptsLimit = 20

	// defaultBackoffInitial and defaultBackoffMax bound the sleep before a
	// retry when WithBackoff is not given.
	defaultBackoffInitial = 50 * time.Millisecond
	defaultBackoffMax     = time.Second
	// backoffMaxLimit caps WithBackoff's max: a longer sleep is better done
	// by the caller, who knows why it waits.
	backoffMaxLimit = 30 * time.Second
)

// Protocol is the wire protocol a Client speaks. Every Wisp node serves all
// three on the same port.
type Protocol int

const (
	// ProtocolConnect is the Connect protocol over HTTP/1.1 or HTTP/2. It is
	// the default (the zero value).
	ProtocolConnect Protocol = iota
	// ProtocolGRPC is gRPC. It needs HTTP/2: the default HTTP client speaks
	// HTTP/2 over cleartext (h2c) to http:// URLs and over TLS to https://.
	ProtocolGRPC
	// ProtocolGRPCWeb is gRPC-Web over HTTP/1.1 or HTTP/2.
	ProtocolGRPCWeb
)

// String returns "connect", "grpc" or "grpcweb".
func (p Protocol) String() string {
	switch p {
	case ProtocolConnect:
		return "connect"
	case ProtocolGRPC:
		return "grpc"
	case ProtocolGRPCWeb:
		return "grpcweb"
	default:
		return fmt.Sprintf("Protocol(%d)", int(p))
	}
}

// Option configures a Client in New.
type Option interface {
	applyToClient(*config)
}

// config is what the Options build. New validates and fills in defaults.
type config struct {
	httpClient     *http.Client // nil: the default client for protocol
	protocol       Protocol
	maxAttempts    int
	backoffInitial time.Duration
	backoffMax     time.Duration
	timeout        time.Duration
	routingOff     bool
	pipelineOff    bool
	// pipelineInflight overrides maxInflightCalls (tests: withPipelineInflight).
	pipelineInflight int
	maxDialFails     int
	operatorToken    string
}

type optionFunc func(*config)

func (f optionFunc) applyToClient(c *config) { f(c) }

// WithHTTPClient makes the Client send its requests with hc.
//
// The default (and the zero value, nil) is a client of its own with a clone
// of http.DefaultTransport: for ProtocolGRPC it speaks only HTTP/2, over
// cleartext (h2c, prior knowledge) to http:// URLs and over TLS to https://;
// for the other protocols it speaks HTTP/1.1, and HTTP/2 where TLS offers it.
// A client given here must speak HTTP/2 to use ProtocolGRPC.
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(c *config) { c.httpClient = hc })
}

// WithOperatorToken sets the operator token the operator actions need
// (uploading and activating plugins: UploadPlugin, ActivatePlugin,
// DeactivatePlugin, RollbackPlugin). The Client sends it with those calls
// only, as an Authorization bearer token.
func WithOperatorToken(token string) Option {
	return optionFunc(func(c *config) { c.operatorToken = token })
}

// WithProtocol sets the wire protocol. The default (and the zero value) is
// ProtocolConnect.
func WithProtocol(p Protocol) Option {
	return optionFunc(func(c *config) { c.protocol = p })
}

// WithMaxAttempts sets how many times a call is tried in all, counting the
// first try: 1 means no retries. Only retry-safe failures are retried (see
// the package documentation). The default is 10; n <= 0 (the zero value)
// means the default, and n is capped at 20. To ride out a leader election
// (a second or more), use the cap and bound the call with WithTimeout or
// ctx instead.
func WithMaxAttempts(n int) Option {
	return optionFunc(func(c *config) { c.maxAttempts = n })
}

// WithMaxDialFailures makes a call give up once n of its attempts have
// failed to connect (connection refused, no route to the host, a failed DNS
// lookup: nothing was sent), returning an error that wraps an
// *UnreachableError. A refused connection usually means nothing listens at
// the URL, which retrying for seconds will not change; a command-line tool
// sets 1 or 2 to say so at once, while a long-running service keeps the
// default and rides out a node's restart. The default (and the zero value,
// or any n <= 0) is no bound of its own: such failures count against
// WithMaxAttempts like any other.
func WithMaxDialFailures(n int) Option {
	return optionFunc(func(c *config) { c.maxDialFails = n })
}

// WithBackoff sets the sleep between attempts: before retry r (1, 2, ...)
// the Client sleeps a random duration in [0, min(max, initial*2^(r-1))]
// ("full jitter"), or until ctx is done. A retry that follows a leader hint
// does not sleep. The defaults are 50ms and 1s; initial <= 0 or max <= 0
// (the zero values) mean their default, max is raised to at least initial,
// and both are capped at 30s.
func WithBackoff(initial, max time.Duration) Option {
	return optionFunc(func(c *config) {
		c.backoffInitial = initial
		c.backoffMax = max
	})
}

// WithTimeout sets a time limit for each method call, covering all its
// attempts and backoff sleeps (for ScanAll, each page is one call). The
// caller's ctx deadline applies as well; the earlier one wins. The default
// (and the zero value, or any d <= 0) is no limit beyond ctx.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.timeout = d })
}

// WithRouting sets whether the Client sends each single-key call (Get, TTL,
// Put, Delete, Increment, Expire, Persist) straight to the leader of the
// key's shard, which saves the hop a node takes to forward it. Routing
// needs the cluster's shard map, which the Client fetches in the
// background from its preferred endpoint on the first such call, and again
// when a node reports another layout epoch. Until the map arrives, with a
// server too old to serve one, and with routing off, calls go to the
// preferred endpoint, which forwards them. Scan and Batch, which may span
// shards, always go to the preferred endpoint. Turn routing off when the
// nodes' own URLs, which the map lists, are not reachable from the client
// (behind a load balancer, say). The default is true.
func WithRouting(on bool) Option {
	return optionFunc(func(c *config) { c.routingOff = !on })
}

// WithAutoPipeline sets whether the Client combines single-key calls
// (Get, TTL, Put, Delete, Increment) made at the same time to the same node
// into one Pipeline RPC. A call goes out on its own while fewer than 8
// calls are in flight to its node; past that, calls wait and go out
// together, up to 256 in one RPC, as soon as one in flight returns. Each
// keeps its own result and error, as its own call would have them, and its
// retries; calls a goroutine makes one after another keep their order.
// Under load this costs the server one request per group of calls instead
// of one per call; a lone caller sees no difference. The default is true.
func WithAutoPipeline(on bool) Option {
	return optionFunc(func(c *config) { c.pipelineOff = !on })
}

// withPipelineInflight lowers the calls in flight per node before calls
// queue for a Pipeline, so tests pipeline with few callers.
func withPipelineInflight(n int) Option {
	return optionFunc(func(c *config) { c.pipelineInflight = n })
}

// Consistency is the guarantee a read asks for. A read is never served at a
// weaker level than asked.
type Consistency int

const (
	// Linearizable reads see every write acknowledged before the read
	// began. It is the default (the zero value).
	Linearizable Consistency = iota
	// Stale reads are served by whichever replica answers, possibly behind
	// the leader. They are cheaper and keep working without a quorum.
	Stale
)

// String returns "linearizable" or "stale".
func (c Consistency) String() string {
	switch c {
	case Linearizable:
		return "linearizable"
	case Stale:
		return "stale"
	default:
		return fmt.Sprintf("Consistency(%d)", int(c))
	}
}

func (c Consistency) proto() (wispv1.Consistency, error) {
	switch c {
	case Linearizable:
		return wispv1.Consistency_CONSISTENCY_LINEARIZABLE, nil
	case Stale:
		return wispv1.Consistency_CONSISTENCY_STALE, nil
	default:
		return 0, fmt.Errorf("%w: unknown consistency %d", ErrInvalidArgument, int(c))
	}
}

// ReadOption configures one read (Get).
type ReadOption interface {
	applyToRead(*readConfig)
}

type readConfig struct {
	consistency Consistency
}

type readOptionFunc func(*readConfig)

func (f readOptionFunc) applyToRead(c *readConfig) { f(c) }

// WithConsistency sets the read's consistency. The default (and the zero
// value) is Linearizable.
func WithConsistency(c Consistency) ReadOption {
	return readOptionFunc(func(rc *readConfig) { rc.consistency = c })
}

// WriteOption configures one write: Put, Delete, or a PutOp or DeleteOp in a
// Batch. An option that does not apply to the write (WithTTL on a delete)
// makes the call fail with ErrInvalidArgument before anything is sent.
type WriteOption interface {
	applyToWrite(*writeConfig)
}

type writeConfig struct {
	ttl       time.Duration
	ttlSet    bool
	ifVersion uint64
	ifAbsent  bool
}

type writeOptionFunc func(*writeConfig)

func (f writeOptionFunc) applyToWrite(c *writeConfig) { f(c) }

// WithTTL makes a Put expire d after the leader applies it. d is rounded up
// to a whole millisecond. The default (and the zero value) is no expiry;
// d < 0 is an error. It applies to Put only.
func WithTTL(d time.Duration) WriteOption {
	return writeOptionFunc(func(wc *writeConfig) {
		wc.ttl = d
		wc.ttlSet = true
	})
}

// WithIfVersion makes a Put or Delete apply only if the key exists at
// exactly version v (compare-and-swap). Otherwise the call fails with a
// *PreconditionError. The default (and the zero value, v == 0) is no
// condition. It cannot be combined with WithIfAbsent.
func WithIfVersion(v uint64) WriteOption {
	return writeOptionFunc(func(wc *writeConfig) { wc.ifVersion = v })
}

// WithIfAbsent makes a Put apply only if the key does not exist. Otherwise
// the call fails with a *PreconditionError. It applies to Put only and
// cannot be combined with WithIfVersion.
func WithIfAbsent() WriteOption {
	return writeOptionFunc(func(wc *writeConfig) { wc.ifAbsent = true })
}

func newWriteConfig(opts []WriteOption) writeConfig {
	var wc writeConfig
	for _, o := range opts {
		if o != nil {
			o.applyToWrite(&wc)
		}
	}
	return wc
}

// putRequest builds a PutRequest, checking the arguments.
func putRequest(key string, value []byte, opts []WriteOption) (*wispv1.PutRequest, error) {
	if key == "" {
		return nil, errEmptyKey
	}
	wc := newWriteConfig(opts)
	if wc.ttl < 0 {
		return nil, fmt.Errorf("%w: negative ttl %v", ErrInvalidArgument, wc.ttl)
	}
	if wc.ifVersion != 0 && wc.ifAbsent {
		return nil, fmt.Errorf("%w: WithIfVersion and WithIfAbsent together", ErrInvalidArgument)
	}
	return &wispv1.PutRequest{
		Key:       []byte(key),
		Value:     value,
		TtlMs:     ttlMs(wc.ttl),
		IfVersion: wc.ifVersion,
		IfAbsent:  wc.ifAbsent,
	}, nil
}

// deleteRequest builds a DeleteRequest, checking the arguments.
func deleteRequest(key string, opts []WriteOption) (*wispv1.DeleteRequest, error) {
	if key == "" {
		return nil, errEmptyKey
	}
	wc := newWriteConfig(opts)
	if wc.ttlSet {
		return nil, fmt.Errorf("%w: WithTTL does not apply to delete", ErrInvalidArgument)
	}
	if wc.ifAbsent {
		return nil, fmt.Errorf("%w: WithIfAbsent does not apply to delete", ErrInvalidArgument)
	}
	return &wispv1.DeleteRequest{Key: []byte(key), IfVersion: wc.ifVersion}, nil
}

// ttlMs rounds d up to whole milliseconds, so that a small positive TTL
// never turns into 0 (no expiry).
func ttlMs(d time.Duration) int64 {
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	return int64(ms)
}
