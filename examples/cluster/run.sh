#!/usr/bin/env bash
# A five-process Wisp cluster on loopback, from nothing to healed:
#   1. n1, n2 and n3 start with --bootstrap-expect 3 and create the cluster
#      together; n4 and n5 start later with only --join and take replicas;
#   2. 100 keys are written;
#   3. n5 is killed with kill -9; after --dead-node-timeout (5 s here) the
#      cluster rebuilds its replicas on the four others;
#   4. n5 is forgotten (wisp cluster remove, which succeeds only once it holds
#      no replica), the cluster is ready, and every key reads back;
#   5. everything stops, and the data (in a temporary directory) is deleted.
#
#   bash examples/cluster/run.sh
#
# Ports: API 127.0.0.1:$BASE_PORT+i, Raft +100+i, gossip +200+i for node i
# (BASE_PORT defaults to 28080; set it if those are taken). Logs go to
# $WORK/n<i>.log; KEEP=1 keeps $WORK.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE_PORT=${BASE_PORT:-28080}
WORK=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "building wispd and wisp"
go build -o "$WORK/wispd" ./cmd/wispd
go build -o "$WORK/wisp" ./cmd/wisp
wisp() { "$WORK/wisp" --endpoint "http://127.0.0.1:$BASE_PORT" "$@"; }

# start i [flags...]: node n<i> on its three ports, in the background.
start() {
  local i=$1; shift
  "$WORK/wispd" start --node-id "n$i" --data-dir "$WORK/n$i" \
    --http-addr "127.0.0.1:$((BASE_PORT + i - 1))" \
    --raft-addr "127.0.0.1:$((BASE_PORT + 100 + i - 1))" \
    --gossip-addr "127.0.0.1:$((BASE_PORT + 200 + i - 1))" \
    --dead-node-timeout 5s "$@" >"$WORK/n$i.log" 2>&1 &
  pids[$i]=$!
}
seed="127.0.0.1:$((BASE_PORT + 200))" # n1's gossip address

say "n1-n3 create the cluster (--bootstrap-expect 3)"
start 1 --bootstrap-expect 3
start 2 --bootstrap-expect 3 --join "$seed"
start 3 --bootstrap-expect 3 --join "$seed"
wisp cluster ready --wait 60s

say "n4 and n5 join (--join only): replicas move onto them"
start 4 --join "$seed"
start 5 --join "$seed"
sleep 2 # let gossip carry them to the meta leader, so ready waits for their moves
wisp cluster ready --wait 90s
wisp cluster status

say "writing 100 keys"
for i in $(seq 1 100); do wisp kv put "key-$i" "value-$i" >/dev/null; done

say "kill -9 n5"
kill -9 "${pids[5]}"
wait "${pids[5]}" 2>/dev/null || true
unset 'pids[5]'
t0=$(date +%s)

say "waiting until its replicas are rebuilt elsewhere and it can be forgotten"
for _ in $(seq 1 120); do
  if wisp cluster remove n5 2>/dev/null; then break; fi
  sleep 1
done
wisp cluster ready --wait 60s
echo "healed $(($(date +%s) - t0)) s after kill -9"
wisp cluster status

say "reading every key back"
for i in $(seq 1 100); do
  got=$(wisp kv get "key-$i")
  if [ "$got" != "value-$i" ]; then echo "key-$i = '$got', want value-$i"; exit 1; fi
done
echo "all 100 keys read back"

say "stopping"
