#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""How long does a server hold a socket after the client's FIN, once it
has answered early? Reads an `strace -f -ttt` log of the server taken
while clients upload and then close: for each fd, the time from the read
that returned 0 (the client's FIN) to close(fd). Prints "median_ms p99_ms n"."""
import re
import sys

eof = {}
holds = []
pat_eof = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(\d+\.\d+) (?:recvfrom|recv|read|readv|recvmsg)\((\d+),.*\) = 0$")
pat_close = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(\d+\.\d+) close\((\d+)\)")
for line in open(sys.argv[1], errors="replace"):
    m = pat_eof.match(line.strip())
    if m:
        eof[m.group(2)] = float(m.group(1))
        continue
    m = pat_close.match(line.strip())
    if m and m.group(2) in eof:
        holds.append((float(m.group(1)) - eof.pop(m.group(2))) * 1000)
holds.sort()
if not holds:
    print("nan nan 0")
else:
    med = holds[len(holds) // 2]
    p99 = holds[min(len(holds) - 1, int(len(holds) * 0.99))]
    print("%.3f %.3f %d" % (med, p99, len(holds)))
