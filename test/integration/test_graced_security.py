#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""graced's security review (issue 17), each finding a check that failed on
the code before its fix: PUT with Content-Range, the open redirect, uploaded
pages running as the site, --cors '*' letting any site write, OPTIONS without
DELETE, user names told by timing, symlinks leaving the root in listings,
nosniff and framing headers, a trickled upload holding its slot, names with
control and bidi characters in listings, two form parts of the same name,
--metrics shadowing a file, GET /file/ serving the file, the Origin check
(scheme, two headers), and a path with an encoded control byte. The browser
side (a page really running, a redirect really followed) is in
test/browser/security.mjs. Loopback only; every graced started here is
stopped by PID (test_graced.py's helpers)."""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import GRACED, Graced, check, raw, req, run_sections  # noqa: E402
from test_graced_ops import basic, write_users  # noqa: E402
from test_graced_web import post_form  # noqa: E402

TOKEN = "sekrit"
BEARER = {"Authorization": "Bearer " + TOKEN}


def token_file(tmp):
    path = os.path.join(tmp, "token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    return path


def mkroot(tmp, name):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    return d


def header(r, name):
    return r.getheader(name) or ""


# ---------------------------------------------------------------- 1. Content-Range

def run_content_range(tmp):
    up = mkroot(tmp, "cr")
    with open(os.path.join(up, "big.bin"), "wb") as f:
        f.write(b"B" * 1000000)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--auth-token-file", token_file(tmp))
    try:
        st, body, _ = req(g.port, "PUT", "/big.bin", b"resumed",
                          {**BEARER, "Content-Range": "bytes 0-6/1000000"})
        check("PUT with Content-Range -> 400 (RFC 9110 14.5: no partial PUT)", st == 400, (st, body))
        check("PUT with Content-Range: the file is untouched",
              os.path.getsize(os.path.join(up, "big.bin")) == 1000000,
              os.path.getsize(os.path.join(up, "big.bin")))
        # the answer comes before any body byte: only the headers are sent
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        s.sendall(b"PUT /new.bin HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + TOKEN.encode() +
                  b"\r\nContent-Length: 50000000\r\nContent-Range: bytes 100-50000099/60000000\r\n\r\n")
        try:
            head = s.recv(4096)
        except socket.timeout:
            head = b""
        s.close()
        check("PUT with Content-Range: 400 before any body byte (early answer)",
              head.startswith(b"HTTP/1.1 400"), head[:200])
        check("PUT with Content-Range: nothing stored", not os.path.exists(os.path.join(up, "new.bin")),
              os.listdir(up))
        # a form's parts are stored whole whatever Content-Range says, but a PUT is never
        # a form: its multipart Content-Type must not let a fragment replace the file
        st, body, _ = req(g.port, "PUT", "/big.bin", b"resumed",
                          {**BEARER, "Content-Range": "bytes 0-6/1000000",
                           "Content-Type": "multipart/form-data; boundary=x"})
        check("PUT with Content-Range and a multipart Content-Type -> 400, the file untouched",
              st == 400 and os.path.getsize(os.path.join(up, "big.bin")) == 1000000,
              (st, body, os.path.getsize(os.path.join(up, "big.bin"))))
        st, _, _ = req(g.port, "PUT", "/plain.bin", b"whole", BEARER)
        check("PUT without Content-Range still stores (201)", st == 201, st)
    finally:
        g.stop()


# ---------------------------------------------------------------- 2. open redirect

def run_open_redirect(tmp):
    root = mkroot(tmp, "redir")
    os.makedirs(os.path.join(root, "evil.com"))
    os.makedirs(os.path.join(root, "\\evil.org"))
    os.makedirs(os.path.join(root, "a b"))
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--list-dirs")
    try:
        for target, want in (("//evil.com", "/evil.com/"), ("///evil.com", "/evil.com/"),
                             ("//evil.com?x=1", "/evil.com/?x=1"),
                             ("/%2e/evil.com", "/evil.com/"),
                             ("/\\evil.org", "/%5Cevil.org/"), ("/%5Cevil.org", "/%5Cevil.org/"),
                             ("/a%20b", "/a%20b/"), ("/evil.com", "/evil.com/")):
            out = raw(g.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                               % target).encode())
            m = re.search(rb"(?im)^location: *([^\r]*)\r$", out)
            loc = m.group(1).decode() if m else None
            check("GET %s -> 301 Location %s (on this site)" % (target, want),
                  out.startswith(b"HTTP/1.1 301") and loc == want, (out[:60], loc))
    finally:
        g.stop()


# ---------------------------------------------------------------- 3. uploaded pages

PAGE = b"<!doctype html><script>fetch('/victim.txt',{method:'DELETE'})</script>"


def run_upload_sandbox(tmp):
    # uploads inside the served tree: /up/ is the upload folder
    root = mkroot(tmp, "sandbox")
    up = os.path.join(root, "up")
    os.makedirs(up)
    with open(os.path.join(root, "site.html"), "wb") as f:
        f.write(b"<!doctype html><p>the site's own page")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", up, "--list-dirs",
               "--auth-token-file", token_file(tmp))
    try:
        st, _, _ = req(g.port, "PUT", "/evil.html", PAGE, BEARER)
        check("the upload lands in --upload-dir (201)", st == 201, st)
        for name in ("evil.html", "evil.svg"):
            with open(os.path.join(up, name), "wb") as f:
                f.write(PAGE)
        for path in ("/up/evil.html", "/up/evil.svg"):
            st, body, r = req(g.port, "GET", path)
            csp = header(r, "Content-Security-Policy")
            check("GET %s (uploaded): Content-Security-Policy: sandbox and nosniff" % path,
                  st == 200 and re.search(r"(^|;)\s*sandbox\s*(;|$)", csp) and
                  header(r, "X-Content-Type-Options") == "nosniff", r.getheaders())
        st, body, r = req(g.port, "GET", "/up/evil.html", headers={"Range": "bytes=0-9"})
        check("a range of an uploaded page is sandboxed too",
              st == 206 and "sandbox" in header(r, "Content-Security-Policy"), r.getheaders())
        st, body, r = req(g.port, "GET", "/site.html")
        check("the site's own page (outside --upload-dir) is not sandboxed",
              st == 200 and "sandbox" not in header(r, "Content-Security-Policy") and
              header(r, "X-Content-Type-Options") == "nosniff", r.getheaders())
        st, body, r = req(g.port, "GET", "/up/")
        csp = header(r, "Content-Security-Policy")
        nonce = re.search(r"script-src 'nonce-([A-Za-z0-9+/=_-]+)'", csp)
        check("the listing (graced's page): its own strict CSP, frame-ancestors 'none', "
              "its script by nonce",
              st == 200 and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and
              "sandbox" not in csp and nonce and
              ('<style nonce="%s">' % nonce.group(1)).encode() in body, (csp, body[:300]))
        st2, body2, r2 = req(g.port, "GET", "/up/")
        nonce2 = re.search(r"'nonce-([^']+)'", header(r2, "Content-Security-Policy"))
        check("a new nonce for every listing", nonce and nonce2 and nonce.group(1) != nonce2.group(1),
              (nonce, nonce2))
    finally:
        g.stop()
    # the whole tree is the upload tree
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--list-dirs")
    try:
        st, body, r = req(g.port, "GET", "/evil.html")
        check("root = --upload-dir: every file is sandboxed",
              st == 200 and "sandbox" in header(r, "Content-Security-Policy"), r.getheaders())
        st, body, r = req(g.port, "GET", "/")
        nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", header(r, "Content-Security-Policy"))
        check("a listing with the upload form: its script carries the nonce",
              nonce and ('<script nonce="%s">' % nonce.group(1)).encode() in body and
              b'id="upload"' in body, body[:200])
    finally:
        g.stop()
    # a link from the site into the upload folder is still the upload folder
    os.symlink("up", os.path.join(root, "alias"))
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", up)
    try:
        st, body, r = req(g.port, "GET", "/alias/evil.html")
        check("an upload reached through a symlink inside the root is sandboxed",
              st == 200 and "sandbox" in header(r, "Content-Security-Policy"), r.getheaders())
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--trust-uploads")
    try:
        st, body, r = req(g.port, "GET", "/evil.html")
        check("--trust-uploads: uploaded pages run as the site (no sandbox), still nosniff",
              st == 200 and not header(r, "Content-Security-Policy") and
              header(r, "X-Content-Type-Options") == "nosniff", r.getheaders())
    finally:
        g.stop()


# ---------------------------------------------------------------- 4. CORS and writes

def run_cors_write(tmp):
    up = mkroot(tmp, "cors")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--cors", "*")
    try:
        st, body, _ = req(g.port, "PUT", "/planted.html", b"<script>", {"Origin": "http://evil.example"})
        check("--cors '*': a PUT from another site's page is still refused (403)", st == 403, (st, body))
        with open(os.path.join(up, "keep.txt"), "w") as f:
            f.write("keep")
        st, _, _ = req(g.port, "DELETE", "/keep.txt", headers={"Origin": "http://evil.example"})
        check("--cors '*': a DELETE from another site's page is refused (403)",
              st == 403 and os.path.exists(os.path.join(up, "keep.txt")), st)
        st, _, r = req(g.port, "GET", "/keep.txt", headers={"Origin": "http://evil.example"})
        check("--cors '*': reads are shared (Access-Control-Allow-Origin: *)",
              st == 200 and header(r, "Access-Control-Allow-Origin") == "*", r.getheaders())
        st, _, r = req(g.port, "OPTIONS", "/keep.txt",
                       headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"})
        methods = header(r, "Access-Control-Allow-Methods")
        check("--cors '*': a preflight grants reads only",
              st == 204 and "GET" in methods and "PUT" not in methods and "DELETE" not in methods,
              methods)
        st, _, _ = req(g.port, "PUT", "/same.txt", b"x",
                       {"Origin": "http://127.0.0.1:%d" % g.port})
        check("a write from our own page (Origin = this origin) -> 201", st == 201, st)
    finally:
        err = g.stop() is not None and g.p.stderr.read()
    check("--cors '*' alone: no write warning", "--cors-write" not in (err or ""), err)

    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--cors-write", "https://app.example")
    try:
        st, _, r = req(g.port, "PUT", "/app.txt", b"x", {"Origin": "https://app.example"})
        check("--cors-write ORIGIN: that origin writes (201) and may read the answer",
              st == 201 and header(r, "Access-Control-Allow-Origin") == "https://app.example",
              (st, r.getheaders()))
        st, _, _ = req(g.port, "PUT", "/app.txt", b"x", {"Origin": "https://other.example"})
        check("--cors-write ORIGIN: another origin does not (403)", st == 403, st)
        st, _, r = req(g.port, "OPTIONS", "/app.txt",
                       headers={"Origin": "https://app.example",
                                "Access-Control-Request-Method": "DELETE"})
        methods = header(r, "Access-Control-Allow-Methods")
        check("--cors-write ORIGIN: its preflight lists PUT, POST and DELETE",
              st == 204 and all(m in methods for m in ("PUT", "POST", "DELETE")), methods)
    finally:
        g.stop()

    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--cors-write", "*")
    try:
        st, _, _ = req(g.port, "PUT", "/any.txt", b"x", {"Origin": "http://evil.example"})
        check("--cors-write '*': any site may write (asked for)", st == 201, st)
    finally:
        err = g.stop() is not None and g.p.stderr.read()
    check("--cors-write '*': a start-up warning says any site's page can write and delete",
          re.search(r"warn.*--cors-write \*", err or ""), err)


# ---------------------------------------------------------------- 5. the lower items

def run_options_delete(tmp):
    up = mkroot(tmp, "opts")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--cors-write", "https://app.example")
    try:
        st, _, r = req(g.port, "OPTIONS", "/")
        check("OPTIONS: Allow lists DELETE with uploads on", st == 204 and "DELETE" in header(r, "Allow"),
              header(r, "Allow"))
        st, _, r = req(g.port, "OPTIONS", "/x", headers={"Origin": "https://app.example",
                                                         "Access-Control-Request-Method": "DELETE"})
        check("preflight: Access-Control-Allow-Methods lists DELETE",
              "DELETE" in header(r, "Access-Control-Allow-Methods"), r.getheaders())
        st, _, r = req(g.port, "PATCH", "/x")
        check("405 Allow lists DELETE too", st == 405 and "DELETE" in header(r, "Allow"), r.getheaders())
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", up)
    try:
        st, _, r = req(g.port, "OPTIONS", "/")
        check("OPTIONS without uploads: no DELETE", "DELETE" not in header(r, "Allow"), header(r, "Allow"))
    finally:
        g.stop()


def timed_logins(port, logins, n):
    """median seconds of n failed logins of each (user, password), taken in
    turn (a busy spell of the machine falls on all of them alike)"""
    times = [[] for _ in logins]
    for _ in range(n):
        for i, (user, password) in enumerate(logins):
            t0 = time.monotonic()
            st, _, _ = req(port, "PUT", "/t.txt", b"x", basic(user, password))
            times[i].append(time.monotonic() - t0)
            if st != 401:
                return [None] * len(logins)
    return [statistics.median(t) for t in times]


def run_auth_timing(tmp):
    """An unknown name must cost what a known one costs. The first user has a
    cheap sha512-crypt hash (~1 ms), the second yescrypt (~100 ms); the dummy
    check used to be against the first user's hash, so a fast 401 meant
    "no such user". Medians of several tries, compared by ratio (never by
    absolute time: the machine may be busy)."""
    root = mkroot(tmp, "timing")
    users = os.path.join(tmp, "timing-users")
    write_users(users, [("fast", "pw-fast", "rw", b"$6$"), ("slow", "pw-slow", "rw", b"$y$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root, "--users-file", users,
               "--auth-fail-limit", "1000", "--auth-cache-time", "0")
    try:
        timed_logins(g.port, [("nobody", "x")], 1)  # the helper thread starts
        slow, unknown, fast = timed_logins(g.port, [("slow", "wrong"), ("nobody-%d" % os.getpid(), "wrong"),
                                                    ("fast", "wrong")], 9)
        print("     medians: yescrypt user %.1f ms, unknown name %.1f ms, sha512 user %.1f ms"
              % (slow * 1000, unknown * 1000, fast * 1000))
        check("an unknown name costs what the strongest user's check costs (median >= 0.5x)",
              unknown is not None and slow is not None and unknown >= 0.5 * slow, (unknown, slow))
        check("a weak-hash user's wrong password is not told apart either (median >= 0.5x)",
              fast is not None and fast >= 0.5 * slow, (fast, slow))
        st, _, _ = req(g.port, "PUT", "/ok.txt", b"x", basic("fast", "pw-fast"))
        check("the weak-hash user still logs in", st == 201, st)
    finally:
        err = g.stop() is not None and g.p.stderr.read()
    check("a users file that mixes hash costs is warned about at start-up",
          re.search(r"warn.*users.*(cost|timing)", err or "", re.I), err)


def cpu_ns(pid):
    """CPU time graced has run, in ns, all its threads (schedstat: exact, and
    blind to the time spent waiting for a busy machine's cores)"""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def run_auth_timing_kinds(tmp):
    """Every login check costs the same, whatever the name and its hash's
    kind: a kind is a scheme with its cost (bcrypt's cost was left out, so
    bcrypt 4 and bcrypt 8 were one kind, measured on the first), and a kind
    between half and all of the costliest was not padded. Four users, four
    kinds: bcrypt 4 (~1 ms, first), bcrypt 8 (~11 ms), yescrypt cost 4
    (~9 ms), sha512-crypt 25000 rounds (~6 ms); each wrong password and an
    unknown name, taken in turn (a busy spell falls on all alike), 11 times.
    Compared: the CPU graced spent on each (medians within 0.85-1.18 of the
    unknown name's: the work, which a loaded machine does not blur) and the
    time to the answer (within 0.6-1.67: what a client sees, blurred by a
    loaded machine). Before: the bcrypt 8 user cost about twice an unknown
    name, the sha512 one about two thirds."""
    root = mkroot(tmp, "timing-kinds")
    many = os.path.join(tmp, "many-kinds-users")
    write_users(many, [("u%d" % i, "pw", "r", b"$6$", 1000 + i) for i in range(17)])
    r = subprocess.run([GRACED, "--root", root, "--users-file", many], capture_output=True,
                       text=True, timeout=30)
    check("a users file with 17 kinds of hash is refused at start, saying so",
          r.returncode != 0 and "16 kinds" in r.stderr, (r.returncode, r.stderr))
    users = os.path.join(tmp, "timing-kinds-users")
    write_users(users, [("b4", "pw-b4", "rw", b"$2b$", 4), ("b8", "pw-b8", "rw", b"$2b$", 8),
                        ("y4", "pw-y4", "rw", b"$y$", 4), ("s6", "pw-s6", "rw", b"$6$", 25000)])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root, "--users-file", users,
               "--auth-fail-limit", "1000", "--auth-cache-time", "0")
    try:
        names = ["b4", "b8", "y4", "s6", "nobody-%d" % os.getpid()]
        wall = [[] for _ in names]
        cpu = [[] for _ in names]
        req(g.port, "PUT", "/t.txt", b"x", basic("nobody", "x"))  # the check's thread starts
        for _ in range(11):
            for i, n in enumerate(names):
                c0, t0 = cpu_ns(g.p.pid), time.monotonic()
                st, _, _ = req(g.port, "PUT", "/t.txt", b"x", basic(n, "wrong"))
                wall[i].append(time.monotonic() - t0)
                cpu[i].append(cpu_ns(g.p.pid) - c0)
                if st != 401:
                    check("a wrong password: 401", False, (n, st))
                    return
        wall = [statistics.median(x) for x in wall]
        cpu = [statistics.median(x) for x in cpu]
        print("     medians, CPU (ms): " + ", ".join("%s %.1f" % (n, m / 1e6) for n, m in zip(names, cpu)))
        print("     medians, answer (ms): " + ", ".join("%s %.1f" % (n, m * 1000)
                                                       for n, m in zip(names, wall)))
        for i, n in enumerate(names[:-1]):
            rc, rw = cpu[i] / cpu[-1], wall[i] / wall[-1]
            check("user %s's wrong password costs what an unknown name does (CPU %.2f of it, "
                  "answer %.2f)" % (n, rc, rw), 0.85 <= rc <= 1.18 and 0.6 <= rw <= 1.67, (rc, rw))
        for n in names[:-1]:
            st, _, _ = req(g.port, "PUT", "/%s.txt" % n, b"x", basic(n, "pw-" + n))
            check("%s still logs in" % n, st == 201, st)
    finally:
        g.stop()


def run_listing_symlinks(tmp):
    root = mkroot(tmp, "links")
    outside = mkroot(tmp, "outside")
    with open(os.path.join(outside, "secret.txt"), "wb") as f:
        f.write(b"s" * 12345)
    with open(os.path.join(root, "in.txt"), "wb") as f:
        f.write(b"i" * 77)
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "leak.txt"))
    os.symlink(outside, os.path.join(root, "leakdir"))
    os.symlink("in.txt", os.path.join(root, "alias.txt"))
    os.utime(os.path.join(outside, "secret.txt"), (1000000000, 1000000000))
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--list-dirs")
    try:
        st, body, _ = req(g.port, "GET", "/", headers={"Accept": "application/json"})
        j = json.loads(body)
        names = {e["name"]: e for e in j["entries"]}
        check("JSON listing: links leaving the root are not shown",
              "leak.txt" not in names and "leakdir" not in names, names)
        check("JSON listing: says how many were left out", j.get("hidden_links") == 2, j)
        check("JSON listing: a link inside the root is shown with its size",
              names.get("alias.txt", {}).get("size") == 77, names)
        st, body, _ = req(g.port, "GET", "/")
        check("HTML listing: the outside file's size and date do not appear",
              b"12345" not in body and b"2001-09-09" not in body and b"leak.txt" not in body, body)
        check("HTML listing: says that links were left out", b"2 symbolic links" in body, body)
        st, _, _ = req(g.port, "GET", "/leak.txt")
        check("serving refuses the same link (403)", st == 403, st)
    finally:
        g.stop()


def run_security_headers(tmp):
    root = mkroot(tmp, "hdrs")
    with open(os.path.join(root, "a.txt"), "w") as f:
        f.write("a")
    with open(os.path.join(root, "p.html"), "w") as f:
        f.write("<p>")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--list-dirs", "--upload-dir", root)
    try:
        for method, path in (("GET", "/a.txt"), ("GET", "/p.html"), ("GET", "/missing"),
                             ("GET", "/"), ("PATCH", "/a.txt"), ("HEAD", "/a.txt")):
            st, _, r = req(g.port, method, path)
            check("%s %s (%d): X-Content-Type-Options: nosniff, X-Frame-Options" % (method, path, st),
                  header(r, "X-Content-Type-Options") == "nosniff" and
                  header(r, "X-Frame-Options") in ("DENY", "SAMEORIGIN"), r.getheaders())
        st, _, r = req(g.port, "GET", "/")
        check("the listing: frame-ancestors 'none' (which browsers put before X-Frame-Options)",
              "frame-ancestors 'none'" in header(r, "Content-Security-Policy"), r.getheaders())
        out = raw(g.port, b"GET /%00 HTTP/1.1\r\nHost: t\r\n\r\n")
        check("the library's own 400: nosniff", out.startswith(b"HTTP/1.1 400") and
              re.search(rb"(?im)^x-content-type-options: nosniff\r$", out), out[:300])
    finally:
        g.stop()


def run_trickle(tmp):
    up = mkroot(tmp, "trickle")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--body-timeout", "2s")
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"PUT /slow.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        t0, got = time.monotonic(), b""
        s.settimeout(0.5)
        while time.monotonic() - t0 < 8 and not got:
            try:
                s.sendall(b"x")
                got = s.recv(4096)
            except socket.timeout:
                pass
            except OSError:
                break
        took = time.monotonic() - t0
        s.close()
        check("a trickled upload (2 bytes/s) is cut with 408 (default --body-min-rate)",
              got.startswith(b"HTTP/1.1 408"), (got[:80], round(took, 1)))
        check("... within a window or two of --body-timeout (2 s)", 1.5 < took < 6.5, took)
        time.sleep(0.3)
        check("... and its temporary file is gone",
              not [n for n in os.listdir(up) if n.startswith(".graced-tmp")], os.listdir(up))
        # slow but steady: 2 KiB/s for 4 s is kept
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"PUT /steady.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 8192\r\n\r\n")
        for _ in range(16):
            time.sleep(0.25)
            s.sendall(b"y" * 512)
        s.settimeout(10)
        got = s.recv(4096)
        s.close()
        check("a slow but steady upload (2 KiB/s, 4 s) is stored (201)",
              got.startswith(b"HTTP/1.1 201") and os.path.getsize(os.path.join(up, "steady.bin")) == 8192,
              got[:80])
    finally:
        g.stop()


def run_listing_names(tmp):
    root = mkroot(tmp, "names")
    odd = ["a\nb.txt", "tab\there.txt", "bell\x07.txt", "rtl\u202egnp.exe", "lri\u2066x\u2069.txt"]
    for name in odd + ["plain.txt"]:
        with open(os.path.join(root, name), "w") as f:
            f.write("x")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--list-dirs")
    try:
        st, body, _ = req(g.port, "GET", "/", headers={"Accept": "application/json"})
        j = json.loads(body)
        names = [e["name"] for e in j["entries"]]
        check("JSON listing: names with control bytes are listed (escaped by JSON)",
              all(n in names for n in odd), names)
        check("JSON listing: bidi controls arrive as \\u escapes, not raw",
              "\u202e".encode() not in body and b"\\u202e" in body.lower(), body)
        st, body, _ = req(g.port, "GET", "/")
        text = body.decode()
        check("HTML listing: a name with a newline shows, escaped", "a\\x0Ab.txt" in text, text)
        check("HTML listing: no raw control byte in the page",
              not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text.replace("\n", "")), text)
        check("HTML listing: a bidi override is shown, not obeyed (rtl\\u202Egnp.exe)",
              "\u202e" not in text and "\u2066" not in text and "rtl\\u202Egnp.exe" in text, text)
        check("HTML listing: such names are marked", text.count('class="odd"') >= len(odd), text)
        check("HTML listing: a name GET cannot serve is not a link",
              "a\\x0Ab.txt</span>" in text and "href=\"./a%0Ab.txt\"" not in text, text)
    finally:
        g.stop()


def run_form_same_name(tmp):
    up = mkroot(tmp, "samename")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    try:
        st, body, _ = post_form(g.port, "/", [("file", "a.txt", b"first"), ("file", "a.txt", b"second")])
        check("a form with two parts of the same name: 409, naming it", st == 409 and b"a.txt" in body,
              (st, body))
        check("... the answer lists the first as stored", b"stored before: a.txt" in body, body)
        with open(os.path.join(up, "a.txt"), "rb") as f:
            data = f.read()
        check("... and the first is what is stored", data == b"first", data)
        st, body, _ = post_form(g.port, "/", [("file", "b.txt", b"1"), ("file", "c.txt", b"2")],
                                headers={"Accept": "application/json"})
        check("two parts with different names: 201, both stored",
              st == 201 and json.loads(body)["count"] == 2, (st, body))
    finally:
        g.stop()


def run_metrics_shadow(tmp):
    root = mkroot(tmp, "metrics")
    with open(os.path.join(root, "metrics"), "w") as f:
        f.write("a file\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--metrics", "/metrics")
    try:
        st, body, _ = req(g.port, "GET", "/metrics")
        check("GET /metrics: the counters", st == 200 and b"graced_http_responses_total" in body, body[:80])
        st, body, _ = req(g.port, "GET", "/%6Detrics")
        check("GET /%6Detrics: the counters too (the decoded path is matched)",
              st == 200 and b"graced_http_responses_total" in body, body[:80])
        st, body, _ = req(g.port, "GET", "//metrics")
        check("GET //metrics: the counters too", st == 200 and b"graced_" in body, body[:80])
        st, body, _ = req(g.port, "PUT", "/metrics", b"mine")
        check("PUT /metrics: refused (409), the path is --metrics'", st == 409, (st, body))
        st, body, _ = req(g.port, "PUT", "/%6detrics", b"mine")
        check("PUT /%6detrics: refused too", st == 409, (st, body))
        st, body, _ = post_form(g.port, "/", [("file", "metrics", b"mine")])
        check("a form part named metrics into / : refused (409)", st == 409, (st, body))
        with open(os.path.join(root, "metrics")) as f:
            check("the file is unchanged", f.read() == "a file\n")
    finally:
        g.stop()


def run_health_reserved(tmp):
    """--health's path is graced's as --metrics' is: no upload takes it (PUT,
    a raw POST, a form part named like it), no DELETE removes what it
    shadows: 409, on the decoded path. (A form part named like it was
    stored, then shadowed by the probe; DELETE removed what --metrics
    shadowed.)"""
    root = mkroot(tmp, "healthres")
    os.mkdir(os.path.join(root, "sub"))
    for name in ("healthz", "sub/m"):
        with open(os.path.join(root, name), "w") as f:
            f.write("a file\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--health", "/healthz", "--metrics", "/sub/m")
    try:
        st, body, _ = req(g.port, "GET", "/healthz")
        check("GET /healthz: the probe", st == 200 and body == b"ok\n", (st, body))
        for method, path in (("PUT", "/healthz"), ("PUT", "/%68ealthz"), ("POST", "/healthz"),
                             ("DELETE", "/healthz"), ("DELETE", "/%68ealthz"),
                             ("DELETE", "/sub/m"), ("PUT", "/sub/%6D")):
            st, body, _ = req(g.port, method, path, b"mine" if method != "DELETE" else None)
            check("%s %s: 409, the path is graced's" % (method, path),
                  st == 409 and b"graced's" in body, (st, body))
        st, body, _ = post_form(g.port, "/", [("file", "healthz", b"mine")])
        check("a form part named healthz into / : refused (409)", st == 409, (st, body))
        st, body, _ = post_form(g.port, "/sub/", [("file", "m", b"mine")])
        check("a form part named m into /sub/ (--metrics /sub/m): refused (409)", st == 409,
              (st, body))
        for name in ("healthz", "sub/m"):
            with open(os.path.join(root, name)) as f:
                check("%s is unchanged" % name, f.read() == "a file\n")
        st, body, _ = req(g.port, "PUT", "/healthz2", b"fine")
        check("a name that only starts like it is stored (201)", st == 201, (st, body))
        st, _, r = req(g.port, "OPTIONS", "/healthz")
        check("OPTIONS /healthz: still 405, Allow: GET, HEAD", st == 405 and
              r.getheader("Allow") == "GET, HEAD", (st, r.getheaders()))
    finally:
        g.stop()


def run_trailing_slash_file(tmp):
    root = mkroot(tmp, "slash")
    with open(os.path.join(root, "file.txt"), "w") as f:
        f.write("content\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", root)
    try:
        st, body, _ = req(g.port, "GET", "/file.txt/")
        check("GET /file.txt/ -> 404 (a file is not a folder)", st == 404, (st, body))
        st, body, _ = req(g.port, "GET", "/file.txt/")  # the small-file cache too
        check("GET /file.txt/ again -> 404", st == 404, (st, body))
        st, body, _ = req(g.port, "GET", "/file.txt")
        check("GET /file.txt -> 200", st == 200 and body == b"content\n", st)
        st, body, _ = req(g.port, "GET", "/file.txt/")
        check("GET /file.txt/ after the file was cached -> 404", st == 404, st)
    finally:
        g.stop()


def run_origin_check(tmp):
    up = mkroot(tmp, "origin")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    try:
        here = "127.0.0.1:%d" % g.port
        st, _, _ = req(g.port, "PUT", "/a.txt", b"x", {"Origin": "http://" + here})
        check("Origin http://HOST on plain HTTP: same origin (201)", st == 201, st)
        st, _, _ = req(g.port, "PUT", "/b.txt", b"x", {"Origin": "https://" + here})
        check("Origin https://HOST on plain HTTP: another origin (403)", st == 403, st)
        st, _, _ = req(g.port, "PUT", "/c.txt", b"x", {"Origin": "http://127.0.0.1:1"})
        check("Origin with another port: 403", st == 403, st)
        st, _, _ = req(g.port, "PUT", "/d.txt", b"x", {"Origin": "http://" + here + "/"})
        check("Origin that is not an origin (a path): 403", st == 403, st)
        out = raw(g.port, ("PUT /e.txt HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\n"
                           "Origin: http://evil.example\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
                           % (here, here)).encode())
        check("two Origin headers: 400, nothing stored",
              out.startswith(b"HTTP/1.1 400") and not os.path.exists(os.path.join(up, "e.txt")), out[:120])
        out = raw(g.port, ("GET /a.txt HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\n"
                           "Origin: http://evil.example\r\nConnection: close\r\n\r\n" % (here, here)).encode())
        check("two Origin headers on a GET: 400 too", out.startswith(b"HTTP/1.1 400"), out[:120])
    finally:
        g.stop()


def run_control_path(tmp):
    root = mkroot(tmp, "ctl")
    with open(os.path.join(root, "ab"), "w") as f:
        f.write("x")
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root)
    try:
        for target in ("/a%09b", "/a%0Db", "/a%0Ab", "/a%7Fb"):
            st, body, _ = req(g.port, "GET", target)
            check("GET %s: graced's own 400 naming the control character" % target,
                  st == 400 and b"control character" in body, (st, body))
        st, body, _ = req(g.port, "PUT", "/x%0Ay", b"1")
        check("PUT /x%0Ay: 400, nothing stored", st == 400 and sorted(os.listdir(root)) == ["ab"],
              (st, body, os.listdir(root)))
    finally:
        g.stop()


def run_new_options(tmp):
    r = subprocess.run([GRACED, "--help"], capture_output=True, text=True)
    missing = [n for n in ("--cors-write", "--trust-uploads", "--body-min-rate") if n not in r.stdout]
    check("--help lists --cors-write, --trust-uploads, --body-min-rate", not missing, missing)
    for args, what in ((["--cors-write", "https://app.example/"], "--cors-write"),
                       (["--cors", "app.example"], "--cors"),
                       (["--metrics", "/"], "--metrics"), (["--metrics", "/m/../.."], "--metrics"),
                       (["--body-min-rate", "fast"], "--body-min-rate")):
        r = subprocess.run([GRACED, *args], capture_output=True, text=True, timeout=10)
        check("%s: exit 2 naming the option" % " ".join(args),
              r.returncode == 2 and what in r.stderr, (r.returncode, r.stderr))


def main():
    return run_sections((run_content_range, run_open_redirect, run_upload_sandbox, run_cors_write,
                         run_options_delete, run_auth_timing, run_auth_timing_kinds,
                         run_listing_symlinks,
                         run_security_headers, run_trickle, run_listing_names, run_form_same_name,
                         run_metrics_shadow, run_health_reserved, run_trailing_slash_file, run_origin_check,
                         run_control_path, run_new_options),
                        "graced-sec.")


if __name__ == "__main__":
    sys.exit(main())
