package membership

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing sets how fast gossip spreads and failures are detected. Every node
// of a cluster should use the same Timing. A zero field takes LANTiming's
// value, so the zero Timing is LANTiming.
//
// How memberlist uses them: every ProbeInterval a node probes one other node
// (round-robin over a shuffled list) and waits ProbeTimeout for a direct
// ack, then asks up to three others to probe it, then tries TCP; with no ack
// within ProbeInterval the node is suspect. A suspect is declared dead when
// its suspicion timer runs out: SuspicionMult × max(1, log10(n)) ×
// ProbeInterval for a cluster of n nodes when other nodes confirm the
// suspicion, up to SuspicionMaxTimeoutMult times that when none do. News
// spreads by gossip to three nodes every GossipInterval, and by a full state
// exchange with one node every PushPullInterval. DeadWithin and SuspectWithin
// turn these into bounds.
type Timing struct {
	// ProbeInterval is the time between two failure probes of a node, and
	// between two rounds of this package's own pings (see Status).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe or ping waits for a direct ack. It
	// must be below ProbeInterval.
	ProbeTimeout time.Duration
	// SuspicionMult scales the time a suspect has to refute before it is
	// declared dead.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout when no other
	// node confirms the suspicion, as a multiple of the confirmed one.
	SuspicionMaxTimeoutMult int
	// GossipInterval is the time between two gossip rounds.
	GossipInterval time.Duration
	// PushPullInterval is the time between two full state exchanges with a
	// random node (anti-entropy: repairs whatever gossip missed).
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP connection: a join attempt, a push/pull, the
	// TCP fallback probe.
	TCPTimeout time.Duration
	// GossipToTheDeadTime is how long a dead node is still gossiped to (so a
	// node that was only partitioned away learns it was declared dead and
	// refutes) before memberlist forgets it. A node that restarts on a new
	// gossip address can take its id back only after this, or at once after
	// a graceful Leave.
	GossipToTheDeadTime time.Duration
}

// LANTiming is memberlist.DefaultLANConfig's timing: probes every second,
// a dead node declared 5 to 25 s after it stops answering in clusters up to
// 10 nodes. For production.
func LANTiming() Timing {
	c := memberlist.DefaultLANConfig()
	return Timing{
		ProbeInterval:           c.ProbeInterval,           // 1 s
		ProbeTimeout:            c.ProbeTimeout,            // 500 ms
		SuspicionMult:           c.SuspicionMult,           // 4
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult, // 6
		GossipInterval:          c.GossipInterval,          // 200 ms
		PushPullInterval:        c.PushPullInterval,        // 30 s
		TCPTimeout:              c.TCPTimeout,              // 10 s
		GossipToTheDeadTime:     c.GossipToTheDeadTime,     // 30 s
	}
}

// FastTiming is for `wispd dev` and tests on one machine: probes every
// 250 ms, a killed node suspect within about half a second and dead within
// about 1.5 to 3.5 s in clusters up to 10 nodes (DeadWithin gives the
// bound). The probe timeout (125 ms) stays well above a loaded 2-core
// machine's scheduling delays, so busy nodes are not declared dead.
func FastTiming() Timing {
	return Timing{
		ProbeInterval:           250 * time.Millisecond,
		ProbeTimeout:            125 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          50 * time.Millisecond,
		PushPullInterval:        5 * time.Second,
		TCPTimeout:              time.Second,
		GossipToTheDeadTime:     5 * time.Second,
	}
}

// withDefaults fills zero fields from LANTiming and checks the result.
func (t Timing) withDefaults() (Timing, error) {
	lan := LANTiming()
	fill := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	fill(&t.ProbeInterval, lan.ProbeInterval)
	fill(&t.ProbeTimeout, lan.ProbeTimeout)
	fill(&t.GossipInterval, lan.GossipInterval)
	fill(&t.PushPullInterval, lan.PushPullInterval)
	fill(&t.TCPTimeout, lan.TCPTimeout)
	fill(&t.GossipToTheDeadTime, lan.GossipToTheDeadTime)
	if t.SuspicionMult == 0 {
		t.SuspicionMult = lan.SuspicionMult
	}
	if t.SuspicionMaxTimeoutMult == 0 {
		t.SuspicionMaxTimeoutMult = lan.SuspicionMaxTimeoutMult
	}
	switch {
	case t.ProbeInterval < 0 || t.ProbeTimeout < 0 || t.GossipInterval < 0 || t.PushPullInterval < 0 || t.TCPTimeout < 0 || t.GossipToTheDeadTime < 0:
		return t, fmt.Errorf("negative duration in %+v", t)
	case t.SuspicionMult < 1 || t.SuspicionMaxTimeoutMult < 1:
		return t, fmt.Errorf("SuspicionMult %d and SuspicionMaxTimeoutMult %d must be at least 1", t.SuspicionMult, t.SuspicionMaxTimeoutMult)
	case t.ProbeTimeout >= t.ProbeInterval:
		return t, fmt.Errorf("ProbeTimeout %v must be below ProbeInterval %v", t.ProbeTimeout, t.ProbeInterval)
	}
	return t, nil
}

// SuspectWithin bounds the time from a node's crash to this package showing
// it Suspect on a healthy, unloaded peer: the next ping round starts within
// ProbeInterval, and its ping fails after ProbeTimeout; one more interval is
// allowed for the rounds' own delays.
func (t Timing) SuspectWithin() time.Duration {
	t, _ = t.withDefaults()
	return 2*t.ProbeInterval + t.ProbeTimeout
}

// DeadWithin bounds the time from a node's crash until every live peer of a
// cluster of n nodes sees it Dead, on healthy, unloaded nodes:
//
//   - until a first probe of it fails: each peer probes every node once per
//     round of at most n probes, in an order shuffled every round, so a node
//     waits at most 2n-1 intervals, plus the probe's own interval;
//   - the longest suspicion timeout (no confirmations):
//     SuspicionMaxTimeoutMult × SuspicionMult × max(1, log10(n)) × ProbeInterval;
//   - spreading the news: 10 gossip intervals (memberlist retransmits each
//     message 4 × ceil(log10(n+1)) times, to 3 nodes per interval).
//
// memberlist's Lifeguard extension stretches probe intervals up to eight
// times on a node that misses its own deadlines (a starved CPU), so a loaded
// machine can take longer.
func (t Timing) DeadWithin(n int) time.Duration {
	t, _ = t.withDefaults()
	n = max(n, 1)
	probe := time.Duration(2*n) * t.ProbeInterval
	scale := math.Max(1, math.Log10(float64(n)))
	suspicion := time.Duration(float64(t.SuspicionMaxTimeoutMult*t.SuspicionMult) * scale * float64(t.ProbeInterval))
	return probe + suspicion + 10*t.GossipInterval
}

// apply sets t's values on a memberlist configuration.
func (t Timing) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.GossipInterval = t.GossipInterval
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
}
