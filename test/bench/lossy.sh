#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# lossy.sh - the early answer over a lossy path. Two network namespaces
# joined by test/integration/lossy_link (a user-space forwarder on a TUN
# pair: DELAY ms each way, LOSS % of packets dropped, seeded; this kernel
# has no sch_netem). In the client namespace a Python http.client with reno
# PUTs SIZE bytes without a token (the whole body, then the answer) to
# graced, nginx (an early 401 for a PUT without Authorization) and node (an
# early 401, then it reads the body to its end), RUNS times each,
# interleaved so every server sees the same link at the same time of the
# run. Optionally GRACED_OLD=path/to/graced adds another graced build
# (e.g. the one before the rate window). Needs root.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
SIZE=${SIZE:-$((16 << 20))}
DELAY=${DELAY:-25}
LOSS=${LOSS:-1}
SEED=${SEED:-17}
need nginx nginx-light
need ip iproute2
[ "$(id -u)" = 0 ] || { echo "lossy.sh: needs root (network namespaces)" >&2; exit 1; }
link=$build/test/integration/lossy_link
[ -x "$link" ] || make -C "$build" test/integration/lossy_link >/dev/null
client=$top/test/integration/test_lossy.py

srv=gbench-srv-$$ cli=gbench-cli-$$
lossy_cleanup() {
    cleanup
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
}
trap lossy_cleanup EXIT INT TERM
ip netns add "$srv"
ip netns add "$cli"
"${LOAD[@]}" "$link" --ns-a "/run/netns/$srv" --ns-b "/run/netns/$cli" --delay "$DELAY" \
    --loss "$LOSS" --seed "$SEED" >"$tmp/link.out" 2>"$tmp/link.err" &
PIDS+=($!)
pid_link=$!
for _ in $(seq 50); do grep -q ready "$tmp/link.out" && break; sleep 0.1; done
ip -n "$srv" addr add 10.231.0.1 peer 10.231.0.2 dev lossy0
ip -n "$cli" addr add 10.231.0.2 peer 10.231.0.1 dev lossy0
for ns in "$srv" "$cli"; do
    ip -n "$ns" link set lossy0 up
    ip -n "$ns" link set lo up
done
ip netns exec "$cli" sysctl -q -w net.ipv4.tcp_congestion_control=reno

up=$tmp/up
mkdir -p "$up"
echo secret >"$tmp/token"
in_srv() { ip netns exec "$srv" "$@"; }
start graced ip netns exec "$srv" "$build/src/graced/graced" --listen 10.231.0.1:8080 --root "$up" \
    --upload-dir "$up" --auth-token-file "$tmp/token" --log-level error \
    --listen 127.0.0.1:9080 --metrics /metrics
servers=("graced=8080")
if [ -n "${GRACED_OLD:-}" ]; then
    start graced_old ip netns exec "$srv" "$GRACED_OLD" --listen 10.231.0.1:8083 --root "$up" \
        --upload-dir "$up" --auth-token-file "$tmp/token" --log-level error \
        --listen 127.0.0.1:9083 --metrics /metrics
    servers+=("graced-old=8083")
fi
conf=$tmp/nginx.conf
mkdir -p "$tmp/nginx"
cat >"$conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  client_max_body_size 0;
  server {
    listen 10.231.0.1:8081;
    location / {
      if (\$http_authorization = "") { return 401 "missing or wrong token\n"; }
      return 204;
    }
  }
}
NGX
start nginx ip netns exec "$srv" nginx -c "$conf"
servers+=("nginx=8081")
if command -v node >/dev/null; then
    cat >"$tmp/node401.js" <<'JS'
require('http').createServer((req, res) => {
  res.writeHead(401, {'Content-Type': 'text/plain'});
  res.end('missing or wrong token\n');
  req.resume(); // node reads the body to its end
}).listen(8082, '10.231.0.1');
JS
    start node ip netns exec "$srv" node "$tmp/node401.js"
    servers+=("node=8082")
fi
for s in "${servers[@]}"; do
    port=${s#*=}
    for _ in $(seq 100); do
        in_srv bash -c "exec 3<>/dev/tcp/10.231.0.1/$port" 2>/dev/null && break
        sleep 0.1
    done
done

: >"$tmp/runs"
for run in $(seq "$RUNS"); do
    for s in "${servers[@]}"; do
        name=${s%=*} port=${s#*=}
        # in the background: a signal to this script is handled at once
        ip netns exec "$cli" "${LOAD[@]}" timeout 400 python3 "$client" --client 10.231.0.1 \
            "$port" "$SIZE" >"$tmp/one" &
        PIDS+=($!)
        wait $! || true
        echo "$name $run $(tail -1 "$tmp/one")" | tee -a "$tmp/runs" >&2
    done
done
linger_counters() { # linger_counters PORT: graced's linger endings, one line
    ip netns exec "$srv" curl -s --max-time 5 "http://127.0.0.1:$1/metrics" |
        awk '/^graced_linger_[a-z_]+_total [0-9]+$/ && $2 > 0 {
                 sub(/^graced_/, "", $1); sub(/_total$/, "", $1); printf "%s%s %s", sep, $1, $2; sep = ", "}'
}
g_lingers=$(linger_counters 9080)
[ -z "${GRACED_OLD:-}" ] || o_lingers=$(linger_counters 9083)
kill -TERM "$pid_link"
wait "$pid_link" 2>/dev/null || true

summary() { # summary NAME: "ok/runs median-s-of-answers how-the-others-ended"
    python3 - "$1" "$RUNS" "$tmp/runs" <<'PY'
import json, sys, statistics
name, runs, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok, fail = [], []
for line in open(path):
    n, _, js = line.split(" ", 2)
    if n != name:
        continue
    r = json.loads(js)
    if r.get("status") == 401 and r.get("body") == "missing or wrong token\n":
        ok.append(r["seconds"])
    else:
        fail.append("%s at %s s" % ((r.get("error") or str(r.get("status"))).split("(")[0],
                                     r.get("seconds")))
med = "%.1f" % statistics.median(ok) if ok else "-"
print("%d/%d | %s | %s" % (len(ok), runs, med, "; ".join(fail) or "-"))
PY
}
median_of() { summary "$1" | awk -F' [|] ' '{print $2}'; }

{
    echo "A ${SIZE}-byte PUT without a token from Python's http.client (reno; the whole body,"
    echo "then the answer) over lossy_link: ${DELAY} ms each way, ${LOSS}% of packets dropped"
    echo "(seed $SEED), no rate limit. $RUNS runs per server, interleaved. Time: from connect to"
    echo "the complete answer. graced runs with its defaults (linger-time 30 s; past it, an upload"
    echo "goes on at linger-min-rate 256 KiB/s over linger-rate-window 30 s, or if it ends before"
    echo "linger-max-time 5 min at its pace); nginx 1.22 with its defaults (lingering_time 30 s);"
    echo "node 20 reads every body to its end."
    echo
    echo "| server | 401 received | median s to the answer | the others |"
    echo "|---|---|---|---|"
    for s in "${servers[@]}"; do
        echo "| ${s%=*} | $(summary "${s%=*}") |"
    done
    echo
    g_med=$(median_of graced)
    for peer in node nginx; do
        p_med=$(median_of "$peer")
        [ "$p_med" = "-" ] || [ "$g_med" = "-" ] ||
            echo "Median time to the answer, graced / $peer (same link, same run): $(ratio "$g_med" "$p_med")"
    done
    echo
    echo "graced's linger counters: $g_lingers"
    [ -z "${GRACED_OLD:-}" ] || echo "graced-old's linger counters: $o_lingers"
    echo
    echo "Link counters (a->b: server to client, b->a: client to server):"
    echo
    sed 's/^/    /' "$tmp/link.err"
} | write_result lossy
