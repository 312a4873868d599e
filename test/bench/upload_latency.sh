#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# upload_latency.sh - does storing uploads hold up everyone else? GET latency
# of a small file (RATE a second, open loop, on CONNS keep-alive connections)
# while three 1 GiB PUTs are stored at once, graced (which fsyncs each upload before answering) beside
# nginx with its dav module (which does not), one worker each, same run.
# Each run: 2 s of GETs alone (idle), then the three PUTs with the GETs going
# on (loaded) until the last PUT is answered. p50/p99/max of each phase,
# median of RUNS interleaved runs; every stored file is checked byte for byte.
# Servers and the probe each run in a session of their own (lib.sh's start
# says why); the probe reports how late it woke itself (a loaded machine
# delays the prober too), and each run's load average is kept.
# SIZE_MB changes the upload size (1024); GRACED_B=path adds another graced
# binary (an A/B of a change, same run), e.g. one built from main;
# HOG=N runs N busy loops on the servers' core, each in a session of its own,
# for the whole bench: a loaded machine that does not depend on who else is
# working (other engineers' builds come on top);
# NGINX_EXTRA adds directives to nginx's PUT location (e.g.
# "client_body_buffer_size 1m;": nginx writes the body in pieces of this, 16k
# by default); RESULT_TAG names the results file upload-latency-TAG-DATE.md.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-1024}
NPUT=${NPUT:-3}
RATE=${RATE:-1000}  # GETs due per second
CONNS=${CONNS:-8}   # connections they are sent on
need curl curl
need nginx nginx-light
# nginx-light carries the dav module (PUT); a build without it cannot take part
nginx -V 2>&1 | grep -q -- --with-http_dav_module ||
    { echo "bench: this nginx has no http_dav_module (PUT)" >&2; exit 1; }

graced_bin=$build/src/graced/graced
www=$tmp/www
mkdir -p "$www" "$tmp/up" "$tmp/up_b" "$tmp/dav/put" "$tmp/dav/tmp"
chmod 777 "$tmp/up" "$tmp/up_b" "$tmp/dav" "$tmp/dav/put" "$tmp/dav/tmp"
head -c 4096 /dev/urandom >"$www/small.bin"
src=$tmp/src.bin # not under www: no server reads it
head -c "$((SIZE_MB << 20))" /dev/urandom >"$src"

for i in $(seq "${HOG:-0}"); do SHARED_SESSION= start "hog$i" sh -c 'while :; do :; done'; done
p_g=$(free_port); p_n=$(free_port)
start graced "$graced_bin" --listen "127.0.0.1:$p_g" --root "$www" --upload-dir "$tmp/up" \
    --max-body-size 2G --log-level error
start nginx nginx -c "$(nginx_conf "$p_n" "
    location /put/ { root $tmp/dav; dav_methods PUT; client_max_body_size 2g;
                     client_body_temp_path $tmp/dav/tmp; ${NGINX_EXTRA:-} }
    location / { root $www; }")"
wait_port "$p_g"
wait_port "$p_n"
names="graced nginx"
if [ -n "${GRACED_B:-}" ]; then
    p_b=$(free_port)
    start graced_b "$GRACED_B" --listen "127.0.0.1:$p_b" --root "$www" --upload-dir "$tmp/up_b" \
        --max-body-size 2G --log-level error
    wait_port "$p_b"
    names="graced graced_b nginx"
fi

# The probe (latency_probe.c), open loop as wrk2 is: a GET is due every
# 1/RATE s, sent on one of CONNS keep-alive connections, and its latency is
# counted from when it was due, so a server that stalls for 200 ms is
# charged for every GET due meanwhile. Phase "idle" until $tmp/loaded
# exists, "loaded" until $tmp/stop exists. Its own session: in the curls'
# scheduling group it would wait behind them on core 1.
probe=$build/test/bench/latency_probe
[ -x "$probe" ] || { echo "bench: no $probe (make builds it)" >&2; exit 1; }

url() { # url NAME FILE
    case $1 in graced) echo "http://127.0.0.1:$p_g/$2";; graced_b) echo "http://127.0.0.1:$p_b/$2";;
               nginx) echo "http://127.0.0.1:$p_n/put/$2";; esac
}
stored() { # stored NAME FILE
    case $1 in graced) echo "$tmp/up/$2";; graced_b) echo "$tmp/up_b/$2";; nginx) echo "$tmp/dav/put/$2";; esac
}
port() { case $1 in graced) echo "$p_g";; graced_b) echo "$p_b";; nginx) echo "$p_n";; esac; }

# one NAME: a run; appends "idle-p50 idle-p99 idle-max loaded-p50 loaded-p99
# loaded-max loaded-count put-wall-s probe-late-max-ms load1" to $tmp/NAME.runs
one() {
    local name=$1 i t0 t1 pids=() pp load1 own=(setsid)
    rm -f "$tmp/loaded" "$tmp/stop"
    sync # earlier runs' dirty pages are not this run's cost
    load1=$(cut -d' ' -f1 /proc/loadavg)
    [ -z "${SHARED_SESSION:-}" ] || own=()
    "${own[@]}" "${LOAD[@]}" nice -n -10 "$probe" "$(port "$name")" /small.bin "$RATE" "$CONNS" "$tmp" \
        >"$tmp/probe.out" &
    pp=$!
    sleep 2
    touch "$tmp/loaded"
    t0=$(date +%s.%N)
    for i in $(seq "$NPUT"); do
        "${LOAD[@]}" curl -sS -o /dev/null -H 'Expect:' -T "$src" -w '%{http_code}\n' \
            "$(url "$name" "up$i.bin")" >"$tmp/put$i.code" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(date +%s.%N)
    touch "$tmp/stop"
    wait "$pp" || { echo "bench: $name: the probe failed" >&2; return 1; }
    for i in $(seq "$NPUT"); do
        case $(cat "$tmp/put$i.code") in 201|204) ;;
            *) echo "bench: $name PUT answered $(cat "$tmp/put$i.code")" >&2; return 1;; esac
        cmp -s "$src" "$(stored "$name" "up$i.bin")" ||
            { echo "bench: $name: stored file $i differs" >&2; return 1; }
        rm -f "$(stored "$name" "up$i.bin")"
    done
    awk -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" -v ld="$load1" '
        $1 == "idle" {i = $2 " " $3 " " $4} $1 == "loaded" {l = $2 " " $3 " " $4 " " $5; late = $6}
        END {print i, l, w, late, ld}' "$tmp/probe.out" >>"$tmp/$name.runs"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $names; do : >"$tmp/$n.runs"; done
for _ in $(seq "$RUNS"); do # interleaved, so drift hits every server alike
    for n in $names; do one "$n"; done
done
col() { cut -d' ' -f"$2" "$tmp/$1.runs" | median; }

# per-round ratio of loaded p99s (a round runs the servers back to back, so
# they see about the same outside load): one per line
round_ratios() { paste -d' ' <(cut -d' ' -f5 "$tmp/$1.runs") <(cut -d' ' -f5 "$tmp/$2.runs") |
                 awk '{if ($2 > 0) printf "%.2f\n", $1 / $2}'; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "| GET of a 4 KiB file, $RATE/s open loop on $CONNS connections, while $NPUT PUTs of $SIZE_MB MiB are stored; median of $RUNS | idle p50 ms | idle p99 ms | loaded p50 ms | loaded p99 ms | loaded max ms | GETs during the PUTs | PUTs wall s | probe late max ms | load1 |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for n in $names; do
        case $n in graced) what="graced (fsync before the answer, on its pool)";;
                   graced_b) what="graced B = $GRACED_B";;
                   nginx) what="nginx 1.22 + dav_methods PUT (no fsync)${NGINX_EXTRA:+, $NGINX_EXTRA}";; esac
        echo "| $what | $(col "$n" 1) | $(col "$n" 2) | $(col "$n" 4) | $(col "$n" 5) | $(col "$n" 6) |" \
             "$(col "$n" 7) | $(col "$n" 8) | $(col "$n" 9) | $(col "$n" 10) |"
    done
    echo
    echo "loaded p99 graced/nginx: $(ratio "$(col graced 5)" "$(col nginx 5)") (goal: 2 or less);" \
         "median of the per-round ratios $(round_ratios graced nginx | median)" \
         "(each: $(round_ratios graced nginx | tr '\n' ' '))"
    [ -z "${GRACED_B:-}" ] ||
        echo "; graced B/nginx: $(ratio "$(col graced_b 5)" "$(col nginx 5)"), per round" \
             "$(round_ratios graced_b nginx | median)"
    echo
    echo "Every run (idle p50 p99 max, loaded p50 p99 max count, PUTs wall s, probe late max ms, load1):"
    for n in $names; do echo "- $n: $(tr '\n' ';' <"$tmp/$n.runs")"; done
    echo
    [ "${HOG:-0}" = 0 ] || echo "HOG=$HOG: $HOG busy loop(s) on the servers' core throughout."
    sess="each in a session of its own" psess="in a session of its own"
    [ -z "${SHARED_SESSION:-}" ] || sess="in the bench's session (SHARED_SESSION=1)" psess=$sess
    echo "Load average at the start: $load_start, at the end: $load (other engineers'" \
         "builds share the machine). The probe and the curls share the load core (the" \
         "probe at nice -10, $psess); the servers run on the other core, $sess." \
         "Latency counts from when each GET was due" \
         "(open loop), so a stall is charged for every GET due during it. Stored files" \
         "are compared with the source."
} | write_result "upload-latency${RESULT_TAG:+-$RESULT_TAG}"
