#!/bin/sh
# gracehttp set-up: installs what is missing (Debian 12, as root),
# bootstraps, configures and builds out of tree in build/; then:
#   ./setup.sh test   - every test: make check; make check again with
#                       -fsanitize=address,undefined (build-asan/); the unit
#                       tests under valgrind; a short run of each fuzz target
#   ./setup.sh run [graced options...]
#                     - start graced on a folder that also takes uploads (see
#                       README): GRACED_DIR (default: a new temporary folder),
#                       GRACED_PORT (8080); more options go to graced as they
#                       are, e.g. ./setup.sh run --users-file users --private
#   ./setup.sh build  - only set up and build
# Idempotent: a second run reuses the packages, configure and builds.
set -eu
cd "$(dirname "$0")"
top=$(pwd)
mode=${1:-build}
[ $# -gt 0 ] && shift

# systemd: only its systemd-analyze, for the unit's security test;
# chromium and firefox-esr: the browser tests (test/browser), Firefox because
# it, unlike Chromium, loses an early answer to a naive close; haproxy:
# test_haproxy.py's rolling restart behind it; iproute2: ip netns, for
# test_lossy's lossy path; libnghttp2-dev: HTTP/2; the HTTP/2 kit (test/integration/h2, its client
# matrix and raw-frame conformance tests): nghttp2-client (nghttp, h2load),
# golang-go (a net/http client built at test time; golang-golang-x-net-dev:
# x/net/http2, test_trailers.py's h2c client), python3-h2 and
# python3-httpx (for Debian's /usr/bin/python3, which the kit runs them with);
# whois: its mkpasswd makes the hashes of --users-file (graced.8); unzip:
# the page's zip downloads are checked with unzip -t
PKGS="whois unzip build-essential autoconf automake libtool pkg-config libevent-dev check \
libssl-dev openssl curl python3 clang valgrind systemd libcrypt-dev chromium firefox-esr haproxy iproute2 \
libnghttp2-dev nghttp2-client golang-go golang-golang-x-net-dev python3-h2 python3-httpx \
libexpat1-dev litmus rclone cadaver"
# node and npm for the browser test (test/browser): Debian's, unless a node
# with its own npm is already there
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

missing=
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # others may be installing at the same time: wait for dpkg's lock
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing
fi

# puppeteer-core, pinned by test/browser/package-lock.json, into test/browser/node_modules
if [ ! -f test/browser/node_modules/.package-lock.json ] ||
    [ test/browser/package-lock.json -nt test/browser/node_modules/.package-lock.json ]; then
    echo "setup: npm ci in test/browser"
    (cd test/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
# tus-js-client, pinned by test/tus/package-lock.json: the resumable uploads' real client
if [ ! -f test/tus/node_modules/.package-lock.json ] ||
    [ test/tus/package-lock.json -nt test/tus/node_modules/.package-lock.json ]; then
    echo "setup: npm ci in test/tus"
    (cd test/tus && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    autoreconf -fi
fi
jobs=$(nproc 2>/dev/null || echo 2)

# configure_in DIR [configure args]: an out-of-tree build in DIR
configure_in() {
    dir=$1
    shift
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/config.status" ]; then
        (cd "$dir" && "$top/configure" --quiet "$@")
    fi
}

configure_in build ${GRACE_CONFIGURE_FLAGS:-}
make -s -C build -j"$jobs"

case $mode in
test)
    echo "== make check"
    make -s -C build -j"$jobs" check
    echo "== make check with -fsanitize=address,undefined"
    configure_in build-asan --enable-sanitizers
    make -s -C build-asan -j"$jobs"
    # GRACE_TEST_NO_HEAP: heap counts (mallinfo2) mean nothing under another allocator
    GRACE_TEST_NO_HEAP=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        make -s -C build-asan -j"$jobs" check
    echo "== unit tests under valgrind"
    # GRACE_TEST_NO_RLIMIT: valgrind enforces RLIMIT_NOFILE itself by closing the fd the
    # kernel already accepted, so the EMFILE tests cannot run under it
    for t in build/test/unit/check_parser build/test/unit/check_server build/test/unit/check_linger \
        build/test/unit/check_progress build/test/unit/check_stream build/test/unit/check_splice \
        build/test/unit/check_upgrade build/test/unit/check_hooks build/test/unit/check_stop \
        build/test/unit/check_pool build/test/unit/check_graced_path build/test/unit/check_options \
        build/test/unit/check_dav build/test/unit/check_trailer \
        build/test/unit/check_fields; do
        GRACE_TEST_NO_HEAP=1 GRACE_TEST_NO_RLIMIT=1 CK_FORK=no \
            valgrind -q --leak-check=full --error-exitcode=1 "$t"
    done
    # the multipart parser: every split in two and byte by byte, not in three (GRACE_TEST_QUICK)
    GRACE_TEST_QUICK=1 CK_FORK=no valgrind -q --leak-check=full --error-exitcode=1 \
        build/test/unit/check_multipart
    # TLS with its small bodies only (GRACE_TEST_QUICK): OpenSSL under valgrind
    # moves a few MB/s; no suppressions, OpenSSL's allocations included
    if [ -x build/test/unit/check_tls ]; then
        GRACE_TEST_NO_HEAP=1 GRACE_TEST_QUICK=1 CK_FORK=no \
            valgrind -q --leak-check=full --error-exitcode=1 build/test/unit/check_tls
    fi
    echo "== fuzz targets, ${FUZZ_TIME:-30} s each"
    for target in parser conn tls h2 multipart; do
        FUZZ_OUT="$top/build/fuzz" sh test/fuzz/run.sh "$target" "${FUZZ_TIME:-30}" >"build/fuzz-$target.log" 2>&1 ||
            { tail -40 "build/fuzz-$target.log"; echo "fuzz $target: FAILED"; exit 1; }
        grep -E '^Done' "build/fuzz-$target.log"
    done
    ;;
run)
    # serve a fresh temporary folder that also receives uploads
    dir=${GRACED_DIR:-$(mktemp -d /tmp/graced.XXXXXX)}
    port=${GRACED_PORT:-8080}
    # no index.html: the folder's listing, with its upload form, is the front page
    [ -n "$(ls -A "$dir")" ] ||
        printf 'graced is running. Upload files with the form on the listing page.\n' >"$dir/welcome.txt"
    echo "graced: serving $dir at http://127.0.0.1:$port/ (uploads go to the same folder)"
    echo "open:   http://127.0.0.1:$port/ in a browser: the listing, with an upload form"
    echo "try:    curl -T README.md http://127.0.0.1:$port/README.md && curl http://127.0.0.1:$port/README.md"
    echo "the binary: $top/build/src/graced/graced (make -C build install puts graced on PATH)"
    exec build/src/graced/graced --listen "127.0.0.1:$port" --root "$dir" --upload-dir "$dir" \
        --access-log - "$@"
    ;;
build) ;;
*)
    echo "usage: $0 test|run|build" >&2
    exit 2
    ;;
esac
