#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The layers of src/graced, as test/layers.sh keeps those of src/lib: every file has a rank
# (the table below), and calls and #includes go down, or sideways within a rank, never in a
# loop. The daemon has no exceptions: a new file is given a rank on purpose, a helper two
# files need goes down to where both can call it. Fails on:
#  - an edge from a lower rank to a higher one;
#  - a loop among the edges (tsort);
#  - a file of src/graced with no rank.
# Edges: A -> B (name) when A's object needs a symbol that B's object defines (nm), or when
# A includes "b.h"; b.h is part of b.c when there is one, else a file itself.
# Run by make check with top_builddir and top_srcdir; needs a built graced.
set -eu
LC_ALL=C # sort, join and tsort agree on one order
export LC_ALL
src=${top_srcdir:-.}/src/graced
obj=${top_builddir:-.}/src/graced

# rank  layer       files (x for x.c and x.h; x.h for a header without a .c)
ranks() {
    cat <<'EOF'
0 base        log clock addr path escape etag reply multipart pool xml ifheader tree fields graced.h
1 services    notify certs options sock auth web guard store sink partial metrics proxy locktab davcond props davjob
2 handlers    listing files upload form delete propfind proppatch mkcol copymove lock resumable append
3 dispatch    route
4 worker      worker
5 supervisor  supervisor
6 start       main
EOF
}

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
: >"$t/defs"
: >"$t/uses"
for p in "$src"/*.c; do
    f=${p##*/}
    f=${f%.c}
    o=$obj/graced-$f.o
    [ -f "$o" ] || continue
    nm -P "$o" | awk -v f="$f" -v defs="$t/defs" -v uses="$t/uses" '
        $2 == "U" { print $1, f >> uses }
        $2 ~ /^[TDBRC]$/ { print $1, f >> defs }'
done
if [ ! -s "$t/defs" ]; then
    echo "graced_layers.sh: no objects graced-*.o under $obj: build first"
    echo "0 passed, 1 failed"
    exit 1
fi
sort -o "$t/defs" "$t/defs"
sort -o "$t/uses" "$t/uses"
join "$t/uses" "$t/defs" | awk '$2 != $3 { print $2, $3, $1 }' >"$t/edges"
node() {
    case $1 in
    *.c) echo "${1%.c}" ;;
    *.h) if [ -f "$src/${1%.h}.c" ]; then echo "${1%.h}"; else echo "$1"; fi ;;
    esac
}
: >"$t/files"
for p in "$src"/*.c "$src"/*.h; do
    [ -f "$p" ] || continue
    from=$(node "${p##*/}")
    echo "$from" >>"$t/files"
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$p" |
        while read -r h; do
            [ -f "$src/$h" ] || continue # config.h, gracehttp.h: not graced's
            to=$(node "$h")
            [ "$to" = "$from" ] || echo "$from $to \"$h\""
        done >>"$t/edges"
done
sort -u -o "$t/edges" "$t/edges"
sort -u -o "$t/files" "$t/files"

bad=0
ranks | awk -v files="$t/files" -v edges="$t/edges" -v left="$t/left" '
    { for (i = 3; i <= NF; i++) { rank[$i] = $1; layer[$i] = "L" $1 " " $2 } }
    END {
        bad = 0
        while ((getline f < files) > 0)
            if (!(f in rank)) {
                printf "unranked file %s: give it a rank in test/graced_layers.sh\n", f
                bad = 1
            }
        while ((getline line < edges) > 0) {
            split(line, e, " ")
            if ((e[1] in rank) && (e[2] in rank) && rank[e[1]] < rank[e[2]]) {
                printf "upward edge %s -> %s (%s): %s is %s, %s is %s; calls go down: " \
                    "move the helper down, or call up through a pointer the caller hands over\n",
                    e[1], e[2], e[3], e[1], layer[e[1]], e[2], layer[e[2]]
                bad = 1
            } else {
                print line > left
            }
        }
        exit bad
    }' || bad=1
touch "$t/left"

# tsort prints each loop it breaks, its files in order
if ! awk '{ print $1, $2 }' "$t/left" | sort -u | tsort >"$t/order" 2>"$t/loop"; then
    awk 'NR == FNR { names[$1 " " $2] = names[$1 " " $2] " " $3; next }
        function show(   i, to) {
            if (!n) return
            path = loop[1]
            for (i = 1; i <= n; i++) path = path " -> " loop[i % n + 1]
            print "loop: " path
            for (i = 1; i <= n; i++) {
                to = loop[i % n + 1]
                printf "  %s -> %s:%s\n", loop[i], to, names[loop[i] " " to]
            }
            n = 0
        }
        /input contains a loop/ { show(); next }
        { sub(/^tsort: /, ""); loop[++n] = $0 }
        END { show() }' "$t/left" "$t/loop"
    echo "break each loop: the files of a rank call each other one way only"
    bad=1
fi

if [ "$bad" = 0 ]; then
    echo "graced layers: $(wc -l <"$t/edges") edges between $(wc -l <"$t/files") files, order:" \
        "$(paste -s -d' ' "$t/order")"
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
fi
exit "$bad"
