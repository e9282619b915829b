package balance

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// leaders is a node's leaderships as a Node: shard → the node leading it,
// and the placement's preferred leader of each.
type leaders struct {
	self      string
	lead      map[int]string
	preferred map[int]string
	down      map[string]bool // nodes a transfer to fails
	transfers int
}

func (l *leaders) Misplaced() []HandOff {
	var out []HandOff
	for s := range len(l.lead) {
		if l.lead[s] == l.self && l.preferred[s] != l.self {
			out = append(out, HandOff{Shard: s, To: l.preferred[s]})
		}
	}
	return out
}

func (l *leaders) Transfer(shard int, to string) error {
	l.transfers++
	if l.down[to] {
		return errors.New("no answer")
	}
	l.lead[shard] = to
	return nil
}

// TestTick: a tick hands over at most MaxHandOffsPerTick misplaced
// leaderships, the next ones on later ticks; a failed hand-off leaves its
// shard alone for Backoff, then tries again.
func TestTick(t *testing.T) {
	l := &leaders{self: "n1", lead: map[int]string{}, preferred: map[int]string{}, down: map[string]bool{"n3": true}}
	for s := range 8 {
		l.lead[s], l.preferred[s] = "n1", "n2"
	}
	l.preferred[7] = "n3" // down: its hand-off fails
	l.preferred[0] = "n1" // placed well
	now := time.Unix(1000, 0)
	b := newBalancer(l, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	b.tick()
	if moved := countLedBy(l, "n2"); moved != MaxHandOffsPerTick {
		t.Fatalf("after one tick %d shards moved; want %d", moved, MaxHandOffsPerTick)
	}
	b.tick() // shards 5 and 6 move; 7's transfer fails
	if moved := countLedBy(l, "n2"); moved != 6 || l.lead[7] != "n1" || l.lead[0] != "n1" {
		t.Fatalf("after two ticks: %v; want shards 1-6 on n2, 0 and 7 on n1", l.lead)
	}
	before := l.transfers
	b.tick()
	if l.transfers != before {
		t.Errorf("a tick within the backoff tried %d transfers; want none", l.transfers-before)
	}
	now = now.Add(Backoff)
	delete(l.down, "n3")
	b.tick()
	if l.lead[7] != "n3" {
		t.Errorf("after the backoff shard 7 is led by %s; want n3", l.lead[7])
	}
}

func countLedBy(l *leaders, id string) int {
	n := 0
	for _, v := range l.lead {
		if v == id {
			n++
		}
	}
	return n
}
