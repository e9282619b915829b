package placement

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// parseNodes reads nodes written as "n1 n2:dead n3:suspect n4:drain
// n5:dead,drain n6@a": an ID, an optional zone after @, and after ":" a
// comma-separated health (alive if none) and "drain".
func parseNodes(t testing.TB, s string) []Node {
	t.Helper()
	var nodes []Node
	for _, f := range strings.Fields(s) {
		id, flags, _ := strings.Cut(f, ":")
		n := Node{Health: Alive}
		n.ID, n.Zone, _ = strings.Cut(id, "@")
		for _, fl := range strings.Split(flags, ",") {
			switch fl {
			case "":
			case "dead":
				n.Health = Dead
			case "suspect":
				n.Health = Suspect
			case "drain":
				n.Draining = true
			default:
				t.Fatalf("node %q: unknown flag %q", f, fl)
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// parseShard reads a configuration written as "n1* n2 n3~ n4~+": a member
// per field, * marking the leader, ~ a learner and + a caught-up learner.
func parseShard(t testing.TB, s string) Shard {
	t.Helper()
	var sh Shard
	for _, f := range strings.Fields(s) {
		id := strings.TrimRight(f, "*~+")
		m := Member{Node: id, Learner: strings.Contains(f, "~"), CaughtUp: strings.Contains(f, "+")}
		if strings.Contains(f, "*") {
			sh.Leader = id
		}
		sh.Members = append(sh.Members, m)
	}
	return sh
}

// formatShard writes a configuration the way parseShard reads it, members
// sorted by node ID, without marking caught-up learners (the simulation
// changes that on its own).
func formatShard(sh Shard) string {
	ms := slices.Clone(sh.Members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Node, b.Node) })
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(m.Node)
		if m.Node == sh.Leader {
			b.WriteByte('*')
		}
		if m.Learner {
			b.WriteByte('~')
		}
	}
	return b.String()
}

func formatNodes(nodes []Node) string {
	var fs []string
	for _, n := range nodes {
		f := n.ID
		if n.Zone != "" {
			f += "@" + n.Zone
		}
		var flags []string
		if n.Health != Alive {
			flags = append(flags, n.Health.String())
		}
		if n.Draining {
			flags = append(flags, "drain")
		}
		if len(flags) > 0 {
			f += ":" + strings.Join(flags, ",")
		}
		fs = append(fs, f)
	}
	return strings.Join(fs, " ")
}

// counts is what a configuration holds, judged by the nodes' health.
type counts struct {
	voters, live, alive, learners int
}

func countOf(nodes map[string]Node, sh Shard) counts {
	var c counts
	for _, m := range sh.Members {
		if m.Learner {
			c.learners++
			continue
		}
		c.voters++
		h := nodes[m.Node].Health // 0 for a forgotten node: not live
		if h == Alive || h == Suspect {
			c.live++
		}
		if h == Alive {
			c.alive++
		}
	}
	return c
}

func nodeMap(nodes []Node) map[string]Node {
	m := make(map[string]Node, len(nodes))
	for _, n := range nodes {
		m[n.ID] = n
	}
	return m
}

func memberIndex(sh Shard, id string) int {
	return slices.IndexFunc(sh.Members, func(m Member) bool { return m.Node == id })
}

// checkSteps asserts the invariants every Result keeps against the State it
// was planned from: one step per shard, each step possible, no step that
// leaves fewer alive voters than a majority, the leader never removed, no
// step for a shard without a live majority, and no move started past the
// limit. It returns an error describing the first violation.
func checkSteps(s State, o Options, res Result) error {
	nodes := nodeMap(s.Nodes)
	max := o.MaxConcurrentMoves
	if max == 0 {
		max = DefaultMaxConcurrentMoves
	}
	r := o.Replicas
	if r == 0 {
		r = DefaultReplicas
	}
	inMotion := 0
	for _, sh := range s.Shards {
		c := countOf(nodes, sh)
		if (c.learners > 0 || c.voters > r) && c.live >= c.voters/2+1 {
			inMotion++
		}
	}
	if res.InMotion != inMotion {
		return fmt.Errorf("InMotion = %d; want %d", res.InMotion, inMotion)
	}
	seen := map[int]bool{}
	started := 0
	for _, st := range res.Steps {
		if st.Shard < 0 || st.Shard >= len(s.Shards) {
			return fmt.Errorf("%v: no such shard", st)
		}
		if seen[st.Shard] {
			return fmt.Errorf("%v: second step for the shard", st)
		}
		seen[st.Shard] = true
		if st.Reason == "" {
			return fmt.Errorf("%v: no reason", st)
		}
		sh := s.Shards[st.Shard]
		c := countOf(nodes, sh)
		if len(res.Target.Shards) > 0 && c.learners == 0 && sameSet(sh.Members, res.Target.Shards[st.Shard].Replicas) {
			return fmt.Errorf("%v: the shard is its target", st)
		}
		if c.live < c.voters/2+1 {
			return fmt.Errorf("%v: shard has %d of %d voters live", st, c.live, c.voters)
		}
		j := memberIndex(sh, st.Node)
		n, known := nodes[st.Node]
		switch st.Kind {
		case AddLearner:
			if j >= 0 || !known || n.Health != Alive || n.Draining {
				return fmt.Errorf("%v: node %+v, member %d", st, n, j)
			}
			if c.learners == 0 && c.voters <= r {
				started++
			}
		case Promote:
			if j < 0 || !sh.Members[j].Learner || !sh.Members[j].CaughtUp || n.Health != Alive {
				return fmt.Errorf("%v: not a caught-up learner on an alive node", st)
			}
			if c.alive+1 < (c.voters+1)/2+1 {
				return fmt.Errorf("%v: leaves %d of %d voters alive", st, c.alive+1, c.voters+1)
			}
		case RemoveReplica:
			if j < 0 {
				return fmt.Errorf("%v: not a member", st)
			}
			if st.Node == sh.Leader {
				return fmt.Errorf("%v: removes the leader", st)
			}
			if !sh.Members[j].Learner {
				after := c.alive
				if n.Health == Alive {
					after--
				}
				if after < (c.voters-1)/2+1 {
					return fmt.Errorf("%v: leaves %d of %d voters alive", st, after, c.voters-1)
				}
			}
		case TransferLeader:
			if j < 0 || sh.Members[j].Learner || n.Health != Alive || st.Node == sh.Leader {
				return fmt.Errorf("%v: not another voter on an alive node", st)
			}
		default:
			return fmt.Errorf("%v: invalid kind", st)
		}
	}
	if started > 0 && started > max-inMotion {
		return fmt.Errorf("%d moves started with %d of %d shards in motion", started, inMotion, max)
	}
	for _, i := range res.Queued {
		if seen[i] {
			return fmt.Errorf("shard %d queued and given a step", i)
		}
	}
	if len(res.Queued) > 0 && inMotion+started < max {
		return fmt.Errorf("shards %v queued with %d+%d of %d shards in motion", res.Queued, inMotion, started, max)
	}
	return nil
}

// apply carries out a step on the state as Raft would. A new learner is
// not caught up.
func apply(s *State, st Step) {
	sh := &s.Shards[st.Shard]
	switch st.Kind {
	case AddLearner:
		sh.Members = append(sh.Members, Member{Node: st.Node, Learner: true})
	case Promote:
		sh.Members[memberIndex(*sh, st.Node)] = Member{Node: st.Node}
	case RemoveReplica:
		sh.Members = slices.Delete(sh.Members, memberIndex(*sh, st.Node), memberIndex(*sh, st.Node)+1)
	case TransferLeader:
		sh.Leader = st.Node
	}
}

// cloneState copies s deeply enough for apply.
func cloneState(s State) State {
	c := State{Nodes: slices.Clone(s.Nodes), Shards: slices.Clone(s.Shards)}
	for i := range c.Shards {
		c.Shards[i].Members = slices.Clone(c.Shards[i].Members)
	}
	return c
}

// sameSet reports whether members are exactly the nodes ids.
func sameSet(members []Member, ids []string) bool {
	if len(members) != len(ids) {
		return false
	}
	for _, m := range members {
		if !slices.Contains(ids, m.Node) {
			return false
		}
	}
	return true
}
