package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
)

// recordingPolicy ranks by LastAccess (as LRU) and records the keys it saw.
type recordingPolicy struct {
	name string
	saw  []string
}

func (p *recordingPolicy) Name() string       { return p.name }
func (p *recordingPolicy) VolatileOnly() bool { return false }
func (p *recordingPolicy) Victims(_ context.Context, _ int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	idx := make([]int, len(cands))
	for i := range cands {
		idx[i] = i
		p.saw = append(p.saw, string(cands[i].Key))
	}
	slices.SortFunc(idx, func(a, b int) int { return int(cands[a].LastAccess) - int(cands[b].LastAccess) })
	return append(out, idx[:min(max, len(idx))]...), nil
}

// TestScopedPolicy: each scope's policy sees only its keys (the longest
// prefix wins), the fallback the rest, and victims come from the scopes in
// turn, the scope with the most candidates first.
func TestScopedPolicy(t *testing.T) {
	long, short, rest := &recordingPolicy{name: "long"}, &recordingPolicy{name: "short"}, &recordingPolicy{name: "rest"}
	sp := &scopedPolicy{scopes: []policyScope{{prefix: []byte("a/b/"), policy: long}, {prefix: []byte("a/"), policy: short}}, fallback: rest}
	var cands []engine.Candidate
	add := func(key string, access uint64) {
		cands = append(cands, engine.Candidate{Key: []byte(key), LastAccess: access})
	}
	for i := range 4 {
		add(fmt.Sprintf("a/x%d", i), uint64(10+i)) // short: 4 keys
	}
	for i := range 2 {
		add(fmt.Sprintf("a/b/y%d", i), uint64(20+i)) // long: 2 keys
	}
	add("z", 1) // rest: 1 key

	got, err := sp.Victims(context.Background(), 0, cands, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range long.saw {
		if !strings.HasPrefix(k, "a/b/") {
			t.Errorf("the a/b/ policy saw %q", k)
		}
	}
	for _, k := range short.saw {
		if !strings.HasPrefix(k, "a/") || strings.HasPrefix(k, "a/b/") {
			t.Errorf("the a/ policy saw %q", k)
		}
	}
	if !slices.Equal(rest.saw, []string{"z"}) {
		t.Errorf("the fallback saw %q, want only z", rest.saw)
	}
	var keys []string
	for _, i := range got {
		keys = append(keys, string(cands[i].Key))
	}
	// Round one: a/ (4 candidates), a/b/ (2), rest (1); round two: a/, a/b/.
	want := []string{"a/x0", "a/b/y0", "z", "a/x1", "a/b/y1"}
	if !slices.Equal(keys, want) {
		t.Errorf("victims %q, want %q", keys, want)
	}
	if got, _ := sp.Victims(context.Background(), 0, cands, 0, nil); len(got) != 0 {
		t.Errorf("max 0 gave %d victims", len(got))
	}
	all, _ := sp.Victims(context.Background(), 0, cands, 100, nil)
	if len(all) != len(cands) {
		t.Errorf("max 100 gave %d victims of %d candidates", len(all), len(cands))
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != len(cands) {
		t.Errorf("a victim chosen twice: %v", all)
	}
	var _ eviction.Policy = sp
}

// TestScopedCoversAll: a command is covered when every key it writes falls
// under some scope.
func TestScopedCoversAll(t *testing.T) {
	sp := &scopedPolicy{scopes: []policyScope{{prefix: []byte("cache/")}, {prefix: []byte("tmp/")}}}
	muts := func(keys ...string) []engine.Mutation {
		var out []engine.Mutation
		for _, k := range keys {
			out = append(out, engine.Mutation{Op: engine.OpPut, Key: []byte(k)})
		}
		return out
	}
	if !sp.coversAll(muts("cache/a", "tmp/b")) {
		t.Error("cache/a and tmp/b are covered")
	}
	if sp.coversAll(muts("cache/a", "user/1")) {
		t.Error("user/1 is not covered")
	}
}
