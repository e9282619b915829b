//go:build !race

package ring

// raceEnabled reports whether the race detector is on: it slows the
// measurement loops about tenfold, so they count fewer keys.
const raceEnabled = false
