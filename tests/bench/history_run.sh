#!/usr/bin/env bash
# `make bench`, history and recovery with the Redis engine (rt.history, issue 17 item 8):
#
#   tests/bench/history_run.sh BUILD_DIR
#
# Two nodes (A, B) share a private Redis on loopback; everything (nodes, Redis, the load
# generators) runs on this machine's cores, shared with whatever else runs here.
# history   fan-out with history in Redis: one publisher on A -> FAN_SUBS subscribers,
#           half on A and half on B, on a topic covered by rt.history (offsets assigned by
#           a Redis script, every node delivering what comes back in offset order) against
#           a topic without history, same nodes, same runs (tests/bench/bench_app.lua's
#           /hsub,/hpub against /sub,/pub). Deliveries/s and CPU per delivery (A, B and
#           Redis summed). Target: with / without >= 0.7. The one-node figure, history kept
#           in memory, is (g) of run.sh.
# recovery  recovery storm (recovery_storm.js, recovery_app.lua): STORM_CLIENTS clients of
#           one topic all go away, STORM_MISSED messages are published meanwhile, then all
#           reconnect and ask at once to resume from their place (the Lua API's
#           subscribe{since=}); each must get every missed message in order and
#           "recovered:true". With Redis they subscribed on A and come back to B, which does
#           not follow the topic yet: its cache does not reach back, so they wait for
#           history reads from Redis. Measured: time from the asking until all recovered,
#           Redis commands (INFO commandstats deltas; EVALSHA is a history or position read
#           here, nothing publishes during the storm), B's rtserver_history_reads_total
#           delta, CPU of B + Redis. The baseline in the same run: the same storm on one
#           node with history in memory (no --engine).
# Each run uses a new topic, so no node has it cached from an earlier run. Figures are
# medians of BENCH_REPEATS runs, ratios medians of the per-run ratios.
# Knobs (env): BENCH_ONLY (runs when unset or when it names "history" or "recovery";
# each word selects its section), BENCH_REPEATS (3), BENCH_SECS (3), BENCH_WARMUP (1),
# BENCH_FAN_SUBS (10000), BENCH_STORM_CLIENTS (1000), BENCH_STORM_MISSED (100).
set -u -o pipefail

ONLY=${BENCH_ONLY:-history recovery}
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
want history || want recovery || exit 0
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
STORM_CLIENTS=${BENCH_STORM_CLIENTS:-1000}
STORM_MISSED=${BENCH_STORM_MISSED:-100}

die() { echo "bench: $*" >&2; exit 1; }
. "$HERE/lib.sh"
# start NAME CMD...: runs CMD, waits for "listening on ...:PORT"; sets PORT_NAME, PID_NAME.
start() { start_logged "$OUT/history_$1.log" "$@"; }
command -v redis-server >/dev/null || die "redis-server is missing (make deps-test installs it)"
mkdir -p "$OUT"
build_wsload "$OUT" "$HERE"
if want recovery && [ ! -d "$HERE/node_modules/ws" ]; then
    npm install --prefix "$HERE" --no-audit --no-fund --loglevel=error >/dev/null || die "npm install of ws failed"
fi
# 10,000 subscribers in one wsload; the hard limit here is 20,000.
ulimit -n "$(ulimit -Hn)"
RESULTS=$OUT/history_results.txt
: >"$RESULTS"

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rt-bench-history.XXXXXX")
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v !~ /^[0-9.]+$/) print "n/a"; else print (v + 0 >= t + 0) ? "PASS" : "MISS" }'; }

# settle: waits (up to 30 s) until every process here is idle for half a second, so a run
# never starts while the last one's connections are still being torn down.
CLK_TCK=$(getconf CLK_TCK)
ticks() { # ticks PID...: CPU ticks (user + system) summed
    local p sum=0
    for p in "$@"; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$sum"
}
settle() {
    local prev now
    prev=$(ticks "${PIDS[@]}")
    for _ in $(seq 60); do
        sleep 0.5
        now=$(ticks "${PIDS[@]}")
        [ $((now - prev)) -le $((CLK_TCK / 40)) ] && return 0
        prev=$now
    done
    echo "bench: servers still busy after 30 s; going on" >&2
}

declare -A RUNS
record() { RUNS[$1]=$2; echo "$1 $2" >>"$RESULTS"; }
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
    --loglevel warning >"$OUT/history_redis.log" 2>&1 &
PID_redis=$!
PIDS+=("$PID_redis")
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
ENGINE=redis://127.0.0.1:$RPORT
COMMON=(--port 0 --log-level warn --idle-timeout 3600 --ws-ping 0 --metrics /metrics)
if want history; then
    start fanA "$RTSERVER" "${COMMON[@]}" --engine "$ENGINE" "$HERE/bench_app.lua"
    start fanB "$RTSERVER" "${COMMON[@]}" --engine "$ENGINE" "$HERE/bench_app.lua"
fi
if want recovery; then
    start stormA "$RTSERVER" "${COMMON[@]}" --engine "$ENGINE" "$HERE/recovery_app.lua"
    start stormB "$RTSERVER" "${COMMON[@]}" --engine "$ENGINE" "$HERE/recovery_app.lua"
    start stormMem "$RTSERVER" "${COMMON[@]}" "$HERE/recovery_app.lua"
fi
sleep 0.5

# ---- history: fan-out with and without history in Redis --------------------------------
fanout() { # fanout KEY SUB_PATH PUB_PATH: one wsload fan-out run over both nodes
    settle
    record "$1" "$(timeout 120 "$OUT/wsload" fanout --port "$PORT_fanA" --sub-ports "$PORT_fanA,$PORT_fanB" \
        --sub-path "$2" --pub-path "$3" -c "$FAN_SUBS" -d "$SECS" -w "$WARMUP" \
        --src-ips $(((FAN_SUBS + 999) / 1000)) --server-pid "$PID_fanA,$PID_fanB,$PID_redis" \
        2>>"$OUT/history_wsload.err" | grep '^RESULT' | tail -1)"
}

# ---- recovery: the storm -----------------------------------------------------------------
# Redis's command counts: "name calls" per line, INFO itself left out (we send it).
redis_calls() {
    redis-cli -p "$RPORT" info commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),.*/\1 \2/p' | grep -v '^info '
}
calls_of() { awk -v c="$1" '$1 == c { print $2; f = 1 } END { if (!f) print 0 }'; }
calls_all() { awk '{ s += $2 } END { print s + 0 }'; }
metric() { # metric PORT NAME: a counter from a node's /metrics
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}

# storm KEY HOME BACK TOPIC: prepares on node HOME (subscribe, leave, publish the missed
# messages), then the clients come back to node BACK; records the storm's RESULT line
# with the counters' deltas and the CPU of BACK (and Redis when BACK has the engine).
storm() {
    local key=$1 home=$2 back=$3 topic=$4 pos port_home="PORT_$2" port_back="PORT_$3" pid_back="PID_$3"
    local cpu_pids=("${!pid_back}") calls0 calls1 reads0 reads1 waits0 waits1 t0 t1 res
    [ "$back" = stormB ] && cpu_pids+=("$PID_redis")
    settle
    pos=$(node "$HERE/recovery_storm.js" prepare --port "${!port_home}" --topic "$topic" \
        -c "$STORM_CLIENTS" -n "$STORM_MISSED" 2>>"$OUT/history_storm.err" | sed -n 's/^POSITION //p')
    [ -n "$pos" ] || { echo "bench: storm $key: prepare failed (see $OUT/history_storm.err)" >&2; return; }
    settle
    calls0=$(redis_calls)
    reads0=$(metric "${!port_back}" rtserver_history_reads_total)
    waits0=$(metric "${!port_back}" rtserver_history_recoveries_waiting_total)
    t0=$(ticks "${cpu_pids[@]}")
    res=$(node "$HERE/recovery_storm.js" recover --port "${!port_back}" --topic "$topic" \
        --epoch "${pos% *}" --offset "${pos#* }" -c "$STORM_CLIENTS" -n "$STORM_MISSED" \
        2>>"$OUT/history_storm.err" | grep '^RESULT')
    t1=$(ticks "${cpu_pids[@]}")
    calls1=$(redis_calls)
    reads1=$(metric "${!port_back}" rtserver_history_reads_total)
    waits1=$(metric "${!port_back}" rtserver_history_recoveries_waiting_total)
    # The commands' deltas, all of them in the results file for whoever wonders.
    echo "$key commands: $(join -a1 -a2 -e 0 -o 0,1.2,2.2 <(echo "$calls0" | sort) <(echo "$calls1" | sort) |
        awk '$3 != $2 { printf "%s=%d ", $1, $3 - $2 }')" >>"$RESULTS"
    record "$key" "$res evalsha=$(($(echo "$calls1" | calls_of evalsha) - $(echo "$calls0" | calls_of evalsha))) \
redis_cmds=$(($(echo "$calls1" | calls_all) - $(echo "$calls0" | calls_all))) \
reads=$((${reads1:-0} - ${reads0:-0})) waited=$((${waits1:-0} - ${waits0:-0})) \
cpu_ms=$(((t1 - t0) * 1000 / CLK_TCK))"
}

echo "== history bench: $(nproc) cores shared by the load generators, the nodes and Redis" \
     "(and whatever else runs on this machine)"
for ((r = 1; r <= REPEATS; r++)); do
    if want history; then
        # Which goes first alternates: on this shared machine the order alone moved the
        # ratio (the second of a pair came out faster in most runs).
        if ((r % 2)); then
            fanout "fan_plain,$r" /sub /pub
            fanout "fan_hist,$r" /hsub /hpub
        else
            fanout "fan_hist,$r" /hsub /hpub
            fanout "fan_plain,$r" /sub /pub
        fi
        printf '  fan-out run %d/%d: no history %s deliveries/s, history in Redis %s deliveries/s\n' "$r" \
            "$REPEATS" "$(field deliveries_per_s "${RUNS[fan_plain,$r]}")" \
            "$(field deliveries_per_s "${RUNS[fan_hist,$r]}")"
    fi
    if want recovery; then
        storm "storm_mem,$r" stormMem stormMem "storm/mem$r"
        storm "storm_redis,$r" stormA stormB "storm/redis$r"
        printf '  storm run %d/%d: memory %s s, Redis %s s (%s EVALSHA, %s history reads)\n' "$r" "$REPEATS" \
            "$(field secs "${RUNS[storm_mem,$r]:-}")" "$(field secs "${RUNS[storm_redis,$r]:-}")" \
            "$(field evalsha "${RUNS[storm_redis,$r]:-}")" "$(field reads "${RUNS[storm_redis,$r]:-}")"
    fi
done

# ---- report ---------------------------------------------------------------------------
if want history; then
    r_fan=$(med_ratio fan_hist fan_plain deliveries_per_s)
    r_cpu=$(med_ratio fan_hist fan_plain server_cpu_us_per_msg)
    printf '\nfan-out with history in Redis: 1 publisher on A -> %d subscribers, half on A, half on B\n' "$FAN_SUBS"
    printf '  %-40s %12s %10s %10s %9s\n' topic deliveries/s p50_us p99_us "CPU us/d"
    for k in fan_plain fan_hist; do
        label="no history"
        [ $k = fan_hist ] && label="rt.history (offsets from Redis)"
        printf '  %-40s %12s %10s %10s %9s\n' "$label" "$(med $k deliveries_per_s)" "$(med $k p50_us)" \
            "$(med $k p99_us)" "$(med $k server_cpu_us_per_msg)"
    done
    printf '  (CPU: A, B and Redis summed)\n'
    printf '  deliveries/s with history / without = %-6s target >= 0.70  %s\n' "$r_fan" "$(verdict "$r_fan" 0.70)"
    printf '  CPU per delivery with history / without = %s\n' "$r_cpu"
fi
if want recovery; then
    r_time=$(med_ratio storm_redis storm_mem secs)
    printf '\nrecovery storm: %d clients come back at once, %d missed messages each\n' "$STORM_CLIENTS" "$STORM_MISSED"
    printf '  %-40s %8s %9s %9s %12s %8s %8s %7s %7s\n' setup secs open_secs recovered "not/bad/miss" \
        EVALSHA "all cmds" reads "CPU ms"
    for k in storm_mem storm_redis; do
        label="one node, history in memory"
        [ $k = storm_redis ] && label="left A, back to B, history in Redis"
        printf '  %-40s %8s %9s %9s %12s %8s %8s %7s %7s\n' "$label" "$(med $k secs)" "$(med $k open_secs)" \
            "$(med $k recovered)" "$(med $k not_recovered)/$(med $k bad)/$(med $k missing)" \
            "$([ $k = storm_redis ] && med $k evalsha || echo -)" \
            "$([ $k = storm_redis ] && med $k redis_cmds || echo -)" \
            "$([ $k = storm_redis ] && med $k reads || echo -)" "$(med $k cpu_ms)"
    done
    printf '  (secs: from all asking at once to the last client done; open_secs, before that, to\n'
    printf '   open the connections; EVALSHA and all cmds: Redis commandstats deltas, the calls\n'
    printf '   made inside the scripts included; reads: the node'"'"'s rtserver_history_reads_total;\n'
    printf '   CPU: the node the clients came back to, + Redis for the Redis storm)\n'
    printf '  time Redis / memory = %s\n' "$r_time"
fi
echo "  (every run: $RESULTS)"
