// Command wisp is the command-line client for Wisp, a Raft-replicated
// key-value store. It is a thin layer over the Go client in
// github.com/wisp-db/wisp/sdk/client, and retries as that client does.
//
// Usage:
//
//	wisp [--endpoint URL] [--output text|json] [--consistency linearizable|stale] [--timeout 10s] COMMAND
//
//	wisp kv put KEY VALUE [--ttl 30s] [--if-version N] [--if-absent]
//	wisp kv get KEY
//	wisp kv del KEY [--if-version N]
//	wisp kv incr KEY [DELTA]
//	wisp kv scan [PREFIX] [--limit 50] [--start KEY] [--keys-only]
//	wisp cluster status
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
// values raw, and cluster status prints tables.
//
// JSON output (--output json) is one indented object per command. Keys and
// values are JSON strings when they are valid UTF-8; otherwise they are
// standard base64 and a sibling field "key_encoding" or "value_encoding"
// says "base64". "expires_at" is an RFC 3339 time in UTC, or null when the
// key has no TTL. cluster status prints the StatusResponse in the protobuf
// JSON mapping with the .proto field names.
//
// # Exit status
//
// 0 on success; 1 when the command failed, including "key not found" from
// get and a failed --if-version or --if-absent condition (the message says
// the key's current version); 2 for a usage error (bad flag or argument);
// 130 when interrupted. Errors are printed to stderr as "Error: MESSAGE".
package main
