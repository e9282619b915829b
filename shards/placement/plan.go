package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wisp-db/wisp/shards/ring"
)

// Plan compares every shard's configuration in s with the target that
// ring.Place computes over the eligible nodes (alive or suspect, not
// draining) and returns the next steps toward it: at most one per shard,
// most urgent first, and new moves only while fewer than
// o.MaxConcurrentMoves shards are in motion. It also returns the shards
// that need a change but cannot get one now (Result.Stuck), the target and
// the count of shards in motion.
//
// Plan is a pure function: the same State and Options give the same
// Result, whatever the order of the nodes and of each shard's members. The
// caller runs it every tick with a fresh State and carries out the steps;
// see the package documentation for the rules and their invariants.
//
// Plan returns an error, and no steps, for a malformed State or Options: a
// node with an empty or duplicate ID or an invalid Health, a member with an
// empty node ID or listed twice in one shard, Replicas outside 0..16,
// negative MaxConcurrentMoves, more shards or nodes than ring.Place takes,
// or ring options it refuses.
func Plan(s State, o Options) (Result, error) {
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.MaxConcurrentMoves == 0 {
		o.MaxConcurrentMoves = DefaultMaxConcurrentMoves
	}
	switch {
	case o.Replicas < 0 || o.Replicas > maxReplicas:
		return Result{}, fmt.Errorf("placement: %d replicas per shard: need 1 to %d", o.Replicas, maxReplicas)
	case o.MaxConcurrentMoves < 0:
		return Result{}, fmt.Errorf("placement: max concurrent moves %d: need at least 1", o.MaxConcurrentMoves)
	}
	nodes, err := indexNodes(s.Nodes)
	if err != nil {
		return Result{}, err
	}
	if len(s.Shards) == 0 {
		return Result{}, nil
	}
	var eligible []ring.Node
	for _, n := range s.Nodes {
		if n.Health.live() && !n.Draining {
			eligible = append(eligible, ring.Node{ID: n.ID, Zone: n.Zone})
		}
	}
	var res Result
	if len(eligible) > 0 {
		res.Target, err = ring.Place(len(s.Shards), eligible, min(o.Replicas, len(eligible)), o.Ring...)
		if err != nil {
			return Result{}, fmt.Errorf("placement: target: %w", err)
		}
	}

	p := planner{nodes: nodes, replicas: o.Replicas}
	decisions := make([]decision, 0, len(s.Shards))
	for i, sh := range s.Shards {
		var target ring.ShardReplicas
		if res.Target.Shards != nil {
			target = res.Target.Shards[i]
		}
		d, err := p.decide(i, sh, target)
		if err != nil {
			return Result{}, err
		}
		if d.inMotion {
			res.InMotion++
		}
		switch {
		case d.stuck != nil:
			res.Stuck = append(res.Stuck, *d.stuck)
		case d.step.Kind != 0:
			decisions = append(decisions, d)
		}
	}

	slices.SortFunc(decisions, func(a, b decision) int {
		return cmp.Or(cmp.Compare(a.class, b.class), cmp.Compare(a.tolerance, b.tolerance), cmp.Compare(a.step.Shard, b.step.Shard))
	})
	slots := o.MaxConcurrentMoves - res.InMotion
	for _, d := range decisions {
		if d.step.Kind == AddLearner && !d.inMotion {
			if slots <= 0 {
				res.Queued = append(res.Queued, d.step.Shard) // a later tick starts it
				continue
			}
			slots--
		}
		res.Steps = append(res.Steps, d.step)
	}
	return res, nil
}

// indexNodes checks the nodes and returns their positions by ID.
func indexNodes(nodes []Node) (map[string]Node, error) {
	m := make(map[string]Node, len(nodes))
	for _, n := range nodes {
		switch {
		case n.ID == "":
			return nil, errors.New("placement: node with empty id")
		case n.Health < Alive || n.Health > Dead:
			return nil, fmt.Errorf("placement: node %q: invalid %v", n.ID, n.Health)
		}
		if _, dup := m[n.ID]; dup {
			return nil, fmt.Errorf("placement: node %q: %w", n.ID, ring.ErrDuplicateNode)
		}
		m[n.ID] = n
	}
	return m, nil
}

// Classes of steps, in the order Result.Steps lists them.
const (
	classRepair    = iota // a voter on a dead node, or fewer live voters than the target
	classRebalance        // balance and draining moves
	classDrainLead        // leadership off a draining node, nothing else to do
)

// decision is what Plan decided for one shard: a step, an entry for
// Result.Stuck, or neither (the shard is where it should be, or waits for a
// learner to catch up).
type decision struct {
	step      Step
	stuck     *Stuck
	inMotion  bool
	class     int
	tolerance int // live voters beyond a majority: failures until the shard loses its quorum
}

// planner holds what every shard's decision shares.
type planner struct {
	nodes    map[string]Node
	replicas int
	view     []member // scratch for the shard being decided
}

// member is a Member with what Plan knows of its node.
type member struct {
	Member
	health   Health // Dead for a node missing from State.Nodes
	draining bool
	inTarget bool
}

func (m member) String() string {
	switch {
	case m.health != Alive:
		return m.Node + " (" + m.health.String() + ")"
	case m.draining:
		return m.Node + " (draining)"
	}
	return m.Node
}

// majority is the quorum of a configuration with n voters.
func majority(n int) int { return n/2 + 1 }

// decide picks shard i's next step. Its rules, first match wins, are in
// the package documentation ("Rules").
func (p *planner) decide(i int, sh Shard, target ring.ShardReplicas) (decision, error) {
	view := p.view[:0]
	for _, m := range sh.Members {
		if m.Node == "" {
			return decision{}, fmt.Errorf("placement: shard %d: member with empty node id", i)
		}
		v := member{Member: m, health: Dead, inTarget: slices.Contains(target.Replicas, m.Node)}
		if n, ok := p.nodes[m.Node]; ok {
			v.health, v.draining = n.Health, n.Draining
		}
		view = append(view, v)
	}
	// Sorted by node ID, so that the input's order never decides output.
	slices.SortFunc(view, func(a, b member) int { return strings.Compare(a.Node, b.Node) })
	p.view = view
	for j := 1; j < len(view); j++ {
		if view[j].Node == view[j-1].Node {
			return decision{}, fmt.Errorf("placement: shard %d: node %q is a member twice", i, view[j].Node)
		}
	}

	var voters, live, alive, learners int
	leader := -1
	for j, m := range view {
		if m.Learner {
			learners++
			continue
		}
		voters++
		if m.health.live() {
			live++
			if m.Node == sh.Leader {
				leader = j
			}
		}
		if m.health == Alive {
			alive++
		}
	}
	d := decision{
		// A shard without a quorum moves nothing and never will by itself:
		// it holds no slot, or a few of them would stop every move.
		inMotion:  (learners > 0 || voters > p.replicas) && live >= majority(voters),
		tolerance: live - majority(voters),
		class:     classRebalance,
	}
	if live < voters || live < len(target.Replicas) {
		d.class = classRepair
	}
	stuck := func(noQuorum bool, format string, args ...any) (decision, error) {
		d.stuck = &Stuck{Shard: i, NoQuorum: noQuorum, Reason: fmt.Sprintf(format, args...)}
		return d, nil
	}
	step := func(k Kind, node, format string, args ...any) (decision, error) {
		d.step = Step{Kind: k, Shard: i, Node: node, Reason: fmt.Sprintf(format, args...)}
		return d, nil
	}

	if voters == 0 {
		return stuck(true, "no voters")
	}
	if live < majority(voters) {
		return stuck(true, "no quorum: %d of %d voters live (%s)", live, voters, p.down(view))
	}
	if leader < 0 {
		if sh.Leader == "" {
			return stuck(false, "no leader")
		}
		return stuck(false, "leader %s is not a live voter", sh.Leader)
	}

	// 1. A learner outside the target goes: it counts for nothing.
	for _, m := range view {
		if m.Learner && !m.inTarget {
			return step(RemoveReplica, m.Node, "learner %v not in the target", m)
		}
	}

	// 2. A caught-up learner in the target becomes a voter, if alive
	// voters stay a majority of the larger configuration.
	var wait string
	for _, m := range view {
		if !m.Learner {
			continue
		}
		switch {
		case m.health != Alive:
			wait = fmt.Sprintf("learner %v cannot be promoted", m)
		case !m.CaughtUp:
			// Catching up: the normal course of a move, not stuck.
		case alive+1 < majority(voters+1):
			wait = fmt.Sprintf("promoting %s leaves %d of %d voters alive (suspect: %s)",
				m.Node, alive+1, voters+1, p.suspects(view))
		default:
			return step(Promote, m.Node, "learner caught up")
		}
	}

	// 3. A voter outside the target goes once the shard keeps enough
	// voters without it: a dead one when every target node is a voter (its
	// replacement was promoted) or when more than Replicas voters remain, a
	// live one only when more than Replicas voters remain. Dead first, the
	// leader last: it needs a transfer first.
	allIn := true
	for _, id := range target.Replicas {
		if !slices.ContainsFunc(view, func(m member) bool { return m.Node == id && !m.Learner }) {
			allIn = false
		}
	}
	out := -1
	for j, m := range view {
		if m.Learner || m.inTarget {
			continue
		}
		if m.health.live() && voters-1 < p.replicas {
			continue
		}
		if !m.health.live() && !allIn && voters-1 < p.replicas {
			continue
		}
		aliveAfter := alive
		if m.health == Alive {
			aliveAfter--
		}
		if aliveAfter < majority(voters-1) {
			wait = fmt.Sprintf("removing %s leaves %d of %d voters alive (suspect: %s)",
				m.Node, aliveAfter, voters-1, p.suspects(view))
			continue
		}
		if out < 0 || removeBefore(m, view[out], j == leader, out == leader) {
			out = j
		}
	}
	if out >= 0 {
		m := view[out]
		why := "not in the target"
		switch {
		case !m.health.live():
			why = "dead"
		case m.draining:
			why = "draining"
		}
		if out != leader {
			return step(RemoveReplica, m.Node, "%s, %d voters remain", why, voters-1)
		}
		if to := p.successor(view, leader, target, true); to >= 0 {
			return step(TransferLeader, view[to].Node, "leader %s is to be removed (%s)", m.Node, why)
		}
		// No voter in the target can lead yet: add one first (rule 4).
		if learners == 0 {
			wait = fmt.Sprintf("leader %v is to be removed; no voter in the target can take over", m)
		}
	}

	// 4. A target node that holds no replica gets a learner, one at a time.
	if learners == 0 {
		for _, id := range target.Replicas {
			if slices.ContainsFunc(view, func(m member) bool { return m.Node == id }) {
				continue
			}
			if n := p.nodes[id]; n.Health != Alive {
				wait = fmt.Sprintf("target node %s is %v", id, n.Health)
				continue
			}
			return step(AddLearner, id, "in the target; %s", p.leaving(view, voters, len(target.Replicas)))
		}
	}

	// 5. Leadership leaves a draining node even before its replica can.
	if view[leader].draining {
		if to := p.successor(view, leader, target, false); to >= 0 {
			d.class = classDrainLead
			return step(TransferLeader, view[to].Node, "leader %s is draining", view[leader].Node)
		}
	}

	if wait != "" {
		return stuck(false, "%s", wait)
	}
	return d, nil
}

// removeBefore orders the voters that may be removed: dead before live,
// non-leader before leader, then by node ID (view order).
func removeBefore(a, b member, aLeads, bLeads bool) bool {
	if a.health.live() != b.health.live() {
		return !a.health.live()
	}
	return !aLeads && bLeads
}

// successor picks the voter to take over from the leader: an Alive voter
// that is not draining, the target's preferred leader first, then others
// in the target in ring order, then (unless inTarget) any other. It returns
// -1 if there is none.
func (p *planner) successor(view []member, leader int, target ring.ShardReplicas, inTarget bool) int {
	ok := func(j int) bool {
		m := view[j]
		return j != leader && !m.Learner && m.health == Alive && !m.draining
	}
	find := func(id string) int {
		for j := range view {
			if view[j].Node == id && ok(j) {
				return j
			}
		}
		return -1
	}
	if j := find(target.Leader); j >= 0 {
		return j
	}
	for _, id := range target.Replicas {
		if j := find(id); j >= 0 {
			return j
		}
	}
	if inTarget {
		return -1
	}
	for j := range view {
		if ok(j) {
			return j
		}
	}
	return -1
}

// leaving describes, for an AddLearner's reason, the voters the new
// replica replaces, or the shortfall it fills.
func (p *planner) leaving(view []member, voters, want int) string {
	var b strings.Builder
	for _, m := range view {
		if !m.Learner && !m.inTarget {
			if b.Len() == 0 {
				b.WriteString("replaces ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(m.String())
		}
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "%d of %d voters", voters, want)
	}
	return b.String()
}

// down lists the voters not on live nodes.
func (p *planner) down(view []member) string {
	var ids []string
	for _, m := range view {
		if !m.Learner && !m.health.live() {
			ids = append(ids, m.String())
		}
	}
	return strings.Join(ids, ", ")
}

// suspects lists the voters on suspect nodes.
func (p *planner) suspects(view []member) string {
	var ids []string
	for _, m := range view {
		if !m.Learner && m.health == Suspect {
			ids = append(ids, m.Node)
		}
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
