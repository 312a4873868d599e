#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# parser.sh - the parser benchmark (median of 5 runs inside the program),
# repeated RUNS times; the median line is reported.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
for _ in $(seq "$RUNS"); do "${SRV[@]}" "$build/test/bench/parser_bench" 0.5; done >"$tmp/p"
b=$(awk '/^browser/ {print $2}' "$tmp/p" | median)
br=$(awk '/^browser/ {print $4}' "$tmp/p" | median)
s=$(awk '/^pipelined/ {print $2}' "$tmp/p" | median)
sr=$(awk '/^pipelined/ {print $4}' "$tmp/p" | median)
{
    echo "| parser input | MB/s | requests/s |"
    echo "|---|---|---|"
    echo "| ~700-byte browser request | $b | $br |"
    echo "| pipelined small requests | $s | $sr |"
} | write_result parser
