// Package node is one Wisp server: it hosts its replicas (shard groups and
// the meta group's), keeps its copy of the cluster map, runs the placement
// driver when it leads the meta group, measures its memory, gossips, and
// serves the control plane between nodes (wisp.control.v1.ControlService,
// on its Raft port). The client-facing API is shards/api, which a Node
// serves over the interface that package declares (Route, Replica, Status,
// Settings, DrainNode, ...).
//
// The control plane's Connect codes are set in errors.go only; its
// refusals written for an operator (a member change the meta leader will
// not make, say) are relayed to the client as they are.
//
// A Node owns its HTTP server and its replicas; Close stops the server
// gracefully, then hands leadership away and stops the replicas.
package node
