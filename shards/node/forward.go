package node

import (
	"context"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/gen/wisp/v1/wispv1connect"
)

// forwarder holds Connect clients per peer, over a shared HTTP/2 cleartext
// transport, so forwarded calls multiplex on one connection per peer.
type forwarder struct {
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

func newForwarder(from string) *forwarder {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	t := &http.Transport{
		Protocols:           &p,
		MaxIdleConnsPerHost: forwardIdleConns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &forwarder{from: from, http: &http.Client{Transport: t}, clients: map[string]*peerClients{}}
}

func (f *forwarder) peer(url string) *peerClients {
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
func (f *forwarder) kv(url string) wispv1connect.KVServiceClient { return f.peer(url).kv }

// cluster returns the Cluster client for the node at url.
func (f *forwarder) cluster(url string) wispv1connect.ClusterServiceClient {
	return f.peer(url).cluster
}

// mark sets the forwarded header on outgoing calls.
func (f *forwarder) mark(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set(forwardedHeader, f.from)
		return next(ctx, req)
	}
}

func (f *forwarder) close() { f.http.CloseIdleConnections() }
