#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""HTTP/2 conformance with raw frames (issue 18): the edge cases h2spec's
sections cover - connection preface, frame format and size, HPACK, stream
states and identifiers, flow control (a zero-window reader included),
SETTINGS, PING, GOAWAY, RST_STREAM, CONTINUATION, HTTP message rules - and
the attacks: CONTINUATION flood, rapid reset (CVE-2023-44487; a polite
client on another connection must be served within 1 s meanwhile), SETTINGS,
PING and empty-frame floods. Each case names its RFC 9113 (or RFC 7541)
section and expectation, and checks it.

Frames are written by hand (struct); header blocks are encoded and decoded
with the hpack package (Debian's python3-hpack, a dependency of python3-h2),
so this runs with /usr/bin/python3. Expectations, as h2spec judges them:
  connection error X: a GOAWAY with X, or the connection closed
  stream error X:     RST_STREAM with X on that stream, or a connection
                      error X (RFC 9113 5.4.2 lets a server escalate)
  malformed (8.1.1):  a stream error PROTOCOL_ERROR, or an answer 400
Usage:
  test_h2_conformance.py --server nginx|h2o [--h2c]   (started here, from
                                                      h2/servers.py)
  test_h2_conformance.py --url https://127.0.0.1:PORT [--path /file.bin]
      [--put-path /up/x --token T] [--pid PID]
  --only SUBSTRING runs the cases whose name has it; --list lists them.
Prints a line per case (ok / FAIL with what came instead) and
"N passed, N failed"; --allow NAME[,NAME] lists known deviations, reported
as "deviation" and not counted as failures.
In make check (no arguments, top_builddir set): graced over TLS, every case,
then over h2c the preface and attack cases (~75 s), with two deviations
nghttp2 1.52 decides for us: ids/decreasing (a HEADERS below the highest
stream id is taken for a closed stream and ignored, not a connection error)
and goaway/client-then-closed (a client's GOAWAY naming stream 1, a stream
the server never initiates, is a PROTOCOL_ERROR to nghttp2: RFC 9113 6.8's
last-stream-id counts the receiver's streams)."""
import argparse
import os
import select
import socket
import ssl
import struct
import sys
import tempfile
import shutil
import threading
import time
import urllib.parse

import hpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "h2"))

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
          "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
          "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED,
 FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR) = range(10)
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT, S_INITIAL_WINDOW, S_MAX_FRAME, S_MAX_HEADER_LIST = range(1, 7)
WAIT = 3.0  # seconds to wait for the server's reaction to one frame


def ename(code):
    return ERRORS[code] if 0 <= code < len(ERRORS) else "0x%x" % code


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"h2kit!!!", ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def rst(sid, code):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def window_update(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


class Target:
    def __init__(self, url, path, put_path, token, pid_fn=None):
        u = urllib.parse.urlsplit(url)
        self.tls = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.tls else 80)
        self.authority = "%s:%d" % (self.host, self.port)
        self.path, self.put_path, self.token = path, put_path, token
        self.pid_fn = pid_fn


class Conn:
    """One HTTP/2 connection written frame by frame."""

    def __init__(self, t, preface=True, our_settings=()):
        self.t = t
        s = socket.create_connection((t.host, t.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname=t.host)
            if s.selected_alpn_protocol() != "h2":
                raise RuntimeError("ALPN: the server chose %r, not h2" % s.selected_alpn_protocol())
        self.s = s
        self.buf = b""
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.closed = False
        self.server_settings = {}
        self.frames = []  # everything read, in order
        if preface:
            self.send(PREFACE + settings(*our_settings))

    def send(self, *data):
        try:
            self.s.sendall(b"".join(data))
            return True
        except OSError:
            self.closed = True
            return False

    def read(self, timeout=WAIT):
        """The next frame (type, flags, sid, payload), or None: closed or timed out."""
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                         self.buf[9:9 + n])
                    self.buf = self.buf[9 + n:]
                    self.frames.append(f)
                    if f[0] == SETTINGS and not f[1] & ACK:
                        for i in range(0, len(f[3]) - 5, 6):
                            k, v = struct.unpack(">HI", f[3][i:i + 6])
                            self.server_settings[k] = v
                    return f
            if self.closed:
                return None
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            except (OSError, ssl.SSLError):
                d = b""
            if not d:
                self.closed = True
            self.buf += d

    def handshake(self):
        """Read to the server's SETTINGS, acknowledge it; False if none came."""
        while True:
            f = self.read()
            if f is None:
                return False
            if f[0] == SETTINGS and not f[1] & ACK:
                self.send(settings(ack=True))
                return True

    def headers(self, path=None, method="GET", extra=(), scheme=None):
        hs = [(":method", method), (":scheme", scheme or ("https" if self.t.tls else "http")),
              (":path", path or self.t.path), (":authority", self.t.authority)]
        return self.enc.encode(hs + list(extra))

    def request(self, sid, path=None, method="GET", extra=(), end_stream=True):
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid,
                     self.headers(path, method, extra))

    def decode(self, f):
        """The :status of a HEADERS frame (keeps the HPACK decoder in step)."""
        p = f[3]
        if f[1] & PADDED:
            p = p[1:len(p) - p[0]]
        if f[1] & PRIORITY_FLAG:
            p = p[5:]
        try:
            return dict(self.dec.decode(p)).get(":status")
        except Exception:
            return None

    def outcome(self, timeout=WAIT, until_status=None):
        """Read until GOAWAY, close or timeout: what the server did."""
        o = dict(goaway=None, closed=False, rst={}, status={}, data={}, ping_ack=[], frames=[])
        end = time.monotonic() + timeout
        while True:
            f = self.read(max(0.0, end - time.monotonic()))
            if f is None:
                o["closed"] = self.closed
                return o
            o["frames"].append(f)
            if f[0] == GOAWAY:
                o["goaway"] = struct.unpack(">I", f[3][4:8])[0]
                o["last_sid"] = struct.unpack(">I", f[3][:4])[0] & 0x7FFFFFFF
                # let the close follow the GOAWAY
                end = min(end, time.monotonic() + 1.0)
            elif f[0] == RST_STREAM:
                o["rst"][f[2]] = struct.unpack(">I", f[3][:4])[0]
            elif f[0] == HEADERS:
                st = self.decode(f)
                if st is not None:
                    o["status"][f[2]] = st
            elif f[0] == DATA:
                o["data"][f[2]] = o["data"].get(f[2], 0) + len(f[3])
                if f[1] & END_STREAM and until_status is not None and f[2] in o["status"]:
                    return o
            elif f[0] == PING and f[1] & ACK:
                o["ping_ack"].append(f[3])
                if until_status == "ping":
                    return o
            elif f[0] == SETTINGS and not f[1] & ACK:
                self.send(settings(ack=True))

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def describe(o):
    parts = []
    if o["goaway"] is not None:
        parts.append("GOAWAY %s" % ename(o["goaway"]))
    for sid, code in o["rst"].items():
        parts.append("RST_STREAM(%d) %s" % (sid, ename(code)))
    for sid, st in o["status"].items():
        parts.append("stream %d: %s" % (sid, st))
    if o["ping_ack"]:
        parts.append("PING ack")
    if o["closed"]:
        parts.append("closed")
    return ", ".join(parts) or "nothing within %.0f s" % WAIT


def conn_error(o, code):
    if o["goaway"] is not None:
        return o["goaway"] == code
    return o["closed"]


def stream_error(o, sid, code):
    if sid in o["rst"]:
        return o["rst"][sid] == code
    return conn_error(o, code)


def malformed(o, sid):
    if o["status"].get(sid) == "400":
        return True
    return stream_error(o, sid, PROTOCOL_ERROR)


def alive(c):
    """Does the connection still answer a PING?"""
    if not c.send(ping(b"alive?!!")):
        return False
    o = c.outcome(until_status="ping")
    return b"alive?!!" in o["ping_ack"]


# ---------------------------------------------------------------- cases
# each: (name, section, expectation, fn(target) -> (passed, what came))

CASES = []


def case(name, section, expect):
    def reg(fn):
        CASES.append((name, section, expect, fn))
        return fn
    return reg


def opened(t, our_settings=()):
    c = Conn(t, our_settings=our_settings)
    if not c.handshake():
        c.close()
        raise RuntimeError("no SETTINGS from the server")
    return c


def after(t, frames, judge, our_settings=()):
    """Send frames on a fresh connection; judge(outcome) -> passed."""
    c = opened(t, our_settings)
    try:
        c.send(*[f(c) if callable(f) else f for f in frames])
        o = c.outcome()
        return judge(o), describe(o)
    finally:
        c.close()


# 3.4 preface
@case("preface/invalid", "3.4", "an invalid client preface: connection error PROTOCOL_ERROR")
def _(t):
    c = Conn(t, preface=False)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings())
    o = c.outcome()
    c.close()
    return conn_error(o, PROTOCOL_ERROR), describe(o)


@case("preface/server-settings-first", "3.4", "the server's first frame is SETTINGS")
def _(t):
    c = Conn(t)
    f = c.read()
    c.close()
    return f is not None and f[0] == SETTINGS and not f[1] & ACK, "first frame %r" % (f[:3] if f else None,)


@case("settings/acked", "6.5.3", "the server acknowledges our SETTINGS")
def _(t):
    c = opened(t, our_settings=((S_MAX_CONCURRENT, 100),))
    ok = any(f[0] == SETTINGS and f[1] & ACK for f in c.frames)
    end = time.monotonic() + WAIT
    while not ok and time.monotonic() < end:
        f = c.read(0.2)
        ok = f is not None and f[0] == SETTINGS and bool(f[1] & ACK)
    c.close()
    return ok, "SETTINGS ACK" if ok else "no ACK"


# 4.1 frame format
@case("frame/unknown-type", "4.1, 5.5", "a frame of an unknown type is ignored")
def _(t):
    c = opened(t)
    c.send(frame(0xFA, 0, 0, b"unknown"))
    ok = alive(c)
    c.close()
    return ok, "PING answered" if ok else "no PING ack"


@case("frame/unknown-flags", "4.1", "undefined flags are ignored (PING with 0xF6)")
def _(t):
    c = opened(t)
    c.send(frame(PING, 0xF6, 0, b"flags!!!"))
    o = c.outcome(until_status="ping")
    c.close()
    return b"flags!!!" in o["ping_ack"], describe(o)


@case("frame/reserved-bit", "4.1", "the reserved bit of the stream id is ignored")
def _(t):
    c = opened(t)
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 0x80000001, c.headers()))
    o = c.outcome(until_status=True)
    c.close()
    return o["status"].get(1) == "200", describe(o)


# 4.2 frame size
def max_frame(c):
    """The server's SETTINGS_MAX_FRAME_SIZE (16384 unless it said)."""
    return c.server_settings.get(S_MAX_FRAME, 16384)


@case("size/data-over-max", "4.2", "DATA over the server's SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR")
def _(t):
    c = opened(t)
    n = max_frame(c)
    if n >= (1 << 24) - 1:
        c.close()
        return True, "not applicable: the server takes frames of %d, the most a frame holds" % n
    c.send(c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False), frame(DATA, 0, 1, b"x" * (n + 1)))
    o = c.outcome()
    c.close()
    return stream_error(o, 1, FRAME_SIZE_ERROR), "max %d: %s" % (n, describe(o))


@case("size/headers-over-max", "4.2",
      "HEADERS over the server's SETTINGS_MAX_FRAME_SIZE: connection error FRAME_SIZE_ERROR")
def _(t):
    c = opened(t)
    n = max_frame(c)
    if n >= (1 << 24) - 1:
        c.close()
        return True, "not applicable: the server takes frames of %d, the most a frame holds" % n
    block = c.headers(extra=[("x-pad%d" % i, "y" * 4000) for i in range(n // 4000 + 2)])
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    o = c.outcome()
    c.close()
    return conn_error(o, FRAME_SIZE_ERROR), "max %d, HEADERS of %d: %s" % (n, len(block), describe(o))


# 4.3 / RFC 7541 HPACK
@case("hpack/bad-index", "4.3, RFC 7541 2.3.3", "an index past the tables: COMPRESSION_ERROR")
def _(t):
    return after(t, [frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\x7f")],  # index 254
                 lambda o: conn_error(o, COMPRESSION_ERROR))


@case("hpack/table-size-over-settings", "RFC 7541 4.2, 6.3",
      "a dynamic table size update over SETTINGS_HEADER_TABLE_SIZE: COMPRESSION_ERROR")
def _(t):
    # 0x3f e2 1f: a size update to 31 + 98 + 31 * 128 = 4097
    return after(t, [lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe2\x1f" + c.headers())],
                 lambda o: conn_error(o, COMPRESSION_ERROR))


@case("hpack/table-size-not-first", "RFC 7541 4.2", "a table size update after a field: COMPRESSION_ERROR")
def _(t):
    return after(t, [lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 1, c.headers() + b"\x20")],
                 lambda o: conn_error(o, COMPRESSION_ERROR))


@case("hpack/huffman-eos", "RFC 7541 5.2", "a Huffman string holding EOS: COMPRESSION_ERROR")
def _(t):
    # literal without indexing, new name "x" (raw), value Huffman: 30 one-bits (EOS) padded
    block = b"\x00\x01x\x84\xff\xff\xff\xff"
    return after(t, [lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 1, c.headers() + block)],
                 lambda o: conn_error(o, COMPRESSION_ERROR))


@case("hpack/huffman-bad-padding", "RFC 7541 5.2", "Huffman padding not of ones (or over 7 bits): COMPRESSION_ERROR")
def _(t):
    # 'a' is 00011 (5 bits): then padding 000 instead of 111
    block = b"\x00\x01x\x81\x18"
    return after(t, [lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 1, c.headers() + block)],
                 lambda o: conn_error(o, COMPRESSION_ERROR))


# 5.1 stream states
@case("state/data-on-idle", "5.1", "DATA on an idle stream: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(DATA, END_STREAM, 1, b"x")], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("state/rst-on-idle", "5.1, 6.4", "RST_STREAM on an idle stream: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [rst(1, CANCEL)], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("state/window-update-on-idle", "5.1", "WINDOW_UPDATE on an idle stream: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [window_update(1, 100)], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("state/continuation-alone", "6.10", "CONTINUATION without HEADERS: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: frame(CONTINUATION, END_HEADERS, 1, c.headers())],
                 lambda o: conn_error(o, PROTOCOL_ERROR))


@case("state/data-half-closed", "5.1", "DATA after END_STREAM (half-closed remote): STREAM_CLOSED")
def _(t):
    # a zero window: the answer cannot end, so the stream stays half-closed (remote)
    return after(t, [lambda c: c.request(1), frame(DATA, 0, 1, b"late")],
                 lambda o: stream_error(o, 1, STREAM_CLOSED), our_settings=((S_INITIAL_WINDOW, 0),))


@case("state/headers-half-closed", "5.1", "HEADERS after END_STREAM (half-closed remote): STREAM_CLOSED")
def _(t):
    def go(c):
        return c.request(1) + frame(HEADERS, END_HEADERS | END_STREAM, 1, c.enc.encode([("x-trailer", "1")]))
    return after(t, [go], lambda o: stream_error(o, 1, STREAM_CLOSED), our_settings=((S_INITIAL_WINDOW, 0),))


@case("state/data-on-closed", "5.1, 6.1", "DATA on a stream closed after its answer: STREAM_CLOSED")
def _(t):
    c = opened(t)
    c.send(c.request(1, "/index.html"))
    o = c.outcome(until_status=True)
    if o["status"].get(1) is None:
        c.close()
        return False, "no answer: " + describe(o)
    c.send(frame(DATA, 0, 1, b"late"))
    o = c.outcome()
    c.close()
    return stream_error(o, 1, STREAM_CLOSED), describe(o)


# 5.1.1 stream identifiers
@case("ids/even", "5.1.1", "a client stream with an even id: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: c.request(2)], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("ids/decreasing", "5.1.1", "a stream id below one already used: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: c.request(5, "/index.html"), lambda c: c.request(3, "/index.html")],
                 lambda o: conn_error(o, PROTOCOL_ERROR))


# 5.1.2 concurrency
@case("streams/over-max-concurrent", "5.1.2",
      "streams past SETTINGS_MAX_CONCURRENT_STREAMS: PROTOCOL_ERROR or REFUSED_STREAM")
def _(t):
    c = opened(t, our_settings=((S_INITIAL_WINDOW, 0),))  # answers stay open
    n = c.server_settings.get(S_MAX_CONCURRENT, 100)
    if n > 1000:
        c.close()
        return False, "SETTINGS_MAX_CONCURRENT_STREAMS %d: not tried" % n
    c.send(*[c.request(1 + 2 * i) for i in range(n + 1)])
    o = c.outcome()
    c.close()
    last = 1 + 2 * n
    ok = o["rst"].get(last) in (PROTOCOL_ERROR, REFUSED_STREAM) or o["goaway"] == PROTOCOL_ERROR
    return ok, "max %d; stream %d: %s" % (n, last, describe(o) if not ok else ename(o["rst"].get(last, 0)))


# 5.3.1 priority
@case("priority/self-dependency", "5.3.1", "a stream depending on itself: stream error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 16))],
                 lambda o: stream_error(o, 1, PROTOCOL_ERROR))


# 6.1 DATA
@case("data/stream-0", "6.1", "DATA on stream 0: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(DATA, 0, 0, b"x")], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("data/padding-too-long", "6.1", "DATA padding as long as the payload: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False),
                     frame(DATA, PADDED, 1, b"\x05abcd")], lambda o: conn_error(o, PROTOCOL_ERROR))


# 6.2 HEADERS
@case("headers/stream-0", "6.2", "HEADERS on stream 0: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 0, c.headers())],
                 lambda o: conn_error(o, PROTOCOL_ERROR))


@case("headers/padding-too-long", "6.2", "HEADERS padding past the payload: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, b"\xff" + c.headers())],
                 lambda o: conn_error(o, PROTOCOL_ERROR))


@case("headers/split-continuation", "6.10", "HEADERS + CONTINUATION carry one header block: answered")
def _(t):
    c = opened(t)
    b = c.headers()
    c.send(frame(HEADERS, END_STREAM, 1, b[:5]), frame(CONTINUATION, 0, 1, b[5:9]),
           frame(CONTINUATION, END_HEADERS, 1, b[9:]))
    o = c.outcome(until_status=True)
    c.close()
    return o["status"].get(1) == "200", describe(o)


@case("headers/frame-between", "6.2, 6.10", "another frame inside a header block: connection error PROTOCOL_ERROR")
def _(t):
    def go(c):
        b = c.headers()
        return frame(HEADERS, END_STREAM, 1, b[:5]) + ping() + frame(CONTINUATION, END_HEADERS, 1, b[5:])
    return after(t, [go], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("continuation/other-stream", "6.10", "CONTINUATION of another stream: connection error PROTOCOL_ERROR")
def _(t):
    def go(c):
        b = c.headers()
        return frame(HEADERS, END_STREAM, 1, b[:5]) + frame(CONTINUATION, END_HEADERS, 3, b[5:])
    return after(t, [go], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("continuation/after-end-headers", "6.10", "CONTINUATION after END_HEADERS: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: frame(HEADERS, END_HEADERS, 1, c.headers("/index.html", "PUT", auth(t))),
                     lambda c: frame(CONTINUATION, END_HEADERS, 1, c.enc.encode([("x-a", "b")]))],
                 lambda o: conn_error(o, PROTOCOL_ERROR))


# 6.3 PRIORITY
@case("priority/stream-0", "6.3", "PRIORITY on stream 0: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(PRIORITY, 0, 0, struct.pack(">IB", 1, 16))], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("priority/bad-length", "6.3", "PRIORITY of 4 bytes: stream error FRAME_SIZE_ERROR")
def _(t):
    return after(t, [frame(PRIORITY, 0, 1, struct.pack(">I", 3))], lambda o: stream_error(o, 1, FRAME_SIZE_ERROR))


# 6.4 RST_STREAM
@case("rst/stream-0", "6.4", "RST_STREAM on stream 0: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [rst(0, CANCEL)], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("rst/bad-length", "6.4", "RST_STREAM of 3 bytes: connection error FRAME_SIZE_ERROR")
def _(t):
    return after(t, [lambda c: c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False),
                     frame(RST_STREAM, 0, 1, b"\0\0\0")], lambda o: conn_error(o, FRAME_SIZE_ERROR))


@case("rst/then-alive", "6.4", "after RST_STREAM(CANCEL) of a stream the connection goes on")
def _(t):
    c = opened(t)
    c.send(c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False), rst(1, CANCEL),
           c.request(3, "/index.html"))
    o = c.outcome(until_status=True)
    c.close()
    return o["status"].get(3) == "200" and o["goaway"] is None, describe(o)


# 6.5 SETTINGS
@case("settings/ack-with-payload", "6.5", "SETTINGS ACK with a payload: connection error FRAME_SIZE_ERROR")
def _(t):
    return after(t, [frame(SETTINGS, ACK, 0, struct.pack(">HI", 3, 100))], lambda o: conn_error(o, FRAME_SIZE_ERROR))


@case("settings/on-stream", "6.5", "SETTINGS on stream 1: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(SETTINGS, 0, 1, b"")], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("settings/bad-length", "6.5", "SETTINGS of 3 bytes: connection error FRAME_SIZE_ERROR")
def _(t):
    return after(t, [frame(SETTINGS, 0, 0, b"\0\3\0")], lambda o: conn_error(o, FRAME_SIZE_ERROR))


@case("settings/enable-push-2", "6.5.2", "SETTINGS_ENABLE_PUSH 2: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [settings((S_ENABLE_PUSH, 2))], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("settings/window-too-big", "6.5.2", "SETTINGS_INITIAL_WINDOW_SIZE 2^31: connection error FLOW_CONTROL_ERROR")
def _(t):
    return after(t, [settings((S_INITIAL_WINDOW, 1 << 31))], lambda o: conn_error(o, FLOW_CONTROL_ERROR))


@case("settings/frame-size-small", "6.5.2", "SETTINGS_MAX_FRAME_SIZE 16383: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [settings((S_MAX_FRAME, 16383))], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("settings/frame-size-big", "6.5.2", "SETTINGS_MAX_FRAME_SIZE 2^24: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [settings((S_MAX_FRAME, 1 << 24))], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("settings/unknown-ignored", "6.5.2", "an unknown setting is ignored (and acknowledged)")
def _(t):
    c = opened(t)
    c.send(settings((0xFF, 1)))
    o = c.outcome(timeout=1.0)
    ok = any(f[0] == SETTINGS and f[1] & ACK for f in o["frames"]) and alive(c)
    c.close()
    return ok, describe(o)


# 6.7 PING
@case("ping/answered", "6.7", "PING: a PING ACK with the same 8 bytes")
def _(t):
    c = opened(t)
    c.send(ping(b"12345678"))
    o = c.outcome(until_status="ping")
    c.close()
    return o["ping_ack"] == [b"12345678"], describe(o)


@case("ping/ack-not-answered", "6.7", "a PING ACK from the client is not answered")
def _(t):
    c = opened(t)
    c.send(ping(b"87654321", ack=True), ping(b"check!!!"))
    o = c.outcome(until_status="ping")
    c.close()
    return o["ping_ack"] == [b"check!!!"], "acks: %r" % o["ping_ack"]


@case("ping/on-stream", "6.7", "PING on stream 1: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(PING, 0, 1, b"12345678")], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("ping/bad-length", "6.7", "PING of 6 bytes: connection error FRAME_SIZE_ERROR")
def _(t):
    return after(t, [frame(PING, 0, 0, b"123456")], lambda o: conn_error(o, FRAME_SIZE_ERROR))


# 6.8 GOAWAY
@case("goaway/on-stream", "6.8", "GOAWAY on stream 1: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0))], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("goaway/client-then-closed", "6.8", "after the client's GOAWAY a stream in flight is still answered")
def _(t):
    c = opened(t)
    c.send(c.request(1, "/index.html"), frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)))
    o = c.outcome(until_status=True)
    c.close()
    return o["status"].get(1) == "200", describe(o)


# 6.9 WINDOW_UPDATE and flow control
@case("window/zero-increment-conn", "6.9", "WINDOW_UPDATE of 0 on the connection: connection error PROTOCOL_ERROR")
def _(t):
    return after(t, [window_update(0, 0)], lambda o: conn_error(o, PROTOCOL_ERROR))


@case("window/zero-increment-stream", "6.9", "WINDOW_UPDATE of 0 on a stream: stream error PROTOCOL_ERROR")
def _(t):
    return after(t, [lambda c: c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False),
                     window_update(1, 0)], lambda o: stream_error(o, 1, PROTOCOL_ERROR))


@case("window/bad-length", "6.9", "WINDOW_UPDATE of 3 bytes: connection error FRAME_SIZE_ERROR")
def _(t):
    return after(t, [frame(WINDOW_UPDATE, 0, 0, b"\0\0\1")], lambda o: conn_error(o, FRAME_SIZE_ERROR))


@case("window/overflow-conn", "6.9.1", "a connection window past 2^31-1: connection error FLOW_CONTROL_ERROR")
def _(t):
    return after(t, [window_update(0, 0x7FFFFFFF), window_update(0, 0x7FFFFFFF)],
                 lambda o: conn_error(o, FLOW_CONTROL_ERROR))


@case("window/overflow-stream", "6.9.1", "a stream window past 2^31-1: stream error FLOW_CONTROL_ERROR")
def _(t):
    return after(t, [lambda c: c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False),
                     window_update(1, 0x7FFFFFFF), window_update(1, 0x7FFFFFFF)],
                 lambda o: stream_error(o, 1, FLOW_CONTROL_ERROR))


@case("window/zero-window-reader", "6.9, 6.9.2",
      "SETTINGS_INITIAL_WINDOW_SIZE 0: no DATA; a WINDOW_UPDATE of 1 brings one byte (and the 200)")
def _(t):
    c = opened(t, our_settings=((S_INITIAL_WINDOW, 0),))
    c.send(c.request(1))
    o = c.outcome(timeout=1.5)
    got0 = o["data"].get(1, 0)
    c.send(window_update(1, 1))
    o2 = c.outcome(timeout=1.5)
    got1 = o2["data"].get(1, 0)
    # the HEADERS may wait for the window (nginx sends them with the first DATA)
    head = o["status"].get(1) or o2["status"].get(1)
    ok = head == "200" and got0 == 0 and got1 == 1 and alive(c)
    c.close()
    return ok, "status %s, DATA bytes with window 0: %d, after +1: %d" % (head, got0, got1)


@case("window/initial-size-change", "6.9.2",
      "a new SETTINGS_INITIAL_WINDOW_SIZE applies to open streams (the stalled answer resumes)")
def _(t):
    c = opened(t, our_settings=((S_INITIAL_WINDOW, 0),))
    c.send(c.request(1))
    c.outcome(timeout=1.0)
    c.send(settings((S_INITIAL_WINDOW, 100)))
    o = c.outcome(timeout=1.5)
    c.close()
    return o["data"].get(1, 0) == 100, "DATA bytes after the window became 100: %d" % o["data"].get(1, 0)


@case("window/conn-window-respected", "6.9.1", "the server sends no more than the connection window (65535)")
def _(t):
    c = opened(t, our_settings=((S_INITIAL_WINDOW, 1 << 20),))
    c.send(c.request(1))
    o = c.outcome(timeout=2.0)
    c.close()
    got = o["data"].get(1, 0)
    return got <= 65535, "DATA bytes without a connection WINDOW_UPDATE: %d" % got


# 8.1 HTTP messages
def auth(t):
    return [("authorization", "Bearer " + t.token)] if t.token else []


@case("http/uppercase-name", "8.2.1", "an uppercase field name: malformed")
def _(t):
    return after(t, [lambda c: c.request(1, extra=[("X-Upper", "1")])], lambda o: malformed(o, 1))


@case("http/connection-header", "8.2.2", "a connection-specific field (connection): malformed")
def _(t):
    return after(t, [lambda c: c.request(1, extra=[("connection", "keep-alive")])], lambda o: malformed(o, 1))


@case("http/te-not-trailers", "8.2.2", "TE other than trailers: malformed")
def _(t):
    return after(t, [lambda c: c.request(1, extra=[("te", "gzip")])], lambda o: malformed(o, 1))


@case("http/no-method", "8.3.1", "no :method: malformed")
def _(t):
    def go(c):
        hs = [(":scheme", "https" if t.tls else "http"), (":path", t.path), (":authority", t.authority)]
        return frame(HEADERS, END_HEADERS | END_STREAM, 1, c.enc.encode(hs))
    return after(t, [go], lambda o: malformed(o, 1))


@case("http/pseudo-after-regular", "8.3", "a pseudo-header after a regular field: malformed")
def _(t):
    def go(c):
        hs = [(":method", "GET"), (":scheme", "https" if t.tls else "http"), ("x-a", "b"),
              (":path", t.path), (":authority", t.authority)]
        return frame(HEADERS, END_HEADERS | END_STREAM, 1, c.enc.encode(hs))
    return after(t, [go], lambda o: malformed(o, 1))


@case("http/unknown-pseudo", "8.3", "an unknown pseudo-header: malformed")
def _(t):
    return after(t, [lambda c: c.request(1, extra=[(":bogus", "1")])], lambda o: malformed(o, 1))


@case("http/content-length-mismatch", "8.1.1", "DATA shorter than content-length: malformed")
def _(t):
    return after(t, [lambda c: c.request(1, t.put_path or t.path, "PUT",
                                         auth(t) + [("content-length", "10")], end_stream=False),
                     frame(DATA, END_STREAM, 1, b"12345")], lambda o: malformed(o, 1))


# ---------------------------------------------------------------- attacks

class Polite(threading.Thread):
    """Another client, on its own connection each time, GETting
    /index.html every 100 ms while an attack runs: the latencies."""

    def __init__(self, t):
        super().__init__(daemon=True)
        self.t, self.lat, self.fail, self.stop_ = t, [], [], threading.Event()

    def run(self):
        while not self.stop_.is_set():
            t0 = time.monotonic()
            try:
                c = Conn(self.t)
                c.send(c.request(1, "/index.html"))
                o = c.outcome(timeout=5.0, until_status=True)
                c.close()
                if o["status"].get(1) == "200":
                    self.lat.append(time.monotonic() - t0)
                else:
                    self.fail.append(describe(o))
            except Exception as e:
                self.fail.append(repr(e))
            self.stop_.wait(0.1)

    def verdict(self):
        self.stop_.set()
        self.join(10)
        if not self.lat:
            return False, "the polite client got no answer (%s)" % "; ".join(self.fail[:2])
        worst = max(self.lat)
        return (worst < 1.0 and not self.fail,
                "polite client: %d answers, worst %.0f ms, %d failed" % (len(self.lat), worst * 1e3, len(self.fail)))


def cpu_seconds(t):
    if not t.pid_fn:
        return None
    tot = 0
    for p in t.pid_fn():
        try:
            with open("/proc/%d/stat" % p) as f:
                v = f.read().rsplit(")", 1)[1].split()
            tot += int(v[11]) + int(v[12])
        except OSError:
            pass
    return tot / os.sysconf("SC_CLK_TCK")


def flood(t, make, seconds, setup=None, chunk=64 << 10):
    """Write make(conn, i) frames as fast as the server takes them for up to
    seconds, reading (and dropping) what comes back; a polite client runs
    meanwhile. -> (sent frames, bytes, goaway code or None, closed, polite
    verdict, server CPU seconds or None)."""
    c = opened(t)
    if setup:
        c.send(setup(c))
    polite = Polite(t)
    polite.start()
    cpu0 = cpu_seconds(t)
    c.s.setblocking(False)
    pending, gen, nbytes, i, goaway = b"", 0, 0, 0, None
    end = time.monotonic() + seconds
    while time.monotonic() < end and not c.closed:
        while len(pending) < chunk:
            f = make(c, i)
            i += 1
            gen += len(f)
            pending += f
        r, w, _ = select.select([c.s], [c.s], [], 0.2)
        if r:
            try:
                d = c.s.recv(1 << 20)
                if not d:
                    c.closed = True
                c.buf += d
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            except OSError:
                c.closed = True
            while len(c.buf) >= 9:
                n = int.from_bytes(c.buf[:3], "big")
                if len(c.buf) < 9 + n:
                    break
                if c.buf[3] == GOAWAY:
                    goaway = struct.unpack(">I", c.buf[9 + 4:9 + 8])[0]
                c.buf = c.buf[9 + n:]
        if w and not c.closed:
            try:
                k = c.s.send(pending[:chunk])
                pending = pending[k:]
                nbytes += k
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            except OSError:
                c.closed = True
    sent = int(nbytes / (gen / i)) if i else 0  # frames written (their mean size)
    cpu1 = cpu_seconds(t)
    c.close()
    verdict = polite.verdict()
    return sent, nbytes, goaway, c.closed, verdict, (cpu1 - cpu0) if cpu0 is not None else None


def flood_report(sent, nbytes, goaway, closed, verdict, cpu, what):
    cut = ("GOAWAY %s" % ename(goaway)) if goaway is not None else ("closed" if closed else "not cut")
    cpu_s = "" if cpu is None else ", server CPU %.2f s" % cpu
    return verdict[0], "%s: ~%d frames (%.1f MB) sent, the flooder was %s%s; %s" % (
        what, sent, nbytes / 1e6, cut, cpu_s, verdict[1])


FLOOD_SECONDS = 4.0


@case("attack/rapid-reset", "10.5 (CVE-2023-44487)",
      "streams opened and cancelled in a loop: others are still served within 1 s")
def _(t):
    def make(c, i):
        sid = 1 + 2 * i
        if sid > 0x7FFFFFFF:
            return b""
        return c.request(sid, "/index.html") + rst(sid, CANCEL)
    return flood_report(*flood(t, make, FLOOD_SECONDS), "HEADERS+RST_STREAM pairs")


@case("attack/continuation-flood", "10.5 (CVE-2024-27316 class)",
      "a header block that never ends: the server ends the connection, others are still served")
def _(t):
    def setup(c):
        return frame(HEADERS, 0, 1, c.headers())

    def make(c, i):
        return frame(CONTINUATION, 0, 1, b"\x00\x03x-a\x03bbb")  # literal, never indexed
    sent, nbytes, goaway, closed, verdict, cpu = flood(t, make, FLOOD_SECONDS, setup)
    ok, text = flood_report(sent, nbytes, goaway, closed, verdict, cpu, "CONTINUATION frames")
    return ok and (closed or goaway is not None), text


@case("attack/settings-flood", "10.5", "SETTINGS without reading the ACKs: others are still served")
def _(t):
    return flood_report(*flood(t, lambda c, i: settings((S_MAX_CONCURRENT, 100)), FLOOD_SECONDS),
                        "SETTINGS frames")


@case("attack/ping-flood", "10.5 (CVE-2019-9512)", "PINGs without reading the ACKs: others are still served")
def _(t):
    return flood_report(*flood(t, lambda c, i: ping(), FLOOD_SECONDS), "PING frames")


@case("attack/empty-data-flood", "10.5 (CVE-2019-9518)", "empty DATA frames on a stream: others are still served")
def _(t):
    def setup(c):
        return c.request(1, t.put_path or t.path, "PUT", auth(t), end_stream=False)
    return flood_report(*flood(t, lambda c, i: frame(DATA, 0, 1, b""), FLOOD_SECONDS, setup),
                        "empty DATA frames")


@case("attack/zero-window-held", "6.9, 10.5",
      "a reader that never opens its window: others are still served, the server stays up")
def _(t):
    c = opened(t, our_settings=((S_INITIAL_WINDOW, 0),))
    c.send(*[c.request(1 + 2 * i) for i in range(10)])
    polite = Polite(t)
    polite.start()
    time.sleep(2.0)
    ok, text = polite.verdict()
    o = c.outcome(timeout=0.5)
    c.close()
    return ok, "%s; the held connection: %s" % (text, "closed" if o["closed"] else "still open after 2.5 s")


# ---------------------------------------------------------------- main

def run(t, only, allow):
    passed = failed = 0
    for name, section, expect, fn in CASES:
        if only and not any(o in name for o in only):
            continue
        t0 = time.monotonic()
        try:
            ok, what = fn(t)
        except Exception as e:  # a crash in one case is its failure, not the run's
            ok, what = False, "raised %r" % e
        took = time.monotonic() - t0
        if ok:
            passed += 1
            tag = "ok  "
        elif name in allow:
            passed += 1
            tag = "dev "
        else:
            failed += 1
            tag = "FAIL"
        print("%s %-34s RFC 9113 %-24s %s -> %s (%.1f s)" % (tag, name, section, expect, what, took),
              flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="https://127.0.0.1:PORT (TLS, ALPN h2) or http://... (h2c prior knowledge)")
    ap.add_argument("--port", type=int, help="same as --url https://127.0.0.1:PORT")
    ap.add_argument("--server", choices=["nginx", "h2o", "graced"], help="start this profile here")
    ap.add_argument("--h2c", action="store_true", help="with --server: its h2c port instead of TLS")
    ap.add_argument("--path", default="/file.bin", help="a file of at least 64 KiB to GET")
    ap.add_argument("--put-path", default="/up/conformance", help="a path that takes a PUT body")
    ap.add_argument("--token", default="", help="the Bearer token the PUT path wants")
    ap.add_argument("--pid", type=int, action="append", default=[], help="server PIDs (CPU during attacks)")
    ap.add_argument("--only", default="", help="comma-separated substrings of case names")
    ap.add_argument("--allow", default="", help="comma-separated cases that are known deviations")
    ap.add_argument("--list", action="store_true")
    if len(sys.argv) == 1 and os.environ.get("top_builddir"):  # make check
        dev = "ids/decreasing,goaway/client-then-closed"
        failed = 0
        for extra in ([], ["--h2c", "--only", "preface,attack"]):
            sys.argv = [sys.argv[0], "--server", "graced", "--allow", dev] + extra
            failed += main()
        return 1 if failed else 0
    args = ap.parse_args()
    if args.list:
        for name, section, expect, _ in CASES:
            print("%-34s %-26s %s" % (name, section, expect))
        return 0
    only = [o for o in args.only.split(",") if o]
    allow = {a for a in args.allow.split(",") if a}
    if args.server:
        import servers
        tmp = tempfile.mkdtemp(prefix="h2conf.")
        try:
            fx = servers.Fixture(tmp, [])
            srv = servers.Running(servers.PROFILES[args.server](fx), fx)
            try:
                port = fx.ports["port" if args.h2c else "tls_port"]
                url = "%s://127.0.0.1:%d" % ("http" if args.h2c else "https", port)
                t = Target(url, args.path, args.put_path, fx.token, srv.cpu_pids)
                print("== %s %s (%s)" % (args.server, url, srv.profile.get("version")), flush=True)
                failed = run(t, only, allow)
            finally:
                srv.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        url = args.url or ("https://127.0.0.1:%d" % args.port if args.port else None)
        if not url:
            ap.error("--url, --port or --server")
        pids = args.pid
        t = Target(url, args.path, args.put_path, args.token, (lambda: pids) if pids else None)
        failed = run(t, only, allow)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
