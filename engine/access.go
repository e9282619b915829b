package engine

import "math"

// Access metadata (see doc.go, "Access metadata"): what an eviction policy
// knows about how recently and how often a key was used. It is per-replica,
// not replicated state: Digest, snapshots and results never see it, and
// each replica's differs (reads touch it, and reads go to one replica).
//
// An entry keeps two atomic words, because snapshots share entries with the
// Engine and concurrent Get calls touch the same ones:
//
//	lru  the low 32 bits of the access clock at the last access
//	lfu  bit 24: bits 8-23 hold a time; bits 8-23: minutes since the
//	     epoch, modulo 2^16, of the last access; bits 0-7: the logarithmic
//	     access counter
//
// The LFU word follows Redis (evict.c): new keys start at lfuInitVal, an
// access increments the counter with probability 1/((counter-5)*10+1), and
// the counter loses one per minute without access. The "random" number of
// that increment is a splitmix64 of the access clock, so the engine needs
// no randomness source.

const (
	// lfuInitVal is a new key's counter: room to collect a few accesses
	// before it ranks below a key that was never read (Redis LFU_INIT_VAL).
	lfuInitVal = 5
	// lfuLogFactor sets how slowly the counter grows: about a million
	// accesses saturate it at 255 (Redis lfu-log-factor's default).
	lfuLogFactor = 10
	// lfuTimed marks an LFU word whose bits 8-23 hold a time. Restore has
	// no clock, so restored keys start untimed and do not decay until
	// their first access.
	lfuTimed = 1 << 24
	// lfuMaxLagMinutes is how far a nowUnixMs may be behind a key's stamp
	// and still count as no time elapsed, rather than as the 16-bit minute
	// clock having wrapped: a new leader's clock, or a reader's, may lag.
	lfuMaxLagMinutes = 60
	msPerMinute      = 60_000
)

// lfuMinutes returns nowUnixMs in whole minutes, modulo 2^16.
func lfuMinutes(nowUnixMs int64) uint16 {
	m := nowUnixMs / msPerMinute
	if nowUnixMs%msPerMinute < 0 {
		m-- // floor, so that minutes tick at the same instants before 1970
	}
	return uint16(m)
}

// lfuWord returns a timed LFU word stamped at minutes.
func lfuWord(minutes uint16, counter uint8) uint32 {
	return lfuTimed | uint32(minutes)<<8 | uint32(counter)
}

// lfuElapsed returns the minutes from word's stamp to nowUnixMs, 0 if word
// is untimed or nowUnixMs lags the stamp by at most lfuMaxLagMinutes.
func lfuElapsed(word uint32, nowUnixMs int64) uint16 {
	if word&lfuTimed == 0 {
		return 0
	}
	elapsed := lfuMinutes(nowUnixMs) - uint16(word>>8) // modulo 2^16
	if elapsed > math.MaxUint16-lfuMaxLagMinutes {
		return 0
	}
	return elapsed
}

// lfuCounter returns word's counter decayed to nowUnixMs: one less per
// elapsed minute, down to 0. Like Redis, a key idle for a multiple of 2^16
// minutes (45 days) looks fresh again; by then every counter has long
// decayed to 0 anyway unless the key was read.
func lfuCounter(word uint32, nowUnixMs int64) uint8 {
	counter := uint8(word)
	elapsed := lfuElapsed(word, nowUnixMs)
	if int(elapsed) >= int(counter) {
		return 0
	}
	return counter - uint8(elapsed)
}

// lfuAccess returns word after one access at nowUnixMs: the counter decayed,
// then incremented with probability 1/((counter-lfuInitVal)*lfuLogFactor+1)
// as drawn from rnd, a uniform 64-bit number; the stamp moves to nowUnixMs
// unless that lags it.
func lfuAccess(word uint32, nowUnixMs int64, rnd uint64) uint32 {
	counter := lfuCounter(word, nowUnixMs)
	if counter < math.MaxUint8 {
		var base uint64
		if counter > lfuInitVal {
			base = uint64(counter - lfuInitVal)
		}
		if rnd < math.MaxUint64/(base*lfuLogFactor+1) {
			counter++
		}
	}
	minutes := lfuMinutes(nowUnixMs)
	if word&lfuTimed != 0 && lfuElapsed(word, nowUnixMs) == 0 {
		minutes = uint16(word >> 8) // never move the stamp back
	}
	return lfuWord(minutes, counter)
}

// splitmix64 returns the splitmix64 output for state x: consecutive clock
// values map to well-mixed, uniform 64-bit numbers.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// access records an access at nowUnixMs to en, whose counter continues
// base's: en itself for a read, or the entry en replaces for a write that
// keeps the key (an overwrite keeps the LFU counter, as in Redis, and
// counts as an access). Safe for concurrent use: it only touches atomics,
// and a touch that races with another may lose its increment.
func (e *Engine) access(en, base *entry, nowUnixMs int64) {
	c := e.clock.Add(1)
	en.lru.Store(uint32(c))
	en.lfu.Store(lfuAccess(base.lfu.Load(), nowUnixMs, splitmix64(c)))
}

// created records the creation of a new key's entry at nowUnixMs, an
// access that starts its counter at lfuInitVal.
func (e *Engine) created(en *entry, nowUnixMs int64) {
	en.lru.Store(uint32(e.clock.Add(1)))
	en.lfu.Store(lfuWord(lfuMinutes(nowUnixMs), lfuInitVal))
}

// lastAccess returns the full access-clock value of en's last access,
// rebuilt from its 32-bit stamp: the clock minus the stamp's age modulo
// 2^32. It is exact unless the key went 2^32 accesses (to any key) without
// one; then it looks more recent than it is.
//
// The stamp is loaded before the clock: the access that wrote it had
// advanced the clock first, so the clock read is never behind the stamp.
func (e *Engine) lastAccess(en *entry) uint64 {
	stamp := en.lru.Load()
	now := e.clock.Load()
	return now - uint64(uint32(now)-stamp)
}

// Touch records an access to key at nowUnixMs, as Get does, if key is live
// then; an absent or expired key is left alone. For reads served without
// Get. Like Get, it may run concurrently with other reads.
func (e *Engine) Touch(key []byte, nowUnixMs int64) {
	if s, ok := e.tree.Get(slot{key: key}); ok && s.e.live(nowUnixMs) {
		e.access(s.e, s.e, nowUnixMs)
	}
}
