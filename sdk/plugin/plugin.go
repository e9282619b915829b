package plugin

import (
	"github.com/wisp-db/wisp/plugins/abi"
)

// Candidate is one key an eviction policy may choose (see abi.Candidate for
// each field's meaning and unit).
type Candidate = abi.Candidate

// EvictionInput is one eviction decision: the leader's time, the
// candidates, and how many of them may be chosen (see abi.EvictionInput).
type EvictionInput = abi.EvictionInput

// EvictionFunc is an eviction policy. It appends to victims the indexes into
// in.Candidates of the keys to evict, best victim first, each at most once
// and at most in.VictimsMax of them, and returns the extended slice. It must
// not modify in.Candidates, nor retain in or its candidates after it
// returns: in a guest they are the input buffer itself, which the host
// overwrites with the next call's input.
type EvictionFunc func(in *EvictionInput, victims []int) []int

// handlers holds the registered functions. A module instance runs one call
// at a time, so they need no lock.
var handlers struct {
	eviction EvictionFunc
}

// HandleEviction makes f the module's eviction policy. Call it from an init
// function; a later call replaces f. A module without one answers every
// eviction call with abi.CodeNoHandler.
func HandleEviction(f EvictionFunc) { handlers.eviction = f }

// evictionState is what one instance reuses from call to call, so that a
// decision allocates nothing once the buffers have grown.
var evictionState struct {
	in      EvictionInput
	victims []int
	out     []byte
}

// evict runs the eviction handler on an encoded input and returns the
// encoded output, which stays valid until the next call, or an error code.
func evict(b []byte) ([]byte, abi.ErrorCode) {
	if handlers.eviction == nil {
		return nil, abi.CodeNoHandler
	}
	s := &evictionState
	if err := decodeEvictionInput(b, &s.in); err != nil {
		return nil, abi.CodeMalformedInput
	}
	s.victims = handlers.eviction(&s.in, s.victims[:0])
	s.out = abi.AppendVictims(s.out[:0], s.victims)
	return s.out, 0
}
