#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The shared library exports grace_* symbols only, and needs no evhttp
# (libevent_extra) symbol: it links libevent_core alone.
lib=${top_builddir:-.}/src/lib/.libs/libgracehttp.so
[ -f "$lib" ] || { echo "missing $lib"; exit 1; }
fail=0
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^grace_')
if [ -n "$bad" ]; then echo "exported non-grace symbols:"; echo "$bad"; fail=1; fi
ev=$(nm -D --undefined-only "$lib" | grep 'evhttp_')
if [ -n "$ev" ]; then echo "evhttp symbols needed:"; echo "$ev"; fail=1; fi
if ldd "$lib" | grep -E 'libevent-2|libevent_extra' ; then echo "links more than libevent_core"; fail=1; fi
n=$(nm -D --defined-only "$lib" | grep -c ' T grace_')
[ "$n" -gt 0 ] || { echo "no grace_ symbols exported"; fail=1; }
# the names of 0.1 stay exported until 0.3 (deprecated wrappers), on soname .so.1
for s in grace_server_listen_tls grace_server_listen_fd_tls; do
    nm -D --defined-only "$lib" | grep -q " T $s\$" || { echo "$s no longer exported"; fail=1; }
done
# trailers (issue 18): both directions
for s in grace_reply_end_trailers grace_request_trailer grace_request_trailer_next \
    grace_request_trailer_count grace_request_trailer_at; do
    nm -D --defined-only "$lib" | grep -q " T $s\$" || { echo "$s not exported"; fail=1; }
done
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libgracehttp.so.1 ] || { echo "soname $soname, not libgracehttp.so.1"; fail=1; }
if [ $fail = 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $fail
