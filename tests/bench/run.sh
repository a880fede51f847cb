#!/usr/bin/env bash
# `make bench`: rtserver against a plain libev TCP echo and npm ws, in one run.
#
#   tests/bench/run.sh BUILD_DIR      (make bench passes "build")
#
# (a) WebSocket echo through a Lua handler; the same load against tcp_echo (raw frames)
#     and npm ws. (b) one publisher fanned out to many subscribers, rtserver vs npm ws.
# (c) resident memory per idle WebSocket connection, rtserver (and npm ws as a peer),
#     and rtserver with permessage-deflate negotiated.
# (d) the fan-out of (b) over STOMP (SEND /topic/fan; and SEND /app/fan through a Lua
#     handler), in the same runs as rtserver's raw fan-out. (e) a STOMP queue with
#     client-individual acks, over WebSocket and over TCP. (f) the echo of (a) while the
#     app is reloaded (SIGHUP): added latency, dropped connections, lost messages.
# (g) the fan-out of (b) on a topic that keeps history (rt.history), in the same runs.
# (h) permessage-deflate with 1 KiB JSON messages: the fan-out of (b) and the echo of (a)
#     with clients that negotiate it against clients that do not, on the same server in
#     the same runs (deliveries/s and bytes on the wire), and npm ws compressing the same
#     fan-out as the peer.
# (j) TLS: the echo of (a) over wss:// against ws:// (two rtservers, same app), TLS
#     handshakes per second (full, and resumed from a session ticket) with the server's
#     CPU per handshake, and resident memory per idle wss:// connection against ws://.
# Each figure is the median of BENCH_REPEATS runs. Runs are interleaved across servers,
# and each ratio is the median of the per-run ratios, so that load from elsewhere on the
# machine hits both sides of a ratio alike. Knobs (env): BENCH_REPEATS, BENCH_SECS,
# BENCH_WARMUP, BENCH_ECHO_CONNS, BENCH_ECHO_INFLIGHT, BENCH_ECHO_SIZE, BENCH_FAN_SUBS,
# BENCH_FAN_WINDOW, BENCH_FAN_SIZE, BENCH_STOMP_APP (1: also the /app path of (d)),
# BENCH_QUEUE_PRODUCERS, BENCH_QUEUE_CONSUMERS, BENCH_QUEUE_INFLIGHT, BENCH_QUEUE_SIZE,
# BENCH_RELOADS, BENCH_RELOAD_EVERY, BENCH_IDLE_CONNS, BENCH_TLS_IDLE_CONNS, BENCH_HS_CONNS,
# BENCH_DEFLATE_SIZE, BENCH_ONLY ("echo fanout stomp queue reload idle history deflate tls").
set -u -o pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$BUILD/bench
RTSERVER=$BUILD/rtserver
export RTSERVER_LUA_DIR=${RTSERVER_LUA_DIR:-$ROOT/lua}   # run from the tree, not installed

REPEATS=${BENCH_REPEATS:-5}
SECS=${BENCH_SECS:-3}
WARMUP=${BENCH_WARMUP:-1}
ECHO_CONNS=${BENCH_ECHO_CONNS:-100}
ECHO_INFLIGHT=${BENCH_ECHO_INFLIGHT:-8}
ECHO_SIZE=${BENCH_ECHO_SIZE:-64}
FAN_SUBS=${BENCH_FAN_SUBS:-10000}
# The window is how many messages may be not yet delivered to every subscriber: 64 keeps
# the publisher ahead of the server while leaving a subscriber at most ~4.5 KB behind,
# far inside the server's per-connection output bound (4 MiB by default).
FAN_WINDOW=${BENCH_FAN_WINDOW:-64}
FAN_SIZE=${BENCH_FAN_SIZE:-64}
STOMP_APP=${BENCH_STOMP_APP:-1}
# The queue: every producer keeps QUEUE_INFLIGHT messages between its SEND and their
# MESSAGE at a consumer, far below the queue's bound (max_queue_messages, 10,000) and a
# session's unacknowledged bound (max_unacked, 1024).
QUEUE_PRODUCERS=${BENCH_QUEUE_PRODUCERS:-4}
QUEUE_CONSUMERS=${BENCH_QUEUE_CONSUMERS:-4}
QUEUE_INFLIGHT=${BENCH_QUEUE_INFLIGHT:-64}
QUEUE_SIZE=${BENCH_QUEUE_SIZE:-64}
# Reload: 2 x RELOADS slices of RELOAD_EVERY seconds; every other one starts with a SIGHUP.
RELOADS=${BENCH_RELOADS:-10}
RELOAD_EVERY=${BENCH_RELOAD_EVERY:-0.2}
DEFLATE_SIZE=${BENCH_DEFLATE_SIZE:-1024}
ONLY=${BENCH_ONLY:-echo fanout stomp queue reload idle history deflate tls}
# TLS: idle connections per run (each costs a full handshake to open), and handshakes
# kept going at once by the handshake load.
TLS_IDLE_CONNS=${BENCH_TLS_IDLE_CONNS:-5000}
HS_CONNS=${BENCH_HS_CONNS:-16}
IDLE_WANTED=50000

die() { echo "bench: $*" >&2; exit 1; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

# ---- build ---------------------------------------------------------------------------
mkdir -p "$OUT" || die "cannot create $OUT"
CFLAGS_BENCH="-O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow"
cc $CFLAGS_BENCH -o "$OUT/wsload" "$HERE/wsload.c" "$HERE/wsload_net.c" "$HERE/wsload_stomp.c" \
    "$HERE/wsload_lib.c" "$HERE/wsload_deflate.c" "$HERE/wsload_tls.c" -lev -lz -lssl -lcrypto ||
    die "wsload did not build"
cc $CFLAGS_BENCH -o "$OUT/tls_hs" "$HERE/tls_hs.c" "$HERE/wsload_lib.c" -lev -lssl -lcrypto ||
    die "tls_hs did not build"
cc $CFLAGS_BENCH -o "$OUT/tls_ssl_mem" "$HERE/tls_ssl_mem.c" -lssl -lcrypto ||
    die "tls_ssl_mem did not build"
cc $CFLAGS_BENCH -o "$OUT/tcp_echo" "$HERE/tcp_echo.c" -lev || die "tcp_echo did not build"
if (want echo || want fanout || want idle || want deflate) && [ ! -d "$HERE/node_modules/ws" ]; then
    npm install --prefix "$HERE" --no-audit --no-fund --loglevel=error >/dev/null ||
        die "npm install of ws failed"
fi
WS_VERSION=$(node -p "require('$HERE/node_modules/ws/package.json').version" 2>/dev/null)

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
# "listening on ...:PORT" line (not rtserver's STOMP over TCP one); sets PORT_NAME and
# PID_NAME (PORT empty on failure).
start_server() {
    local name=$1 port="" pid
    shift
    : >"$OUT/$name.log"                      # before the fork: never read an old port
    "$@" >"$OUT/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        port=$(grep -v 'STOMP over TCP' "$OUT/$name.log" |
            sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' | head -1)
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
start_tcp() { start_server tcp "$OUT/tcp_echo" --port 0; }

# The STOMP app, at info level for its "STOMP over TCP listening on" line. Its rows
# are named stomp (SEND /topic/fan, queue over WebSocket), stompapp (SEND /app/fan) and
# stomptcp (queue over TCP): each gets the server's pid and its port.
start_stomp() {
    local tcp=""
    start_server stomp "$RTSERVER" --port 0 --log-level info --idle-timeout 3600 \
        "$HERE/stomp_bench_app.lua"
    for _ in $(seq 50); do
        [ -n "$PORT_stomp" ] || break
        tcp=$(sed -n 's/.*STOMP over TCP listening on .*:\([0-9][0-9]*\).*/\1/p' \
            "$OUT/stomp.log" | head -1)
        [ -n "$tcp" ] && break
        sleep 0.1
    done
    [ -n "$PORT_stomp" ] && [ -z "$tcp" ] && echo "bench: no STOMP over TCP port in $OUT/stomp.log" >&2
    PORT_stompapp=$PORT_stomp PID_stompapp=$PID_stomp
    PORT_stomptcp=$tcp PID_stomptcp=$PID_stomp
}

# The reload test's own rtserver (bench_app.lua, at info level: the log counts the
# reloads and says how long each took).
start_reload() {
    start_server reload "$RTSERVER" --port 0 --log-level info --idle-timeout 3600 \
        "$HERE/bench_app.lua"
}
start_ws() { start_server ws node "$HERE/ws_servers.js" 0; }
start_wsdfl() { start_server wsdfl node "$HERE/ws_servers.js" 0 deflate; }

# TLS: a certificate made now (never kept in the tree), and the bench app over it. Its
# rows are named tls; the plain rows of (j) are named plain (another rtserver, same app).
make_cert() {
    [ -f "$OUT/tls/cert.pem" ] && return 0
    mkdir -p "$OUT/tls" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
            -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" 2>/dev/null ||
        die "openssl could not make the bench certificate"
}
start_tls() {
    make_cert
    start_server tls "$RTSERVER" --port 0 --log-level warn --idle-timeout 3600 \
        --tls-cert "$OUT/tls/cert.pem" --tls-key "$OUT/tls/key.pem" "$HERE/bench_app.lua"
}
start_plain() {
    start_server plain "$RTSERVER" --port 0 --log-level warn --idle-timeout 3600 \
        "$HERE/bench_app.lua"
}

# ---- figures -------------------------------------------------------------------------
declare -A RUNS                              # RUNS[test,server,run] = a RESULT line

field() { # field KEY LINE
    local k=$1
    shift
    printf '%s\n' $* | sed -n "s/^$k=//p" | head -1
}

median() { # the middle value (the mean of the middle two for an even count); n/a if none
    printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print "n/a";
        else if (NR % 2) print v[(NR + 1) / 2];
        else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; print (m == int(m)) ? m : sprintf("%.2f", m) } }'
}

ratio() { # ratio A B -> A/B with 2 decimals, n/a when either is missing
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a";
        else printf "%.2f\n", a / b }'
}

med() { # med TEST SERVER KEY: the median of KEY over the runs
    local r vals=()
    for ((r = 1; r <= REPEATS; r++)); do vals+=("$(field "$3" "${RUNS[$1,$2,$r]:-}")"); done
    median "${vals[@]}"
}

med_ratio() { # med_ratio TEST A B KEY: the median over runs of A's KEY / B's KEY
    local r vals=()
    for ((r = 1; r <= REPEATS; r++)); do
        vals+=("$(ratio "$(field "$4" "${RUNS[$1,$2,$r]:-}")" "$(field "$4" "${RUNS[$1,$3,$r]:-}")")")
    done
    median "${vals[@]}"
}

maxof() { # maxof TEST SERVER KEY: the largest KEY over the runs (a count that must be 0)
    local r vals=()
    for ((r = 1; r <= REPEATS; r++)); do vals+=("$(field "$3" "${RUNS[$1,$2,$r]:-}")"); done
    printf '%s\n' "${vals[@]}" | grep -E '^[0-9.]+$' | sort -g | tail -1 | grep . || echo n/a
}

verdict() { # verdict VALUE OP TARGET -> PASS / MISS / n/a
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0);
        print ok ? "PASS" : "MISS" }'
}

# measure TEST SERVER RUN ARGS...: runs wsload once against SERVER (its CPU use over the
# measured seconds comes back in the RESULT line) and keeps the line in RUNS.
measure() {
    local test=$1 srv=$2 r=$3 port_var="PORT_$2" pid_var="PID_$2" line=""
    shift 3
    if [ -n "${!port_var}" ]; then
        settle
        line=$(timeout 120 "$OUT/wsload" "$@" --port "${!port_var}" --server-pid "${!pid_var}" \
            2>>"$OUT/wsload.err" | grep '^RESULT' | tail -1)
    fi
    RUNS[$test,$srv,$r]=$line
    echo "$test $srv run=$r $line" >>"$OUT/results.txt"
}

# settle: waits (up to 30 s) until every server is idle for half a second, so that a run
# never starts while an earlier one's work is still going on: the last run's connections
# being torn down, or a slow server (npm ws in the fan-out) still working through what it
# queued, which would take CPU from the server measured next.
settle() {
    local prev now
    prev=$(all_cpu_ticks)
    for _ in $(seq 60); do
        sleep 0.5
        now=$(all_cpu_ticks)
        [ $((now - prev)) -le $((CLK_TCK / 40)) ] && return 0   # under 5% of a core
        prev=$now
    done
    echo "bench: servers still busy after 30 s; going on" >&2
}
all_cpu_ticks() {
    local p sum=0
    for p in "${PIDS[@]}"; do sum=$((sum + $(cpu_ticks "$p"))); done
    echo "$sum"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# ---- (a) echo and (b) fan-out --------------------------------------------------------
run_echo() {
    local r srv mode line
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in rtserver tcp ws; do
            mode=echo
            [ "$srv" = tcp ] && mode=raw
            measure echo "$srv" "$r" "$mode" -c "$ECHO_CONNS" -k "$ECHO_INFLIGHT" \
                -s "$ECHO_SIZE" -d "$SECS" -w "$WARMUP"
            line=${RUNS[echo,$srv,$r]}
            printf '  echo   %-8s run %d/%d: %8s msgs/s, server CPU %s%%\n' "$srv" "$r" \
                "$REPEATS" "$(field msgs_per_s "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line" | grep . || echo ?)"
        done
    done
}

# run_fanout SERVERS...: rtserver is raw WebSocket (rt.topic), ws is npm ws, stomp is
# SEND /topic/fan over STOMP, stompapp is SEND /app/fan through a Lua handler.
run_fanout() {
    local r srv line proto
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in "$@"; do
            case $srv in
            stomp) proto=(--stomp --sub-path /stomp --pub-path /stomp --dest /topic/fan) ;;
            stompapp) proto=(--stomp --sub-path /stomp --pub-path /stomp --dest /app/fan
                --sub-dest /topic/fan) ;;
            history) proto=(--sub-path /hsub --pub-path /hpub) ;;
            *) proto=() ;;
            esac
            measure fanout "$srv" "$r" fanout "${proto[@]}" -c "$FAN_SUBS" -s "$FAN_SIZE" \
                --window "$FAN_WINDOW" -d "$SECS" -w "$WARMUP" \
                --src-ips $(((FAN_SUBS + 999) / 1000))
            line=${RUNS[fanout,$srv,$r]}
            printf '  fanout %-8s run %d/%d: %8s deliveries/s, server CPU %s%%,' "$srv" "$r" \
                "$REPEATS" "$(field deliveries_per_s "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line" | grep . || echo ?)"
            printf ' subscribers closed %s, deliveries lost %s\n' \
                "$(field closed "$line" | grep . || echo ?)" "$(field lost "$line" | grep . || echo ?)"
        done
    done
}

# ---- (e) STOMP queue and (f) reload --------------------------------------------------
run_queue() {
    local r srv line tp
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in stomp stomptcp; do
            tp=(--path /stomp)
            [ "$srv" = stomptcp ] && tp=(--tcp)
            measure queue "$srv" "$r" queue "${tp[@]}" -c "$QUEUE_CONSUMERS" \
                --producers "$QUEUE_PRODUCERS" -k "$QUEUE_INFLIGHT" -s "$QUEUE_SIZE" \
                -d "$SECS" -w "$WARMUP"
            line=${RUNS[queue,$srv,$r]}
            printf '  queue  %-8s run %d/%d: %8s msgs/s, server CPU %s%%, lost %s, STOMP errors %s\n' \
                "$srv" "$r" "$REPEATS" "$(field msgs_per_s "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line" | grep . || echo ?)" \
                "$(field lost "$line" | grep . || echo ?)" "$(field stomp_errors "$line" | grep . || echo ?)"
        done
    done
}

run_reload() {
    local r line
    for ((r = 1; r <= REPEATS; r++)); do
        measure reload reload "$r" echo -c "$ECHO_CONNS" -k "$ECHO_INFLIGHT" -s "$ECHO_SIZE" \
            -w "$WARMUP" --hups "$RELOADS" --hup-every "$RELOAD_EVERY"
        line=${RUNS[reload,reload,$r]}
        printf '  reload run %d/%d: %s reloads; p99 %s us quiet, %s us reloading;' "$r" \
            "$REPEATS" "$(field hups "$line" | grep . || echo ?)" \
            "$(field p99_us "$line" | grep . || echo ?)" "$(field reload_p99_us "$line" | grep . || echo ?)"
        printf ' closed %s, lost %s\n' "$(field closed "$line" | grep . || echo ?)" \
            "$(field lost "$line" | grep . || echo ?)"
    done
}

# ---- (h) permessage-deflate -----------------------------------------------------------
# Rows: dfljson (rtserver, clients without the extension), dflon (the same server,
# clients that negotiate it), wsdfl (npm ws with perMessageDeflate, clients that
# negotiate it). The payload is DEFLATE_SIZE bytes of JSON after wsload's 16-byte stamp.
run_deflate() {
    local r srv line z
    PORT_dfljson=$PORT_rtserver PID_dfljson=$PID_rtserver
    PORT_dflon=$PORT_rtserver PID_dflon=$PID_rtserver
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in dfljson dflon wsdfl; do
            z=()
            [ "$srv" = dfljson ] || z=(--deflate)
            measure dflfan "$srv" "$r" fanout --json "${z[@]}" -c "$FAN_SUBS" \
                -s "$DEFLATE_SIZE" --window "$FAN_WINDOW" -d "$SECS" -w "$WARMUP" \
                --src-ips $(((FAN_SUBS + 999) / 1000))
            line=${RUNS[dflfan,$srv,$r]}
            printf '  fanout %-8s run %d/%d: %8s deliveries/s, %6s wire bytes each, server CPU %s%%\n' \
                "$srv" "$r" "$REPEATS" "$(field deliveries_per_s "$line" | grep . || echo n/a)" \
                "$(field wire_bytes_per_msg "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line" | grep . || echo ?)"
        done
        for srv in dfljson dflon; do
            z=()
            [ "$srv" = dfljson ] || z=(--deflate)
            measure dflecho "$srv" "$r" echo --json "${z[@]}" -c "$ECHO_CONNS" \
                -k "$ECHO_INFLIGHT" -s "$DEFLATE_SIZE" -d "$SECS" -w "$WARMUP"
            line=${RUNS[dflecho,$srv,$r]}
            printf '  echo   %-8s run %d/%d: %8s msgs/s, %6s wire bytes each, server CPU %s%%\n' \
                "$srv" "$r" "$REPEATS" "$(field msgs_per_s "$line" | grep . || echo n/a)" \
                "$(field wire_bytes_per_msg "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line" | grep . || echo ?)"
        done
    done
}

# ---- (j) TLS -------------------------------------------------------------------------
run_tls_echo() {
    local r srv line tls
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in plain tls; do
            tls=()
            [ "$srv" = tls ] && tls=(--tls)
            measure tlsecho "$srv" "$r" echo "${tls[@]}" -c "$ECHO_CONNS" -k "$ECHO_INFLIGHT" \
                -s "$ECHO_SIZE" -d "$SECS" -w "$WARMUP"
            line=${RUNS[tlsecho,$srv,$r]}
            printf '  echo   %-8s run %d/%d: %8s msgs/s, server CPU %s%%, %s us/msg\n' \
                "$([ "$srv" = tls ] && echo wss || echo ws)" "$r" "$REPEATS" \
                "$(field msgs_per_s "$line" | grep . || echo n/a)" \
                "$(field server_cpu_pct "$line" | grep . || echo ?)" \
                "$(field server_cpu_us_per_msg "$line" | grep . || echo ?)"
        done
    done
}

# hs_once KIND RUN: full or resumed handshakes against the TLS server, kept in RUNS.
hs_once() {
    local line=""
    if [ -n "$PORT_tls" ]; then
        settle
        line=$(timeout 60 "$OUT/tls_hs" --port "$PORT_tls" --server-pid "$PID_tls" \
            -c "$HS_CONNS" -d "$SECS" -w "$WARMUP" $([ "$1" = resumed ] && echo --resume) \
            2>>"$OUT/wsload.err" | grep '^RESULT' | tail -1)
    fi
    RUNS[hs,$1,$2]=$line
    echo "hs $1 run=$2 $line" >>"$OUT/results.txt"
    printf '  handshakes %-8s run %d/%d: %6s/s, server CPU %s%%, %s us each, %s resumed\n' "$1" \
        "$2" "$REPEATS" "$(field handshakes_per_s "$line" | grep . || echo n/a)" \
        "$(field server_cpu_pct "$line" | grep . || echo ?)" \
        "$(field server_cpu_us_per_hs "$line" | grep . || echo ?)" \
        "$(field resumed "$line" | grep . || echo ?)"
}

run_tls_hs() {
    local r
    for ((r = 1; r <= REPEATS; r++)); do
        hs_once full "$r"
        hs_once resumed "$r"
    done
}

# Idle memory, wss:// against ws://: a fresh server each run, TLS_IDLE_CONNS connections.
run_tls_idle() {
    local srv r b a o kib port_var pid_var tls
    for ((r = 1; r <= REPEATS; r++)); do
        for srv in plain tls; do
            if [ "$srv" = tls ]; then start_tls; else start_plain; fi
            port_var="PORT_$srv" pid_var="PID_$srv"
            [ -n "${!port_var}" ] || continue
            tls=""
            [ "$srv" = tls ] && tls=--tls
            read -r b a o < <(IDLE_CONNS=$TLS_IDLE_CONNS IDLE_SRC_IPS=$(((TLS_IDLE_CONNS + 999) / 1000)) \
                idle_once "${!pid_var}" "${!port_var}" $tls)
            stop_server "${!pid_var}"
            kib=n/a
            [ "$o" -gt 0 ] && kib=$(awk -v b="$b" -v a="$a" -v o="$o" \
                'BEGIN { printf "%.2f\n", (a - b) / o }')
            RUNS[tlsidle,$srv,$r]="open=$o rss_before_kib=$b rss_after_kib=$a kib_per_conn=$kib"
            echo "tlsidle $srv run=$r ${RUNS[tlsidle,$srv,$r]}" >>"$OUT/results.txt"
            printf '  idle   %-8s run %d/%d: %s connections, RSS %s -> %s KiB: %s KiB each\n' \
                "$([ "$srv" = tls ] && echo wss || echo ws)" "$r" "$REPEATS" "$o" "$b" "$a" "$kib"
        done
    done
}

# ---- (c) idle memory -----------------------------------------------------------------
# The open-files limit is per process and both ends hold one descriptor per connection;
# keep 1,000 spare for the server's own files.
IDLE_CONNS=${BENCH_IDLE_CONNS:-$((HARD_NOFILE - 1000 < IDLE_WANTED ? HARD_NOFILE - 1000 : IDLE_WANTED))}
IDLE_SRC_IPS=$(((IDLE_CONNS + 999) / 1000))

# idle_once PID PORT [WSLOAD ARGS]: holds IDLE_CONNS connections open; prints "before
# after open".
idle_once() {
    local pid=$1 port=$2 before after open log="$OUT/idle.out" lp
    shift 2
    sleep 0.3
    before=$(rss_kib "$pid")
    : >"$log"
    "$OUT/wsload" idle --port "$port" -c "$IDLE_CONNS" --src-ips "$IDLE_SRC_IPS" "$@" \
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
    local srv r b a o kib port_var pid_var z
    for srv in rtserver rtdfl ws; do
        for ((r = 1; r <= REPEATS; r++)); do
            # A fresh server each time: memory freed by the last run would hide the cost.
            z=()
            case $srv in
            rtserver) start_rtserver ;;
            rtdfl) start_rtserver; PORT_rtdfl=$PORT_rtserver PID_rtdfl=$PID_rtserver z=(--deflate) ;;
            ws) start_ws ;;
            esac
            port_var="PORT_$srv" pid_var="PID_$srv"
            [ -n "${!port_var}" ] || break
            read -r b a o < <(idle_once "${!pid_var}" "${!port_var}" "${z[@]}")
            stop_server "${!pid_var}"
            kib=n/a
            [ "$o" -gt 0 ] && kib=$(awk -v b="$b" -v a="$a" -v o="$o" \
                'BEGIN { printf "%.2f\n", (a - b) / o }')
            RUNS[idle,$srv,$r]="open=$o rss_before_kib=$b rss_after_kib=$a kib_per_conn=$kib"
            echo "idle $srv run=$r ${RUNS[idle,$srv,$r]}" >>"$OUT/results.txt"
            printf '  idle   %-8s run %d/%d: %s connections, RSS %s -> %s KiB: %s KiB each\n' \
                "$srv" "$r" "$REPEATS" "$o" "$b" "$a" "$kib"
        done
    done
}

# ---- report --------------------------------------------------------------------------
report_echo() {
    local srv label r1 r2 c1 lost closed
    printf '\n(a) WebSocket echo: %d connections x %d in flight, %d-byte binary messages\n' \
        "$ECHO_CONNS" "$ECHO_INFLIGHT" "$ECHO_SIZE"
    printf '  %-24s %10s %9s %9s %8s %10s\n' server msgs/s p50_us p99_us "srv CPU" "CPU us/msg"
    for srv in rtserver tcp ws; do
        case $srv in
        rtserver) label="rtserver (Lua handler)" ;;
        tcp) label="tcp_echo (libev, raw)" ;;
        ws) label="npm ws $WS_VERSION" ;;
        esac
        printf '  %-24s %10s %9s %9s %7s%% %10s\n' "$label" "$(med echo $srv msgs_per_s)" \
            "$(med echo $srv p50_us)" "$(med echo $srv p99_us)" \
            "$(med echo $srv server_cpu_pct)" "$(med echo $srv server_cpu_us_per_msg)"
    done
    r1=$(med_ratio echo rtserver tcp msgs_per_s)
    r2=$(med_ratio echo rtserver ws msgs_per_s)
    c1=$(med_ratio echo rtserver tcp server_cpu_us_per_msg)
    printf '  msgs/s rtserver / tcp_echo = %-6s target >= 0.70  %s\n' "$r1" "$(verdict "$r1" '>=' 0.70)"
    printf '  msgs/s rtserver / npm ws   = %-6s target >= 2.00  %s\n' "$r2" "$(verdict "$r2" '>=' 2.00)"
    printf '  (server CPU per message, rtserver / tcp_echo = %s; no target)\n' "$c1"
    for srv in rtserver tcp ws; do
        lost=$(maxof echo $srv lost) closed=$(maxof echo $srv closed)
        [ "$lost$closed" = 00 ] || [ "$lost$closed" = n/an/a ] ||
            echo "  note: $srv lost $lost messages and $closed connections in a run"
    done
}

report_fanout() {
    local srv label r3 closed lost
    printf '\n(b) fan-out: 1 publisher -> %d subscribers, %d-byte messages, window %d\n' \
        "$FAN_SUBS" "$FAN_SIZE" "$FAN_WINDOW"
    printf '  %-24s %12s %10s %10s %8s %12s\n' server deliveries/s p50_us p99_us "srv CPU" \
        "CPU us/dlvry"
    for srv in rtserver ws; do
        label="rtserver (rt.topic)"
        [ "$srv" = ws ] && label="npm ws (send loop)"
        printf '  %-24s %12s %10s %10s %7s%% %12s\n' "$label" \
            "$(med fanout $srv deliveries_per_s)" "$(med fanout $srv p50_us)" \
            "$(med fanout $srv p99_us)" "$(med fanout $srv server_cpu_pct)" \
            "$(med fanout $srv server_cpu_us_per_msg)"
        closed=$(med fanout $srv closed) lost=$(med fanout $srv lost)
        [ "$closed$lost" = 00 ] ||
            echo "    note: median subscribers closed $closed, deliveries lost $lost per run"
    done
    r3=$(med_ratio fanout rtserver ws deliveries_per_s)
    printf '  deliveries/s rtserver / npm ws = %-6s target >= 3.00  %s\n' "$r3" \
        "$(verdict "$r3" '>=' 3.00)"
}

report_stomp() {
    local srv label r4 r5 c4 closed lost
    printf '\n(d) STOMP fan-out: 1 publisher -> %d STOMP subscribers over WebSocket, %d-byte bodies,' \
        "$FAN_SUBS" "$FAN_SIZE"
    printf ' window %d (as in (b))\n' "$FAN_WINDOW"
    printf '  %-24s %12s %10s %10s %8s %12s\n' server deliveries/s p50_us p99_us "srv CPU" \
        "CPU us/dlvry"
    for srv in rtserver stomp stompapp; do
        case $srv in
        rtserver) label="raw WebSocket, (b)" ;;
        stomp) label="STOMP SEND /topic/fan" ;;
        stompapp) label="STOMP SEND /app/fan" ;;
        esac
        [ "$srv" = stompapp ] && [ "$STOMP_APP" != 1 ] && continue
        printf '  %-24s %12s %10s %10s %7s%% %12s\n' "$label" \
            "$(med fanout $srv deliveries_per_s)" "$(med fanout $srv p50_us)" \
            "$(med fanout $srv p99_us)" "$(med fanout $srv server_cpu_pct)" \
            "$(med fanout $srv server_cpu_us_per_msg)"
        closed=$(med fanout $srv closed) lost=$(med fanout $srv lost)
        [ "$closed$lost" = 00 ] ||
            echo "    note: median subscribers closed $closed, deliveries lost $lost per run"
    done
    r4=$(med_ratio fanout stomp rtserver deliveries_per_s)
    c4=$(med_ratio fanout stomp rtserver server_cpu_us_per_msg)
    printf '  deliveries/s STOMP (/topic) / raw WebSocket = %-6s target >= 0.70  %s\n' "$r4" \
        "$(verdict "$r4" '>=' 0.70)"
    if [ "$STOMP_APP" = 1 ]; then
        r5=$(med_ratio fanout stompapp rtserver deliveries_per_s)
        printf '  deliveries/s STOMP (/app)   / raw WebSocket = %-6s (no target)\n' "$r5"
    fi
    printf '  (server CPU per delivery, STOMP / raw = %s; no target)\n' "$c4"
}

report_history() {
    local srv label
    printf '\n(g) fan-out with history: (b) again on a topic that keeps every message (rt.history,\n'
    printf '    size 1000), in the same runs as (b)\n'
    printf '  %-24s %12s %10s %10s %8s %12s\n' server deliveries/s p50_us p99_us "srv CPU" \
        "CPU us/dlvry"
    for srv in rtserver history; do
        label="no history, (b)"
        [ "$srv" = history ] && label="history kept"
        printf '  %-24s %12s %10s %10s %7s%% %12s\n' "$label" \
            "$(med fanout $srv deliveries_per_s)" "$(med fanout $srv p50_us)" \
            "$(med fanout $srv p99_us)" "$(med fanout $srv server_cpu_pct)" \
            "$(med fanout $srv server_cpu_us_per_msg)"
    done
    r7=$(med_ratio fanout history rtserver deliveries_per_s)
    c7=$(med_ratio fanout history rtserver server_cpu_us_per_msg)
    printf '  deliveries/s with history / without = %-6s target >= 0.70  %s\n' "$r7" \
        "$(verdict "$r7" '>=' 0.70)"
    printf '  (server CPU per delivery, with / without = %s; no target)\n' "$c7"
}

report_queue() {
    local srv label
    printf '\n(e) STOMP queue: %d producers SEND /queue/jobs (%d in flight each), %d consumers' \
        "$QUEUE_PRODUCERS" "$QUEUE_INFLIGHT" "$QUEUE_CONSUMERS"
    printf ' with ack:client-individual ACK every MESSAGE; %d-byte bodies\n' "$QUEUE_SIZE"
    printf '  %-24s %10s %9s %9s %8s %10s %6s\n' transport msgs/s p50_us p99_us "srv CPU" \
        "CPU us/msg" lost
    for srv in stomp stomptcp; do
        label="STOMP over WebSocket"
        [ "$srv" = stomptcp ] && label="STOMP over TCP"
        printf '  %-24s %10s %9s %9s %7s%% %10s %6s\n' "$label" "$(med queue $srv msgs_per_s)" \
            "$(med queue $srv p50_us)" "$(med queue $srv p99_us)" \
            "$(med queue $srv server_cpu_pct)" "$(med queue $srv server_cpu_us_per_msg)" \
            "$(maxof queue $srv lost)"
    done
    echo "  (messages/s end to end: SEND to MESSAGE at a consumer, each ACKed; no target;" \
        "lost: the most in any run, after a drain)"
}

report_deflate() {
    local srv label r1 r2 r3 r4 c1
    printf '\n(h) permessage-deflate, %d-byte JSON messages: the fan-out of (b) to %d subscribers' \
        "$DEFLATE_SIZE" "$FAN_SUBS"
    printf ' and the echo of (a), clients with and without the extension\n'
    printf '  %-30s %12s %11s %10s %8s %12s\n' fan-out deliveries/s "wire B/msg" p99_us "srv CPU" \
        "CPU us/dlvry"
    for srv in dfljson dflon wsdfl; do
        case $srv in
        dfljson) label="rtserver, uncompressed" ;;
        dflon) label="rtserver, deflate" ;;
        wsdfl) label="npm ws, perMessageDeflate" ;;
        esac
        printf '  %-30s %12s %11s %10s %7s%% %12s\n' "$label" "$(med dflfan $srv deliveries_per_s)" \
            "$(med dflfan $srv wire_bytes_per_msg)" "$(med dflfan $srv p99_us)" \
            "$(med dflfan $srv server_cpu_pct)" "$(med dflfan $srv server_cpu_us_per_msg)"
    done
    r1=$(med_ratio dflfan dflon dfljson deliveries_per_s)
    r2=$(med_ratio dflfan dflon dfljson wire_bytes_per_msg)
    r3=$(med_ratio dflfan dflon wsdfl deliveries_per_s)
    printf '  deliveries/s deflate / uncompressed = %-6s target >= 0.70  %s\n' "$r1" "$(verdict "$r1" '>=' 0.70)"
    printf '  wire bytes   deflate / uncompressed = %-6s target <= 0.40  %s\n' "$r2" "$(verdict "$r2" '<=' 0.40)"
    printf '  deliveries/s rtserver / npm ws, both compressing = %s (no target)\n' "$r3"
    printf '  %-30s %12s %11s %10s %8s %12s\n' echo msgs/s "wire B/msg" p99_us "srv CPU" "CPU us/msg"
    for srv in dfljson dflon; do
        label="rtserver, uncompressed"
        [ "$srv" = dflon ] && label="rtserver, deflate both ways"
        printf '  %-30s %12s %11s %10s %7s%% %12s\n' "$label" "$(med dflecho $srv msgs_per_s)" \
            "$(med dflecho $srv wire_bytes_per_msg)" "$(med dflecho $srv p99_us)" \
            "$(med dflecho $srv server_cpu_pct)" "$(med dflecho $srv server_cpu_us_per_msg)"
    done
    r4=$(med_ratio dflecho dflon dfljson msgs_per_s)
    c1=$(med_ratio dflecho dflon dfljson server_cpu_us_per_msg)
    printf '  echo msgs/s deflate / uncompressed = %s, server CPU per message %s x (no target)\n' "$r4" "$c1"
    echo "  (the load generator inflates each distinct fan-out frame once and reuses it for" \
        "identical frames; it compresses and inflates every echo message)"
}

report_reload() {
    local added closed lost n want ms
    printf '\n(f) hot reload under load: the echo of (a), %d x %d in flight; %d slices of %ss,' \
        "$ECHO_CONNS" "$ECHO_INFLIGHT" $((2 * RELOADS)) "$RELOAD_EVERY"
    printf ' every other one starts with a SIGHUP (%d reloads a run)\n' "$RELOADS"
    printf '  %-24s %10s %9s %9s %9s\n' slices msgs/s p50_us p99_us max_us
    printf '  %-24s %10s %9s %9s %9s\n' "quiet" "$(med reload reload msgs_per_s)" \
        "$(med reload reload p50_us)" "$(med reload reload p99_us)" "$(med reload reload max_us)"
    printf '  %-24s %10s %9s %9s %9s\n' "starting with a reload" \
        "$(med reload reload reload_msgs_per_s)" "$(med reload reload reload_p50_us)" \
        "$(med reload reload reload_p99_us)" "$(med reload reload reload_max_us)"
    added=$(med reload reload added_p99_us)
    printf '  added p99 during reloads = %s us (median of per-run differences; no target)\n' "$added"
    n=$(grep -c 'reloaded .* in' "$OUT/reload.log" 2>/dev/null)
    want=$((REPEATS * RELOADS))
    ms=$(median $(sed -n 's/.*reloaded .* in \([0-9.]*\) ms.*/\1/p' "$OUT/reload.log" 2>/dev/null))
    printf '  reloads logged by the server: %s of %s sent, median %s ms each\n' "${n:-0}" "$want" "$ms"
    closed=$(maxof reload reload closed) lost=$(maxof reload reload lost)
    printf '  connections dropped = %-6s target 0  %s   (the most in any run)\n' "$closed" \
        "$(verdict "$closed" '<=' 0)"
    printf '  messages lost       = %-6s target 0  %s   (sent, never echoed, after a drain)\n' \
        "$lost" "$(verdict "$lost" '<=' 0)"
}

report_idle() {
    local srv label kib
    printf '\n(c) idle WebSocket connections: resident memory per connection\n'
    if [ "$IDLE_CONNS" -lt "$IDLE_WANTED" ]; then
        echo "  $IDLE_WANTED connections cannot be held here: open files are capped at" \
            "$HARD_NOFILE per process (hard limit), so $IDLE_CONNS were used."
    fi
    printf '  %-24s %8s %14s %14s %10s\n' server conns "RSS before KiB" "RSS after KiB" KiB/conn
    for srv in rtserver rtdfl ws; do
        case $srv in
        rtserver) label="rtserver" ;;
        rtdfl) label="rtserver, deflate on" ;;
        ws) label="npm ws (peer)" ;;
        esac
        printf '  %-24s %8s %14s %14s %10s\n' "$label" "$(med idle $srv open)" \
            "$(med idle $srv rss_before_kib)" "$(med idle $srv rss_after_kib)" \
            "$(med idle $srv kib_per_conn)"
    done
    kib=$(med idle rtserver kib_per_conn)
    printf '  rtserver KiB per connection = %-6s target <= 8.00  %s; <= 1.00 (issue 15)  %s\n' \
        "$kib" "$(verdict "$kib" '<=' 8)" "$(verdict "$kib" '<=' 1)"
    kib=$(med idle rtdfl kib_per_conn)
    printf '  with permessage-deflate    = %-6s target <= 1.00 (issue 15)  %s\n' "$kib" \
        "$(verdict "$kib" '<=' 1)"
}

report_tls() {
    local r1 c1 k1 srv label
    printf '\n(j) TLS: the echo of (a) over wss:// and ws:// (%d x %d in flight, %d-byte messages),' \
        "$ECHO_CONNS" "$ECHO_INFLIGHT" "$ECHO_SIZE"
    printf ' two rtservers with the same app\n'
    printf '  %-24s %10s %9s %9s %8s %10s\n' server msgs/s p50_us p99_us "srv CPU" "CPU us/msg"
    for srv in plain tls; do
        label="rtserver ws://"
        [ "$srv" = tls ] && label="rtserver wss:// (TLS)"
        printf '  %-24s %10s %9s %9s %7s%% %10s\n' "$label" "$(med tlsecho $srv msgs_per_s)" \
            "$(med tlsecho $srv p50_us)" "$(med tlsecho $srv p99_us)" \
            "$(med tlsecho $srv server_cpu_pct)" "$(med tlsecho $srv server_cpu_us_per_msg)"
    done
    r1=$(med_ratio tlsecho tls plain msgs_per_s)
    c1=$(med_ratio tlsecho plain tls server_cpu_us_per_msg)
    printf '  msgs/s wss / ws             = %-6s target >= 0.60  %s\n' "$r1" "$(verdict "$r1" '>=' 0.60)"
    printf '  messages per CPU-second, wss / ws = %-6s target >= 0.60  %s\n' "$c1" \
        "$(verdict "$c1" '>=' 0.60)"
    echo "  (the load generator encrypts too, on one core: when its wss runs leave the server" \
        "idle part of the time, msgs/s says more about the client than the server)"
    printf '\n  TLS handshakes, %d at a time (TLS 1.3, P-256 certificate, X25519)\n' "$HS_CONNS"
    printf '  %-24s %12s %8s %14s\n' kind handshakes/s "srv CPU" "CPU us/hs"
    for srv in full resumed; do
        printf '  %-24s %12s %7s%% %14s\n' "$srv" "$(med hs $srv handshakes_per_s)" \
            "$(med hs $srv server_cpu_pct)" "$(med hs $srv server_cpu_us_per_hs)"
    done
    printf '\n  idle connections: resident memory per connection, %d per run, a fresh server each\n' \
        "$TLS_IDLE_CONNS"
    printf '  %-24s %8s %14s %14s %10s\n' server conns "RSS before KiB" "RSS after KiB" KiB/conn
    for srv in plain tls; do
        label="rtserver ws://"
        [ "$srv" = tls ] && label="rtserver wss:// (TLS)"
        printf '  %-24s %8s %14s %14s %10s\n' "$label" "$(med tlsidle $srv open)" \
            "$(med tlsidle $srv rss_before_kib)" "$(med tlsidle $srv rss_after_kib)" \
            "$(med tlsidle $srv kib_per_conn)"
    done
    k1=$(awk -v a="$(med tlsidle tls kib_per_conn)" -v b="$(med tlsidle plain kib_per_conn)" \
        'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.2f\n", a - b; else print "n/a" }')
    printf '  TLS adds %s KiB per idle connection (no target); OpenSSL %s itself keeps %s KiB' "$k1" \
        "$(openssl version | cut -d' ' -f2)" "$(field kib_per_ssl "$TLS_SSL_MEM")"
    printf ' per established server SSL (tls_ssl_mem)\n'
}

# ---- run -----------------------------------------------------------------------------
[ -x "$RTSERVER" ] || echo "bench: $RTSERVER is missing: its rows will read n/a" >&2
echo "== rtserver bench: $(nproc) cores shared by the servers and the load generator;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"

FAN_SERVERS=()
want fanout && FAN_SERVERS+=(rtserver ws)
want stomp && FAN_SERVERS=(rtserver "${FAN_SERVERS[@]:1}" stomp)  # (d) needs (b)'s rtserver
want stomp && [ "$STOMP_APP" = 1 ] && FAN_SERVERS+=(stompapp)
want history && { want fanout || want stomp || FAN_SERVERS=(rtserver); FAN_SERVERS+=(history); }
if want echo || want fanout || want stomp || want queue || want history || want deflate; then
    want echo || want fanout || want stomp || want history && start_rtserver
    # (g) talks to the same process as (b), on the paths of its history topic.
    PORT_history=${PORT_rtserver:-} PID_history=${PID_rtserver:-}
    want echo && start_tcp
    want echo || want fanout && start_ws
    want stomp || want queue && start_stomp
    want deflate && start_wsdfl
    want deflate && [ -z "${PORT_rtserver:-}" ] && start_rtserver
    if want echo; then
        echo "-- (a) echo: $ECHO_CONNS connections x $ECHO_INFLIGHT in flight," \
            "$ECHO_SIZE-byte messages, ${SECS}s measured after ${WARMUP}s warm-up"
        run_echo
    fi
    if [ ${#FAN_SERVERS[@]} -gt 0 ]; then
        echo "-- (b, d) fan-out: 1 publisher -> $FAN_SUBS subscribers, $FAN_SIZE-byte" \
            "messages, at most $FAN_WINDOW not yet delivered to all: ${FAN_SERVERS[*]}"
        run_fanout "${FAN_SERVERS[@]}"
    fi
    if want deflate; then
        echo "-- (h) permessage-deflate: $DEFLATE_SIZE-byte JSON, the fan-out to $FAN_SUBS" \
            "subscribers and the echo, without and with the extension, and npm ws compressing"
        run_deflate
    fi
    if want queue; then
        echo "-- (e) STOMP queue: $QUEUE_PRODUCERS producers x $QUEUE_INFLIGHT in flight ->" \
            "$QUEUE_CONSUMERS consumers, client-individual acks, over WebSocket and TCP"
        run_queue
    fi
    for srv in rtserver tcp ws stomp wsdfl; do
        pid_var="PID_$srv"
        stop_server "${!pid_var:-}"
    done
fi
if want idle; then
    echo "-- (c) idle: $IDLE_CONNS WebSocket connections from $IDLE_SRC_IPS source" \
        "addresses (127.0.0.2 and up), a fresh server each run"
    run_idle
fi
if want tls; then
    echo "-- (j) TLS: wss:// and ws:// echo, handshakes (full, resumed), idle memory"
    start_plain
    start_tls
    run_tls_echo
    run_tls_hs
    stop_server "$PID_plain"
    stop_server "$PID_tls"
    run_tls_idle
    TLS_SSL_MEM=$("$OUT/tls_ssl_mem" "$OUT/tls/cert.pem" "$OUT/tls/key.pem" | grep '^RESULT')
    echo "tlsmem $TLS_SSL_MEM" >>"$OUT/results.txt"
fi
if want reload; then
    echo "-- (f) reload: the echo of (a) with $RELOADS SIGHUPs a run, one every" \
        "$(awk -v t="$RELOAD_EVERY" 'BEGIN { print 2 * t }')s, a fresh rtserver"
    start_reload
    run_reload
    stop_server "$PID_reload"
fi

echo
echo "== results: median of $REPEATS runs; a ratio is the median of the per-run ratios" \
    "(raw lines in $OUT/results.txt)"
want echo && report_echo
want fanout && report_fanout
want idle && report_idle
want stomp && report_stomp
want history && report_history
want queue && report_queue
want reload && report_reload
want deflate && report_deflate
want tls && report_tls
exit 0
