#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# seam_ab.sh - the library's HTTP/1.1 hot path, before and after a change
# that should cost nothing (issue 18's seam: indirection only). Two builds
# of the same tree, A and B, each with the hello example and graced:
# hello keep-alive, hello pipelined 16 deep, graced's 4 KiB static file,
# 64 connections, ROUNDS (5) rounds of DUR (3) seconds, A and B interleaved
# in every round so that drift on a shared machine hits both alike; then
# bytes per idle keep-alive connection (N, 2000) for each. Medians, and B/A.
# Besides req/s, the server process's own CPU time per request (user+system
# ticks over the requests wrk counted): on a machine others share, req/s
# moves with their load, CPU per request much less.
#   A_BUILD=/path/to/main/build B_BUILD=build test/bench/seam_ab.sh
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-3}
N=${N:-2000}
A_BUILD=${A_BUILD:?A_BUILD: the build to compare against (main)}
B_BUILD=${B_BUILD:-$build}
A_NAME=${A_NAME:-A}
B_NAME=${B_NAME:-B}
need wrk wrk
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

www=$tmp/www
mkdir -p "$www"
head -c 4096 /dev/urandom >"$www/file.bin"
echo idle >"$www/idle.txt"
for v in A B; do
    b=${v}_BUILD
    ph=$(free_port); pg=$(free_port)
    start "hello$v" "${!b}/docs/examples/hello" --port "$ph"
    start "graced$v" "${!b}/src/graced/graced" --listen "127.0.0.1:$pg" --root "$www" \
        --log-level error --max-connections $((N + 1000)) --keepalive-timeout 300
    wait_port "$ph"; wait_port "$pg"
    printf -v "ph_$v" '%s' "$ph"
    printf -v "pg_$v" '%s' "$pg"
done

# one run: "req/s p99-ms server-core-busy% load-core-busy% server-user% cpu-us-per-request"
run() { # run TEST VARIANT
    local ph=ph_$2 pg=pg_$2 pid t0 t1 out hz
    hz=$(getconf CLK_TCK)
    case $1 in
    file4k) pid=PID_graced$2 ;;
    *) pid=PID_hello$2 ;;
    esac
    t0=$(cpu_ticks "${!pid}")
    case $1 in
    keepalive) out=$(wrk_run "http://127.0.0.1:${!ph}/") ;;
    pipeline) out=$(wrk_run "http://127.0.0.1:${!ph}/" -s "$top/test/bench/pipeline.lua") ;;
    file4k) out=$(wrk_run "http://127.0.0.1:${!pg}/file.bin") ;;
    esac
    t1=$(cpu_ticks "${!pid}")
    echo "$out $(awk -v o="$out" -v d="$DUR" -v t=$((t1 - t0)) -v hz="$hz" \
        'BEGIN {split(o, a, " "); n = a[1] * d; printf "%.3f", n ? t * 1e6 / hz / n : 0}')"
}
tests="keepalive pipeline file4k"
for t in $tests; do : >"$tmp/$t.A"; : >"$tmp/$t.B"; done
for r in $(seq "$ROUNDS"); do
    for t in $tests; do
        # the order alternates too: neither build always runs first
        if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
        for v in $order; do run "$t" "$v" >>"$tmp/$t.$v"; done
    done
done
col() { cut -d' ' -f"$2" "$tmp/$1" | median; } # col FILE FIELD
sorted() { cut -d' ' -f1 "$tmp/$1" | sort -g | paste -s -d' '; }

idle() { # idle PORT PID -> bytes per idle connection, and how many were served
    local before after fifo=$tmp/idle.$1 ok cpid
    before=$(rss_kib "$2")
    mkfifo "$fifo"
    "${LOAD[@]}" python3 "$top/test/bench/idle_clients.py" "$1" "$N" <"$fifo" >"$tmp/idle.$1.ready" &
    cpid=$!
    exec 7>"$fifo"
    for _ in $(seq 600); do grep -q ready "$tmp/idle.$1.ready" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    after=$(rss_kib "$2")
    ok=$(awk '{print $2}' "$tmp/idle.$1.ready")
    exec 7>&-
    wait "$cpid" || true
    echo "$(( (after - before) * 1024 / N )) $ok"
}
read -r ia_b ia_ok < <(idle "$pg_A" "$PID_gracedA")
read -r ib_b ib_ok < <(idle "$pg_B" "$PID_gracedB")

{
    echo "A = $A_NAME, B = $B_NAME; $ROUNDS rounds x ${DUR} s, wrk -t1 -c64, A and B interleaved (order alternating)"
    echo
    echo "| test | A req/s (median) | B req/s (median) | B/A | server CPU µs per request A / B (median) | B/A | p99 ms A / B | server core busy % A / B | A runs, sorted | B runs, sorted |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for t in $tests; do
        a=$(col "$t.A" 1); b=$(col "$t.B" 1); ca=$(col "$t.A" 6); cb=$(col "$t.B" 6)
        echo "| $t | $a | $b | $(ratio "$b" "$a") | $ca / $cb | $(ratio "$cb" "$ca") |" \
             "$(col "$t.A" 2) / $(col "$t.B" 2) | $(col "$t.A" 3) / $(col "$t.B" 3) |" \
             "$(sorted "$t.A") | $(sorted "$t.B") |"
    done
    echo
    echo "| $N idle keep-alive connections (graced) | bytes per connection | served |"
    echo "|---|---|---|"
    echo "| A | $ia_b | $ia_ok |"
    echo "| B | $ib_b | $ib_ok |"
} | write_result "${RESULT_NAME:-seam}"
