#!/usr/bin/env bash
# Chat over SockJS xhr-streaming beside the same chat over a raw WebSocket, in one run.
#
#   tests/bench/sockjs_run.sh BUILD_DIR        (default: build)
#
# One rtserver serves tests/bench/sockjs_app.lua: the same Lua handlers (a room on
# rt.topic) behind /chat-ws (WebSocket) and /chat (SockJS). sockjs_chat.c drives
# SOCKJS_CLIENTS clients with SOCKJS_INFLIGHT own messages each on the way (closed loop;
# latency is send -> fan-out -> back to the sender). The two transports run interleaved,
# SOCKJS_REPEATS times; each figure is the median, the ratio the median of per-run ratios.
# Knobs (env): SOCKJS_REPEATS (3), SOCKJS_SECS (3), SOCKJS_WARMUP (1), SOCKJS_CLIENTS (50),
# SOCKJS_INFLIGHT (4).
set -u -o pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$BUILD/bench
RTSERVER=$BUILD/rtserver
export RTSERVER_LUA_DIR=${RTSERVER_LUA_DIR:-$ROOT/lua}

REPEATS=${SOCKJS_REPEATS:-3}
SECS=${SOCKJS_SECS:-3}
WARMUP=${SOCKJS_WARMUP:-1}
CLIENTS=${SOCKJS_CLIENTS:-50}
INFLIGHT=${SOCKJS_INFLIGHT:-4}

die() { echo "sockjs bench: $*" >&2; exit 1; }
. "$HERE/lib.sh"

mkdir -p "$OUT" || die "cannot create $OUT"
[ -x "$RTSERVER" ] || die "$RTSERVER is missing (make all first)"
cc -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -o "$OUT/sockjs_chat" \
    "$HERE/sockjs_chat.c" -lev || die "sockjs_chat did not build"

LOG=$OUT/sockjs_rtserver.log
: >"$LOG"
"$RTSERVER" --port 0 --log-level warn --idle-timeout 3600 "$HERE/sockjs_app.lua" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
PORT=""
for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 $PID 2>/dev/null || break
    sleep 0.1
done
[ -n "$PORT" ] || die "rtserver did not start (see $LOG)"

declare -A R
echo "== SockJS chat bench: $CLIENTS clients x $INFLIGHT in flight, ${SECS}s after ${WARMUP}s warm-up," \
    "$REPEATS runs, $(nproc) cores shared with the load generator"
for ((r = 1; r <= REPEATS; r++)); do
    for mode in ws sockjs; do
        line=$(timeout 120 "$OUT/sockjs_chat" $mode --port "$PORT" -c "$CLIENTS" -k "$INFLIGHT" \
            -d "$SECS" -w "$WARMUP" 2>>"$OUT/sockjs_chat.err" | grep '^RESULT' | tail -1)
        R[$mode,$r]=$line
        printf '  %-7s run %d/%d: %8s msgs/s  p50 %6s us  p99 %6s us  (stream re-requests %s, errors %s)\n' \
            "$mode" "$r" "$REPEATS" "$(field msgs_per_s "$line")" "$(field p50_us "$line")" \
            "$(field p99_us "$line")" "$(field reconnects "$line")" "$(field errors "$line")"
    done
done

med() { local v=() r; for ((r = 1; r <= REPEATS; r++)); do v+=("$(field "$2" "${R[$1,$r]:-}")"); done; median "${v[@]}"; }
medratio() {
    local v=() r
    for ((r = 1; r <= REPEATS; r++)); do
        v+=("$(ratio "$(field "$3" "${R[$1,$r]:-}")" "$(field "$3" "${R[$2,$r]:-}")")")
    done
    median "${v[@]}"
}

echo
printf '  %-28s %10s %14s %9s %9s\n' transport msgs/s deliveries/s p50_us p99_us
for mode in ws sockjs; do
    label="raw WebSocket (/chat-ws)"
    [ $mode = sockjs ] && label="SockJS xhr-streaming (/chat)"
    printf '  %-28s %10s %14s %9s %9s\n' "$label" "$(med $mode msgs_per_s)" \
        "$(med $mode deliveries_per_s)" "$(med $mode p50_us)" "$(med $mode p99_us)"
done
echo "  msgs/s SockJS xhr-streaming / WebSocket = $(medratio sockjs ws msgs_per_s)"
echo "  p50 latency SockJS xhr-streaming / WebSocket = $(medratio sockjs ws p50_us)"
