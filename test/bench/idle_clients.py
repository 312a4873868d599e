#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Open N keep-alive connections to 127.0.0.1:PORT, make one request on
each, and keep them idle until stdin closes. Prints "ready N" when done."""
import resource
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
req = b"GET /idle.txt HTTP/1.1\r\nHost: b\r\n\r\n"
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(req)
    socks.append(s)
ok = 0
for s in socks:  # read every response: the connections are now idle
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"idle\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200")
print("ready", ok, flush=True)
sys.stdin.read()
