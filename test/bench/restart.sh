#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# restart.sh - failed requests per restart in a rolling restart of three
# instances behind HAProxy in TCP mode with PROXY v2 (docs/examples/haproxy.cfg,
# its addresses moved to loopback), under wrk (GETs on keep-alive connections):
# each instance in turn is stopped gracefully (graced: SIGTERM; nginx, the
# peer: SIGQUIT), waited for, left until HAProxy marks it DOWN, started again
# and waited for until HAProxy shows it UP. graced, graced with
# --stop-idle-grace 0 and nginx run the same restarts behind the same HAProxy
# settings, RUNS times each (5); medians.
# A failed request is one wrk counts as an error (connect, read, write,
# timeout) or a non-2xx answer.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
DUR=${DUR:-25}
need haproxy haproxy
need wrk wrk
need nginx nginx-light

root=$tmp/root
mkdir -p "$root"
echo small >"$root/small.txt"
chmod -R a+rX "$root"

# hap_state SOCK NAME: UP, DOWN... as HAProxy's stats say
hap_state() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.sendall(b"show stat\n")
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except OSError:
    print("?")
    sys.exit(0)
for line in out.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and f[0] == "graced" and f[1] == sys.argv[2]:
        print(f[17].split(" ")[0])
        sys.exit(0)
print("?")
PY
}

wait_state() { # wait_state SOCK NAME STATE SECONDS
    local i
    for i in $(seq $(($4 * 20))); do
        [ "$(hap_state "$1" "$2")" = "$3" ] && return 0
        sleep 0.05
    done
    return 1
}

# instance KIND I PORT: start instance I (graced or nginx) on PORT
instance() {
    case $1 in
    graced)
        start "i$2" "$build/src/graced/graced" --proxy-listen "127.0.0.1:$3" \
            --proxy-from 127.0.0.0/8 --root "$root" --health /healthz \
            --shutdown-timeout 10s --log-level warn
        ;;
    graced-grace0) # the lame duck off: idle connections close at the stop
        start "i$2" "$build/src/graced/graced" --proxy-listen "127.0.0.1:$3" \
            --proxy-from 127.0.0.0/8 --root "$root" --health /healthz \
            --shutdown-timeout 10s --log-level warn --stop-idle-grace 0
        ;;
    nginx)
        start "i$2" nginx -c "$(nginx_conf "$3" "root $root;
    location = /healthz { return 200 \"ok\\n\"; }" proxy_protocol)"
        ;;
    esac
}

# one_run KIND: prints "failed requests restarts"
one_run() {
    local kind=$1 ports=() fe sock cfg i pid sig failed total
    fe=$(free_port)
    sock=$tmp/haproxy-$kind.sock
    cfg=$tmp/haproxy-$kind.cfg
    for i in 1 2 3; do ports+=("$(free_port)"); done
    awk -v fe="$fe" -v sock="$sock" -v p1="${ports[0]}" -v p2="${ports[1]}" -v p3="${ports[2]}" '
        $1 == "stats" && $2 == "socket" {print "    stats socket " sock " mode 600 level admin"; next}
        $1 == "bind" {print "    bind 127.0.0.1:" fe; next}
        $1 == "maxconn" {print "    maxconn 4096"; next}
        $1 == "server" {n++; print "    server " $2 " 127.0.0.1:" (n == 1 ? p1 : n == 2 ? p2 : p3); next}
        {print}' "$top/docs/examples/haproxy.cfg" >"$cfg"
    for i in 1 2 3; do instance "$kind" "$i" "${ports[$((i - 1))]}"; done
    start haproxy haproxy -db -f "$cfg"
    for i in 1 2 3; do wait_state "$sock" "g$i" UP 20; done
    "${LOAD[@]}" wrk -t1 -c32 -d"${DUR}s" --timeout 10s "http://127.0.0.1:$fe/small.txt" \
        >"$tmp/wrk-$kind.out" &
    local wrk=$!
    sleep 2
    sig=TERM
    [ "$kind" = nginx ] && sig=QUIT # nginx's graceful stop
    for i in 1 2 3; do
        pid=PID_i$i
        kill -s "$sig" "${!pid}"
        wait "${!pid}" 2>/dev/null || true
        wait_state "$sock" "g$i" DOWN 10 || true
        instance "$kind" "$i" "${ports[$((i - 1))]}"
        wait_state "$sock" "g$i" UP 20 || echo "bench: g$i not UP again" >&2
    done
    wait "$wrk"
    for i in 1 2 3; do pid=PID_i$i; stop "${!pid}"; done
    stop "$PID_haproxy"
    awk '/Socket errors/ {gsub(",", ""); e += $4 + $6 + $8 + $10}
         /Non-2xx/ {e += $5}
         / requests in / {t = $1}
         END {printf "%d %d 3\n", e, t}' "$tmp/wrk-$kind.out"
}

kinds=(graced graced-grace0 nginx)
declare -A per_restart total
for kind in "${kinds[@]}"; do
    per_restart[$kind]=
    total[$kind]=
done
for r in $(seq "$RUNS"); do
    for kind in "${kinds[@]}"; do
        one_run "$kind" >"$tmp/run.out"
        read -r failed n restarts <"$tmp/run.out"
        echo "run $r $kind: $failed failed of $n requests, $restarts restarts" >&2
        per_restart[$kind]+="$(awk -v f="$failed" -v r="$restarts" 'BEGIN {printf "%.2f", f / r}') "
        total[$kind]+="$n "
    done
done
med() { printf '%s\n' $1 | median; }
g=$(med "${per_restart[graced]}")
g0=$(med "${per_restart[graced-grace0]}")
n=$(med "${per_restart[nginx]}")
write_result restart <<EOF
# Rolling restart behind HAProxy: failed requests per restart

Three instances behind HAProxy $(haproxy -v | awk 'NR == 1 {print $3}') in TCP mode with PROXY v2,
\`docs/examples/haproxy.cfg\` (retries 3, option redispatch 1, checks every 500 ms, fall 2,
rise 2; graced checked on \`--health /healthz\`, nginx on a \`location\` answering 200).
wrk $(wrk --version 2>&1 | awk 'NR == 1 {print $2}'), 32 keep-alive connections, GET of a 6-byte
file, ${DUR} s per run; 2 s in, each instance in turn is stopped gracefully (graced: SIGTERM,
\`--shutdown-timeout 10s\`, default \`stop-idle-grace\` 3 s; nginx: SIGQUIT), waited for, left
until HAProxy marks it DOWN (new connections to it are refused meanwhile), started again and
waited for until HAProxy shows it UP. A failed request: a wrk error (connect, read, write,
timeout) or a non-2xx answer. $RUNS runs each, alternating; medians.

| server | failed requests per restart (median) | each run | requests per run (median) |
|---|---|---|---|
| graced | $g | ${per_restart[graced]}| $(med "${total[graced]}") |
| graced \`--stop-idle-grace 0\` | $g0 | ${per_restart[graced-grace0]}| $(med "${total[graced-grace0]}") |
| nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') | $n | ${per_restart[nginx]}| $(med "${total[nginx]}") |

graced / nginx: $(ratio "$g" "$n") (failed requests per restart). \`--stop-idle-grace 0\`: no lame
duck, an idle keep-alive connection closes at the stop as soon as its last response has left
the kernel's send queue (the listen queue is still served): what the grace itself saves. It
varies with how many responses are still on their way at the stop.
EOF
