#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The layers of src/lib: every file has a rank (the table below), and calls and #includes go
# down, or sideways within a rank. A file calls up only through a table of pointers (the
# protocol table c->proto, the server table srv->up, the request ops req->ops), which no
# symbol shows. Fails on:
#  - an edge from a lower rank to a higher one that test/layers.allow does not list;
#  - a loop among the edges test/layers.allow does not list (tsort);
#  - a file of src/lib with no rank: new files are placed on purpose.
# Edges: A -> B (name) when A's object needs a symbol that B's object defines (nm), or when
# A includes "b.h" (name "b.h"); b.h is part of b.c when there is one, else a file itself.
# Run by make check with top_builddir and top_srcdir; needs a built library.
set -eu
LC_ALL=C # sort, join, comm and tsort agree on one order
export LC_ALL
bad=0
src=${top_srcdir:-.}/src/lib
obj=${top_builddir:-.}/src/lib
allow=${top_srcdir:-.}/test/layers.allow

# rank  layer      files (x for x.c and x.h; x.h for a header without a .c)
ranks() {
    cat <<'EOF'
0 base      core util parser path version trailer
1 transport io tls transport.h
2 engine    conn linger
3 request   request report
4 protocol  http1 h2 h2_req stream splice
5 response  response
6 server    server hooks stop
EOF
}

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# the objects of src/lib's files (stale objects of deleted files are not looked at): PIC ones
# in .libs/ when libtool builds a shared library
objs=.libs/
[ -n "$(ls "$obj"/.libs/libgracehttp_internal_la-*.o 2>/dev/null)" ] || objs=
: >"$t/defs"
: >"$t/uses"
for p in "$src"/*.c; do
    f=${p##*/}
    f=${f%.c}
    o=$obj/${objs}libgracehttp_internal_la-$f.o
    [ -f "$o" ] || continue # not built in this configuration
    nm -P "$o" | awk -v f="$f" -v defs="$t/defs" -v uses="$t/uses" '
        $2 == "U" { print $1, f >> uses }
        $2 ~ /^[TDBRC]$/ { print $1, f >> defs }'
done
if [ ! -s "$t/defs" ]; then
    echo "layers.sh: no objects libgracehttp_internal_la-*.o of src/lib under $obj: build first"
    echo "0 passed, 1 failed"
    exit 1
fi
sort -o "$t/defs" "$t/defs"
sort -o "$t/uses" "$t/uses"

# edges "from to name": symbols, then includes of src/lib's own headers
join "$t/uses" "$t/defs" | awk '$2 != $3 { print $2, $3, $1 }' >"$t/edges"
node() { # file name -> the file it belongs to
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
            [ -f "$src/$h" ] || continue # gracehttp.h, config.h: not src/lib's
            to=$(node "$h")
            [ "$to" = "$from" ] || echo "$from $to \"$h\""
        done >>"$t/edges"
done
sort -u -o "$t/edges" "$t/edges"
sort -u -o "$t/files" "$t/files"

# the allowed edges, one "from to name" each
sed 's/#.*//' "$allow" | awk 'NF >= 3 { for (i = 3; i <= NF; i++) print $1, $2, $i }' |
    sort -u >"$t/allowed"

# every file's rank, every edge's direction; the edges not allowed that do not go up (those
# fail already) go on to tsort: any loop left is one within a rank
ranks | awk -v files="$t/files" -v allowed="$t/allowed" -v edges="$t/edges" \
    -v left="$t/left" -v used="$t/used" '
    { for (i = 3; i <= NF; i++) { rank[$i] = $1; layer[$i] = "L" $1 " " $2 } }
    END {
        bad = 0
        while ((getline f < files) > 0)
            if (!(f in rank)) {
                printf "unranked file %s: give it a rank in test/layers.sh\n", f
                bad = 1
            }
        while ((getline line < allowed) > 0)
            ok[line] = 1
        while ((getline line < edges) > 0) {
            if (line in ok) {
                print line > used
                continue
            }
            split(line, e, " ")
            if ((e[1] in rank) && (e[2] in rank) && rank[e[1]] < rank[e[2]]) {
                printf "new upward edge %s -> %s (%s): %s is %s, %s is %s; calls go down, " \
                    "up only through a table (c->proto, srv->up, req->ops)\n",
                    e[1], e[2], e[3], e[1], layer[e[1]], e[2], layer[e[2]]
                bad = 1
            } else {
                print line > left # down or sideways: no loop allowed
            }
        }
        exit bad
    }' || bad=1
touch "$t/left" "$t/used"

# what test/layers.allow still excuses, and what it lists in vain
if [ -s "$t/used" ]; then
    awk '{ n[$1 " -> " $2]++ } END { for (e in n) printf "%s (%d)\n", e, n[e] }' "$t/used" |
        sort | paste -s -d, - | sed 's/,/, /g; s/^/allowed for now by test\/layers.allow: /'
fi
comm -23 "$t/allowed" "$t/used" | sed 's/^/note: no longer an edge, delete it from test\/layers.allow: /'

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
    echo "break each loop: call one way only, the other way through a table"
    bad=1
fi

if [ "$bad" = 0 ]; then
    echo "layers: $(wc -l <"$t/edges") edges between $(wc -l <"$t/files") files, order:" \
        "$(paste -s -d' ' "$t/order")"
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
fi
exit "$bad"
