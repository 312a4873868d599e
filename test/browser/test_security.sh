#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The browser side of graced's security review (security.mjs) under make
# check: Debian's chromium and puppeteer-core from test/browser/node_modules,
# both installed by ./setup.sh. Without them the test is skipped (77),
# except in CI, where that is a failure.
here=$(cd "$(dirname "$0")" && pwd)
graced=${top_builddir:-.}/src/graced/graced
missing=
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing="chromium"
command -v node >/dev/null 2>&1 || missing="$missing node"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
[ -f "$here/node_modules/puppeteer-core/package.json" ] || missing="$missing puppeteer-core"
if [ -n "$missing" ]; then
    echo "missing:$missing (./setup.sh installs them)"
    if [ -n "${CI:-}" ]; then
        echo "0 passed, 1 failed"
        exit 1
    fi
    exit 77
fi
exec node "$here/security.mjs" "$graced"
