package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/shards/membership"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/placement"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// The placement driver runs on the meta group's leader. Each tick it takes
// the cluster's state (the map, liveness from gossip, every shard's
// configuration from its leader), asks placement.Plan for the next steps
// and carries them out, one Raft membership change each, recording every
// committed change in the map. Nothing is replayed blindly: a step that
// fails is dropped and the next tick plans again from fresh state.

// driverInterval is the driver's tick.
const driverInterval = time.Second

// DefaultDeadNodeTimeout is how long a node must be gone (dead or left in
// gossip, or never seen) before its replicas are rebuilt elsewhere.
const DefaultDeadNodeTimeout = 30 * time.Second

// catchUpEntries is how far behind the leader's applied index a learner
// may be and still count as caught up (promotable).
const catchUpEntries = 256

// driver is the placement driver's state, owned by its goroutine.
type driver struct {
	n         *Node
	mr        *metaReplica         // the meta replica this tick runs on (the leader)
	migrated  bool                 // migrateSettings ran in this term as leader
	downSince map[string]time.Time // nodes seen gone, since when (this leader's clock)
	refused   map[string]time.Time // ids in conflict (admit refused them, or health met an impostor): when last logged, for warnings once a minute

	mu   sync.Mutex
	last driverReport // guarded by mu
}

// driverReport is what the last tick saw and did, for status.
type driverReport struct {
	At     time.Time
	Health map[string]placement.Health
	Result placement.Result
	Errors []string
}

func (n *Node) runDriver(ctx context.Context, d *driver) {
	t := time.NewTicker(driverInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mr := n.metaGroup()
		if mr == nil || !mr.group.IsLeader() {
			clear(d.downSince)
			d.migrated = false
			continue
		}
		d.mr = mr
		d.tick(ctx)
	}
}

func (d *driver) tick(ctx context.Context) {
	n := d.n
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, _, err := d.mr.store.Map(ctx, raftgroup.Linearizable)
	if err != nil {
		n.log.Debug("placement driver: read the cluster map", "err", err)
		return
	}
	if m.Epoch == 0 {
		if n.boot == nil {
			return // a meta replica that joined: the group's first voters bootstrap it
		}
		if _, err := d.mr.store.Apply(ctx, n.boot); err != nil {
			n.log.Warn("placement driver: bootstrap the cluster map", "err", err)
		}
		return
	}
	if !d.migrated {
		if err := d.migrateSettings(ctx, m); err != nil {
			n.log.Warn("placement driver", "err", err)
			return
		}
		d.migrated = true
	}
	if n.gossip == nil {
		return // no failure detection: nothing to heal from
	}
	if d.admit(ctx, m) {
		return // plan from the new map next tick
	}
	rep := driverReport{At: time.Now(), Health: d.health(m)}
	st, leaders, metaApplied := d.collect(ctx, m, rep.Health)
	d.record(ctx, m, leaders)

	// The meta group first: every other step is recorded in it.
	group, metaLeader, err := d.metaShard(ctx, m, metaApplied)
	if err != nil {
		n.log.Warn("placement driver: the meta group's configuration", "err", err)
		return
	}
	metaRes, err := placement.PlanMeta(st.Nodes, group)
	if err != nil {
		n.log.Error("placement driver: plan the meta group", "err", err)
		return
	}
	res, err := placement.Plan(st, placement.Options{MaxConcurrentMoves: n.cfg.MaxConcurrentMoves})
	if err != nil {
		n.log.Error("placement driver: plan", "err", err)
		return
	}
	res.Steps = append(metaRes.Steps, res.Steps...)
	res.Stuck = append(metaRes.Stuck, res.Stuck...)
	res.InMotion += metaRes.InMotion
	rep.Result = res
	for _, step := range res.Steps {
		l := metaLeader
		if step.Shard != placement.MetaShard {
			l = leaders[step.Shard]
		}
		if err := d.execute(ctx, m, step, l); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%v: %v", step, err))
			n.log.Warn("placement step failed; planning again next tick", "step", step.String(), "err", err)
			continue
		}
		n.log.Info("placement step done", "step", step.String())
	}
	d.mu.Lock()
	d.last = rep
	d.mu.Unlock()
}

// placementReportAge is how old the driver's last report may be and still
// be shown: a few ticks, so a deposed leader's stale one is not.
const placementReportAge = 5 * driverInterval

// placementStatus is the driver's last tick for status, nil unless this
// node leads the meta group and ticked recently.
func (n *Node) placementStatus() *wispv1.PlacementStatus {
	d, mr := n.driver, n.metaGroup()
	if d == nil || mr == nil || !mr.group.IsLeader() {
		return nil
	}
	d.mu.Lock()
	rep := d.last
	d.mu.Unlock()
	if rep.At.IsZero() || time.Since(rep.At) > placementReportAge {
		return nil
	}
	ps := &wispv1.PlacementStatus{
		LeaderId: n.cfg.ID, AtUnixMs: rep.At.UnixMilli(), Done: rep.Result.Done(),
		Queued: uint32(len(rep.Result.Queued)), Errors: rep.Errors,
	}
	for _, st := range rep.Result.Steps {
		ps.Steps = append(ps.Steps, st.String())
	}
	for _, st := range rep.Result.Stuck {
		ps.Stuck = append(ps.Stuck, st.String())
	}
	return ps
}

// admit adds to the map every node gossip shows alive with a cluster map
// (so of this cluster, its shard count known) that the map lacks: a node
// that joined. It reports whether it changed the map. A node whose id or
// Raft address a member already has is refused (meta.ErrConflict), and
// logged once a minute.
func (d *driver) admit(ctx context.Context, m *meta.Map) bool {
	n := d.n
	added := false
	for _, mem := range n.gossip.Members() {
		if mem.Status != membership.StatusAlive || !mem.Meta.Bootstrapped {
			continue
		}
		if _, ok := m.Node(mem.ID); ok {
			continue
		}
		nd := meta.Node{ID: mem.ID, URL: mem.Meta.APIURL, RaftAddr: mem.Meta.RaftAddr, Zone: mem.Meta.Zone}
		if _, err := d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpAddNode, Node: &nd}); err != nil {
			if time.Since(d.refused[mem.ID]) >= time.Minute {
				d.refused[mem.ID] = time.Now()
				n.log.Warn("placement driver: cannot add a node that joined", "joining", mem.ID, "url", nd.URL, "raft", nd.RaftAddr, "err", err)
			}
			continue
		}
		delete(d.refused, mem.ID)
		n.log.Info("node joined the cluster", "joined", mem.ID, "url", nd.URL, "raft", nd.RaftAddr, "zone", nd.Zone)
		added = true
	}
	return added
}

// health is each member's liveness: alive or suspect as gossip says, and
// dead once gone (dead, left, or never seen) for the dead-node timeout.
func (d *driver) health(m *meta.Map) map[string]placement.Health {
	n := d.n
	now := time.Now()
	out := make(map[string]placement.Health, len(m.Nodes))
	for _, nd := range m.Nodes {
		if nd.ID == n.cfg.ID {
			out[nd.ID] = placement.Alive
			continue
		}
		mem, ok := n.gossip.Member(nd.ID)
		if ok && mem.Meta.RaftAddr != nd.RaftAddr {
			// Another process gossips under this member's id: it is not
			// the member, which counts as gone.
			if time.Since(d.refused[nd.ID]) >= time.Minute {
				d.refused[nd.ID] = time.Now()
				n.log.Warn("placement driver: a node gossips under a member's id with another Raft address; the member counts as gone", "member", nd.ID, "raft", nd.RaftAddr, "impostor_raft", mem.Meta.RaftAddr, "impostor_gossip", mem.Addr)
			}
			ok = false
		}
		switch {
		case ok && mem.Status == membership.StatusAlive:
			out[nd.ID] = placement.Alive
			delete(d.downSince, nd.ID)
			continue
		case ok && mem.Status == membership.StatusSuspect:
			out[nd.ID] = placement.Suspect
			continue
		}
		since, seen := d.downSince[nd.ID]
		if !seen {
			since = now
			if ok && mem.Since.Before(now) {
				since = mem.Since
			}
			d.downSince[nd.ID] = since
		}
		if now.Sub(since) >= n.cfg.DeadNodeTimeout {
			out[nd.ID] = placement.Dead
		} else {
			out[nd.ID] = placement.Suspect
		}
	}
	return out
}

// shardLeader is what the driver knows of a shard's leader: its node and
// the configuration it reported.
type shardLeader struct {
	node    string
	addr    string
	members []*controlv1.Member
	index   uint64
}

// collect asks every live node for its replicas and builds the planner's
// state: each shard's configuration as its leader reports it (the map's
// record when no leader answered) and whether each learner has caught up.
// It also returns each node's applied index of the meta group.
func (d *driver) collect(ctx context.Context, m *meta.Map, health map[string]placement.Health) (placement.State, []*shardLeader, map[string]uint64) {
	n := d.n
	type answer struct {
		node string
		reps []*controlv1.ReplicaState
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers []answer
	)
	for _, nd := range m.Nodes {
		if health[nd.ID] == placement.Dead {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			res, err := n.ctl.client(nd.RaftAddr).Replicas(cctx, connect.NewRequest(&controlv1.ReplicasRequest{}))
			if err != nil {
				return
			}
			mu.Lock()
			answers = append(answers, answer{nd.ID, res.Msg.Replicas})
			mu.Unlock()
		}()
	}
	wg.Wait()

	applied := make([]map[string]uint64, m.Shards) // per shard: node → applied index
	metaApplied := map[string]uint64{}
	leaders := make([]*shardLeader, m.Shards)
	for _, a := range answers {
		for _, r := range a.reps {
			if r.Group == metaGroupID {
				metaApplied[a.node] = r.AppliedIndex
			}
			if r.Group >= uint64(m.Shards) {
				continue
			}
			s := int(r.Group)
			if applied[s] == nil {
				applied[s] = map[string]uint64{}
			}
			applied[s][a.node] = r.AppliedIndex
			if r.LeaderId == a.node && (leaders[s] == nil || r.ConfigIndex > leaders[s].index) {
				leaders[s] = &shardLeader{node: a.node, members: r.Members, index: r.ConfigIndex}
			}
		}
	}
	st := placement.State{Shards: make([]placement.Shard, m.Shards)}
	for _, nd := range m.Nodes {
		st.Nodes = append(st.Nodes, placement.Node{ID: nd.ID, Zone: nd.Zone, Health: health[nd.ID], Draining: nd.State == meta.Draining})
	}
	for s := range st.Shards {
		sh := &st.Shards[s]
		l := leaders[s]
		if l == nil {
			for _, r := range m.Replicas[s] {
				sh.Members = append(sh.Members, placement.Member{Node: r.Node, Learner: !r.Voter})
			}
			continue
		}
		if p, ok := m.Node(l.node); ok {
			l.addr = p.RaftAddr
		}
		sh.Leader = l.node
		lead := applied[s][l.node]
		for _, mem := range l.members {
			pm := placement.Member{Node: mem.NodeId, Learner: !mem.Voter}
			if pm.Learner {
				got, ok := applied[s][mem.NodeId]
				pm.CaughtUp = ok && got > 0 && got+catchUpEntries >= lead
			}
			sh.Members = append(sh.Members, pm)
		}
	}
	return st, leaders, metaApplied
}

// record writes into the map every shard configuration its leader reports
// that the map does not have yet (a change committed whose record was lost
// with a meta leader, or made by this tick's predecessor).
func (d *driver) record(ctx context.Context, m *meta.Map, leaders []*shardLeader) {
	for s, l := range leaders {
		if l == nil {
			continue
		}
		rs := replicasOf(l.members)
		if slices.Equal(rs, m.Replicas[s]) {
			continue
		}
		if _, err := d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpSetReplicas, Shard: s, Replicas: [][]meta.Replica{rs}}); err != nil {
			d.n.log.Warn("placement driver: record a shard's configuration", "shard", s, "err", err)
		}
	}
}

// configReplicas is a group configuration as the map records it.
func configReplicas(c raftgroup.Configuration) []meta.Replica {
	rs := make([]meta.Replica, 0, len(c.Members))
	for _, mb := range c.Members {
		rs = append(rs, meta.Replica{Node: mb.ID, Voter: mb.Voter})
	}
	return rs
}

func replicasOf(members []*controlv1.Member) []meta.Replica {
	rs := make([]meta.Replica, 0, len(members))
	for _, mem := range members {
		rs = append(rs, meta.Replica{Node: mem.NodeId, Voter: mem.Voter})
	}
	return rs
}

// errNoLeader: the step's shard has no leader the driver could reach.
var errNoLeader = errors.New("no leader known")

// execute carries out one step on the shard's leader (for the meta group,
// this node) and records the resulting configuration in the map. An added
// learner is first recorded as a move, so that its node opens an empty
// replica for it.
func (d *driver) execute(ctx context.Context, m *meta.Map, step placement.Step, l *shardLeader) error {
	n := d.n
	if l == nil || l.addr == "" {
		return errNoLeader
	}
	target, ok := m.Node(step.Node)
	if !ok {
		return fmt.Errorf("node %s is not in the cluster map", step.Node)
	}
	group := uint64(step.Shard)
	if step.Shard == placement.MetaShard {
		group = metaGroupID
	}
	req := &controlv1.ReconfigureRequest{Group: group, NodeId: step.Node, RaftAddr: target.RaftAddr, PrevIndex: l.index}
	switch step.Kind {
	case placement.AddLearner:
		req.Kind = controlv1.ChangeKind_CHANGE_KIND_ADD_LEARNER
		end, err := d.startMove(ctx, step)
		if err != nil {
			return err
		}
		defer end()
	case placement.Promote:
		req.Kind = controlv1.ChangeKind_CHANGE_KIND_PROMOTE
	case placement.RemoveReplica:
		req.Kind = controlv1.ChangeKind_CHANGE_KIND_REMOVE
	case placement.TransferLeader:
		req.Kind = controlv1.ChangeKind_CHANGE_KIND_TRANSFER_LEADER
	default:
		return fmt.Errorf("unknown step kind %v", step.Kind)
	}
	cctx, cancel := context.WithTimeout(ctx, controlCallTimeout)
	defer cancel()
	res, err := n.ctl.client(l.addr).Reconfigure(cctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	if step.Kind == placement.TransferLeader {
		return nil
	}
	_, err = d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpSetReplicas, Shard: step.Shard, Replicas: [][]meta.Replica{replicasOf(res.Msg.Members)}})
	if err != nil {
		return fmt.Errorf("record the new configuration: %w", err)
	}
	return nil
}

// startMove records an AddLearner step as a move in the map, so that the
// new replica's node opens an empty replica for it, and returns the func
// that clears the record once the step is over.
func (d *driver) startMove(ctx context.Context, step placement.Step) (end func(), err error) {
	mv := &meta.Move{Shard: step.Shard, Kind: step.Kind.String(), Node: step.Node, Reason: step.Reason, StartedUnixMs: time.Now().UnixMilli()}
	if _, err := d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpStartMove, Move: mv}); err != nil {
		return nil, fmt.Errorf("record the move: %w", err)
	}
	return func() {
		if _, err := d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpEndMove, Shard: step.Shard}); err != nil {
			d.n.log.Warn("placement driver: end a move", "shard", step.Shard, "err", err)
		}
	}, nil
}

// metaShard is the meta group's configuration for the planner, from this
// leader's replica, with each learner's catch-up judged from the nodes'
// applied indexes, and this node as its leader for execute. It records the
// configuration in the map first if the map's differs (a change whose
// record was lost, or a map made before the meta group's replicas were
// recorded).
func (d *driver) metaShard(ctx context.Context, m *meta.Map, applied map[string]uint64) (placement.Shard, *shardLeader, error) {
	g := d.mr.group
	c, err := g.Configuration()
	if err != nil {
		return placement.Shard{}, nil, err
	}
	rs := configReplicas(c)
	sh := placement.Shard{Leader: d.n.cfg.ID}
	lead := g.AppliedIndex()
	for _, mb := range c.Members {
		pm := placement.Member{Node: mb.ID, Learner: !mb.Voter}
		if pm.Learner {
			got, ok := applied[mb.ID]
			pm.CaughtUp = ok && got > 0 && got+catchUpEntries >= lead
		}
		sh.Members = append(sh.Members, pm)
	}
	if !slices.Equal(rs, m.Meta) {
		if _, err := d.mr.store.Apply(ctx, &meta.Command{Op: meta.OpSetReplicas, Shard: meta.MetaShard, Replicas: [][]meta.Replica{rs}}); err != nil {
			return placement.Shard{}, nil, fmt.Errorf("record: %w", err)
		}
	}
	return sh, &shardLeader{node: d.n.cfg.ID, addr: d.n.self.RaftAddr, index: c.Index}, nil
}
