#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Build and run a libFuzzer target with clang:
#   test/fuzz/run.sh TARGET SECONDS [extra libFuzzer args]
# TARGET is parser, conn, tls, h2 or multipart (test/fuzz/fuzz_TARGET.c). Crashes are written to
# test/fuzz/artifacts/; new inputs go to a scratch corpus, seeded from the
# committed corpus test/fuzz/corpus/TARGET. fuzz_conn reads FUZZ_CONN_DEBUG
# and FUZZ_CONN_KNOWN (see the top of fuzz_conn.c); its hand-made seeds come
# from gen_conn_seeds.py.
set -eu
target=${1:?target}; secs=${2:-60}; shift 2 || true
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-$src/test/fuzz/out}
mkdir -p "$out/corpus-$target" "$src/test/fuzz/artifacts"
CC=${FUZZ_CC:-clang}
# the library without HTTP/2 (conn, tls), or with it (h2)
lib=$(ls "$src"/src/lib/*.c | grep -v '/h2[^/]*\.c$' | tr '\n' ' ')
bin=$out/fuzz_$target
case $target in
parser) srcs="$src/test/fuzz/fuzz_parser.c $src/src/lib/parser.c"; libs= ;;
conn) srcs="$src/test/fuzz/fuzz_conn.c $lib"; libs=$(pkg-config --libs libevent_core) ;;
h2) srcs="-DGRACE_HAVE_H2 $src/test/fuzz/fuzz_h2.c $src/src/lib/*.c"
    libs="$(pkg-config --libs libevent_core libnghttp2)" ;;
tls) srcs="-DGRACE_HAVE_TLS $src/test/fuzz/fuzz_tls.c $lib"
     libs="$(pkg-config --libs libevent_core libssl libcrypto)" ;;
multipart) srcs="-I$src/src/graced $src/test/fuzz/fuzz_multipart.c $src/src/graced/multipart.c"; libs= ;;
*) echo "unknown target $target (parser, conn, tls, h2, multipart)" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
$CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$src/include" -I"$src/src/lib" $srcs $libs -o "$bin"
exec "$bin" -max_total_time="$secs" -max_len=65538 -print_final_stats=1 \
    -artifact_prefix="$src/test/fuzz/artifacts/" "$@" \
    "$out/corpus-$target" "$src/test/fuzz/corpus/$target"
