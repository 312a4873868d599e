#!/bin/sh
# gracehttp set-up: installs what is missing (Debian 12, as root),
# bootstraps, configures and builds; then runs the tests or the daemon.
#   ./setup.sh test   - build and run every test (make check)
#   ./setup.sh run    - build and start graced (see README)
#   ./setup.sh build  - only set up and build
# Idempotent: a second run reuses the packages, configure and build.
set -eu
cd "$(dirname "$0")"
mode=${1:-build}
[ $# -gt 0 ] && shift

PKGS="build-essential autoconf automake libtool pkg-config libevent-dev check \
curl python3 clang"

missing=
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
    ./configure --quiet ${GRACE_CONFIGURE_FLAGS:-}
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"

case $mode in
test)
    make -j"$jobs" check
    ;;
run)
    # serve a fresh temporary folder that also receives uploads
    dir=${GRACED_DIR:-$(mktemp -d /tmp/graced.XXXXXX)}
    port=${GRACED_PORT:-8080}
    [ -f "$dir/index.html" ] ||
        printf '<!doctype html><title>graced</title><h1>graced is running</h1>\n' >"$dir/index.html"
    echo "graced: serving $dir at http://127.0.0.1:$port/ (uploads go to the same folder)"
    echo "try:    curl -T README.md http://127.0.0.1:$port/README.md && curl http://127.0.0.1:$port/README.md"
    exec src/graced/graced --listen "127.0.0.1:$port" --root "$dir" --upload-dir "$dir" \
        --access-log - "$@"
    ;;
build) ;;
*)
    echo "usage: $0 test|run|build" >&2
    exit 2
    ;;
esac
