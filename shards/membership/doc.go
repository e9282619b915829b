// Package membership lets Wisp nodes find each other and detect failures by
// gossip, over hashicorp/memberlist (SWIM with Lifeguard).
//
// A node calls Start with its id, a gossip address, the addresses of nodes
// already in the cluster (Join) and the metadata it gossips (Meta: API URL,
// Raft address, zone, build, memory used and budget, draining,
// bootstrapped). It then sees every member with its metadata and status
// (Members), and hears of changes through a Subscription:
//
//	ms, err := membership.Start(ctx, membership.Config{
//		NodeID:   "n1",
//		BindAddr: "10.0.0.1:7946",
//		Join:     []string{"10.0.0.2:7946"},
//		Meta:     membership.Meta{APIURL: "http://10.0.0.1:8080", RaftAddr: "10.0.0.1:7080"},
//		Timing:   membership.LANTiming(),
//	})
//	sub := ms.Subscribe()
//	for {
//		ev, err := sub.Next(ctx) // EventSync first, then joins, updates, suspects, deaths...
//	}
//	...
//	ms.Leave(ctx) // peers record StatusLeft, not StatusDead
//	ms.Close()
//
// Nothing of memberlist appears in this package's API: the memberlist node
// name is the Wisp node id, its metadata bytes are Meta's encoding (meta.go
// documents the format), its timing knobs are Timing.
//
// # Statuses and events
//
// memberlist reports a node's arrival (NotifyJoin), its metadata changes
// (NotifyUpdate) and its departure (NotifyLeave), but neither whether a
// departure was a failure or a graceful leave nor when a node is suspect:
// its Members lists suspects as live and leaves Node.State unset. So:
//
//   - StatusAlive and StatusSuspect are memberlist's live nodes; which of the
//     two is this node's own view: every ProbeInterval it pings every live
//     member, and one that misses a ping is suspect until it answers again
//     (EventSuspect, EventRecover). Advisory: act on StatusDead.
//   - StatusDead and StatusLeft are memberlist's departed nodes; left when
//     the node's last metadata said Leaving, which Leave sets and waits to
//     gossip before memberlist's own leave message. A peer that missed the
//     flag records the node dead.
//   - A node that comes back (restarted with the same id) is EventJoin again,
//     with a new generation: results of pings from before are dropped.
//
// Measured on loopback with FastTiming, five nodes, one killed (TestCluster,
// also under -race): every peer saw it suspect after 0.15 to 0.26 s and dead
// after 1.3 to 1.9 s; the bounds are SuspectWithin (0.625 s) and
// DeadWithin(5) (6 s). With LANTiming expect about 1 s and 5 to 25 s.
//
// A Subscription queues at most 256 events; a subscriber that falls further
// behind loses its queue and gets an EventSync (the whole table) instead.
// Delivery never blocks memberlist.
//
// # Hostile gossip
//
// memberlist believes what any node that can reach the gossip port says
// (unless SecretKey is set: then only holders of the key). This package
// vets every alive message (NotifyAlive) and the node list of every join
// (NotifyMerge) before memberlist acts on it, and refuses:
//
//   - a name that is not a valid node id, metadata that does not decode and
//     validate (bounded lengths, URL and address syntax, at most 512 bytes),
//     or metadata naming another id than the node;
//   - an id that a live member already holds at another address: the
//     impostor is ignored, and a node that joins with a taken id fails
//     Start with ErrIDTaken; memberlist's own check refuses a dead node's id
//     from a new address until it forgets the node (NotifyConflict logs it);
//   - new ids once the table holds 4096 members.
//
// Each refusal is logged at WARN, at most once a minute per peer and reason.
//
// # Encryption
//
// With Config.SecretKey, memberlist seals every gossip message, UDP and
// TCP, with AES-GCM under that key, and drops whatever is not sealed with
// it: a node with another key or none neither joins nor is joined, and its
// packets are ignored. The refusing node logs each refused connection at
// WARN (memberlist's "failed to receive", with the peer's address); the
// refused node's Join logs the first refusal of each call at WARN. The key
// is one per cluster: memberlist's keyring can hold several for rotation,
// which this package does not offer. ReadKeyFile reads a key from a file
// (key.go gives the format).
//
// # What it owns
//
// A Membership owns its memberlist (listeners on one UDP and one TCP port,
// the member table, its metadata) and its subscriptions. Its goroutines,
// which Close stops and waits for:
//
//   - the pinger: one ping round per ProbeInterval, with at most 16 pings in
//     flight, each in a goroutine it waits for before the next round.
//
// memberlist runs its own (listeners, packet handler, probe, gossip and
// push/pull schedulers, a handler per inbound TCP connection, timers);
// Shutdown stops them without waiting, and they end within moments.
//
// # Invariants
//
//   - Members holds exactly memberlist's live nodes as StatusAlive or
//     StatusSuspect (both change only through NotifyJoin and NotifyLeave),
//     plus departed nodes for 24 hours.
//   - Every Meta in the table decoded and validated; the local metadata is
//     valid and encodes to at most metaSizeMax bytes, below memberlist's
//     512 (checked at compile time), so memberlist never panics on it.
//   - Lock order is memberlist's node lock, then Membership.mu: memberlist
//     calls the delegates with its lock held, so nothing calls memberlist
//     while holding mu.
//   - Events reach each subscriber in the order the table changed.
package membership
