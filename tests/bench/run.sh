#!/usr/bin/env bash
# `make bench`: rtserver against a plain libev TCP echo and npm ws, in one run.
#
#   tests/bench/run.sh BUILD_DIR      (make bench passes "build")
#
# (a) WebSocket echo through a Lua handler; the same load against tcp_echo (raw frames)
#     and npm ws. (b) one publisher fanned out to many subscribers, rtserver vs npm ws.
# (c) resident memory per idle WebSocket connection.
# Each figure is the median of BENCH_REPEATS runs, interleaved across servers so that a
# burst of load from elsewhere on the machine hits every server alike. Knobs (env):
# BENCH_REPEATS, BENCH_SECS, BENCH_WARMUP, BENCH_ECHO_CONNS, BENCH_ECHO_INFLIGHT,
# BENCH_ECHO_SIZE, BENCH_FAN_SUBS, BENCH_FAN_WINDOW, BENCH_FAN_SIZE, BENCH_IDLE_CONNS,
# BENCH_ONLY (any of "echo fanout idle").
set -u -o pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export RTSERVER_LUA_DIR=${RTSERVER_LUA_DIR:-$ROOT/lua}   # run from the tree, not installed
OUT=$BUILD/bench
RTSERVER=$BUILD/rtserver

REPEATS=${BENCH_REPEATS:-3}
SECS=${BENCH_SECS:-3}
WARMUP=${BENCH_WARMUP:-1}
ECHO_CONNS=${BENCH_ECHO_CONNS:-100}
ECHO_INFLIGHT=${BENCH_ECHO_INFLIGHT:-4}
ECHO_SIZE=${BENCH_ECHO_SIZE:-64}
FAN_SUBS=${BENCH_FAN_SUBS:-10000}
FAN_WINDOW=${BENCH_FAN_WINDOW:-8}
FAN_SIZE=${BENCH_FAN_SIZE:-64}
ONLY=${BENCH_ONLY:-echo fanout idle}
IDLE_WANTED=50000

die() { echo "bench: $*" >&2; exit 1; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

# ---- build ---------------------------------------------------------------------------
mkdir -p "$OUT" || die "cannot create $OUT"
CFLAGS_BENCH="-O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow"
cc $CFLAGS_BENCH -o "$OUT/wsload" "$HERE/wsload.c" -lev || die "wsload did not build"
cc $CFLAGS_BENCH -o "$OUT/tcp_echo" "$HERE/tcp_echo.c" -lev || die "tcp_echo did not build"
if [ ! -d "$HERE/node_modules/ws" ]; then
    npm install --prefix "$HERE" --no-audit --no-fund --loglevel=error >/dev/null ||
        die "npm install of ws failed"
fi

# Every child inherits the hard limit: 10,000 subscribers need more than the usual 1024.
ulimit -n "$(ulimit -Hn)"
HARD_NOFILE=$(ulimit -Hn)
: >"$OUT/results.txt"
: >"$OUT/wsload.err"

# ---- servers -------------------------------------------------------------------------
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME CMD...: starts CMD in the background and waits for its
# "listening on ...:PORT" line; sets PORT_NAME and PID_NAME (PORT empty on failure).
start_server() {
    local name=$1 port="" pid
    shift
    "$@" >"$OUT/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' "$OUT/$name.log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || echo "bench: $name did not start (see $OUT/$name.log)" >&2
    printf -v "PORT_$name" %s "$port"
    printf -v "PID_$name" %s "$pid"
}

stop_server() { # stop_server PID: ends it and forgets it
    local keep=() p
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

start_rtserver() {
    start_server rtserver "$RTSERVER" --port 0 --log-level warn --idle-timeout 3600 \
        "$HERE/bench_app.lua"
}

# ---- helpers -------------------------------------------------------------------------
field() { # field KEY LINE
    local k=$1
    shift
    printf '%s\n' $* | sed -n "s/^$k=//p" | head -1
}

median() { # the middle value; n/a when there is none
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'
}

ratio() { # ratio A B -> A/B with 2 decimals, n/a when either is missing
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a";
        else printf "%.2f\n", a / b }'
}

verdict() { # verdict VALUE OP TARGET -> PASS / MISS / n/a
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0);
        print ok ? "PASS" : "MISS" }'
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

# load NAME SERVER_PID ARGS...: runs wsload once, prints and records its RESULT line
# with the server's average CPU use over the run appended (server_cpu_pct).
load() {
    local name=$1 pid=$2 line t0 t1 c0 c1
    shift 2
    [ -n "$3" ] || { echo "  $name: skipped (server not running)" >&2; return; }
    c0=$(cpu_ticks "$pid") t0=$(date +%s.%N)
    line=$(timeout 120 "$OUT/wsload" "$@" 2>>"$OUT/wsload.err" | grep '^RESULT' | tail -1)
    c1=$(cpu_ticks "$pid") t1=$(date +%s.%N)
    [ -n "$line" ] && line="$line server_cpu_pct=$(awk -v c="$((c1 - c0))" -v t0="$t0" \
        -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 100 * c / hz / (t1 - t0) }')"
    echo "$name $line" >>"$OUT/results.txt"
    echo "$line"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# ---- (a) echo ------------------------------------------------------------------------
ECHO_ARGS=(-c "$ECHO_CONNS" -k "$ECHO_INFLIGHT" -s "$ECHO_SIZE" -d "$SECS" -w "$WARMUP")
declare -A ECHO_RATE ECHO_P50 ECHO_P99
run_echo() {
    local r srv mode port_var pid_var line
    declare -A rates p50s p99s
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in rtserver tcp ws; do
            port_var="PORT_$srv" pid_var="PID_$srv" mode=echo
            [ "$srv" = tcp ] && mode=raw
            line=$(load "echo-$srv" "${!pid_var}" "$mode" --port "${!port_var}" "${ECHO_ARGS[@]}")
            printf '  echo   %-8s run %d/%d: %8s msgs/s  (server CPU %s%%)\n' "$srv" "$r" \
                "$REPEATS" "$(field msgs_per_s "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line")"
            rates[$srv]+=" $(field msgs_per_s "$line")"
            p50s[$srv]+=" $(field p50_us "$line")"
            p99s[$srv]+=" $(field p99_us "$line")"
        done
    done
    for srv in rtserver tcp ws; do
        ECHO_RATE[$srv]=$(median ${rates[$srv]})
        ECHO_P50[$srv]=$(median ${p50s[$srv]})
        ECHO_P99[$srv]=$(median ${p99s[$srv]})
    done
}

# ---- (b) fan-out ---------------------------------------------------------------------
FAN_SRC_IPS=$(((FAN_SUBS + 999) / 1000))
FAN_ARGS=(-c "$FAN_SUBS" -s "$FAN_SIZE" --window "$FAN_WINDOW" -d "$SECS" -w "$WARMUP"
    --src-ips "$FAN_SRC_IPS")
declare -A FAN_RATE FAN_P50 FAN_P99 FAN_NOTE
run_fanout() {
    local r srv port_var pid_var line c l
    declare -A rates p50s p99s closed lost
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in rtserver ws; do
            port_var="PORT_$srv" pid_var="PID_$srv"
            line=$(load "fanout-$srv" "${!pid_var}" fanout --port "${!port_var}" "${FAN_ARGS[@]}")
            c=$(field closed "$line") l=$(field lost "$line")
            printf '  fanout %-8s run %d/%d: %8s deliveries/s  (server CPU %s%%;' \
                "$srv" "$r" "$REPEATS" "$(field deliveries_per_s "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line")"
            printf ' subscribers closed: %s, lost: %s)\n' "${c:-?}" "${l:-?}"
            rates[$srv]+=" $(field deliveries_per_s "$line")"
            p50s[$srv]+=" $(field p50_us "$line")"
            p99s[$srv]+=" $(field p99_us "$line")"
            closed[$srv]=$((${closed[$srv]:-0} + ${c:-0}))
            lost[$srv]=$((${lost[$srv]:-0} + ${l:-0}))
        done
    done
    for srv in rtserver ws; do
        FAN_RATE[$srv]=$(median ${rates[$srv]})
        FAN_P50[$srv]=$(median ${p50s[$srv]})
        FAN_P99[$srv]=$(median ${p99s[$srv]})
        FAN_NOTE[$srv]=""
        [ "${closed[$srv]}${lost[$srv]}" != 00 ] &&
            FAN_NOTE[$srv]="subscribers closed=${closed[$srv]} messages lost=${lost[$srv]} (all runs)"
    done
}

# ---- (c) idle memory -----------------------------------------------------------------
# The open-files limit is per process and both ends hold one descriptor per connection;
# keep 1,000 spare for the server's own files.
IDLE_CONNS=${BENCH_IDLE_CONNS:-$((HARD_NOFILE - 1000 < IDLE_WANTED ? HARD_NOFILE - 1000 : IDLE_WANTED))}
IDLE_SRC_IPS=$(((IDLE_CONNS + 999) / 1000))
declare -A IDLE_KIB IDLE_OPEN IDLE_BEFORE IDLE_AFTER

# idle_once PID PORT: holds IDLE_CONNS connections open; prints "before after open".
idle_once() {
    local pid=$1 port=$2 before after open log="$OUT/idle.out" lp
    sleep 0.3
    before=$(rss_kib "$pid")
    "$OUT/wsload" idle --port "$port" -c "$IDLE_CONNS" --src-ips "$IDLE_SRC_IPS" \
        >"$log" 2>>"$OUT/wsload.err" &
    lp=$!
    for _ in $(seq 600); do
        grep -q '^READY' "$log" && break
        kill -0 "$lp" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1                                  # let the server finish its accept work
    after=$(rss_kib "$pid")
    open=$(sed -n 's/^READY open=\([0-9]*\).*/\1/p' "$log")
    kill "$lp" 2>/dev/null
    wait "$lp" 2>/dev/null
    echo "${before:-0} ${after:-0} ${open:-0}"
}

run_idle() {
    local srv start r b a o kibs=() opens=() befores=() afters=()
    for srv in rtserver ws; do
        kibs=() opens=() befores=() afters=()
        for ((r = 1; r <= REPEATS; r++)); do
            # A fresh server each time: memory freed by the last run would hide the cost.
            if [ "$srv" = rtserver ]; then start_rtserver; else start_ws; fi
            local port_var="PORT_$srv" pid_var="PID_$srv"
            [ -n "${!port_var}" ] || break
            read -r b a o < <(idle_once "${!pid_var}" "${!port_var}")
            stop_server "${!pid_var}"
            echo "idle-$srv before_kib=$b after_kib=$a open=$o" >>"$OUT/results.txt"
            local kib=n/a
            [ "$o" -gt 0 ] && kib=$(awk -v b="$b" -v a="$a" -v o="$o" \
                'BEGIN { printf "%.2f\n", (a - b) / o }')
            printf '  idle %-8s run %d/%d: %s connections, RSS %s -> %s KiB: %s KiB each\n' \
                "$srv" "$r" "$REPEATS" "$o" "$b" "$a" "$kib"
            kibs+=("$kib") opens+=("$o") befores+=("$b") afters+=("$a")
        done
        IDLE_KIB[$srv]=$(median "${kibs[@]}")
        IDLE_OPEN[$srv]=$(median "${opens[@]}")
        IDLE_BEFORE[$srv]=$(median "${befores[@]}")
        IDLE_AFTER[$srv]=$(median "${afters[@]}")
    done
}

start_ws() { start_server ws node "$HERE/ws_servers.js" 0; }

# ---- run -----------------------------------------------------------------------------
[ -x "$RTSERVER" ] || echo "bench: $RTSERVER is missing: its rows will read n/a" >&2
echo "== rtserver bench: $(nproc) cores shared by the servers and the load generator;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); median of $REPEATS runs"

if want echo || want fanout; then
    start_rtserver
    start_server tcp "$OUT/tcp_echo" --port 0
    start_ws
    if want echo; then
        echo "-- (a) echo: $ECHO_CONNS connections x $ECHO_INFLIGHT in flight," \
            "$ECHO_SIZE-byte binary messages, ${SECS}s after ${WARMUP}s warm-up"
        run_echo
    fi
    if want fanout; then
        echo "-- (b) fan-out: 1 publisher -> $FAN_SUBS subscribers, $FAN_SIZE-byte" \
            "messages, at most $FAN_WINDOW not yet delivered to all"
        run_fanout
    fi
    stop_server "$PID_rtserver"
    stop_server "$PID_tcp"
    stop_server "$PID_ws"
fi
if want idle; then
    echo "-- (c) idle: $IDLE_CONNS WebSocket connections from $IDLE_SRC_IPS source" \
        "addresses (127.0.0.2...)"
    run_idle
fi

# ---- report --------------------------------------------------------------------------
echo
echo "== results (median of $REPEATS; raw lines in $OUT/results.txt)"
if want echo; then
    printf '\n(a) WebSocket echo, %d conns x %d in flight, %d-byte messages\n' \
        "$ECHO_CONNS" "$ECHO_INFLIGHT" "$ECHO_SIZE"
    printf '  %-26s %12s %10s %10s\n' server msgs/s p50_us p99_us
    for srv in rtserver tcp ws; do
        case $srv in
        rtserver) label="rtserver (Lua handler)" ;;
        tcp) label="tcp_echo (libev, raw)" ;;
        ws) label="npm ws $(node -p "require('$HERE/node_modules/ws/package.json').version" 2>/dev/null)" ;;
        esac
        printf '  %-26s %12s %10s %10s\n' "$label" "${ECHO_RATE[$srv]}" "${ECHO_P50[$srv]}" \
            "${ECHO_P99[$srv]}"
    done
    r1=$(ratio "${ECHO_RATE[rtserver]}" "${ECHO_RATE[tcp]}")
    r2=$(ratio "${ECHO_RATE[rtserver]}" "${ECHO_RATE[ws]}")
    printf '  rtserver / tcp_echo = %-6s target >= 0.70  %s\n' "$r1" "$(verdict "$r1" '>=' 0.70)"
    printf '  rtserver / npm ws   = %-6s target >= 2.00  %s\n' "$r2" "$(verdict "$r2" '>=' 2.00)"
fi
if want fanout; then
    printf '\n(b) fan-out, 1 publisher -> %d subscribers, %d-byte messages\n' "$FAN_SUBS" "$FAN_SIZE"
    printf '  %-26s %12s %10s %10s\n' server deliveries/s p50_us p99_us
    for key in rtserver ws; do
        label="rtserver (rt.topic)"
        [ "$key" = ws ] && label="npm ws (send loop)"
        printf '  %-26s %12s %10s %10s  %s\n' "$label" "${FAN_RATE[$key]}" "${FAN_P50[$key]}" \
            "${FAN_P99[$key]}" "${FAN_NOTE[$key]}"
    done
    r3=$(ratio "${FAN_RATE[rtserver]}" "${FAN_RATE[ws]}")
    printf '  rtserver / npm ws   = %-6s target >= 3.00  %s\n' "$r3" "$(verdict "$r3" '>=' 3.00)"
fi
if want idle; then
    printf '\n(c) idle WebSocket connections: resident memory per connection\n'
    if [ "$IDLE_CONNS" -lt "$IDLE_WANTED" ]; then
        echo "  $IDLE_WANTED connections cannot be held here: open files are capped at" \
            "$HARD_NOFILE per process (hard limit), so $IDLE_CONNS were used."
    fi
    printf '  %-26s %8s %12s %12s %10s\n' server conns rss_before rss_after KiB/conn
    for srv in rtserver ws; do
        label="rtserver"
        [ "$srv" = ws ] && label="npm ws (peer, no target)"
        printf '  %-26s %8s %10s K %10s K %10s\n' "$label" "${IDLE_OPEN[$srv]}" \
            "${IDLE_BEFORE[$srv]}" "${IDLE_AFTER[$srv]}" "${IDLE_KIB[$srv]}"
    done
    printf '  rtserver KiB/conn   = %-6s target <= 8.00  %s\n' "${IDLE_KIB[rtserver]}" \
        "$(verdict "${IDLE_KIB[rtserver]}" '<=' 8)"
fi
