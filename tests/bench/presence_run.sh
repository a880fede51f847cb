#!/usr/bin/env bash
# `make bench`, presence (rt.presence across nodes; BENCH_ONLY must name "presence" when
# set): SUBS idle WebSocket subscribers of one topic, half on node A and half on node B,
# sharing a private Redis on loopback. Each run starts Redis and both nodes afresh, once
# with presence on the topic and once without (the baseline, same subscribers), and
# measures:
#  - Redis memory: INFO memory used_memory before the subscribers and once they are all
#    in (and, with presence, once both nodes count all of them);
#  - the joins: Redis commands from the first subscriber to the last one counted;
#  - the refresh: Redis commands/s (INFO stats total_commands_processed) and the CPU of
#    Redis and both nodes over WINDOW seconds of idle subscribers, with a TTL of TTL
#    seconds (one refresh round every TTL/3 per node); divided by the rounds in the
#    window, the cost of one round.
# Figures are medians over BENCH_REPEATS runs. Knobs (env): BENCH_REPEATS (3),
# BENCH_PRESENCE_SUBS (10000), BENCH_PRESENCE_TTL (3), BENCH_PRESENCE_WINDOW (9).
set -u -o pipefail

case " ${BENCH_ONLY:-presence} " in *" presence "*) ;; *) exit 0 ;; esac
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$BUILD/bench
RTSERVER=$BUILD/rtserver
export RTSERVER_LUA_DIR=${RTSERVER_LUA_DIR:-$ROOT/lua}
REPEATS=${BENCH_REPEATS:-3}
SUBS=${BENCH_PRESENCE_SUBS:-10000}
TTL=${BENCH_PRESENCE_TTL:-3}
WINDOW=${BENCH_PRESENCE_WINDOW:-9}

die() { echo "bench: $*" >&2; exit 1; }
. "$HERE/lib.sh"
command -v redis-server >/dev/null || die "redis-server is missing (make deps-test installs it)"
mkdir -p "$OUT"
build_wsload "$OUT" "$HERE"
ulimit -n "$(ulimit -Hn)"
RESULTS=$OUT/presence_results.txt
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rt-bench-presence.XXXXXX")
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
rinfo() { redis-cli -p "$RPORT" info "$1" | tr -d '\r' | sed -n "s/^$2://p"; }

# node NAME PRESENCE: starts a node on the Redis; sets PORT_NAME and PID_NAME.
node() {
    local name=$1 log=$TMP/$1.log port="" pid
    PRESENCE=$2 PRESENCE_TTL=$TTL "$RTSERVER" --port 0 --log-level warn --idle-timeout 3600 \
        --ws-ping 0 --engine "redis://127.0.0.1:$RPORT" "$HERE/presence_app.lua" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n 's/^rtserver listening on .*:\([0-9][0-9]*\)\/.*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || die "node $name did not start: $(cat "$log")"
    printf -v "PORT_$name" %s "$port"
    printf -v "PID_$name" %s "$pid"
}

# hold PORT N IP_BASE: N idle subscribers until killed; waits for READY.
hold() {
    local log=$TMP/hold.$1.log
    "$OUT/wsload" idle --port "$1" --path /room -c "$2" --src-ips "$(((($2) + 999) / 1000))" >"$log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 600); do grep -q '^READY' "$log" && return 0; sleep 0.1; done
    die "subscribers did not connect: $(tail -3 "$log")"
}

declare -A R
one_run() { # one_run KEY PRESENCE
    local key=$1 presence=$2 half=$((SUBS / 2)) before after c0 c1 t0 t1 count=""
    RPORT=$(free_port)
    redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
        --loglevel warning >"$TMP/redis.log" 2>&1 &
    PIDS+=("$!")
    local rpid=$!
    for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    node A "$presence"
    node B "$presence"
    sleep 0.5
    before=$(rinfo memory used_memory)
    local j0 j1
    j0=$(rinfo stats total_commands_processed)
    hold "$PORT_A" "$half"
    hold "$PORT_B" "$((SUBS - half))"
    if [ "$presence" = 1 ]; then
        for _ in $(seq 300); do
            count=$(curl -s "http://127.0.0.1:$PORT_A/count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
            [ "$count" = "$SUBS" ] && break
            sleep 0.1
        done
    fi
    sleep 1
    after=$(rinfo memory used_memory)
    j1=$(rinfo stats total_commands_processed)
    c0=$j1
    t0=$(($(ticks "$rpid") + $(ticks "$PID_A") + $(ticks "$PID_B")))
    local r0=$(ticks "$rpid")
    sleep "$WINDOW"
    c1=$(rinfo stats total_commands_processed)
    t1=$(($(ticks "$rpid") + $(ticks "$PID_A") + $(ticks "$PID_B")))
    local r1=$(ticks "$rpid")
    stop_all
    R[$key]="mem_before=$before mem_after=$after mem_delta=$((after - before)) count=${count:-n/a} join_cmds=$((j1 - j0)) \
cmds_per_s=$(awk -v a="$c0" -v b="$c1" -v w="$WINDOW" 'BEGIN { printf "%.1f", (b - a) / w }') \
cpu_ms=$(awk -v t="$((t1 - t0))" -v h="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1000 / h }') \
redis_cpu_ms=$(awk -v t="$((r1 - r0))" -v h="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1000 / h }')"
    echo "$key ${R[$key]}" >>"$RESULTS"
}
med() { local r v=(); for ((r = 1; r <= REPEATS; r++)); do v+=("$(field "$2" "${R[$1,$r]:-}")"); done; median "${v[@]}"; }

echo "== presence bench: $SUBS subscribers over 2 nodes + Redis, TTL $TTL s, $(nproc) cores" \
     "shared with whatever else runs here"
for ((r = 1; r <= REPEATS; r++)); do
    one_run "off,$r" 0
    one_run "on,$r" 1
    printf '  run %d/%d: Redis memory +%s B (presence off), +%s B (on; count %s); commands/s %s vs %s\n' \
        "$r" "$REPEATS" "$(field mem_delta "${R[off,$r]}")" "$(field mem_delta "${R[on,$r]}")" \
        "$(field count "${R[on,$r]}")" "$(field cmds_per_s "${R[off,$r]}")" "$(field cmds_per_s "${R[on,$r]}")"
done

rounds=$(awk -v w="$WINDOW" -v t="$TTL" 'BEGIN { printf "%.1f", 2 * w / (t / 3) }')  # both nodes
mem_on=$(med on mem_delta) mem_off=$(med off mem_delta)
printf '\n(presence) %d idle subscribers of one topic over 2 nodes, TTL %s s (medians of %d runs)\n' \
    "$SUBS" "$TTL" "$REPEATS"
printf '  %-28s %14s %14s %14s\n' "" "presence off" "presence on" "on / off"
printf '  %-28s %14s %14s %14s\n' "Redis used_memory after, B" "$(med off mem_after)" "$(med on mem_after)" \
    "$(ratio "$(med on mem_after)" "$(med off mem_after)")"
printf '  %-28s %14s %14s %14s\n' "  added by the subscribers" "$mem_off" "$mem_on" "$(ratio "$mem_on" "$mem_off")"
printf '  %-28s %14s %14s\n' "  per subscriber, B" "$(awk -v m="$mem_off" -v n="$SUBS" 'BEGIN { printf "%.1f", m / n }')" \
    "$(awk -v m="$mem_on" -v n="$SUBS" 'BEGIN { printf "%.1f", m / n }')"
printf '  %-28s %14s %14s\n' "Redis commands, all joining" "$(med off join_cmds)" "$(med on join_cmds)"
printf '  %-28s %14s %14s %14s\n' "Redis commands/s, idle" "$(med off cmds_per_s)" "$(med on cmds_per_s)" \
    "$(ratio "$(med on cmds_per_s)" "$(med off cmds_per_s)")"
printf '  %-28s %14s %14s\n' "CPU ms in ${WINDOW} s (Redis+A+B)" "$(med off cpu_ms)" "$(med on cpu_ms)"
printf '  %-28s %14s %14s\n' "  of which Redis" "$(med off redis_cpu_ms)" "$(med on redis_cpu_ms)"
printf '  refresh rounds in the window: %s (each node every TTL/3); per round: %s commands\n' "$rounds" \
    "$(awk -v on="$(med on cmds_per_s)" -v off="$(med off cmds_per_s)" -v w="$WINDOW" -v n="$rounds" \
        'BEGIN { if (n > 0) printf "%.1f", (on - off) * w / n; else print "n/a" }')"
printf '  count on node A with presence: %s of %s\n' "$(med on count)" "$SUBS"
