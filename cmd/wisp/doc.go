// Command wisp is the command-line client for Wisp, a Raft-replicated
// key-value store. It is a thin layer over the Go client in
// github.com/wisp-db/wisp/sdk/client, and retries as that client does.
//
// Usage:
//
//	wisp [--endpoint URL] [--output text|json] [--consistency linearizable|stale] [--timeout 10s] COMMAND
//
//	wisp kv put KEY VALUE|- [--ttl 30s] [--if-version N] [--if-absent]
//	wisp kv put KEY --file PATH [--ttl 30s] [--if-version N] [--if-absent]
//	wisp kv get KEY
//	wisp kv mget KEY...
//	wisp kv del KEY [--if-version N]
//	wisp kv incr KEY [DELTA]
//	wisp kv scan [PREFIX] [--limit 50] [--start KEY] [--keys-only]
//	wisp cluster status [--replicas]
//	wisp cluster ring
//	wisp version
//	wisp bench put|get|mixed|zipf|batch [--clients 64] [--ops 20000] [--duration 0] [--value-size 256] [--keys 10000] [--conns N] [--warmup 1000] [--op-timeout 10s] [--dist uniform|zipf] [--read-ratio 0.9] [--batch-size 16] [--out FILE]
//	wisp bench plot FILE.json... [--svg OUT.svg]
//
// kv put reads the value from stdin for VALUE "-", or from the file PATH
// with --file, byte for byte and at most 64 MiB (the server's own limit,
// --max-value-bytes, is 1 MiB by default; it refuses larger values with its
// message).
//
// The endpoint defaults to $WISP_ENDPOINT, else http://127.0.0.1:8080.
// --timeout bounds a whole command, retries and all; 0 means no limit.
//
// # Output
//
// Text output is for people and simple scripts: put prints
// "OK version=N", del prints "OK deleted=true|false version=N", get prints
// the raw value and a newline, incr prints the new value, scan prints one
// "KEY<TAB>VALUE" line per key (just KEY with --keys-only), with keys and
// values raw, and cluster status and cluster ring print tables.
//
// # Cluster
//
// cluster status shows every node (reachable or not, with the shard
// replicas and leaders it holds) and one line per shard: its leader, its
// replicas ("*" marks the leader, "+" a non-voting replica, "?" one whose
// node did not answer), its key count and memory. --replicas adds one line
// per replica with its Raft state.
//
// cluster ring shows the answering node's shard map (ClusterService.ShardMap):
// per shard its share of the key space (computed locally from the shard
// count and key vnodes with shards/ring.NewKeyRing), its replicas, preferred
// and current leader; per node its replicas, preferred and current leaders;
// and the balance: max, mean and max/mean of the key shares over shards, of
// replicas over nodes (with the placement's cap ceil(1.1 × R × S / N)) and
// of preferred (cap ceil(1.1 × S / N)) and current leaders over nodes.
//
// JSON output (--output json) is one indented object per command. Keys and
// values are JSON strings when they are valid UTF-8; otherwise they are
// standard base64 and a sibling field "key_encoding" or "value_encoding"
// says "base64". "expires_at" is an RFC 3339 time in UTC, or null when the
// key has no TTL. cluster status prints the StatusResponse in the protobuf
// JSON mapping with the .proto field names. cluster ring prints the shard
// map's fields under their .proto names with what it derives: "key_share"
// per shard, "replicas", "preferred_leaders" and "leaders" counts per node,
// and "balance" with "max", "mean", "max_over_mean" and "cap" per measure.
//
// # Benchmarks
//
// bench put, get, mixed (--read-ratio gets, the rest puts), zipf (gets of
// keys drawn from a Zipf distribution; --dist zipf does the same for any
// workload) and batch (Batch calls of --batch-size puts) load the cluster
// from --clients goroutines,
// spread over --conns HTTP/2 connections (default one per 8 clients), until
// --ops ops are done or --duration has passed (10 minutes at most), after
// --warmup unmeasured ops; get first writes each of its --keys keys once.
// Each op is tried once, so that failures show: they are counted by Connect
// code, and a run with any still prints its figures but exits 1. It
// reports ops/s, latency percentiles (p50, p90, p99, p99.9, max) in ms, and
// the CPU seconds per 1,000 ops of this process (getrusage) and of the server
// (process_cpu_seconds_total from --endpoint/metrics before and after; with
// wispd dev that is the whole cluster; "n/a" if it cannot be read). For
// bench, --op-timeout bounds each op and --timeout, only if given, the whole
// command. --out writes the figures with a per-second series, which bench
// plot draws as SVG (throughput, p50 and p99 over time, latency by
// percentile). .ci/bench runs the scenarios of docs/BENCHMARKS.md.
//
// # Exit status
//
// 0 on success; 1 when the command failed, including "key not found" from
// get and a failed --if-version or --if-absent condition (the message says
// the key's current version); 2 for a usage error (bad flag or argument);
// 130 when interrupted. Errors are printed to stderr as "Error: MESSAGE".
// Retries stop early in two cases: nothing listens at the endpoint
// ("cannot reach http://127.0.0.1:8080: connection refused (is wispd
// running?)", after at most two failed connects), and a shard has no
// leader after the node's election wait (the node's reason, such as "shard
// 3 has no leader: only 1 of its 3 replicas ... are reachable", after one
// more attempt).
package main
