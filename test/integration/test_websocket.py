#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests against docs/examples/websocket (the library's upgrade
and stream API) with real clients: raw Python sockets speaking RFC 6455,
and Node's WHATWG WebSocket (node --experimental-websocket) when node is
installed. Loopback only; every process started is stopped by PID.
Prints one line per test and a final "N passed, N failed"."""
import base64
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import check, results, start_example, stop_proc  # noqa: E402

BUILD = os.environ.get("top_builddir", ".")
WS = os.path.join(BUILD, "docs", "examples", "websocket")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 65536


def start(*args):
    return start_example(WS, *args)


stop = stop_proc


class Client:
    """A raw WebSocket client on a blocking socket (10 s timeout)."""

    def __init__(self, port, version="13", extra=b""):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                       b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + self.key +
                       b"\r\nSec-WebSocket-Version: " + version.encode() + b"\r\n\r\n" + extra)
        self.buf = b""

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed before the headers")
            self.buf += d
        h, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return h.decode("latin-1")

    def accept_ok(self, head):
        want = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
        return head.startswith("HTTP/1.1 101 ") and ("Sec-WebSocket-Accept: " + want) in head

    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d

    def frame(self, op, payload=b"", fin=True, mask=True, rsv=0):
        b0 = (0x80 if fin else 0) | rsv | op
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            h = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, m | 126, n)
        else:
            h = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            k = os.urandom(4)
            payload = bytes(c ^ k[i & 3] for i, c in enumerate(payload))
            h += k
        return h + payload

    def send(self, op, payload=b"", **kw):
        self.s.sendall(self.frame(op, payload, **kw))

    def recv(self):
        """One frame from the server: (fin, op, payload). Server frames are unmasked."""
        self.need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise ValueError("masked server frame")
        n, off = b1 & 0x7f, 2
        if n == 126:
            self.need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self.need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self.need(off + n)
        p = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0f, p

    def eof(self):
        """True if the server closed with a FIN (not a reset) after its last frame."""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.s.close()


def close_code(p):
    return struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None


def run_raw(port):
    # handshake, and a frame pipelined right after the request (same segment)
    c = Client(port, extra=Client.frame(None, 1, b"early"))
    h = c.head()
    check("handshake: 101 with the right Sec-WebSocket-Accept", c.accept_ok(h), h)
    check("handshake: Connection: Upgrade, Upgrade: websocket",
          "Connection: Upgrade" in h and "Upgrade: websocket" in h, h)
    check("a frame pipelined after the request is echoed", c.recv() == (True, 1, b"early"))

    # text and binary, one frame each
    c.send(1, "héllo".encode())
    check("text echoed", c.recv() == (True, 1, "héllo".encode()))
    c.send(2, bytes(range(256)))
    check("binary echoed", c.recv() == (True, 2, bytes(range(256))))

    # a fragmented message with a ping between its fragments
    c.send(1, b"frag", fin=False)
    c.send(9, b"are you there")
    c.send(0, b"men", fin=False)
    c.send(0, b"ted")
    check("ping between fragments: pong with the same payload",
          c.recv() == (True, 10, b"are you there"))
    check("fragmented message reassembled", c.recv() == (True, 1, b"fragmented"))

    # a bigger binary message (64 KiB limit: just under it)
    big = os.urandom(MAX_MESSAGE - 10)
    c.send(2, big[:30000], fin=False)
    c.send(0, big[30000:])
    check("large fragmented binary echoed", c.recv() == (True, 2, big))

    # the close handshake: our close is answered with the same code, then FIN
    c.send(8, struct.pack("!H", 1000) + b"done")
    fin, op, p = c.recv()
    check("close handshake: close frame with our code", op == 8 and close_code(p) == 1000, (op, p))
    check("close handshake: then a clean EOF", c.eof())
    c.close()

    # an unmasked client frame is refused with 1002
    c = Client(port)
    c.head()
    c.send(1, b"naked", mask=False)
    fin, op, p = c.recv()
    check("unmasked frame: close 1002", op == 8 and close_code(p) == 1002, (op, p))
    check("unmasked frame: then EOF, not a reset", c.eof())
    c.close()

    # reserved bits, an unknown opcode, a continuation out of nowhere: 1002
    for name, kw in (("reserved bit", dict(op=1, payload=b"x", rsv=0x40)),
                     ("opcode 3", dict(op=3, payload=b"x")),
                     ("stray continuation", dict(op=0, payload=b"x"))):
        c = Client(port)
        c.head()
        c.send(**kw)
        fin, op, p = c.recv()
        check(name + ": close 1002", op == 8 and close_code(p) == 1002, (op, p))
        c.close()

    # invalid UTF-8 in a text message: 1007
    c = Client(port)
    c.head()
    c.send(1, b"\xc3\x28")
    fin, op, p = c.recv()
    check("invalid UTF-8 text: close 1007", op == 8 and close_code(p) == 1007, (op, p))
    c.close()

    # a message over --max-message: 1009, even when split in fragments
    c = Client(port)
    c.head()
    c.send(2, b"a" * 40000, fin=False)
    c.send(0, b"a" * 40000)
    fin, op, p = c.recv()
    check("message over the bound: close 1009", op == 8 and close_code(p) == 1009, (op, p))
    c.close()

    # a refused upgrade (wrong version) answered while the client keeps
    # sending: the 426 arrives, then EOF; never a reset
    c = Client(port, version="8")
    junk = Client.frame(None, 2, b"z" * 4096)
    sent = 0
    try:
        for _ in range(256):
            c.s.sendall(junk)
            sent += len(junk)
    except (BrokenPipeError, ConnectionResetError) as e:
        check("refused upgrade: sending goes on", False, e)
    h = c.head()
    check("refused upgrade: 426 with Sec-WebSocket-Version: 13",
          h.startswith("HTTP/1.1 426 Upgrade Required\r\n") and "Sec-WebSocket-Version: 13" in h, h)
    check("refused upgrade: Connection: close", "Connection: close" in h, h)
    c.s.shutdown(socket.SHUT_WR)
    check("refused upgrade: body then EOF, no reset (%d bytes sent)" % sent, c.eof())
    c.close()


def run_stop(port, p):
    # a graceful stop sends 1001 "going away" to open sockets, then FIN
    c = Client(port)
    c.head()
    c.send(1, b"still here")
    c.recv()
    p.send_signal(signal.SIGTERM)
    fin, op, pl = c.recv()
    check("server stop: close 1001", op == 8 and close_code(pl) == 1001, (op, pl))
    check("server stop: then EOF", c.eof())
    c.close()
    try:
        p.wait(10)
        check("server stop: the process exits", p.returncode == 0, p.returncode)
    except subprocess.TimeoutExpired:
        check("server stop: the process exits", False, "still running")


NODE_CLIENT = r"""
const port = process.argv[1];
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
ws.binaryType = 'arraybuffer';
const got = [];
ws.onopen = () => {
  ws.send('héllo');
  ws.send(new Uint8Array([0, 1, 2, 255]).buffer);
  ws.send('x'.repeat(60000));
};
ws.onmessage = (e) => { got.push(e.data); if (got.length === 3) ws.close(1000, 'bye'); };
ws.onclose = (e) => {
  console.log(JSON.stringify({code: e.code, clean: e.wasClean, a: got[0],
                              b: got[1] ? Array.from(new Uint8Array(got[1])) : null,
                              c: got[2] ? got[2].length : 0}));
};
ws.onerror = (e) => console.log(JSON.stringify({error: String(e.message)}));
"""


def run_node(port):
    node = shutil.which("node")
    if not node:
        print("skip node: not installed")
        return
    import json
    try:
        out = subprocess.run([node, "--experimental-websocket", "-e", NODE_CLIENT, str(port)],
                             capture_output=True, text=True, timeout=30)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        check("node WebSocket client", False, e)
        return
    check("node: text, binary and a 60000-byte message echoed",
          r.get("a") == "héllo" and r.get("b") == [0, 1, 2, 255] and r.get("c") == 60000, r)
    check("node: clean close 1000", r.get("code") == 1000 and r.get("clean") is True, r)


def main():
    p, port = start("--max-message", str(MAX_MESSAGE))
    try:
        run_raw(port)
        run_node(port)
        run_stop(port, p)
    finally:
        stop(p)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
