#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Open N HTTP/2 connections over TLS (ALPN h2) to 127.0.0.1:PORT, make one
request on each (GET PATH, stream 1), and keep them idle until stdin
closes. Prints "ready OK" once every answer has ended (OK: how many began
with :status 200), then, after stdin closes, "alive A": how many the server
had not closed meanwhile. Frames are written by hand: the client preface,
an empty SETTINGS, the SETTINGS ACK, one HEADERS (HPACK literals); the
answers are only framed, not decoded, beyond the first byte of the block."""
import resource
import socket
import ssl
import struct
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/idle.txt"
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def lit(index, value):
    """A literal field without indexing, its name from the static table."""
    v = value.encode()
    return bytes([index]) + bytes([len(v)]) + v


authority = "127.0.0.1:%d" % port
# :method GET (2), :scheme https (7) indexed; :path (4), :authority (1) literal
block = b"\x82\x87" + lit(4, path) + lit(1, authority)
hello = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(4, 1, 0) +
         frame(1, 0x5, 1, block))


def answer(s):
    """Read frames to the END_STREAM of stream 1; True if it is a 200."""
    buf, ok = b"", False
    while True:
        while len(buf) >= 9:
            ln = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + ln:
                break
            ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big")
            payload = buf[9:9 + ln]
            buf = buf[9 + ln:]
            if ftype == 1 and sid == 1:
                ok = payload[:1] == b"\x88"  # :status 200, indexed
            if sid == 1 and ftype in (0, 1) and flags & 1:
                return ok
            if ftype == 3 and sid == 1 or ftype == 7:
                return False
        chunk = s.recv(65536)
        if not chunk:
            return False
        buf += chunk


socks, ok = [], 0
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    if s.selected_alpn_protocol() != "h2":
        print("no h2: the server chose %r" % s.selected_alpn_protocol(), flush=True)
        sys.exit(1)
    s.sendall(hello)
    ok += answer(s)
    socks.append(s)
print("ready %d" % ok, flush=True)
sys.stdin.read()
alive = 0
for s in socks:  # no select(): the descriptors pass FD_SETSIZE
    try:
        s.setblocking(False)
        alive += bool(s.recv(65536))  # a PING or SETTINGS, still alive
    except (ssl.SSLWantReadError, BlockingIOError):
        alive += 1
    except OSError:
        pass
print("alive %d" % alive, flush=True)
