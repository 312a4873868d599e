#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# h2_conformance.sh - test/integration/test_h2_conformance.py (raw HTTP/2
# frames: the cases of h2spec's sections and the attacks) against the
# reference servers, nginx and h2o, over TLS and h2c, and graced when
# GRACED_H2=1: which cases each passes, to results/h2-conformance-DATE.md.
# A case failed by a reference server is a deviation of that server (listed
# with what it did), not of the suite.
. "$(dirname "$0")/lib.sh"
need nginx nginx-light
need h2o h2o
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import hpack' 2>/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-h2 >/dev/null
srv=(nginx h2o)
[ -n "${GRACED_H2:-}" ] && srv+=(graced)
for s in "${srv[@]}"; do
    for over in tls h2c; do
        flag=; [ $over = h2c ] && flag=--h2c
        t0=$(date +%s)
        # shellcheck disable=SC2086
        top_builddir=$build /usr/bin/python3 "$top/test/integration/test_h2_conformance.py" \
            --server "$s" $flag >"$tmp/$s-$over.out" 2>&1 || true
        echo "$(($(date +%s) - t0))" >"$tmp/$s-$over.secs"
    done
done
{
    echo "HTTP/2 conformance with raw frames (test/integration/test_h2_conformance.py)."
    echo "A case is passed when the server did what RFC 9113 (or RFC 7541) asks; the"
    echo "expectations are those of h2spec: a connection error is a GOAWAY with the"
    echo "code or a close, a stream error may be escalated to a connection error, a"
    echo "malformed request may be answered 400."
    echo
    echo "| server | over | passed | failed | seconds |"
    echo "|---|---|---|---|---|"
    for s in "${srv[@]}"; do
        for over in tls h2c; do
            line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/$s-$over.out" || echo "0 passed, ? failed")
            echo "| $s | $over | $(echo "$line" | cut -d' ' -f1) | $(echo "$line" | cut -d' ' -f3) | $(cat "$tmp/$s-$over.secs") |"
        done
    done
    echo
    for s in "${srv[@]}"; do
        for over in tls h2c; do
            echo "Failed by $s over $over:"
            echo
            grep '^FAIL' "$tmp/$s-$over.out" | sed 's/^FAIL */- /' || echo "- none"
            echo
        done
    done
    echo "The attacks (the polite client: a new connection every 100 ms, GET /index.html):"
    echo
    for s in "${srv[@]}"; do
        for over in tls h2c; do
            grep -E '^(ok|FAIL) +attack/' "$tmp/$s-$over.out" | sed "s/^/- $s $over: /"
        done
    done
} | write_result h2-conformance
