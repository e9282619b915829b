package raftgroup

import "sync/atomic"

// groupMetrics are counters the node exports.
type groupMetrics struct {
	packs    atomic.Uint64 // entries proposed by the proposer
	commands atomic.Uint64 // commands they carried
}

func (m *groupMetrics) packed(n int) {
	m.packs.Add(1)
	m.commands.Add(uint64(n))
}

// PackStats returns how many entries the proposer has proposed and how many
// commands they carried: commands/packs is the packing factor.
func (g *Group) PackStats() (packs, commands uint64) {
	return g.metrics.packs.Load(), g.metrics.commands.Load()
}
