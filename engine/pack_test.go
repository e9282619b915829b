package engine

import (
	"bytes"
	"errors"
	"testing"
)

func packCmds() []*Command {
	return []*Command{
		{NowUnixMs: 1000, Mutations: []Mutation{{Op: OpPut, Key: []byte("a"), Value: []byte("1")}}},
		{NowUnixMs: 1000, Mutations: []Mutation{{Op: OpPut, Key: []byte("b"), Value: []byte("2"), IfAbsent: true}}},
		{NowUnixMs: 1000, MaxMemoryBytes: 1 << 20, Mutations: []Mutation{{Op: OpIncrement, Key: []byte("c"), Delta: 5}, {Op: OpDelete, Key: []byte("d")}}},
	}
}

func TestPackRoundTrip(t *testing.T) {
	cmds := packCmds()
	b := AppendPack(nil, cmds)
	if !IsPack(b) || IsPack(AppendCommand(nil, cmds[0])) {
		t.Fatalf("IsPack does not tell a pack from a command")
	}
	got, err := DecodePack(b)
	if err != nil {
		t.Fatalf("DecodePack: %v", err)
	}
	if len(got) != len(cmds) {
		t.Fatalf("DecodePack: %d commands; want %d", len(got), len(cmds))
	}
	for i := range got {
		if !bytes.Equal(AppendCommand(nil, &got[i]), AppendCommand(nil, cmds[i])) {
			t.Errorf("command %d differs after a round trip", i)
		}
	}
	for n := range len(b) {
		if _, err := DecodePack(b[:n]); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("DecodePack of %d of %d bytes: %v; want ErrInvalidCommand", n, len(b), err)
		}
	}
	if _, err := DecodePack(append(b, 0)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("DecodePack with a trailing byte: %v; want ErrInvalidCommand", err)
	}
}

// TestApplyPacked: each command of a pack applies or fails on its own, all
// at the pack's index; a key written twice in one pack is refused.
func TestApplyPacked(t *testing.T) {
	e := New()
	e.Apply(1, &Command{NowUnixMs: 1, Mutations: []Mutation{{Op: OpPut, Key: []byte("b"), Value: []byte("old")}}})
	cmds := []Command{
		{NowUnixMs: 10, Mutations: []Mutation{{Op: OpPut, Key: []byte("a"), Value: []byte("1")}}},
		{NowUnixMs: 10, Mutations: []Mutation{{Op: OpPut, Key: []byte("b"), Value: []byte("2"), IfAbsent: true}}}, // fails: b exists
		{NowUnixMs: 10, Mutations: []Mutation{{Op: OpPut, Key: []byte("a"), Value: []byte("again")}}},             // a twice: refused
		{NowUnixMs: 10, Mutations: []Mutation{{Op: OpIncrement, Key: []byte("c"), Delta: 5}}},
	}
	res := e.ApplyPacked(5, cmds)
	var pe *PreconditionError
	switch {
	case res[0].Err != nil || res[0].Mutations[0].Version != 5:
		t.Errorf("command 0 = %+v; want applied at version 5", res[0])
	case !errors.As(res[1].Err, &pe) || pe.CurrentVersion != 1:
		t.Errorf("command 1 err = %v; want a PreconditionError at version 1", res[1].Err)
	case !errors.Is(res[2].Err, ErrInvalidCommand):
		t.Errorf("command 2 err = %v; want ErrInvalidCommand (key written twice in a pack)", res[2].Err)
	case res[3].Err != nil || res[3].Mutations[0].Counter != 5:
		t.Errorf("command 3 = %+v; want counter 5", res[3])
	}
	if it, _ := e.Get([]byte("a"), 10); string(it.Value) != "1" || it.Version != 5 {
		t.Errorf("Get(a) = %q at %d; want \"1\" at 5", it.Value, it.Version)
	}
	if e.AppliedIndex() != 5 {
		t.Errorf("AppliedIndex = %d; want 5", e.AppliedIndex())
	}
	if res := e.ApplyPacked(5, cmds[:1]); !errors.Is(res[0].Err, ErrInvalidCommand) {
		t.Errorf("ApplyPacked at a used index: %v; want ErrInvalidCommand", res[0].Err)
	}
}

func FuzzDecodePack(f *testing.F) {
	f.Add(AppendPack(nil, packCmds()))
	f.Add(AppendPack(nil, packCmds()[:1]))
	f.Add([]byte{packFormat, 0})
	f.Add([]byte{packFormat, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(append([]byte{packFormat, 0x81, 0x00}, AppendPack(nil, packCmds()[:1])[2:]...)) // non-minimal count
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := DecodePack(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("DecodePack error %v does not wrap ErrInvalidCommand", err)
			}
			return
		}
		ptrs := make([]*Command, len(cmds))
		for i := range cmds {
			ptrs[i] = &cmds[i]
		}
		if again := AppendPack(nil, ptrs); !bytes.Equal(again, b) {
			t.Fatalf("accepted pack re-encodes differently:\n%x\n%x", b, again)
		}
	})
}

// TestAppendPackAllocatesOnce: AppendPack sizes its buffer exactly, in one
// allocation, instead of growing it command by command (the slack of
// append's growth would be memory a cached Raft entry holds uncounted).
func TestAppendPackAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	cmds := packCmds()
	cmds[0].Mutations[0].Value = bytes.Repeat([]byte{'v'}, 100<<10)
	want := len(AppendPack(nil, cmds))
	if n := testing.AllocsPerRun(10, func() {
		if b := AppendPack(nil, cmds); len(b) != want || cap(b) > want+8<<10 {
			t.Fatalf("AppendPack: len %d, cap %d; want len %d, cap within a page of it", len(b), cap(b), want)
		}
	}); n != 1 {
		t.Errorf("AppendPack(nil, ...): %.0f allocs; want 1", n)
	}
}
