#!/bin/bash
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

for s in graced nginx h2o; do : >"$tmp/$s.rps"; done
for _ in $(seq "$RUNS"); do
    for s in graced nginx h2o; do
        port_var=p_$s
        "${LOAD[@]}" wrk -t1 -c64 -d"${DUR}s" "http://127.0.0.1:${!port_var}/file.bin" |
            awk '/Requests\/sec/ {printf "%.0f\n", $2}' >>"$tmp/$s.rps"
    done
done
g=$(median <"$tmp/graced.rps"); n=$(median <"$tmp/nginx.rps"); h=$(median <"$tmp/h2o.rps")
{
    echo "| 4 KiB static file, keep-alive, 64 conns | graced req/s | nginx req/s | h2o req/s | graced/nginx | graced/h2o |"
    echo "|---|---|---|---|---|---|"
    echo "| median of $RUNS x ${DUR}s | $g | $n | $h | $(ratio "$g" "$n") | $(ratio "$g" "$h") |"
} | write_result static
