#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""What graced's page stands on (issue 19), with real clients (Python
http.client, curl, zipfile, unzip): permissions per user and per path
(--users-file rules such as /photos:rw,/:r), shown in the listing as what
that user may do. Loopback only; every graced started is stopped by PID.
Prints a line per check and a final "N passed, N failed"."""
import base64
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import GRACED, Graced, check, req, run_sections  # noqa: E402
from test_graced_ops import crypt_hash  # noqa: E402
from test_graced_web import post_form  # noqa: E402


def basic(user, password):
    return {"Authorization": "Basic " +
            base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def users_file(path, lines):
    """lines: (name, password, perms); sha512-crypt: cheap, the rules are the point"""
    with open(path, "w") as f:
        for name, password, perms in lines:
            f.write("%s:%s:%s\n" % (name, crypt_hash(password, b"$6$"), perms))


def tree(root, files):
    for name, data in files.items():
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def listing(port, path, who):
    st, body, r = req(port, "GET", path, headers={"Accept": "application/json", **who})
    try:
        return st, json.loads(body)
    except ValueError:
        return st, {"raw": body[:200]}


def run_perms(tmp):
    root = os.path.join(tmp, "perms")
    tree(root, {"pub.txt": b"p", "photos/a.jpg": b"a", "inbox/old/x.txt": b"x",
                "inbox/new.txt": b"n", "a/b/deep.txt": b"d", "a/other.txt": b"o"})
    users = os.path.join(tmp, "perms-users")
    users_file(users, [("alice", "pw", "rw"), ("bob", "pw", "r"),
                       ("carol", "pw", "/photos:rw,/:r"),
                       ("dave", "pw", "/inbox:rw,/inbox/old:-"),
                       ("erin", "pw", "/a/b:r"),
                       ("fred", "pw", "/ph%6Ftos:rw")])
    A, B, C, D, E, F = (basic(n, "pw") for n in ("alice", "bob", "carol", "dave", "erin", "fred"))

    # bad rules: one line on stderr naming the line, exit 2
    bad = os.path.join(tmp, "perms-bad")
    for rules, why in (("/photos:rwx", "permission"), ("photos:rw", "permissions must be"),
                       ("/a:r,/a:rw", "two rules"), ("/a/../b:r", "not a path"),
                       ("/a:r,", "comma"), ("/a", "PATH:r")):
        users_file(bad, [("x", "pw", rules)])
        r = subprocess.run([GRACED, "--users-file", bad], capture_output=True, text=True)
        check("users file with rules %r: exit 2 naming line 1 (%s)" % (rules, why),
              r.returncode == 2 and "line 1" in r.stderr and why in r.stderr and
              len(r.stderr.splitlines()) == 1, (r.returncode, r.stderr))

    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--users-file", users, "--list-dirs")
    try:
        for who, hdr, path, want in (
                ("alice (rw, the old form)", A, "/new/a.txt", 201),
                ("bob (r, the old form)", B, "/b.txt", 403),
                ("carol below /photos", C, "/photos/c.jpg", 201),
                ("carol in a subfolder of /photos, created", C, "/photos/2024/c.jpg", 201),
                ("carol at the top (/:r)", C, "/c.txt", 403),
                ("carol in /photos2 (not below /photos)", C, "/photos2/c.jpg", 403),
                ("dave in /inbox", D, "/inbox/d.txt", 201),
                ("dave in /inbox/old (-: the more specific rule)", D, "/inbox/old/d.txt", 403),
                ("erin (/a/b:r) anywhere", E, "/a/b/e.txt", 403),
                ("fred (/ph%6Ftos: a rule's path is decoded)", F, "/photos/f.jpg", 201)):
            st, body, r = req(g.port, "PUT", path, b"data", headers=hdr)
            check("PUT %s by %s -> %d" % (path, who, want), st == want, (st, body))
        st, body, r = req(g.port, "PUT", "/photos/../c.txt", b"data", headers=C)
        check("carol: /photos/../c.txt is not below /photos (403 or 400, never 201)",
              st in (400, 403) and not os.path.exists(os.path.join(root, "c.txt")), st)
        st, body, r = req(g.port, "DELETE", "/photos/c.jpg", headers=C)
        check("DELETE below /photos by carol -> 204", st == 204, st)
        st, body, r = req(g.port, "DELETE", "/pub.txt", headers=C)
        check("DELETE at the top by carol -> 403, the file stays",
              st == 403 and os.path.exists(os.path.join(root, "pub.txt")), st)
        st, body, r = post_form(g.port, "/photos/", [("file", "f.jpg", b"f")], headers=C)
        check("a form into /photos by carol -> 201", st == 201, (st, body))
        st, body, r = post_form(g.port, "/", [("file", "f.jpg", b"f")], headers=C)
        check("a form into / by carol -> 403", st == 403 and not os.path.exists(
            os.path.join(root, "f.jpg")), (st, body))
        st, body, r = req(g.port, "GET", "/inbox/old/x.txt")
        check("without --private reads are open whatever the rules", st == 200, st)

        # the listing says what the one who asks may do
        st, doc = listing(g.port, "/", C)
        check("listing / for carol: write false (/:r), user carol",
              st == 200 and doc.get("write") is False and doc.get("user") == "carol" and
              doc.get("upload") is False, doc)
        st, doc = listing(g.port, "/photos/", C)
        check("listing /photos/ for carol: write true", doc.get("write") is True and
              doc.get("upload") is True, doc)
        st, body, r = req(g.port, "GET", "/", headers=C)
        check("HTML listing / for carol (read-only there): no upload form",
              st == 200 and b'id="upload"' not in body, body[:300])
        st, body, r = req(g.port, "GET", "/photos/", headers=C)
        check("HTML listing /photos/ for carol: the upload form", b'id="upload"' in body)
        st, body, r = req(g.port, "GET", "/", headers=B)
        check("HTML listing for bob (r): no upload form (it would answer 403)",
              st == 200 and b'id="upload"' not in body, body[:300])
        st, doc = listing(g.port, "/", {})
        check("listing / without a login: write false, no user, login offered",
              doc.get("write") is False and doc.get("user") is None and doc.get("login") is True,
              doc)
        st, body, r = req(g.port, "GET", "/", headers=basic("carol", "wrong"))
        check("a wrong password on a public read: 401 (a login is checked when sent)",
              st == 401, st)

        # SIGHUP: new rules take effect
        users_file(users, [("carol", "pw", "/:rw")])
        g.p.send_signal(signal.SIGHUP)
        ok = False
        for _ in range(100):
            st, body, r = req(g.port, "PUT", "/hup.txt", b"data", headers=C)
            if st == 201:
                ok = True
                break
            time.sleep(0.1)
        check("SIGHUP: carol's new rule /:rw lets her write at the top", ok, st)
    finally:
        g.stop()

    users_file(users, [("carol", "pw", "/photos:rw,/:r"), ("dave", "pw", "/inbox:rw,/inbox/old:-"),
                       ("erin", "pw", "/a/b:r")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--users-file", users, "--private", "--list-dirs")
    try:
        for who, hdr, path, want in (
                ("carol (/:r)", C, "/pub.txt", 200),
                ("dave (no rule at the top)", D, "/pub.txt", 403),
                ("dave in /inbox", D, "/inbox/new.txt", 200),
                ("dave in /inbox/old (-)", D, "/inbox/old/x.txt", 403),
                ("erin below /a/b", E, "/a/b/deep.txt", 200),
                ("erin: a file beside the way (/a/other.txt)", E, "/a/other.txt", 403),
                ("erin: / is on her way to /a/b", E, "/", 200),
                ("erin: /a/ is on her way to /a/b", E, "/a/", 200),
                ("nobody", {}, "/pub.txt", 401)):
            st, body, r = req(g.port, "GET", path, headers=hdr)
            check("--private: GET %s by %s -> %d" % (path, who, want), st == want, (st, body[:100]))
        st, doc = listing(g.port, "/", E)
        names = [e["name"] for e in doc.get("entries", [])]
        check("--private: erin's listing of / shows only the way (a)", names == ["a"], names)
        st, doc = listing(g.port, "/a/", E)
        names = [e["name"] for e in doc.get("entries", [])]
        check("--private: erin's listing of /a/ shows only b", names == ["b"], names)
        st, doc = listing(g.port, "/inbox/", D)
        names = sorted(e["name"] for e in doc.get("entries", []))
        check("--private: dave's listing of /inbox/ leaves out old (-)", "old" not in names and
              "new.txt" in names, names)
    finally:
        g.stop()


def run_readonly_form(tmp):
    """issue 19: a read-only user saw the upload form, which then answered 403"""
    root = os.path.join(tmp, "roform")
    tree(root, {"f.txt": b"f"})
    users = os.path.join(tmp, "roform-users")
    users_file(users, [("alice", "pw", "rw"), ("bob", "pw", "r")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--users-file", users, "--list-dirs")
    try:
        st, body, r = req(g.port, "GET", "/", headers=basic("bob", "pw"))
        check("a read-only user (r) gets no upload form", st == 200 and b'id="upload"' not in body,
              (st, body[:200]))
        st, body, r = req(g.port, "GET", "/", headers=basic("alice", "pw"))
        check("a writer (rw) gets the upload form", st == 200 and b'id="upload"' in body, st)
    finally:
        g.stop()


def run_newcomer(tmp):
    """issue 19's first ten minutes: graced alone lists; a split --root and
    --upload-dir and a users file on plain HTTP are told at start-up"""
    here = os.path.join(tmp, "newcomer")
    tree(here, {"hello.txt": b"hi"})
    p = subprocess.Popen([GRACED, "--listen", "127.0.0.1:0"], cwd=here, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1].rstrip("/"))
        st, body, r = req(port, "GET", "/")
        check("graced alone lists the current folder (as dufs and miniserve)",
              st == 200 and b"hello.txt" in body, (st, body[:100]))
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()
    up = os.path.join(tmp, "newcomer-up")
    os.mkdir(up)
    os.mkdir(os.path.join(here, "inc"))
    for updir, want in ((up, "nothing uploaded is served back"),
                        (os.path.join(here, "inc"), "served at /inc/x, not at /x"),
                        (here, None)):
        g = Graced("--listen", "127.0.0.1:0", "--root", here, "--upload-dir", updir)
        err = ""
        try:
            st, body, r = req(g.port, "PUT", "/x.txt", b"x")
        finally:
            g.stop()
            err = g.p.stderr.read()
        if want:
            check("--upload-dir %s beside --root: a warning says where uploads go (%s)" %
                  (os.path.basename(updir), want), "warn:" in err and want in err, err)
        else:
            check("--root and --upload-dir the same: no warning", "warn:" not in err, err)
    users = os.path.join(tmp, "newcomer-users")
    users_file(users, [("u", "pw", "rw")])
    bad_log = os.path.join(tmp, "no-such-dir", "log")
    # the warning comes before the listeners open; a bad --access-log then
    # stops graced before it binds anything
    r = subprocess.run([GRACED, "--listen", "0.0.0.0:0", "--users-file", users,
                        "--access-log", bad_log], capture_output=True, text=True, timeout=30)
    check("--users-file on plain HTTP beyond loopback: warned at start-up",
          "warn:" in r.stderr and "clear text" in r.stderr and "0.0.0.0:0" in r.stderr, r.stderr)
    r = subprocess.run([GRACED, "--listen", "127.0.0.1:0", "--users-file", users,
                        "--access-log", bad_log], capture_output=True, text=True, timeout=30)
    check("--users-file on loopback only: no such warning", "clear text" not in r.stderr,
          r.stderr)


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return run_sections((run_newcomer, run_readonly_form, run_perms), "graced-page.")


if __name__ == "__main__":
    sys.exit(main())
