// Command gen writes the hand-made test modules of package plugins into
// plugins/testdata: tiny WebAssembly modules, assembled here byte by byte,
// for behaviours the Go toolchain cannot produce on purpose (a module that
// speaks the wrong ABI version, lacks an export, imports what the host does
// not offer, or is not WebAssembly at all) and for hostile guests small
// enough to compile in microseconds. Each module's text (WAT) is in the
// comment above its builder.
//
// Run it through go generate ./plugins (see plugins/generate.go); the
// output is deterministic.
package main

import (
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

func main() {
	dir := "testdata"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for _, m := range modules() {
		path := filepath.Join(dir, m.name)
		if err := os.WriteFile(path, m.bytes, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d bytes\n", path, len(m.bytes))
	}
}

type output struct {
	name  string
	bytes []byte
}

// Value types and opcodes used below.
const (
	i32 = 0x7f
	i64 = 0x7e

	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opEnd         = 0x0b
	opBr          = 0x0c
	opBrIf        = 0x0d
	opCall        = 0x10
	opDrop        = 0x1a
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI64Const    = 0x42
	opI32Ne       = 0x47
	opI32GeU      = 0x4f
	opI32Add      = 0x6a
	blockEmpty    = 0x40
)

// Addresses in every module's memory: where the fixed answers live and the
// one input buffer wisp_allocate hands out (4 pages hold the largest input).
const (
	answerAddr = 512
	inputAddr  = 1024
	memPages   = 4
)

// answer is the entry point's result for the answer at answerAddr of
// sizeBytes bytes.
func answer(sizeBytes uint32) int64 { return int64(answerAddr)<<32 | int64(sizeBytes) }

// oneVictim is the output naming candidate 0; noVictims names none.
var (
	oneVictim = []byte{1, 0, 0, 0, 0, 0, 0, 0}
	noVictims = []byte{0, 0, 0, 0}
)

// abiModule describes a module of the eviction ABI: version is what
// wisp_abi_version returns; evict is wisp_evict's code (without the final
// end); data is written at answerAddr.
type abiModule struct {
	version       int32
	evict         []byte
	data          []byte
	extraFuncs    [][]byte // bodies of () -> () functions, indexes after wisp_evict
	imports       bool     // import env.wisp_now: () -> i64 as function 0
	noEvictExport bool
	counter       bool // one mutable i32 global, 0
}

func modules() []output {
	goodAnswer := i64c(answer(8))
	return []output{
		// (func $wisp_evict (param i32 i32) (result i64) i64.const <victim 0>)
		{"victim0.wasm", abiModule{version: 1, evict: goodAnswer, data: oneVictim}.encode()},
		// (func $wisp_evict ... i64.const <no victims>): the empty call.
		{"empty.wasm", abiModule{version: 1, evict: i64c(answer(4)), data: noVictims}.encode()},
		// (loop br 0) unreachable
		{"loop.wasm", abiModule{version: 1, evict: cat([]byte{opLoop, blockEmpty, opBr, 0, opEnd, opUnreachable})}.encode()},
		// (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable
		{"growbomb.wasm", abiModule{version: 1, evict: cat(
			[]byte{opLoop, blockEmpty}, i32c(1), []byte{opMemoryGrow, 0}, i32c(-1),
			[]byte{opI32Ne, opBrIf, 0, opEnd, opUnreachable})}.encode()},
		// wisp_evict: call $f unreachable; $f: call $f
		{"recursion.wasm", abiModule{version: 1, evict: []byte{opCall, 4, opUnreachable},
			extraFuncs: [][]byte{{opCall, 4}}}.encode()},
		// (if (global.get $n) (call $f)) (global.set $n (i32.const 1)) i64.const <victim 0>;
		// $f: call $f. Passes the self-test, then recurses on every later call.
		{"laterecursion.wasm", abiModule{version: 1, counter: true, data: oneVictim, evict: cat(
			[]byte{opGlobalGet, 0, opIf, blockEmpty, opCall, 4, opEnd}, i32c(1), []byte{opGlobalSet, 0}, goodAnswer),
			extraFuncs: [][]byte{{opCall, 4}}}.encode()},
		// unreachable
		{"trap.wasm", abiModule{version: 1, evict: []byte{opUnreachable}}.encode()},
		// i64.const <address 0, 1 GiB>
		{"hugeoutput.wasm", abiModule{version: 1, evict: i64c(1 << 30)}.encode()},
		// wisp_abi_version returns 2
		{"wrongabi.wasm", abiModule{version: 2, evict: goodAnswer, data: oneVictim}.encode()},
		// no wisp_evict export
		{"missingexport.wasm", abiModule{version: 1, evict: goodAnswer, data: oneVictim, noEvictExport: true}.encode()},
		// (import "env" "wisp_now" (func (result i64))); wisp_evict calls it
		{"badimport.wasm", abiModule{version: 1, evict: cat([]byte{opCall, 0, opDrop}, goodAnswer), data: oneVictim, imports: true}.encode()},
		// (if (i32.ge_u (global.get $n) (i32.const 99)) (loop br 0))
		// (global.set $n (i32.add (global.get $n) (i32.const 1))) i64.const <victim 0>
		{"flaky99.wasm", abiModule{version: 1, counter: true, data: oneVictim, evict: cat(
			[]byte{opGlobalGet, 0}, i32c(99), []byte{opI32GeU, opIf, blockEmpty, opLoop, blockEmpty, opBr, 0, opEnd, opEnd},
			[]byte{opGlobalGet, 0}, i32c(1), []byte{opI32Add, opGlobalSet, 0},
			goodAnswer)}.encode()},
		// 4 KiB of pseudo-random bytes: not WebAssembly
		{"garbage.wasm", garbage(4096)},
	}
}

func (m abiModule) encode() []byte {
	// Types: 0 () -> i32, 1 (i32) -> i32, 2 (i32 i32) -> (), 3 (i32 i32) -> i64,
	// 4 () -> (), 5 () -> i64.
	types := vec(
		functype(nil, []byte{i32}),
		functype([]byte{i32}, []byte{i32}),
		functype([]byte{i32, i32}, nil),
		functype([]byte{i32, i32}, []byte{i64}),
		functype(nil, nil),
		functype(nil, []byte{i64}),
	)
	var out []byte
	out = append(out, 0x00, 'a', 's', 'm', 1, 0, 0, 0)
	out = append(out, section(1, types)...)
	base := uint32(0) // index of the first defined function
	if m.imports {
		out = append(out, section(2, vec(cat(name("env"), name("wisp_now"), []byte{0x00}, u32(5))))...)
		base = 1
	}
	funcTypes := [][]byte{u32(0), u32(1), u32(2), u32(3)}
	for range m.extraFuncs {
		funcTypes = append(funcTypes, u32(4))
	}
	out = append(out, section(3, vec(funcTypes...))...)
	out = append(out, section(5, vec(cat([]byte{0x00}, u32(memPages))))...) // min only
	if m.counter {
		out = append(out, section(6, vec(cat([]byte{i32, 0x01}, i32c(0), []byte{opEnd})))...)
	}
	exports := [][]byte{
		cat(name("memory"), []byte{0x02}, u32(0)),
		cat(name("wisp_abi_version"), []byte{0x00}, u32(base+0)),
		cat(name("wisp_allocate"), []byte{0x00}, u32(base+1)),
		cat(name("wisp_free"), []byte{0x00}, u32(base+2)),
	}
	if !m.noEvictExport {
		exports = append(exports, cat(name("wisp_evict"), []byte{0x00}, u32(base+3)))
	}
	out = append(out, section(7, vec(exports...))...)
	// Calls name absolute function indexes: with the import, it is 0.
	bodies := [][]byte{
		body(i32c(m.version)),
		body(i32c(inputAddr)),
		body(nil),
		body(m.evict),
	}
	for _, f := range m.extraFuncs {
		bodies = append(bodies, body(f))
	}
	out = append(out, section(10, vec(bodies...))...)
	if len(m.data) > 0 {
		seg := cat(u32(0), i32c(answerAddr), []byte{opEnd}, u32(uint32(len(m.data))), m.data)
		out = append(out, section(11, vec(seg))...)
	}
	return out
}

func functype(params, results []byte) []byte {
	return cat([]byte{0x60}, u32(uint32(len(params))), params, u32(uint32(len(results))), results)
}

// body is a function body without locals.
func body(code []byte) []byte {
	b := cat([]byte{0x00}, code, []byte{opEnd})
	return cat(u32(uint32(len(b))), b)
}

func section(id byte, content []byte) []byte {
	return cat([]byte{id}, u32(uint32(len(content))), content)
}

func vec(items ...[]byte) []byte { return cat(append([][]byte{u32(uint32(len(items)))}, items...)...) }

func name(s string) []byte { return cat(u32(uint32(len(s))), []byte(s)) }

func i32c(v int32) []byte { return cat([]byte{opI32Const}, sleb(int64(v))) }

func i64c(v int64) []byte { return cat([]byte{opI64Const}, sleb(v)) }

func u32(v uint32) []byte { return binary.AppendUvarint(nil, uint64(v)) }

// sleb is signed LEB128.
func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// garbage returns n bytes of a fixed splitmix64 sequence.
func garbage(n int) []byte {
	b := make([]byte, 0, n)
	x := uint64(0x6761726261676521)
	for len(b) < n {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		b = binary.LittleEndian.AppendUint64(b, z^(z>>31))
	}
	return b[:n]
}
