#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# run-all.sh - every benchmark (make bench). Each writes its table to
# test/bench/results/NAME-DATE.md; RUNS and DUR are passed through.
set -eu
here=$(dirname "$0")
for b in parser throughput static files idle_memory early_reply tls threads restart upload_latency h2 h2_download h2_early h2_conformance; do
    echo "== $b"
    bash "$here/$b.sh"
    echo
done
