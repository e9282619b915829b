package plugins

import (
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/wisp-db/wisp/engine/eviction"
)

// Defaults of a Host.
const (
	// DefaultModuleSizeBytesMax bounds an uploaded module: 8 MiB. A Go
	// guest built with the SDK is about 2.7 MB.
	DefaultModuleSizeBytesMax = 8 << 20
	// DefaultMemoryLimitPages caps each instance's memory at 1,024 pages of
	// 64 KiB: 64 MiB. Measured: a Go guest needs 48 pages (3 MiB) to
	// initialise its runtime, and the test LRU plugin settles at 72 pages
	// (4.5 MiB) deciding 4,096 candidates; Go grows its heap 4 MiB at a
	// time. See RATIONALE.md, "Why 64 MiB per instance?".
	DefaultMemoryLimitPages = 1024
	// memoryLimitPagesMax keeps guest addresses below 2 GiB, which the ABI
	// relies on (abi.PackResult).
	memoryLimitPagesMax = 32768
	// DefaultCallTimeout bounds one call: 100 ms, two orders of magnitude
	// above a 4,096-candidate decision of a Go guest.
	DefaultCallTimeout = 100 * time.Millisecond
	// DefaultInstancesMax bounds the instances of one plugin, and so its
	// concurrent calls: 2, the cores of the machines Wisp runs on here.
	// Each instance may use up to the memory limit.
	DefaultInstancesMax = 2
)

// instantiateTimeout bounds creating an instance (running a Go guest's
// runtime initialisation), within the caller's deadline: a Go guest takes a
// few milliseconds, but more than a second under -race on a loaded 2-core
// machine (CI). It bounds loading, never a call.
const instantiateTimeout = 10 * time.Second

// compiledIdleMax bounds the compiled modules a Host keeps while no plugin
// uses them, so that loading a module again (a rollback, a reactivation)
// does not compile it again. Each holds a module's machine code, a few MB
// for a Go guest.
const compiledIdleMax = 4

// config is a Host's settings.
type config struct {
	moduleSizeBytesMax int
	memoryLimitPages   uint32
	callTimeout        time.Duration
	instancesMax       int
	cacheDir           string
}

func defaultConfig() config {
	return config{
		moduleSizeBytesMax: DefaultModuleSizeBytesMax,
		memoryLimitPages:   DefaultMemoryLimitPages,
		callTimeout:        DefaultCallTimeout,
		instancesMax:       DefaultInstancesMax,
	}
}

func (c *config) check() error {
	if c.memoryLimitPages > memoryLimitPagesMax {
		return fmt.Errorf("plugins: memory limit of %d pages is above the %d the ABI allows", c.memoryLimitPages, memoryLimitPagesMax)
	}
	return nil
}

// Option configures a Host.
type Option func(*config)

// WithCompilationCacheDir keeps compiled modules in dir too (wazero's
// file cache, keyed by the module's bytes and wazero's version), so that a
// host made again, such as after a node's restart, loads a module it has
// compiled before without compiling it again (a Go guest takes about half
// a second). Default: in memory only.
func WithCompilationCacheDir(dir string) Option {
	return func(c *config) { c.cacheDir = dir }
}

// WithModuleSizeBytesMax bounds the size of a module LoadEviction accepts
// (default DefaultModuleSizeBytesMax, 8 MiB; n <= 0 keeps the default).
func WithModuleSizeBytesMax(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.moduleSizeBytesMax = n
		}
	}
}

// WithMemoryLimitPages caps each instance's linear memory at pages of 64
// KiB (default DefaultMemoryLimitPages, 64 MiB; 0 keeps the default; at
// most 32,768, 2 GiB, or NewHost fails). A guest that grows past it sees
// memory.grow fail; a Go guest then dies of "out of memory", which fails
// the call.
func WithMemoryLimitPages(pages uint32) Option {
	return func(c *config) {
		if pages > 0 {
			c.memoryLimitPages = pages
		}
	}
}

// WithCallTimeout bounds each call into a guest (default
// DefaultCallTimeout, 100 ms; d <= 0 keeps the default). A call also ends at
// its context's deadline, if that comes first.
func WithCallTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.callTimeout = d
		}
	}
}

// WithInstancesMax bounds the instances of each loaded plugin, and so its
// concurrent calls; more callers wait for a free instance (default
// DefaultInstancesMax, 2; n <= 0 keeps the default).
func WithInstancesMax(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.instancesMax = n
		}
	}
}

// LoadOption configures one loaded plugin (LoadEviction, LoadTTL).
type LoadOption func(*loadConfig)

// loadConfig is one plugin's settings.
type loadConfig struct {
	name string
}

// nameSumDigits is the number of hex digits of a module's SHA-256 in its
// default name.
const nameSumDigits = 12

// WithName names the plugin: its Name, which logs, stats and the node's
// settings use (the registry's name for it, say). Default: "wasm:" and the
// first 12 hex digits of the module's SHA-256; an empty name keeps the
// default. The built-in eviction policies' names (eviction.Names) are
// refused, so that a plugin is never taken for one.
func WithName(name string) LoadOption {
	return func(c *loadConfig) {
		if name != "" {
			c.name = name
		}
	}
}

func newLoadConfig(wasm []byte, opts []LoadOption) (loadConfig, error) {
	sum := moduleSum(wasm)
	c := loadConfig{name: "wasm:" + hex.EncodeToString(sum[:])[:nameSumDigits]}
	for _, o := range opts {
		o(&c)
	}
	if slices.Contains(eviction.Names(), c.name) {
		return c, fmt.Errorf("plugins: name %q is a built-in eviction policy's", c.name)
	}
	return c, nil
}
