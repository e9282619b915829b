/*
Package plugins is Wisp's WebAssembly plugin host: it validates, compiles and
runs guest modules in wazero, every one of them treated as hostile until its
answer has been checked.

A Host owns one wazero runtime. Its guests get no filesystem, network, clock
or randomness: the only imports offered are the WASI functions a Go guest's
runtime needs, stubbed deterministically (plugins/internal/wasi), and the
only time a guest sees is the one the host hands in. Each instance's memory
is capped (WithMemoryLimitPages), each call has a deadline (WithCallTimeout,
enforced by wazero's close-on-context-done, and by the host, which returns at
the deadline even when wazero cannot stop the guest yet), and each answer is
bounded in size and checked before use.

LoadEviction validates an eviction plugin (size, compilation, imports,
exports, ABI version, a self-test call) and returns an Eviction, whose
Victims asks it for one batched decision. An Eviction is an
engine/eviction.Policy, like the built-ins, named at load (WithName). A
failed call returns an error and leaves the caller's slice as it was.

LoadTTL loads a ttl plugin, whose TTLs decides the TTLs of a batch of
writes in one call (up to abi.TTLWritesMax; TTLBatchLen packs them) on the
shard leader before it proposes the Puts: a default by key prefix, with
jitter. TTL is a batch of one. GuardedTTL keeps the clients' TTLs, for the
whole batch, when such a call fails. Validate checks a module of either
Kind as the loaders do.

Guarded wraps an Eviction with a built-in fallback: a failed call's decision
is the fallback's, so eviction never stops for a plugin, and its Stats say
how the plugin fares (calls, fallbacks, last error, p99 of call time,
Degraded when most of the last 20 calls failed).

# Compile once, instantiate many

Compiled modules are cached in the Host by the SHA-256 of their bytes, in
memory. Each loaded plugin has a pool of instances (WithInstancesMax), made
when it is loaded; an instance runs one call at a time, and one whose call
failed is closed and replaced in the background, so that a guest left in a
bad state is never called again.

# Invariants

  - An instance serves one call at a time; a pool holds at most its bound of
    instances, counting the ones being made or abandoned at a deadline.
  - Nothing a guest returns is used before it has been checked:
    abi.DecodeVictims (at most VictimsMax distinct indexes of the
    candidates), abi.DecodeTTLOutput (one TTL per write, each -1 or 0 to ten
    years).
  - Victims and TTLs return by their deadline (the earlier of its context's and the
    call timeout), plus the time to schedule a goroutine.

The byte layout shared with guests lives in plugins/abi, the Go guest SDK in
sdk/plugin, and the ABI's description in docs/PLUGINS.md. Design decisions
are in RATIONALE.md beside this file.
*/
package plugins
