package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// Peers holds Connect clients of the other nodes' APIs, over a shared
// HTTP/2 cleartext transport, so calls to a peer (forwarded requests,
// status and leader queries) multiplex on one connection. Every call is
// marked with the Wisp-Forwarded header: the peer answers it from its own
// replicas, never forwarding it again. Safe for concurrent use.
type Peers struct {
	from string
	http *http.Client

	mu      sync.Mutex
	clients map[string]*peerClients // by base URL; guarded by mu
}

type peerClients struct {
	kv      wispv1connect.KVServiceClient
	cluster wispv1connect.ClusterServiceClient
}

// forwardIdleConns bounds idle connections kept per peer.
const forwardIdleConns = 4

// NewPeers returns the clients of node from.
func NewPeers(from string) *Peers {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	t := &http.Transport{
		Protocols:           &p,
		MaxIdleConnsPerHost: forwardIdleConns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Peers{from: from, http: &http.Client{Transport: t}, clients: map[string]*peerClients{}}
}

func (f *Peers) peer(url string) *peerClients {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[url]
	if !ok {
		opt := connect.WithInterceptors(connect.UnaryInterceptorFunc(f.mark))
		c = &peerClients{
			kv:      wispv1connect.NewKVServiceClient(f.http, url, opt),
			cluster: wispv1connect.NewClusterServiceClient(f.http, url, opt),
		}
		f.clients[url] = c
	}
	return c
}

// kv returns the KV client for the node at url.
func (f *Peers) kv(url string) wispv1connect.KVServiceClient { return f.peer(url).kv }

// Cluster returns the Cluster client for the node at url.
func (f *Peers) Cluster(url string) wispv1connect.ClusterServiceClient {
	return f.peer(url).cluster
}

// mark sets the forwarded header on outgoing calls.
func (f *Peers) mark(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set(forwardedHeader, f.from)
		return next(ctx, req)
	}
}

// Close closes the idle connections.
func (f *Peers) Close() { f.http.CloseIdleConnections() }
