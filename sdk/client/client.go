package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

const (
	// maxEndpoints bounds the cache of per-URL RPC clients. Leader hints
	// name cluster nodes, and a cluster has a handful; the bound only stops
	// a misbehaving server from growing the cache without end.
	maxEndpoints = 64
	// maxIdleConnsPerHost is the idle HTTP/1.1 connections the default
	// HTTP client keeps per node, so that concurrent Connect calls reuse
	// connections instead of redialing (net/http's default is 2).
	maxIdleConnsPerHost = 32
)

// Client is a Wisp client. It is safe for concurrent use by multiple
// goroutines; create one per cluster and share it.
//
// A Client sends each single-key call to the leader of the key's shard when
// it knows it (see WithRouting), and every other call to its preferred
// endpoint: the base URL given to New, or the leader URL a server last
// named for a call not routed by key. If an endpoint fails at the
// transport level, the Client forgets it as a leader and goes back to the
// base URL.
type Client struct {
	baseURL        string
	base           *endpoint // the endpoint for baseURL
	httpClient     connect.HTTPClient
	connectOpts    []connect.ClientOption
	maxAttempts    int           // in [1, maxAttemptsLimit]
	maxDialFails   int           // in [0, maxAttempts]; 0: no bound of its own
	backoffInitial time.Duration // in (0, backoffMax]
	backoffMax     time.Duration // in (0, backoffMaxLimit]
	timeout        time.Duration // 0: none
	routing        bool          // send single-key calls to their shard's leader
	autoPipeline   bool          // queue calls past pipelineInflight into Pipeline RPCs
	// pipelineInflight is the RPCs in flight per endpoint before calls queue
	// (maxInflightCalls; tests lower it).
	pipelineInflight int
	operatorToken    string // WithOperatorToken; "" if none

	// preferred is where unrouted calls go first.
	// Invariant: preferred is non-nil.
	preferred atomic.Pointer[endpoint]

	// shards is the shard map: nil until the first fetch succeeds, and
	// always with routing off. Replaced whole by fetchMap.
	shards atomic.Pointer[shardMap]
	// mapFetching is true while fetchMap runs: at most one at a time.
	mapFetching atomic.Bool
	// mapNotBeforeUnixNano is when the next fetch may start (rate limit).
	mapNotBeforeUnixNano atomic.Int64

	mu sync.Mutex
	// endpoints caches an RPC client per base URL. guarded by mu.
	// Invariant: endpoints[baseURL] exists; len(endpoints) <= maxEndpoints.
	endpoints map[string]*endpoint
}

// endpoint is one node's base URL and the RPC clients for it. It is
// immutable once built.
type endpoint struct {
	url     string
	kv      wispv1connect.KVServiceClient
	cluster wispv1connect.ClusterServiceClient
	plugin  wispv1connect.PluginServiceClient
	pipe    *pipeliner // nil with auto-pipelining off
}

// New returns a Client for the cluster reachable at baseURL, such as
// http://127.0.0.1:8080. It checks baseURL but makes no network call.
func New(baseURL string, opts ...Option) (*Client, error) {
	base, err := normalizeURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("wisp: new client: %w", err)
	}
	var cfg config
	for _, o := range opts {
		if o != nil {
			o.applyToClient(&cfg)
		}
	}
	c := &Client{
		baseURL:          base,
		maxAttempts:      cfg.maxAttempts,
		backoffInitial:   cfg.backoffInitial,
		backoffMax:       cfg.backoffMax,
		timeout:          max(cfg.timeout, 0),
		routing:          !cfg.routingOff,
		autoPipeline:     !cfg.pipelineOff,
		pipelineInflight: cmp.Or(cfg.pipelineInflight, maxInflightCalls),
		endpoints:        make(map[string]*endpoint),
		operatorToken:    cfg.operatorToken,
	}
	switch cfg.protocol {
	case ProtocolConnect:
	case ProtocolGRPC:
		c.connectOpts = append(c.connectOpts, connect.WithGRPC())
	case ProtocolGRPCWeb:
		c.connectOpts = append(c.connectOpts, connect.WithGRPCWeb())
	default:
		return nil, fmt.Errorf("wisp: new client: %w: unknown protocol %d", ErrInvalidArgument, int(cfg.protocol))
	}
	// Learn leaders and map changes from response headers.
	c.connectOpts = append(c.connectOpts, connect.WithInterceptors(connect.UnaryInterceptorFunc(c.watchHeaders)))
	if cfg.httpClient != nil {
		c.httpClient = cfg.httpClient
	} else {
		c.httpClient = defaultHTTPClient(cfg.protocol)
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = defaultMaxAttempts
	}
	c.maxAttempts = min(c.maxAttempts, maxAttemptsLimit)
	c.maxDialFails = min(max(cfg.maxDialFails, 0), c.maxAttempts)
	if c.backoffInitial <= 0 {
		c.backoffInitial = defaultBackoffInitial
	}
	if c.backoffMax <= 0 {
		c.backoffMax = defaultBackoffMax
	}
	c.backoffInitial = min(c.backoffInitial, backoffMaxLimit)
	c.backoffMax = min(max(c.backoffMax, c.backoffInitial), backoffMaxLimit)

	c.base = c.newEndpoint(base)
	c.endpoints[base] = c.base
	c.preferred.Store(c.base)
	return c, nil
}

// defaultHTTPClient returns the HTTP client used when WithHTTPClient is not
// given. gRPC needs HTTP/2, so for it the transport speaks only HTTP/2 and
// uses cleartext HTTP/2 (h2c) for http:// URLs; net/http does that only when
// HTTP/1 is off.
func defaultHTTPClient(p Protocol) *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		t = t.Clone()
	} else {
		// Someone replaced http.DefaultTransport; start from scratch.
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	if p == ProtocolGRPC {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	t.Protocols = &protocols
	return &http.Client{Transport: t}
}

// normalizeURL checks that s is an absolute http or https URL and returns
// it without a trailing slash.
func normalizeURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: base URL %q: %v", ErrInvalidArgument, s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: base URL %q: want http://host:port or https://host:port", ErrInvalidArgument, s)
	}
	return strings.TrimRight(s, "/"), nil
}

func (c *Client) newEndpoint(u string) *endpoint {
	ep := &endpoint{
		url:     u,
		kv:      wispv1connect.NewKVServiceClient(c.httpClient, u, c.connectOpts...),
		cluster: wispv1connect.NewClusterServiceClient(c.httpClient, u, c.connectOpts...),
		plugin:  wispv1connect.NewPluginServiceClient(c.httpClient, u, c.connectOpts...),
	}
	if c.autoPipeline {
		ep.pipe = &pipeliner{kv: ep.kv, maxInflight: c.pipelineInflight}
	}
	return ep
}

// current returns the preferred endpoint.
func (c *Client) current() *endpoint {
	return c.preferred.Load()
}

// endpointFor returns the cached endpoint for u, a normalized URL, making
// it if needed.
func (c *Client) endpointFor(u string) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep, ok := c.endpoints[u]
	if !ok {
		if len(c.endpoints) >= maxEndpoints {
			// Start over with the base URL only; the cache refills with
			// the endpoints that are still in use. Endpoints are
			// immutable, so those the shard map holds stay valid.
			clear(c.endpoints)
			c.endpoints[c.baseURL] = c.base
		}
		ep = c.newEndpoint(u)
		c.endpoints[u] = ep
	}
	return ep
}

// follow makes the endpoint for hint the preferred one and returns it, or
// returns nil if hint is not a usable URL.
func (c *Client) follow(hint string) *endpoint {
	u, err := normalizeURL(hint)
	if err != nil {
		return nil
	}
	ep := c.endpointFor(u)
	c.preferred.Store(ep)
	return ep
}

// Response headers a node sets on KVService responses.
const (
	// leaderHeader is set by a node on a response it got by forwarding the
	// request to the shard's leader; its value is the leader's API base
	// URL.
	leaderHeader = "Wisp-Leader"
	// epochHeader is the answering node's shard map epoch, in decimal.
	epochHeader = "Wisp-Epoch"
)

// watchHeaders learns from the headers of every successful response:
//
//   - Wisp-Epoch different from the shard map's epoch starts a refresh of
//     the map (rate-limited, in the background).
//   - Wisp-Leader, on a response a node forwarded, names the leader of the
//     request's shard. With a shard map, that shard's calls go there next;
//     without one (routing off, or an old server), every call does, as the
//     preferred endpoint. Calls that are not keyed (Scan, Batch) teach
//     nothing when there is a map: they may span shards.
//
// If the leader's URL is not reachable from here, the first transport error
// forgets it (invoke).
func (c *Client) watchHeaders(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return resp, err
		}
		h := resp.Header()
		if e := h.Get(epochHeader); e != "" && c.routing {
			epoch, perr := strconv.ParseUint(e, 10, 64)
			if m := c.shards.Load(); perr == nil && (m == nil || m.epoch != epoch) {
				c.refreshMap()
			}
		}
		if u := h.Get(leaderHeader); u != "" {
			m := c.shards.Load()
			switch k, keyed := req.Any().(interface{ GetKey() []byte }); {
			case m == nil:
				if u != c.current().url {
					c.follow(u)
				}
			case keyed:
				route{m, m.ring.Shard(k.GetKey())}.learn(c, u)
			}
		}
		return resp, err
	}
}

// forget makes the base URL preferred again if ep, which just failed at the
// transport level, is the preferred endpoint.
func (c *Client) forget(ep *endpoint) {
	c.preferred.CompareAndSwap(ep, c.base)
}

// withTimeout applies WithTimeout to ctx.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// retryClass says which failures a call may retry.
type retryClass int

const (
	// writeCall retries only a server-sent Unavailable: the server sends it
	// only when the operation was not applied. A transport error after the
	// request went out leaves the outcome unknown, so it is not retried.
	writeCall retryClass = iota
	// readCall (Get, Scan, Status) also retries transport errors: a read
	// has no side effects.
	readCall
)

// noLeaderRetries is how many more attempts a call makes after a server
// answered Unavailable with a NoLeader detail whose waited_ms > 0: the
// server already waited an election timeout for the shard to elect a
// leader, so the shard has most likely lost its quorum and waiting longer
// rarely helps. One more attempt covers an election that was just ending;
// after it the caller gets the server's message rather than a deadline.
const noLeaderRetries = 1

// invoke runs call until it succeeds, fails in a way class may not retry,
// runs out of attempts, or ctx is done. It returns the last error and the
// number of attempts made. A call with a key goes to the leader of the
// key's shard if known (route); one without (nil) to the preferred
// endpoint.
//
// The last error is the last attempt's: when the next backoff sleep would
// end past ctx's deadline, invoke returns it instead of sleeping into the
// deadline, so that the caller sees why the attempts failed (the server's
// code and message) rather than DeadlineExceeded.
func invoke[T any](ctx context.Context, c *Client, class retryClass, key []byte, call func(context.Context, *endpoint) (T, error)) (T, int, error) {
	ep, rt := c.route(key)
	limit := c.maxAttempts // lowered by a NoLeader answer
	dialFails := 0
	var prev error // the previous attempt's error, if any
	for attempt := 1; ; attempt++ {
		res, err := call(ctx, ep)
		if err == nil {
			return res, attempt, nil
		}
		var cerr *connect.Error
		if !errors.As(err, &cerr) {
			// Generated clients return only *connect.Error; anything else
			// is not ours to retry.
			return res, attempt, err
		}
		if ctx.Err() != nil && prev != nil {
			// ctx ended this attempt; say what the ones before it met.
			return res, attempt, fmt.Errorf("%w (last error: %v)", err, prev)
		}
		var sent *serverError // an op's error inside a Pipeline: the server's own answer
		wire := connect.IsWireError(cerr) || errors.As(err, &sent)
		// A refused connection sent nothing: any call may retry it.
		unsent := !wire && isDialError(cerr)
		if !wire && isTransportError(ctx, cerr) {
			// connect-go reports a reset connection as Canceled; say
			// Unavailable, as for a refused one.
			cause := cerr.Unwrap()
			if unsent {
				dialFails++
				cause = &UnreachableError{URL: ep.url, Err: dialCause(cerr)}
			}
			cerr = connect.NewError(connect.CodeUnavailable, cause)
			err = cerr
			c.forget(ep)
			rt.forget(ep)
		}
		var next *endpoint
		if wire && cerr.Code() == connect.CodeUnavailable {
			// Follow a hint even when not retrying: it helps the next call.
			if hint := leaderHint(cerr); hint != "" {
				if rt.m != nil {
					next = rt.learn(c, hint)
				} else {
					next = c.follow(hint)
				}
			}
			if nl := noLeader(cerr); nl != nil && nl.GetWaitedMs() > 0 {
				limit = min(limit, attempt+noLeaderRetries)
			}
		}
		if attempt >= limit || ctx.Err() != nil || !retryable(cerr, wire || unsent, class) ||
			(c.maxDialFails > 0 && dialFails >= c.maxDialFails) {
			return res, attempt, err
		}
		prev = err
		if next != nil && next.url != ep.url {
			ep = next
			continue // the leader is known: go there at once
		}
		d := c.backoff(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
			// Sleeping would end at the deadline, with no time left for
			// another attempt: report this one's error.
			return res, attempt, err
		}
		if werr := sleep(ctx, d); werr != nil {
			return res, attempt, fmt.Errorf("%w (last error: %v)", werr, err)
		}
		ep, rt = c.route(key)
	}
}

// retryable reports whether a call of class may retry after err; safe says
// the server answered it, or it never left the client.
func retryable(err *connect.Error, safe bool, class retryClass) bool {
	if err.Code() != connect.CodeUnavailable {
		return false
	}
	return safe || class == readCall
}

// isDialError reports whether err is a failure to connect, before anything
// of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// dialCause returns what made a dial fail, without the operation and
// address that net.OpError adds ("connection refused", "lookup foo: no such
// host"): the UnreachableError that carries it names the URL instead.
func dialCause(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Err == nil {
		return err
	}
	var se *os.SyscallError
	if errors.As(op.Err, &se) {
		return se.Err
	}
	return op.Err
}

// isTransportError reports whether err, made by the client rather than sent
// by the server, is a failure to talk to the endpoint (refused, reset, EOF,
// dial timeout) rather than ctx ending.
func isTransportError(ctx context.Context, err *connect.Error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch err.Code() {
	case connect.CodeUnavailable, connect.CodeCanceled, connect.CodeDeadlineExceeded:
		return true
	default:
		return false
	}
}

// backoff returns the sleep before retry number retry (1, 2, ...): a random
// duration in [0, min(backoffMax, backoffInitial*2^(retry-1))].
func (c *Client) backoff(retry int) time.Duration {
	ceiling := c.backoffInitial
	for i := 1; i < retry && ceiling < c.backoffMax; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, c.backoffMax)
	return rand.N(ceiling + 1)
}

// sleep waits for d or until ctx is done. It returns a Connect error with
// code Canceled or DeadlineExceeded, wrapping ctx.Err(), if ctx ended first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		code := connect.CodeCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = connect.CodeDeadlineExceeded
		}
		return connect.NewError(code, ctx.Err())
	}
}
