#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Wraps automake's test-driver and echoes the test's Check summary line
# ("100%: Checks: N, Failures: 0, Errors: 0") or plain "N passed, N failed"
# line to the console.
driver=$1; shift
log=
prev=
for a in "$@"; do
    [ "$prev" = "--log-file" ] && log=$a
    prev=$a
done
"$driver" "$@"
rc=$?
[ -n "$log" ] && [ -f "$log" ] && \
    grep -E '^[0-9]+%: Checks:|^[0-9]+ passed, [0-9]+ failed' "$log" | sed "s|^|  ${log%.log}: |"
exit $rc
