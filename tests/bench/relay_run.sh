#!/usr/bin/env bash
# The STOMP broker relay beside the built-in broker and beside RabbitMQ alone, in one run.
#
#   tests/bench/relay_run.sh BUILD_DIR        (make bench passes "build")
#
# A private RabbitMQ (relay_broker.py: STOMP over TCP for the relay, web-stomp for the
# baseline) and two rtservers on tests/bench/stomp_bench_app.lua, one with the relay on
# (RT_BENCH_RELAY). wsload fans one publisher out to RELAY_SUBS STOMP-over-WebSocket
# subscribers of /topic/fan on each of:
#   builtin  rtserver's own broker
#   relay    rtserver relaying to RabbitMQ (one broker connection per client session)
#   rabbit   RabbitMQ's web-stomp directly (what the relay adds to is this)
# Two loads per target: throughput (window RELAY_WINDOW messages not yet seen by every
# subscriber) and latency (window 1: one message in flight, so p50 is the path, not the
# queue), at RELAY_SUBS subscribers and at one. The relay's added latency per message is
# relay p50 - rabbit p50 with one subscriber and one message in flight. Targets run
# interleaved, RELAY_REPEATS times; each figure is a median, each ratio the median of the
# per-run ratios. Knobs (env): RELAY_REPEATS (3), RELAY_SECS (8), RELAY_WARMUP (3),
# RELAY_SYNC (60: seconds every subscriber gets to be subscribed before the warm-up; the
# broker takes many seconds to set up 1,000 subscriptions on a loaded machine),
# RELAY_SUBS (1000), RELAY_WINDOW (64).
set -u -o pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$BUILD/bench
RTSERVER=$BUILD/rtserver
export RTSERVER_LUA_DIR=${RTSERVER_LUA_DIR:-$ROOT/lua}

REPEATS=${RELAY_REPEATS:-3}
SECS=${RELAY_SECS:-8}
WARMUP=${RELAY_WARMUP:-3}
SUBS=${RELAY_SUBS:-1000}
WINDOW=${RELAY_WINDOW:-64}
SYNC=${RELAY_SYNC:-60}

die() { echo "relay bench: $*" >&2; exit 1; }
. "$HERE/lib.sh"

mkdir -p "$OUT" || die "cannot create $OUT"
[ -x "$RTSERVER" ] || die "$RTSERVER is missing (make all first)"
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "rabbitmq-server is not installed (make deps-test)"
build_wsload "$OUT" "$HERE"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT

: >"$OUT/relay_broker.out"
/usr/bin/python3 "$HERE/relay_broker.py" >"$OUT/relay_broker.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do grep -q '^stomp=\|^error=' "$OUT/relay_broker.out" && break; sleep 0.1; done
MQ_STOMP=$(sed -n 's/^stomp=\([0-9]*\) .*/\1/p' "$OUT/relay_broker.out")
MQ_WEB=$(sed -n 's/.* web=\([0-9]*\) .*/\1/p' "$OUT/relay_broker.out")
MQ_PID=$(sed -n 's/.* pid=\([0-9]*\)$/\1/p' "$OUT/relay_broker.out")
[ -n "$MQ_STOMP" ] && [ -n "$MQ_WEB" ] || die "RabbitMQ did not start: $(cat "$OUT/relay_broker.out")"

start() { # start NAME [ENV=...]: an rtserver on the STOMP bench app; sets PORT_NAME, PID_NAME
    local name=$1 log=$OUT/relay_$1.log port=""
    shift
    : >"$log"
    env "$@" "$RTSERVER" --port 0 --log-level warn --idle-timeout 3600 "$HERE/stomp_bench_app.lua" >"$log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 100); do
        port=$(grep -v 'STOMP over TCP' "$log" | sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || die "rtserver ($name) did not start (see $log)"
    printf -v "PORT_$name" %s "$port"
    printf -v "PID_$name" %s "$pid"
}
start builtin
start relay RT_BENCH_RELAY="$MQ_STOMP"
sleep 1
grep -q . "$OUT/relay_relay.log" && grep -i 'cannot reach\|lost' "$OUT/relay_relay.log"

diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "n/a"; else printf "%.2f\n", (a - b) / 1000 }'; }

run() { # run TARGET WINDOW SUBSCRIBERS -> the RESULT line
    local port path host pid=()
    case $1 in
    builtin) port=$PORT_builtin path=/stomp host=localhost pid=(--server-pid "$PID_builtin") ;;
    relay) port=$PORT_relay path=/stomp host=localhost pid=(--server-pid "$PID_relay") ;;
    rabbit) port=$MQ_WEB path=/ws host=/ pid=(--server-pid "$MQ_PID") ;;
    esac
    timeout $((SECS + WARMUP + SYNC + 90)) "$OUT/wsload" fanout --stomp -c "$3" --port "$port" \
        --sub-path $path --pub-path $path --dest /topic/fan --stomp-host "$host" \
        --window "$2" -d "$SECS" -w "$WARMUP" --sync-timeout "$SYNC" "${pid[@]}" 2>>"$OUT/relay_wsload.err" | grep '^RESULT' | tail -1
}

declare -A R
echo "== STOMP relay bench: $SUBS STOMP-over-WebSocket subscribers of one topic, ${SECS}s after" \
    "${WARMUP}s warm-up, $REPEATS runs; RabbitMQ $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)," \
    "$(nproc) cores shared by every server and the load generator"
for ((r = 1; r <= REPEATS; r++)); do
    for load in tput lat hop; do
        w=$WINDOW n=$SUBS
        [ $load = tput ] || w=1
        [ $load = hop ] && n=1
        for t in builtin relay rabbit; do
            line=$(run $t $w $n)
            R[$t,$load,$r]=$line
            # The broker tears down 1,000 connections and queues after a run: not in the next.
            [ $t = builtin ] || sleep 5
            printf '  %-7s %-4s run %d/%d: %9s deliveries/s  p50 %9s us  p99 %9s us  cpu %5s us/delivery  (closed %s, lost %s)\n' \
                "$t" "$load" "$r" "$REPEATS" "$(field deliveries_per_s "$line")" "$(field p50_us "$line")" \
                "$(field p99_us "$line")" "$(field server_cpu_us_per_msg "$line")" "$(field closed "$line")" \
                "$(field lost "$line")"
        done
    done
done

med() { local v=() r; for ((r = 1; r <= REPEATS; r++)); do v+=("$(field "$3" "${R[$1,$2,$r]:-}")"); done; median "${v[@]}"; }
medratio() {
    local v=() r
    for ((r = 1; r <= REPEATS; r++)); do
        v+=("$(ratio "$(field "$4" "${R[$1,$3,$r]:-}")" "$(field "$4" "${R[$2,$3,$r]:-}")")")
    done
    median "${v[@]}"
}
meddiff() {
    local v=() r
    for ((r = 1; r <= REPEATS; r++)); do
        v+=("$(diff_ms "$(field $4 "${R[$1,$3,$r]:-}")" "$(field $4 "${R[$2,$3,$r]:-}")")")
    done
    median "${v[@]}"
}

echo
printf '  %-34s %13s %11s %11s %13s %11s %11s\n' "window $WINDOW | window 1 ->" deliveries/s p50_us p99_us deliveries/s p50_us p99_us
for t in builtin relay rabbit; do
    case $t in
    builtin) label="rtserver, built-in broker" ;;
    relay) label="rtserver, relay to RabbitMQ" ;;
    rabbit) label="RabbitMQ web-stomp alone" ;;
    esac
    printf '  %-34s %13s %11s %11s %13s %11s %11s\n' "$label" "$(med $t tput deliveries_per_s)" \
        "$(med $t tput p50_us)" "$(med $t tput p99_us)" "$(med $t lat deliveries_per_s)" \
        "$(med $t lat p50_us)" "$(med $t lat p99_us)"
done
echo "  deliveries/s relay / RabbitMQ alone = $(medratio relay rabbit tput deliveries_per_s)" \
    "(window $WINDOW), $(medratio relay rabbit lat deliveries_per_s) (window 1)"
echo "  deliveries/s built-in broker / relay = $(medratio builtin relay tput deliveries_per_s) (window $WINDOW)"
echo "  one subscriber, one message in flight: p50 / p99 us built-in $(med builtin hop p50_us) /" \
    "$(med builtin hop p99_us), relay $(med relay hop p50_us) / $(med relay hop p99_us), RabbitMQ alone" \
    "$(med rabbit hop p50_us) / $(med rabbit hop p99_us)"
echo "  relay's added latency per message (relay - RabbitMQ alone, one subscriber): p50" \
    "$(meddiff relay rabbit hop p50_us) ms, p99 $(meddiff relay rabbit hop p99_us) ms;" \
    "at $SUBS subscribers, window 1: p50 $(meddiff relay rabbit lat p50_us) ms"
echo "  CPU per delivery (window $WINDOW): rtserver built-in $(med builtin tput server_cpu_us_per_msg) us," \
    "rtserver relaying $(med relay tput server_cpu_us_per_msg) us, RabbitMQ alone" \
    "$(med rabbit tput server_cpu_us_per_msg) us"
