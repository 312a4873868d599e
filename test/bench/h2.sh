#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# h2.sh - HTTP/2 over TLS (issue 18): graced, nginx's http2 and h2o in the
# same run, one worker each, the same EC
# P-256 certificate, the same 1 KiB file; server on core 0, h2load on core 1;
# every figure the median of RUNS (3) interleaved runs:
#  1. busy: h2load -c16 -m10 for DUR (5) s: requests/s and the server's CPU
#     time per request (its processes' utime+stime over the requests done);
#  2. idle-ish: h2load -c1000 -m1 --rps 1 for DUR_IDLE (10) s: a thousand
#     connections making a request a second each: requests/s and CPU per
#     request (handshakes included: each connection's first seconds);
#  3. memory: IDLE_N (2000) h2 connections held open after one request each
#     (h2_idle_clients.py): the server's RSS growth per connection, read
#     IDLE_WAIT (2) s after the last answer (idle: graced gives its frame
#     buffers back after 1 s without a stream; nginx frees its buffers at once).
# GRACED_CMD: graced's command line, with {port} {cert} {key} {root}; by
#   default the build's graced --tls-listen 127.0.0.1:{port} --tls-cert {cert}
#   --tls-key {key} --root {root} --log-level error (GRACED_CMD= leaves it out)
# A server that does not negotiate h2 is reported as such (no figures).
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
DUR=${DUR:-5}
DUR_IDLE=${DUR_IDLE:-10}
IDLE_N=${IDLE_N:-2000}
IDLE_WAIT=${IDLE_WAIT:-2}
need nginx nginx-light
need h2o h2o
need h2load nghttp2-client
need openssl openssl
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
chmod 644 "$tmp/key.pem" "$tmp/cert.pem"
mkdir -p "$tmp/root"
head -c 1024 /dev/urandom | base64 -w 64 | head -c 1024 >"$tmp/root/file.txt"
cp "$tmp/root/file.txt" "$tmp/root/idle.txt"
chmod -R a+rX "$tmp/root"

[ -n "${GRACED_CMD+x}" ] ||
    GRACED_CMD="$build/src/graced/graced --tls-listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key} --root {root} --log-level error"
servers=(nginx h2o)
[ -n "${GRACED_CMD:-}" ] && servers+=(graced)
declare -A port
for s in "${servers[@]}"; do port[$s]=$(free_port); done
cat >"$tmp/h2o.conf" <<H2O
num-threads: 1
max-connections: 20000
error-log: $tmp/h2o-error.log
listen:
  host: 127.0.0.1
  port: ${port[h2o]}
  ssl:
    certificate-file: $tmp/cert.pem
    key-file: $tmp/key.pem
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /:
        file.dir: $tmp/root
H2O
ngx=$(nginx_conf "${port[nginx]}" "
    ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:64m;
    http2_max_concurrent_streams 128;
    root $tmp/root;" "ssl http2")

# start_servers: every server fresh (the memory figure needs a server that
# has not yet held more connections than it is measured with)
start_servers() {
    start nginx nginx -c "$ngx"
    start h2o h2o -c "$tmp/h2o.conf"
    if [ -n "${GRACED_CMD:-}" ]; then
        local cmd=${GRACED_CMD//\{port\}/${port[graced]}}
        cmd=${cmd//\{cert\}/$tmp/cert.pem}
        cmd=${cmd//\{key\}/$tmp/key.pem}
        cmd=${cmd//\{root\}/$tmp/root}
        # shellcheck disable=SC2086
        start graced $cmd
    fi
    for s in "${servers[@]}"; do wait_port "${port[$s]}"; done
}
stop_servers() {
    local s v p keep=()
    for s in "${servers[@]}"; do
        v=PID_$s
        stop "${!v}"
    done
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && keep+=("$p"); done
    PIDS=("${keep[@]}")
}
start_servers

server_pids() { # the server's processes: the one started, and its children (workers)
    local v=PID_$1
    echo "${!v} $(pgrep -P "${!v}" | tr '\n' ' ')"
}
# does it speak h2? (h2load says "Application protocol: h2")
declare -A h2ok
for s in "${servers[@]}"; do
    if "${LOAD[@]}" h2load -n 1 -c 1 "https://127.0.0.1:${port[$s]}/file.txt" 2>&1 |
        grep -q 'Application protocol: h2'; then
        h2ok[$s]=1
    else
        h2ok[$s]=
        echo "bench: $s does not negotiate h2" >&2
    fi
done

# h2load_run NAME ARGS...: "req/s server-us-per-request server-core-busy%
# load-core-busy%" (the busy shares say which side bounds the figure)
h2load_run() {
    local name=$1 c0 c1 s0 s1 l0 l1 sc=0 lc=1
    shift
    [ ${#SRV[@]} -gt 0 ] || { sc=; lc=; }
    # shellcheck disable=SC2046
    c0=$(cpu_ticks $(server_pids "$name")); s0=$(core_jiffies "$sc"); l0=$(core_jiffies "$lc")
    "${LOAD[@]}" h2load "$@" "https://127.0.0.1:${port[$name]}/file.txt" >"$tmp/h2load.out" 2>&1 || true
    # shellcheck disable=SC2046
    c1=$(cpu_ticks $(server_pids "$name")); s1=$(core_jiffies "$sc"); l1=$(core_jiffies "$lc")
    awk -v cpu=$((c1 - c0)) -v s0="$s0" -v s1="$s1" -v l0="$l0" -v l1="$l1" '
        /^finished in/ {rps = $4}
        /^requests:/ {done = $8}
        /^status codes:/ {ok = $3}
        END {if (done && ok < done) {print "bench: only " ok " of " done " answers were 2xx" > "/dev/stderr"; done = 0; rps = 0}
             split(s0, a, " "); split(s1, b, " "); split(l0, c, " "); split(l1, d, " ")
             st = b[3] - a[3]; lt = d[3] - c[3]
             printf "%.0f %.1f %.0f %.0f\n", rps, done ? cpu * 1e4 / done : 0,
                 st ? 100 * (b[1] - a[1]) / st : 0, lt ? 100 * (d[1] - c[1]) / lt : 0}' "$tmp/h2load.out"
}

# idle_bytes NAME: RSS growth per held h2 connection, in bytes
idle_bytes() {
    local name=$1 r0 r1 fifo=$tmp/idle.fifo line
    rm -f "$fifo"
    mkfifo "$fifo"
    # shellcheck disable=SC2046
    r0=$(rss_kib $(server_pids "$name"))
    "${LOAD[@]}" python3 "$top/test/bench/h2_idle_clients.py" "${port[$name]}" "$IDLE_N" /idle.txt \
        <"$fifo" >"$tmp/idle.out" 2>&1 &
    local cpid=$!
    exec 7>"$fifo"
    for _ in $(seq 1200); do
        grep -q '^ready\|^no h2\|Error' "$tmp/idle.out" 2>/dev/null && break
        sleep 0.1
    done
    sleep "$IDLE_WAIT"
    # shellcheck disable=SC2046
    r1=$(rss_kib $(server_pids "$name"))
    exec 7>&-
    wait "$cpid" 2>/dev/null || true
    line=$(grep '^ready' "$tmp/idle.out" || echo "ready 0")
    awk -v r0="$r0" -v r1="$r1" -v n="$IDLE_N" -v l="$line" 'BEGIN {
        split(l, a, " "); if (a[2] + 0 < n) {print "nan"; exit}
        printf "%.0f\n", (r1 - r0) * 1024 / n}'
    sleep 1 # let the server drop them before the next measurement
}

for s in "${servers[@]}"; do : >"$tmp/$s.busy"; : >"$tmp/$s.idle"; : >"$tmp/$s.mem"; done
for run in $(seq "$RUNS"); do
    [ "$run" = 1 ] || start_servers
    for s in "${servers[@]}"; do
        [ -n "${h2ok[$s]}" ] || continue
        echo "bench: run $run $s" >&2
        idle_bytes "$s" >>"$tmp/$s.mem"
        h2load_run "$s" -c16 -m10 -t1 -D "$DUR" >>"$tmp/$s.busy"
        h2load_run "$s" -c1000 -m1 -t1 --rps 1 -D "$DUR_IDLE" >>"$tmp/$s.idle"
    done
    stop_servers
done

col() { cut -d' ' -f"$2" "$tmp/$1" | median; }
{
    echo "HTTP/2 over TLS (TLS 1.3, EC P-256), a 1 KiB file, one worker each, medians of $RUNS runs"
    echo "(busy: h2load -c16 -m10, ${DUR} s; idle-ish: h2load -c1000 -m1 --rps 1, ${DUR_IDLE} s;"
    echo "memory: $IDLE_N h2 connections held after one request each, RSS read ${IDLE_WAIT} s after the last answer)."
    echo
    echo "| server | busy req/s | busy CPU us/req | busy: server core %, load core % | idle-ish req/s | idle-ish CPU us/req | bytes per idle h2 connection |"
    echo "|---|---|---|---|---|---|---|"
    for s in "${servers[@]}"; do
        if [ -z "${h2ok[$s]}" ]; then
            echo "| $s | no h2 negotiated | | | | |"
            continue
        fi
        echo "| $s | $(col "$s.busy" 1) | $(col "$s.busy" 2) | $(col "$s.busy" 3), $(col "$s.busy" 4) | $(col "$s.idle" 1) | $(col "$s.idle" 2) | $(median <"$tmp/$s.mem") |"
    done
    for s in "${servers[@]}"; do
        [ "$s" != nginx ] && [ -n "${h2ok[$s]}" ] && [ -n "${h2ok[nginx]}" ] || continue
        echo "| $s / nginx | $(ratio "$(col "$s.busy" 1)" "$(col nginx.busy 1)") |" \
            "$(ratio "$(col "$s.busy" 2)" "$(col nginx.busy 2)") | |" \
            "$(ratio "$(col "$s.idle" 1)" "$(col nginx.idle 1)") |" \
            "$(ratio "$(col "$s.idle" 2)" "$(col nginx.idle 2)") |" \
            "$(ratio "$(median <"$tmp/$s.mem")" "$(median <"$tmp/nginx.mem")") |"
    done
    echo
    echo "Every run (req/s, CPU us/req):"
    for s in "${servers[@]}"; do
        [ -n "${h2ok[$s]}" ] || continue
        echo "- $s busy: $(tr '\n' ';' <"$tmp/$s.busy") idle-ish: $(tr '\n' ';' <"$tmp/$s.idle") bytes/conn: $(tr '\n' ' ' <"$tmp/$s.mem")"
    done
    echo
    echo "Versions: $(nginx -v 2>&1), $(h2o --version | head -1), $(h2load --version)."
} | write_result h2
