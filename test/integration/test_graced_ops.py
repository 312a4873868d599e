#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of graced's operations features with real clients
(curl, Python's http.client, raw sockets): users and Basic auth, CORS,
Cache-Control, precompressed files, the Server header, /metrics over all
workers, the PROXY protocol and --backlog. Loopback only; every graced
started here is stopped by PID. Ends with "N passed, N failed"."""
import base64
import ctypes
import gzip
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_graced as tg  # noqa: E402  (Graced, req, raw, check, run_sections)
from test_graced import Graced, check, req, GRACED, MiB  # noqa: E402

_crypt = ctypes.CDLL("libcrypt.so.1")
_crypt.crypt_gensalt.restype = ctypes.c_char_p
_crypt.crypt.restype = ctypes.c_char_p


def crypt_hash(password, prefix, cost=0):
    """A crypt(3) hash as mkpasswd makes: prefix b"$y$" yescrypt, b"$6$" sha512-crypt."""
    salt = _crypt.crypt_gensalt(prefix, cost, None, 0)
    return _crypt.crypt(password.encode(), salt).decode()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def write_users(path, users):
    with open(path, "w") as f:
        f.write("# name:hash:perms\n\n")
        for name, password, perms, prefix, *cost in users:
            f.write("%s:%s:%s\n" % (name, crypt_hash(password, prefix, *cost), perms))


def stderr_after_stop(g):
    g.stop()
    return g.p.stderr.read()


def run_auth(tmp):
    root = os.path.join(tmp, "authroot")
    os.mkdir(root)
    with open(os.path.join(root, "pub.txt"), "w") as f:
        f.write("public\n")
    users = os.path.join(tmp, "users")
    write_users(users, [("alice", "wonder land", "rw", b"$y$"), ("bob", "b0b", "r", b"$6$")])
    tok = os.path.join(tmp, "authtok")
    with open(tok, "w") as f:
        f.write("sekrit\n")
    src = os.path.join(tmp, "authsrc")
    with open(src, "wb") as f:
        f.write(b"x" * 1000)

    r = subprocess.run([GRACED, "--private"], capture_output=True, text=True)
    check("--private without --users-file: exit 2", r.returncode == 2 and "--users-file" in r.stderr,
          r.stderr)
    bad = os.path.join(tmp, "badusers")
    with open(bad, "w") as f:
        f.write("carol:$6$abc$def:rwx\n")
    r = subprocess.run([GRACED, "--users-file", bad], capture_output=True, text=True)
    check("bad users file: exit 2 naming the line",
          r.returncode == 2 and "line 1" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr)
    with open(bad, "w") as f:
        f.write("carol:plaintext:rw\n")
    r = subprocess.run([GRACED, "--users-file", bad], capture_output=True, text=True)
    check("a password that is not a crypt hash: exit 2", r.returncode == 2 and "crypt" in r.stderr,
          r.stderr)

    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root, "--users-file", users,
               "--auth-token-file", tok, "--log-level", "debug")
    try:
        st, body, r = req(g.port, "GET", "/pub.txt")
        check("without --private reading needs no user", st == 200 and body == b"public\n", st)
        st, body, r = req(g.port, "PUT", "/a.txt", b"data")
        check("upload without credentials -> 401 Basic challenge",
              st == 401 and r.getheader("WWW-Authenticate", "").startswith('Basic realm="graced"'),
              (st, r.getheaders()))
        rc, code, cerr = tg.curl_put(g.port, "/a.txt", src, "-u", "alice:wonder land")
        check("curl -u alice (yescrypt, rw) uploads -> 201", code == 201, (rc, code, cerr))
        st, body, r = req(g.port, "PUT", "/b.txt", b"data", headers=basic("bob", "b0b"))
        check("bob (sha512-crypt, r) may not upload -> 403", st == 403, st)
        st, body, r = req(g.port, "PUT", "/b.txt", b"data", headers=basic("alice", "wrong"))
        check("wrong password -> 401", st == 401 and r.getheader("WWW-Authenticate"), st)
        st, body, r = req(g.port, "PUT", "/b.txt", b"data", headers=basic("mallory", "x"))
        check("unknown user -> 401", st == 401, st)
        st, body, r = req(g.port, "PUT", "/b.txt", b"data", headers={"Authorization": "Basic !!!"})
        check("malformed Basic -> 401", st == 401, st)
        st, body, r = req(g.port, "PUT", "/c.txt", b"data", headers={"Authorization": "Bearer sekrit"})
        check("the bearer token still uploads beside users", st == 201, st)
        st, body, r = req(g.port, "PUT", "/d.txt", b"data", headers=basic("alice", "wonder land"))
        check("alice again (from the cache) -> 201", st == 201, st)

        # a big body with a wrong password: the 401 arrives, not a reset
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        cred = base64.b64encode(b"alice:nope").decode()
        s.sendall(("PUT /big HTTP/1.1\r\nHost: t\r\nAuthorization: Basic %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (cred, 64 * MiB)).encode())
        sent, got, err = 0, b"", None
        s.settimeout(0.05)
        chunk = b"z" * 65536
        t0 = time.time()
        try:
            while sent < 64 * MiB and time.time() - t0 < 20:
                try:
                    sent += s.send(chunk)
                except socket.timeout:
                    pass
                try:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += d
                except socket.timeout:
                    pass
        except OSError as e:
            err = e
        s.settimeout(5)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except OSError as e:
            err = err or e
        s.close()
        check("64 MiB upload with a wrong password gets its 401 (no reset)",
              got.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate: Basic" in got,
              (got[:80], err, sent))
        # the password changes: SIGHUP reloads, the cache forgets
        write_users(users, [("alice", "new pass", "rw", b"$y$"), ("bob", "b0b", "r", b"$6$")])
        g.p.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        st, body, r = req(g.port, "PUT", "/e.txt", b"data", headers=basic("alice", "wonder land"))
        check("SIGHUP: the old password (cached before) -> 401", st == 401, st)
        st, body, r = req(g.port, "PUT", "/e.txt", b"data", headers=basic("alice", "new pass"))
        check("SIGHUP: the new password -> 201", st == 201, st)
    finally:
        err = stderr_after_stop(g)
    check("failed logins are logged with user and address",
          re.search(r'login failed for user "alice" from 127\.0\.0\.1', err) and
          'login failed for user "mallory"' in err, err[-600:])
    check("a good password is checked once, then cached", "auth: alice from cache" in err, err[-600:])
    check("SIGHUP logs the users reloaded", "2 user(s) loaded" in err, err[-600:])

    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--users-file", users, "--private",
               "--auth-fail-limit", "3", "--auth-cache-time", "0")
    try:
        st, body, r = req(g.port, "GET", "/pub.txt")
        check("--private: reading without a user -> 401", st == 401 and
              "Basic" in r.getheader("WWW-Authenticate", ""), st)
        st, body, r = req(g.port, "GET", "/pub.txt", headers=basic("bob", "b0b"))
        check("--private: bob (r) reads -> 200", st == 200 and body == b"public\n", st)
        st, body, r = req(g.port, "HEAD", "/pub.txt", headers=basic("alice", "new pass"))
        check("--private: alice (rw) reads -> 200", st == 200, st)
        codes = [req(g.port, "GET", "/pub.txt", headers=basic("bob", "guess%d" % i))[0] for i in range(3)]
        st, body, r = req(g.port, "GET", "/pub.txt", headers=basic("bob", "b0b"))
        check("--auth-fail-limit 3: the 4th attempt in a minute -> 429, even a good one",
              codes == [401, 401, 401] and st == 429 and r.getheader("Retry-After") == "60",
              (codes, st))
    finally:
        g.stop()


def run_auth_thread(tmp):
    """Password checks run on a helper thread: the event loop keeps serving
    while one runs, and --auth-max-pending bounds how many wait."""
    import select
    root = os.path.join(tmp, "athroot")
    os.mkdir(root)
    with open(os.path.join(root, "pub.txt"), "w") as f:
        f.write("public\n")
    users = os.path.join(tmp, "slowusers")
    # yescrypt at cost 7: about half a second of CPU per check
    write_users(users, [("slow", "pw", "rw", b"$y$", 7), ("bob", "b0b", "r", b"$6$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--users-file", users, "--private",
               "--auth-max-pending", "1")
    try:
        st, body, r = req(g.port, "GET", "/pub.txt", headers=basic("bob", "b0b"))
        check("bob logs in (now cached)", st == 200, st)

        def send(cred):
            s = socket.create_connection(("127.0.0.1", g.port), timeout=30)
            s.sendall(("GET /pub.txt HTTP/1.1\r\nHost: t\r\nAuthorization: Basic %s\r\n"
                       "Connection: close\r\n\r\n" % base64.b64encode(cred).decode()).encode())
            return s

        def answer(s):
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
            s.close()
            return out
        a = send(b"slow:wrong")  # a slow check starts
        time.sleep(0.05)
        b = send(b"slow:wrong too")  # the one waiting slot is taken
        c = send(b"bob:b0b")  # cached: needs no check
        out_c = answer(c)
        a_waiting = not select.select([a], [], [], 0)[0]
        out_b = answer(b)
        out_a = answer(a)
        check("a cached login is answered while a slow check runs (the loop is not blocked)",
              out_c.startswith(b"HTTP/1.1 200") and a_waiting and out_a.startswith(b"HTTP/1.1 401"),
              (out_c[:20], a_waiting, out_a[:20]))
        check("--auth-max-pending 1: a second check meanwhile -> 503 Retry-After",
              out_b.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in out_b, out_b[:120])
        # a client that leaves while its check runs: nothing breaks
        a = send(b"slow:gone")
        a.close()
        t0 = time.time()
        st = 503
        while st == 503 and time.time() - t0 < 30:  # 503 while the left one's check runs
            time.sleep(0.2)
            st, body, r = req(g.port, "GET", "/pub.txt", headers=basic("slow", "pw"))
        check("after a client left during its check, the next check works", st == 200, st)
        # a stop now while a check runs: the server is freed first (the
        # request cancelled), then the auth pool ends with the check's result
        # dropped (under ASan: nothing leaked or used after its free)
        a = send(b"slow:at the stop")
        time.sleep(0.1)
        g.p.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        g.p.send_signal(signal.SIGTERM)
        try:
            g.p.wait(30)
        except subprocess.TimeoutExpired:
            pass
        out_a = answer(a)
        check("a stop now during a check: graced exits 0, the client gets no 200",
              g.p.returncode == 0 and not out_a.startswith(b"HTTP/1.1 200"),
              (g.p.returncode, out_a[:40]))
    finally:
        check("auth thread: SIGTERM exits 0", g.stop() == 0, g.p.returncode)


def run_web(tmp):
    root = os.path.join(tmp, "webroot")
    os.mkdir(root)
    plain = b"function hello() { return 'hello world'; }\n" * 50
    with open(os.path.join(root, "app.js"), "wb") as f:
        f.write(plain)
    gz = gzip.compress(plain)
    with open(os.path.join(root, "app.js.gz"), "wb") as f:
        f.write(gz)
    br = b"not really brotli, but served as such"
    with open(os.path.join(root, "app.js.br"), "wb") as f:
        f.write(br)
    with open(os.path.join(root, "only.txt"), "w") as f:
        f.write("no sibling\n")

    # --cors-write: the origin also writes (--cors alone shares reads only)
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root, "--cors-write",
               "https://app.example", "--cache-control", "public, max-age=60", "--precompressed")
    try:
        st, body, r = req(g.port, "GET", "/only.txt", headers={"Origin": "https://app.example"})
        check("CORS: a listed Origin gets Access-Control-Allow-Origin",
              st == 200 and r.getheader("Access-Control-Allow-Origin") == "https://app.example" and
              "Origin" in (r.getheader("Vary") or ""), r.getheaders())
        st, body, r = req(g.port, "GET", "/only.txt", headers={"Origin": "https://evil.example"})
        check("CORS: another Origin gets none", st == 200 and
              r.getheader("Access-Control-Allow-Origin") is None, r.getheaders())
        st, body, r = req(g.port, "OPTIONS", "/up.txt",
                          headers={"Origin": "https://app.example",
                                   "Access-Control-Request-Method": "PUT",
                                   "Access-Control-Request-Headers": "authorization"})
        methods = r.getheader("Access-Control-Allow-Methods", "")
        check("CORS preflight: 204 with methods and headers",
              st == 204 and "PUT" in methods and "GET" in methods and
              "Authorization" in r.getheader("Access-Control-Allow-Headers", "") and
              r.getheader("Access-Control-Allow-Origin") == "https://app.example", r.getheaders())
        st, body, r = req(g.port, "OPTIONS", "/")
        check("plain OPTIONS: 204 with Allow", st == 204 and "OPTIONS" in r.getheader("Allow", ""), st)
        check("Cache-Control on static files", r.getheader("Server") == "graced" and
              req(g.port, "GET", "/only.txt")[2].getheader("Cache-Control") == "public, max-age=60",
              r.getheaders())
        check("Server: graced by default", r.getheader("Server") == "graced", r.getheaders())

        st, body, r = req(g.port, "GET", "/app.js")
        etag_plain = r.getheader("ETag")
        check("precompressed: no Accept-Encoding -> the plain file",
              st == 200 and body == plain and r.getheader("Content-Encoding") is None and
              "Accept-Encoding" in (r.getheader("Vary") or ""), r.getheaders())
        st, body, r = req(g.port, "GET", "/app.js", headers={"Accept-Encoding": "gzip, deflate"})
        etag_gz = r.getheader("ETag")
        check("precompressed: gzip accepted -> app.js.gz, its type the original's",
              st == 200 and body == gz and r.getheader("Content-Encoding") == "gzip" and
              r.getheader("Content-Type").startswith("text/javascript") and
              "Accept-Encoding" in r.getheader("Vary", "") and etag_gz != etag_plain,
              (st, r.getheaders()))
        st, body, r = req(g.port, "GET", "/app.js", headers={"Accept-Encoding": "gzip, br"})
        check("precompressed: br preferred when accepted", body == br and
              r.getheader("Content-Encoding") == "br", r.getheaders())
        st, body, r = req(g.port, "GET", "/app.js", headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
        check("precompressed: q=0 refuses -> plain", body == plain, r.getheaders())
        st, body, r = req(g.port, "GET", "/app.js",
                          headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
        check("precompressed + Range: bytes of the .gz, Content-Range of its length",
              st == 206 and body == gz[:10] and
              r.getheader("Content-Range") == "bytes 0-9/%d" % len(gz) and
              r.getheader("Content-Encoding") == "gzip", (st, r.getheaders()))
        st, body, r = req(g.port, "GET", "/app.js",
                          headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9",
                                   "If-Range": etag_plain})
        check("precompressed + If-Range with the plain ETag -> whole .gz", st == 200 and body == gz,
              st)
        st, body, r = req(g.port, "GET", "/app.js",
                          headers={"Accept-Encoding": "gzip", "If-None-Match": etag_gz})
        check("precompressed: If-None-Match of the .gz -> 304", st == 304, st)
        out = subprocess.run(["curl", "-sS", "--compressed", "-H", "Accept-Encoding: gzip",
                              "http://127.0.0.1:%d/app.js" % g.port], capture_output=True, timeout=30)
        check("curl --compressed gets the original text", out.stdout == plain, out.stdout[:60])
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--no-server-header")
    try:
        st, body, r = req(g.port, "GET", "/only.txt", headers={"Accept-Encoding": "gzip"})
        check("--no-server-header: no Server", st == 200 and r.getheader("Server") is None and
              r.getheader("Cache-Control") is None, r.getheaders())
        st, body, r = req(g.port, "GET", "/app.js", headers={"Accept-Encoding": "gzip"})
        check("without --precompressed the plain file", body == plain and
              r.getheader("Content-Encoding") is None, r.getheaders())
    finally:
        g.stop()


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? [0-9]+$')


def parse_metrics(text):
    """Check the Prometheus text format strictly; {series: value} and problems."""
    types, helps, series, problems = {}, set(), {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) != 4 or parts[3] not in ("counter", "gauge"):
                problems.append(line)
            types[parts[2]] = parts[3]
        elif line:
            m = METRIC_LINE.match(line)
            if not m:
                problems.append(line)
                continue
            name = m.group(1)
            if name not in types or name not in helps:
                problems.append("no TYPE/HELP before " + line)
            elif types[name] == "counter" and not name.endswith("_total"):
                problems.append("counter without _total: " + name)
            series[line.rsplit(" ", 1)[0]] = int(line.rsplit(" ", 1)[1])
    return series, problems


def run_metrics(tmp):
    root = os.path.join(tmp, "mroot")
    os.mkdir(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("metrics\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root, "--workers", "2",
               "--metrics", "/metrics")
    try:
        for _ in range(40):  # new connections: SO_REUSEPORT spreads them over both workers
            req(g.port, "GET", "/f.txt")
        req(g.port, "GET", "/missing")
        req(g.port, "PUT", "/up.bin", b"u" * 3000)
        tg.raw(g.port, b"BREW / HTTP/1.1\r\n\r\n")
        # a response is counted when its report runs, which may come just
        # after its client has read it: the scrapes start once the last
        # one (the 501) is in
        def counted():
            series, _ = parse_metrics(req(g.port, "GET", "/metrics")[1].decode())
            return any('code="501"' in k and v >= 1 for k, v in series.items())
        deadline = time.time() + 5
        while not counted() and time.time() < deadline:
            time.sleep(0.05)
        seen, ok, bad = set(), True, []
        for _ in range(8):
            st, body, r = req(g.port, "GET", "/metrics")
            series, problems = parse_metrics(body.decode())
            if problems:
                bad = problems
            get200 = series.get('graced_http_responses_total{method="GET",code="200"}', 0)
            acc = series.get("graced_conn_accepted_total", 0)
            per_worker = [series.get('graced_worker_responses_total{worker="%d"}' % w, 0)
                          for w in (1, 2)]
            seen.update(w for w, n in zip((1, 2), per_worker) if n)
            if not (st == 200 and get200 >= 40 and acc >= 42 and sum(per_worker) >= 43 and
                    series.get("graced_upload_files_total") == 1 and
                    series.get("graced_upload_bytes_total") == 3000 and
                    series.get('graced_http_responses_total{method="GET",code="404"}') == 1 and
                    series.get("graced_workers") == 2):
                ok = False
                bad = bad or [get200, acc, per_worker, body.decode()[:300]]
        check("metrics: every scrape counts both workers (GET 200 >= 40, conn_accepted >= 42, "
              "uploads)", ok, bad)
        check("metrics: both workers answered", seen == {1, 2}, seen)
        check("metrics: Prometheus text format (HELP, TYPE, counters _total)", not problems, problems)
        check("metrics: Content-Type text/plain; version=0.0.4",
              r.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"),
              r.getheader("Content-Type"))
        check("metrics: the library's own answers counted (method none or other)",
              any(k.startswith("graced_http_responses_total") and ('code="501"' in k or 'code="400"' in k)
                  for k in series), [k for k in series if "responses_total{" in k])
    finally:
        check("metrics: workers stop with 0", g.stop() == 0, g.p.returncode)
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--metrics", "/metrics",
               "--metrics-allow", "10.0.0.0/8")
    try:
        st, body, r = req(g.port, "GET", "/metrics")
        check("--metrics-allow 10.0.0.0/8: loopback gets 403", st == 403 and b"graced_" not in body, st)
    finally:
        g.stop()
    r = subprocess.run([GRACED, "--metrics", "/m", "--metrics-allow", "10.0.0.300"],
                       capture_output=True, text=True)
    check("--metrics-allow with a bad address: exit 2", r.returncode == 2, r.stderr)


def proxy_conn(port, header, request=b"GET /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
               pieces=1):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    step = max(1, len(header) // pieces)
    out = b""
    try:  # a refused header may be reset while still being sent
        for i in range(0, len(header), step):
            s.sendall(header[i:i + step])
            if pieces > 1:
                time.sleep(0.05)
        if request:
            s.sendall(request)
    except OSError:
        s.close()
        return out
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    s.close()
    return out


def v2_header(cmd, fam, addr):
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(addr)) +
            addr)


def run_proxy(tmp):
    root = os.path.join(tmp, "proot")
    os.mkdir(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("proxied\n")
    log = os.path.join(tmp, "proxy-access.log")
    r = subprocess.run([GRACED, "--proxy-listen", "127.0.0.1:0"], capture_output=True, text=True)
    check("--proxy-listen without --proxy-from: exit 2", r.returncode == 2 and
          "--proxy-from" in r.stderr, r.stderr)
    g = Graced("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--proxy-from",
               "127.0.0.0/8", "--root", root, "--access-log", log, "--proxy-timeout", "500ms",
               expect_ports=2)
    pport = g.ports[1]
    try:
        out = proxy_conn(pport, b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n")
        check("PROXY v1 TCP4 -> served", out.startswith(b"HTTP/1.1 200") and out.endswith(b"proxied\n"),
              out[:60])
        out = proxy_conn(pport, b"PROXY TCP6 2001:db8::5 ::1 40000 80\r\n", pieces=4)
        check("PROXY v1 TCP6 sent in pieces -> served", out.startswith(b"HTTP/1.1 200"), out[:60])
        addr = socket.inet_aton("198.51.100.9") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 5555, 80)
        out = proxy_conn(pport, v2_header(1, 0x11, addr), pieces=3)
        check("PROXY v2 TCP4 in pieces -> served", out.startswith(b"HTTP/1.1 200"), out[:60])
        addr6 = (socket.inet_pton(socket.AF_INET6, "2001:db8::77") +
                 socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!HH", 6666, 80) +
                 b"\x04\x00\x02ok")  # a TLV after the addresses: skipped
        out = proxy_conn(pport, v2_header(1, 0x21, addr6))
        check("PROXY v2 TCP6 with a TLV -> served", out.startswith(b"HTTP/1.1 200"), out[:60])
        out = proxy_conn(pport, v2_header(0, 0x00, b""))
        check("PROXY v2 LOCAL (health check) -> served", out.startswith(b"HTTP/1.1 200"), out[:60])
        # HTTP pipelined right behind the header, in the same segment
        out = proxy_conn(pport, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 80\r\nGET /f.txt HTTP/1.1\r\nHost: t\r\n\r\n",
                         request=b"GET /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        check("PROXY v1 with two requests in the same segment -> both served",
              out.count(b"HTTP/1.1 200") == 2, out[:80])
        for name, hdr in [("no header", b""),
                          ("garbage v1", b"PROXY TCP4 garbage\r\n"),
                          ("v1 bad port", b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n"),
                          ("v1 without CR", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 80\n"),
                          ("v1 over 107 bytes", b"PROXY TCP4 " + b"1" * 150 + b"\r\n"),
                          ("v2 bad version", b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12),
                          ("v2 address block too short", v2_header(1, 0x11, b"\x01\x02"))]:
            t0 = time.time()
            out = proxy_conn(pport, hdr)
            check("PROXY %s -> closed without an answer" % name, out == b"" and time.time() - t0 < 5,
                  out[:60])
        t0 = time.time()
        s = socket.create_connection(("127.0.0.1", pport), timeout=10)
        s.sendall(b"PROXY TCP4 1.2.3.4")
        try:
            d = s.recv(100)
        except OSError:
            d = b"error"
        s.close()
        check("PROXY header not finished within --proxy-timeout 500ms -> closed",
              d == b"" and 0.3 < time.time() - t0 < 5, (d, time.time() - t0))
        st, body, r = req(g.ports[0], "GET", "/f.txt")
        check("the plain listener beside it needs no header", st == 200, st)
        time.sleep(0.2)
        with open(log) as f:
            text = f.read()
        check("access log shows the clients from the PROXY headers",
              all(re.search(r"^%s - - " % re.escape(a), text, re.M)
                  for a in ("203.0.113.7", "2001:db8::5", "198.51.100.9", "2001:db8::77",
                            "192.0.2.1")), text)
    finally:
        err = stderr_after_stop(g)
    check("malformed PROXY headers are logged", "PROXY header from 127.0.0.1" in err, err[-400:])
    g = Graced("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--proxy-from",
               "10.0.0.0/8", "--root", root, expect_ports=2)
    try:
        out = proxy_conn(g.ports[1], b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n")
        check("PROXY from an address not in --proxy-from -> closed", out == b"", out[:60])
    finally:
        err = stderr_after_stop(g)
    check("an untrusted balancer is logged", "not in --proxy-from" in err, err[-300:])


def run_proxy_tls(tmp):
    if b"without TLS" in subprocess.run([GRACED, "--tls-cert", "x", "--tls-key", "y", "--tls-listen",
                                         "127.0.0.1:0"], capture_output=True).stderr:
        print("skip: libgracehttp built without TLS")
        return
    import ssl
    root = os.path.join(tmp, "ptroot")
    os.mkdir(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("over tls\n")
    cert, key = os.path.join(tmp, "pt.pem"), os.path.join(tmp, "pt.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    log = os.path.join(tmp, "pt-access.log")
    g = Graced("--proxy-tls-listen", "127.0.0.1:0", "--proxy-from", "127.0.0.1", "--tls-cert", cert,
               "--tls-key", key, "--root", root, "--access-log", log)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"PROXY TCP4 203.0.113.99 127.0.0.1 4444 443\r\n")
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(b"GET /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        out = b""
        try:
            while True:
                d = t.recv(65536)
                if not d:
                    break
                out += d
        except (OSError, ssl.SSLError):
            pass
        t.close()
        check("--proxy-tls-listen: PROXY header, then TLS -> served",
              out.startswith(b"HTTP/1.1 200") and out.endswith(b"over tls\n"), out[:60])
        time.sleep(0.2)
        with open(log) as f:
            text = f.read()
        check("--proxy-tls-listen: access log shows the client and the TLS version",
              re.search(r'^203\.0\.113\.99 - - .*"TLSv1\.[23]"$', text, re.M), text)
    finally:
        g.stop()


def run_backlog(tmp):
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--backlog", "7")
    try:
        out = subprocess.run(["ss", "-ltnH", "sport = :%d" % g.port], capture_output=True,
                             text=True).stdout.split()
        check("--backlog 7: the socket's backlog (ss Send-Q) is 7", len(out) >= 3 and out[2] == "7",
              out)
    finally:
        g.stop()
    r = subprocess.run([GRACED, "--backlog", "0"], capture_output=True, text=True)
    check("--backlog 0: exit 2", r.returncode == 2 and "--backlog" in r.stderr, r.stderr)
    r = subprocess.run([GRACED, "--help"], capture_output=True, text=True)
    names = ["--users-file", "--private", "--auth-cache-time", "--auth-fail-limit",
             "--auth-max-pending", "--cors",
             "--cache-control", "--precompressed", "--no-server-header", "--metrics-allow",
             "--proxy-listen", "--proxy-tls-listen", "--proxy-from", "--proxy-timeout", "--backlog",
             "--warn-interval"]
    missing = [n for n in names if n not in r.stdout]
    check("--help lists the operations options", not missing, missing)


class GracedErr(Graced):
    """Graced with stderr into a file (read while it runs; never blocks on a pipe)."""

    def __init__(self, errfile, *args):
        with open(errfile, "w") as ef:
            self.p = subprocess.Popen([GRACED, *args], stdout=subprocess.PIPE, stderr=ef, text=True)
        tg.procs.append(self.p)
        line = self.p.stdout.readline()
        m = re.search(r":(\d+)/$", line.strip())
        if not m:
            self.kill()
            raise RuntimeError("graced did not start: %r %s" % (line, open(errfile).read()))
        self.port = int(m.group(1))


def untrusted_burst(port, n):
    """n connections that graced must close at once (peer not in
    --proxy-from); returns when every one has seen its EOF or reset."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    for s in socks:
        try:
            s.recv(10)
        except OSError:
            pass
        s.close()


def warn_lines(text):
    """(lines naming one refused peer, [counts of the summary lines])"""
    one = re.findall(r"PROXY listener: \S+ is not in --proxy-from", text)
    more = [int(m) for m in re.findall(r"PROXY listener: (\d+) more connection", text)]
    return one, more


def reported(text):
    """refusals accounted for in the log: one by one, or in a count"""
    one, more = warn_lines(text)
    return len(one) + sum(more)


def run_proxy_warn(tmp):
    """A flood of connections from a peer not in --proxy-from is logged as
    its first connection, then one line per --warn-interval with a count:
    not one line per connection (40 lines for 40 before)."""
    root = os.path.join(tmp, "pwroot")
    os.mkdir(root)
    errf = os.path.join(tmp, "pw.err")
    g = GracedErr(errf, "--proxy-listen", "127.0.0.1:0", "--proxy-from", "10.0.0.0/8", "--root", root)
    try:
        untrusted_burst(g.port, 40)
        time.sleep(0.3)
        one, more = warn_lines(open(errf).read())
        check("untrusted PROXY peer x40: one line, not 40 (--warn-interval 1m)",
              len(one) == 1 and not more, (len(one), more))
    finally:
        g.stop()
    one, more = warn_lines(open(errf).read())
    check("... and the 39 not logged are counted in one line at the stop",
          len(one) == 1 and more == [39], (len(one), more))

    errf = os.path.join(tmp, "pw2.err")
    g = GracedErr(errf, "--proxy-listen", "127.0.0.1:0", "--proxy-from", "10.0.0.0/8", "--root", root,
                  "--warn-interval", "1s")
    try:
        t0 = time.monotonic()
        untrusted_burst(g.port, 20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and reported(open(errf).read()) < 20:
            time.sleep(0.1)
        one, more = warn_lines(open(errf).read())
        check("--warn-interval 1s: the count comes at the end of the interval, the flood "
              "still going or not", sum(more) + len(one) == 20 and more and len(one) == 1,
              (len(one), more))
        time.sleep(2.2)  # a quiet interval: the next refusal is logged at once
        untrusted_burst(g.port, 1)
        time.sleep(0.3)
        one, more = warn_lines(open(errf).read())
        elapsed = time.monotonic() - t0
        check("--warn-interval 1s: after a quiet interval the next one is logged at once; "
              "at most one line per interval", len(one) == 2 and sum(more) + len(one) == 21 and
              len(one) + len(more) <= 2 + elapsed, (len(one), more, elapsed))
    finally:
        g.stop()
    r = subprocess.run([GRACED, "--warn-interval", "soon"], capture_output=True, text=True)
    check("--warn-interval with a bad time: exit 2", r.returncode == 2 and "--warn-interval" in r.stderr,
          r.stderr)


def run_metrics_restart(tmp):
    """With --workers 3, kill -9 every worker after some requests: once they
    are back, no counter in /metrics is lower than before (Prometheus
    counters never go down), graced_worker_restarts_total counts the 3
    restarts and process_start_time_seconds is still the main process's."""
    root = os.path.join(tmp, "mrroot")
    os.mkdir(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("m\n")
    t_start = time.time()
    errf = os.path.join(tmp, "mr.err")
    g = GracedErr(errf, "--listen", "127.0.0.1:0", "--root", root, "--workers", "3", "--metrics",
                  "/metrics", "--restart-delay-max", "1s")
    t_up = time.time()
    try:
        for _ in range(60):  # new connections: spread over the workers
            req(g.port, "GET", "/f.txt")
        time.sleep(1.2)  # every worker has published its library counters
        before, problems = parse_metrics(req(g.port, "GET", "/metrics")[1].decode())
        start = before.get("process_start_time_seconds", 0)
        check("metrics: process_start_time_seconds is the main process's start",
              int(t_start) - 1 <= start <= t_up + 1 and not problems, (start, t_start, problems))
        check("metrics: graced_worker_restarts_total{worker} 0 for each of 3",
              [before.get('graced_worker_restarts_total{worker="%d"}' % w) for w in (1, 2, 3)] == [0] * 3,
              [k for k in before if "restart" in k])
        with open("/proc/%d/task/%d/children" % (g.p.pid, g.p.pid)) as f:
            kids = [int(x) for x in f.read().split()]
        for k in kids:
            os.kill(k, signal.SIGKILL)
        # back when the log says so: no request meanwhile, so that the
        # counters after are the old ones plus a few scrapes at most
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and open(errf).read().count("restarted (pid") < 3:
            time.sleep(0.1)
        time.sleep(1.2)  # the new workers are in their loops and have published
        after = parse_metrics(req(g.port, "GET", "/metrics")[1].decode())[0]
        restarts = sum(v for k, v in after.items() if k.startswith("graced_worker_restarts_total"))
        check("metrics: 3 workers killed -> graced_worker_restarts_total sums to 3",
              len(kids) == 3 and restarts == 3, (kids, restarts, open(errf).read()[-300:]))
        time.sleep(1.2)  # the new workers have published too
        lower = []
        for _ in range(6):  # scrapes land on any worker
            after = parse_metrics(req(g.port, "GET", "/metrics")[1].decode())[0]
            lower += [(k, before[k], after.get(k)) for k in before
                      if (k.split("{")[0].endswith("_total")) and after.get(k, 0) < before[k]]
        check("metrics: no counter is lower after the workers died and came back",
              not lower, lower[:6])
        check("metrics: process_start_time_seconds unchanged by the restarts",
              after.get("process_start_time_seconds") == start, (after.get("process_start_time_seconds"), start))
        check("metrics: the restarted workers serve and count on",
              after.get("graced_conn_accepted_total", 0) >= before.get("graced_conn_accepted_total", 0) + 6,
              (before.get("graced_conn_accepted_total"), after.get("graced_conn_accepted_total")))
    finally:
        check("metrics: the supervisor stops with 0 after the restarts", g.stop() == 0, g.p.returncode)


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return tg.run_sections((run_auth, run_auth_thread, run_web, run_metrics, run_metrics_restart, run_proxy,
                            run_proxy_warn, run_proxy_tls, run_backlog),
                           "graced-ops.")


if __name__ == "__main__":
    sys.exit(main())
