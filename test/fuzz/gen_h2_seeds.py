#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Seeds for fuzz_h2 (test/fuzz/corpus/h2): requests made of real frames, in
fuzz_h2.c's input format: byte 0 odd (the preface and SETTINGS are sent
first), byte 1 a window/limit knob, then slices: length (12 bits over two
bytes, the low nibble of the second an action) and the bytes. Run with
Debian's /usr/bin/python3 (python3-hpack)."""
import os
import struct
import sys

import hpack

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "h2")


def frame(t, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def headers(enc, sid, path, method="GET", end=True, extra=()):
    hs = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "f")] + list(extra)
    return frame(1, 0x4 | (1 if end else 0), sid, enc.encode(hs))


def data(sid, n, end=False):
    return frame(0, 1 if end else 0, sid, b"d" * n)


def slices(*parts):
    out = b""
    for p, act in parts:
        out += bytes([len(p) & 0xff, ((len(p) >> 4) & 0xf0) | act]) + p
    return out


def seeds():
    e = hpack.Encoder
    yield "get", b"\x01\x10" + slices((headers(e(), 1, "/4"), 0), (headers(e(), 3, "/0x"), 3))
    enc = e()
    yield "early", b"\x01\x10" + slices((headers(enc, 1, "/0", "PUT", False, [("content-length", "5000")]), 0),
                                        (data(1, 1000), 0), (data(1, 1000), 3), (data(1, 3000, True), 0),
                                        (headers(enc, 3, "/4"), 0))
    enc = e()
    yield "collect", b"\x01\x20" + slices((headers(enc, 1, "/1", "POST", False), 0), (data(1, 500), 0),
                                          (data(1, 501, True), 0))
    enc = e()
    yield "stream-body", b"\x01\x00" + slices((headers(enc, 1, "/2", "POST", False), 0), (data(1, 301), 0),
                                              (headers(enc, 3, "/4"), 0), (data(1, 14), 3),
                                              (data(1, 10, True), 0))
    enc = e()
    yield "reply-stream", b"\x01\x00" + slices((headers(enc, 1, "/3\x05"), 4), (b"", 3),
                                               (frame(8, 0, 0, struct.pack(">I", 65535)) +
                                                frame(8, 0, 1, struct.pack(">I", 65535)), 5))
    enc = e()
    yield "rst", b"\x01\x00" + slices((headers(enc, 1, "/2", "POST", False) + frame(3, 0, 1, struct.pack(">I", 8)), 0),
                                      (headers(enc, 3, "/5"), 3))
    enc = e()
    yield "stop", b"\x01\x00" + slices((headers(enc, 1, "/3\x02"), 6), (b"", 3), (headers(enc, 3, "/4"), 3))
    yield "raw-preface", b"\x00\x00" + slices((b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0),
                                               (frame(4, 0, 0, b"") + headers(e(), 1, "/4"), 3))


if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    for name, blob in seeds():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(blob)
    sys.exit(0)
