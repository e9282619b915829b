// Package node is one Wisp server: it hosts its replicas, serves the Connect
// API (Connect, gRPC and gRPC-Web on one HTTP port, h2c and HTTP/1.1), routes
// each request to the replica that must answer it, and forwards requests that
// only the leader can serve.
//
// Request flow: validate (sizes, TTL, preconditions) → pick the shard → if
// this node's replica can serve the request (it leads, or the read is STALE)
// answer locally; otherwise forward it once to the leader over the internal
// Connect client, marking it with the Wisp-Forwarded header. A forwarded
// request that meets a non-leader is not forwarded again: it fails with
// UNAVAILABLE and a LeaderHint detail, and the client retries.
//
// Errors get their Connect code in one place, connectError; internal error
// text is logged, never sent to clients.
//
// A Node owns its HTTP server and its replicas; Close stops the server
// gracefully, then hands leadership away and stops the replicas.
package node
