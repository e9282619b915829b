package node

import (
	"testing"
	"time"

	"github.com/wisp-db/wisp/shards/budget"
)

// TestShouldPublish: a node gossips a budget change or a big move at once,
// a small move after publishQuiet, and nothing when nothing moved.
func TestShouldPublish(t *testing.T) {
	last := budget.Node{Used: 1 << 20, Budget: 64 << 20}
	for _, c := range []struct {
		now   budget.Node
		since time.Duration
		want  bool
	}{
		{last, time.Hour, false},
		{budget.Node{Used: 1 << 20, Budget: 32 << 20}, 0, true},
		{budget.Node{Used: 1<<20 + 2<<20, Budget: 64 << 20}, 0, true},
		{budget.Node{Used: 1<<20 + 1000, Budget: 64 << 20}, time.Second, false},
		{budget.Node{Used: 1<<20 + 1000, Budget: 64 << 20}, publishQuiet, true},
	} {
		if got := shouldPublish(last, c.now, c.since); got != c.want {
			t.Errorf("shouldPublish(%+v, %+v, %v) = %v; want %v", last, c.now, c.since, got, c.want)
		}
	}
}
