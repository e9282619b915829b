// Package reclaim runs a shard leader's memory duties: active expiry and
// eviction. Both only propose commands through Raft, so every replica drops
// the same keys at the same log index, and a policy (built-in or, later, a
// plugin) can never make replicas disagree, however it chooses.
//
// Every Interval, while its replica leads:
//
//  1. Active expiry: take up to MaxExpirePerEntry keys whose expiry has
//     passed from the engine's TTL index, earliest first, and propose one
//     OpExpire command carrying each key's version (a key rewritten in the
//     meantime survives). Repeat while batches come back full, up to
//     MaxEntriesPerCycle entries. The delay from a key's expiry time to the
//     apply of its Expire entry is recorded as wisp_expiry_lag_seconds.
//  2. Eviction: if the memory budget is set, the policy is not noeviction and
//     the engine's MemoryUsed is above the budget, ask the evictor for
//     victims worth at least MemoryUsed minus the low watermark, and propose
//     one OpEvict command carrying each victim's version. Repeat while still
//     above, up to MaxEntriesPerCycle entries. The evictor samples under the
//     engine's read lock (Group.Read) and calls the policy after releasing
//     it: a plugin policy may take up to its call timeout, and writes and
//     applies must not wait for it. A key rewritten between sampling and the
//     apply survives, since its OpEvict names the sampled version.
//
// When a cycle hits a bound it runs again at once instead of waiting for the
// next tick, so a backlog drains at the speed Raft commits it.
//
// noeviction is not handled here: the node stamps the budget into every write
// command (engine.Command.MaxMemoryBytes) and the engine refuses writes that
// would exceed it.
//
// A Reclaimer owns one goroutine; Close stops it and waits.
package reclaim
