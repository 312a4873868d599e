#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# files.sh - graced as a file server, side by side with nginx (one worker
# each): a 1 GiB PUT stored on disk (nginx: its dav module), the same file as
# a multipart form upload (graced only: nginx has no such storing), as a
# resumable upload (tus: one PATCH of it all, and PATCHes of 64 MiB; graced
# only, against its own PUT), a 1 GiB download, the listing of a
# 10,000-entry folder (nginx: autoindex), and a WebDAV PROPFIND (Depth: 1)
# of that folder beside nginx with dav-ext and rclone serve webdav
# (PARTS=propfind runs only that).
# Wall time as curl sees it and server CPU from /proc/PID/stat, median of RUNS
# interleaved runs. SIZE_MB changes the file size (1024); GRACED_B=path adds
# the PUT row for another graced binary (an A/B of a change, same run).
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
DUR=${DUR:-4}
SIZE_MB=${SIZE_MB:-1024}
need curl curl
need wrk wrk
need nginx nginx-light

graced_bin=$build/src/graced/graced
www=$tmp/www   # served: the big file and the big folder
up=$tmp/up     # graced's --upload-dir
dav=$tmp/dav   # nginx's PUT root, on the same filesystem as its body temp files
mkdir -p "$www/many" "$up" "$dav"
chmod 777 "$up" "$dav" # nginx workers may run as another user
src=$www/big.bin
head -c "$((SIZE_MB << 20))" /dev/urandom >"$src"
(cd "$www/many" && seq -f 'file-%05g.txt' 1 10000 | xargs touch)
mkdir -p "$tmp/chunks" # the file in 64 MiB pieces, for the chunked tus upload
(cd "$tmp/chunks" && split -b 64M -d -a 3 "$src" c)
ticks_per_s=$(getconf CLK_TCK)

# Probes: features that are landing from another branch (wip-gweb).
if "$graced_bin" --help 2>&1 | grep -q -- --list-dirs; then list=--list-dirs; else list=; fi

p_g=$(free_port); p_n=$(free_port)
start graced "$graced_bin" --listen "127.0.0.1:$p_g" --root "$www" --upload-dir "$up" \
    --max-body-size 2G --log-level error $list
start nginx nginx -c "$(nginx_conf "$p_n" "
    sendfile on;        # Debian's stock nginx.conf has it; graced uses sendfile()
    location /put/ { root $dav; dav_methods PUT; client_max_body_size 2g;
                     client_body_temp_path $dav/tmp; }
    location /many/ { root $www; autoindex on; }
    location / { root $www; }")"
mkdir -p "$dav/put"
chmod 777 "$dav/put"
wait_port "$p_g"
wait_port "$p_n"
if [ -n "${GRACED_B:-}" ]; then
    mkdir -p "$tmp/up_b"
    p_b=$(free_port)
    start graced_b "$GRACED_B" --listen "127.0.0.1:$p_b" --root "$www" --upload-dir "$tmp/up_b" \
        --max-body-size 2G --log-level error
    wait_port "$p_b"
fi

# the server's processes: graced (and any worker), or nginx master and worker
pids() { local p=PID_$1; echo "${!p} $(pgrep -P "${!p}" | tr '\n' ' ')"; }

multipart=missing
echo probe >"$tmp/probe.txt"
code=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$tmp/probe.txt" "http://127.0.0.1:$p_g/" ||
       true)
if [ "$code" = 201 ] && cmp -s "$tmp/probe.txt" "$up/probe.txt"; then multipart=yes; fi
rm -f "$up/probe.txt"

# resumable: does this graced speak tus? (an older one answers its POST as a raw upload)
resumable=missing
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Tus-Resumable: 1.0.0' \
       -H 'Upload-Length: 1' -H "Upload-Metadata: filename $(printf probe | base64)" \
       "http://127.0.0.1:$p_g/" || true)
[ "$code" = 201 ] && resumable=yes
rm -f "$up/probe" "$up/.graced-tmp.uploads/"* 2>/dev/null || true

# tus NAME BASE CHUNKED: a tus upload of $src as NAME (POST, then one PATCH
# of it all, or one per 64 MiB piece on one connection); "code wall-s"
tus() {
    local name=$1 base=$2 chunked=$3 t0 loc off=0 c args=() out
    t0=$(date +%s.%N)
    loc=$(curl -sS -o /dev/null -D - -X POST -H 'Tus-Resumable: 1.0.0' \
          -H "Upload-Length: $((SIZE_MB << 20))" \
          -H "Upload-Metadata: filename $(printf '%s' "$name" | base64)" "$base/" |
          tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
    if [ "$chunked" = 1 ]; then
        for c in "$tmp"/chunks/c*; do
            [ $off = 0 ] || args+=(--next)
            args+=(-o /dev/null -X PATCH -T "$c" -H "Upload-Offset: $off" "$base$loc")
            args+=(-H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream')
            args+=(-H 'Expect:' -w '%{http_code}\n')
            off=$((off + $(stat -c %s "$c")))
        done
    else
        args=(-o /dev/null -X PATCH -T "$src" -H 'Upload-Offset: 0' "$base$loc"
              -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream'
              -H 'Expect:' -w '%{http_code}\n')
    fi
    out=$("${LOAD[@]}" curl -sS "${args[@]}" | tail -1)
    echo "$out $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')"
}

# xfer NAME KIND PORT: one measured transfer; appends "wall-s cpu-s-per-GiB
# MB/s" to $tmp/NAME-KIND.runs and checks what was stored
xfer() {
    local name=$1 kind=$2 port=$3 c0 c1 out code wall stored
    local base=http://127.0.0.1:$port
    sync # earlier runs' dirty pages are not this run's cost
    c0=$(cpu_ticks $(pids "$name"))
    case $kind in
        put) case $name in graced) stored=$up/put.bin;; graced_b) stored=$tmp/up_b/put.bin;;
                            *) stored=$dav/put/put.bin;; esac
             out=$("${LOAD[@]}" curl -sS -o /dev/null -H 'Expect:' -T "$src" \
                   -w '%{http_code} %{time_total}' "$base/$([ "$name" = nginx ] && echo put/)put.bin");;
        form) stored=$up/big.bin
              out=$("${LOAD[@]}" curl -sS -o /dev/null -H 'Expect:' -F "file=@$src" \
                    -w '%{http_code} %{time_total}' "$base/");;
        get) stored=
             out=$("${LOAD[@]}" curl -sS -o /dev/null -w '%{http_code} %{time_total}' "$base/big.bin");;
        tus1|tus64) stored=$up/$kind.bin
             out=$(tus "$kind.bin" "$base" "$([ $kind = tus64 ] && echo 1 || echo 0)");;
    esac
    c1=$(cpu_ticks $(pids "$name"))
    read -r code wall <<<"$out"
    case $code in 200|201|204) ;; *) echo "bench: $name $kind answered $code" >&2; return 1;; esac
    if [ -n "$stored" ]; then # complete, byte for byte
        cmp -s "$src" "$stored" || { echo "bench: $name $kind: stored file differs" >&2; return 1; }
        rm -f "$stored"
        [ "${kind#tus}" = "$kind" ] || rm -f "$up/.graced-tmp.uploads/"*.info
    fi
    awk -v t="$((c1 - c0))" -v hz="$ticks_per_s" -v w="$wall" -v mb="$SIZE_MB" \
        'BEGIN {printf "%.3f %.3f %.0f\n", w, t / hz * 1024 / mb, mb * 1.048576 / w}' \
        >>"$tmp/$name-$kind.runs"
}

PARTS=${PARTS:-transfers list propfind}
for f in graced-put graced_b-put nginx-put graced-form graced-tus1 graced-tus64 graced-get nginx-get; do
    : >"$tmp/$f.runs"
done
case " $PARTS " in *" transfers "*) transfers=$RUNS ;; *) transfers=0 ;; esac
for _ in $(seq "$transfers"); do # interleaved, so drift hits every server alike
    xfer graced put "$p_g"
    xfer nginx put "$p_n"
    [ -z "${GRACED_B:-}" ] || xfer graced_b put "$p_b"
    [ "$multipart" = missing ] || xfer graced form "$p_g"
    [ "$resumable" = missing ] || xfer graced tus1 "$p_g"
    [ "$resumable" = missing ] || xfer graced tus64 "$p_g"
    xfer graced get "$p_g"
    xfer nginx get "$p_n"
done
col() { cut -d' ' -f"$2" "$tmp/$1.runs" | median; }

case " $PARTS " in *" list "*) ;; *) list= ;; esac
if [ -n "$list" ]; then
    for s in graced nginx; do
        : >"$tmp/$s-list.runs"
        curl -s "http://127.0.0.1:$([ $s = graced ] && echo "$p_g" || echo "$p_n")/many/" |
            grep -o 'file-[0-9]*\.txt</a>' | wc -l >"$tmp/$s-list.count"
    done
    for _ in $(seq "$RUNS"); do
        wrk_run "http://127.0.0.1:$p_g/many/" -c4 >>"$tmp/graced-list.runs"
        wrk_run "http://127.0.0.1:$p_n/many/" -c4 >>"$tmp/nginx-list.runs"
    done
fi

# PROPFIND Depth 1 of the 10,000-entry folder: the properties a file
# manager asks for, from graced, nginx with the dav-ext module and rclone
# serve webdav (read-only), one process each, wrk -c4 with a Lua script;
# server CPU per request and peak memory from /proc.
pf_rows=
if [[ " $PARTS " == *" propfind "* ]] && "$graced_bin" --help 2>&1 | grep -q -- --dav-locks; then
    need rclone rclone
    dav_ext=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so
    [ -f "$dav_ext" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        libnginx-mod-http-dav-ext >/dev/null 2>&1 || true
    p_r=$(free_port); p_d=$(free_port)
    start rclone rclone serve webdav --addr "127.0.0.1:$p_r" --read-only "$www"
    if [ -f "$dav_ext" ]; then
        start nginx_dav nginx -c "$(nginx_conf "$p_d" "
            location /many/ { root $www; dav_ext_methods PROPFIND OPTIONS; }" "" \
            "load_module $dav_ext;")"
        wait_port "$p_d"
    fi
    wait_port "$p_r"
    pf_body='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:displayname/></D:prop></D:propfind>'
    cat >"$tmp/propfind.lua" <<LUA
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "1"
wrk.headers["Content-Type"] = "application/xml"
wrk.body = '$pf_body'
LUA
    pf_servers="graced rclone"
    [ -f "$dav_ext" ] && pf_servers="graced nginx_dav rclone"
    for s in $pf_servers; do
        case $s in graced) port=$p_g;; rclone) port=$p_r;; nginx_dav) port=$p_d;; esac
        curl -s -X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' --data "$pf_body" \
            "http://127.0.0.1:$port/many/" >"$tmp/$s-pf.xml"
        grep -oi '<[a-z]*:\?response>' "$tmp/$s-pf.xml" | wc -l >"$tmp/$s-pf.count"
        wc -c <"$tmp/$s-pf.xml" >"$tmp/$s-pf.bytes"
        : >"$tmp/$s-pf.runs"
    done
    for _ in $(seq "$RUNS"); do
        for s in $pf_servers; do
            case $s in graced) port=$p_g;; rclone) port=$p_r;; nginx_dav) port=$p_d;; esac
            c0=$(cpu_ticks $(pids "$s"))
            w=$(wrk_run "http://127.0.0.1:$port/many/" -c4 -s "$tmp/propfind.lua")
            c1=$(cpu_ticks $(pids "$s"))
            # "req/s p99-ms cpu-ms-per-request"
            awk -v w="$w" -v t="$((c1 - c0))" -v hz="$ticks_per_s" -v d="$DUR" \
                'BEGIN {split(w, a, " "); n = a[1] * d; printf "%s %s %.2f\n", a[1], a[2],
                        n ? t / hz * 1000 / n : 0}' >>"$tmp/$s-pf.runs"
        done
    done
    for s in $pf_servers; do
        hwm=0
        for p in $(pids "$s"); do
            hwm=$((hwm + $(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
        done
        echo $((hwm / 1024)) >"$tmp/$s-pf.hwm"
    done
    pf_rows=$pf_servers
fi

load=$(cut -d' ' -f1-3 /proc/loadavg)
runs() { # every run's CPU s/GiB, in order: how noisy the medians are
    local f
    for f in graced-put graced_b-put nginx-put graced-form graced-tus1 graced-tus64 graced-get nginx-get; do
        [ -s "$tmp/$f.runs" ] && printf '%s %s; ' "$f" "$(cut -d' ' -f2 "$tmp/$f.runs" | tr '\n' ' ')"
    done
    return 0
}
{
  [ "$PARTS" = "transfers list propfind" ] || { echo "Parts run: PARTS=\"$PARTS\""; echo; }
  if [ "$transfers" -gt 0 ]; then
    echo "| $SIZE_MB MiB, plain HTTP, curl, median of $RUNS | graced wall s | nginx wall s | graced CPU s/GiB | nginx CPU s/GiB | CPU graced/nginx | graced MB/s | nginx MB/s |"
    echo "|---|---|---|---|---|---|---|---|"
    echo "| PUT stored on disk (nginx: dav_methods PUT) | $(col graced-put 1) | $(col nginx-put 1) |" \
         "$(col graced-put 2) | $(col nginx-put 2) | $(ratio "$(col graced-put 2)" "$(col nginx-put 2)") |" \
         "$(col graced-put 3) | $(col nginx-put 3) |"
    [ -z "${GRACED_B:-}" ] ||
        echo "| PUT, graced B = $GRACED_B (CPU vs graced: $(ratio "$(col graced_b-put 2)" "$(col graced-put 2)")) |" \
             "$(col graced_b-put 1) | $(col nginx-put 1) | $(col graced_b-put 2) | $(col nginx-put 2) |" \
             "$(ratio "$(col graced_b-put 2)" "$(col nginx-put 2)") | $(col graced_b-put 3) | $(col nginx-put 3) |"
    if [ "$multipart" = missing ]; then
        echo "| POST multipart/form-data to a folder | missing | - | - | - | - | - | - |"
    else
        echo "| POST multipart/form-data to a folder (graced only; CPU vs graced's PUT: $(ratio "$(col graced-form 2)" "$(col graced-put 2)")) |" \
             "$(col graced-form 1) | - | $(col graced-form 2) | - | - | $(col graced-form 3) | - |"
    fi
    if [ "$resumable" = missing ]; then
        echo "| resumable upload (tus) | missing | - | - | - | - | - | - |"
    else
        for k in tus1 tus64; do
            echo "| tus: POST, then $([ $k = tus1 ] && echo "one PATCH of it all" || echo "PATCHes of 64 MiB on one connection") (graced only; CPU vs graced's PUT: $(ratio "$(col graced-$k 2)" "$(col graced-put 2)"), wall: $(ratio "$(col graced-$k 1)" "$(col graced-put 1)")) |" \
                 "$(col graced-$k 1) | - | $(col graced-$k 2) | - | - | $(col graced-$k 3) | - |"
        done
    fi
    echo "| GET (download; nginx with sendfile on) | $(col graced-get 1) | $(col nginx-get 1) |" \
         "$(col graced-get 2) | $(col nginx-get 2) | $(ratio "$(col graced-get 2)" "$(col nginx-get 2)") |" \
         "$(col graced-get 3) | $(col nginx-get 3) |"
    echo
  fi
    if [ -n "$list" ]; then
        echo "| listing of a 10,000-entry folder, 4 conns, ${DUR}s, median of $RUNS | graced req/s | nginx req/s | graced/nginx | p99 ms (graced / nginx) | entries shown (graced / nginx) |"
        echo "|---|---|---|---|---|---|"
        echo "| GET /many/ (graced --list-dirs, nginx autoindex on) | $(col graced-list 1) | $(col nginx-list 1) |" \
             "$(ratio "$(col graced-list 1)" "$(col nginx-list 1)") | $(col graced-list 2) / $(col nginx-list 2) |" \
             "$(cat "$tmp/graced-list.count") / $(cat "$tmp/nginx-list.count") |"
    elif [[ " $PARTS " == *" list "* ]]; then
        echo "| listing of a 10,000-entry folder | missing (graced has no --list-dirs yet) |"
        echo "|---|---|"
    fi
    echo
    if [ -n "$pf_rows" ]; then
        g_cpu=$(col graced-pf 3)
        echo "| PROPFIND Depth: 1 of a 10,000-entry folder (4 properties), 4 conns, ${DUR}s, median of $RUNS | req/s | p99 ms | server CPU ms per PROPFIND | CPU vs graced | peak RSS MiB | responses | bytes |"
        echo "|---|---|---|---|---|---|---|---|"
        for s in $pf_rows; do
            case $s in graced) label="graced --list-dirs";; nginx_dav) label="nginx 1.22 + dav-ext 3.0";;
                        rclone) label="rclone $(rclone version 2>/dev/null | head -1 | cut -d' ' -f2) serve webdav";; esac
            echo "| $label | $(col "$s-pf" 1) | $(col "$s-pf" 2) | $(col "$s-pf" 3) |" \
                 "$(ratio "$(col "$s-pf" 3)" "$g_cpu") | $(cat "$tmp/$s-pf.hwm") |" \
                 "$(cat "$tmp/$s-pf.count") | $(cat "$tmp/$s-pf.bytes") |"
        done
        echo
        echo "PROPFIND answers are what each server gives for the same request: graced streams"
        echo "its multistatus a batch at a time (memory stays flat), nginx's dav-ext builds it"
        echo "in one buffer, rclone in Go. Responses: the folder and its 10,000 entries."
        echo
    fi
  if [ "$transfers" -gt 0 ]; then
    echo "CPU s/GiB of each run: $(runs)"
    echo
    echo "graced fsyncs an upload before answering; nginx's dav module does not (its wall" \
         "time leaves the write-back to later). CPU per GiB counts the server's processes" \
         "only: the kernel's own write-back threads are in neither figure."
    echo
  fi
    echo "Load average at the end: $load (other engineers' builds share the machine)."
} | write_result "files$([ "$PARTS" = "transfers list propfind" ] || echo "-${PARTS// /-}")"
