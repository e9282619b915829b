package placement

import (
	"cmp"
	"slices"
	"strings"

	"github.com/wisp-db/wisp/shards/ring"
)

// MetaShard is the Shard of PlanMeta's steps and stuck entry: the meta
// group is not one of State.Shards.
const MetaShard = -1

// MetaVoters is the size of the meta group in a cluster of members nodes
// that are not draining: 3, or 5 from five such nodes on, so that a large
// cluster's map survives two failures as its shards cannot.
func MetaVoters(members int) int {
	if members >= 5 {
		return 5
	}
	return 3
}

// PlanMeta plans the meta group (the group holding the cluster map), which
// is placed by its own target rather than by the ring: it must not move for
// balance, only to stay on live nodes. Its size is MetaVoters of the nodes
// not draining; its target keeps the group's live, non-draining members,
// voters first, and fills up from the other eligible nodes (alive or
// suspect, not draining) by ID, spreading over zones first. From there the
// rules are Plan's, and the result is Plan's for one shard, numbered
// MetaShard, with no move limit: the meta group is small and must heal
// first.
func PlanMeta(nodes []Node, group Shard) (Result, error) {
	idx, err := indexNodes(nodes)
	if err != nil {
		return Result{}, err
	}
	members := 0
	for _, n := range nodes {
		if !n.Draining {
			members++
		}
	}
	size := MetaVoters(members)
	target := metaTarget(idx, group, size)
	p := planner{nodes: idx, replicas: size}
	d, err := p.decide(MetaShard, group, target)
	if err != nil {
		return Result{}, err
	}
	res := Result{Target: ring.Placement{Shards: []ring.ShardReplicas{target}}}
	if d.inMotion {
		res.InMotion = 1
	}
	switch {
	case d.stuck != nil:
		res.Stuck = []Stuck{*d.stuck}
	case d.step.Kind != 0:
		res.Steps = []Step{d.step}
	}
	return res, nil
}

// metaTarget picks the meta group's target: up to size eligible nodes,
// preferring current voters, then learners, then others, each by ID, and
// taking one node per zone before a second from any zone. The leader stays
// the preferred leader while it is in the target.
func metaTarget(nodes map[string]Node, group Shard, size int) ring.ShardReplicas {
	const (
		voter = iota
		learner
		other
	)
	type cand struct {
		id, zone string
		rank     int
	}
	rank := map[string]int{}
	for _, m := range group.Members {
		rank[m.Node] = voter
		if m.Learner {
			rank[m.Node] = learner
		}
	}
	var cands []cand
	for id, n := range nodes {
		if !n.Health.live() || n.Draining {
			continue
		}
		r, ok := rank[id]
		if !ok {
			r = other
		}
		cands = append(cands, cand{id: id, zone: n.Zone, rank: r})
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.id, b.id)) })

	var t ring.ShardReplicas
	zones := map[string]bool{}
	taken := make([]bool, len(cands))
	for pass := range 2 {
		for i, c := range cands {
			if len(t.Replicas) == size {
				break
			}
			if taken[i] || pass == 0 && zones[c.zone] {
				continue
			}
			taken[i], zones[c.zone] = true, true
			t.Replicas = append(t.Replicas, c.id)
		}
	}
	if slices.Contains(t.Replicas, group.Leader) {
		t.Leader = group.Leader
	} else if len(t.Replicas) > 0 {
		t.Leader = t.Replicas[0]
	}
	return t
}
