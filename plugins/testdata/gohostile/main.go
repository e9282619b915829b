// Command gohostile is a test plugin that passes validation and then
// misbehaves on request: a Go guest, so that the host's tests see how the Go
// runtime fails (a panic exits through proc_exit, running out of memory is a
// fatal error, a blocked goroutine asks WASI to sleep) and not only what a
// hand-written module does. The decision's NowUnixMs chooses the behaviour;
// any other time (the host's self-test among them) gets a valid answer: the
// first VictimsMax candidates.
//
// Build: go generate ./plugins (see plugins/generate.go).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/wisp-db/wisp/sdk/plugin"
)

// Behaviours, by NowUnixMs.
const (
	modePanic      = 1 // panics
	modeAllocBomb  = 2 // allocates 1 MiB after 1 MiB, keeping them all
	modeRecursion  = 3 // recurses without end
	modeLoop       = 4 // loops forever
	modeTooMany    = 5 // names VictimsMax+1 victims
	modeDuplicate  = 6 // names candidate 0 twice
	modeUnknown    = 7 // names an index past the candidates
	modeSleep      = 8 // sleeps 1 s, then answers: the host's clock is fake
	modeStderr     = 9 // writes to stderr, then answers
	modeExitZero   = 10
	modeHugeAnswer = 11 // names 8,192 victims: 32 KiB of output
)

func init() { plugin.HandleEviction(hostile) }

var (
	kept  [][]byte // what the allocation bomb holds on to
	spins uint64   // what the loop counts
)

func hostile(in *plugin.EvictionInput, victims []int) []int {
	switch in.NowUnixMs {
	case modePanic:
		panic(fmt.Sprintf("hostile plugin: panic on %d candidates", len(in.Candidates)))
	case modeAllocBomb:
		for {
			kept = append(kept, make([]byte, 1<<20))
		}
	case modeRecursion:
		return recurse(in, victims, 0)
	case modeLoop:
		for {
			spins++
		}
	case modeTooMany:
		for i := range in.VictimsMax + 1 {
			victims = append(victims, i)
		}
		return victims
	case modeDuplicate:
		return append(victims, 0, 0)
	case modeUnknown:
		return append(victims, len(in.Candidates))
	case modeSleep:
		time.Sleep(time.Second)
	case modeStderr:
		fmt.Fprintf(os.Stderr, "hostile plugin: %d candidates\n", len(in.Candidates))
	case modeExitZero:
		os.Exit(0)
	case modeHugeAnswer:
		for i := range 8192 {
			victims = append(victims, i)
		}
		return victims
	}
	for i := range in.VictimsMax {
		victims = append(victims, i)
	}
	return victims
}

// recurse never returns; its frame is large, so the goroutine's stack grows
// fast.
func recurse(in *plugin.EvictionInput, victims []int, depth int) []int {
	var pad [256]int
	pad[depth%256] = depth
	return recurse(in, victims, depth+pad[(depth+1)%256]+1)
}

func main() {}
