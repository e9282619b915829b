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

// TTLInput is one write whose TTL a ttl plugin decides: the key, the value's
// size, the TTL the client asked for (0: none) and the leader's time. The
// host sends writes in batches (abi.TTLInput: up to abi.TTLWritesMax writes
// per call); the SDK calls the TTLFunc once per write of the batch, in
// order, and sends back the answers together.
type TTLInput struct {
	// NowUnixMs is the leader's time for the batch, the only time the
	// guest gets. The TTL answered counts from it.
	NowUnixMs int64
	// RequestedTTLMs is the TTL the client asked for, in milliseconds; 0
	// for none. Never negative.
	RequestedTTLMs int64
	// ValueSizeBytes is the size of the value written.
	ValueSizeBytes uint32
	// Key is the key written, 1 to abi.TTLKeySizeBytesMax bytes. In a
	// guest it is a view of the input buffer.
	Key []byte
}

// KeepRequestedTTL is the answer of a TTLFunc that keeps the TTL the client
// asked for (which may be none).
const KeepRequestedTTL = abi.TTLKeepRequested

// TTLMsMax is the largest TTL a TTLFunc may answer: ten years, in
// milliseconds. A larger one, or a negative one other than
// KeepRequestedTTL, fails the call, and the host keeps the client's TTL.
const TTLMsMax = abi.TTLMsMax

// TTLFunc is a ttl policy: it returns the TTL to give the write w, in
// milliseconds from w.NowUnixMs: 0 for none, at most TTLMsMax, or
// KeepRequestedTTL. It must not modify w.Key, nor retain it after it
// returns: in a guest it is the input buffer itself. One answer out of
// range fails the whole batch it came in (the host keeps the clients' TTLs
// for all of its writes).
//
// A guest has no randomness: for jitter, derive it from a hash of the key
// (hash/fnv, say). The same key then gets the same jitter on every write,
// which is what spreading expiries needs, and the leader stamps the TTL into
// the write, so replicas never run the function.
type TTLFunc func(w *TTLInput) int64

// handlers holds the registered functions. A module instance runs one call
// at a time, so they need no lock.
var handlers struct {
	eviction EvictionFunc
	ttl      TTLFunc
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

// HandleTTL makes f the module's ttl policy. Call it from an init function;
// a later call replaces f. A module without one answers every ttl call with
// abi.CodeNoHandler.
func HandleTTL(f TTLFunc) { handlers.ttl = f }

// ttlState is what one instance reuses from call to call, so that a batch
// allocates nothing once the buffers have grown.
var ttlState struct {
	in  abi.TTLInput
	w   TTLInput
	out []byte
}

// ttl runs the ttl handler on each write of an encoded input, in order, and
// returns the encoded output, one TTL per write, which stays valid until
// the next call; or an error code.
func ttl(b []byte) ([]byte, abi.ErrorCode) {
	if handlers.ttl == nil {
		return nil, abi.CodeNoHandler
	}
	s := &ttlState
	if err := abi.DecodeTTLInput(b, &s.in); err != nil {
		return nil, abi.CodeMalformedInput
	}
	s.out = s.out[:0]
	for i := range s.in.Writes {
		w := &s.in.Writes[i]
		s.w = TTLInput{NowUnixMs: s.in.NowUnixMs, RequestedTTLMs: w.RequestedTTLMs, ValueSizeBytes: w.ValueSizeBytes, Key: w.Key}
		s.out = abi.AppendTTLOutput(s.out, handlers.ttl(&s.w))
	}
	s.w.Key = nil // keep no view of the input past the call
	return s.out, 0
}
