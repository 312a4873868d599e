#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Send PUT /up with a SIZE-byte body as fast as possible, then read the
answer: the server refuses at once and must discard SIZE bytes."""
import socket
import sys

port, size = int(sys.argv[1]), int(sys.argv[2])
chunk = memoryview(b"d" * (1 << 20))
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"PUT /up HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n" % size)
left = size
try:
    while left:
        n = s.send(chunk[:min(left, len(chunk))])
        left -= n
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
except OSError as e:
    print("discard_client:", e, file=sys.stderr)
s.close()
