#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# throughput.sh - requests/s and p99 latency of the hello example against
# nginx ("return 200") and libevent's evhttp, one worker each, 64
# connections: keep-alive, pipelined 16 deep, and Connection: close.
# RUNS (3) runs of DUR (4) seconds each; medians are reported.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
DUR=${DUR:-4}
need wrk wrk
need nginx nginx-light

p_hello=$(free_port); p_nginx=$(free_port); p_evhttp=$(free_port)
start hello "$build/docs/examples/hello" --port "$p_hello"
start nginx nginx -c "$(nginx_conf "$p_nginx" 'location / { return 200 "hello world\n"; }')"
start evhttp "$build/test/bench/evhttp_hello" --port "$p_evhttp"
for p in $p_hello $p_nginx $p_evhttp; do wait_port "$p"; done

# one wrk run: "req/s p99-ms server-core-busy% load-core-busy% server-user%"
run_wrk() {
    local port=$1 mode=$2 args=()
    case $mode in
    pipeline) args=(-s "$top/test/bench/pipeline.lua") ;;
    close) args=(-H "Connection: close") ;;
    esac
    wrk_run "http://127.0.0.1:$port/" "${args[@]}"
}

col() { cut -d' ' -f"$2" "$tmp/$1.$mode" | median; } # col SERVER FIELD
{
    echo "| mode | gracehttp hello req/s | nginx req/s | evhttp req/s | hello/nginx | hello/evhttp | p99 ms (hello / nginx / evhttp) | server core busy % (hello / nginx / evhttp) | load core busy % | server core in user space % |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for mode in keepalive pipeline close; do
        for s in hello nginx evhttp; do : >"$tmp/$s.$mode"; done
        for _ in $(seq "$RUNS"); do # interleaved, so drift hits every server alike
            for s in hello nginx evhttp; do
                port_var=p_$s
                run_wrk "${!port_var}" "$mode" >>"$tmp/$s.$mode"
            done
        done
        h=$(col hello 1); n=$(col nginx 1); e=$(col evhttp 1)
        echo "| $mode | $h | $n | $e | $(ratio "$h" "$n") | $(ratio "$h" "$e") |" \
             "$(col hello 2) / $(col nginx 2) / $(col evhttp 2) |" \
             "$(col hello 3) / $(col nginx 3) / $(col evhttp 3) | $(col hello 4) / $(col nginx 4) / $(col evhttp 4) |" \
             "$(col hello 5) / $(col nginx 5) / $(col evhttp 5) |"
    done
} | write_result throughput
