#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# early_reply.sh - does the client receive an early answer? The delivery
# matrix (clients x body sizes x servers), then the server CPU time spent
# discarding 1 GiB that nobody will read (graced: MSG_TRUNC; nginx reads it
# through a buffer).
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
need nginx nginx-light
need curl curl

up=$tmp/up
mkdir -p "$up"
echo secret >"$tmp/token"
p_g=$(free_port); p_n=$(free_port); p_e=$(free_port); p_off=$(free_port)
graced_args=(--root "$up" --upload-dir "$up" --auth-token-file "$tmp/token" --log-level error
    --max-body-size 2G)
start graced "$build/src/graced/graced" --listen "127.0.0.1:$p_g" "${graced_args[@]}"
start graced_off "$build/src/graced/graced" --listen "127.0.0.1:$p_off" "${graced_args[@]}" \
    --linger off
start nginx nginx -c "$(nginx_conf "$p_n" 'location /up { return 401 "no token\n"; }')"
start evhttp "$build/test/bench/evhttp_hello" --port "$p_e" --max-body 1024
for p in $p_g $p_n $p_e $p_off; do wait_port "$p"; done

TMPDIR_BENCH=$tmp RUNS=$RUNS "${LOAD[@]}" python3 "$top/test/bench/early_clients.py" \
    "graced=$p_g:401" "nginx=$p_n:401" "evhttp=$p_e:413" "graced-linger-off=$p_off:401" \
    >"$tmp/matrix"

# CPU seconds per GiB discarded (ticks are 1/100 s)
cpu_per_gib() { # cpu_per_gib PORT PIDS...
    local port=$1; shift
    local t0 t1 v=()
    for _ in $(seq "$RUNS"); do
        t0=$(cpu_ticks "$@")
        # 4 GiB, so that 10 ms clock ticks are fine enough
        "${LOAD[@]}" python3 "$top/test/bench/discard_client.py" "$port" $((4 << 30))
        sleep 0.2
        t1=$(cpu_ticks "$@")
        v+=("$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.4f", d / 100 / 4}')")
    done
    printf '%s\n' "${v[@]}" | median
}
# how long each server keeps the socket after the client's FIN (strace)
need strace strace
hold_time() { # hold_time NAME PORT PID: 20 early-refused 1 MiB uploads
    local log=$tmp/$1.strace
    strace -f -ttt -e trace=read,readv,recvfrom,recvmsg,close -o "$log" -p "$3" 2>/dev/null &
    local spid=$!
    sleep 0.5
    for _ in $(seq 20); do
        "${LOAD[@]}" python3 "$top/test/bench/discard_client.py" "$2" $((1 << 20))
    done
    sleep 0.3
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    python3 "$top/test/bench/hold_time.py" "$log"
}
read -r g_hold g_hold99 g_n < <(hold_time graced "$p_g" "$PID_graced")
read -r n_hold n_hold99 n_n < <(hold_time nginx "$p_n" "$(pgrep -P "$PID_nginx" | head -1)")

g_cpu=$(cpu_per_gib "$p_g" "$PID_graced")
n_cpu=$(cpu_per_gib "$p_n" "$PID_nginx" $(pgrep -P "$PID_nginx" | tr '\n' ' '))

{
    echo "Fraction of runs in which the client received the complete early answer"
    echo "(401, or 413 from evhttp's body limit), $RUNS runs per cell:"
    echo
    echo "| server | client | 64 KiB | 1 MiB | 16 MiB | 256 MiB |"
    echo "|---|---|---|---|---|---|"
    awk '{k = $1 " | " $2; if (!(k in row)) order[++n] = k;
          row[k] = row[k] " | " $4 "/" $5}
         END {for (i = 1; i <= n; i++) print "| " order[i] row[order[i]] " |"}' "$tmp/matrix"
    echo
    echo "| socket held after the client's FIN (strace, 20 uploads) | median ms | p99 ms | closes seen |"
    echo "|---|---|---|---|"
    echo "| graced | $g_hold | $g_hold99 | $g_n |"
    echo "| nginx | $n_hold | $n_hold99 | $n_n |"
    echo
    echo "| discarding 1 GiB after an early 401 | server CPU seconds (median of $RUNS) |"
    echo "|---|---|"
    echo "| graced (recv MSG_TRUNC) | $g_cpu |"
    echo "| nginx (discard through a buffer) | $n_cpu |"
    echo "| graced / nginx | $(ratio "$g_cpu" "$n_cpu") |"
} | write_result early-reply
