// Package client is the Go client for Wisp, a Raft-replicated key-value
// store.
//
// A Client talks to a cluster through any of its nodes, over the Connect
// protocol (the default), gRPC or gRPC-Web; every node serves all three on
// one port:
//
//	c, err := client.New("http://127.0.0.1:8080")
//	...
//	version, err := c.Put(ctx, "greeting", []byte("hello"), client.WithTTL(time.Minute))
//	item, found, err := c.Get(ctx, "greeting")
//
// There is one method per operation, ctx first. A Client is safe for
// concurrent use; create one per cluster and share it.
//
// # Keys, values and versions
//
// Keys are Go strings and values are byte slices; both are binary safe. An
// empty key is rejected before anything is sent. Every write gives the key a
// new version, the Raft index that applied it. WithIfVersion and
// WithIfAbsent turn a write into a compare-and-swap.
//
// # Errors
//
// Methods return errors that callers branch on with errors.Is and errors.As:
// ErrInvalidArgument, ErrPreconditionFailed (always as a *PreconditionError
// carrying the key's current version) and ErrUnavailable. Errors from the
// server keep their *connect.Error in the chain, so connect.CodeOf(err)
// reports the Connect code. Get reports a missing key with found == false,
// not with an error.
//
// # Retries and leader hints
//
// A call is tried up to WithMaxAttempts times (default 10), sleeping with
// exponential backoff and full jitter between tries (WithBackoff), and never
// past ctx or WithTimeout. What is retried:
//
//   - A server-sent connect.CodeUnavailable, for every method: the server
//     sends it only when the operation was not applied.
//   - A refused connection (nothing was sent), for every method.
//   - Any other transport error (connection reset, EOF, and the like), for
//     Get, Scan and Status only. For Put, Delete, Increment and Batch a
//     transport error after the request went out leaves the outcome
//     unknown, so they return it at once.
//
// No other code is retried. Two answers shorten the retries:
//
//   - An Unavailable carrying a wisp.v1.NoLeader detail with waited_ms > 0:
//     the node waited an election timeout and the shard still has no
//     leader, which means it has lost its quorum. The call is tried once
//     more, then returns the server's error ("shard 3 has no leader: 1 of 3
//     replicas reachable").
//   - A failure to connect, once WithMaxDialFailures attempts have met one
//     (by default there is no such bound). The error wraps an
//     *UnreachableError naming the URL.
//
// A call that gives up returns its last attempt's error, with the server's
// code and message: when the next backoff sleep would pass ctx's deadline
// it stops at once rather than turn that error into DeadlineExceeded. Only
// an attempt that the deadline itself cut short returns DeadlineExceeded,
// with the previous attempt's error in its text.
//
// When an Unavailable error carries a
// wisp.v1.LeaderHint naming the leader's URL, the retry goes there at once,
// without sleeping, and the Client keeps sending that shard's calls there
// (or, for Scan and Batch and without a shard map, all calls but those
// routed by key) until a transport error sends it back to the base URL
// given to New.
//
// # Routing
//
// The cluster splits the keyspace into shards, each a Raft group with a
// leader. Every node accepts every call and forwards it to the right
// leader, which costs a second hop. To save it, the Client computes each
// key's shard itself and sends single-key calls (Get, TTL, Put, Delete,
// Increment, Expire, Persist; stale reads too) straight to that shard's
// leader. It learns the layout from the cluster's shard map
// (ClusterService.ShardMap), fetched in the background from the preferred
// endpoint on the first such call, and fetched again, at most every 500ms,
// when a response's Wisp-Epoch header reports another layout. Leaders move
// without a new map: a response a node forwarded names the shard's leader
// (Wisp-Leader header), as does a LeaderHint, and the Client updates that
// shard only. A transport error to a leader makes the Client forget it and
// use the preferred endpoint for that shard until a node names the leader
// again.
//
// Scan and Batch may span shards, so they go to the preferred endpoint,
// which splits and merges them. Until the map arrives, and with a server
// too old to serve it (it answers Unimplemented; the Client asks again
// after a minute), every call goes to the preferred endpoint, as with
// WithRouting(false). Routing looks a key up in a few tens of nanoseconds,
// without a lock or an allocation.
package client
