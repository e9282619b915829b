package raftgroup

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wisp-db/wisp/engine"
)

// Proposal packing. Propose hands each command to the group's proposer
// goroutine, which packs the commands waiting at that moment into one Raft
// entry (engine.AppendPack) and proposes it. At most Config.MaxInflightPacks entries
// are in flight (proposed, not yet applied); while they are, new commands
// queue, so under load packs grow by themselves and a lone client still
// goes straight through in a pack of one. One entry per pack means one
// encoding, one log record and one future instead of one per command.
const (
	// defaultInflightPacks bounds the packs proposed but not yet applied:
	// enough to keep the log busy while a pack waits for its fsync and
	// quorum, few enough that commands pile up into packs meanwhile.
	defaultInflightPacks = 4
	// maxPackCommands and maxPackBytes bound one pack (and so one entry).
	maxPackCommands = 256
	maxPackBytes    = 1 << 20
	// proposalQueue bounds the commands waiting for the proposer.
	proposalQueue = 4096
	// enqueueTimeout bounds how long a pack waits for room in raft's apply
	// queue; raft then fails it with ErrEnqueueTimeout (not proposed).
	enqueueTimeout = 10 * time.Second
)

type proposal struct {
	cmd  *engine.Command
	done chan proposalResult // buffered: the proposer never blocks on it
}

type proposalResult struct {
	res engine.Result
	err error
}

func (p *proposal) finish(res engine.Result, err error) { p.done <- proposalResult{res, err} }

// Propose stamps the leader's time into cmd, replicates it to a quorum and
// applies it. It returns the engine's result once the entry is applied on
// this (leader) replica, or ErrNotLeader (nothing proposed: safe to retry),
// ErrOutcomeUnknown or the context's error (the command may still apply
// later). cmd must not be modified until Propose returns.
func (g *Group) Propose(ctx context.Context, cmd *engine.Command) (engine.Result, error) {
	if g.raft.State() != raft.Leader {
		return engine.Result{}, ErrNotLeader
	}
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case g.proposals <- p:
	case <-ctx.Done():
		return engine.Result{}, ctx.Err() // not proposed
	case <-g.stop:
		return engine.Result{}, ErrNotLeader
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return engine.Result{}, ctx.Err()
	case <-g.stop:
		return engine.Result{}, ErrOutcomeUnknown
	}
}

// runProposer is the proposer goroutine: owned by the Group, it ends when
// g.stop closes, failing what it holds with ErrNotLeader (never proposed).
func (g *Group) runProposer() {
	defer g.wg.Done()
	n := g.cfg.MaxInflightPacks
	if n <= 0 {
		n = defaultInflightPacks
	}
	inflight := make(chan struct{}, n)
	var (
		carry *proposal // a proposal that conflicted with the last pack
		pack  []*proposal
		keys  = map[string]struct{}{}
	)
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-g.proposals:
			case <-g.stop:
				return
			}
		}
		select {
		case inflight <- struct{}{}:
		case <-g.stop:
			first.finish(engine.Result{}, ErrNotLeader)
			return
		}
		pack = append(pack[:0], first)
		clear(keys)
		addKeys(keys, first.cmd)
		size := engine.EncodedSize(first.cmd)
	drain:
		for len(pack) < maxPackCommands && size < maxPackBytes {
			select {
			case p := <-g.proposals:
				if conflicts(keys, p.cmd) {
					carry = p // a key may be written once per entry
					break drain
				}
				addKeys(keys, p.cmd)
				pack = append(pack, p)
				size += engine.EncodedSize(p.cmd) + binary.MaxVarintLen64
			default:
				break drain
			}
		}
		g.proposePack(append([]*proposal(nil), pack...), inflight)
	}
}

func addKeys(keys map[string]struct{}, cmd *engine.Command) {
	for _, m := range cmd.Mutations {
		keys[string(m.Key)] = struct{}{}
	}
}

func conflicts(keys map[string]struct{}, cmd *engine.Command) bool {
	for _, m := range cmd.Mutations {
		if _, ok := keys[string(m.Key)]; ok {
			return true
		}
	}
	return false
}

// proposePack proposes pack as one entry and starts a goroutine that waits
// for it, answers every proposal and frees the in-flight slot.
func (g *Group) proposePack(pack []*proposal, inflight chan struct{}) {
	if g.raft.State() != raft.Leader {
		for _, p := range pack {
			p.finish(engine.Result{}, ErrNotLeader)
		}
		<-inflight
		return
	}
	now := g.NowUnixMs()
	var data []byte
	if len(pack) == 1 {
		pack[0].cmd.NowUnixMs = now
		data = engine.AppendCommand(nil, pack[0].cmd)
	} else {
		cmds := make([]*engine.Command, len(pack))
		for i, p := range pack {
			p.cmd.NowUnixMs = now
			cmds[i] = p.cmd
		}
		data = engine.AppendPack(nil, cmds)
	}
	g.metrics.packed(len(pack))
	f := g.raft.Apply(data, enqueueTimeout)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := waitFuture(f, g.stop)
		g.metrics.settled(len(pack), err)
		<-inflight
		if err != nil {
			err = g.proposeError(err)
			for _, p := range pack {
				p.finish(engine.Result{}, err)
			}
			return
		}
		switch r := f.Response().(type) {
		case engine.Result: // one command, or a pack the FSM could not decode
			for _, p := range pack {
				p.finish(r, nil)
			}
		case []engine.Result:
			for i, p := range pack {
				p.finish(r[i], nil)
			}
		default:
			err := fmt.Errorf("raftgroup %s: unexpected FSM response %T", g.cfg.NodeID, r)
			for _, p := range pack {
				p.finish(engine.Result{}, err)
			}
		}
	}()
}
