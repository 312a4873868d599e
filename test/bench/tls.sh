#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# tls.sh - HTTPS against nginx, with the same EC P-256 certificate and the
# same TLS settings (TLS 1.2 and 1.3; TLS 1.3 suites: OpenSSL's defaults;
# TLS 1.2: the library's "ECDHE+AESGCM:ECDHE+CHACHA20", server preference;
# session cache and tickets), one worker each, server on core 0, load on
# core 1, every figure the median of RUNS (3) interleaved runs:
#  1. keep-alive requests/s (wrk over https, 64 connections; hello example
#     against nginx "return 200") and server CPU per request (core 0's busy
#     share over req/s);
#  2. new connections/s, full and resumed handshakes, TLS 1.3 and 1.2:
#     HS_CLIENTS (8) parallel `openssl s_time` loops, each connection one
#     handshake, one HTTP/1.0 GET / and the server's close; s_time says
#     which connections resumed, and the table reports that share;
#  3. server CPU seconds to discard 1 GiB after an early 401 (graced with
#     --upload-dir and --auth-token-file; nginx "return 401" for /up, which
#     reads and decrypts the body to stay keep-alive): a TLS client sends
#     the whole body, its FIN, then reads the answer;
#  4. RSS per idle TLS keep-alive connection, N (10000) open after one
#     request each (graced against nginx, both fresh);
#  5. a 1 GiB file downloaded with curl over TLS (graced --root, nginx root).
# Rows whose gracehttp side is not built with TLS are reported as missing.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
DUR=${DUR:-4}
N=${N:-10000}
HS_CLIENTS=${HS_CLIENTS:-8}
IDLE_PROCS=${IDLE_PROCS:-4}
need wrk wrk
need nginx nginx-light
need curl curl
need openssl openssl
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
hello=$build/docs/examples/hello
graced=$build/src/graced/graced
# how busy the machine is before we start (it may be shared): % of each core over 1 s
idle_check() {
    local a0 a1 b0 b1
    a0=$(core_jiffies 0); b0=$(core_jiffies 1); sleep 1; a1=$(core_jiffies 0); b1=$(core_jiffies 1)
    echo "$a0 $a1 $b0 $b1" | awk '{printf "core 0 %.0f%%, core 1 %.0f%%", 100 * ($4 - $1) / ($6 - $3 + 0.001),
                                          100 * ($10 - $7) / ($12 - $9 + 0.001)}'
}
# WAIT_IDLE=SECONDS: on a shared machine, wait up to that long for both cores
# to be under 15% busy before starting
for _ in $(seq "${WAIT_IDLE:-0}"); do
    idle_check | awk '{b0 = $3 + 0; b1 = $6 + 0; exit !(b0 < 15 && b1 < 15)}' && break
done
busy0=$(idle_check)

# ------------------------------------------------------------ certificate, settings
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
chmod 644 "$tmp/key.pem" "$tmp/cert.pem"
# nginx as close to the library's context (src/lib/tls.c) as its directives go
ngx_tls="ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
    ssl_prefer_server_ciphers on; ssl_session_cache shared:SSL:64m;
    ssl_session_timeout 10m; ssl_session_tickets on;"
tls_args=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")

have_hello=; have_graced=
"$hello" --no-such-option 2>&1 | grep -q -- --tls-cert && have_hello=1
"$graced" --help 2>&1 | grep -q -- --tls-listen && have_graced=1
echo "bench: hello with TLS: ${have_hello:-no}; graced with TLS: ${have_graced:-no}" >&2

unstart() { # unstart PID: stop a server started with start, forget its PID
    stop "$1"
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
nginx_pids() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }
cpu_pids() { # the server's processes: graced, or nginx master and worker
    local pid_var=PID_$1
    case $1 in nginx*) nginx_pids "${!pid_var}" ;; *) echo "${!pid_var}" ;; esac
}
col() { cut -d' ' -f"$2" "$tmp/$1" | median; } # col FILE FIELD: median of a column
# negotiated PORT [s_client args]: "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"
negotiated() {
    local p=$1; shift
    timeout 10 openssl s_client -connect "127.0.0.1:$p" -servername localhost "$@" \
        </dev/null 2>/dev/null |
        awk '/^New, / {v = $2; c = $NF; sub(",", "", v)}
             /^Server Temp Key:/ {k = $4; sub(",", "", k)}
             END {print (v ? v : "-") " " (c ? c : "-") " " (k ? k : "-")}'
}

# ------------------------------------------------------------ 1, 2: hello vs nginx
p_hello=$(free_port); p_ngx=$(free_port)
srv12=(nginx)
start nginx "$(command -v nginx)" -c "$(nginx_conf "$p_ngx" \
    "$ngx_tls location / { return 200 \"hello world\n\"; }" ssl)"
wait_port "$p_ngx"
if [ -n "$have_hello" ]; then
    start hello "$hello" --port "$p_hello" "${tls_args[@]}"
    wait_port "$p_hello"
    srv12=(hello nginx)
fi
declare -A port=([hello]=$p_hello [nginx]=$p_ngx)
for s in "${srv12[@]}"; do
    echo "${port[$s]} $(negotiated "${port[$s]}") / $(negotiated "${port[$s]}" -tls1_2)" \
        >"$tmp/$s.neg"
done

# hs_run NAME MODE VERSION-FLAG: HS_CLIENTS s_time loops of DUR seconds ->
# "conn/s server-core-busy% load-core-busy% server-us-per-conn resumed-share%"
hs_run() {
    local name=$1 mode=$2 s0 l0 s1 l1 t0 t1 c0 c1 i pids=()
    # shellcheck disable=SC2046
    c0=$(cpu_ticks $(cpu_pids "$name")); s0=$(core_jiffies 0); l0=$(core_jiffies 1)
    t0=$(date +%s.%N)
    for i in $(seq "$HS_CLIENTS"); do
        timeout $((DUR + 30)) "${LOAD[@]}" openssl s_time -connect "127.0.0.1:${port[$name]}" \
            "-$mode" "$3" -www / -time "$DUR" >"$tmp/stime.$i" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    t1=$(date +%s.%N); s1=$(core_jiffies 0); l1=$(core_jiffies 1)
    # shellcheck disable=SC2046
    c1=$(cpu_ticks $(cpu_pids "$name"))
    cat "$tmp"/stime.* | awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" \
        -v l0="$l0" -v l1="$l1" -v cpu=$((c1 - c0)) '
        /^[*rt3]+$/ {for (i = 1; i <= length($0); i++) {n++; if (substr($0, i, 1) == "r") r++}}
        / connections in [0-9.]+s;/ {c += $1}
        END {split(s0, a, " "); split(s1, b, " "); split(l0, x, " "); split(l1, y, " ")
             st = b[3] - a[3]; lt = y[3] - x[3]; w = t1 - t0
             printf "%.0f %.0f %.0f %.1f %.0f\n", (w > 0 ? c / w : 0),
                 st ? 100 * (b[1] - a[1]) / st : 0, lt ? 100 * (y[1] - x[1]) / lt : 0,
                 c ? cpu * 1e4 / c : 0, n ? 100 * r / n : 0}'
    rm -f "$tmp"/stime.*
}

# wrk_cpu NAME [WRK-ARGS]: wrk_run on NAME's port, plus the server processes'
# CPU time per request: "req/s p99-ms server-core-busy% load-core-busy%
# server-core-user% server-us-per-request"
wrk_cpu() {
    local name=$1 c0 c1 line
    shift
    # shellcheck disable=SC2046
    c0=$(cpu_ticks $(cpu_pids "$name"))
    line=$(wrk_run "https://127.0.0.1:${port[$name]}/" "$@")
    # shellcheck disable=SC2046
    c1=$(cpu_ticks $(cpu_pids "$name"))
    awk -v l="$line" -v cpu=$((c1 - c0)) '/ requests in / {n = $1}
        END {printf "%s %.2f\n", l, n ? cpu * 1e4 / n : 0}' "$tmp/wrk.out"
}

modes=(keepalive close13 new13 reuse13 new12 reuse12)
for s in "${srv12[@]}"; do for m in "${modes[@]}"; do : >"$tmp/$s.$m"; done; done
for _ in $(seq "$RUNS"); do # interleaved, so drift hits every server alike
    for s in "${srv12[@]}"; do wrk_cpu "$s" >>"$tmp/$s.keepalive"; done
done
for _ in $(seq "$RUNS"); do # wrk resumes: it keeps each connection's last session
    for s in "${srv12[@]}"; do wrk_cpu "$s" -H "Connection: close" >>"$tmp/$s.close13"; done
done
for m in new13 reuse13 new12 reuse12; do
    for _ in $(seq "$RUNS"); do
        for s in "${srv12[@]}"; do
            hs_run "$s" "${m%1?}" "-tls1_${m: -1}" >>"$tmp/$s.$m"
        done
    done
done
# Does wrk resume (row 2, Connection: close)? It keeps each connection's last
# session. Seen from the server: during 1 s of it, the server's first flight
# of a full TLS 1.3 handshake carries the certificate (about 800 bytes here),
# a resumed one does not (about 250): count them in an strace of its writes.
resumed_share() { # resumed_share NAME -> "R of N"
    local name=$1 pid_var=PID_$1 pid spid log=$tmp/$1.hs.strace
    pid=${!pid_var}
    case $name in nginx*) pid=$(pgrep -P "$pid" | head -1) ;; esac
    strace -e trace=write,writev,sendmsg -o "$log" -p "$pid" 2>/dev/null &
    spid=$!
    sleep 0.5
    timeout 30 "${LOAD[@]}" wrk -t1 -c64 -d1s -H "Connection: close" \
        "https://127.0.0.1:${port[$name]}/" >/dev/null || true
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    awk '/^(write|writev|sendmsg)\([0-9]+, .?"\\26\\3\\3/ {if ($NF + 0 > 500) f++; else r++}
         END {printf "%d of %d", r, r + f}' "$log"
}
need strace strace
for s in "${srv12[@]}"; do resumed_share "$s" >"$tmp/$s.resumed"; done
for s in "${srv12[@]}"; do
    pid_var=PID_$s
    unstart "${!pid_var}"
done

# ------------------------------------------------------------ 3: early 401, discard 1 GiB
up=$tmp/up
mkdir -p "$up"
echo secret >"$tmp/token"
p_gup=$(free_port); p_nup=$(free_port)
start nginx_up "$(command -v nginx)" -c "$(nginx_conf "$p_nup" \
    "$ngx_tls location /up { return 401 \"no token\n\"; }" ssl)"
srv3=(nginx_up)
if [ -n "$have_graced" ]; then
    start graced_up "$graced" --tls-listen "127.0.0.1:$p_gup" "${tls_args[@]}" --root "$up" \
        --upload-dir "$up" --auth-token-file "$tmp/token" --log-level error --max-body-size 2G \
        --linger-bytes 2G
    wait_port "$p_gup"
    srv3=(graced_up nginx_up)
fi
wait_port "$p_nup"
port[graced_up]=$p_gup; port[nginx_up]=$p_nup
for s in "${srv3[@]}"; do : >"$tmp/$s.discard"; done
for _ in $(seq "$RUNS"); do
    for s in "${srv3[@]}"; do
        # shellcheck disable=SC2046
        t0=$(cpu_ticks $(cpu_pids "$s"))
        r=$(timeout 120 "${LOAD[@]}" python3 "$top/test/bench/tls_discard_client.py" \
            "${port[$s]}" $((1 << 30)) 2>>"$tmp/discard.err" || echo "- 0 0")
        sleep 0.3
        t1=$(cpu_ticks $(cpu_pids "$s"))
        echo "$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.2f", d / 100}') $r" >>"$tmp/$s.discard"
    done
done
for s in "${srv3[@]}"; do
    pid_var=PID_$s
    unstart "${!pid_var}"
done

# ------------------------------------------------------------ 4, 5: idle memory, download
www=$tmp/www
mkdir -p "$www"
echo idle >"$www/idle.txt"
dd if=/dev/zero of="$www/big.bin" bs=1M count=1024 status=none
cat "$www/big.bin" >/dev/null # in the page cache for everyone
p_gst=$(free_port); p_nst=$(free_port)
start nginx_st "$(command -v nginx)" -c "$(nginx_conf "$p_nst" \
    "$ngx_tls location / { root $www; }" ssl)"
srv45=(nginx_st)
if [ -n "$have_graced" ]; then
    start graced_st "$graced" --tls-listen "127.0.0.1:$p_gst" "${tls_args[@]}" --root "$www" \
        --log-level error --max-connections $((N + 1000)) --keepalive-timeout 300
    wait_port "$p_gst"
    srv45=(graced_st nginx_st)
elif [ -n "$have_hello" ]; then # the library without graced: hello, idle memory only;
    # its keep-alive timeout is 15 s, so only as many connections as can be set up well within
    # it (Python clients take about 1 ms of CPU per handshake), for nginx too
    [ "$N" -le 3000 ] || N=3000
    start hello_st "$hello" --port "$p_gst" "${tls_args[@]}"
    wait_port "$p_gst"
    srv45=(hello_st nginx_st)
fi
wait_port "$p_nst"
port[graced_st]=$p_gst; port[hello_st]=$p_gst; port[nginx_st]=$p_nst
sleep 0.5

# idle NAME: N idle TLS connections -> "before-KiB after-KiB bytes-per-conn ok alive"
idle() {
    local s=$1 before after i fifo=$tmp/$1.fifo pids=() per=$((N / IDLE_PROCS)) path=/idle.txt
    [ "$s" != hello_st ] || path=/
    # shellcheck disable=SC2046
    before=$(rss_kib $(cpu_pids "$s"))
    mkfifo "$fifo"
    for i in $(seq "$IDLE_PROCS"); do
        timeout 600 "${LOAD[@]}" python3 "$top/test/bench/tls_idle_clients.py" "${port[$s]}" \
            "$per" "$path" <"$fifo" >"$tmp/$s.idle.$i" 2>>"$tmp/idle.err" &
        pids+=($!)
    done
    exec 7>"$fifo"
    for _ in $(seq 1200); do
        [ "$(cat "$tmp/$s".idle.* 2>/dev/null | grep -c ready)" -ge "$IDLE_PROCS" ] && break
        sleep 0.1
    done
    sleep 0.5
    after=$(rss_kib $(cpu_pids "$s"))
    exec 7>&-
    for i in "${pids[@]}"; do wait "$i" || true; done
    rm -f "$fifo"
    cat "$tmp/$s".idle.* | awk -v b="$before" -v a="$after" -v n=$((per * IDLE_PROCS)) '
        /^ready/ {ok += $2} /^alive/ {alive += $2}
        END {printf "%d %d %d %d %d\n", b, a, (a - b) * 1024 / n, ok, alive}'
}
for s in "${srv45[@]}"; do idle "$s" >"$tmp/$s.idlemem"; done

# download: "MB/s server-CPU-s server-busy% load-busy% http-code bytes"
download() {
    local s=$1 t0 t1 s0 s1 l0 l1 r
    # shellcheck disable=SC2046
    t0=$(cpu_ticks $(cpu_pids "$s")); s0=$(core_jiffies 0); l0=$(core_jiffies 1)
    r=$("${LOAD[@]}" curl -s --http1.1 --cacert "$tmp/cert.pem" --max-time 120 -o /dev/null \
        -w '%{speed_download} %{http_code} %{size_download}' \
        "https://127.0.0.1:${port[$s]}/big.bin" || true)
    t1=$(cpu_ticks $(cpu_pids "$s")); s1=$(core_jiffies 0); l1=$(core_jiffies 1)
    echo "$r" | awk -v t=$((t1 - t0)) -v s0="$s0" -v s1="$s1" -v l0="$l0" -v l1="$l1" '
        {split(s0, a, " "); split(s1, b, " "); split(l0, x, " "); split(l1, y, " ")
         st = b[3] - a[3]; lt = y[3] - x[3]
         printf "%.0f %.2f %.0f %.0f %s %s\n", $1 / 1e6, t / 100,
             st ? 100 * (b[1] - a[1]) / st : 0, lt ? 100 * (y[1] - x[1]) / lt : 0, $2, $3}'
}
srv5=(nginx_st)
[ -z "$have_graced" ] || srv5=(graced_st nginx_st)
for s in "${srv5[@]}"; do : >"$tmp/$s.download"; done
for _ in $(seq "$RUNS"); do
    for s in "${srv5[@]}"; do download "$s" >>"$tmp/$s.download"; done
done
for s in "${srv45[@]}"; do
    pid_var=PID_$s
    unstart "${!pid_var}"
done

# ------------------------------------------------------------ the table
have() { [ -s "$tmp/$1" ]; }
val() { if have "$1"; then col "$1" "$2"; else echo missing; fi; } # val FILE FIELD
pair() { echo "$(val "$1" "$3") / $(val "$2" "$3")"; }              # pair G N FIELD
r() { if [ "$1" = missing ] || [ "$2" = missing ]; then echo "n/a"; else ratio "$1" "$2"; fi; }
cap() { if [ "$1" = missing ]; then echo missing; else awk -v u="$1" 'BEGIN {printf "%.0f", (u > 0 ? 1e6 / u : 0)}'; fi; }
hs_name() {
    case $1 in
    new13) echo "new TLS 1.3 connections/s, full handshake" ;;
    reuse13) echo "new TLS 1.3 connections/s, resumed (ticket)" ;;
    new12) echo "new TLS 1.2 connections/s, full handshake" ;;
    reuse12) echo "new TLS 1.2 connections/s, resumed" ;;
    esac
}
gidle=graced_st
[ -n "$have_graced" ] || gidle=hello_st
{
    echo "| benchmark | gracehttp | nginx | gracehttp / nginx | goal | server CPU per unit (gracehttp / nginx) | server core busy % | load core busy % | notes |"
    echo "|---|---|---|---|---|---|---|---|---|"
    g=$(val hello.keepalive 1); n=$(val nginx.keepalive 1)
    echo "| 1. keep-alive HTTPS req/s, wrk, 64 conns (hello) | $g | $n | $(r "$g" "$n") | >= 1 |" \
         "$(pair hello.keepalive nginx.keepalive 6) us/req | $(pair hello.keepalive nginx.keepalive 3) |" \
         "$(pair hello.keepalive nginx.keepalive 4) | p99 ms $(pair hello.keepalive nginx.keepalive 2) |"
    g=$(val hello.close13 1); n=$(val nginx.close13 1)
    echo "| 2. new TLS 1.3 connections/s, resumed, wrk \`Connection: close\`, 64 conns (hello) | $g | $n | $(r "$g" "$n") | >= 1 |" \
         "$(pair hello.close13 nginx.close13 6) us/conn | $(pair hello.close13 nginx.close13 3) |" \
         "$(pair hello.close13 nginx.close13 4) | handshakes resumed in 1 s of it (strace): $(cat "$tmp/hello.resumed" 2>/dev/null || echo missing) / $(cat "$tmp/nginx.resumed") |"
    for m in new13 reuse13 new12 reuse12; do
        g=$(val "hello.$m" 1); n=$(val "nginx.$m" 1)
        cg=$(val "hello.$m" 4); cn=$(val "nginx.$m" 4)
        echo "| 2. $(hs_name $m), s_time x $HS_CLIENTS (hello) | $g | $n | $(r "$g" "$n") | >= 1 |" \
             "$cg / $cn us/conn | $(pair "hello.$m" "nginx.$m" 2) |" \
             "$(pair "hello.$m" "nginx.$m" 3) | resumed % $(pair "hello.$m" "nginx.$m" 5);" \
             "core 0 could do $(cap "$cg") / $(cap "$cn") conn/s, ratio $(r "$(cap "$cg")" "$(cap "$cn")") |"
    done
    g=$(val graced_up.discard 1); n=$(val nginx_up.discard 1)
    okg=$(have graced_up.discard && awk '$2 == 401 && $3 == 1073741824' "$tmp/graced_up.discard" | wc -l || echo missing)
    okn=$(awk '$2 == 401 && $3 == 1073741824' "$tmp/nginx_up.discard" | wc -l)
    echo "| 3. server CPU s to discard 1 GiB after an early 401 (graced) | $g | $n | $(r "$g" "$n") | <= 0.1 |" \
         "(the figure itself) | | | 401 after the whole body: $okg/$RUNS / $okn/$RUNS; client s $(pair graced_up.discard nginx_up.discard 4) |"
    g=$(val "$gidle.idlemem" 3); n=$(val nginx_st.idlemem 3)
    echo "| 4. RSS bytes per idle TLS keep-alive connection, $N open ($gidle) | $g | $n | $(r "$g" "$n") | <= 1 |" \
         "| | | RSS KiB before/after $(val "$gidle.idlemem" 1)/$(val "$gidle.idlemem" 2) / $(val nginx_st.idlemem 1)/$(val nginx_st.idlemem 2); 200s $(pair "$gidle.idlemem" nginx_st.idlemem 4); still open $(pair "$gidle.idlemem" nginx_st.idlemem 5) |"
    g=$(val graced_st.download 1); n=$(val nginx_st.download 1)
    echo "| 5. 1 GiB download over TLS, curl, MB/s (graced) | $g | $n | $(r "$g" "$n") | |" \
         "$(pair graced_st.download nginx_st.download 2) CPU s/GiB | $(pair graced_st.download nginx_st.download 3) |" \
         "$(pair graced_st.download nginx_st.download 4) | |"
    echo
    echo "Medians of $RUNS interleaved runs (wrk and s_time: ${DUR} s each); busy before the start: $busy0; after the end: $(idle_check)."
    echo "Same certificate (EC P-256, self-signed) for both. Negotiated (default client / -tls1_2):"
    for s in "${srv12[@]}"; do echo "$s: $(cut -d' ' -f2- "$tmp/$s.neg")"; done | sed 's/^/- /'
    echo
    echo "Server CPU per unit: user+system time of the server's processes (/proc/PID/stat, 10 ms"
    echo "ticks; nginx: master + worker) over the requests, connections or GiB; the busy % columns"
    echo "are whole cores (core 0: server, core 1: load), so they also show other load on the machine."
    echo "\"core 0 could do\": 1e6 / (us per connection), the rate of a saturated server core."
    echo "A load core near 100% busy means the figure is the load generator's ceiling, not the server's."
    [ -n "$have_hello" ] || echo "Missing: rows 1-2 (hello has no --tls-cert in this build)."
    [ -n "$have_graced" ] || echo "Missing: rows 3 and 5 (graced has no --tls-listen in this build); row 4 uses hello" \
        "with $N connections (its keep-alive timeout, 15 s, is shorter than setting up 10,000)."
} | write_result tls
