# SPDX-License-Identifier: BSD-3-Clause
# lib.sh - helpers shared by the benchmark scripts (sourced, bash).
# Servers run pinned to core 0 and the load generator to core 1 when the
# machine has two cores; every process started is stopped by PID on exit.
set -eu
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${top_builddir:-$top/build}
results=$top/test/bench/results
mkdir -p "$results"
tmp=$(mktemp -d /tmp/gracebench.XXXXXX)
chmod 755 "$tmp" # nginx workers run as www-data
PIDS=()
stamp=$(date -u +%Y-%m-%d)
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# need CMD PACKAGE: install a Debian package when its command is missing
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "bench: installing $2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SRV=(taskset -c 0); LOAD=(taskset -c 1); pinning="server on core 0, load on core 1"
else
    SRV=(); LOAD=(); pinning="no pinning (one core)"
fi

# start NAME CMD...: run pinned in the background; its PID in PID_NAME.
# Each server gets a session of its own, as a daemon has: with the kernel's
# autogroup scheduling (sched_autogroup_enabled, on in Debian's kernels) a
# session is one scheduling group, and a group's weight on a core shrinks
# with the share of its load that runs on the other core. In the bench's
# session, a server on core 0 weighed a fraction of a process beside the
# load generator on core 1, and any other process on core 0 starved it:
# GET p99 of 3-4 s for graced and nginx alike (upload_latency.sh). setsid
# execs in place here (a background job of a script is no group leader), so
# the PID is the server's. SHARED_SESSION=1: the old way, in the bench's
# (upload_latency.sh then keeps its probe there too, as it did).
start() {
    local name=$1 own=(setsid); shift
    [ -z "${SHARED_SESSION:-}" ] || own=()
    "${own[@]}" "${SRV[@]}" "$@" >"$tmp/$name.out" 2>&1 &
    PIDS+=($!)
    printf -v "PID_$name" '%s' "$!"
}

stop() { # stop PID: TERM, then wait
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

# cpu_ticks PID...: user+system clock ticks of these processes (and children)
cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# core_jiffies N: "busy user total" jiffies of core N since boot (user
# includes nice; busy is everything but idle and iowait)
core_jiffies() {
    awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i;
                                print t - $5 - $6, $2 + $3, t}' /proc/stat
}

# wrk_run URL [WRK-ARGS...]: one pinned wrk run of DUR seconds, 64 connections.
# Prints "req/s p99-ms server-core-busy% load-core-busy% server-core-user%":
# the busy shares say whether the server or the load generator bounds the figure.
wrk_run() {
    local url=$1 s0 l0 s1 l1 sc=0 lc=1
    shift
    [ ${#SRV[@]} -gt 0 ] || { sc=; lc=; } # one core: the whole machine
    s0=$(core_jiffies "$sc"); l0=$(core_jiffies "$lc")
    "${LOAD[@]}" wrk -t1 -c64 -d"${DUR}s" --latency "$@" "$url" >"$tmp/wrk.out"
    s1=$(core_jiffies "$sc"); l1=$(core_jiffies "$lc")
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

# rss_kib PID...: resident memory of these processes
rss_kib() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

nginx_conf() { # nginx_conf PORT EXTRA-SERVER-DIRECTIVES [LISTEN-PARAMS] [MAIN-DIRECTIVES] -> a config in $tmp
    local conf="$tmp/nginx-$1.conf"
    mkdir -p "$tmp/nginx"
    cat >"$conf" <<NGX
${4:-}
worker_processes 1;
worker_rlimit_nofile 19000;
daemon off;
pid $tmp/nginx-$1.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 18000; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$1${3:+ $3} backlog=4096;
    $2
  }
}
NGX
    echo "$conf"
}

# write_result NAME: stdin (a Markdown table) to results/NAME-DATE.md and stdout
write_result() {
    local f="$results/$1-$stamp.md"
    { echo "<!-- $stamp, $machine, $pinning -->"; cat; } | tee "$f"
    echo "(written to ${f#$top/})"
}
