package ring

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// DefaultNodeVnodes is the number of tokens each node owns on the node ring
// unless WithVnodes says otherwise. The bounded-load caps, not the token
// count, decide the balance of replicas over nodes; movement is about the
// same from 64 tokens up and worse at 16 (TestPlaceVnodes), and 128 cost
// nothing that matters (N × 128 hashes per Place).
const DefaultNodeVnodes = 128

// DefaultLoadFactor is the c of consistent hashing with bounded loads unless
// WithLoadFactor says otherwise: no node holds more than ceil(c × mean)
// replicas, nor more than ceil(c × shards/nodes) leaders.
const DefaultLoadFactor = 1.1

// Limits of Place, so that its O(S × N) work and memory and its integer
// arithmetic stay bounded. Real clusters are far below them.
const (
	maxShards     = 1 << 16
	maxReplicas   = 16
	maxNodes      = 1 << 16
	maxNodeTokens = 1 << 24 // nodes × vnodes
	maxPairs      = 1 << 22 // shards × nodes: about 40 bytes each
)

// ErrTooFewNodes is returned by Place when there are fewer nodes than
// replicas per shard. A caller that wants to run anyway (a one-node dev
// cluster) places min(replicas, len(nodes)) replicas.
var ErrTooFewNodes = errors.New("fewer nodes than replicas")

// ErrDuplicateNode is returned by Place when two nodes share an ID.
var ErrDuplicateNode = errors.New("duplicate node id")

// Node is a member of the cluster as the node ring sees it.
type Node struct {
	// ID names the node; it must be non-empty and unique. It is hashed into
	// the node's tokens, so renaming a node moves its replicas.
	ID string
	// Zone is the node's failure domain (rack, availability zone). Place
	// spreads each shard's replicas over distinct zones when it can. The
	// empty zone means "a zone of its own": two nodes without a zone are
	// never considered to share one.
	Zone string
}

// Placement is where each shard's replicas should live. It is a pure
// function of Place's arguments: every node that computes it from the same
// member list gets the same Placement.
type Placement struct {
	// Shards holds, per shard ID (its index), the shard's replicas and
	// preferred leader.
	Shards []ShardReplicas
	// Nodes holds the per-node counts, sorted by node ID.
	Nodes []NodeLoad
	// ReplicaCap is the most replicas any node may hold:
	// ceil(c × replicas × shards / nodes). Invariant: every
	// NodeLoad.Replicas <= ReplicaCap.
	ReplicaCap int
	// LeaderCap is the most preferred leaderships any node may hold:
	// ceil(c × shards / nodes). Invariant: every NodeLoad.Leaders <= LeaderCap.
	LeaderCap int
}

// ShardReplicas is the placement of one shard.
type ShardReplicas struct {
	// Replicas are the IDs of the distinct nodes holding the shard, in ring
	// order (clockwise from the shard's point on the node ring).
	Replicas []string
	// Leader is the replica that should lead the shard (one of Replicas);
	// leaders are balanced over nodes like replicas are.
	Leader string
}

// NodeLoad is what one node holds in a Placement.
type NodeLoad struct {
	ID       string // as given to Place
	Zone     string // as given to Place
	Replicas int    // replicas placed on the node
	Leaders  int    // shards whose preferred leader is the node
}

// Option configures Place.
type Option func(*options)

type options struct {
	loadFactorMilli int // c, in thousandths
	vnodes          int
}

// WithLoadFactor sets c, the bound on load relative to the mean (default
// DefaultLoadFactor, 1.1). It is used to three decimals and must be at least
// 1 (Place refuses 0, NaN and anything below 1). A c of len(nodes) or more
// lifts the bound: the placement is then a plain consistent-hash ring.
func WithLoadFactor(c float64) Option {
	return func(o *options) {
		switch {
		case math.IsNaN(c):
			c = 0 // refused by Place
		case c > 1e6:
			c = 1e6 // past any bound that matters (Place clamps c to N anyway)
		}
		o.loadFactorMilli = int(math.Round(c * 1000))
	}
}

// WithVnodes sets the number of tokens each node owns on the node ring
// (default DefaultNodeVnodes, 128; Place refuses 0 and negative counts).
func WithVnodes(v int) Option {
	return func(o *options) { o.vnodes = v }
}

// NodeToken is the position on the node ring of token vnode of node id:
// xxhash64(id ‖ big-endian uint32(vnode)).
func NodeToken(id string, vnode int) uint64 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(vnode))
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(id)
	_, _ = d.Write(b[:])
	return d.Sum64()
}

// ShardPoint is the position of shard on the node ring, where the walk for
// its replicas starts: xxhash64(big-endian uint32(shard)).
func ShardPoint(shard int) uint64 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(shard))
	return xxhash.Sum64(b[:])
}

// ceilDiv returns ceil(a / b) for a >= 0, b > 0.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// candidate is a (shard, node) pair with the clockwise distance from the
// shard's point to the node's first token.
type candidate struct {
	dist  uint64
	shard int
	node  int // index into the sorted node list
}

// hop records how BFS reached a node during an augmenting-path search: shard
// gives up node from (or, from == -1, the shard being filled adds the node).
type hop struct {
	shard int
	from  int
}

// placer holds the working state of one Place call.
type placer struct {
	shards, replicas, capacity int
	nodes                      []Node // sorted by ID
	zone                       []int  // zone index per node; unique for Zone == ""
	zones                      int    // number of distinct zone indices
	// rank[s][n] is node n's position in shard s's ring order.
	rank [][]int
	// pref[s] lists the nodes in shard s's ring order.
	pref [][]int
	// reps[s] holds shard s's replicas (node indices), in the order placed.
	// Invariant: len(reps[s]) <= replicas, entries distinct.
	reps [][]int
	// load[n] counts the replicas on node n. Invariant: load[n] <= capacity.
	load []int
}

// Place assigns each of shards shards replicas replicas on distinct nodes,
// by consistent hashing with bounded loads on the node ring, and picks a
// preferred leader per shard. See the package documentation for the
// algorithm and its measured balance and movement.
//
// The result depends only on shards, replicas, the set of nodes (their
// order does not matter) and the options. Place returns ErrTooFewNodes if
// len(nodes) < replicas, ErrDuplicateNode if two nodes share an ID, and an
// error for shards < 1, replicas < 1, an empty node ID, c < 1, vnodes < 1,
// or inputs past its limits (2^16 shards or nodes, 2^22 shards × nodes, 16
// replicas, 2^24 node tokens).
func Place(shards int, nodes []Node, replicas int, opts ...Option) (Placement, error) {
	o := options{loadFactorMilli: int(math.Round(DefaultLoadFactor * 1000)), vnodes: DefaultNodeVnodes}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case shards < 1 || shards > maxShards:
		return Placement{}, fmt.Errorf("ring: place %d shards: need 1 to %d", shards, maxShards)
	case replicas < 1 || replicas > maxReplicas:
		return Placement{}, fmt.Errorf("ring: place %d replicas per shard: need 1 to %d", replicas, maxReplicas)
	case len(nodes) > maxNodes || shards*len(nodes) > maxPairs:
		return Placement{}, fmt.Errorf("ring: place %d shards on %d nodes: need at most %d nodes and %d shards × nodes",
			shards, len(nodes), maxNodes, maxPairs)
	case o.loadFactorMilli < 1000:
		return Placement{}, fmt.Errorf("ring: load factor %.3f: need at least 1", float64(o.loadFactorMilli)/1000)
	case o.vnodes < 1 || o.vnodes > maxNodeTokens/max(1, len(nodes)):
		return Placement{}, fmt.Errorf("ring: %d vnodes per node: need 1 to %d in all", o.vnodes, maxNodeTokens)
	case len(nodes) < replicas:
		return Placement{}, fmt.Errorf("ring: place %d replicas per shard on %d nodes: %w", replicas, len(nodes), ErrTooFewNodes)
	}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	for i, n := range sorted {
		if n.ID == "" {
			return Placement{}, errors.New("ring: place: node with empty id")
		}
		if i > 0 && sorted[i-1].ID == n.ID {
			return Placement{}, fmt.Errorf("ring: place: node %q: %w", n.ID, ErrDuplicateNode)
		}
	}
	numNodes := len(sorted)
	// A c of N or more already lifts the bound (cap >= R × S); clamping it
	// keeps the integer arithmetic below 2^50.
	o.loadFactorMilli = min(o.loadFactorMilli, 1000*numNodes)
	// cap = ceil(c × R × S / N), in integers: c is in thousandths.
	p := &placer{
		shards:   shards,
		replicas: replicas,
		capacity: ceilDiv(o.loadFactorMilli*replicas*shards, 1000*numNodes),
		nodes:    sorted,
	}
	p.assignZones()
	cands := p.walk(o.vnodes)

	// Pass 1: distinct zones. A shard can span at most min(R, zones) zones.
	spread := min(replicas, p.zones)
	p.greedy(cands, spread, true)
	for s := range shards {
		for len(p.reps[s]) < spread {
			if !p.augment(s, true) {
				break // zones stay a preference: pass 2 fills the shard
			}
		}
	}
	// Pass 2: distinct nodes, zones relaxed.
	p.greedy(cands, replicas, false)
	for s := range shards {
		for len(p.reps[s]) < replicas {
			if !p.augment(s, false) {
				// Unreachable: some node m has load < cap (R×S <= N×cap),
				// m is in s (else s would take it), some node n is not in s
				// (N >= R) and is full, so n holds a shard t without m, and
				// t can hand n to s and take m: a path of length one.
				panic(fmt.Sprintf("ring: broken invariant: shard %d has %d of %d replicas", s, len(p.reps[s]), replicas))
			}
		}
	}
	return p.result(o.loadFactorMilli), nil
}

// assignZones numbers the zones in sorted-node order; each node without a
// zone gets a zone of its own.
func (p *placer) assignZones() {
	p.zone = make([]int, len(p.nodes))
	index := make(map[string]int)
	for i, n := range p.nodes {
		if n.Zone == "" {
			p.zone[i] = p.zones
			p.zones++
			continue
		}
		z, ok := index[n.Zone]
		if !ok {
			z = p.zones
			index[n.Zone] = z
			p.zones++
		}
		p.zone[i] = z
	}
}

// walk builds the node ring and, for every shard, walks it clockwise from
// the shard's point, listing each node at its first token. It returns every
// (shard, node) pair sorted by distance, then shard, then node.
func (p *placer) walk(vnodes int) []candidate {
	type token struct {
		hash uint64
		node int
	}
	numNodes := len(p.nodes)
	ring := make([]token, 0, numNodes*vnodes)
	for i, n := range p.nodes {
		for v := range vnodes {
			ring = append(ring, token{NodeToken(n.ID, v), i})
		}
	}
	slices.SortFunc(ring, func(a, b token) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.node, b.node))
	})
	p.rank = make([][]int, p.shards)
	p.pref = make([][]int, p.shards)
	p.reps = make([][]int, p.shards)
	p.load = make([]int, numNodes)
	cands := make([]candidate, 0, p.shards*numNodes)
	for s := range p.shards {
		point := ShardPoint(s)
		start, _ := slices.BinarySearchFunc(ring, point, func(t token, h uint64) int { return cmp.Compare(t.hash, h) })
		rank := make([]int, numNodes)
		for i := range rank {
			rank[i] = -1
		}
		pref := make([]int, 0, numNodes)
		for k := 0; k < len(ring) && len(pref) < numNodes; k++ {
			t := ring[(start+k)%len(ring)]
			if rank[t.node] >= 0 {
				continue
			}
			rank[t.node] = len(pref)
			pref = append(pref, t.node)
			// Unsigned subtraction measures clockwise, across the wrap too.
			cands = append(cands, candidate{t.hash - point, s, t.node})
		}
		p.rank[s], p.pref[s] = rank, pref
		p.reps[s] = make([]int, 0, p.replicas)
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.dist, b.dist), cmp.Compare(a.shard, b.shard), cmp.Compare(a.node, b.node))
	})
	return cands
}

// greedy takes the candidates nearest first: a shard with fewer than want
// replicas takes the node if the node is under its cap and valid for it.
func (p *placer) greedy(cands []candidate, want int, strict bool) {
	for _, c := range cands {
		if len(p.reps[c.shard]) < want && p.load[c.node] < p.capacity && p.valid(c.shard, -1, c.node, strict) {
			p.reps[c.shard] = append(p.reps[c.shard], c.node)
			p.load[c.node]++
		}
	}
}

// valid reports whether shard s may hold node m in place of its replica x
// (x == -1: in addition to its replicas): m is not already a replica and,
// if strict, m's zone is not used by the replicas that stay.
func (p *placer) valid(s, x, m int, strict bool) bool {
	for _, y := range p.reps[s] {
		if y == m {
			return false
		}
		if strict && y != x && p.zone[y] == p.zone[m] {
			return false
		}
	}
	return true
}

// augment gives shard s one more replica when every valid node is full, by
// a breadth-first search for an augmenting path: s takes full node n1, a
// shard t1 on n1 hands it over and takes n2 instead, ..., until a shard takes
// a node under its cap. Every node's load stays the same except the last
// one's, which grows by one. A shard appears at most once on a path, so each
// step stays valid. augment reports whether it found a path.
func (p *placer) augment(s int, strict bool) bool {
	numNodes := len(p.nodes)
	parent := make([]hop, numNodes)
	seen := make([]bool, numNodes)
	queue := make([]int, 0, numNodes)
	// onPath reports whether shard t already gives up a node on the path
	// that reached n.
	onPath := func(n, t int) bool {
		for {
			h := parent[n]
			if h.shard == t {
				return true
			}
			if h.from < 0 {
				return false
			}
			n = h.from
		}
	}
	apply := func(m int) {
		p.load[m]++
		for n := m; ; {
			h := parent[n]
			if h.from < 0 {
				p.reps[h.shard] = append(p.reps[h.shard], n)
				return
			}
			i := slices.Index(p.reps[h.shard], h.from)
			p.reps[h.shard][i] = n
			n = h.from
		}
	}
	for _, m := range p.pref[s] {
		if !p.valid(s, -1, m, strict) {
			continue
		}
		seen[m], parent[m] = true, hop{s, -1}
		if p.load[m] < p.capacity {
			apply(m)
			return true
		}
		queue = append(queue, m)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for t := range p.shards {
			if t == s || !slices.Contains(p.reps[t], n) || onPath(n, t) {
				continue
			}
			for _, m := range p.pref[t] {
				if seen[m] || !p.valid(t, n, m, strict) {
					continue
				}
				seen[m], parent[m] = true, hop{t, n}
				if p.load[m] < p.capacity {
					apply(m)
					return true
				}
				queue = append(queue, m)
			}
		}
	}
	return false
}

// result orders each shard's replicas by ring order, picks the leaders and
// counts per node.
func (p *placer) result(loadFactorMilli int) Placement {
	numNodes := len(p.nodes)
	leaderCap := ceilDiv(loadFactorMilli*p.shards, 1000*numNodes)
	for s, reps := range p.reps {
		slices.SortFunc(reps, func(a, b int) int { return p.rank[s][a] - p.rank[s][b] })
	}
	leader := p.leaders(leaderCap)
	out := Placement{
		Shards:     make([]ShardReplicas, p.shards),
		Nodes:      make([]NodeLoad, numNodes),
		ReplicaCap: p.capacity,
		LeaderCap:  leaderCap,
	}
	for i, n := range p.nodes {
		out.Nodes[i] = NodeLoad{ID: n.ID, Zone: n.Zone, Replicas: p.load[i]}
	}
	for s, reps := range p.reps {
		ids := make([]string, len(reps))
		for i, n := range reps {
			ids[i] = p.nodes[n].ID
		}
		out.Shards[s] = ShardReplicas{Replicas: ids, Leader: p.nodes[leader[s]].ID}
		out.Nodes[leader[s]].Leaders++
	}
	return out
}

// leaders picks a preferred leader per shard, in shard order: the replica
// leading the fewest shards so far, ties going to the earlier replica in
// ring order. If every replica already leads leaderCap shards, an
// augmenting path moves leaderships along (shard s takes n1, a shard led by
// n1 moves to another of its replicas n2, ...) to a replica under the cap.
// Such a path always exists: every node holds at most cap <= R × leaderCap
// replicas, so any k shards span at least k/leaderCap nodes (Hall's
// condition), and the search is the standard one for bipartite matching.
func (p *placer) leaders(leaderCap int) []int {
	numNodes := len(p.nodes)
	leader := make([]int, p.shards)
	count := make([]int, numNodes)
	for s, reps := range p.reps {
		best := reps[0]
		for _, n := range reps[1:] {
			if count[n] < count[best] {
				best = n
			}
		}
		if count[best] < leaderCap {
			leader[s] = best
			count[best]++
			continue
		}
		if !p.augmentLeader(s, leader, count, leaderCap) {
			panic(fmt.Sprintf("ring: broken invariant: no leader for shard %d under cap %d", s, leaderCap))
		}
	}
	return leader
}

// augmentLeader finds a leader for shard s (shards before s already have
// one) by moving leaderships along an augmenting path; see leaders.
func (p *placer) augmentLeader(s int, leader, count []int, leaderCap int) bool {
	numNodes := len(p.nodes)
	parent := make([]hop, numNodes)
	seen := make([]bool, numNodes)
	queue := make([]int, 0, numNodes)
	apply := func(m int) {
		count[m]++
		for n := m; ; {
			h := parent[n]
			leader[h.shard] = n
			if h.from < 0 {
				return
			}
			n = h.from
		}
	}
	visit := func(t, from, m int) bool {
		if seen[m] {
			return false
		}
		seen[m], parent[m] = true, hop{t, from}
		if count[m] < leaderCap {
			apply(m)
			return true
		}
		queue = append(queue, m)
		return false
	}
	for _, m := range p.reps[s] {
		if visit(s, -1, m) {
			return true
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for t := range s {
			if leader[t] != n {
				continue
			}
			for _, m := range p.reps[t] {
				if m != n && visit(t, n, m) {
					return true
				}
			}
		}
	}
	return false
}
