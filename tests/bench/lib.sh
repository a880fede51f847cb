# What the bench scripts share (sourced, not run): ports, the load generator, figures.
# A script that sources it defines die() and a PIDS array first.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# build_wsload OUT HERE: the load generator is every wsload*.c (run.sh builds the same).
build_wsload() {
    cc -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -o "$1/wsload" "$2"/wsload.c \
        "$2"/wsload_*.c -lev -lz -lssl -lcrypto || die "wsload did not build"
}

# start_logged LOG NAME CMD...: runs CMD (output to LOG), waits for "listening on ...:PORT";
# sets PORT_NAME and PID_NAME, and adds the pid to PIDS.
start_logged() {
    local log=$1 name=$2 port="" pid
    shift 2
    : >"$log"
    "$@" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n 's/^rtserver listening on .*:\([0-9][0-9]*\)\/.*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || die "$name did not start (see $log)"
    printf -v "PORT_$name" %s "$port"
    printf -v "PID_$name" %s "$pid"
}

# field KEY "k=v k=v ...": one value of a RESULT line.
field() { printf '%s\n' $2 | sed -n "s/^$1=//p" | head -1; }
median() {
    printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2];
        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
