// Package api is the client edge of a Wisp node: the Connect services
// (wisp.v1.KVService and wisp.v1.ClusterService, spoken as Connect, gRPC
// and gRPC-Web on one HTTP port), gRPC reflection and health, /healthz and
// /readyz. It validates what a client sends (sizes, TTL, preconditions),
// routes each request to the replica that must answer it, forwards what
// only a leader can serve, and gives every error its Connect code.
//
// It works over the Node interface it declares, which *node.Node
// implements: where keys and shards are (Route), the node's replicas
// (Replica: propose, read) and the cluster operations behind
// ClusterService. It keeps no cluster state of its own beyond a cache of
// the leaders of shards the node does not host.
//
// Request flow: validate → pick the shard → if this node's replica can
// serve the request (it leads, or the read is STALE) answer locally;
// otherwise forward it once to the leader through Peers, marking it with
// the Wisp-Forwarded header. A forwarded request that meets a non-leader
// is not forwarded again: it fails with UNAVAILABLE and a LeaderHint
// detail, and the forwarding node follows the hint (serve).
//
// Errors get their Connect code in one place, errors.go: refusals written
// for clients, and connectError for errors from the engine, Raft and the
// network, whose text is logged, never sent. An error the node returns
// with a code already set comes from its control plane and is passed on.
package api
