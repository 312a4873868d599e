#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A graceful stop that drops nothing, with real keep-alive clients: SIGTERM
to graced while Python http.client threads and curl send requests back to
back, repeated; every request written in full must get its answer (a new
connection refused once the listener has closed is not a lost request).
Also an upload cut by --shutdown-timeout (503, read by the client while it
still sends; the temporary file removed) and --health (200 while serving,
503 while stopping, not in the access log, with --workers, never behind
auth). Loopback only; every graced started here is stopped by PID.
Ends with "N passed, N failed"."""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import Graced, check, req, run_sections, GRACED, MiB  # noqa: E402
from test_graced_ops import write_users  # noqa: E402

LOST_ERRORS = (http.client.RemoteDisconnected, http.client.BadStatusLine,
               http.client.IncompleteRead, ConnectionResetError, BrokenPipeError,
               ConnectionAbortedError, socket.timeout)


class Client(threading.Thread):
    """GETs back to back on one keep-alive connection (a new one after a
    Connection: close), until a connection is refused. Counts requests
    written in full, answers read, and requests written without an answer."""

    def __init__(self, port, path, started):
        super().__init__(daemon=True)
        self.port, self.path, self.started = port, path, started
        self.sent = self.answered = self.lost = self.refused = self.send_failed = 0
        self.closes = 0
        self.errors = []

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        while True:
            try:
                c.request("GET", self.path)
            except ConnectionRefusedError:
                self.refused += 1  # the listener has closed: nothing was sent
                break
            except OSError as e:  # a reset before the request was written in full
                self.send_failed += 1
                self.errors.append("send: " + repr(e))
                break
            self.sent += 1
            try:
                r = c.getresponse()
                r.read()
            except LOST_ERRORS as e:
                self.lost += 1
                self.errors.append("answer: " + repr(e))
                break
            if r.status != 200:
                self.errors.append("status %d" % r.status)
            self.answered += 1
            if r.will_close:
                self.closes += 1
                c.close()
            if self.answered == 20:
                self.started.release()
        c.close()


def curl_client(port, path, tmp, i):
    """curl reusing one connection for URL after URL until the first failure
    (--fail-early); -v shows requests it had to send again on a fresh
    connection because the reused one died (a request lost, hidden). Its
    output goes to files: a full pipe would stall it."""
    out = open(os.path.join(tmp, "curl%d.out" % i), "w+")
    err = open(os.path.join(tmp, "curl%d.err" % i), "w+")
    p = subprocess.Popen(
        ["curl", "-sv", "--fail-early", "-o", "/dev/null", "-w", "%{http_code} %{exitcode}\n",
         "http://127.0.0.1:%d%s?[1-10000000]" % (port, path)], stdout=out, stderr=err, text=True)
    p.files = (out, err)
    return p


def curl_result(p):
    p.wait(60)
    texts = []
    for f in p.files:
        f.seek(0)
        texts.append(f.read())
        f.close()
    out, err = texts
    lines = out.split()
    codes = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    ok = sum(1 for h, e in codes if h == "200" and e == "0")
    last = codes[-1] if codes else ("", "")
    retried = err.count("Connection died, retrying")
    # exit 7: could not connect (the listener closed); 52 empty reply, 56 reset: lost
    lost = sum(1 for h, e in codes if e in ("52", "56", "55", "18")) + retried
    return ok, lost, last


def load_and_stop(tmp, label, extra=(), nthreads=16, ncurl=2, workers=1):
    """One graced, nthreads http.client threads and ncurl curls, SIGTERM
    once every client is busy; (threads, curls, exit status, seconds)."""
    g = Graced("--listen", "127.0.0.1:0", "--root", tmp, *extra,
               *(("--workers", str(workers)) if workers > 1 else ()))
    started = threading.Semaphore(0)
    clients = [Client(g.port, "/small.txt", started) for _ in range(nthreads)]
    curls = [curl_client(g.port, "/small.txt", tmp, i) for i in range(ncurl)]
    for c in clients:
        c.start()
    for _ in clients:
        started.acquire(timeout=30)
    time.sleep(0.3)  # the curls are busy too
    t0 = time.time()
    g.p.send_signal(signal.SIGTERM)
    try:
        g.p.wait(30)
    except subprocess.TimeoutExpired:
        g.kill()
    took = time.time() - t0
    for c in clients:
        c.join(30)
    res = [curl_result(p) for p in curls]
    g.p.stdout.close()
    g.p.stderr.close()
    return clients, res, g.p.returncode, took


def run_sigterm_under_load(tmp):
    with open(os.path.join(tmp, "small.txt"), "w") as f:
        f.write("small\n")
    for run in range(3):
        clients, curls, rc, took = load_and_stop(tmp, "run %d" % run)
        sent = sum(c.sent for c in clients)
        lost = sum(c.lost + c.send_failed for c in clients)
        errs = [e for c in clients for e in c.errors][:4]
        check("SIGTERM under load, run %d: 16 keep-alive clients, %d requests written, "
              "every one answered" % (run + 1, sent), lost == 0 and sent > 16 * 20,
              "%d lost: %s" % (lost, errs))
        check("SIGTERM under load, run %d: the clients stop on a refused connection, "
              "after a Connection: close" % (run + 1),
              all(c.refused == 1 for c in clients) and all(c.closes >= 1 for c in clients),
              [(c.refused, c.closes) for c in clients])
        cok = [ok for ok, lost, last in curls]
        clost = sum(lost for ok, lost, last in curls)
        check("SIGTERM under load, run %d: curl on kept-alive connections loses nothing "
              "(ends on 'could not connect')" % (run + 1),
              clost == 0 and all(ok > 20 for ok in cok) and all(last[1] == "7" for _, _, last in curls),
              curls)
        check("SIGTERM under load, run %d: exit 0 within the stop bounds (%.1f s)" % (run + 1, took),
              rc == 0 and took < 15, (rc, took))


def upload_cut(port, name, token, stop):
    """PUT 64 MiB at ~1 MB/s, reading as it sends (as a browser does); stop()
    once 512 KiB are sent. (the response head, or what broke, seconds from
    the stop to the answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(("PUT /%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (name, 64 * MiB, token)).encode())
    piece, sent, resp, t_stop = b"u" * 16384, 0, b"", None
    try:
        while sent < 64 * MiB and b"\r\n\r\n" not in resp:
            if sent == 32 * len(piece):
                stop()
                t_stop = time.time()
            s.sendall(piece)
            sent += len(piece)
            s.settimeout(0.015)
            try:
                d = s.recv(65536)
                if not d:
                    return b"EOF after %d bytes sent" % sent, 0
                resp += d
            except socket.timeout:
                pass
            s.settimeout(20)
        return resp, time.time() - t_stop
    except OSError as e:
        return ("%r after %d bytes sent, %r read" % (e, sent, resp[:40])).encode(), 0
    finally:
        s.close()


def run_upload_cut(tmp):
    up = os.path.join(tmp, "upcut")
    os.mkdir(up)
    tok = os.path.join(tmp, "cut.tok")
    with open(tok, "w") as f:
        f.write("cuttoken\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--auth-token-file", tok, "--shutdown-timeout", "1s")
    try:
        resp, after = upload_cut(g.port, "cut.bin", "cuttoken",
                                 lambda: g.p.send_signal(signal.SIGTERM))
        check("an upload cut by --shutdown-timeout gets 503 + Connection: close, read while "
              "still sending (%.1f s after SIGTERM)" % after,
              resp.startswith(b"HTTP/1.1 503") and b"\r\nConnection: close\r\n" in resp and after >= 0.9,
              resp[:200])
        g.p.wait(10)
        check("... graced exits 0", g.p.returncode == 0, g.p.returncode)
        check("... its temporary file is removed, nothing stored", os.listdir(up) == [],
              os.listdir(up))
    finally:
        g.stop()


def run_health(tmp):
    root = os.path.join(tmp, "hroot")
    os.mkdir(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("file\n")
    for bad in ("healthz", "/a/../healthz", "/h%7a"):
        r = subprocess.run([GRACED, "--health", bad], capture_output=True, text=True)
        check("--health %s: exit 2" % bad, r.returncode == 2 and "--health" in r.stderr, r.stderr)
    users = os.path.join(tmp, "husers")
    write_users(users, [("alice", "pw", "r", b"$y$")])
    log = os.path.join(tmp, "health.log")
    for workers in (1, 2):
        g = Graced("--listen", "127.0.0.1:0", "--root", root, "--health", "/healthz",
                   "--users-file", users, "--private", "--access-log", log,
                   "--workers", str(workers))
        try:
            st, body, r = req(g.port, "GET", "/healthz")
            check("--health (workers %d): 200 while serving, with no login under --private"
                  % workers, st == 200 and body == b"ok\n", (st, body))
            st, body, r = req(g.port, "HEAD", "/healthz")
            check("--health: HEAD 200", st == 200 and body == b"", (st, body))
            st, body, r = req(g.port, "PUT", "/healthz", body=b"x")
            check("--health: PUT 405 (nothing can be stored on it)", st == 405, st)
            st, body, r = req(g.port, "OPTIONS", "/healthz")
            check("--health: OPTIONS 405, Allow: GET, HEAD", st == 405 and
                  r.getheader("Allow") == "GET, HEAD", (st, r.getheaders()))
            st, body, r = req(g.port, "GET", "/f.txt")
            check("... while files still need the login", st == 401, st)
            # keep-alive connections (spread over the workers), then the stop
            conns = []
            for _ in range(6):
                c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                conns.append(c)
            g.p.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            sts = []
            for c in conns:
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                sts.append((r.status, r.getheader("Connection")))
                c.close()
            check("--health (workers %d): 503 + Connection: close on every worker once "
                  "stopping" % workers, all(x == (503, "close") for x in sts), sts)
            g.p.wait(10)
            check("... and graced exits 0", g.p.returncode == 0, g.p.returncode)
        finally:
            g.stop()
    with open(log) as f:
        lines = f.read().splitlines()
    check("--health is kept out of the access log (the other requests are in it)",
          not any("healthz" in l for l in lines) and sum("/f.txt" in l for l in lines) == 2, lines)


def run_listen_queue(tmp):
    """Connections that queue in the kernel (graced stopped with SIGSTOP) and
    send their request, on the plain and on the PROXY listener, then SIGTERM
    and SIGCONT: each is answered, none reset by the listener's close."""
    with open(os.path.join(tmp, "small.txt"), "w") as f:
        f.write("small\n")
    g = Graced("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
               "--proxy-from", "127.0.0.0/8", "--root", tmp, expect_ports=2)
    try:
        g.p.send_signal(signal.SIGSTOP)
        socks = []
        for i in range(12):
            proxy = i % 2
            s = socket.create_connection(("127.0.0.1", g.ports[proxy]), timeout=10)
            s.sendall((b"PROXY TCP4 192.0.2.%d 127.0.0.1 4000 80\r\n" % (i + 1) if proxy else b"") +
                      b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            socks.append(s)
        time.sleep(0.2)
        g.p.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        g.p.send_signal(signal.SIGCONT)
        got = []
        for s in socks:
            out = b""
            try:
                while b"small\n" not in out:
                    d = s.recv(4096)
                    if not d:
                        break
                    out += d
            except OSError as e:
                out += repr(e).encode()
            got.append(out.split(b"\r\n")[0])
            s.close()
        check("SIGTERM with 12 connections in the listen queues (6 plain, 6 PROXY): each "
              "answered, none reset", got == [b"HTTP/1.1 200 OK"] * 12, got)
        g.p.wait(10)
        check("... and graced exits 0", g.p.returncode == 0, g.p.returncode)
    finally:
        g.stop()


def run_proxy_stop(tmp):
    """A stop with PROXY connections whose header has not come yet: the
    library's stop begins at once (the plain listener closed, keep-alive
    answers with Connection: close, the deadline running), not once every
    header is read (up to --proxy-timeout: the plain listener went on
    accepting, keep-alive was promised, and the exit came after the
    proxy timeout). A header that comes during the stop is still served.
    --shutdown-timeout 1s, --proxy-timeout 10s: the exit within 3.5 s."""
    with open(os.path.join(tmp, "p.txt"), "w") as f:
        f.write("p\n")
    g = Graced("--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
               "--proxy-from", "127.0.0.0/8", "--root", tmp, "--shutdown-timeout", "1s",
               "--proxy-timeout", "10s", expect_ports=2)
    socks = []
    try:
        plain, proxied = g.ports
        silent = socket.create_connection(("127.0.0.1", proxied), timeout=10)  # never sends
        late = socket.create_connection(("127.0.0.1", proxied), timeout=10)
        socks += [silent, late]
        ka = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
        ka.request("GET", "/p.txt")
        r = ka.getresponse()
        r.read()
        time.sleep(0.2)  # graced has accepted both PROXY connections
        t0 = time.monotonic()
        g.p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 80\r\nGET /p.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        out = b""
        while b"\r\n\r\n" not in out:
            d = late.recv(4096)
            if not d:
                break
            out += d
        check("stop: a PROXY header that comes during the stop is served, with Connection: close",
              out.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close\r\n" in out, out[:200])
        ka.request("GET", "/p.txt")
        r = ka.getresponse()
        r.read()
        check("stop: a keep-alive request at once gets Connection: close (the library's stop began)",
              r.status == 200 and r.getheader("Connection") == "close", r.getheaders())
        try:
            s = socket.create_connection(("127.0.0.1", plain), timeout=2)
            socks.append(s)
            s.sendall(b"GET /p.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            new = s.recv(200).split(b"\r\n")[0] or b"EOF"
        except OSError as e:
            new = e.__class__.__name__
        check("stop: the plain listener is closed at once (refused), while a PROXY header is awaited",
              new == "ConnectionRefusedError", new)
        try:
            g.p.wait(15)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - t0
        check("stop: graced exits 0 within --shutdown-timeout + stop-linger-time (+1.5 s), "
              "not after --proxy-timeout (%.1f s)" % took, g.p.returncode == 0 and took < 3.5,
              (g.p.returncode, took))
    finally:
        for s in socks:
            s.close()
        g.stop()


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return run_sections((run_sigterm_under_load, run_listen_queue, run_proxy_stop, run_upload_cut,
                         run_health),
                        "graced-restart.")


if __name__ == "__main__":
    sys.exit(main())
