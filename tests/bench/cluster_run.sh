#!/usr/bin/env bash
# `make bench`, part 3: running more than one rtserver (--engine redis://, --workers).
#
#   tests/bench/cluster_run.sh BUILD_DIR
#
# rtserver against itself, in one run, on this machine's cores (shared by everything:
# the load generator, every node, Redis):
# (a) cross-node fan-out: one publisher on node A, FAN_SUBS subscribers split over nodes
#     A and B (sharing the topic through a Redis on loopback), deliveries/s, against the
#     same subscribers on one node alone. Target >= 0.8.
# (b) publish-to-delivery latency across nodes at RATE publishes/s: the publisher on A,
#     the subscriber on B; p50/p99, against the same on one node. Target p99 < 2 ms.
# (d) engine throughput: messages/s from one publisher on A to one subscriber on B,
#     window 1024 (each message crosses Redis once): a figure for sizing Redis shards.
# (c) WebSocket echo through a Lua handler, --workers 2 against --workers 1: server CPU
#     per message (supervisor and workers summed; target no more than +5%) and msgs/s
#     (with the load generator on the same cores: said as such).
# Runs are interleaved and each figure and ratio is the median of BENCH_REPEATS runs.
# Knobs (env): BENCH_REPEATS (3), BENCH_SECS (3), BENCH_WARMUP (1), BENCH_FAN_SUBS
# (10000), BENCH_RATE (10000), BENCH_ECHO_CONNS (100), BENCH_ECHO_INFLIGHT (8).
set -u -o pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$BUILD/bench
RTSERVER=$BUILD/rtserver
export RTSERVER_LUA_DIR=${RTSERVER_LUA_DIR:-$ROOT/lua}
REPEATS=${BENCH_REPEATS:-3}
SECS=${BENCH_SECS:-3}
WARMUP=${BENCH_WARMUP:-1}
FAN_SUBS=${BENCH_FAN_SUBS:-10000}
RATE=${BENCH_RATE:-10000}
ECHO_CONNS=${BENCH_ECHO_CONNS:-100}
ECHO_INFLIGHT=${BENCH_ECHO_INFLIGHT:-8}

die() { echo "bench: $*" >&2; exit 1; }
. "$HERE/lib.sh"
# start NAME CMD...: runs CMD, waits for "listening on ...:PORT"; sets PORT_NAME, PID_NAME.
start() { start_logged "$OUT/cluster_$1.log" "$@"; }
command -v redis-server >/dev/null || die "redis-server is missing (make deps-test installs it)"
mkdir -p "$OUT"
# wsload is every wsload*.c (run.sh builds the same).
build_wsload "$OUT" "$HERE"
ulimit -n "$(ulimit -Hn)"
RESULTS=$OUT/cluster_results.txt
: >"$RESULTS"

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rt-bench-cluster.XXXXXX")
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A server and its workers: the pids whose CPU counts.
pids_of() { # pids_of NAME
    local pid_var="PID_$1"
    echo "${!pid_var}$(sed -n 's/^rtserver worker [0-9]* (pid \([0-9]*\)) serving.*/,\1/p' "$OUT/cluster_$1.log" | tr -d '\n')"
}

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "PASS" : "MISS" }'; }

# settle: waits (up to 30 s) until every process here is idle for half a second, so a
# run never starts while the last one's 10,000 connections are still being torn down.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
all_ticks() {
    local p sum=0 w
    for p in "${PIDS[@]}" $(sed -n 's/^rtserver worker [0-9]* (pid \([0-9]*\)) serving.*/\1/p' "$OUT"/cluster_w*.log); do
        sum=$((sum + $(cpu_ticks "$p")))
    done
    echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)
settle() {
    local prev now
    prev=$(all_ticks)
    for _ in $(seq 60); do
        sleep 0.5
        now=$(all_ticks)
        [ $((now - prev)) -le $((CLK_TCK / 40)) ] && return 0
        prev=$now
    done
    echo "bench: servers still busy after 30 s; going on" >&2
}

declare -A RUNS
run() { # run KEY ARGS...: one wsload run; its RESULT line into RUNS[KEY]
    local key=$1
    shift
    settle
    RUNS[$key]=$(timeout 120 "$OUT/wsload" "$@" 2>>"$OUT/cluster_wsload.err" | grep '^RESULT' | tail -1)
    echo "$key ${RUNS[$key]}" >>"$RESULTS"
}
med() { # med PREFIX KEY: the median of KEY over runs PREFIX,1..REPEATS
    local r vals=()
    for ((r = 1; r <= REPEATS; r++)); do vals+=("$(field "$2" "${RUNS[$1,$r]:-}")"); done
    median "${vals[@]}"
}
med_ratio() { # med_ratio A B KEY: median over runs of A's KEY / B's KEY
    local r vals=()
    for ((r = 1; r <= REPEATS; r++)); do
        vals+=("$(ratio "$(field "$3" "${RUNS[$1,$r]:-}")" "$(field "$3" "${RUNS[$2,$r]:-}")")")
    done
    median "${vals[@]}"
}

# ---- servers --------------------------------------------------------------------------
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    --loglevel warning >"$OUT/cluster_redis.log" 2>&1 &
PIDS+=("$!")
PID_redis=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
ENGINE=redis://127.0.0.1:$RPORT
COMMON=(--port 0 --log-level warn --idle-timeout 3600 --ws-ping 0)
start nodeA "$RTSERVER" "${COMMON[@]}" --engine "$ENGINE" "$HERE/bench_app.lua"
start nodeB "$RTSERVER" "${COMMON[@]}" --engine "$ENGINE" "$HERE/bench_app.lua"
start single "$RTSERVER" "${COMMON[@]}" "$HERE/bench_app.lua"
start w1 "$RTSERVER" "${COMMON[@]}" --workers 1 "$HERE/bench_app.lua"
start w2 "$RTSERVER" "${COMMON[@]}" --workers 2 "$HERE/bench_app.lua"
sleep 0.5

echo "== cluster bench: $(nproc) cores shared by the load generator, the servers and Redis" \
     "(and whatever else runs on this machine)"
SRC_IPS=$(((FAN_SUBS + 999) / 1000))
for ((r = 1; r <= REPEATS; r++)); do
    run "fan_single,$r" fanout --port "$PORT_single" -c "$FAN_SUBS" -d "$SECS" -w "$WARMUP" \
        --src-ips "$SRC_IPS" --server-pid "$PID_single"
    run "fan_nodes,$r" fanout --port "$PORT_nodeA" --sub-ports "$PORT_nodeA,$PORT_nodeB" \
        -c "$FAN_SUBS" -d "$SECS" -w "$WARMUP" --src-ips "$SRC_IPS" \
        --server-pid "$PID_nodeA,$PID_nodeB,$PID_redis"
    printf '  fan-out run %d/%d: one node %s deliveries/s, two nodes %s deliveries/s\n' "$r" "$REPEATS" \
        "$(field deliveries_per_s "${RUNS[fan_single,$r]}")" "$(field deliveries_per_s "${RUNS[fan_nodes,$r]}")"
    run "lat_single,$r" fanout --port "$PORT_single" -c 1 --rate "$RATE" --window 4096 -d "$SECS" -w "$WARMUP"
    run "lat_nodes,$r" fanout --port "$PORT_nodeA" --sub-ports "$PORT_nodeB" -c 1 --rate "$RATE" \
        --window 4096 -d "$SECS" -w "$WARMUP"
    printf '  latency run %d/%d: one node p99 %s us, across nodes p99 %s us\n' "$r" "$REPEATS" \
        "$(field p99_us "${RUNS[lat_single,$r]}")" "$(field p99_us "${RUNS[lat_nodes,$r]}")"
    run "thru_nodes,$r" fanout --port "$PORT_nodeA" --sub-ports "$PORT_nodeB" -c 1 --window 1024 \
        -d "$SECS" -w "$WARMUP" --server-pid "$PID_redis"
    printf '  engine throughput run %d/%d: %s msgs/s A -> Redis -> B (Redis at %s%% CPU)\n' "$r" "$REPEATS" \
        "$(field deliveries_per_s "${RUNS[thru_nodes,$r]}")" "$(field server_cpu_pct "${RUNS[thru_nodes,$r]}")"
    for w in w1 w2; do
        port_var="PORT_$w"
        run "echo_$w,$r" echo --port "${!port_var}" -c "$ECHO_CONNS" -k "$ECHO_INFLIGHT" -d "$SECS" \
            -w "$WARMUP" --server-pid "$(pids_of $w)"
    done
    printf '  echo run %d/%d: --workers 1 %s msgs/s %s us CPU/msg, --workers 2 %s msgs/s %s us CPU/msg\n' \
        "$r" "$REPEATS" "$(field msgs_per_s "${RUNS[echo_w1,$r]}")" \
        "$(field server_cpu_us_per_msg "${RUNS[echo_w1,$r]}")" \
        "$(field msgs_per_s "${RUNS[echo_w2,$r]}")" "$(field server_cpu_us_per_msg "${RUNS[echo_w2,$r]}")"
done

# ---- report ---------------------------------------------------------------------------
r_fan=$(med_ratio fan_nodes fan_single deliveries_per_s)
printf '\n(a) cross-node fan-out: 1 publisher on node A -> %d subscribers, half on A, half on B\n' "$FAN_SUBS"
printf '  %-34s %12s %10s %10s %9s\n' setup deliveries/s p50_us p99_us "CPU us/d"
printf '  %-34s %12s %10s %10s %9s\n' "one node (no engine)" "$(med fan_single deliveries_per_s)" \
    "$(med fan_single p50_us)" "$(med fan_single p99_us)" "$(med fan_single server_cpu_us_per_msg)"
printf '  %-34s %12s %10s %10s %9s\n' "two nodes + Redis (CPU: all three)" "$(med fan_nodes deliveries_per_s)" \
    "$(med fan_nodes p50_us)" "$(med fan_nodes p99_us)" "$(med fan_nodes server_cpu_us_per_msg)"
printf '  deliveries/s two nodes / one node = %-6s target >= 0.80  %s\n' "$r_fan" "$(verdict "$r_fan" '>=' 0.80)"

p99=$(med lat_nodes p99_us)
p99ms=$(awk -v v="$p99" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.3f", v / 1000; else print "n/a" }')
printf '\n(b) publish-to-delivery latency at %d publishes/s, 1 subscriber\n' "$RATE"
printf '  %-34s %10s %10s %10s\n' setup p50_us p99_us max_us
printf '  %-34s %10s %10s %10s\n' "one node" "$(med lat_single p50_us)" "$(med lat_single p99_us)" "$(med lat_single max_us)"
printf '  %-34s %10s %10s %10s\n' "publisher on A, subscriber on B" "$(med lat_nodes p50_us)" "$p99" "$(med lat_nodes max_us)"
printf '  p99 across nodes = %s ms  target < 2 ms  %s\n' "$p99ms" "$(verdict "$p99ms" '<=' 2)"

printf '\n(d) engine throughput: 1 publisher on A -> Redis -> 1 subscriber on B, window 1024\n'
printf '  %s msgs/s (p50 %s us, p99 %s us); Redis CPU %s%%, %s us per message\n' \
    "$(med thru_nodes deliveries_per_s)" "$(med thru_nodes p50_us)" "$(med thru_nodes p99_us)" \
    "$(med thru_nodes server_cpu_pct)" "$(med thru_nodes server_cpu_us_per_msg)"

r_cpu=$(med_ratio echo_w2 echo_w1 server_cpu_us_per_msg)
r_rate=$(med_ratio echo_w2 echo_w1 msgs_per_s)
printf '\n(c) WebSocket echo (Lua handler), %d connections x %d in flight\n' "$ECHO_CONNS" "$ECHO_INFLIGHT"
printf '  %-34s %10s %9s %9s %10s\n' setup msgs/s p50_us p99_us "CPU us/msg"
for w in w1 w2; do
    printf '  %-34s %10s %9s %9s %10s\n' "--workers ${w#w} (supervisor + workers)" "$(med echo_$w msgs_per_s)" \
        "$(med echo_$w p50_us)" "$(med echo_$w p99_us)" "$(med echo_$w server_cpu_us_per_msg)"
done
printf '  CPU per message --workers 2 / --workers 1 = %-6s target <= 1.05  %s\n' "$r_cpu" "$(verdict "$r_cpu" '<=' 1.05)"
printf '  msgs/s --workers 2 / --workers 1 = %s (the load generator runs on the same %d cores)\n' "$r_rate" "$(nproc)"
echo "  (every run: $RESULTS)"
