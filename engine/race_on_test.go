//go:build race

package engine

// raceEnabled reports whether the race detector is on: it changes how the
// runtime allocates (no tiny allocator), which memory tests account for.
const raceEnabled = true
