#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""instr_client.py PORT PATH N DEPTH: N requests for PATH on one keep-alive
connection to 127.0.0.1:PORT, DEPTH at a time (1: one by one; 16:
pipelined), each batch's responses read before the next is sent. The
responses must be small and complete ("HTTP/1.1 200" each)."""
import socket
import sys

port, path, n, depth = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
req = ("GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path).encode()
s = socket.create_connection(("127.0.0.1", port))
done = 0
while done < n:
    k = min(depth, n - done)
    s.sendall(req * k)
    buf = b""
    while buf.count(b"HTTP/1.1 200") < k:
        chunk = s.recv(1 << 20)
        if not chunk:
            sys.exit("instr_client: the server closed after %d responses" % done)
        buf += chunk
    done += k
s.close()
print(done)
