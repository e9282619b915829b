package eviction

import (
	"container/list"
	"testing"
)

// The oracles are exact caches of a fixed number of equal-size items, keyed
// by int id: the yardsticks the sampling policies are measured against.

// lruCache is an exact LRU cache.
type lruCache struct {
	capacity int
	order    *list.List // of int ids, most recently used at the front
	items    map[int]*list.Element
}

func newLRU(capacity int) *lruCache {
	return &lruCache{capacity: capacity, order: list.New(), items: make(map[int]*list.Element, capacity)}
}

// access reads id, reporting a hit; a miss inserts it, evicting the least
// recently used item if the cache is full.
func (c *lruCache) access(id int) bool {
	if el, ok := c.items[id]; ok {
		c.order.MoveToFront(el)
		return true
	}
	if c.order.Len() == c.capacity {
		c.evict()
	}
	c.items[id] = c.order.PushFront(id)
	return false
}

func (c *lruCache) evict() int {
	el := c.order.Back()
	id := c.order.Remove(el).(int)
	delete(c.items, id)
	return id
}

// lfuCache is an exact LFU cache with the O(1) scheme of Shah, Mitra and
// Matani ("An O(1) algorithm for implementing the LFU cache eviction
// scheme", 2010): one recency list per access count. It evicts the item
// with the fewest accesses since it entered the cache, the least recently
// used of those on a tie. Counts are forgotten on eviction.
type lfuCache struct {
	capacity int
	items    map[int]*list.Element // of *lfuItem
	byCount  map[int]*list.List    // count -> items with it, most recent at the front
	minCount int                   // the smallest count held; valid when not empty
}

type lfuItem struct {
	id, count int
}

func newLFU(capacity int) *lfuCache {
	return &lfuCache{capacity: capacity, items: make(map[int]*list.Element, capacity), byCount: make(map[int]*list.List)}
}

func (c *lfuCache) bucket(count int) *list.List {
	l, ok := c.byCount[count]
	if !ok {
		l = list.New()
		c.byCount[count] = l
	}
	return l
}

// access reads id, reporting a hit; a miss inserts it with a count of 1,
// evicting first if the cache is full.
func (c *lfuCache) access(id int) bool {
	if el, ok := c.items[id]; ok {
		it := el.Value.(*lfuItem)
		old := c.byCount[it.count]
		old.Remove(el)
		if old.Len() == 0 {
			delete(c.byCount, it.count)
			if c.minCount == it.count {
				c.minCount++
			}
		}
		it.count++
		c.items[id] = c.bucket(it.count).PushFront(it)
		return true
	}
	if len(c.items) == c.capacity {
		c.evict()
	}
	c.items[id] = c.bucket(1).PushFront(&lfuItem{id: id, count: 1})
	c.minCount = 1
	return false
}

func (c *lfuCache) evict() int {
	l := c.byCount[c.minCount]
	it := l.Remove(l.Back()).(*lfuItem)
	if l.Len() == 0 {
		delete(c.byCount, c.minCount)
		// The next access inserts with count 1 and resets minCount.
	}
	delete(c.items, it.id)
	return it.id
}

// TestOracles checks the exact caches on short hand-made traces.
func TestOracles(t *testing.T) {
	type step struct {
		id  int
		hit bool
	}
	tests := []struct {
		name  string
		cache interface{ access(int) bool }
		steps []step
	}{
		{
			name:  "lru",
			cache: newLRU(2),
			// 1 2 | 1 hit | 3 evicts 2 | 2 miss evicts 1 | 3 hit | 1 miss
			steps: []step{{1, false}, {2, false}, {1, true}, {3, false}, {2, false}, {3, true}, {1, false}},
		},
		{
			name:  "lfu",
			cache: newLFU(2),
			// 1 1 1 (count 3) | 2 | 3 evicts 2 (count 1 < 3) | 2 evicts 3 |
			// 1 hit | 2 hit (2 and 1 differ in count) | 3 evicts 2 (count 2 < 4)
			steps: []step{{1, false}, {1, true}, {1, true}, {2, false}, {3, false}, {2, false}, {1, true}, {2, true}, {3, false}, {1, true}, {2, false}},
		},
		{
			name:  "lfu ties by recency",
			cache: newLFU(2),
			// 1 2 (both count 1) | 3 evicts 1, the least recent | 2 hit | 1 evicts 3
			steps: []step{{1, false}, {2, false}, {3, false}, {2, true}, {1, false}, {2, true}, {3, false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, s := range tt.steps {
				if got := tt.cache.access(s.id); got != s.hit {
					t.Fatalf("step %d: access(%d) = %v; want %v", i, s.id, got, s.hit)
				}
			}
		})
	}
}
