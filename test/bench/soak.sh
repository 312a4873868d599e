#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# soak.sh - several minutes of mixed traffic against graced (not in CI):
# keep-alive and pipelined GETs, accepted uploads, early-refused 8 MiB
# uploads, clients vanishing mid-body. Then checks: no server error, every
# early answer delivered, RSS and fd count back near the start, no partial
# upload left, and (with SAN=1, using build-asan/) no sanitizer report.
#   SOAK_SECONDS=300 test/bench/soak.sh
. "$(dirname "$0")/lib.sh"
SECS=${SOAK_SECONDS:-300}
[ "${SAN:-0}" = 1 ] && build=${top_builddir_asan:-$top/build-asan}
www=$tmp/www
mkdir -p "$www"
echo soak >"$www/file.txt"
echo soaktoken >"$tmp/token"
port=$(free_port)
start graced "$build/src/graced/graced" --listen "127.0.0.1:$port" --root "$www" \
    --upload-dir "$www" --auth-token-file "$tmp/token" --max-body-size 64M --log-level warn \
    --metrics /metrics
wait_port "$port"
pid=$PID_graced
[ -f "$build/src/graced/.libs/graced" ] && pid=$(pgrep -P "$PID_graced" || echo "$PID_graced")
python3 "$top/test/bench/soak_clients.py" "$port" 2 soaktoken >/dev/null # warm up
sleep 1
rss0=$(rss_kib "$pid"); fds0=$(ls "/proc/$pid/fd" | wc -l)
rc=0
"${LOAD[@]}" python3 "$top/test/bench/soak_clients.py" "$port" "$SECS" soaktoken >"$tmp/soak.out" || rc=$?
sleep 2 # let lingering connections end
rss1=$(rss_kib "$pid"); fds1=$(ls "/proc/$pid/fd" | wc -l)
curl -s "http://127.0.0.1:$port/metrics" | grep -v '^#' >"$tmp/metrics"
left=$(find "$www" -name '.graced-tmp.*' | wc -l)
stop "$PID_graced"
san=$(grep -c -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$tmp/graced.out" || true)
{
    echo "| soak, ${SECS}s, 8 client threads | value |"
    echo "|---|---|"
    while read -r k v; do echo "| $k | $v |"; done <"$tmp/soak.out"
    echo "| client exit status (0: no error, no lost early answer) | $rc |"
    echo "| RSS KiB before / after | $rss0 / $rss1 |"
    echo "| fds before / after | $fds0 / $fds1 |"
    echo "| temporary upload files left | $left |"
    echo "| sanitizer reports | $san |"
    grep -v '^#' "$tmp/metrics" |
        grep -E '^graced_(requests|early_replies|linger_(client_eof|idle_timeout|total_time|evicted)|client_aborts|conn_active)' |
        sed -E 's/_total / /; s/^graced_([a-z_]+) (.*)$/| server \1 | \2 |/'
} | write_result soak
[ "$rc" = 0 ] && [ "$left" = 0 ] && [ "$san" = 0 ] && [ "$fds1" -le $((fds0 + 2)) ]
