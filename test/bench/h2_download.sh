#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# h2_download.sh - one large download over TLS, HTTP/1.1 and HTTP/2, from
# graced and nginx (http2, sendfile on) in the same run: curl's MB/s for a
# SIZE_MB (64) MiB file, the median of RUNS (5) interleaved runs, server on
# core 0 and curl on core 1. HTTP/2 moves the body in DATA frames through
# nghttp2 (no sendfile): this shows what that costs against HTTP/1.1 and
# against nginx's HTTP/2.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-64}
need nginx nginx-light
need curl curl
need openssl openssl

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
chmod 644 "$tmp/key.pem" "$tmp/cert.pem"
mkdir -p "$tmp/root"
head -c $((SIZE_MB << 20)) /dev/urandom >"$tmp/root/big.bin"
chmod -R a+rX "$tmp/root"

declare -A port
port[graced]=$(free_port)
port[nginx]=$(free_port)
ngx=$(nginx_conf "${port[nginx]}" "
    ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; sendfile on; root $tmp/root;" "ssl http2")
start nginx nginx -c "$ngx"
start graced "$build/src/graced/graced" --tls-listen "127.0.0.1:${port[graced]}" \
    --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --root "$tmp/root" --log-level error
wait_port "${port[nginx]}"
wait_port "${port[graced]}"

for r in $(seq "$RUNS"); do
    echo "bench: run $r" >&2
    for s in graced nginx; do
        for v in 1.1 2; do
            "${LOAD[@]}" curl -sk --http"$v" -o /dev/null -w '%{http_version} %{size_download} %{speed_download}\n' \
                "https://127.0.0.1:${port[$s]}/big.bin" |
                awk -v want=$((SIZE_MB << 20)) '$2 == want {printf "%.0f\n", $3 / 1e6; next} {print "nan"}' \
                    >>"$tmp/$s-$v"
        done
    done
done

m() { median <"$tmp/$1-$2"; }
{
    echo "One ${SIZE_MB} MiB download over TLS (TLS 1.3, EC P-256), curl, MB/s, median of $RUNS interleaved runs."
    echo
    echo "| server | HTTP/1.1 | HTTP/2 | HTTP/2 / HTTP/1.1 |"
    echo "|---|---|---|---|"
    for s in graced nginx; do
        echo "| $s | $(m "$s" 1.1) | $(m "$s" 2) | $(ratio "$(m "$s" 2)" "$(m "$s" 1.1)") |"
    done
    echo "| graced / nginx | $(ratio "$(m graced 1.1)" "$(m nginx 1.1)") | $(ratio "$(m graced 2)" "$(m nginx 2)") | |"
    echo
    for s in graced nginx; do
        echo "- $s every run: HTTP/1.1 $(tr '\n' ' ' <"$tmp/$s-1.1"); HTTP/2 $(tr '\n' ' ' <"$tmp/$s-2")"
    done
    echo
    echo "Versions: $(nginx -v 2>&1), $(curl --version | head -1 | cut -d' ' -f1-2)."
} | write_result h2-download
