package replay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/engine/eviction"
)

func TestReader(t *testing.T) {
	in := `# a trace
1000 get 00000000000000ff 100

1001 put ff 2000
1001 del 1 0
`
	r := NewReader(strings.NewReader("# wisp-trace sample=16\n" + in))
	want := []Record{{1000, Get, 0xff, 100}, {1001, Put, 0xff, 2000}, {1001, Delete, 1, 0}}
	for i, w := range want {
		got, err := r.Next()
		if err != nil || got != w {
			t.Fatalf("record %d = %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
	if r.Sample() != 16 {
		t.Errorf("sample %d, want the header's 16", r.Sample())
	}

	for _, bad := range []string{
		"1000 get ff",                       // three fields
		"1000 set ff 1",                     // unknown op
		"-1 get ff 1",                       // negative time
		"1000 get 1ffffffffffffffff 1",      // 17 hex digits
		"1000 get zz 1",                     // not hex
		"1000 get ff -1",                    // negative size
		"1000 get ff 1048577",               // over MaxValueBytes
		"1000 get ff 1\n999 get ff 1",       // time going back
		strings.Repeat("1", maxLineBytes+1), // too long
		"# wisp-trace sample=0",             // a sample out of range
	} {
		r := NewReader(strings.NewReader(bad))
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "trace line") {
			t.Errorf("%q: %v, want an error naming the line", bad, err)
		}
	}
}

func TestWriteReadsBack(t *testing.T) {
	next := Zipf(7, 500, 100, 1.1, 10, 10_000, 1_700_000_000_000)
	var buf bytes.Buffer
	if err := WriteHeader(&buf, 4); err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		recs = append(recs, rec)
		if err := Write(&buf, rec); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, w := range recs {
		if i == 1 && r.Sample() != 4 {
			t.Errorf("sample %d, want 4", r.Sample())
		}
		got, err := r.Next()
		if err != nil || got != w {
			t.Fatalf("record %d read back as %+v, %v; want %+v", i, got, err, w)
		}
	}
}

// TestRun: a bigger cache hits more; one that holds everything misses
// only each key's first read; noeviction cannot keep to the budget.
func TestRun(t *testing.T) {
	ctx := context.Background()
	const reads, keys = 20_000, 2_000
	trace := func() func() (Record, error) { return Zipf(1, reads, keys, 1.1, 100, 4_000, 1) }
	lru, err := eviction.New("allkeys-lru")
	if err != nil {
		t.Fatal(err)
	}
	small, err := Run(ctx, trace(), 200<<10, lru)
	if err != nil {
		t.Fatal(err)
	}
	large, err := Run(ctx, trace(), 2<<20, lru)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Run(ctx, trace(), 1<<30, lru)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("small %+v (%.3f, bytes %.3f); large %+v (%.3f); all %+v (%.3f)", small, small.HitRatio(), small.ByteHitRatio(), large, large.HitRatio(), all, all.HitRatio())
	if small.Reads != reads || small.Evicted == 0 {
		t.Fatalf("small cache: %+v; want %d reads and evictions", small, reads)
	}
	if !(small.HitRatio() < large.HitRatio() && large.HitRatio() <= all.HitRatio()) {
		t.Errorf("hit ratios %.3f, %.3f, %.3f do not grow with the cache", small.HitRatio(), large.HitRatio(), all.HitRatio())
	}
	distinct := map[uint64]bool{}
	next := trace()
	for rec, err := next(); err == nil; rec, err = next() {
		distinct[rec.Key] = true
	}
	if all.Evicted != 0 || all.Reads-all.Hits != int64(len(distinct)) {
		t.Errorf("unbounded cache: %d misses and %d evictions; want a miss per distinct key (%d) and none", all.Reads-all.Hits, all.Evicted, len(distinct))
	}

	none, err := eviction.New("noeviction")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Run(ctx, trace(), 200<<10, none); err != nil || res.OverBudget == 0 || res.Evicted != 0 {
		t.Errorf("noeviction: %+v, %v; want it over budget and nothing evicted", res, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, trace(), 200<<10, lru); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context = %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add("1000 get 00000000000000ff 100\n1001 put ff 2000\n")
	f.Add("# x\n\n1 del 0 0")
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(strings.NewReader(in))
		last := int64(-1)
		for range 1000 {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if rec.UnixMs < last || rec.Size < 0 || rec.Size > MaxValueBytes || rec.Op < Get || rec.Op > Delete {
				t.Fatalf("invalid record accepted: %+v", rec)
			}
			last = rec.UnixMs
		}
	})
}

// TestRunRecordedMiss: a get recorded as a miss (size 0) loads nothing;
// the put after it does, and a later get hits with the put's size.
func TestRunRecordedMiss(t *testing.T) {
	recs := []Record{{1, Get, 7, 0}, {2, Put, 7, 500}, {3, Get, 7, 0}, {4, Get, 8, 0}}
	i := 0
	next := func() (Record, error) {
		if i == len(recs) {
			return Record{}, io.EOF
		}
		i++
		return recs[i-1], nil
	}
	lru, _ := eviction.New("allkeys-lru")
	res, err := Run(context.Background(), next, 1<<20, lru)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reads != 3 || res.Hits != 1 || res.BytesHit != 500 || res.BytesRead != 500 {
		t.Errorf("result %+v; want 3 reads, 1 hit of 500 bytes, 500 bytes read", res)
	}
}
