#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Mixed traffic against graced for SECONDS: keep-alive GETs, pipelined GETs,
accepted uploads, uploads refused early (no token, 8 MiB, written whole
before reading), and clients that vanish mid-body. Prints counts as
"key value" lines; exits 1 if any request that should succeed failed or an
early answer was lost."""
import http.client
import os
import random
import socket
import sys
import threading
import time

port, seconds, token = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
stats = {"get": 0, "pipelined": 0, "upload_ok": 0, "early_401": 0, "vanished": 0,
         "errors": 0, "early_lost": 0}
lock = threading.Lock()
BIG = b"s" * (8 << 20)


def bump(k, n=1):
    with lock:
        stats[k] += n


def keepalive():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(20):
        c.request("GET", "/file.txt")
        r = c.getresponse()
        ok = r.status == 200 and r.read() == b"soak\n"
        bump("get" if ok else "errors")
    c.close()


def pipelined():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /file.txt HTTP/1.1\r\nHost: s\r\n\r\n" * 16)
    data = b""
    while data.count(b"soak\n") < 16:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    bump("pipelined" if data.count(b"HTTP/1.1 200") == 16 else "errors")


def upload_ok():
    name = "u%d.bin" % random.randrange(50)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("PUT", "/" + name, body=os.urandom(random.randrange(1, 300000)),
              headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    r.read()
    bump("upload_ok" if r.status in (201, 204) else "errors")
    c.close()


def early():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("PUT", "/refused.bin", body=BIG)
        r = c.getresponse()
        ok = r.status == 401 and r.read() == b"missing or wrong token\n"
    except OSError:
        ok = False
    bump("early_401" if ok else "early_lost")
    c.close()


def vanish():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PUT /gone.bin HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer %s\r\n"
              b"Content-Length: 1000000\r\n\r\n" % token.encode() + b"v" * 5000)
    time.sleep(random.random() / 20)
    s.close()
    bump("vanished")


def worker(end):
    kinds = [keepalive, keepalive, pipelined, upload_ok, early, vanish]
    while time.time() < end:
        try:
            random.choice(kinds)()
        except OSError as e:
            bump("errors")
            print("soak:", e, file=sys.stderr)


end = time.time() + seconds
threads = [threading.Thread(target=worker, args=(end,)) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for k, v in stats.items():
    print(k, v)
sys.exit(1 if stats["errors"] or stats["early_lost"] else 0)
