// Package replay replays an access trace through eviction policies on a
// simulated cache, and reports each policy's hit ratio and byte hit ratio:
// the what-if of a plugin before it is activated (wisp plugin whatif).
//
// The cache is a real engine.Engine with a memory budget, evicted by a
// real eviction.Evictor, as a shard leader does, but in one goroutine and
// without Raft: a read that misses loads the value (cache-aside), a write
// stores it, and whenever the engine's memory is over the budget the
// evictor asks the policy for victims. The same trace through two policies
// is the same sequence of requests, so their ratios compare.
//
// A trace is text, one access per line (see Reader): the time, the
// operation, a hash of the key and the value's size. Keys are hashes, so a
// trace can be shared without its keys, and a policy that looks at key
// prefixes cannot be judged on one.
package replay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
)

// Op is what an access does.
type Op uint8

// The operations of a trace.
const (
	Get Op = iota + 1
	Put
	Delete
)

func (o Op) String() string {
	switch o {
	case Get:
		return "get"
	case Put:
		return "put"
	case Delete:
		return "del"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Record is one access.
type Record struct {
	UnixMs int64
	Op     Op
	// Key is a hash of the key (xxhash64 in traces a node records).
	Key uint64
	// Size is the value's size in bytes: for a Get, the size of the value
	// a miss loads.
	Size int64
}

// MaxValueBytes bounds a record's size: the largest value a node takes by
// default.
const MaxValueBytes = 1 << 20

// maxLineBytes bounds a trace line.
const maxLineBytes = 256

// Reader reads a trace: lines of "unix_ms op key_hash size", the op one
// of get, put and del, the key hash 1 to 16 hex digits, the size in bytes
// (0 to MaxValueBytes; a get of size 0 was a miss when recorded, and loads
// nothing); blank lines and lines starting with # are skipped, but for a
// "# wisp-trace sample=N" line (WriteHeader), which says the trace holds
// one key in N. Times must not go backwards.
type Reader struct {
	s      *bufio.Scanner
	line   int
	last   int64
	sample int
}

// Sample returns the trace's sampling, as read so far: one key in Sample
// (1 without a header).
func (r *Reader) Sample() int { return max(r.sample, 1) }

// headerPrefix starts a trace's header line.
const headerPrefix = "# wisp-trace sample="

// WriteHeader writes the header of a trace that holds one key in sample.
func WriteHeader(w io.Writer, sample int) error {
	_, err := fmt.Fprintf(w, "%s%d\n# unix_ms op key_hash size\n", headerPrefix, sample)
	return err
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, maxLineBytes), maxLineBytes)
	return &Reader{s: s}
}

// Next returns the next record, or io.EOF after the last.
func (r *Reader) Next() (Record, error) {
	for r.s.Scan() {
		r.line++
		text := strings.TrimSpace(r.s.Text())
		if v, ok := strings.CutPrefix(text, headerPrefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<16 {
				return Record{}, fmt.Errorf("trace line %d: sample %q: want 1 to 65536", r.line, v)
			}
			r.sample = n
			continue
		}
		if text == "" || text[0] == '#' {
			continue
		}
		rec, err := parse(text)
		if err == nil && rec.UnixMs < r.last {
			err = fmt.Errorf("time %d is before the line before's %d", rec.UnixMs, r.last)
		}
		if err != nil {
			return Record{}, fmt.Errorf("trace line %d: %w", r.line, err)
		}
		r.last = rec.UnixMs
		return rec, nil
	}
	if err := r.s.Err(); err != nil {
		return Record{}, fmt.Errorf("trace line %d: %w", r.line+1, err)
	}
	return Record{}, io.EOF
}

func parse(text string) (Record, error) {
	f := strings.Fields(text)
	if len(f) != 4 {
		return Record{}, fmt.Errorf("%d fields; want 4: unix_ms op key_hash size", len(f))
	}
	var (
		rec Record
		err error
	)
	if rec.UnixMs, err = strconv.ParseInt(f[0], 10, 64); err != nil || rec.UnixMs < 0 {
		return Record{}, fmt.Errorf("time %q: want milliseconds since 1970", f[0])
	}
	switch f[1] {
	case "get":
		rec.Op = Get
	case "put":
		rec.Op = Put
	case "del":
		rec.Op = Delete
	default:
		return Record{}, fmt.Errorf("op %q: want get, put or del", f[1])
	}
	if len(f[2]) > 16 {
		return Record{}, fmt.Errorf("key hash %q: want at most 16 hex digits", f[2])
	}
	if rec.Key, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return Record{}, fmt.Errorf("key hash %q: want hex digits", f[2])
	}
	if rec.Size, err = strconv.ParseInt(f[3], 10, 64); err != nil || rec.Size < 0 || rec.Size > MaxValueBytes {
		return Record{}, fmt.Errorf("size %q: want 0 to %d bytes", f[3], MaxValueBytes)
	}
	return rec, nil
}

// Write writes rec as a trace line.
func Write(w io.Writer, rec Record) error {
	_, err := fmt.Fprintf(w, "%d %s %016x %d\n", rec.UnixMs, rec.Op, rec.Key, rec.Size)
	return err
}

// Zipf returns a synthetic trace of n reads over keys keys, drawn by a
// Zipf distribution of exponent s (> 1), each key's value size fixed and
// log-uniform in [minSize, maxSize], one read per millisecond from
// startUnixMs; the same seed gives the same trace. It is for trying a
// policy without a recorded trace.
func Zipf(seed uint64, n, keys int, s float64, minSize, maxSize int64, startUnixMs int64) func() (Record, error) {
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	z := rand.NewZipf(rnd, s, 1, uint64(keys-1))
	lo, hi := math.Log(float64(max(minSize, 1))), math.Log(float64(max(maxSize, minSize, 1)))
	i := 0
	return func() (Record, error) {
		if i >= n {
			return Record{}, io.EOF
		}
		rank := z.Uint64()
		key := mix(rank ^ seed)
		u := float64(mix(key)>>11) / (1 << 53) // the key's own size, in [0, 1)
		size := int64(math.Exp(lo + u*(hi-lo)))
		rec := Record{UnixMs: startUnixMs + int64(i), Op: Get, Key: key, Size: size}
		i++
		return rec, nil
	}
}

// mix is SplitMix64's finaliser: it spreads ranks over the key space.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Result is one policy's replay.
type Result struct {
	Policy string
	// Reads and Hits count the Get records and those the cache held;
	// BytesRead and BytesHit weigh them by size.
	Reads, Hits         int64
	BytesRead, BytesHit int64
	// Evicted counts the keys evicted; OverBudget the times the policy
	// chose nothing while the cache was over its budget.
	Evicted, OverBudget int64
}

// HitRatio is Hits/Reads (0 without reads).
func (r Result) HitRatio() float64 { return ratio(r.Hits, r.Reads) }

// ByteHitRatio is BytesHit/BytesRead (0 without reads).
func (r Result) ByteHitRatio() float64 { return ratio(r.BytesHit, r.BytesRead) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// maxVictimsPerSelect is how many victims one eviction round asks for, as
// the reclaimer does.
const maxVictimsPerSelect = 64

// Run replays the records next returns (until io.EOF) on a cache of
// budget bytes evicted by p, and returns the result. It stops early with
// ctx's error, or the trace's.
func Run(ctx context.Context, next func() (Record, error), budget int64, p eviction.Policy) (Result, error) {
	if budget <= 0 {
		return Result{}, errors.New("replay: the budget must be positive")
	}
	res := Result{Policy: p.Name()}
	e := engine.New()
	ev := eviction.NewEvictor(p)
	rnd := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, MaxValueBytes)
	var (
		key     [8]byte
		victims []engine.Candidate
		cmd     engine.Command
	)
	apply := func() error {
		if r := e.Apply(e.AppliedIndex()+1, &cmd); r.Err != nil {
			return fmt.Errorf("replay: apply op %d: %w", cmd.Mutations[0].Op, r.Err)
		}
		return nil
	}
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		rec, err := next()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		binary.BigEndian.PutUint64(key[:], rec.Key)
		cmd.NowUnixMs = max(rec.UnixMs, 1)
		switch rec.Op {
		case Get:
			res.Reads++
			it, ok := e.Get(key[:], rec.UnixMs)
			size := rec.Size
			if ok && size == 0 {
				size = int64(len(it.Value))
			}
			res.BytesRead += size
			if ok {
				res.Hits++
				res.BytesHit += size
				continue
			}
			if rec.Size == 0 {
				continue // a miss when recorded: the application's put follows, if any
			}
			fallthrough // a miss loads the value
		case Put:
			cmd.Mutations = append(cmd.Mutations[:0], engine.Mutation{Op: engine.OpPut, Key: key[:], Value: value[:rec.Size]})
		case Delete:
			cmd.Mutations = append(cmd.Mutations[:0], engine.Mutation{Op: engine.OpDelete, Key: key[:]})
		default:
			return res, fmt.Errorf("replay: record %d: unknown op %d", n, rec.Op)
		}
		if err := apply(); err != nil {
			return res, err
		}
		for used := e.MemoryUsed(); used > budget; used = e.MemoryUsed() {
			victims, err = ev.Choose(ctx, func(fn func(*engine.Engine)) error { fn(e); return nil }, rec.UnixMs, used-budget, maxVictimsPerSelect, rnd.IntN, victims[:0])
			if err != nil {
				return res, fmt.Errorf("replay: policy %s: %w", p.Name(), err)
			}
			if len(victims) == 0 {
				res.OverBudget++
				break
			}
			cmd.Mutations = cmd.Mutations[:0]
			for _, v := range victims {
				cmd.Mutations = append(cmd.Mutations, engine.Mutation{Op: engine.OpEvict, Key: v.Key, IfVersion: v.Version})
			}
			if err := apply(); err != nil {
				return res, err
			}
			res.Evicted += int64(len(victims))
		}
	}
}
