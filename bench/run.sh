#!/usr/bin/env bash
# Side by side: Wisp against etcd and Redis on this machine, each driven by
# its own load tool (issue 13).
#
# Builds etcd 3.7.3 (bench/etcd, in the bench/ module) and etcd's benchmark
# tool 3.6.8 (bench/etcdbench, its own module: etcd's root module has no
# 3.7 release) into bench/.bin, plus wispd and wisp from this checkout;
# installs redis-server from Debian if it is not on PATH. Then, ROUNDS times,
# in this order:
#   etcd:  a fresh 3-member cluster on loopback (fsync on, the default), its
#          idle CPU, then `benchmark put` (100 clients, to the leader; and 1
#          client) and `benchmark range --consistency=l|s` (100 clients, all
#          members), 256-byte values;
#   wisp:  a fresh `wispd dev` (3 nodes, 8 shards: the defaults), its idle
#          CPU, then `wisp bench put|get` with 100 clients on one connection,
#          auto-pipelining on (the SDK default) and off (one RPC per op),
#          linearizable and stale gets, and put with 1 client;
#   redis: a fresh redis-server (no persistence, no replication), its idle
#          CPU, then redis-benchmark SET and GET (100 clients, 256 bytes).
# Server CPU per op is the CPU the servers' processes spent during a run
# (/proc/PID/stat utime+stime; wisp bench reads the same from wispd's
# /metrics) over the ops. Idle CPU is measured after SETTLE_S seconds over
# IDLE_S seconds. The markdown table of medians goes to stdout and to OUT;
# progress goes to stderr. Everything listens on 127.0.0.1; every process
# started here is stopped on exit.
#
# Environment:
#   ROUNDS       interleaved rounds, 1 to 20 (default 3); the table shows medians
#   SHORT        1: a tenth of the ops and a 3 s idle window (for CI)
#   IDLE_S       idle-CPU window in seconds (default 10; SHORT: 3)
#   SETTLE_S     seconds after start before measuring (default 5)
#   ETCD_CONNS   gRPC connections for etcd's 100 clients (default 10)
#   PORT_BASE    first port; etcd, wispd and redis use the next 20 (default 32300)
#   OUT          results file (default bench/results/YYYY-MM-DD.md)
#   UPDATE_DOCS  1: also write the table into docs/BENCHMARKS.md, section
#                "Side by side with etcd and Redis"
set -euo pipefail
cd "$(dirname "$0")"
bench_dir=$PWD
repo_dir=$(cd .. && pwd)

rounds=${ROUNDS:-3}
short=${SHORT:-0}
settle_s=${SETTLE_S:-5}
etcd_conns=${ETCD_CONNS:-10}
port_base=${PORT_BASE:-32300}
out=${OUT:-$bench_dir/results/$(date +%F).md}
update_docs=${UPDATE_DOCS:-0}

# Ops per run: each run takes a few seconds at the rates seen here.
put_ops=20000      # put, 100 clients
put1_ops=2000      # put, 1 client
get_ops=40000      # get / range, 100 clients
redis_ops=200000   # per redis-benchmark test
idle_s=${IDLE_S:-10}
if [ "$short" = 1 ]; then
  put_ops=2000; put1_ops=200; get_ops=4000; redis_ops=20000; idle_s=${IDLE_S:-3}
fi
clients=100
value_bytes=256
keys=10000

# Bounds: every wait below has one.
max_rounds=20
start_wait_s=30    # for a server to answer its health check
run_timeout_s=600  # one load-tool run
stop_wait_s=15     # for a server to exit after SIGTERM, before SIGKILL

for v in "$rounds:ROUNDS" "$idle_s:IDLE_S" "$settle_s:SETTLE_S" "$etcd_conns:ETCD_CONNS" "$port_base:PORT_BASE"; do
  [[ "${v%%:*}" =~ ^[0-9]+$ ]] || { echo "${v#*:}=${v%%:*}: want a number" >&2; exit 2; }
done
if [ "$rounds" -lt 1 ] || [ "$rounds" -gt "$max_rounds" ]; then
  echo "ROUNDS=$rounds: want 1 to $max_rounds" >&2; exit 2
fi
if [ "$idle_s" -gt 600 ] || [ "$idle_s" -lt 1 ]; then echo "IDLE_S=$idle_s: want 1 to 600" >&2; exit 2; fi

# Ports: etcd member i (0-2) client port_base+2i, peer +1; wispd API
# port_base+10.., Raft port_base+13..; redis port_base+19.
etcd_port() { echo $((port_base + 2 * $1)); }
wisp_http_port=$((port_base + 10))
wisp_raft_port=$((port_base + 13))
redis_port=$((port_base + 19))

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

tmp=$(mktemp -d)
pids=()  # servers started by this script and still running
cleanup() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do stop_pid "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID sends SIGTERM, waits up to stop_wait_s, then SIGKILL.
stop_pid() {
  local pid=$1 keep=() p
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((stop_wait_s * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for p in ${pids[@]+"${pids[@]}"}; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=(${keep[@]+"${keep[@]}"})
}

# wait_until DESC CMD... polls CMD every 0.1 s for up to start_wait_s.
wait_until() {
  local desc=$1; shift
  for _ in $(seq $((start_wait_s * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$desc: not ready after ${start_wait_s}s"
}

# cpu_ticks PID... prints the processes' summed user + system CPU in clock ticks.
cpu_ticks() {
  local pid sum=0
  for pid in "$@"; do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$sum"
}
hz=$(getconf CLK_TCK)

# record KEY VALUE stores one measurement of this round.
record() { printf '%s %s\n' "$1" "$2" >>"$tmp/results"; }

# idle_cpu NAME PID... records the processes' CPU over idle_s as % of a core.
idle_cpu() {
  local name=$1; shift
  sleep "$settle_s"
  local t0 t1; t0=$(cpu_ticks "$@"); sleep "$idle_s"; t1=$(cpu_ticks "$@")
  local pct; pct=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$idle_s" 'BEGIN { printf "%.2f", 100 * d / hz / s }')
  log "$name idle: $pct % of a core over ${idle_s}s"
  record "$name.idle" "$pct"
}

# cpu_ms_per_op TICKS OPS prints server CPU milliseconds per op.
cpu_ms_per_op() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN { printf "%.4f", 1000 * t / hz / n }'; }

# --- builds -------------------------------------------------------------

# stale BIN SRC... succeeds if BIN is missing or older than any SRC.
stale() {
  local bin=$1; shift
  [ -x "$bin" ] || return 0
  [ -n "$(find "$@" -newer "$bin" -print -quit)" ]
}

build() {
  mkdir -p .bin
  local t0
  if stale .bin/etcd go.mod go.sum etcd; then
    log "building etcd 3.7.3 (bench/etcd)"; t0=$SECONDS
    go build -o .bin/etcd ./etcd
    log "etcd built in $((SECONDS - t0))s"
  fi
  if stale .bin/etcd-benchmark etcdbench; then
    log "building etcd's benchmark tool 3.6.8 (bench/etcdbench)"; t0=$SECONDS
    (cd etcdbench && go build -o ../.bin/etcd-benchmark .)
    log "benchmark built in $((SECONDS - t0))s"
  fi
  log "building wispd and wisp from $repo_dir"; t0=$SECONDS
  (cd "$repo_dir" && go build -o "$bench_dir/.bin/wispd" ./cmd/wispd && go build -o "$bench_dir/.bin/wisp" ./cmd/wisp)
  log "wispd and wisp built in $((SECONDS - t0))s"
}

ensure_redis() {
  if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then return; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "redis-server is not installed and this is not root: apt-get install redis-server"
    sudo=sudo
  fi
  log "installing redis-server from Debian"
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2
}

# --- etcd ---------------------------------------------------------------

etcd_pids=()
start_etcd() {
  local cluster="" i
  for i in 0 1 2; do
    cluster+="${cluster:+,}e$i=http://127.0.0.1:$(($(etcd_port $i) + 1))"
  done
  rm -rf "$tmp/etcd"
  etcd_pids=()
  for i in 0 1 2; do
    local c; c=$(etcd_port $i)
    .bin/etcd --name "e$i" --data-dir "$tmp/etcd/e$i" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$((c + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((c + 1))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token wisp-bench \
      --log-level warn >"$tmp/etcd-e$i.log" 2>&1 &
    etcd_pids+=($!); pids+=($!)
  done
  for i in 0 1 2; do
    wait_until "etcd e$i" curl -sf --max-time 1 "http://127.0.0.1:$(etcd_port $i)/health"
  done
}

stop_etcd() {
  local pid
  for pid in "${etcd_pids[@]}"; do stop_pid "$pid"; done
  etcd_pids=()
}

# etcd_bench KEY OPS ARGS... runs etcd's benchmark and records ops/s, p99
# (ms) and the 3 members' CPU per op.
etcd_bench() {
  local key=$1 ops=$2; shift 2
  log "etcd $key: benchmark $*"
  local t0 t1; t0=$(cpu_ticks "${etcd_pids[@]}")
  timeout "$run_timeout_s" .bin/etcd-benchmark "$@" >"$tmp/etcd.out" 2>&1 || { cat "$tmp/etcd.out" >&2; die "etcd benchmark failed"; }
  t1=$(cpu_ticks "${etcd_pids[@]}")
  if grep -q 'Error distribution' "$tmp/etcd.out"; then
    sed -n '/Error distribution/,$p' "$tmp/etcd.out" >&2; die "etcd benchmark $key: errors"
  fi
  local rps p99 cpu
  rps=$(awk '/Requests\/sec:/ { print $2; exit }' "$tmp/etcd.out")
  p99=$(awk '$1 == "99%" && $2 == "in" { printf "%.3f", $3 * 1000; exit }' "$tmp/etcd.out")
  cpu=$(cpu_ms_per_op $((t1 - t0)) "$ops")
  [ -n "$rps" ] || { cat "$tmp/etcd.out" >&2; die "etcd benchmark $key: no Requests/sec"; }
  log "  $rps ops/s, p99 $p99 ms, server CPU $cpu ms/op"
  record "etcd.$key.ops" "$rps"; record "etcd.$key.p99" "$p99"; record "etcd.$key.cpu" "$cpu"
}

etcd_round() {
  log "etcd: starting 3 members on 127.0.0.1:$(etcd_port 0)-$(($(etcd_port 2) + 1))"
  start_etcd
  idle_cpu etcd "${etcd_pids[@]}"
  local all value
  all="127.0.0.1:$(etcd_port 0),127.0.0.1:$(etcd_port 1),127.0.0.1:$(etcd_port 2)"
  # The key the range runs read, with a 256-byte value.
  value=$(head -c "$value_bytes" /dev/zero | tr '\0' v | base64 -w0)
  curl -sf --max-time 5 -X POST -d "{\"key\":\"$(printf bench-key | base64)\",\"value\":\"$value\"}" \
    "http://127.0.0.1:$(etcd_port 0)/v3/kv/put" >/dev/null
  local common=(--precise --conns "$etcd_conns" --clients "$clients")
  etcd_bench put "$put_ops" --endpoints "$all" --target-leader "${common[@]}" \
    put --key-size 8 --key-space-size "$keys" --val-size "$value_bytes" --total "$put_ops"
  etcd_bench put1 "$put1_ops" --endpoints "$all" --target-leader --precise --conns 1 --clients 1 \
    put --key-size 8 --key-space-size "$keys" --val-size "$value_bytes" --total "$put1_ops"
  etcd_bench getl "$get_ops" --endpoints "$all" "${common[@]}" range bench-key --consistency l --total "$get_ops"
  etcd_bench gets "$get_ops" --endpoints "$all" "${common[@]}" range bench-key --consistency s --total "$get_ops"
  stop_etcd
}

# --- wisp ---------------------------------------------------------------

wisp_pid=""
start_wisp() {
  rm -rf "$tmp/wisp"
  .bin/wispd dev --data-dir "$tmp/wisp" --http-addr "127.0.0.1:$wisp_http_port" \
    --raft-addr "127.0.0.1:$wisp_raft_port" --log-level warn >"$tmp/wispd.log" 2>&1 &
  wisp_pid=$!; pids+=($!)
  local i
  for i in 0 1 2; do
    wait_until "wispd node $((i + 1))" curl -sf --max-time 1 "http://127.0.0.1:$((wisp_http_port + i))/healthz"
  done
}

# json_field NAME FILE prints "NAME"'s value in wisp's indented JSON output.
json_field() {
  awk -v key="\"$1\":" '$1 == key { v = $2; sub(/,$/, "", v); print v; exit }' "$2"
}

# wisp_bench KEY ARGS... runs wisp bench and records ops/s, p99 (ms) and
# the server's CPU per op.
wisp_bench() {
  local key=$1; shift
  log "wisp $key: wisp $*"
  local rc=0
  timeout "$run_timeout_s" .bin/wisp --endpoint "http://127.0.0.1:$wisp_http_port" --output json "$@" \
    >"$tmp/wisp.json" 2>"$tmp/wisp.err" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$tmp/wisp.json" "$tmp/wisp.err" >&2; die "wisp bench $key exited $rc"; }
  local rps p99 cpu
  rps=$(json_field ops_per_s "$tmp/wisp.json")
  p99=$(json_field p99 "$tmp/wisp.json")
  cpu=$(json_field server_cpu_s_per_1k_ops "$tmp/wisp.json") # s per 1k ops = ms per op
  log "  $rps ops/s, p99 $p99 ms, server CPU $cpu ms/op"
  record "wisp.$key.ops" "$rps"; record "wisp.$key.p99" "$p99"; record "wisp.$key.cpu" "$cpu"
}

wisp_round() {
  log "wisp: starting wispd dev on 127.0.0.1:$wisp_http_port-$((wisp_http_port + 2))"
  start_wisp
  idle_cpu wisp "$wisp_pid"
  local c=(--clients "$clients" --conns 1 --keys "$keys" --value-size "$value_bytes")
  local ap
  for ap in true false; do
    local sfx=""; [ "$ap" = false ] && sfx=-rpc
    wisp_bench "put$sfx" bench put "${c[@]}" --ops "$put_ops" --auto-pipeline="$ap"
    wisp_bench "getl$sfx" --consistency linearizable bench get "${c[@]}" --ops "$get_ops" --auto-pipeline="$ap"
    wisp_bench "gets$sfx" --consistency stale bench get "${c[@]}" --ops "$get_ops" --auto-pipeline="$ap"
  done
  wisp_bench put1 bench put --clients 1 --conns 1 --keys "$keys" --value-size "$value_bytes" --ops "$put1_ops"
  stop_pid "$wisp_pid"; wisp_pid=""
}

# --- redis --------------------------------------------------------------

redis_bench() {
  local key=$1 test=$2
  log "redis $key: redis-benchmark -t $test -c $clients -n $redis_ops -d $value_bytes -r $keys"
  local t0 t1; t0=$(cpu_ticks "$redis_pid")
  timeout "$run_timeout_s" redis-benchmark -h 127.0.0.1 -p "$redis_port" -t "$test" -c "$clients" \
    -n "$redis_ops" -d "$value_bytes" -r "$keys" --csv >"$tmp/redis.csv" 2>"$tmp/redis.err" ||
    { cat "$tmp/redis.err" >&2; die "redis-benchmark failed"; }
  t1=$(cpu_ticks "$redis_pid")
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  local rps p99 cpu
  rps=$(awk -F'"' 'NR == 2 { print $4 }' "$tmp/redis.csv")
  p99=$(awk -F'"' 'NR == 2 { print $14 }' "$tmp/redis.csv")
  cpu=$(cpu_ms_per_op $((t1 - t0)) "$redis_ops")
  [ -n "$rps" ] || { cat "$tmp/redis.csv" >&2; die "redis-benchmark: no rps"; }
  log "  $rps ops/s, p99 $p99 ms, server CPU $cpu ms/op"
  record "redis.$key.ops" "$rps"; record "redis.$key.p99" "$p99"; record "redis.$key.cpu" "$cpu"
}

redis_pid=""
redis_round() {
  log "redis: starting redis-server on 127.0.0.1:$redis_port"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" >/dev/null 2>&1 &
  redis_pid=$!; pids+=($!)
  wait_until redis redis-cli -h 127.0.0.1 -p "$redis_port" ping
  idle_cpu redis "$redis_pid"
  redis_bench put set
  redis_bench get get
  stop_pid "$redis_pid"; redis_pid=""
}

# --- the table ----------------------------------------------------------

# med KEY prints the median of KEY's values over the rounds ("" if none).
med() {
  awk -v k="$1" '$1 == k && $2 ~ /^[0-9.eE+-]+$/ { print $2 }' "$tmp/results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.6g", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# num VALUE DECIMALS prints VALUE rounded, with thousands separators when
# DECIMALS is 0, or "n/a".
num() {
  [ -n "$1" ] || { echo n/a; return; }
  awk -v v="$1" -v d="$2" 'BEGIN {
    s = sprintf("%." d "f", v)
    if (d == 0) { t = ""; while (length(s) > 3) { t = "," substr(s, length(s) - 2) t; s = substr(s, 1, length(s) - 3) }; s = s t }
    print s }'
}

# ratio A B prints A/B as "1.23×", or n/a.
ratio() {
  if [ -z "$1" ] || [ -z "$2" ]; then echo n/a; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f×\n", a / b }'
}

# ops_cell SYS KEY prints "ops/s (CPU ms/op)".
ops_cell() { echo "$(num "$(med "$1.$2.ops")" 0) ($(num "$(med "$1.$2.cpu")" 3))"; }
# ratio_cell KEY WISPKEY prints the ops/s ratio and the CPU-per-op ratio.
ratio_cell() {
  echo "$(ratio "$(med "wisp.$2.ops")" "$(med "etcd.$1.ops")") (CPU $(ratio "$(med "wisp.$2.cpu")" "$(med "etcd.$1.cpu")"))"
}

table() {
  echo "| scenario | etcd 3.7.3, 3 members | Wisp, auto-pipelining (SDK default) | Wisp/etcd | Wisp, one RPC per op | Wisp/etcd | Redis (1 node, no fsync) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| put, 100 clients, ops/s (server CPU ms/op) | $(ops_cell etcd put) | $(ops_cell wisp put) | $(ratio_cell put put) | $(ops_cell wisp put-rpc) | $(ratio_cell put put-rpc) | $(ops_cell redis put) |"
  echo "| put, 100 clients, p99 ms | $(num "$(med etcd.put.p99)" 1) | $(num "$(med wisp.put.p99)" 1) | $(ratio "$(med wisp.put.p99)" "$(med etcd.put.p99)") | $(num "$(med wisp.put-rpc.p99)" 1) | $(ratio "$(med wisp.put-rpc.p99)" "$(med etcd.put.p99)") | $(num "$(med redis.put.p99)" 1) |"
  echo "| put, 1 client, ops/s | $(num "$(med etcd.put1.ops)" 0) | $(num "$(med wisp.put1.ops)" 0) | $(ratio "$(med wisp.put1.ops)" "$(med etcd.put1.ops)") | (same: nothing to combine) | | |"
  echo "| linearizable get, 100 clients, ops/s (CPU ms/op) | $(ops_cell etcd getl) | $(ops_cell wisp getl) | $(ratio_cell getl getl) | $(ops_cell wisp getl-rpc) | $(ratio_cell getl getl-rpc) | $(ops_cell redis get) |"
  echo "| stale get / etcd serializable range, 100 clients | $(ops_cell etcd gets) | $(ops_cell wisp gets) | $(ratio_cell gets gets) | $(ops_cell wisp gets-rpc) | $(ratio_cell gets gets-rpc) | |"
  echo "| idle CPU, 3 nodes, % of a core | $(num "$(med etcd.idle)" 1) | $(num "$(med wisp.idle)" 1) | $(ratio "$(med wisp.idle)" "$(med etcd.idle)") | | | $(num "$(med redis.idle)" 1) |"
}

report() {
  local commit
  commit=$(git -C "$repo_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$repo_dir" diff --quiet HEAD 2>/dev/null || commit+=" with local changes"
  local cmd="ROUNDS=$rounds"
  if [ "$short" = 1 ]; then cmd+=" SHORT=1"; fi
  echo "Run $(date '+%F %H:%M %Z'): \`$cmd bash bench/run.sh\`, medians of $rounds interleaved rounds"
  echo "(etcd, Wisp, Redis, each started fresh per round). $(nproc) CPUs ($(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)),"
  echo "$(go version | awk '{ print $3 }'), Wisp commit $commit, $(redis-server --version | awk '{ print $1, $2, $3 }'),"
  echo "load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  table
  echo
  echo "Ops per run: put $put_ops, put with 1 client $put1_ops, get $get_ops, Redis $redis_ops per test;"
  echo "idle CPU over ${idle_s}s, ${settle_s}s after start. Server CPU per op is the servers' processes' CPU"
  echo "during the run over its ops (all 3 etcd members; the one wispd dev process, all 3 nodes)."
}

# update_docs FILE replaces the lines between the side-by-side markers in
# docs/BENCHMARKS.md with FILE.
update_docs() {
  local doc=$repo_dir/docs/BENCHMARKS.md
  grep -q '^<!-- side-by-side:begin -->$' "$doc" || die "$doc: no <!-- side-by-side:begin --> marker"
  awk -v f="$1" '
    /^<!-- side-by-side:begin -->$/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
    /^<!-- side-by-side:end -->$/ { skip = 0 }
    !skip { print }' "$doc" >"$tmp/doc.md"
  cat "$tmp/doc.md" >"$doc"
  log "updated $doc"
}

main() {
  for tool in go curl awk base64 timeout; do
    command -v "$tool" >/dev/null || die "bench/run.sh needs $tool"
  done
  build
  ensure_redis
  : >"$tmp/results"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  local r
  for r in $(seq "$rounds"); do
    log "=== round $r of $rounds"
    etcd_round
    wisp_round
    redis_round
  done
  mkdir -p "$(dirname "$out")"
  report >"$tmp/report.md"
  cp "$tmp/report.md" "$out"
  cp "$tmp/results" "${out%.md}.raw"
  log "wrote $out (raw values: ${out%.md}.raw)"
  if [ "$update_docs" = 1 ]; then update_docs "$tmp/report.md"; fi
  cat "$tmp/report.md"
}

main
