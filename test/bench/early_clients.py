#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The early-reply delivery matrix. For each server (NAME=PORT:STATUS),
client and body size, upload to /up RUNS times and count the runs in which
the client received the complete early answer. Prints one line per cell:
  SERVER CLIENT SIZE DELIVERED RUNS
Clients: pyhttp (http.client: writes the whole body, then reads), curl
(-H 'Expect:'), curl-expect (Expect: 100-continue), raw2mbs (a socket
uploading at 2 MB/s that reads while it sends)."""
import http.client
import os
import select
import socket
import subprocess
import sys
import time

MiB = 1 << 20
SIZES = [64 << 10, 1 * MiB, 16 * MiB, 256 * MiB]
BODY = memoryview(bytearray(b"b" * max(SIZES)))


def complete(data, status):
    """Is data a complete response with this status?"""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 %d" % status):
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return False


def pyhttp(port, size, status):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("PUT", "/up", body=BODY[:size], headers={"Content-Length": str(size)})
        r = c.getresponse()
        body = r.read()
        return r.status == status and len(body) == int(r.getheader("Content-Length", "-1"))
    except OSError:
        return False
    finally:
        c.close()


def curl(port, size, status, files, expect=False):
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
            "--max-time", "60", "-X", "PUT", "--data-binary", "@" + files[size],
            "-H", "Expect: 100-continue" if expect else "Expect:",
            "http://127.0.0.1:%d/up" % port]
    r = subprocess.run(args, capture_output=True, text=True)
    code = r.stdout.split()
    return r.returncode == 0 and code and int(code[0]) == status


def raw2mbs(port, size, status, rate=2 * MiB, limit=20.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setblocking(False)
    head = b"PUT /up HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n" % size
    out = [head]
    sent, got, t0 = 0, b"", time.time()
    try:
        while time.time() - t0 < limit:
            if complete(got, status):
                return True
            r, w, _ = select.select([s], [s] if sent < size else [], [], 0.01)
            if r:
                d = s.recv(65536)
                if not d:
                    return complete(got, status)
                got += d
            allowed = int((time.time() - t0) * rate)
            if w and out:
                n = s.send(out[0])
                out[0] = out[0][n:]
                if not out[0]:
                    out.pop()
            elif w and sent < min(size, allowed):
                n = s.send(BODY[sent:min(size, allowed, sent + 65536)])
                sent += n
        return complete(got, status)
    except OSError:
        return complete(got, status)
    finally:
        s.close()


def main():
    runs = int(os.environ.get("RUNS", "3"))
    tmp = os.environ.get("TMPDIR_BENCH", "/tmp")
    files = {}
    for size in SIZES:
        files[size] = os.path.join(tmp, "body-%d" % size)
        with open(files[size], "wb") as f:
            f.write(BODY[:size])
    for spec in sys.argv[1:]:
        name, _, rest = spec.partition("=")
        port, status = map(int, rest.split(":"))
        clients = [("pyhttp", lambda p, n, st: pyhttp(p, n, st)),
                   ("curl", lambda p, n, st: curl(p, n, st, files)),
                   ("curl-expect", lambda p, n, st: curl(p, n, st, files, True)),
                   ("raw2mbs", lambda p, n, st: raw2mbs(p, n, st))]
        for cname, fn in clients:
            for size in SIZES:
                ok = sum(bool(fn(port, size, status)) for _ in range(runs))
                print(name, cname, size, ok, runs, flush=True)
    for f in files.values():
        os.unlink(f)


if __name__ == "__main__":
    main()
