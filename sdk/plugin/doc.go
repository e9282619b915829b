/*
Package plugin is the Go guest SDK for Wisp plugins: a plugin author writes
one Go function over decoded candidates, and this package exports what the
host calls (the ABI of docs/PLUGINS.md, laid out by package plugins/abi) and
does the decoding and encoding around it.

A plugin is a main package built for WASI as a reactor:

	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o lru.wasm .

It registers its function from an init function, since a c-shared module's
main never runs:

	func init() { plugin.HandleEviction(lru) }

	func lru(in *plugin.EvictionInput, victims []int) []int {
		// append to victims the indexes into in.Candidates to evict,
		// best first, at most in.VictimsMax of them
	}

	func main() {}

A ttl plugin registers a TTLFunc the same way (HandleTTL): it returns the
TTL of one write, in milliseconds, 0 for none, or KeepRequestedTTL. It has
no randomness: derive jitter from a hash of the key. The host asks for a
batch of writes per call (up to 1,024); the SDK calls the function for each
of them, in order, and answers them all at once. One answer out of range
fails the whole batch.

The module then exports memory, _initialize, wisp_abi_version,
wisp_allocate, wisp_free, wisp_evict and wisp_ttl (a kind without a
handler answers abi.CodeNoHandler, so the host refuses to load the module
as that kind). Only the file with the exports is
built for wasip1; the rest builds everywhere, so a plugin's function is an
ordinary Go function that its tests call natively.

# What a guest may do

The host hands in the time (EvictionInput.NowUnixMs) and nothing else: no
files, network, clock or randomness. The WASI functions the Go runtime needs
at start-up are stubbed deterministically (the clock reads the decision's
time, random bytes are a fixed sequence); see plugins/RATIONALE.md. A call
has a deadline (100 ms by default) and memory is capped (64 MiB by
default): a function that loops, recurses without end, panics or allocates
without bound fails that call, and the host falls back to its built-in
policy. Output is checked: naming a victim twice, an index that is not a
candidate's, or more than VictimsMax victims fails the call too.

Handlers are called one at a time per module instance; the host may run
several instances of a module at once, each with its own memory, so package
state is per instance and must not be relied on across calls.

The SDK mirrors ABI version abi.Version and changes only together with the
host.
*/
package plugin
