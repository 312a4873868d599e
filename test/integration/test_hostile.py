#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Hostile clients against graced, over loopback, bounded in count and time:
slowloris, a client that never reads, a connection flood past
--max-connections, request smuggling vectors, oversized requests.
Prints a line per check and "N passed, N failed"."""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import Graced, check, req, run_sections  # noqa: E402


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def closed_after(s, timeout=3.0):
    """Read what the server sends until it closes; (data, closed?)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return data, True
            data += d
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def run_slowloris(tmp):
    with open(os.path.join(tmp, "ok.txt"), "w") as f:
        f.write("ok\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--header-timeout", "1s",
               "--max-connections", "1000", "--log-level", "error")
    try:
        N = 300
        slow = [socket.create_connection(("127.0.0.1", g.port), timeout=5) for _ in range(N)]
        line = b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
        served, failed, stop = [0], [0], threading.Event()

        def normal():
            while not stop.is_set():
                try:
                    st, body, _ = req(g.port, "GET", "/ok.txt")
                    served[0] += st == 200 and body == b"ok\n"
                except OSError:
                    failed[0] += 1
                time.sleep(0.02)
        t = threading.Thread(target=normal)
        t.start()
        t0 = time.time()
        alive = list(slow)
        i = 0
        while alive and time.time() - t0 < 4:
            for s in list(alive):  # one more byte on every connection
                try:
                    s.send(line[i % len(line):i % len(line) + 1])
                except OSError:
                    alive.remove(s)
            i += 1
            time.sleep(0.1)
            # a cut connection shows EOF (after its 408) on a peek
            for s in list(alive):
                s.setblocking(False)
                try:
                    if s.recv(4096, socket.MSG_PEEK):
                        alive.remove(s)
                    else:
                        alive.remove(s)
                except BlockingIOError:
                    pass
                except OSError:
                    alive.remove(s)
                s.setblocking(True)
        dt = time.time() - t0
        stop.set()
        t.join()
        check("slowloris: %d trickling connections cut at the header timeout" % N,
              not alive and 0.8 < dt < 3.5, (len(alive), dt))
        check("slowloris: normal clients served meanwhile", served[0] > 20 and failed[0] == 0,
              (served[0], failed[0]))
        for s in slow:
            s.close()
    finally:
        g.stop()


def run_never_reads(tmp):
    with open(os.path.join(tmp, "big.bin"), "wb") as f:
        f.write(b"B" * (64 << 20))
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--write-timeout", "500ms",
               "--metrics", "/m", "--log-level", "error")
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", g.port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(2.0)  # never read
        st, body, _ = req(g.port, "GET", "/m")
        check("a client that never reads is cut at the write timeout",
              b'graced_timeout_write_total 1' in body and
              b'graced_conn_active 1' in body, body[:200])
        s.close()
    finally:
        g.stop()


def run_flood(tmp):
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--max-connections", "50",
               "--log-level", "error")
    try:
        base = fd_count(g.p.pid)
        flood = []
        for _ in range(300):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", g.port))
            flood.append(s)
        time.sleep(0.5)
        used = fd_count(g.p.pid) - base
        check("flood of 300: the server holds at most max-connections fds", used <= 50, used)
        for s in flood:
            s.close()
        time.sleep(0.3)
        ok = False
        for _ in range(20):  # service resumes once the flood is gone
            try:
                st, body, _ = req(g.port, "GET", "/")
                ok = st in (200, 404)
                break
            except OSError:
                time.sleep(0.1)
        check("flood: service resumes", ok)
        time.sleep(0.3)
        check("flood: fds back to the start", fd_count(g.p.pid) <= base + 1,
              (fd_count(g.p.pid), base))
    finally:
        g.stop()


SMUGGLING = [
    ("CL+TE", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("TE+CL", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
              b"5c\r\nGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n", 400),
    ("duplicate CL", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 30\r\n\r\n"
                     b"GET /smuggled HTTP/1.1\r\n\r\n", 400),
    ("TE with a space", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE obfuscated", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("bad chunk size", b"PUT /u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("negative chunk", b"PUT /u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),
    ("NUL in header", b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    ("NUL in target", b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("gzip, chunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    ("headers too big", b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"h" * 40000 + b"\r\n\r\n", 431),
    ("too many fields", b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150))
                        + b"\r\n", 431),
]


def run_smuggling(tmp):
    up = os.path.join(tmp, "up")
    os.makedirs(up, exist_ok=True)
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--upload-dir", up, "--log-level", "error")
    try:
        for name, data, status in SMUGGLING:
            s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
            try:
                s.sendall(data)
            except OSError:
                pass
            out, closed = closed_after(s)
            s.close()
            responses = out.count(b"HTTP/1.1 ")
            check("%s -> %d, one response, closed" % (name, status),
                  out.startswith(b"HTTP/1.1 %d" % status) and responses == 1 and closed and
                  b"Connection: close" in out, (out[:60], responses, closed))
        st, body, _ = req(g.port, "GET", "/smuggled")
        check("no smuggled request reached the server's files", st == 404)
    finally:
        g.stop()


STRICT = [
    ("raw UTF-8 in the target", b"GET /\xc3\xa9.txt HTTP/1.1\r\nHost: t\r\n\r\n",
     b"invalid byte in request target"),
    ("overlong UTF-8 in the target", b"GET /\xc0\xae\xc0\xae/\xc0\xafok.txt HTTP/1.1\r\nHost: t\r\n\r\n",
     b"invalid byte in request target"),
    ("raw byte 0x80 in the query", b"GET /ok.txt?q=\x80 HTTP/1.1\r\nHost: t\r\n\r\n",
     b"invalid byte in request target"),
    ("fragment in the target", b"GET /ok.txt#top HTTP/1.1\r\nHost: t\r\n\r\n",
     b"invalid byte in request target"),
    ("Host with userinfo", b"GET /ok.txt HTTP/1.1\r\nHost: user@t\r\n\r\n",
     b"invalid Host header value"),
    ("Host with two hosts", b"GET /ok.txt HTTP/1.1\r\nHost: t, u\r\n\r\n",
     b"invalid Host header value"),
    ("Host with a path", b"GET /ok.txt HTTP/1.1\r\nHost: t/x\r\n\r\n", b"invalid Host header value"),
    ("empty Host", b"GET /ok.txt HTTP/1.1\r\nHost:\r\n\r\n", b"empty Host header"),
    ("userinfo in an absolute target", b"GET http://u@t/ok.txt HTTP/1.1\r\nHost: t\r\n\r\n",
     b"invalid request target"),
    ("encoded slash in the path", b"GET /%2Fok.txt HTTP/1.1\r\nHost: t\r\n\r\n", b"invalid path"),
    (".. above the root", b"GET /x/../../ok.txt HTTP/1.1\r\nHost: t\r\n\r\n", b"invalid path"),
]


def curl(port, path, *extra):
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "5", *extra,
                        "http://127.0.0.1:%d%s" % (port, path)], capture_output=True, timeout=15)
    return r.stdout


def run_strict(tmp):
    """Host and request-target strictness: the 400 with its reason reaches
    the client, the connection closes, and nothing is served."""
    with open(os.path.join(tmp, "ok.txt"), "w") as f:
        f.write("ok\n")
    with open(os.path.join(tmp, "\u00e9.txt"), "w") as f:
        f.write("accent\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--log-level", "error")
    try:
        for name, data, reason in STRICT:
            s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
            s.sendall(data + b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\n")  # never answered
            out, closed = closed_after(s)
            s.close()
            check("%s -> 400 (%s), closed" % (name, reason.decode()),
                  out.startswith(b"HTTP/1.1 400") and reason in out and closed and
                  b"Connection: close" in out and out.count(b"HTTP/1.1 ") == 1 and b"ok\n" not in out,
                  (out[:80], closed))
        # curl, a real client: it sends what it is told for Host
        for host, reason in [("Host: user@127.0.0.1", b"invalid Host header value"),
                             ("Host: a.example,b.example", b"invalid Host header value"),
                             ("Host: [::1", b"invalid Host header value"),
                             ("Host;", b"empty Host header")]:
            out = curl(g.port, "/ok.txt", "-H", host)
            check("curl -H '%s' -> 400 (%s)" % (host, reason.decode()),
                  out.startswith(b"HTTP/1.1 400") and reason in out and b"Connection: close" in out,
                  out[:80])
        # what stays legal: percent-encoded UTF-8 (curl encodes "é"), IPv6 and port Hosts
        out = curl(g.port, "/\u00e9.txt")
        check("curl /\u00e9.txt (sent as /%C3%A9.txt) -> 200", out.startswith(b"HTTP/1.1 200") and
              out.endswith(b"accent\n"), out[:80])
        for host in ("Host: [::1]:8080", "Host: example.com:80", "Host: 127.0.0.1"):
            out = curl(g.port, "/ok.txt", "-H", host)
            check("curl -H '%s' -> 200" % host, out.startswith(b"HTTP/1.1 200"), out[:80])
    finally:
        g.stop()


def main():
    return run_sections((run_slowloris, run_never_reads, run_flood, run_smuggling, run_strict),
                        "graced-hostile.")


if __name__ == "__main__":
    sys.exit(main())
