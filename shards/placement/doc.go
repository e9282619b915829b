/*
Package placement plans how shard replicas move: it turns where replicas
are (each shard's Raft configuration and the nodes' health) into the next
steps toward where the node ring wants them. Plan is the whole package: a
pure function, with no I/O, goroutines, clock or randomness, and output that
never depends on map iteration or on the order of its inputs; an import test
keeps it that way.

It owns the decisions, not their execution. The executor (on the meta
group's leader, not in this package) takes a fresh State every tick, calls
Plan and carries out the steps on the shards' leaders with hashicorp/raft's
AddNonvoter, AddVoter, RemoveServer and LeadershipTransferToServer. Steps
are "next actions" in a reconcile loop, like Kubernetes controllers, TiKV
PD's operators and Consul's autopilot: a step that fails or is still under
way is simply planned again from the next State, so the executor keeps no
plan of its own. It keeps one thing: the steps in flight, at most one per
shard, since a State taken before a step commits gets the same step again.
Result.Done says when nothing is left to do (what `wisp cluster ready`
waits for).

# Target

The target is ring.Place(len(State.Shards), eligible, min(R, len(eligible)))
where R is Options.Replicas (default 3) and the eligible nodes are those
Alive or Suspect and not Draining. Suspect nodes stay eligible so that a
node missing a few probes does not change the target (whole snapshots would
move for a GC pause); Plan only refuses to put a new replica there or to
promote one there. With fewer than R eligible nodes every shard's target is
all of them; with none, every shard's target is empty. Either way rule 3
removes the dead voters and keeps live draining ones.

# Rules

For each shard, with V its voters, q = ⌊|V|/2⌋+1 its quorum, live = voters
on Alive or Suspect nodes, alive = voters on Alive nodes (a member on a node
missing from State.Nodes is Dead), T its target, the first rule that applies
gives the shard's one step:

 0. live < q: Stuck (NoQuorum). Raft cannot commit a change; an operator
    must recover the shard. No leader among the live voters: Stuck (it waits
    for an election).
 1. A learner not in T: RemoveReplica. Learners do not vote.
 2. A learner in T that is caught up and Alive: Promote, if alive+1 ≥
    majority of |V|+1.
 3. A voter not in T: RemoveReplica, if the shard keeps enough voters without
    it: a dead voter once every node of T is a voter (its replacement was
    promoted) or |V|-1 ≥ R; a live voter (rebalanced away or draining) only
    if |V|-1 ≥ R, so a drain never takes a shard below R voters. Never if
    alive voters would fall below a majority of |V|-1. Dead before live,
    the leader last, then by node ID; if the one to remove is the leader,
    the step is a TransferLeader to an Alive, non-draining voter of T (the
    target's preferred leader if it qualifies) instead, and the removal comes
    on a later tick. Why transfer first: hashicorp/raft lets a leader
    commit its own removal, but it then steps down and the shard waits an
    election timeout with no leader; a transfer hands over at once, and the
    removal is then an ordinary one.
 4. No learner, and a node of T holds no replica: AddLearner on the first
    such Alive node in ring order (a Suspect one waits). This starts a move
    when the shard is not in motion, and Plan starts one only while fewer
    than Options.MaxConcurrentMoves shards are in motion.
 5. The leader's node is draining: TransferLeader to an Alive, non-draining
    voter: the target's preferred leader, else the first in the target's
    ring order, else any. Leadership leaves before the replica can.

A shard is in motion when it has a learner or more than R voters, and a
live majority: a move is under way (copying data, or a promoted replica
whose old one is still there). A replica lost to a dead node does not by
itself put a shard in motion, or the lost replicas of one node would take
every slot and no move could start; nor does a learner of a shard without a
quorum, which copies nothing and would hold its slot for good. Steps of shards in motion are never held back by the limit:
finishing a move is what frees its slot.

So a replacement goes add learner → (catch up) → promote → transfer
leadership if needed → remove the old voter, make before break: with
voters {A,B,C} and C dead, D is added and promoted ({A,B,C,D}, 3 of 4 live,
quorum 3), then C is removed ({A,B,D}). Removing dead C first ({A,B}, then
add and promote D) would tolerate no more failures (both need every
remaining live voter), and the one rule "remove once the replacement is a
voter" serves dead, draining and rebalanced voters alike. The cost: {A,B,C,D}
needs D for a quorum, so D must be caught up when promoted, which the
executor's CaughtUp decides. A dead voter whose shard already has every
target node as a voter (a short target: fewer eligible nodes than R) goes
at once: nothing will replace it.

Steps are ordered: shards with a voter on a dead node or fewer live voters
than |T| first (fewest failures from losing their quorum first), then
balance and drain moves, then rule 5's transfers; by shard index within.

# The meta group

PlanMeta plans the meta group, the Raft group holding the cluster map, with
the same rules over a target of its own: it is not placed by the ring, since
moving it for balance buys nothing. Its size is 3 voters, or 5 once five
nodes are not draining (MetaVoters), so a large cluster's map survives two
failures. Its target keeps its live, non-draining members (voters, then
learners) and fills up from the other eligible nodes by ID, one per zone
before a second in any. So the meta group moves only when one of its nodes
dies, drains, or the cluster grows past five or shrinks below it, and heals
like a shard: add a learner, catch up, promote, remove. The move limit does
not apply to it: it is small and everything else is recorded in it.

# Invariants

Each is asserted by the tests named.

  - Majority: no Promote or RemoveReplica leaves fewer alive (not
    suspect) voters than a majority of the voters after it; no step is
    planned for a shard without a live majority (TestPlanSteps,
    TestConverge, TestChurn).
  - One step per shard per Plan, and Plan starts no move past
    MaxConcurrentMoves (TestConverge, TestChurn, TestMoveLimit).
  - Leader: RemoveReplica never names the current leader; a TransferLeader
    comes first (TestPlanSteps, TestConverge).
  - Convergence: from any State whose shards have a quorum, with the nodes
    fixed and every step carried out, Plan returns no steps within a bounded
    number of ticks, and then every shard's voters are its target with no
    learners, except draining voters kept while fewer than R nodes are
    eligible (TestConverge; the bound is in its comment).
  - Minimal moves: over a convergence with fixed nodes, every AddLearner is a
    (shard, node) of the target that held no replica, each once; no replica
    is added and later removed (TestConverge).
  - Stability: a shard whose voters are its target and that has no learner
    gets no step (checked on every step of TestConverge and TestChurn); a
    node that comes back before it was replaced keeps its replicas, and a
    learner added to replace it is removed (TestPlanSteps, TestChurn).
  - Determinism: shuffling the nodes and members does not change the Result
    (TestConverge, every tick).
  - The meta group converges like a shard, keeping every step's majority,
    to its size (or every eligible node) with no learner and no dead voter
    (TestPlanMeta, TestPlanMetaConverges).
*/
package placement
