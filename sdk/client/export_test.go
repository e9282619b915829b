package client

// MapEpoch returns the epoch of c's shard map, and false while it has none.
// Tests poll it to know when the background fetch has landed.
func MapEpoch(c *Client) (epoch uint64, ok bool) {
	m := c.shards.Load()
	if m == nil {
		return 0, false
	}
	return m.epoch, true
}
