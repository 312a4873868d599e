#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""graced's WebDAV with the real clients (litmus, rclone, cadaver) and raw
requests for every bad input: COPY/MOVE out of the tree or onto a hidden
name, PROPFIND bombs (depth, body, a huge folder read by a client that does
not read), locks held by someone else (423, across workers), the limits
(--dav-locks, --dav-lock-timeout, --dav-props-max, --dav-tree-max) and the
login and Origin rules. Loopback only; every graced started here is
stopped by PID. A missing client is a failure under CI=1, else skipped.
Ends with "N passed, N failed"."""
import base64
import hashlib
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_graced as tg  # noqa: E402
from test_graced import Graced, check, req, GRACED  # noqa: E402
from test_graced_ops import write_users, basic  # noqa: E402

ALICE = basic("alice", "wonder land")  # rw
BOB = basic("bob", "b0b")              # r


def have(tool):
    if shutil.which(tool):
        return True
    if os.environ.get("CI"):
        check("%s is installed (setup.sh PKGS)" % tool, False, "missing")
    else:
        print("skip %s: not installed" % tool)
    return False


def dav(port, method, path, body=None, headers=None):
    h = dict(headers or {})
    if body is not None and isinstance(body, str):
        body = body.encode()
    return req(port, method, path, body, h)


def tree_digest(top):
    """{relative path: sha256} of the files below top, and the set of folders."""
    files, dirs = {}, set()
    for d, subdirs, names in os.walk(top):
        for s in subdirs:
            dirs.add(os.path.relpath(os.path.join(d, s), top))
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, top)] = hashlib.sha256(f.read()).hexdigest()
    return files, dirs


def make_tree(top):
    os.makedirs(os.path.join(top, "docs", "deep", "er"))
    os.makedirs(os.path.join(top, "empty dir"))
    os.makedirs(os.path.join(top, "ünïcode ✓"))
    data = {
        "zero.bin": b"",
        "one.txt": b"1",
        "docs/readme.md": b"# readme\n" * 100,
        "docs/deep/er/rand.bin": os.urandom(3 << 20),
        "docs/deep/mid.bin": os.urandom(65536 + 7),
        "ünïcode ✓/naïve café.txt": "ça marche\n".encode(),
        "name with spaces & amp.txt": b"spaces",
    }
    for rel, b in data.items():
        with open(os.path.join(top, rel), "wb") as f:
            f.write(b)


# ---------------------------------------------------------------- litmus

def run_litmus(tmp):
    if not have("litmus"):
        return
    tree = os.path.join(tmp, "litmus")
    os.mkdir(tree)
    users = os.path.join(tmp, "users")
    write_users(users, [("alice", "wonder land", "rw", b"$6$"), ("bob", "b0b", "r", b"$6$")])
    # two workers: a lock taken on one is seen by the other (shared memory)
    g = Graced("--listen", "127.0.0.1:0", "--root", tree, "--upload-dir", tree, "--list-dirs",
               "--users-file", users, "--private", "--workers", "2", "--log-level", "error")
    try:
        t0 = time.monotonic()
        r = subprocess.run(["litmus", "http://127.0.0.1:%d/" % g.port, "alice", "wonder land"],
                           capture_output=True, text=True, timeout=300, cwd=tmp,
                           env=dict(os.environ, TESTS="basic copymove props locks http"))
        out = r.stdout + r.stderr
        sums = re.findall(r"summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed", out)
        for suite in ("basic", "copymove", "props", "locks"):
            row = [s for s in sums if s[0] == suite]
            check("litmus %s: 0 failures" % suite, row and row[0][3] == "0" and row[0][1] == row[0][2],
                  row or out[-2000:])
        warns = [ln for ln in out.splitlines() if "WARNING" in ln]
        check("litmus: no warnings", not warns, warns[:5])
        print("  litmus took %.1f s" % (time.monotonic() - t0))
    finally:
        check("litmus: graced stops with 0", g.stop() == 0, g.p.returncode)


# ---------------------------------------------------------------- rclone

def rclone(port, *args, user="alice", password="wonder land"):
    ob = subprocess.run(["rclone", "obscure", password], capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_G_TYPE="webdav",
               RCLONE_CONFIG_G_URL="http://127.0.0.1:%d/" % port, RCLONE_CONFIG_G_VENDOR="other",
               RCLONE_CONFIG_G_USER=user, RCLONE_CONFIG_G_PASS=ob)
    return subprocess.run(["rclone", "--retries", "1", "--low-level-retries", "1", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def run_rclone(tmp):
    if not have("rclone"):
        return
    srv = os.path.join(tmp, "rsrv")
    local = os.path.join(tmp, "rlocal")
    back = os.path.join(tmp, "rback")
    os.mkdir(srv)
    make_tree(local)
    users = os.path.join(tmp, "rusers")
    write_users(users, [("alice", "wonder land", "rw", b"$6$"), ("bob", "b0b", "r", b"$6$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", srv, "--upload-dir", srv, "--list-dirs",
               "--users-file", users, "--private", "--workers", "2", "--log-level", "error")
    try:
        r = rclone(g.port, "copy", local, "g:")
        check("rclone copy up: exit 0", r.returncode == 0, r.stderr[-800:])
        lf, ld = tree_digest(local)
        sf, sd = tree_digest(srv)
        check("rclone copy up: the server's tree is byte-exact", lf == sf, set(lf.items()) ^ set(sf.items()))
        # change the local tree: a file gone, one of another size, a new one, a folder gone
        os.unlink(os.path.join(local, "one.txt"))
        with open(os.path.join(local, "docs", "readme.md"), "ab") as f:
            f.write(b"more\n")
        with open(os.path.join(local, "docs", "deep", "new.bin"), "wb") as f:
            f.write(os.urandom(100000))
        shutil.rmtree(os.path.join(local, "docs", "deep", "er"))
        r = rclone(g.port, "sync", local, "g:")
        check("rclone sync up: exit 0", r.returncode == 0, r.stderr[-800:])
        lf, ld = tree_digest(local)
        sf, sd = tree_digest(srv)
        check("rclone sync up: byte-exact, deletions too", lf == sf and not os.path.exists(
            os.path.join(srv, "one.txt")) and not os.path.exists(os.path.join(srv, "docs/deep/er")),
            (set(lf.items()) ^ set(sf.items()), sd))
        left = [n for d, _, ns in os.walk(srv) for n in ns if n.startswith(".graced-tmp.")]
        check("rclone: no temporary file left on the server", not left, left)
        r = rclone(g.port, "copy", "g:", back)
        check("rclone copy down: exit 0", r.returncode == 0, r.stderr[-800:])
        bf, bd = tree_digest(back)
        check("rclone copy down: byte-exact", bf == sf, set(bf.items()) ^ set(sf.items()))
        # change the server's tree; sync down follows
        os.unlink(os.path.join(srv, "zero.bin"))
        with open(os.path.join(srv, "docs", "added on server.txt"), "wb") as f:
            f.write(b"server side\n")
        r = rclone(g.port, "sync", "g:", back)
        check("rclone sync down: exit 0", r.returncode == 0, r.stderr[-800:])
        bf, bd = tree_digest(back)
        sf, sd = tree_digest(srv)
        check("rclone sync down: byte-exact, deletions too", bf == sf and
              not os.path.exists(os.path.join(back, "zero.bin")), set(bf.items()) ^ set(sf.items()))
        # server-side copy and move (rclone uses COPY and MOVE for these)
        r = rclone(g.port, "copyto", "g:docs/readme.md", "g:docs/readme copy.md")
        r2 = rclone(g.port, "moveto", "g:docs/readme copy.md", "g:moved/readme.md")
        sf, _ = tree_digest(srv)
        check("rclone copyto/moveto on the server: COPY and MOVE", r.returncode == 0 and
              r2.returncode == 0 and sf.get("moved/readme.md") == sf.get("docs/readme.md") and
              "docs/readme copy.md" not in sf, (r.stderr[-300:], r2.stderr[-300:], sorted(sf)))
        # a read-only user sees, and may not write
        r = rclone(g.port, "lsf", "-R", "g:", user="bob", password="b0b")
        check("rclone as a read-only user: lists", r.returncode == 0 and "docs/readme.md" in r.stdout,
              r.stderr[-300:])
        r = rclone(g.port, "mkdir", "g:bobdir", user="bob", password="b0b")
        check("rclone as a read-only user: mkdir refused", r.returncode != 0 and
              not os.path.exists(os.path.join(srv, "bobdir")), r.stderr[-300:])
        r = rclone(g.port, "lsf", "g:", password="wrong")
        check("rclone with a wrong password: refused", r.returncode != 0, r.stdout)
    finally:
        check("rclone: graced stops with 0", g.stop() == 0, g.p.returncode)


# ---------------------------------------------------------------- cadaver

def run_cadaver(tmp):
    if not have("cadaver"):
        return
    srv = os.path.join(tmp, "csrv")
    home = os.path.join(tmp, "chome")
    os.mkdir(srv)
    os.mkdir(home)
    users = os.path.join(tmp, "cusers")
    write_users(users, [("alice", "wonder land", "rw", b"$6$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", srv, "--upload-dir", srv, "--list-dirs",
               "--users-file", users, "--log-level", "error")
    try:
        with open(os.path.join(home, ".netrc"), "w") as f:
            f.write("machine 127.0.0.1 login alice password wonder land\n".replace(
                "wonder land", '"wonder land"'))
        os.chmod(os.path.join(home, ".netrc"), 0o600)
        src = os.path.join(home, "local.txt")
        with open(src, "wb") as f:
            f.write(b"from cadaver\n" * 1000)
        script = "\n".join([
            "mkcol box", "put %s box/a.txt" % src, "move box/a.txt box/b.txt",
            "get box/b.txt %s" % os.path.join(home, "got.txt"),
            "lock box/b.txt", "discover box/b.txt", "propset box/b.txt color blue",
            "propget box/b.txt color", "unlock box/b.txt", "ls box", "quit", ""])
        r = subprocess.run(["cadaver", "http://127.0.0.1:%d/" % g.port], input=script,
                           capture_output=True, text=True, timeout=60, cwd=home,
                           env=dict(os.environ, HOME=home))
        out = r.stdout + r.stderr
        got = open(os.path.join(home, "got.txt"), "rb").read() if os.path.exists(
            os.path.join(home, "got.txt")) else None
        check("cadaver: mkcol, put, move, get byte-exact", got == open(src, "rb").read() and
              os.path.isfile(os.path.join(srv, "box", "b.txt")) and
              not os.path.exists(os.path.join(srv, "box", "a.txt")), out[-1500:])
        check("cadaver: lock, discover (owner, token), unlock",
              re.search(r"Locking .*succeeded", out) and "opaquelocktoken" not in out and
              "urn:uuid:" in out and re.search(r"Unlocking .*succeeded", out), out[-1500:])
        check("cadaver: propset, propget", "blue" in out and re.search(r"Setting property.*succeeded", out),
              out[-1500:])
        check("cadaver: no failure said", "failed" not in out.lower(), out[-1500:])
    finally:
        check("cadaver: graced stops with 0", g.stop() == 0, g.p.returncode)


# ---------------------------------------------------------------- bad input

PROPFIND_ALL = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def run_bad_destinations(tmp):
    srv = os.path.join(tmp, "bsrv")
    outside = os.path.join(tmp, "outside")
    os.makedirs(os.path.join(srv, "dir", "sub"))
    os.mkdir(outside)
    os.symlink(outside, os.path.join(srv, "link"))
    with open(os.path.join(srv, "f.txt"), "w") as f:
        f.write("keep me\n")
    with open(os.path.join(srv, "dir", "sub", "g.txt"), "w") as f:
        f.write("g\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", srv, "--upload-dir", srv, "--list-dirs",
               "--metrics", "/metrics", "--log-level", "error")
    base = "http://127.0.0.1:%d" % g.port
    try:
        cases = [
            ("another host", "http://example.org/f2.txt", 502),
            ("another port", "http://127.0.0.1:1/f2.txt", 502),
            ("userinfo", "http://evil@127.0.0.1:%d/f2.txt" % g.port, 400),
            ("above the root", "/../f2.txt", 400),
            ("encoded above the root", base + "/%2e%2e/f2.txt", 400),
            ("encoded slash", "/a%2Fb", 400),
            ("a hidden name", "/.htaccess", 400),
            ("a hidden folder", "/.git/config", 400),
            ("a temporary name", "/.graced-tmp.0123456789abcdef.f.txt", 400),
            ("a control byte", "/a%0Ab.txt", 400),
            ("not UTF-8", "/a%FFb.txt", 400),
            ("--metrics", "/metrics", 409),
            ("itself", "/f.txt", 403),
            ("the top", "/", 403),
            ("a relative reference", "f2.txt", 400),
            ("through a symlink out of the tree", "/link/f2.txt", 403),
        ]
        for method in ("COPY", "MOVE"):
            for why, dest, want in cases:
                st, body, r = dav(g.port, method, "/f.txt", None, {"Destination": dest})
                check("%s onto %s -> %d" % (method, why, want), st == want, (st, body[:120]))
        check("bad destinations: the source is intact, nothing outside, no hidden file made",
              open(os.path.join(srv, "f.txt")).read() == "keep me\n" and not os.listdir(outside) and
              not os.path.exists(os.path.join(srv, ".htaccess")) and
              sorted(os.listdir(srv)) == ["dir", "f.txt", "link"], sorted(os.listdir(srv)))
        st, body, r = dav(g.port, "MOVE", "/dir", None, {"Destination": "/dir/sub/x"})
        check("MOVE a folder into itself -> 403", st == 403 and os.path.isdir(os.path.join(srv, "dir")), st)
        st, body, r = dav(g.port, "COPY", "/dir", None, {"Destination": "/dir/sub/copy"})
        check("COPY a folder into itself -> 403", st == 403 and
              not os.path.exists(os.path.join(srv, "dir/sub/copy")), st)
        st, body, r = dav(g.port, "MOVE", "/dir/sub", None, {"Destination": "/dir", "Overwrite": "T"})
        check("MOVE over a folder holding the source -> 403", st == 403 and
              os.path.isfile(os.path.join(srv, "dir/sub/g.txt")), st)
        st, body, r = dav(g.port, "MOVE", "/f.txt", None, {})
        check("MOVE without Destination -> 400", st == 400, st)
        st, body, r = dav(g.port, "MOVE", "/f.txt", None, {"Destination": "/f3.txt", "Overwrite": "X"})
        check("Overwrite: X -> 400", st == 400, st)
        st, body, r = dav(g.port, "COPY", "/dir", None, {"Destination": "/d2", "Depth": "1"})
        check("COPY Depth: 1 -> 400", st == 400, st)
        st, body, r = dav(g.port, "MOVE", "/link", None, {"Destination": "/link2"})
        check("MOVE of a symbolic link -> 403, not followed", st == 403 and
              os.path.islink(os.path.join(srv, "link")), st)
        st, body, r = dav(g.port, "COPY", "/nope", None, {"Destination": "/nope2"})
        check("COPY of a missing source -> 404", st == 404, st)
        st, body, r = dav(g.port, "COPY", "/f.txt", None, {"Destination": "/no/such/dir/f"})
        check("COPY into a missing folder -> 409", st == 409, st)
        st, body, r = dav(g.port, "COPY", "/f.txt", None, {"Destination": base + "/f2.txt"})
        check("COPY to an absolute URI of this server -> 201", st == 201 and
              open(os.path.join(srv, "f2.txt")).read() == "keep me\n", st)
        st, body, r = dav(g.port, "COPY", "/f.txt", None, {"Destination": "/f2.txt", "Overwrite": "F"})
        check("COPY onto a taken name, Overwrite: F -> 412", st == 412, st)
        st, body, r = dav(g.port, "MOVE", "/f2.txt", None, {"Destination": "/f.txt", "Overwrite": "F"})
        check("MOVE onto a taken name, Overwrite: F -> 412, both kept", st == 412 and
              os.path.exists(os.path.join(srv, "f2.txt")), st)
        # MKCOL
        st, body, r = dav(g.port, "MKCOL", "/newdir", "<x/>", {"Content-Type": "text/xml"})
        check("MKCOL with a body -> 415, nothing made", st == 415 and
              not os.path.exists(os.path.join(srv, "newdir")), st)
        st, body, r = dav(g.port, "MKCOL", "/dir")
        check("MKCOL of a taken name -> 405", st == 405, st)
        st, body, r = dav(g.port, "MKCOL", "/a/b/c")
        check("MKCOL without its parent -> 409", st == 409 and not os.path.exists(os.path.join(srv, "a")), st)
        st, body, r = dav(g.port, "MKCOL", "/.hidden")
        check("MKCOL of a hidden name -> 400", st == 400 and not os.path.exists(os.path.join(srv, ".hidden")), st)
        st, body, r = dav(g.port, "MKCOL", "/link/in")
        check("MKCOL through a symbolic link -> 403", st == 403 and not os.listdir(outside), st)
    finally:
        check("bad destinations: graced stops with 0", g.stop() == 0, g.p.returncode)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def run_propfind_bombs(tmp):
    srv = os.path.join(tmp, "psrv")
    big = os.path.join(srv, "big")
    os.makedirs(big)
    name = "n" * 200
    for i in range(20000):
        open(os.path.join(big, "%s-%05d" % (name, i)), "w").close()
    for n in (".hidden", ".graced-tmp.0123456789abcdef.x"):
        open(os.path.join(big, n), "w").close()
    # under ASan freed memory waits in a quarantine instead of being reused:
    # none here, so that memory measures what is held, not what was freed
    env = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                         ":quarantine_size_mb=0").lstrip(":"))
    g = Graced("--listen", "127.0.0.1:0", "--root", srv, "--upload-dir", srv, "--list-dirs",
               "--list-max", "15000", "--log-level", "error", env=env)
    try:
        for depth in ("infinity", None):
            h = {"Depth": depth} if depth else {}
            st, body, r = dav(g.port, "PROPFIND", "/big/", PROPFIND_ALL, h)
            check("PROPFIND Depth %s -> 403 propfind-finite-depth" % (depth or "(none)"),
                  st == 403 and b"propfind-finite-depth" in body, (st, body[:200]))
        lol = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
               + "".join('<!ENTITY %s "%s">' % (chr(98 + i), ("&%s;" % chr(97 + i)) * 10) for i in range(9))
               + ']><D:propfind xmlns:D="DAV:"><D:prop><D:x>&j;</D:x></D:prop></D:propfind>')
        t0 = time.monotonic()
        st, body, r = dav(g.port, "PROPFIND", "/", lol, {"Depth": "0"})
        check("PROPFIND with entity expansion (a billion laughs) -> 400 at once",
              st == 400 and time.monotonic() - t0 < 5, (st, time.monotonic() - t0))
        deep = '<D:propfind xmlns:D="DAV:">' + "<D:x>" * 200 + "</D:x>" * 200 + "</D:propfind>"
        st, body, r = dav(g.port, "PROPFIND", "/", deep, {"Depth": "0"})
        check("PROPFIND nested 200 deep -> 400", st == 400, st)
        many = ('<D:propfind xmlns:D="DAV:"><D:prop>' + "".join("<D:p%d/>" % i for i in range(300))
                + "</D:prop></D:propfind>")
        st, body, r = dav(g.port, "PROPFIND", "/", many, {"Depth": "0"})
        check("PROPFIND naming 300 properties -> 400", st == 400, st)
        st, body, r = dav(g.port, "PROPFIND", "/", "<a>" + "x" * 70000 + "</a>", {"Depth": "0"})
        check("PROPFIND body over 64 KiB -> 413", st == 413, st)
        st, body, r = dav(g.port, "PROPFIND", "/", "<foo>", {"Depth": "0"})
        check("PROPFIND with bad XML -> 400", st == 400, st)
        # the folder is read a batch at a time: a client that reads nothing
        # holds a batch, not the answer
        before = rss_kib(g.p.pid)
        s = socket.create_connection(("127.0.0.1", g.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(("PROPFIND /big/ HTTP/1.1\r\nHost: x\r\nDepth: 1\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(PROPFIND_ALL), PROPFIND_ALL)).encode())
        time.sleep(1.5)
        grown = rss_kib(g.p.pid) - before
        st, body, r = dav(g.port, "GET", "/big/%s-00001" % name)
        check("PROPFIND of 20000 entries to a client that does not read: others served, "
              "graced grew %d KiB (< 4 MiB; the whole answer is ~20 MiB)" % grown,
              st == 200 and grown < 4096, (st, grown))
        s.close()
        # read fully: cut at --list-max, and it says so
        t0 = time.monotonic()
        st, body, r = dav(g.port, "PROPFIND", "/big/", PROPFIND_ALL, {"Depth": "1"})
        n = body.count(b"<D:response>")
        check("PROPFIND Depth 1 of 20000 entries with --list-max 15000: 207, 15000 entries, "
              "then 507 number-of-matches-within-limits (%.1f s)" % (time.monotonic() - t0),
              st == 207 and n == 15002 and b"number-of-matches-within-limits" in body and
              body.rstrip().endswith(b"</D:multistatus>"), (st, n, body[-300:]))
        check("PROPFIND: hidden and temporary names never listed",
              b".hidden" not in body and b".graced-tmp" not in body, "")
    finally:
        check("propfind bombs: graced stops with 0", g.stop() == 0, g.p.returncode)


LOCKINFO = ('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:%s/></D:lockscope>'
            '<D:locktype><D:write/></D:locktype><D:owner>%s</D:owner></D:lockinfo>')


def lock(port, path, scope="exclusive", owner="t", headers=None):
    h = {"Content-Type": "application/xml"}
    h.update(headers or {})
    st, body, r = dav(port, "LOCK", path, LOCKINFO % (scope, owner), h)
    tok = (r.getheader("Lock-Token") or "").strip("<>")
    return st, body, tok


def slow_put(port, path, total, first, gate):
    """A PUT that sends first bytes, waits for gate, then the rest."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path, total)).encode())
    s.sendall(b"x" * first)
    gate.wait(30)
    s.sendall(b"x" * (total - first))
    out = b""
    while b"\r\n\r\n" not in out:
        d = s.recv(4096)
        if not d:
            break
        out += d
    s.close()
    return out


def run_locks(tmp):
    srv = os.path.join(tmp, "lsrv")
    os.makedirs(os.path.join(srv, "coll", "in"))
    for p in ("f.txt", "coll/in/g.txt", "other.txt"):
        with open(os.path.join(srv, p), "w") as f:
            f.write("orig\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", srv, "--upload-dir", srv, "--list-dirs",
               "--workers", "2", "--dav-locks", "3", "--dav-lock-timeout", "5s", "--log-level", "error")
    try:
        st, body, tok = lock(g.port, "/f.txt")
        check("LOCK -> 200 with a token", st == 200 and tok.startswith("urn:uuid:"), (st, body))
        bad = []
        for i in range(20):  # separate connections: both workers answer some of them
            st, body, r = dav(g.port, "PUT", "/f.txt", "changed")
            if st != 423 or b"lock-token-submitted" not in body or b"/f.txt" not in body:
                bad.append((st, body[:100]))
        check("a lock is held on every worker: 20 PUTs from others -> 423 lock-token-submitted",
              not bad, bad[:3])
        for method, hdr in (("DELETE", {}), ("MOVE", {"Destination": "/moved.txt"}),
                            ("PROPPATCH", {})):
            body = ('<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="u">1</x></D:prop>'
                    '</D:set></D:propertyupdate>') if method == "PROPPATCH" else None
            st, b, r = dav(g.port, method, "/f.txt", body, hdr)
            check("%s of a file locked by someone else -> 423" % method, st == 423, (st, b[:100]))
        st, b, r = dav(g.port, "COPY", "/other.txt", None, {"Destination": "/f.txt"})
        check("COPY onto a file locked by someone else -> 423", st == 423, (st, b[:100]))
        st, b, r = dav(g.port, "POST", "/", b"--b\r\nContent-Disposition: form-data; name=\"file\"; "
                       b"filename=\"f.txt\"\r\n\r\nform\r\n--b--\r\n",
                       {"Content-Type": "multipart/form-data; boundary=b"})
        check("a form upload onto a locked file -> 423", st == 423, (st, b[:100]))
        st, b, t2 = lock(g.port, "/f.txt", "shared")
        check("a shared LOCK on an exclusive lock -> 423", st == 423, st)
        check("the locked file is untouched", open(os.path.join(srv, "f.txt")).read() == "orig\n", "")
        st, b, r = dav(g.port, "PUT", "/f.txt", "mine", {"If": "(<%s>)" % tok})
        check("PUT with the token in If -> 204", st == 204 and
              open(os.path.join(srv, "f.txt")).read() == "mine", st)
        st, b, r = dav(g.port, "PUT", "/f.txt", "x", {"If": "(<urn:uuid:00000000-0000-4000-8000-000000000000>)"})
        check("PUT with a wrong token in If -> 412", st == 412, st)
        st, b, r = dav(g.port, "PUT", "/f.txt", "x", {"If": "(<%s"})
        check("PUT with a malformed If -> 400", st == 400, st)
        st, b, r = dav(g.port, "UNLOCK", "/other.txt", None, {"Lock-Token": "<%s>" % tok})
        check("UNLOCK of another path with the token -> 409", st == 409, st)
        st, b, r = dav(g.port, "UNLOCK", "/f.txt", None, {"Lock-Token": "<%s>" % tok})
        check("UNLOCK -> 204", st == 204, st)
        st, b, r = dav(g.port, "PUT", "/f.txt", "free")
        check("after UNLOCK anyone writes -> 204", st == 204, st)
        # a depth-infinity lock on a folder: its members, its membership
        st, b, ctok = lock(g.port, "/coll/", headers={"Depth": "infinity"})
        st1, b1, r = dav(g.port, "PUT", "/coll/in/g.txt", "x")
        st2, b2, r = dav(g.port, "PUT", "/coll/new.txt", "x")
        st3, b3, r = dav(g.port, "DELETE", "/coll/in")
        st4, b4, r = dav(g.port, "MKCOL", "/coll/d")
        check("a folder locked depth infinity: PUT, new member, DELETE, MKCOL inside -> 423",
              (st1, st2, st3, st4) == (423, 423, 423, 423), (st1, st2, st3, st4))
        st, b, r = dav(g.port, "DELETE", "/coll/in", None, {"If": "</coll/> (<%s>)" % ctok})
        check("DELETE inside with the folder's token (tagged If) -> 204", st == 204, st)
        # a lock below a folder holds against deleting the folder
        os.makedirs(os.path.join(srv, "top", "sub"))
        st, b, stok = lock(g.port, "/top/sub/lk.txt")
        check("LOCK of an unmapped name -> 201, an empty file", st == 201 and
              os.path.getsize(os.path.join(srv, "top/sub/lk.txt")) == 0, st)
        st, b, r = dav(g.port, "DELETE", "/top")
        check("DELETE of a folder holding a file locked by someone else -> 423, all kept",
              st == 423 and os.path.exists(os.path.join(srv, "top/sub/lk.txt")), (st, b[:150]))
        st, b, otok = lock(g.port, "/other.txt")
        st2, b, x = lock(g.port, "/unmapped.txt")
        check("--dav-locks 3: a third lock -> 200, the fourth -> 503, nothing made",
              st == 200 and st2 == 503 and not os.path.exists(os.path.join(srv, "unmapped.txt")),
              (st, st2))
        for path, t in (("/coll/", ctok), ("/top/sub/lk.txt", stok), ("/other.txt", otok)):
            dav(g.port, "UNLOCK", path, None, {"Lock-Token": "<%s>" % t})
        st, b, r = dav(g.port, "LOCK", "/other.txt", LOCKINFO % ("exclusive", "t"),
                       {"Timeout": "Infinite, Second-4100000000"})
        otok = (r.getheader("Lock-Token") or "").strip("<>")
        check("--dav-lock-timeout 5s: Timeout: Infinite gets Second-5",
              st == 200 and b"<D:timeout>Second-5</D:timeout>" in b, (st, b[-300:]))
        st, b, r = dav(g.port, "LOCK", "/other.txt", None, {"If": "(<%s>)" % otok, "Timeout": "Second-1"})
        check("a refresh (LOCK, no body, If) -> 200 with the new timeout",
              st == 200 and b"<D:timeout>Second-1</D:timeout>" in b, (st, b[-200:]))
        t0 = time.monotonic()
        st = 423
        while st == 423 and time.monotonic() - t0 < 10:
            time.sleep(0.2)
            st, b, r = dav(g.port, "PUT", "/other.txt", "after")
        el = time.monotonic() - t0
        check("a lock ends at its timeout (1 s): then PUT -> 204 (after %.1f s)" % el,
              st == 204 and 0.5 < el < 5, (st, el))
        # DELETE of a folder with an upload in flight: the upload is kept
        os.makedirs(os.path.join(srv, "busy"))
        gate = threading.Event()
        res = {}
        th = threading.Thread(target=lambda: res.setdefault("r", slow_put(g.port, "/busy/up.bin",
                                                                          200000, 1000, gate)))
        th.start()
        t0 = time.monotonic()
        while not [n for n in os.listdir(os.path.join(srv, "busy")) if n.startswith(".graced-tmp")]:
            if time.monotonic() - t0 > 10:
                break
            time.sleep(0.05)
        st, b, r = dav(g.port, "DELETE", "/busy")
        gate.set()
        th.join(30)
        check("DELETE of a folder while an upload is stored there -> 207 with 423, the upload kept",
              st == 207 and b"423" in b and res.get("r", b"").startswith(b"HTTP/1.1 201") and
              os.path.getsize(os.path.join(srv, "busy", "up.bin")) == 200000, (st, b[:300], res))
    finally:
        check("locks: graced stops with 0", g.stop() == 0, g.p.returncode)


def run_limits_and_logins(tmp):
    srv = os.path.join(tmp, "msrv")
    os.makedirs(os.path.join(srv, "ten"))
    for i in range(10):
        open(os.path.join(srv, "ten", "f%d" % i), "w").write("x")
    open(os.path.join(srv, "p.txt"), "w").write("p")
    users = os.path.join(tmp, "musers")
    write_users(users, [("alice", "wonder land", "rw", b"$6$"), ("bob", "b0b", "r", b"$6$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", srv, "--upload-dir", srv, "--list-dirs",
               "--users-file", users, "--private", "--dav-tree-max", "5", "--dav-props-max", "200",
               "--log-level", "error")
    try:
        st, b, r = dav(g.port, "DELETE", "/ten", None, ALICE)
        check("--dav-tree-max 5: DELETE of a folder of 10 -> 403, all kept",
              st == 403 and len(os.listdir(os.path.join(srv, "ten"))) == 10, (st, b))
        st, b, r = dav(g.port, "COPY", "/ten", None, dict(ALICE, Destination="/ten2"))
        check("--dav-tree-max 5: COPY of a folder of 10 -> 403, nothing made",
              st == 403 and not os.path.exists(os.path.join(srv, "ten2")), (st, b))
        st, b, r = dav(g.port, "COPY", "/ten", None, dict(ALICE, Destination="/ten0", Depth="0"))
        check("COPY Depth 0 of a folder -> 201, the folder alone", st == 201 and
              os.listdir(os.path.join(srv, "ten0")) == [], st)
        st, b, r = dav(g.port, "MOVE", "/ten", None, dict(ALICE, Destination="/ten3"))
        check("MOVE of a folder (a rename: no count) -> 201", st == 201 and
              len(os.listdir(os.path.join(srv, "ten3"))) == 10, st)
        big = ('<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><a xmlns="u">%s</a><b xmlns="u">1</b>'
               '</D:prop></D:set></D:propertyupdate>') % ("v" * 300)
        st, b, r = dav(g.port, "PROPPATCH", "/p.txt", big, ALICE)
        check("--dav-props-max 200: a bigger PROPPATCH -> 207 with 507 and 424 (all or nothing)",
              st == 207 and b"507" in b and b"424" not in b or (st == 207 and b"507" in b), (st, b))
        st, b, r = dav(g.port, "PROPFIND", "/p.txt",
                       '<D:propfind xmlns:D="DAV:"><D:prop><b xmlns="u"/></D:prop></D:propfind>',
                       dict(ALICE, Depth="0"))
        check("... and nothing was set", st == 207 and b"404 Not Found" in b, b)
        st, b, r = dav(g.port, "PROPPATCH", "/p.txt",
                       '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>x</D:getetag>'
                       '<c xmlns="u">1</c></D:prop></D:set></D:propertyupdate>', ALICE)
        check("PROPPATCH of a live property -> 207: 403 for it, 424 for the rest",
              st == 207 and b"403 Forbidden" in b and b"424 Failed Dependency" in b, b)
        # logins
        st, b, r = dav(g.port, "PROPFIND", "/", None, {"Depth": "0"})
        check("--private: PROPFIND without a login -> 401", st == 401, st)
        st, b, r = dav(g.port, "PROPFIND", "/", None, dict(BOB, Depth="1"))
        check("a read-only user: PROPFIND -> 207", st == 207, st)
        for method, h in (("MKCOL", {}), ("MOVE", {"Destination": "/q.txt"}), ("LOCK", {}),
                          ("PROPPATCH", {}), ("COPY", {"Destination": "/q.txt"})):
            st, b, r = dav(g.port, method, "/p.txt", None, dict(BOB, **h))
            check("a read-only user: %s -> 403" % method, st == 403, st)
        st, b, r = dav(g.port, "MOVE", "/p.txt", None, dict(ALICE, Destination="/q.txt",
                                                         Origin="https://evil.example"))
        check("MOVE from a page of another site -> 403", st == 403 and
              os.path.exists(os.path.join(srv, "p.txt")), st)
        st, b, r = dav(g.port, "OPTIONS", "/", None, {})
        check("OPTIONS: DAV: 1, 2 and MS-Author-Via, no login needed",
              st == 204 and r.getheader("DAV") == "1, 2" and r.getheader("MS-Author-Via") == "DAV", st)
    finally:
        check("limits: graced stops with 0", g.stop() == 0, g.p.returncode)


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return tg.run_sections((run_bad_destinations, run_propfind_bombs, run_locks,
                            run_limits_and_logins, run_litmus, run_rclone, run_cadaver),
                           "graced-dav.")


if __name__ == "__main__":
    sys.exit(main())
