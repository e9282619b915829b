package plugin

import (
	"reflect"
	"slices"
	"testing"

	"github.com/wisp-db/wisp/plugins/abi"
)

// largestFirst is a test policy: the largest candidates first.
func largestFirst(in *EvictionInput, victims []int) []int {
	idx := make([]int, len(in.Candidates))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return int(in.Candidates[b].SizeBytes) - int(in.Candidates[a].SizeBytes)
	})
	return append(victims, idx[:in.VictimsMax]...)
}

// TestEvict runs the SDK's dispatch natively: an input encoded as the host
// does, the handler's victims encoded as the host decodes them.
func TestEvict(t *testing.T) {
	t.Cleanup(func() { HandleEviction(nil) })
	if _, code := evict(nil); code != abi.CodeNoHandler {
		t.Errorf("evict without a handler = code %d; want %d", code, abi.CodeNoHandler)
	}
	HandleEviction(largestFirst)
	for _, tc := range []struct {
		sizes      []uint32
		victimsMax int
		want       []int
	}{
		{[]uint32{10, 30, 20}, 2, []int{1, 2}},
		{[]uint32{5}, 1, []int{0}},
		{[]uint32{1, 2, 3, 4}, 0, []int{}},
		{nil, 0, []int{}},
	} {
		in := &EvictionInput{NowUnixMs: 123, VictimsMax: tc.victimsMax}
		for _, s := range tc.sizes {
			in.Candidates = append(in.Candidates, Candidate{SizeBytes: s})
		}
		out, code := evict(abi.AppendEvictionInput(nil, in))
		if code != 0 {
			t.Fatalf("evict(%v) = code %d", tc.sizes, code)
		}
		got, err := abi.DecodeVictims(out, len(tc.sizes), tc.victimsMax, []int{})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("evict(%v, max %d) = %v, %v; want %v", tc.sizes, tc.victimsMax, got, err, tc.want)
		}
	}
	if _, code := evict([]byte{1, 2, 3}); code != abi.CodeMalformedInput {
		t.Errorf("evict(garbage) = code %d; want %d", code, abi.CodeMalformedInput)
	}
}

// TestEvictAllocatesNothing: once its buffers have grown, a decision
// allocates nothing in the SDK (the handler's own allocations aside).
func TestEvictAllocatesNothing(t *testing.T) {
	t.Cleanup(func() { HandleEviction(nil) })
	HandleEviction(func(in *EvictionInput, victims []int) []int { return append(victims, 0) })
	b := abi.AppendEvictionInput(nil, &EvictionInput{VictimsMax: 1, Candidates: make([]Candidate, 1000)})
	evict(b)
	if n := testing.AllocsPerRun(100, func() { evict(b) }); n != 0 {
		t.Errorf("evict allocates %v times per call; want 0", n)
	}
}

// TestTTL runs the SDK's ttl dispatch natively: an input encoded as the host
// does, the handler called once per write in order, its answers encoded as
// the host decodes them.
func TestTTL(t *testing.T) {
	t.Cleanup(func() { HandleTTL(nil) })
	in := abi.AppendTTLInput(nil, &abi.TTLInput{NowUnixMs: 5, Writes: []abi.TTLWrite{
		{RequestedTTLMs: 700, ValueSizeBytes: 9, Key: []byte("session/1")},
		{Key: []byte("k")},
		{RequestedTTLMs: 1, ValueSizeBytes: 1 << 20, Key: []byte("cache/2")},
	}})
	if _, code := ttl(in); code != abi.CodeNoHandler {
		t.Errorf("ttl without a handler = code %d; want %d", code, abi.CodeNoHandler)
	}
	var seen []TTLInput
	HandleTTL(func(w *TTLInput) int64 {
		c := *w
		c.Key = slices.Clone(w.Key)
		seen = append(seen, c)
		if w.RequestedTTLMs == 0 {
			return 1000
		}
		return KeepRequestedTTL
	})
	out, code := ttl(in)
	got, err := abi.DecodeTTLOutput(out, 3, nil)
	if want := []int64{KeepRequestedTTL, 1000, KeepRequestedTTL}; code != 0 || err != nil || !slices.Equal(got, want) {
		t.Errorf("ttl(3 writes) = %v, code %d, %v; want %v", got, code, err, want)
	}
	want := []TTLInput{
		{NowUnixMs: 5, RequestedTTLMs: 700, ValueSizeBytes: 9, Key: []byte("session/1")},
		{NowUnixMs: 5, Key: []byte("k")},
		{NowUnixMs: 5, RequestedTTLMs: 1, ValueSizeBytes: 1 << 20, Key: []byte("cache/2")},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("the handler saw %+v; want %+v, in order", seen, want)
	}
	if _, code := ttl([]byte{1, 2, 3}); code != abi.CodeMalformedInput {
		t.Errorf("ttl(garbage) = code %d; want %d", code, abi.CodeMalformedInput)
	}
	HandleTTL(func(w *TTLInput) int64 { return int64(len(w.Key)) })
	ttl(in)
	if n := testing.AllocsPerRun(100, func() { ttl(in) }); n != 0 {
		t.Errorf("ttl allocates %v times per call; want 0", n)
	}
}
