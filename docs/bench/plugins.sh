#!/bin/bash
# Plugin benchmarks on a 3-node wispd dev cluster on loopback (docs/BENCHMARKS.md,
# "Plugins"): upload to active, put throughput with a TTL rule against none,
# restart with 3 cached modules. Run from anywhere; it builds wispd and wisp
# into a temporary directory, and uses ports 18080-18082 (and 17080-17082, 17180-17182).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(mktemp -d)
WORK=$(mktemp -d)
trap 'rm -rf "$BIN" "$WORK"' EXIT
(cd "$ROOT" && go build -o "$BIN/wispd" ./cmd/wispd && go build -o "$BIN/wisp" ./cmd/wisp) || exit 1
W="$BIN/wisp --endpoint http://127.0.0.1:18080"
cd "$WORK"
"$BIN/wispd" dev --http-addr 127.0.0.1:18080 > dev.log 2>&1 &
DEV=$!
for i in $(seq 60); do $W cluster ready >/dev/null 2>&1 && break; sleep 0.5; done
echo "== upload-to-active (3 runs: upload ttlprefix-go as new plugin, activate, wait all loaded)"
for r in 1 2 3; do
  t0=$(date +%s.%N)
  $W plugin upload "$ROOT/examples/plugins/ttlprefix-go/ttlprefix.wasm" --kind ttl --name ttl$r >/dev/null
  $W plugin activate ttl$r@1 --prefix "p$r/" >/dev/null
  until [ "$($W -o json plugin list | grep -c '"state": "loaded"')" -ge $((3*r)) ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  echo "run $r: $(echo "$t1 - $t0" | bc) s"
done
echo "== put throughput, ttl rule on all keys vs none (alternating, 3 each)"
for r in 1 2 3; do
  $W plugin deactivate ttl1 >/dev/null; $W plugin deactivate ttl2 >/dev/null; $W plugin deactivate ttl3 >/dev/null
  sleep 1
  echo -n "without: "; $W bench put --ops 20000 --clients 32 --value-size 100 2>&1 | grep -E "^throughput|server CPU" | tr '\n' ' '; echo
  $W plugin activate ttl1@1 >/dev/null  # every key
  sleep 1
  echo -n "with:    "; $W bench put --ops 20000 --clients 32 --value-size 100 2>&1 | grep -E "^throughput|server CPU" | tr '\n' ' '; echo
done
$W -o json plugin list | grep -E '"calls"|"fallbacks"|p99' | head -6
echo "== restart with 3 cached modules"
$W plugin activate ttl2@1 --prefix p2/ >/dev/null; $W plugin activate ttl3@1 --prefix p3/ >/dev/null
sleep 2
kill -INT $DEV; wait $DEV
t0=$(date +%s.%N)
"$BIN/wispd" dev --http-addr 127.0.0.1:18080 > dev2.log 2>&1 &
DEV=$!
until [ "$($W -o json plugin list 2>/dev/null | grep -c '"state": "loaded"')" -ge 9 ]; do sleep 0.05; done
t1=$(date +%s.%N)
echo "restart to 3 plugins loaded on 3 nodes: $(echo "$t1 - $t0" | bc) s"
kill -INT $DEV; wait $DEV
