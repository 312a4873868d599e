#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Open N TLS keep-alive connections to 127.0.0.1:PORT, make one request on
each (GET PATH), and keep them idle until stdin closes. Prints "ready OK"
once every response has been read (OK: how many were 200), then, after
stdin closes, "alive A": how many the server had not closed meanwhile."""
import resource
import select
import socket
import ssl
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/idle.txt"
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # client CPU is not measured; the server does the same either way
req = b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode()


def response(s):
    """Read one response (Content-Length framed); True if it is a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


socks = []
for i in range(n):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as curl and browsers do
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(req)
    socks.append(s)
ok = 0
for s in socks:  # read every response: the connections are now idle
    try:
        ok += response(s)
    except OSError:
        pass
print("ready", ok, flush=True)
sys.stdin.read()
# an idle connection the server closed (FIN, close_notify) is readable
poll = select.poll()
for s in socks:
    poll.register(s.fileno(), select.POLLIN)
closed = len(poll.poll(0))
print("alive", n - closed, flush=True)
