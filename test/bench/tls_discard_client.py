#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""TLS version of discard_client.py: PUT /up with a SIZE-byte body sent as
fast as possible over TLS, then the end of the body (FIN; no close_notify,
as the plain client's shutdown), then read the answer. Prints
"STATUS SENT-BYTES SECONDS": STATUS is the answer's status code (or "-"),
SENT-BYTES how much of the body the server took before any error.

The TLS records are built with an SSLObject over memory BIOs, so that the
write side can be closed at the TCP level while the answer (already in our
receive buffer, sent early by the server) can still be decrypted."""
import socket
import ssl
import sys
import time

port, size = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
raw = socket.create_connection(("127.0.0.1", port), timeout=60)


def flush():
    data = out.read()
    if data:
        raw.sendall(data)


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        flush()
        data = raw.recv(65536)
        if not data:
            sys.exit("tls_discard_client: EOF in the handshake")
        inc.write(data)
flush()

t0 = time.monotonic()
chunk = b"d" * (1 << 20)
sent = 0
try:
    tls.write(b"PUT /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % size)
    flush()
    while sent < size:
        n = min(size - sent, len(chunk))
        tls.write(chunk[:n] if n < len(chunk) else chunk)
        flush()
        sent += n
    raw.shutdown(socket.SHUT_WR)
except OSError as e:
    print("tls_discard_client:", e, file=sys.stderr)
answer = b""
try:
    while True:
        data = raw.recv(65536)
        if not data:
            break
        inc.write(data)
except OSError as e:  # a reset after the answer arrived still leaves it readable
    print("tls_discard_client:", e, file=sys.stderr)
inc.write_eof()
try:
    while True:
        data = tls.read(65536)
        if not data:
            break
        answer += data
except (ssl.SSLZeroReturnError, ssl.SSLWantReadError, ssl.SSLEOFError, ssl.SSLError):
    pass
raw.close()
status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.") else "-"
print(status, sent, "%.3f" % (time.monotonic() - t0))
