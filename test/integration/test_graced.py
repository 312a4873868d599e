#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests for the graced binary with real clients (curl, Python's
http.client, raw sockets). Loopback only; every graced started here is
stopped by PID. Prints a line per check and a final "N passed, N failed"."""
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("top_builddir", ".")
GRACED = os.path.abspath(os.path.join(BUILD, "src", "graced", "graced"))
MiB = 1 << 20
# the LD_PRELOAD shim of slow disks and traced syncs (test/integration/slowsync.c)
SHIM = os.path.abspath(os.path.join(BUILD, "test", "integration", ".libs", "slowsync.so"))
results = []
procs = []


def wait_for(cond, timeout=20.0, step=0.02):
    """cond()'s first true value within timeout seconds, else its last"""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)), flush=True)


def start_example(binary, *args):
    """Start an example server on a free port; (process, port) once it says
    "listening on HOST:PORT"."""
    p = subprocess.Popen([binary, "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = p.stdout.readline()
    if "listening on" not in line:
        p.kill()
        p.wait()
        raise RuntimeError(binary + " did not start: " + line)
    return p, int(line.rsplit(":", 1)[1])


def stop_proc(p):
    """SIGTERM (a graceful stop), SIGKILL after 10 s; the exit status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Graced:
    def __init__(self, *args, env=None, preexec=None, pass_fds=(), expect_ports=1):
        self.p = subprocess.Popen([GRACED, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env, preexec_fn=preexec, pass_fds=pass_fds)
        procs.append(self.p)
        self.ports = []
        for _ in range(expect_ports):
            line = self.p.stdout.readline()
            m = re.search(r":(\d+)/$", line.strip())
            if not m:
                self.kill()
                raise RuntimeError("graced did not start: %r %s" % (line, self.p.stderr.read()))
            self.ports.append(int(m.group(1)))
        self.port = self.ports[0] if self.ports else None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)


def req(port, method, path, body=None, headers=None, host="127.0.0.1", chunked=False):
    c = http.client.HTTPConnection(host, port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = c.getresponse()
        return r.status, r.read(), r
    finally:
        c.close()


def raw(port, data, read=True, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except socket.timeout:
            pass
    s.close()
    return out


def run_startup_errors(tmp):
    r = subprocess.run([GRACED, "--bogus"], capture_output=True, text=True)
    check("bad option: exit 2, one line", r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
          (r.returncode, r.stderr))
    r = subprocess.run([GRACED, "--workers", "zero"], capture_output=True, text=True)
    check("bad value: exit 2", r.returncode == 2 and "--workers" in r.stderr, r.stderr)
    r = subprocess.run([GRACED, "--root", tmp + "/missing"], capture_output=True, text=True)
    check("missing root: exit 2 naming it", r.returncode == 2 and "missing" in r.stderr, r.stderr)
    locked = os.path.join(tmp, "locked")
    os.mkdir(locked, 0o500)
    r = subprocess.run([GRACED, "--upload-dir", locked], capture_output=True, text=True,
                       preexec_fn=lambda: os.setuid(65534) if os.getuid() == 0 else None)
    check("unwritable upload dir: exit 2", r.returncode == 2 and "upload-dir" in r.stderr, r.stderr)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    r = subprocess.run([GRACED, "--listen", "127.0.0.1:%d" % port], capture_output=True, text=True,
                       timeout=10)
    check("port in use: exit 2", r.returncode == 2 and "in use" in r.stderr, r.stderr)
    s.close()
    r = subprocess.run([GRACED, "--help"], capture_output=True, text=True)
    names = ["--listen", "--root", "--upload-dir", "--auth-token-file", "--max-body-size",
             "--workers", "--access-log", "--log-level", "--header-timeout", "--keepalive-timeout",
             "--max-connections", "--linger-timeout", "--linger-time", "--drain-limit", "--linger",
             "--pid-file", "--shutdown-timeout"]
    missing = [n for n in names if n not in r.stdout]
    check("--help lists every option", r.returncode == 0 and not missing, missing)
    r = subprocess.run([GRACED, "--version"], capture_output=True, text=True)
    check("--version", r.returncode == 0 and r.stdout.startswith("graced "), r.stdout)


def run_static(tmp):
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>root</h1>\n")
    with open(os.path.join(root, "sub", "index.html"), "w") as f:
        f.write("sub index\n")
    with open(os.path.join(root, "style.css"), "w") as f:
        f.write("body{}\n")
    with open(os.path.join(root, "data.bin"), "wb") as f:
        f.write(bytes(range(256)))
    with open(os.path.join(tmp, "secret"), "w") as f:
        f.write("outside\n")
    os.symlink(os.path.join(tmp, "secret"), os.path.join(root, "leak"))
    os.symlink("style.css", os.path.join(root, "alias.css"))
    g = Graced("--listen", "127.0.0.1:0", "--root", root)
    try:
        st, body, r = req(g.port, "GET", "/")
        check("GET / serves index.html", st == 200 and body == b"<h1>root</h1>\n", (st, body))
        st, body, r = req(g.port, "HEAD", "/style.css")
        check("HEAD: headers, no body",
              st == 200 and body == b"" and r.getheader("Content-Length") == "7" and
              r.getheader("Content-Type").startswith("text/css"), (st, r.getheaders()))
        etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
        st, body, r = req(g.port, "GET", "/style.css", headers={"If-None-Match": etag})
        check("If-None-Match -> 304", st == 304 and body == b"", st)
        st, body, r = req(g.port, "GET", "/style.css", headers={"If-Modified-Since": lm})
        check("If-Modified-Since -> 304", st == 304, st)
        st, body, r = req(g.port, "GET", "/style.css",
                          headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})
        check("old If-Modified-Since -> 200", st == 200, st)
        st, body, r = req(g.port, "GET", "/data.bin", headers={"Range": "bytes=10-19"})
        check("Range -> 206", st == 206 and body == bytes(range(10, 20)) and
              r.getheader("Content-Range") == "bytes 10-19/256", (st, r.getheader("Content-Range")))
        st, body, r = req(g.port, "GET", "/data.bin", headers={"Range": "bytes=-6"})
        check("suffix Range -> 206", st == 206 and body == bytes(range(250, 256)), st)
        st, body, r = req(g.port, "GET", "/data.bin", headers={"Range": "bytes=300-"})
        check("unsatisfiable Range -> 416", st == 416 and
              r.getheader("Content-Range") == "bytes */256", (st, r.getheader("Content-Range")))
        st, body, r = req(g.port, "GET", "/data.bin",
                          headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
        check("If-Range mismatch -> 200 whole", st == 200 and len(body) == 256, st)
        st, body, r = req(g.port, "GET", "/sub")
        check("directory without slash -> 301", st == 301 and r.getheader("Location") == "/sub/",
              (st, r.getheader("Location")))
        st, body, r = req(g.port, "GET", "/sub/")
        check("directory index", st == 200 and body == b"sub index\n", st)
        st, body, r = req(g.port, "GET", "/alias.css")
        check("symlink inside the root is served", st == 200 and body == b"body{}\n", st)
        # paths with ".." above the root or an encoded "/" are refused by the
        # library (400) before graced sees them
        for path, want in [("/../secret", (400,)), ("/%2e%2e/secret", (400,)),
                           ("/sub/../../secret", (400,)), ("/%2E%2e%2fsecret", (400,)),
                           ("/leak", (403,)), ("/a%00b", (400,)), ("/nope.txt", (404,)),
                           ("/.graced-tmp.x", (404,))]:
            st, body, r = req(g.port, "GET", path)
            check("traversal/refusal %s -> %s" % (path, want), st in want and b"outside" not in body,
                  (st, body[:40]))
        st, body, r = req(g.port, "PUT", "/x", b"data")
        check("PUT without --upload-dir -> 405", st == 405 and "GET" in r.getheader("Allow", ""), st)
        # the methods a 405 names are the routes' (route.c): the writes are off here
        # (PROPFIND reads: WebDAV read-only; MKCOL, MOVE... write)
        for m, why in (("PUT", b"uploads are not enabled\n"), ("POST", b"uploads are not enabled\n"),
                       ("DELETE", b"uploads are not enabled\n"), ("MKCOL", b"uploads are not enabled\n"),
                       ("PATCH", b"method not allowed\n")):
            st, body, r = req(g.port, m, "/x")
            check("%s without --upload-dir -> 405, Allow: GET, HEAD, OPTIONS, PROPFIND" % m,
                  st == 405 and r.getheader("Allow") == "GET, HEAD, OPTIONS, PROPFIND" and body == why,
                  (st, r.getheader("Allow"), body))
    finally:
        check("static: SIGTERM exits 0", g.stop() == 0, g.p.returncode)


def curl_put(port, path, src, *extra):
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", src, *extra,
                        "http://127.0.0.1:%d%s" % (port, path)], capture_output=True, text=True,
                       timeout=120)
    return r.returncode, int(r.stdout or 0), r.stderr


def run_uploads(tmp):
    up = os.path.join(tmp, "up")
    os.mkdir(up)
    tokfile = os.path.join(tmp, "token")
    with open(tokfile, "w") as f:
        f.write("s3cret\nignored second line\n")
    # a stale temp file from a "crash" (nobody holds its lock, older than
    # --stale-upload-age) is removed at start-up
    with open(os.path.join(up, ".graced-tmp.99999999.1.old"), "w") as f:
        f.write("partial")
    two_hours = time.time() - 7200
    os.utime(os.path.join(up, ".graced-tmp.99999999.1.old"), (two_hours, two_hours))
    log = os.path.join(tmp, "access.log")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--auth-token-file",
               tokfile, "--max-body-size", "2M", "--access-log", log, "--metrics", "/metrics")
    auth = {"Authorization": "Bearer s3cret"}
    try:
        check("stale temp file cleaned at start", not os.path.exists(os.path.join(up, ".graced-tmp.99999999.1.old")))
        st, body, r = req(g.port, "PUT", "/a.txt", b"first", auth)
        check("PUT new -> 201", st == 201 and r.getheader("Location") == "/a.txt", st)
        st, body, r = req(g.port, "PUT", "/a.txt", b"second", auth)
        check("PUT existing -> 204", st == 204, st)
        st, body, r = req(g.port, "GET", "/a.txt")
        check("uploaded content served", body == b"second", body)
        req(g.port, "PUT", "/a.txt", b"third", auth)  # the cached copy must go at once
        st, body, r = req(g.port, "GET", "/a.txt")
        check("a replaced file is served new at once (small-file cache)", body == b"third", body)
        st, body, r = req(g.port, "POST", "/b.bin", os.urandom(MiB), auth)
        check("POST raw body -> 201", st == 201 and os.path.getsize(os.path.join(up, "b.bin")) == MiB, st)
        st, body, r = req(g.port, "PUT", "/c.txt", b"x")
        check("no token -> 401", st == 401 and r.getheader("WWW-Authenticate") == "Bearer", st)
        st, body, r = req(g.port, "PUT", "/c.txt", b"x", {"Authorization": "Bearer s3cre"})
        check("wrong token -> 401", st == 401, st)
        st, body, r = req(g.port, "PUT", "/c.txt", b"x" * (3 * MiB), auth)
        check("Content-Length over --max-body-size -> 413", st == 413, st)

        def chunks():
            for _ in range(6):
                yield b"z" * (512 * 1024)
        try:
            st, body, r = req(g.port, "PUT", "/chunked.bin", chunks(),
                              {**auth, "Transfer-Encoding": "chunked"}, chunked=True)
        except OSError as e:
            st = str(e)
        time.sleep(0.2)
        leftovers = [n for n in os.listdir(up) if n.startswith(".graced-tmp") or n == "chunked.bin"]
        check("chunked over the limit -> 413, nothing left", st == 413 and not leftovers, (st, leftovers))
        for path, want in [("/", 400), ("/.hidden", 400), ("/%2e%2e", 400), ("/x/../y", 400),
                           ("/a%01b", 400), ("/a%00b", 400), ("/bad%FFutf8", 400), ("/dir/", 400),
                           ("/%2e%2e%2fx", 400), ("/.graced-tmp.1.1.x", 400)]:
            st, body, r = req(g.port, "PUT", path, b"x", auth)
            check("bad name %s -> %d" % (path, want), st == want, st)
        st, body, r = req(g.port, "PATCH", "/a.txt", b"x", auth)
        check("PATCH -> 405 with Allow", st == 405 and
              r.getheader("Allow") == "GET, HEAD, PUT, POST, DELETE, OPTIONS, PROPFIND, PROPPATCH, "
              "MKCOL, COPY, MOVE, LOCK, UNLOCK", (st, r.getheader("Allow")))
        time.sleep(0.1)
        with open(log) as f:
            lines = f.read().splitlines()
        check("access log in Combined Log Format",
              any(re.match(r'^127\.0\.0\.1 - - \[[^]]+\] "PUT /a.txt HTTP/1.1" 201 \d+ "-" "', l)
                  for l in lines), lines[:3])
        os.rename(log, log + ".1")
        g.p.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        req(g.port, "GET", "/a.txt")
        time.sleep(0.1)
        check("SIGHUP reopens the access log", os.path.exists(log) and "GET /a.txt" in open(log).read())
        st, body, r = req(g.port, "GET", "/metrics")
        check("metrics endpoint", st == 200 and b"graced_linger_started_total" in body and
              b"graced_err_413_total" in body, body[:100])
    finally:
        check("uploads: SIGTERM exits 0", g.stop() == 0, g.p.returncode)


def run_big_early_401(tmp):
    up = os.path.join(tmp, "up401")
    os.mkdir(up)
    tokfile = os.path.join(tmp, "token401")
    with open(tokfile, "w") as f:
        f.write("t\n")
    big = os.path.join(tmp, "64m.bin")
    with open(big, "wb") as f:
        f.write(b"u" * (64 * MiB))
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--auth-token-file",
               tokfile)
    try:
        ok = 0
        for _ in range(3):
            rc, code, err = curl_put(g.port, "/big.bin", big, "-H", "Expect:")
            ok += rc == 0 and code == 401
        check("curl -H 'Expect:' 64 MiB without token: 401 3/3", ok == 3, (ok, err))
        body = b"p" * (64 * MiB)
        ok = 0
        for _ in range(3):
            try:
                st, data, r = req(g.port, "PUT", "/big.bin", body)
                ok += st == 401 and data == b"missing or wrong token\n"
            except OSError as e:
                print("   http.client:", e)
        check("http.client 64 MiB without token: 401 3/3", ok == 3, ok)
        check("no file after refused uploads", os.listdir(up) == [], os.listdir(up))
    finally:
        g.stop()
        os.unlink(big)


def run_upload_limit(tmp):
    """Uploads have --max-body-size; the server-wide limit is small. The 413
    for a Content-Length over it is decided after routing (the upload handler
    raises the limit for itself), still before a body byte is read, and
    reaches clients that send their whole body before reading."""
    up = os.path.join(tmp, "uplimit")
    os.mkdir(up)
    big = os.path.join(tmp, "8m.bin")
    with open(big, "wb") as f:
        f.write(b"u" * (8 * MiB))
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--max-body-size", "1M")
    try:
        st, body, r = req(g.port, "PUT", "/mid.bin", b"m" * (600 * 1024))
        check("upload of 600 KiB (over the 64 KiB default, under --max-body-size): 201",
              st == 201 and os.path.getsize(os.path.join(up, "mid.bin")) == 600 * 1024, st)
        ok = 0
        for _ in range(3):
            try:
                st, data, r = req(g.port, "PUT", "/big.bin", b"p" * (8 * MiB))
                ok += st == 413 and r.getheader("Connection") == "close"
            except OSError as e:
                print("   http.client:", e)
        check("http.client PUT 8 MiB over --max-body-size 1M: 413 read after sending it all, 3/3",
              ok == 3, ok)
        ok = 0
        for _ in range(3):
            rc, code, err = curl_put(g.port, "/big.bin", big, "-H", "Expect:")
            ok += rc == 0 and code == 413
        check("curl -T 8 MiB -H 'Expect:': 413 3/3", ok == 3, (ok, err))
        rc, code, err = curl_put(g.port, "/big.bin", big)
        check("curl -T 8 MiB with Expect: 100-continue: 413, no 100", rc == 0 and code == 413,
              (rc, code, err))
        check("no file after refused uploads", sorted(os.listdir(up)) == ["mid.bin"],
              os.listdir(up))
    finally:
        check("upload limit: SIGTERM exits 0", g.stop() == 0, g.p.returncode)
        os.unlink(big)


def upload_head(port, name, size, token=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    hdr = "PUT /%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % (name, size)
    if token:
        hdr += "Authorization: Bearer %s\r\n" % token
    s.sendall((hdr + "\r\n").encode())
    return s


def run_crash_and_stop(tmp):
    up = os.path.join(tmp, "upcrash")
    os.mkdir(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    s = upload_head(g.port, "victim.bin", 4 * MiB)
    s.sendall(b"v" * MiB)
    time.sleep(0.3)
    g.kill()
    s.close()
    names = os.listdir(up)
    check("SIGKILL mid-upload: nothing under the target name", "victim.bin" not in names, names)
    # its lock went with the process: a restart that does not wait for the
    # age bound (single host, local disk) removes it
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--stale-upload-age", "0")
    try:
        check("restart removes the temporary file", os.listdir(up) == [], os.listdir(up))
        # SIGTERM while an upload is in flight: it finishes, then graced exits
        s = upload_head(g.port, "finish.bin", 2 * MiB)
        s.sendall(b"f" * MiB)
        time.sleep(0.2)
        g.p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        s.sendall(b"f" * MiB)
        resp = b""
        while b"\r\n\r\n" not in resp:
            d = s.recv(4096)
            if not d:
                break
            resp += d
        s.close()
        check("SIGTERM during an upload lets it finish (201)", resp.startswith(b"HTTP/1.1 201"), resp[:60])
        check("... and the file is complete",
              os.path.exists(os.path.join(up, "finish.bin")) and
              os.path.getsize(os.path.join(up, "finish.bin")) == 2 * MiB)
        g.p.wait(10)
        check("... and graced exits 0", g.p.returncode == 0, g.p.returncode)
    finally:
        g.stop()


def run_short_upload(tmp):
    """A client gone mid-body (the body moves by splice on plain HTTP):
    nothing under its name, no temporary file; a complete one is intact."""
    up = os.path.join(tmp, "upshort")
    os.mkdir(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--max-body-size", "64M")
    try:
        s = upload_head(g.port, "short.bin", 8 * MiB)
        s.sendall(b"s" * (3 * MiB))
        time.sleep(0.2)
        s.close()
        names = []
        for _ in range(50):  # the server notices the EOF at once; allow a loaded machine
            names = os.listdir(up)
            if not names:
                break
            time.sleep(0.1)
        check("client gone mid-body: no file, no temporary", names == [], names)
        data = bytes(range(256)) * (20 * 4096)  # 20 MiB
        st, body, r = req(g.port, "PUT", "/whole.bin", data)
        with open(os.path.join(up, "whole.bin"), "rb") as f:
            check("20 MiB PUT stored byte for byte", st == 201 and f.read() == data, st)
    finally:
        g.stop()


def run_disk_full(tmp):
    up = os.path.join(tmp, "upfull")
    os.mkdir(up)
    lim = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, preexec=lim)
    try:
        try:
            st, body, r = req(g.port, "PUT", "/huge.bin", b"h" * (3 * MiB))
        except OSError as e:
            st = str(e)
        time.sleep(0.2)
        check("disk full -> 507, nothing left", st == 507 and os.listdir(up) == [], (st, os.listdir(up)))
    finally:
        g.stop()


def run_workers(tmp):
    metrics_workers = set()
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--workers", "2", "--metrics", "/m",
               "--pid-file", os.path.join(tmp, "graced.pid"))
    try:
        with open(os.path.join(tmp, "graced.pid")) as f:
            check("--pid-file holds the main pid", int(f.read()) == g.p.pid)
        for _ in range(60):
            st, body, r = req(g.port, "GET", "/m")
            metrics_workers.update(re.findall(rb'graced_worker_responses_total\{worker="(\d+)"\} [1-9]',
                                              body))
        check("--workers 2 serves from both", metrics_workers == {b"1", b"2"}, metrics_workers)
    finally:
        check("workers: SIGTERM exits 0", g.stop() == 0, g.p.returncode)
    check("pid file removed at exit", not os.path.exists(os.path.join(tmp, "graced.pid")))


def run_library_options(tmp):
    g = Graced("--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--root", tmp,
               "--header-timeout", "300ms", "--keepalive-timeout", "0.4", "--max-connections", "2",
               expect_ports=2)
    try:
        st, body, r = req(g.ports[1], "GET", "/nope", host="::1")
        check("--listen [::1]:0", st == 404, st)
        t0 = time.time()
        out = raw(g.port, b"GET / HTTP/1.1\r\nHost: t\r\n")
        dt = time.time() - t0
        check("--header-timeout 300ms -> 408", out.startswith(b"HTTP/1.1 408") and 0.2 < dt < 3, (out[:30], dt))
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(4096)
        t0 = time.time()
        eof = s.recv(4096) == b""
        check("--keepalive-timeout 0.4s closes idle", eof and 0.2 < time.time() - t0 < 3)
        s.close()
    finally:
        g.stop()

    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--max-connections", "2")
    try:
        a = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        b = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        time.sleep(0.1)
        c = socket.create_connection(("127.0.0.1", g.port), timeout=0.5)
        c.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            capped = c.recv(100) == b""
        except socket.timeout:
            capped = True
        a.close()
        c.settimeout(5)
        served = c.recv(100).startswith(b"HTTP/1.1 404")
        check("--max-connections 2: third waits, then is served", capped and served, (capped, served))
        b.close()
        c.close()
    finally:
        g.stop()

    # --drain-limit 0 and --linger off change how an early answer ends
    up = os.path.join(tmp, "updrain")
    os.mkdir(up)
    tok = os.path.join(tmp, "tokdrain")
    with open(tok, "w") as f:
        f.write("k\n")
    for args, want_close in [((), False), (("--drain-limit", "0"), True)]:
        g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--auth-token-file",
                   tok, *args)
        try:
            out = raw(g.port, b"PUT /f HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
                      read=False)
            s = socket.create_connection(("127.0.0.1", g.port), timeout=3)
            s.sendall(b"PUT /f HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789")
            head = s.recv(4096)
            s.close()
            closes = b"Connection: close" in head
            check("drain-limit %s: Connection: close is %s" % (args or "default", want_close),
                  head.startswith(b"HTTP/1.1 401") and closes == want_close, head[:120])
        finally:
            g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--auth-token-file",
               tok, "--linger", "off", "--metrics", "/m")
    try:
        try:
            req(g.port, "PUT", "/f", b"x" * (4 * MiB))
        except OSError:
            pass
        st, body, r = req(g.port, "GET", "/m")
        check("--linger off: no lingering", b'graced_linger_started_total 0' in body, body[:80])
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--auth-token-file",
               tok, "--linger-timeout", "300ms", "--metrics", "/m")
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        s.sendall(b"PUT /f HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\nabc")
        s.recv(4096)
        time.sleep(1.0)
        st, body, r = req(g.port, "GET", "/m")
        check("--linger-timeout 300ms ends a quiet linger",
              b'graced_linger_idle_timeout_total 1' in body, body[:80])
        s.close()
    finally:
        g.stop()


def run_socket_activation(tmp):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    port = ls.getsockname()[1]
    fd = ls.fileno()

    # bash puts the socket on fd 3 and keeps its pid for graced
    p = subprocess.Popen(["bash", "-c", 'exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"' % fd,
                          GRACED, "--root", tmp, "--listen", "127.0.0.1:1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(fd,))
    procs.append(p)
    try:
        line = p.stdout.readline()
        st, body, r = req(port, "GET", "/nope")
        check("systemd socket activation (LISTEN_FDS)", "systemd" in line and st == 404, (line, st))
    finally:
        p.terminate()
        p.wait(10)
        ls.close()


def run_slow_download(tmp):
    """A keep-alive download slower than --keepalive-timeout is delivered in
    full: keep-alive idle starts when the response has left, not when it is
    queued (curl used to get 75.8 of 80 MB and exit 18)."""
    root = os.path.join(tmp, "slow")
    os.mkdir(root)
    # 4 s at 8 MB/s; loopback buffers hold ~1.3 s of it. curl's limit runs
    # ahead at times (48 MiB took 3.7 s under load): the margin is for that
    size = 32 * MiB
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(size))
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--keepalive-timeout", "2s")
    try:
        url = "http://127.0.0.1:%d/big.bin" % g.port
        t0 = time.time()
        r = subprocess.run(["curl", "-s", "--limit-rate", "8M", "-o", "/dev/null", "-o", "/dev/null",
                            "-w", "%{size_download} %{num_connects}\n", url, url],
                           capture_output=True, text=True, timeout=60)
        dt = time.time() - t0
        got = r.stdout.split()
        check("slow keep-alive download (2 x 32 MiB at 8 MB/s, keepalive 2 s) on one connection",
              r.returncode == 0 and got == [str(size), "1", str(size), "0"] and dt > 4,
              (r.returncode, r.stdout, r.stderr[-200:], dt))
    finally:
        g.stop()


def run_access_log_errors(tmp):
    """The library's own answers (400, 408, 413, 414, 431, 505) reach the
    access log, each once, with the bytes actually sent."""
    log = os.path.join(tmp, "errors.log")
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, "--access-log", log,
               "--header-timeout", "300ms", "--max-body-size", "1K", "--upload-dir", tmp)
    try:
        raw(g.port, b"GET / HTTP/1.1\nHost: t\n\n")
        raw(g.port, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n")
        raw(g.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
        raw(g.port, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"b" * 40000 + b"\r\n\r\n")
        raw(g.port, b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
        raw(g.port, b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished: 408
        time.sleep(0.2)
        with open(log) as f:
            lines = f.read().splitlines()
        want = {400: '"-" 400', 505: '"-" 505', 414: '"-" 414', 431: '"-" 431',
                413: '"PUT /x HTTP/1.1" 413', 408: '"-" 408'}
        for status, pat in sorted(want.items()):
            n = sum(1 for l in lines if pat + " " in l)
            check("access log: the server's own %d, once" % status, n == 1, lines)
        check("access log: bytes of each error logged",
              len(lines) == 6 and all(re.search(r'" \d{3} \d+ "', l) for l in lines), lines)
    finally:
        g.stop()


def run_sections(sections, prefix):
    """Run each section in a fresh temporary folder tree; a section that
    raises counts as a failure. Every graced left running is killed."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        for t in sections:
            try:
                t(tmp)
            except Exception as e:  # a crashed section is a failure, not a hang
                check(t.__name__ + " raised", False, repr(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return run_sections((run_startup_errors, run_static, run_uploads, run_big_early_401,
                         run_upload_limit,
                         run_crash_and_stop, run_short_upload, run_disk_full, run_workers, run_library_options,
                         run_socket_activation, run_slow_download, run_access_log_errors),
                        "graced-it.")


if __name__ == "__main__":
    sys.exit(main())
