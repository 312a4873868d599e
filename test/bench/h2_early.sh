#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# h2_early.sh - the HTTP/2 client matrix (issue 18) against the reference
# servers: test/integration/test_h2_clients.py with graced (its profile in
# test/integration/h2/servers.py), nginx (http2 + dav), h2o, Go's net/http
# (h2/server_go.go) and node's http2 (h2/server_node.mjs), side by side
# (GRACED_H2=0 leaves graced out). Each of curl,
# nghttp, h2load, Go net/http, node http2, httpx+h2, Chromium and Firefox
# GETs, PUTs 1 MiB and 64 MiB (stored byte-exact), and gets the early 401
# and 413 of a 1 MiB and a 64 MiB PUT, then a second request on the same
# connection; over TLS and over h2c where the client can. The matrix, with
# the seconds each server's matrix took, goes to results/h2-early-DATE.md.
# TIMEOUT (30): seconds a request may take before it counts as lost.
. "$(dirname "$0")/lib.sh"
need nginx nginx-light
need h2o h2o
need nghttp nghttp2-client
need go golang-go
need node nodejs
need curl curl
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import httpx, h2' 2>/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-httpx python3-h2 >/dev/null
srv=(--server nginx --server h2o --server go --server node)
[ "${GRACED_H2:-1}" != 0 ] && srv=(--server graced "${srv[@]}")
t0=$(date +%s)
top_builddir=$build python3 "$top/test/integration/test_h2_clients.py" "${srv[@]}" \
    --timeout "${TIMEOUT:-30}" --build "$build" --markdown "$tmp/matrix.md" \
    >"$tmp/run.log" 2>&1 || { tail -30 "$tmp/run.log"; exit 1; }
t1=$(date +%s)
{
    echo "The HTTP/2 client matrix (test/bench/h2_early.sh, $((t1 - t0)) s in all)."
    echo "Each cell: ok (the expected answer, no client error, the follow-up GET"
    echo "succeeded on the same connection, bytes right), **answer** (the expected"
    echo "status came, but something else failed: see the notes), **LOST** (the"
    echo "expected status never reached the client); then the status seen, the"
    echo "seconds to the end of the answer, and whether the follow-up went over the"
    echo "same connection. A request may take ${TIMEOUT:-30} s. nghttp and h2load"
    echo "cannot mix a GET with their upload: their follow-up is the same request"
    echo "again (nghttp: a second concurrent stream; h2load: after the first)."
    echo
    cat "$tmp/matrix.md"
    echo "Versions: $(curl --version | head -1 | cut -d' ' -f1-2), $(nghttp --version),"
    echo "$(go version | cut -d' ' -f3), node $(node --version), httpx $(/usr/bin/python3 -c \
        'import httpx, h2; print(httpx.__version__, "h2", h2.__version__)'),"
    echo "$(/usr/bin/chromium --version 2>/dev/null), $(/usr/bin/firefox-esr --version 2>/dev/null)."
} | { pinning="not pinned (a correctness matrix: servers and clients share both cores)"; write_result h2-early; }
