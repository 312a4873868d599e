#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# threads.sh - how keep-alive throughput scales with one server per thread
# (docs/examples/threads, SO_REUSEPORT) on this machine: 1 and 2 threads,
# with the single-threaded hello example as the peer in the same runs.
#
# On a 2-core machine the load generator needs a core too, so the servers
# and wrk (2 threads, 64 connections) all run unpinned on every core: the
# figure is what 2 threads win when they share the machine with their
# load, not an ideal 2x. A pinned run (server core 0, wrk core 1, as in
# throughput.sh) is kept as the reference for one thread.
# RUNS (5) runs of DUR (4) seconds each, interleaved; medians, with the
# min-max spread and the load average (other users of the machine).
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
DUR=${DUR:-4}
need wrk wrk

p_hello=$(free_port); p_t1=$(free_port); p_t2=$(free_port); p_pin=$(free_port)
# unpinned: started without the SRV prefix
"$build/docs/examples/hello" --port "$p_hello" >"$tmp/hello.out" 2>&1 & PIDS+=($!)
"$build/docs/examples/threads" --threads 1 --port "$p_t1" >"$tmp/t1.out" 2>&1 & PIDS+=($!)
"$build/docs/examples/threads" --threads 2 --port "$p_t2" >"$tmp/t2.out" 2>&1 & PIDS+=($!)
start pin "$build/docs/examples/threads" --threads 1 --port "$p_pin"
for p in $p_hello $p_t1 $p_t2 $p_pin; do wait_port "$p"; done

# one unpinned run: "req/s p99-ms machine-busy%"
run_free() {
    local s0 s1
    s0=$(core_jiffies "")
    wrk -t2 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$1/" >"$tmp/wrk.out"
    s1=$(core_jiffies "")
    awk -v s0="$s0" -v s1="$s1" '
        /Requests\/sec/ {rps = $2}
        /^ +99%/ {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0;
                  else if (v ~ /s$/) v = v * 1000; p99 = v}
        END {split(s0, a, " "); split(s1, b, " "); t = b[3] - a[3]
             printf "%.0f %.3f %.0f\n", rps, p99, t ? 100 * (b[1] - a[1]) / t : 0}' "$tmp/wrk.out"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
for s in hello t1 t2 pin; do : >"$tmp/$s.res"; done
for _ in $(seq "$RUNS"); do # interleaved, so drift hits every server alike
    for s in hello t1 t2; do
        port_var=p_$s
        run_free "${!port_var}" >>"$tmp/$s.res"
    done
    wrk_run "http://127.0.0.1:$p_pin/" >>"$tmp/pin.res"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

col() { cut -d' ' -f"$2" "$tmp/$1.res" | median; }
spread() { cut -d' ' -f1 "$tmp/$1.res" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }
h=$(col hello 1); t1=$(col t1 1); t2=$(col t2 1); pin=$(col pin 1)
{
    echo "| server | placement | req/s (median of $RUNS) | min-max | p99 ms | machine busy % |"
    echo "|---|---|---|---|---|---|"
    echo "| hello (peer, 1 thread) | unpinned, wrk -t2 unpinned | $h | $(spread hello) | $(col hello 2) | $(col hello 3) |"
    echo "| threads --threads 1 | unpinned, wrk -t2 unpinned | $t1 | $(spread t1) | $(col t1 2) | $(col t1 3) |"
    echo "| threads --threads 2 | unpinned, wrk -t2 unpinned | $t2 | $(spread t2) | $(col t2 2) | $(col t2 3) |"
    echo "| threads --threads 1 | server core 0, wrk -t1 core 1 | $pin | $(spread pin) | $(col pin 2) | — |"
    echo
    echo "2 threads / 1 thread: **$(ratio "$t2" "$t1")**; 1 thread / hello peer: $(ratio "$t1" "$h");" \
         "1 thread unpinned / pinned: $(ratio "$t1" "$pin")."
    echo "Load average before / after: $load0 / $load1 (the machine is shared)."
} | write_result threads
