/*
Package eviction holds Wisp's built-in eviction policies and the Evictor, the
sampling loop that turns a policy into victims. A shard leader's eviction
loop (shards/reclaim) and the hit-ratio benchmarks share them.

Nothing here runs inside Engine.Apply. The leader asks the Evictor for
victims and proposes one OpEvict per victim at the version it was sampled
at; every replica then removes exactly those keys at the same log index, and
a key rewritten in the meantime survives. So the policies may be
nondeterministic (the random ones are), and a WASM policy can be too,
without replicas ever disagreeing.

# Policies

A Policy sees a batch of candidates (engine.Candidate: key, version, size,
expiry, last access, LFU counter) and answers with the indexes of the ones to
evict, best victim first. That shape, one batch in and indexes out, is what a
WASM eviction plugin implements in one call (plugins.Eviction is a Policy):
keep it. Victims takes a context and returns an error because a plugin can
fail or run out of time; the built-ins never fail and never block.

The built-ins are Redis's maxmemory-policy values (New, Names):

	noeviction       no victims; the node rejects writes that would exceed
	                 the budget (engine.Command.MaxMemoryBytes)
	allkeys-lru      least recently used first (Candidate.LastAccess, the
	                 engine's access clock)
	allkeys-lfu      lowest LFU counter first (Candidate.Frequency, Redis's
	                 logarithmic counter with decay), then least recently used
	allkeys-random   uniformly random
	volatile-lru     as allkeys-lru, among keys with an expiry time
	volatile-lfu     as allkeys-lfu, among keys with an expiry time
	volatile-random  as allkeys-random, among keys with an expiry time
	volatile-ttl     soonest expiry first, then least recently used, among
	                 keys with an expiry time

Every built-in but noeviction puts candidates that have already expired
first, earliest expiry first. An expired key is invisible to reads and waits
only for active expiry to remove it, so evicting it loses nothing, while any
live key the policy ranks above it might be read again. Redis gets the same
effect differently: its expiry cycle and lazy expiry usually remove such keys
before eviction looks. Here expiry goes through the Raft log too and can lag,
so eviction takes them itself.

How much allkeys-lfu gains over allkeys-lru depends on the read rate, because
the engine's LFU counters lose one step per idle minute (Redis's
lfu-decay-time default). On a Zipf(0.99) trace with a cache of a tenth of the
keys (BenchmarkHitRatio), at 1,000 reads a second the keys near the cache's
edge are read less than once per decay step and allkeys-lfu does no better
than LRU; at 100,000 reads a second it comes within a fraction of a point of
an exact LFU cache, about 3 points above LRU.

Ties are broken by position in the batch, so the deterministic policies are
deterministic. The random ones draw from a math/rand/v2 PCG generator seeded
per instance from the runtime's entropy. The built-ins are safe for
concurrent use and keep nothing from a call.

# The Evictor and its pool

Ranking every key is too costly, so, like Redis (evict.c,
evictionPoolPopulate), the Evictor samples. It works in batches: it draws
16 keys (DefaultSampleSize) from the engine (Engine.Sample; only keys with
an expiry for a volatile policy) per victim it expects to need, estimated
from the bytes left to free and the sampled keys' mean size, merges them
with a pool of the best candidates from earlier batches (16 by default,
Redis's EVPOOL_SIZE), lets the policy rank the lot once, takes as victims
the best, one per 16 keys sampled, and keeps the next best as the pool.
That is the rate of Redis's one victim per sampling round, but in one
policy call: a Select of one victim or of hundreds usually costs a single
call, since a batch holds up to BatchSizeMax (4,096) candidates, 255
victims' worth. The pool outlives a Select call, so a good candidate seen
once stays in the running until something better comes along. The first
batch of a Select also holds the keys that have already expired, from the
engine's TTL index, and takes them on top (every built-in ranks them
first).

Redis samples 5 keys per round (maxmemory-samples); 16 cost little more here,
and with them the sampled LRU's hit ratio on a Zipf workload is within a
fraction of a point of an exact LRU cache of the same size (BenchmarkHitRatio;
TestHitRatio checks 3 points), whether victims are chosen one per Select or
hundreds at a time, as the shard leader's reclaimer asks (the "reclaim-98"
runs).

The pool can hold stale entries: a key read since it was pooled still shows
its old last access, and a key deleted or rewritten since still shows its old
version. A fresh sample of the key replaces its entry (the newest version
wins). A stale victim costs a no-op OpEvict at its old version, or, for a key
read since, an eviction slightly worse than the policy would have chosen;
Redis accepts the same.

# Bounds

Each Select stops once the victims free the bytes asked for, at the key
count asked for, when the policy declines every candidate of a batch
(noeviction, or a volatile policy and no key with an expiry), after
4*maxKeys+64 sampling rounds of 16 keys, or after 64 rounds in a row that
sampled only keys already chosen. A batch holds at most BatchSizeMax
candidates; at most 256 already expired keys are taken per Select from the
TTL index, and the leader's active-expiry loop removes the rest.

# Concurrency and locking

An Evictor is not safe for concurrent use: each shard leader owns one.
Choose reads the engine only through the View it is given, which holds the
engine's read lock (raftgroup.Group.Read) while Choose samples and copies
the sampled keys, and releases it before the policy ranks them: a plugin
may take up to its call timeout, and writes and applies must not wait for
it. The package itself knows no lock. Select is Choose for a caller that
has the engine to itself (tests, the simulation), and then runs the policy
while the caller holds it.

The caller proposes the victims' OpEvict entries at their sampled versions,
and calls Choose again only after those are applied.
*/
package eviction
