#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs one browser test (test/browser/*.mjs, automake's MJS_LOG_COMPILER):
#   test_browser.sh test/browser/early.mjs
# in Debian's chromium and firefox-esr (GRACED_BROWSERS="firefox" for one;
# CHROMIUM, FIREFOX override the binaries) with puppeteer-core from
# test/browser/node_modules, all installed by ./setup.sh. Without them the
# test is skipped (77), except in CI, where that is a failure.
here=$(cd "$(dirname "$0")" && pwd)
graced=${top_builddir:-.}/src/graced/graced
script=${1:-$here/upload.mjs}
missing=
for b in ${GRACED_BROWSERS:-chromium firefox}; do
    case $b in
    chromium) [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing="$missing chromium" ;;
    firefox) [ -x "${FIREFOX:-/usr/bin/firefox-esr}" ] || missing="$missing firefox-esr" ;;
    esac
done
command -v node >/dev/null 2>&1 || missing="$missing node"
[ -f "$here/node_modules/puppeteer-core/package.json" ] || missing="$missing puppeteer-core"
if [ -n "$missing" ]; then
    echo "missing:$missing (./setup.sh installs them)"
    if [ -n "${CI:-}" ]; then
        echo "0 passed, 1 failed"
        exit 1
    fi
    exit 77
fi
exec node "$script" "$graced"
