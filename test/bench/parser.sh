#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# parser.sh - the parser benchmark (median of 5 runs inside the program),
# repeated RUNS times; the median line is reported.
#   BASE=<git rev> test/bench/parser.sh   also builds parser_bench with that
#   revision's parser.c/parser.h (same compiler and flags as the current one),
#   runs the two alternately and reports both and the ratio current/base.
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
base=${BASE:-}
bins=("$build/test/bench/parser_bench")
if [ -n "$base" ]; then
    cc=${CC:-cc}
    flags=(-O2 -g -DNDEBUG)
    mkdir -p "$tmp/base" "$tmp/cur"
    git -C "$top" show "$base:src/lib/parser.c" >"$tmp/base/parser.c"
    git -C "$top" show "$base:src/lib/parser.h" >"$tmp/base/parser.h"
    cp "$top/src/lib/parser.c" "$top/src/lib/parser.h" "$tmp/cur/"
    for v in base cur; do
        "$cc" "${flags[@]}" -c -o "$tmp/$v/parser.o" "$tmp/$v/parser.c"
        "$cc" -O3 -g -I"$tmp/$v" -o "$tmp/$v/parser_bench" "$top/test/bench/parser_bench.c" \
            "$tmp/$v/parser.o"
    done
    bins=("$tmp/cur/parser_bench" "$tmp/base/parser_bench")
fi
for _ in $(seq "$RUNS"); do
    for b in "${bins[@]}"; do "${SRV[@]}" "$b" 0.5 | sed "s|^|$(basename "$(dirname "$b")") |"; done
done >"$tmp/p"
col() { awk -v w="$1" -v k="$2" -v c="$3" '$1 == w && $2 ~ "^" k {print $c}' "$tmp/p" | median; }
cur=$(basename "$(dirname "${bins[0]}")")
b=$(col "$cur" browser 3); br=$(col "$cur" browser 5)
s=$(col "$cur" pipelined 3); sr=$(col "$cur" pipelined 5)
{
    if [ -z "$base" ]; then
        echo "| parser input | MB/s | requests/s |"
        echo "|---|---|---|"
        echo "| ~700-byte browser request | $b | $br |"
        echo "| pipelined small requests | $s | $sr |"
    else
        ob=$(col base browser 3); obr=$(col base browser 5)
        os=$(col base pipelined 3); osr=$(col base pipelined 5)
        echo "Current tree vs $base ($(git -C "$top" rev-parse --short "$base")), same flags, alternating, median of $RUNS x 5 runs."
        echo
        echo "| parser input | base MB/s | current MB/s | base req/s | current req/s | current/base |"
        echo "|---|---|---|---|---|---|"
        echo "| ~700-byte browser request | $ob | $b | $obr | $br | $(ratio "$br" "$obr") |"
        echo "| pipelined small requests | $os | $s | $osr | $sr | $(ratio "$sr" "$osr") |"
    fi
} | write_result "parser${base:+-ab}"
