#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# instructions.sh - instructions per request (valgrind callgrind, user space:
# the library, libevent and libc; the kernel is not counted) of the hello
# example for N (4000) requests on one keep-alive connection, one by one and
# pipelined 16 deep, for each build given. Exact and repeatable, unlike
# req/s on a machine others share: it shows what a change costs in code
# (issue 18's seam: indirection only), not what the kernel costs.
#   test/bench/instructions.sh NAME=BUILD [NAME=BUILD...]
. "$(dirname "$0")/lib.sh"
N=${N:-4000}
need valgrind valgrind
[ $# -gt 0 ] || set -- "this=$build"
{
    echo "hello example, $N requests on one connection after 200 to warm up; callgrind Ir per request"
    echo
    echo "| build | keep-alive, one by one | pipelined 16 deep |"
    echo "|---|---|---|"
    for nb in "$@"; do
        name=${nb%%=*}; b=${nb#*=}
        port=$(free_port)
        LD_LIBRARY_PATH="$b/src/lib/.libs" valgrind --tool=callgrind \
            --callgrind-out-file="$tmp/cg.$name.%p" "$b/docs/examples/.libs/hello" --port "$port" \
            >"$tmp/cg.$name.log" 2>&1 &
        vp=$!
        PIDS+=("$vp")
        for _ in $(seq 150); do
            python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" \
                2>/dev/null && break
            sleep 0.2
        done
        python3 "$top/test/bench/instr_client.py" "$port" / 200 1 >/dev/null
        row="| $name"
        for depth in 1 16; do
            callgrind_control -z "$vp" >/dev/null
            python3 "$top/test/bench/instr_client.py" "$port" / "$N" "$depth" >/dev/null
            callgrind_control -d "d$depth" "$vp" >/dev/null
            f=$(grep -l "^desc: Trigger: .*d$depth\$" "$tmp/cg.$name".*.* | head -1)
            ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
            row="$row | $((ir / N))"
        done
        echo "$row |"
        stop "$vp"
    done
} | write_result "${RESULT_NAME:-instructions}"
