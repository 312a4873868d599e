#!/bin/bash
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

srv_core=0; load_core=1
[ ${#SRV[@]} -gt 0 ] || { srv_core=; load_core=; } # one core: the whole machine
# one wrk run: prints "req/s p99-ms server-core-busy% load-core-busy% server-user%"
# (the busy shares say which side bounds the figure)
run_wrk() {
    local port=$1 mode=$2 args=() s0 l0 s1 l1
    case $mode in
    pipeline) args=(-s "$top/test/bench/pipeline.lua") ;;
    close) args=(-H "Connection: close") ;;
    esac
    s0=$(core_jiffies $srv_core); l0=$(core_jiffies $load_core)
    "${LOAD[@]}" wrk -t1 -c64 -d"${DUR}s" --latency "${args[@]}" "http://127.0.0.1:$port/" >"$tmp/wrk.out"
    s1=$(core_jiffies $srv_core); l1=$(core_jiffies $load_core)
    awk -v s0="$s0" -v s1="$s1" -v l0="$l0" -v l1="$l1" '
        /Requests\/sec/ {rps = $2}
        /^ +99%/ {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0;
                  else if (v ~ /s$/) v = v * 1000; p99 = v}
        END {split(s0, a, " "); split(s1, b, " "); split(l0, c, " "); split(l1, d, " ")
             st = b[3] - a[3]; lt = d[3] - c[3]
             printf "%.0f %.3f %.0f %.0f %.0f\n", rps, p99,
                 st ? 100 * (b[1] - a[1]) / st : 0, lt ? 100 * (d[1] - c[1]) / lt : 0,
                 st ? 100 * (b[2] - a[2]) / st : 0}' "$tmp/wrk.out"
}

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
        h=$(cut -d' ' -f1 "$tmp/hello.$mode" | median)
        n=$(cut -d' ' -f1 "$tmp/nginx.$mode" | median)
        e=$(cut -d' ' -f1 "$tmp/evhttp.$mode" | median)
        hl=$(cut -d' ' -f2 "$tmp/hello.$mode" | median)
        nl=$(cut -d' ' -f2 "$tmp/nginx.$mode" | median)
        el=$(cut -d' ' -f2 "$tmp/evhttp.$mode" | median)
        col() { cut -d' ' -f"$2" "$tmp/$1.$mode" | median; }
        echo "| $mode | $h | $n | $e | $(ratio "$h" "$n") | $(ratio "$h" "$e") | $hl / $nl / $el |" \
             "$(col hello 3) / $(col nginx 3) / $(col evhttp 3) | $(col hello 4) / $(col nginx 4) / $(col evhttp 4) |" \
             "$(col hello 5) / $(col nginx 5) / $(col evhttp 5) |"
    done
} | write_result throughput
