package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	"github.com/wisp-db/wisp/engine/eviction"
	controlv1 "github.com/wisp-db/wisp/gen/wisp/control/v1"
	"github.com/wisp-db/wisp/plugins"
	"github.com/wisp-db/wisp/shards/meta"
	"github.com/wisp-db/wisp/shards/raftgroup"
)

// Plugins on a node: the registry is in the cluster map (meta.Plugin), the
// modules in the meta group (metastore.PutModule). With every new map the
// node works out the modules it needs (each plugin's active version, and
// its previous one, kept loaded so that a rollback is instant), fetches
// the ones it lacks (from its data directory's cache, else from the meta
// group), loads them into its wazero host and builds what the rest of the
// node uses: the eviction policy in force (pluginSet.policy) and the TTL
// rules (pluginSet.ttl). Loading runs in the background: until a module is
// loaded, the built-in decides.

// State names of a node's plugin (PluginNodeState.state).
const (
	pluginLoading  = "loading"
	pluginLoaded   = "loaded"
	pluginDegraded = "degraded"
	pluginFailed   = "failed"
)

// modulesDir is where a node caches the modules it ran, by SHA-256, so
// that a restart loads them without asking the meta group.
func (n *Node) modulesDir() string { return filepath.Join(n.cfg.DataDir, "plugins") }

// loadedModule is one module the node has loaded (or failed to).
type loadedModule struct {
	name     string
	version  int
	kind     string
	sum      string // SHA-256, hex
	evict    *plugins.Eviction
	ttlRule  *plugins.TTL
	ttl      *plugins.GuardedTTL
	err      error     // why it could not be loaded
	fetched  bool      // the module's bytes were had when it failed
	failedAt time.Time // when it failed
	guarded  atomic.Pointer[plugins.Guarded]
}

// scope is one active plugin as the node applies it: its module and the
// key prefix it covers.
type scope struct {
	prefix []byte
	mod    *loadedModule
}

// pluginSet is what the node runs: the modules loaded, by modKey, and the
// active ones of each kind, longest prefix first. Immutable once built,
// and so are its modules but for their statistics.
type pluginSet struct {
	mods     map[string]*loadedModule
	evict    []scope
	ttl      []scope
	registry []meta.Plugin // the map's registry it was built from
}

// pluginHost owns the node's wazero host and its plugin set.
type pluginHost struct {
	n    *Node
	host *plugins.Host
	set  atomic.Pointer[pluginSet]
	wake chan struct{}

	policyMu sync.Mutex
	composed eviction.Policy // the policy policy last built, for policyOf
	policyOf struct {
		builtin string
		set     *pluginSet
	}
}

// newPluginHost makes the node's plugin host; its run loop, which
// startBackground starts, closes it.
func (n *Node) newPluginHost(ctx context.Context) (*pluginHost, error) {
	h, err := plugins.NewHost(ctx, plugins.WithCompilationCacheDir(filepath.Join(n.modulesDir(), "compiled")))
	if err != nil {
		return nil, fmt.Errorf("plugin host: %w", err)
	}
	p := &pluginHost{n: n, host: h, wake: make(chan struct{}, 1)}
	p.set.Store(&pluginSet{mods: map[string]*loadedModule{}})
	return p, nil
}

// sync asks the loader to bring the plugin set in line with the current map.
func (p *pluginHost) sync() {
	if p == nil {
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run loads and unloads modules as the map asks, until ctx ends; then it
// closes every module and the host.
func (p *pluginHost) run(ctx context.Context) {
	defer p.close()
	p.sync()
	t := time.NewTicker(degradedCheck)
	defer t.Stop()
	degraded := map[string]bool{} // by name@version
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.logDegraded(degraded)
			if !p.set.Load().failed() {
				continue
			}
			// A module that could not be fetched or loaded is tried again.
		case <-p.wake:
		}
		if p.reload(ctx) {
			p.n.refreshMemory() // the eviction policy in force may have changed
		}
	}
}

// degradedCheck is how often the loader looks for plugins that became
// degraded or recovered, to log it.
const degradedCheck = 2 * time.Second

// logDegraded logs the plugins that became degraded, or recovered, since
// the last look (was: their state then, by name@version).
func (p *pluginHost) logDegraded(was map[string]bool) {
	for _, st := range p.states() {
		id := fmt.Sprintf("%s@%d", st.name, st.version)
		now := st.state == pluginDegraded
		switch {
		case now && !was[id]:
			p.n.log.Warn("plugin degraded: most of its recent calls failed; the built-in decides when it fails", "plugin", id, "calls", st.calls, "fallbacks", st.fallbacks, "last_error", st.lastError)
		case !now && was[id]:
			p.n.log.Info("plugin recovered", "plugin", id, "calls", st.calls, "fallbacks", st.fallbacks)
		}
		was[id] = now
	}
}

// reload builds the plugin set the current map asks for, reusing the
// modules already loaded; it reports whether the set changed.
func (p *pluginHost) reload(ctx context.Context) bool {
	m := p.n.view().m
	old := p.set.Load()
	if slices.EqualFunc(old.registry, m.Plugins, samePlugin) && !old.failed() {
		return false
	}
	next := &pluginSet{mods: map[string]*loadedModule{}, registry: m.Plugins}
	for _, pl := range m.Plugins {
		for _, v := range []int{pl.Active, pl.Previous} {
			pv, ok := pl.Version(v)
			if v == 0 || !ok {
				continue
			}
			key := modKey(pl.Name, pv)
			mod := old.mods[key]
			if mod == nil || mod.retry() {
				mod = p.load(ctx, pl, pv)
				if ctx.Err() != nil {
					return false
				}
			}
			next.mods[key] = mod
		}
		if pl.Active == 0 {
			continue
		}
		pv, _ := pl.Version(pl.Active)
		sc := scope{prefix: []byte(pl.Prefix), mod: next.mods[modKey(pl.Name, pv)]}
		switch pl.Kind {
		case meta.PluginEviction:
			next.evict = append(next.evict, sc)
		case meta.PluginTTL:
			next.ttl = append(next.ttl, sc)
		}
	}
	longestFirst := func(a, b scope) int { return len(b.prefix) - len(a.prefix) }
	slices.SortStableFunc(next.evict, longestFirst)
	slices.SortStableFunc(next.ttl, longestFirst)
	p.set.Store(next)
	for key, mod := range old.mods {
		if next.mods[key] != mod {
			mod.close()
		}
	}
	return true
}

// modKey names a loaded module in a pluginSet: one plugin's version, with
// its module. A module is loaded once per name and version that use it, so
// that each keeps its own statistics.
func modKey(name string, pv meta.PluginVersion) string {
	return fmt.Sprintf("%s@%d/%s", name, pv.Version, pv.SHA256)
}

func samePlugin(a, b meta.Plugin) bool {
	return a.Name == b.Name && a.Active == b.Active && a.Previous == b.Previous && a.Prefix == b.Prefix && slices.Equal(a.Versions, b.Versions)
}

// failed reports whether a module of the set is to be tried again: one
// that could not be fetched, at once; one that was fetched and failed to
// load (likely to fail the same way, but a self-test may have timed out
// on a loaded machine) after loadRetry.
func (s *pluginSet) failed() bool {
	for _, m := range s.mods {
		if m.retry() {
			return true
		}
	}
	return false
}

// loadRetry is how long a module that failed to load waits to be tried
// again.
const loadRetry = time.Minute

func (m *loadedModule) retry() bool {
	return m.err != nil && (!m.fetched || time.Since(m.failedAt) > loadRetry)
}

// load fetches and loads one module. A module that cannot be loaded is
// kept with its error: status shows it, and the built-in decides.
func (p *pluginHost) load(ctx context.Context, pl meta.Plugin, pv meta.PluginVersion) *loadedModule {
	mod := &loadedModule{name: pl.Name, version: pv.Version, kind: pl.Kind, sum: pv.SHA256}
	wasm, err := p.fetch(ctx, pv.SHA256)
	if err != nil {
		mod.err, mod.failedAt = err, time.Now()
		p.n.log.Warn("plugin module not available", "plugin", pl.Name, "version", pv.Version, "err", err)
		return mod
	}
	mod.fetched = true
	name := fmt.Sprintf("%s@%d", pl.Name, pv.Version)
	switch pl.Kind {
	case meta.PluginEviction:
		mod.evict, err = p.host.LoadEviction(ctx, wasm, plugins.WithName(name))
	case meta.PluginTTL:
		if mod.ttlRule, err = p.host.LoadTTL(ctx, wasm, plugins.WithName(name)); err == nil {
			mod.ttl = plugins.NewGuardedTTL(mod.ttlRule)
		}
	default:
		err = fmt.Errorf("unknown plugin kind %q", pl.Kind)
	}
	if err != nil {
		mod.err, mod.failedAt = err, time.Now()
		p.n.log.Error("plugin could not be loaded: the built-in policy decides", "plugin", name, "err", err)
		return mod
	}
	p.n.log.Info("plugin loaded", "plugin", name, "kind", pl.Kind)
	return mod
}

// fetchTimeout bounds fetching a module from the meta group.
const fetchTimeout = 30 * time.Second

// fetch returns the module with SHA-256 sum (hex): from the node's cache,
// else from its own meta replica, else from the meta group's members.
func (p *pluginHost) fetch(ctx context.Context, sum string) ([]byte, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha256.Size {
		return nil, fmt.Errorf("module sum %q: not a SHA-256", sum)
	}
	want := [sha256.Size]byte(raw)
	path := filepath.Join(p.n.modulesDir(), sum+".wasm")
	if b, err := os.ReadFile(path); err == nil && sha256.Sum256(b) == want {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	wasm, err := p.n.moduleFromMeta(ctx, want)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, wasm); err != nil {
		p.n.log.Warn("cannot cache a plugin module", "path", path, "err", err)
	}
	return wasm, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so that a crash leaves the old file or the new one.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (m *loadedModule) close() {
	if m.evict != nil {
		m.evict.Close()
	}
	if m.ttlRule != nil {
		m.ttlRule.Close()
	}
}

func (p *pluginHost) close() {
	for _, mod := range p.set.Load().mods {
		mod.close()
	}
	p.host.Close(context.Background())
}

// policy returns the eviction policy in force given the built-in one:
// builtin itself without active eviction plugins; else the plugins, each
// over the keys of its prefix, guarded by builtin (which decides when a
// plugin fails or is not loaded), and builtin over the other keys. The same
// inputs give the same policy, so that shard evictors keep their pools.
func (p *pluginHost) policy(builtin eviction.Policy) eviction.Policy {
	if p == nil {
		return builtin
	}
	set := p.set.Load()
	if len(set.evict) == 0 {
		return builtin
	}
	p.policyMu.Lock()
	defer p.policyMu.Unlock()
	if p.composed != nil && p.policyOf.builtin == builtin.Name() && p.policyOf.set == set {
		return p.composed
	}
	sp := &scopedPolicy{fallback: builtin}
	for _, sc := range set.evict {
		var pol eviction.Policy = builtin
		if sc.mod != nil && sc.mod.evict != nil {
			g := plugins.NewGuarded(sc.mod.evict, builtin)
			sc.mod.guarded.Store(g)
			pol = g
		}
		sp.scopes = append(sp.scopes, policyScope{prefix: sc.prefix, policy: pol})
	}
	p.composed = sp
	p.policyOf.builtin, p.policyOf.set = builtin.Name(), set
	return sp
}

// ttlFor returns set's TTL rule for key, nil if none applies.
func (set *pluginSet) ttlFor(key []byte) *plugins.GuardedTTL {
	for _, sc := range set.ttl {
		if bytes.HasPrefix(key, sc.prefix) {
			if sc.mod == nil {
				return nil
			}
			return sc.mod.ttl // nil if it failed to load: the client's TTL stands
		}
	}
	return nil
}

// applyTTLRules sets the TTL of each put in muts that a TTL rule covers,
// as the rule answers (the client's TTL if the rule fails). The leader
// does it before proposing, so replicas see the result, never the rule.
// Each rule is asked once for all the puts of the command it covers (in
// batches of what one call takes: plugins.TTLBatchLen).
func (p *pluginHost) applyTTLRules(ctx context.Context, muts []engine.Mutation, nowUnixMs int64) {
	if p == nil {
		return
	}
	set := p.set.Load()
	if len(set.ttl) == 0 {
		return
	}
	type batch struct {
		idx    []int
		writes []plugins.TTLWrite
	}
	var batches map[*plugins.GuardedTTL]*batch
	for i := range muts {
		m := &muts[i]
		if m.Op != engine.OpPut {
			continue
		}
		rule := set.ttlFor(m.Key)
		if rule == nil {
			continue
		}
		if batches == nil {
			batches = map[*plugins.GuardedTTL]*batch{}
		}
		b := batches[rule]
		if b == nil {
			b = &batch{}
			batches[rule] = b
		}
		b.idx = append(b.idx, i)
		b.writes = append(b.writes, plugins.TTLWrite{Key: m.Key, ValueLen: len(m.Value), RequestedTTLMs: m.TTLMs})
	}
	var out []int64
	for rule, b := range batches {
		for done := 0; done < len(b.writes); {
			n := plugins.TTLBatchLen(b.writes[done:])
			out, _ = rule.TTLs(ctx, nowUnixMs, b.writes[done:done+n], out[:0]) // the clients' TTLs if it fails
			for j, ttl := range out {
				muts[b.idx[done+j]].TTLMs = ttl
			}
			done += n
		}
	}
}

// states reports the modules of the node's plugin set, by name, newest
// version first. A set holds every version its map asks for, loaded or
// failed; a version a newer map asks for is not in it yet (ListPlugins
// reports it as loading).
func (p *pluginHost) states() []pluginState {
	set := p.set.Load()
	var out []pluginState
	for _, mod := range set.mods {
		st := pluginState{name: mod.name, version: mod.version, sum: mod.sum, state: pluginLoaded}
		var stats plugins.Stats
		switch {
		case mod.err != nil:
			st.state, st.lastError = pluginFailed, mod.err.Error()
		case mod.ttl != nil:
			stats = mod.ttl.Stats()
		default:
			if g := mod.guarded.Load(); g != nil {
				stats = g.Stats()
			}
		}
		if stats.Degraded {
			st.state = pluginDegraded
		}
		if st.lastError == "" {
			st.lastError = stats.LastError
		}
		st.calls, st.fallbacks, st.p99 = stats.Calls, stats.Fallbacks, stats.CallP99
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].version > out[j].version
	})
	return out
}

// pluginState is one module's state on a node.
type pluginState struct {
	name      string
	version   int
	sum       string
	state     string
	lastError string
	calls     uint64
	fallbacks uint64
	p99       time.Duration
}

// scopedPolicy is an eviction policy made of others, each over the keys
// under its prefix (the longest that matches), and a fallback over the
// rest. Each ranks its own candidates; the victims are taken from the
// scopes in turn, one from each that has any left, starting with the
// scope with the most candidates, so that every scope gives up keys in
// proportion to what it holds rather than one emptying first.
type scopedPolicy struct {
	scopes   []policyScope // longest prefix first
	fallback eviction.Policy
}

type policyScope struct {
	prefix []byte
	policy eviction.Policy
}

func (s *scopedPolicy) Name() string {
	names := make([]string, 0, len(s.scopes)+1)
	for _, sc := range s.scopes {
		if len(sc.prefix) == 0 {
			names = append(names, sc.policy.Name())
		} else {
			names = append(names, fmt.Sprintf("%s for %q", sc.policy.Name(), sc.prefix))
		}
	}
	if len(s.scopes[len(s.scopes)-1].prefix) != 0 {
		names = append(names, s.fallback.Name()+" elsewhere")
	}
	return strings.Join(names, ", ")
}

// scopeOf returns the index of the scope key falls in (the longest
// matching prefix: scopes are sorted so), len(s.scopes) for the fallback's.
func (s *scopedPolicy) scopeOf(key []byte) int {
	for j, sc := range s.scopes {
		if bytes.HasPrefix(key, sc.prefix) {
			return j
		}
	}
	return len(s.scopes)
}

// coversAll reports whether a scope covers every key muts writes.
func (s *scopedPolicy) coversAll(muts []engine.Mutation) bool {
	for _, m := range muts {
		if s.scopeOf(m.Key) == len(s.scopes) {
			return false
		}
	}
	return true
}

// VolatileOnly is false: plugins see every key.
func (s *scopedPolicy) VolatileOnly() bool { return false }

func (s *scopedPolicy) Victims(ctx context.Context, nowUnixMs int64, cands []engine.Candidate, max int, out []int) ([]int, error) {
	if max <= 0 || len(cands) == 0 {
		return out, nil
	}
	// Partition the candidates by scope (len(s.scopes): the fallback's).
	parts := make([][]int, len(s.scopes)+1)
	for i := range cands {
		k := s.scopeOf(cands[i].Key)
		parts[k] = append(parts[k], i)
	}
	ranked := make([][]int, len(parts))
	sub := make([]engine.Candidate, 0, len(cands))
	for k, idx := range parts {
		if len(idx) == 0 {
			continue
		}
		pol := s.fallback
		if k < len(s.scopes) {
			pol = s.scopes[k].policy
		}
		sub = sub[:0]
		for _, i := range idx {
			sub = append(sub, cands[i])
		}
		v, err := pol.Victims(ctx, nowUnixMs, sub, min(max, len(sub)), nil)
		if err != nil {
			return out, fmt.Errorf("eviction policy %s: %w", pol.Name(), err)
		}
		for j, i := range v {
			v[j] = idx[i]
		}
		ranked[k] = v
	}
	order := make([]int, 0, len(ranked))
	for k := range ranked {
		if len(ranked[k]) > 0 {
			order = append(order, k)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(parts[b]) - len(parts[a]) })
	for taken := 0; taken < max; {
		progress := false
		for _, k := range order {
			if len(ranked[k]) == 0 || taken == max {
				continue
			}
			out = append(out, ranked[k][0])
			ranked[k] = ranked[k][1:]
			taken++
			progress = true
		}
		if !progress {
			break
		}
	}
	return out, nil
}

// moduleFromMeta fetches a module from the meta group: this node's own
// replica if it has one and the module, else each member in turn (those
// without a meta replica answer NOT_FOUND).
func (n *Node) moduleFromMeta(ctx context.Context, sum [sha256.Size]byte) ([]byte, error) {
	if mr := n.metaGroup(); mr != nil {
		if b, err := mr.store.Module(ctx, raftgroup.Stale, sum); err == nil {
			return b, nil
		}
	}
	var errs []error
	for _, nd := range n.view().m.Nodes {
		if nd.ID == n.cfg.ID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, controlCallTimeout)
		res, err := n.ctl.client(nd.RaftAddr).Module(cctx, connect.NewRequest(&controlv1.ModuleRequest{Sha256: hex.EncodeToString(sum[:])}))
		cancel()
		if err == nil {
			if sha256.Sum256(res.Msg.Module) == sum {
				return res.Msg.Module, nil
			}
			err = errors.New("answered other bytes")
		}
		errs = append(errs, fmt.Errorf("%s: %w", nd.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("module %x: no member of the meta group gave it: %w", sum[:6], errors.Join(errs...))
}
