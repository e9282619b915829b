package client

import (
	"cmp"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/ring"
)

// Routing by key. The cluster splits the keyspace into shards with a key
// ring (shards/ring), and every shard is a Raft group whose leader serves
// its calls. Any node accepts any call and forwards it to the leader, at
// the cost of a second hop; the Client skips that hop by computing the
// key's shard itself, from a shard map it fetches from its preferred
// endpoint (ClusterService.ShardMap), and sending the call to that shard's
// leader.
//
// The map is fetched in the background: on the first keyed call, and again
// when a response's Wisp-Epoch differs from the map's epoch. Until a map
// arrives, and for good with an old server that answers Unimplemented,
// calls go to the preferred endpoint as without routing.

const (
	// mapRefreshInterval is the least time from the end of one shard map
	// fetch to the start of the next: responses from nodes at another
	// epoch (during a change, each response says so) cause at most one
	// fetch per interval.
	mapRefreshInterval = 500 * time.Millisecond
	// mapRetryLater is the wait after a server answered Unimplemented (it
	// predates the shard map, and upgrades are rare) or sent a map this
	// client cannot use.
	mapRetryLater = time.Minute
	// mapFetchTimeout bounds one fetch.
	mapFetchTimeout = 5 * time.Second
	// maxMapTokens bounds the key ring a map may ask for: 12 MiB of
	// tokens (the default, 16 shards × 1,024 vnodes, is 192 KiB).
	maxMapTokens = 1 << 20
	// maxMapNodes bounds the nodes a map may list.
	maxMapNodes = 1024
)

// shardMap is a snapshot of the cluster's layout: the key ring and, per
// shard, where its calls go. It is safe for concurrent use: the epoch and
// ring are immutable, and each leader slot is an atomic pointer, so the
// keyed-call hot path is one atomic load of the map, a ring lookup and one
// atomic load of the slot, with no lock and no allocation. A newer layout
// replaces the whole map (Client.shards).
type shardMap struct {
	// epoch is the server's layout epoch (shard count, vnodes, members,
	// placement); leader changes keep it.
	epoch uint64
	ring  *ring.KeyRing
	// leaders[s] is shard s's leader as last learned (from the map, a
	// Wisp-Leader header or a LeaderHint) or, before any is known, the
	// replica the placement wants to lead; nil: unknown, use the preferred
	// endpoint.
	// Invariant: len(leaders) == ring.Shards().
	leaders []atomic.Pointer[endpoint]
}

// route is the shard of a keyed call in the map it was routed by. The zero
// route (m == nil) is a call without routing; its methods do nothing.
type route struct {
	m     *shardMap
	shard int // in [0, len(m.leaders)) when m != nil
}

// forget clears the shard's leader if it is ep, which just failed at the
// transport level: the shard's next calls go to the preferred endpoint,
// whose forwarded answer names the leader again.
func (r route) forget(ep *endpoint) {
	if r.m != nil {
		r.m.leaders[r.shard].CompareAndSwap(ep, nil)
	}
}

// learn makes url, if usable, the leader of the shard and returns its
// endpoint, or nil.
func (r route) learn(c *Client, url string) *endpoint {
	u, err := normalizeURL(url)
	if r.m == nil || err != nil {
		return nil
	}
	slot := &r.m.leaders[r.shard]
	if ep := slot.Load(); ep != nil && ep.url == u {
		return ep
	}
	ep := c.endpointFor(u)
	slot.Store(ep)
	return ep
}

// route returns where a call for key goes first: the leader of key's shard
// if known, else the preferred endpoint. A nil key (a call that is not
// keyed) goes to the preferred endpoint. Without a map it asks for one.
func (c *Client) route(key []byte) (*endpoint, route) {
	if key == nil || !c.routing {
		return c.current(), route{}
	}
	m := c.shards.Load()
	if m == nil {
		c.refreshMap()
		return c.current(), route{}
	}
	rt := route{m, m.ring.Shard(key)}
	if ep := m.leaders[rt.shard].Load(); ep != nil {
		return ep, rt
	}
	return c.current(), rt
}

// refreshMap starts fetching the shard map in the background, unless
// routing is off, a fetch is running, or the last one ended too recently.
func (c *Client) refreshMap() {
	if !c.routing || time.Now().UnixNano() < c.mapNotBeforeUnixNano.Load() {
		return
	}
	if c.mapFetching.CompareAndSwap(false, true) {
		go c.fetchMap()
	}
}

// fetchMap fetches the shard map from the preferred endpoint and installs
// it. On failure it keeps the map it has (or none: no routing). It runs
// in its own goroutine, at most one at a time, and ends within
// mapFetchTimeout.
func (c *Client) fetchMap() {
	wait := mapRefreshInterval
	defer func() {
		// Rate-limit before letting the next fetch start.
		c.mapNotBeforeUnixNano.Store(time.Now().Add(wait).UnixNano())
		c.mapFetching.Store(false)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), mapFetchTimeout)
	defer cancel()
	res, err := c.current().cluster.ShardMap(ctx, connect.NewRequest(&wispv1.ShardMapRequest{}))
	if err != nil {
		if connect.CodeOf(err) == connect.CodeUnimplemented {
			wait = mapRetryLater
		}
		return
	}
	m, err := c.newShardMap(res.Msg, c.shards.Load())
	if err != nil {
		wait = mapRetryLater
		return
	}
	c.shards.Store(m)
}

// newShardMap checks res and builds a map from it, reusing old's key ring
// if the shard count and vnodes are the same. It errors on a map that is
// inconsistent or larger than the bounds, which a correct server never
// sends.
func (c *Client) newShardMap(res *wispv1.ShardMapResponse, old *shardMap) (*shardMap, error) {
	count, vnodes := int(res.GetShardCount()), int(res.GetKeyVnodes())
	if vnodes == 0 {
		vnodes = ring.DefaultKeyVnodes // as ring.NewKeyRing reads 0
	}
	switch {
	case count < 1 || count > maxMapTokens/vnodes:
		return nil, fmt.Errorf("shard map: %d shards × %d vnodes: want 1 to %d tokens", count, vnodes, maxMapTokens)
	case len(res.GetShards()) != count:
		return nil, fmt.Errorf("shard map: %d shards listed for a shard count of %d", len(res.GetShards()), count)
	case len(res.GetNodes()) > maxMapNodes:
		return nil, fmt.Errorf("shard map: %d nodes: want at most %d", len(res.GetNodes()), maxMapNodes)
	}
	urls := make(map[string]string, len(res.GetNodes())) // node id → URL
	for _, n := range res.GetNodes() {
		if u, err := normalizeURL(n.GetUrl()); err == nil {
			urls[n.GetId()] = u
		}
	}
	var r *ring.KeyRing
	if old != nil && old.ring.Shards() == count && old.ring.Vnodes() == vnodes {
		r = old.ring
	} else {
		r = ring.NewKeyRing(count, vnodes)
	}
	m := &shardMap{epoch: res.GetEpoch(), ring: r, leaders: make([]atomic.Pointer[endpoint], count)}
	for i, sh := range res.GetShards() {
		if sh.GetId() != uint32(i) {
			return nil, fmt.Errorf("shard map: shard %d at index %d", sh.GetId(), i)
		}
		// A node that knows no leader names the one the placement wants;
		// if it is wrong, its forwarded answer names the real one.
		if u, ok := urls[cmp.Or(sh.GetLeaderId(), sh.GetPreferredLeaderId())]; ok {
			m.leaders[i].Store(c.endpointFor(u))
		}
	}
	return m, nil
}
