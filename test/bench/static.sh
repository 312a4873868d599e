#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# static.sh - a small static file (4 KiB) over keep-alive: graced against
# nginx and h2o, one worker each, 64 connections, median of RUNS runs.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
DUR=${DUR:-4}
need wrk wrk
need nginx nginx-light
need h2o h2o

www=$tmp/www
mkdir -p "$www"
head -c 4096 /dev/urandom >"$www/file.bin"
p_graced=$(free_port); p_nginx=$(free_port); p_h2o=$(free_port)
start graced "$build/src/graced/graced" --listen "127.0.0.1:$p_graced" --root "$www" \
    --log-level error
start nginx nginx -c "$(nginx_conf "$p_nginx" "location / { root $www; }")"
cat >"$tmp/h2o.conf" <<H2O
listen:
  host: 127.0.0.1
  port: $p_h2o
num-threads: 1
user: root
pid-file: $tmp/h2o.pid
error-log: $tmp/h2o-error.log
hosts:
  default:
    paths:
      /:
        file.dir: $www
H2O
start h2o h2o -c "$tmp/h2o.conf"
for p in $p_graced $p_nginx $p_h2o; do wait_port "$p"; done

for s in graced nginx h2o; do : >"$tmp/$s.runs"; done
for _ in $(seq "$RUNS"); do # interleaved, so drift hits every server alike
    for s in graced nginx h2o; do
        port_var=p_$s
        wrk_run "http://127.0.0.1:${!port_var}/file.bin" >>"$tmp/$s.runs"
    done
done
col() { cut -d' ' -f"$2" "$tmp/$1.runs" | median; }
g=$(col graced 1); n=$(col nginx 1); h=$(col h2o 1)
{
    echo "| 4 KiB static file, keep-alive, 64 conns | graced req/s | nginx req/s | h2o req/s | graced/nginx | graced/h2o | p99 ms (graced / nginx / h2o) | server core busy % | load core busy % | server core in user space % |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    echo "| median of $RUNS x ${DUR}s | $g | $n | $h | $(ratio "$g" "$n") | $(ratio "$g" "$h") |" \
         "$(col graced 2) / $(col nginx 2) / $(col h2o 2) | $(col graced 3) / $(col nginx 3) / $(col h2o 3) |" \
         "$(col graced 4) / $(col nginx 4) / $(col h2o 4) | $(col graced 5) / $(col nginx 5) / $(col h2o 5) |"
} | write_result static
