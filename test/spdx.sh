#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Puts "SPDX-License-Identifier: BSD-3-Clause" (see LICENSE) at the top of
# every source file under src, include, test and docs/examples that lacks
# one: as the first line of C files, after the #! line of scripts. Run from
# the top of a git checkout; idempotent. With --check: only list the files
# without it, exit 1 if there are any.
set -eu
tag="SPDX-License-Identifier: BSD-3-Clause"
check=0
[ "${1:-}" = "--check" ] && check=1
git ls-files src include test docs/examples | while read -r f; do
    case $f in
    test/fuzz/corpus/* | test/bench/results/*) continue ;;
    *.c | *.h) line="/* $tag */" ;;
    *.py | *.sh) line="# $tag" ;;
    *.lua) line="-- $tag" ;;
    *) continue ;;
    esac
    head -n 3 "$f" | grep -q "SPDX-License-Identifier" && continue
    if [ $check = 1 ]; then
        echo "$f"
        continue
    fi
    tmp=$f.spdx.$$
    if head -n 1 "$f" | grep -q '^#!'; then
        { head -n 1 "$f"; echo "$line"; tail -n +2 "$f"; } >"$tmp"
    else
        { echo "$line"; cat "$f"; } >"$tmp"
    fi
    chmod --reference="$f" "$tmp"
    mv "$tmp" "$f"
done | { if [ $check = 1 ]; then
        out=$(cat)
        [ -z "$out" ] && exit 0
        echo "$out"
        exit 1
    else
        cat
    fi; }
