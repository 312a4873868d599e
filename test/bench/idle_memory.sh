#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# idle_memory.sh - memory per idle keep-alive connection: N (10000) clients
# each make one request and stay connected; the server's total RSS is read
# before and after. graced against nginx configured for the same count.
. "$(dirname "$0")/lib.sh"
N=${N:-10000}
need nginx nginx-light
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # the hard limit may be below 65536

www=$tmp/www
mkdir -p "$www"
echo idle >"$www/idle.txt"
p_graced=$(free_port); p_nginx=$(free_port)
start graced "$build/src/graced/graced" --listen "127.0.0.1:$p_graced" --root "$www" \
    --log-level error --max-connections $((N + 1000)) --keepalive-timeout 300
start nginx nginx -c "$(nginx_conf "$p_nginx" "location / { root $www; }")"
wait_port "$p_graced"; wait_port "$p_nginx"
sleep 0.5
nginx_pids() { echo "$PID_nginx $(pgrep -P "$PID_nginx" | tr '\n' ' ')"; }

measure() { # measure NAME PORT PIDS... -> "before after per-conn-bytes ok"
    local name=$1 port=$2; shift 2
    local before after fifo=$tmp/$name.fifo
    before=$(rss_kib "$@")
    mkfifo "$fifo"
    "${LOAD[@]}" python3 "$top/test/bench/idle_clients.py" "$port" "$N" <"$fifo" >"$tmp/$name.ready" &
    local cpid=$!
    exec 7>"$fifo"
    for _ in $(seq 600); do grep -q ready "$tmp/$name.ready" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    after=$(rss_kib "$@")
    local ok
    ok=$(awk '{print $2}' "$tmp/$name.ready")
    exec 7>&-
    wait "$cpid" || true
    echo "$before $after $(( (after - before) * 1024 / N )) $ok"
}

read -r gb ga gp gok < <(measure graced "$p_graced" "$PID_graced")
read -r nb na np nok < <(measure nginx "$p_nginx" $(nginx_pids))
{
    echo "| $N idle keep-alive connections | RSS before (KiB) | RSS after (KiB) | bytes per connection | served |"
    echo "|---|---|---|---|---|"
    echo "| graced | $gb | $ga | $gp | $gok |"
    echo "| nginx (master + worker) | $nb | $na | $np | $nok |"
    echo "| graced / nginx per connection | | | $(ratio "$gp" "$np") | |"
} | write_result idle-memory
