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
//   - A transport error (connection refused or reset, and the like), for
//     Get, Scan and Status only. For Put, Delete, Increment and Batch a
//     transport error after the request went out leaves the outcome
//     unknown, so they return it at once.
//
// No other code is retried. When an Unavailable error carries a
// wisp.v1.LeaderHint naming the leader's URL, the retry goes there at once,
// without sleeping, and the Client keeps sending calls there until a
// transport error sends it back to the base URL given to New.
package client
