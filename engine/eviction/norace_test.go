//go:build !race

package eviction

// raceEnabled reports whether the race detector is on; slow tests shrink.
const raceEnabled = false
