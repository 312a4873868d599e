#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""What graced's page stands on (issue 19), with real clients (Python
http.client, curl, zipfile, unzip): permissions per user and per path
(--users-file rules such as /photos:rw,/:r), shown in the listing as what
that user may do. Loopback only; every graced started is stopped by PID.
Prints a line per check and a final "N passed, N failed"."""
import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import GRACED, Graced, check, req, run_sections  # noqa: E402
from test_graced_ops import crypt_hash  # noqa: E402
from test_graced_web import post_form  # noqa: E402
from test_graced_fix import make_cert  # noqa: E402
import http.client  # noqa: E402
import ssl  # noqa: E402


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
        check("HTML listing / for carol (read-only there): no upload form, and the page says "
              "'may only read here' beside her name",
              st == 200 and b'id="upload"' not in body and
              b'id="may">may only read here<' in body, body[:300])
        st, body, r = req(g.port, "GET", "/photos/", headers=C)
        check("HTML listing /photos/ for carol: the upload form, and 'may upload and change "
              "files here'", b'id="upload"' in body and
              b'id="may">may upload and change files here<' in body)
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
                       ("erin", "pw", "/a/b:r"), ("gina", "pw", "/:rw,/a/b:-")])
    G = basic("gina", "pw")
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

        # A folder's DELETE, COPY and MOVE take all it holds: a rule below
        # that gives less refuses them (review: COPY /a -> /out let gina
        # read /out/b/deep.txt, her /a/b:- notwithstanding; dave's DELETE
        # /inbox/ took /inbox/old)
        port = "http://127.0.0.1:%d" % g.port
        for what, method, path, extra, gone in (
                ("gina's COPY of /a (/a/b:-)", "COPY", "/a", {"Destination": port + "/out"},
                 "out"),
                ("gina's MOVE of /a (/a/b:-)", "MOVE", "/a", {"Destination": port + "/moved"},
                 "moved"),
                ("gina's DELETE of /a/ (/a/b:-)", "DELETE", "/a/", {}, None),
                ("dave's DELETE of /inbox/ (/inbox/old:-)", "DELETE", "/inbox/", {}, None)):
            hdr = dict(G if what.startswith("gina") else D)
            hdr.update(extra)
            st, body, r = req(g.port, method, path, headers=hdr)
            check("--private: %s: 403, nothing taken" % what,
                  st == 403 and os.path.exists(os.path.join(root, "a", "b", "deep.txt")) and
                  os.path.exists(os.path.join(root, "inbox", "old", "x.txt")) and
                  (gone is None or not os.path.exists(os.path.join(root, gone))), (st, body))
        st, body, r = req(g.port, "COPY", "/photos",
                          headers=dict(G, Destination=port + "/photos2"))
        check("--private: gina's COPY of /photos (nothing below it kept from her): 201",
              st == 201 and os.path.exists(os.path.join(root, "photos2", "a.jpg")), (st, body))
        st, body, r = req(g.port, "COPY", "/photos2",
                          headers=dict(G, Destination=port + "/a", Overwrite="T"))
        check("--private: gina's COPY over /a (it would replace /a/b): 403",
              st == 403 and os.path.exists(os.path.join(root, "a", "b", "deep.txt")), (st, body))
        # PROPFIND Depth 1 shows what a listing shows
        for who, hdr, path, banned, wanted in (
                ("dave", D, "/", ["/pub.txt", "/photos/", "/a/"], ["/inbox/"]),
                ("dave", D, "/inbox/", ["/inbox/old/"], ["/inbox/new.txt"]),
                ("gina", G, "/a/", ["/a/b/"], ["/a/other.txt"])):
            st, body, r = req(g.port, "PROPFIND", path, b"", headers=dict(hdr, Depth="1"))
            hrefs = re.findall(rb"<D:href>([^<]*)</D:href>", body)
            check("--private: PROPFIND Depth 1 of %s by %s: the listing's entries, none of %s"
                  % (path, who, banned),
                  st == 207 and all(w.encode() in hrefs for w in wanted) and
                  not any(b.encode() in hrefs for b in banned), (st, hrefs))
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
    # the README's "graced in one minute" and graced.8 name every option
    # graced --help lists (issue 19: the README named 49 of 82)
    src = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", ".."))
    helptext = subprocess.run([GRACED, "--help"], capture_output=True, text=True).stdout
    opts = sorted(set(re.findall(r"^  (--[a-z0-9-]+)", helptext, re.M)))
    with open(os.path.join(src, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(src, "docs", "graced.8")) as f:
        man = f.read()
    missing = [o for o in opts if "`%s" % o not in readme]
    check("README names each of the %d options of graced --help" % len(opts),
          len(opts) > 60 and not missing, missing)
    missing = [o for o in opts if o.replace("-", "\\-") not in man]
    check("graced.8 explains each of them", not missing, missing)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def search(port, path, q, who=None):
    st, body, r = req(port, "GET", path + "?q=" + q,
                      headers={"Accept": "application/json", **(who or {})})
    try:
        return st, json.loads(body)
    except ValueError:
        return st, {"raw": body[:200]}


def run_search(tmp):
    root = os.path.join(tmp, "search")
    tree(root, {"a/report.txt": b"r", "b/c/Report-2024.pdf": b"p", "b/c/other.txt": b"o",
                "b/2024 notes.txt": b"n", ".hidden/report.txt": b"h", "b/.report": b"h",
                "caf\u00e9 report.md": b"c", "b/.graced-tmp.1.report": b"t"})
    outside = os.path.join(tmp, "search-outside")
    tree(outside, {"report-outside.txt": b"x"})
    os.symlink(outside, os.path.join(root, "link"))
    os.symlink(os.path.join(root, "a", "report.txt"), os.path.join(root, "b", "report-link.txt"))
    g = Graced("--listen", "127.0.0.1:0", "--root", root)
    try:
        st, doc = search(g.port, "/", "report")
        got = sorted(m["path"] for m in doc.get("matches", []))
        check("?q=report (JSON): every name holding the word, in any case, below the folder",
              st == 200 and got == ["a/report.txt", "b/c/Report-2024.pdf",
                                    "caf\u00e9 report.md"], (st, doc))
        check("?q=: no dot-names, temporary files or symbolic links (none followed)",
              not any(".hidden" in p or "outside" in p or "link" in p for p in got), got)
        m = [x for x in doc.get("matches", []) if x["path"] == "b/c/Report-2024.pdf"]
        check("?q=: type, size and date of each match", m and m[0]["type"] == "file" and
              m[0]["size"] == 1 and m[0]["mtime"] > 0 and doc.get("truncated") is False, m)
        st, doc = search(g.port, "/", "2024+REPORT")
        check("?q=2024+REPORT: every word must be in the name",
              [x["path"] for x in doc.get("matches", [])] == ["b/c/Report-2024.pdf"], doc)
        st, doc = search(g.port, "/b/", "report")
        check("?q= on /b/: below that folder only, paths relative to it",
              [x["path"] for x in doc.get("matches", [])] == ["c/Report-2024.pdf"], doc)
        st, doc = search(g.port, "/", "caf%C3%A9")
        check("?q= with UTF-8 (percent-encoded)", [x["path"] for x in doc.get("matches", [])] ==
              ["caf\u00e9 report.md"], doc)
        st, doc = search(g.port, "/", "c")
        check("?q=c: folders match too", any(x["path"] == "b/c" and x["type"] == "dir"
                                             for x in doc.get("matches", [])), doc)
        st, body, r = req(g.port, "GET", "/?q=report")
        check("?q= as a page: the matches linked, with the words in the search box",
              st == 200 and b'href="./b/c/Report-2024.pdf"' in body and
              b'value="report"' in body and b"3 matches" in body and
              r.getheader("Content-Security-Policy", "").startswith("default-src 'none'"),
              (st, body[-600:]))
        st, body, r = req(g.port, "GET", "/?q=a%01b")
        check("?q= with a control byte: 400", st == 400, st)
        st, body, r = req(g.port, "GET", "/a/report.txt?q=x")
        check("?q= on a file: the file", st == 200 and body == b"r", (st, body))
        st, body, r = req(g.port, "GET", "/?q=")
        check("?q= with no words: the listing", st == 200 and b"Index of" in body, st)
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--search-max", "3")
    try:
        st, doc = search(g.port, "/", "report")
        check("--search-max 3: the search stops and says so",
              doc.get("truncated") is True and doc.get("cut") == "entries" and
              doc.get("visited") == 3, doc)
        st, body, r = req(g.port, "GET", "/?q=report")
        check("--search-max: the page says it stopped", b"stopped after --search-max" in body,
              body[-400:])
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--list-max", "1")
    try:
        st, doc = search(g.port, "/", "report")
        check("--list-max 1: one match kept, and the answer says it was cut",
              len(doc.get("matches", [])) == 1 and doc.get("cut") == "matches", doc)
    finally:
        g.stop()


def many_files(root, n, per=1000):
    """n empty files in folders of per: the tree for zip64 and the time bound"""
    for d in range((n + per - 1) // per):
        sub = os.path.join(root, "d%03d" % d)
        os.makedirs(sub, exist_ok=True)
        for i in range(min(per, n - d * per)):
            open(os.path.join(sub, "f%04d" % i), "wb").close()


def get_zip(port, path, who=None):
    st, body, r = req(port, "GET", path + "?zip", headers=who or {})
    return st, body, r


def run_zip(tmp):
    root = os.path.join(tmp, "zip")
    files = {"top.txt": b"top\n", "caf\u00e9/cr\u00e8me br\u00fbl\u00e9e.txt": b"sweet",
             "a/b/deep.bin": os.urandom(300000), "a/empty.txt": b"", ".hidden/x": b"h",
             "a/.dot": b"d", "a/.graced-tmp.1.x": b"t"}
    tree(root, files)
    os.makedirs(os.path.join(root, "emptydir"))
    os.symlink("/etc", os.path.join(root, "etc-link"))
    os.symlink("top.txt", os.path.join(root, "top-link.txt"))
    big = os.path.join(root, "big", "big.bin")
    os.makedirs(os.path.dirname(big))
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 20) * 48)  # 48 MiB, not held by graced while sent
    want = {n: d for n, d in files.items() if not n.startswith(".") and "/." not in n}
    g = Graced("--listen", "127.0.0.1:0", "--root", root)
    try:
        st, body, r = get_zip(g.port, "/a/")
        ok = st == 200 and r.getheader("Content-Type") == "application/zip"
        check("?zip: 200 application/zip, streamed (chunked)", ok and
              r.getheader("Transfer-Encoding") == "chunked", (st, r.getheaders()))
        check("?zip: Content-Disposition names the folder",
              'filename="a.zip"' in (r.getheader("Content-Disposition") or ""),
              r.getheader("Content-Disposition"))
        z = zipfile.ZipFile(io.BytesIO(body))
        check("?zip of /a/: python's zipfile reads it, CRCs right (testzip)",
              z.testzip() is None and sorted(z.namelist()) ==
              ["b/", "b/deep.bin", "empty.txt"], z.namelist())
        check("?zip: contents byte for byte", z.read("b/deep.bin") == files["a/b/deep.bin"] and
              z.read("empty.txt") == b"")
        st, body, r = get_zip(g.port, "/")
        path = os.path.join(tmp, "whole.zip")
        with open(path, "wb") as f:
            f.write(body)
        z = zipfile.ZipFile(path)
        names = set(z.namelist())
        check("?zip of /: every file and folder a listing shows; no dot-names, temporary "
              "files or symbolic links",
              names == set(want) | {"a/", "a/b/", "caf\u00e9/", "emptydir/", "big/",
                                    "big/big.bin"}, sorted(names))
        check("?zip: UTF-8 names (flag bit 11)",
              all(i.flag_bits & 0x800 for i in z.infolist()), [i.flag_bits for i in z.infolist()])
        check("?zip: files after a data descriptor (bit 3), CRC computed as they went",
              all(i.flag_bits & 0x8 for i in z.infolist() if not i.is_dir()))
        check("?zip: all contents byte for byte", all(z.read(n) == d for n, d in want.items()) and
              z.testzip() is None)
        u = subprocess.run(["unzip", "-tq", path], capture_output=True, text=True, timeout=120)
        check("?zip: unzip -t finds no error", u.returncode == 0 and "No errors" in u.stdout,
              (u.returncode, u.stdout, u.stderr))
        st, body, r = req(g.port, "HEAD", "/?zip")
        check("HEAD ?zip: 200, the headers only", st == 200 and body == b"" and
              r.getheader("Content-Type") == "application/zip", (st, r.getheaders()))
        st, body, r = get_zip(g.port, "/top.txt")
        check("?zip on a file: the file", st == 200 and body == b"top\n", st)

        # a slow reader: graced makes the zip at the reader's pace (no 48 MiB
        # queued), and a reader that leaves costs nothing after
        base_rss, base_fds = rss_kib(g.p.pid), nfds(g.p.pid)
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /big/?zip HTTP/1.1\r\nHost: t\r\n\r\n")
        got = s.recv(65536)
        time.sleep(1.5)
        grown = rss_kib(g.p.pid) - base_rss
        check("?zip to a reader that stops: graced holds a bounded piece, not the file "
              "(RSS grew %d KiB for a 48 MiB file)" % grown, got.startswith(b"HTTP/1.1 200") and
              grown < 8 * 1024, grown)
        n = len(got)
        s.settimeout(30)
        while n < 2 * 1024 * 1024:
            d = s.recv(65536)
            if not d:
                break
            n += len(d)
        check("?zip: the reader reads on, the zip goes on (2 MiB read)", n >= 2 * 1024 * 1024, n)
        s.close()
        ok = False
        for _ in range(100):
            if nfds(g.p.pid) <= base_fds:
                ok = True
                break
            time.sleep(0.05)
        check("?zip: a reader that leaves midway: its file and temporary file closed",
              ok, (nfds(g.p.pid), base_fds))
        st, body, r = req(g.port, "GET", "/top.txt")
        check("after a zip cut short graced serves on", st == 200, st)
    finally:
        g.stop()

    # bounds: answered before anything is sent, with the bound in the answer
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--zip-max-files", "3")
    try:
        st, body, r = get_zip(g.port, "/")
        check("--zip-max-files 3: a bigger folder is 409 before anything is sent, the bound "
              "named", st == 409 and b"--zip-max-files" in body and b"more than 3" in body and
              r.getheader("Content-Type", "").startswith("text/plain"), (st, body))
        st, body, r = get_zip(g.port, "/a/b/")
        check("--zip-max-files 3: a folder within it still zips", st == 200 and
              zipfile.ZipFile(io.BytesIO(body)).namelist() == ["deep.bin"], st)
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--zip-max-size", "100K")
    try:
        st, body, r = get_zip(g.port, "/a/")
        check("--zip-max-size 100K: 300 KB of files is 409, the bound named",
              st == 409 and b"--zip-max-size" in body, (st, body))
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--zip-max-files", "0")
    try:
        st, body, r = get_zip(g.port, "/")
        check("--zip-max-files 0: no zips (403)", st == 403, st)
    finally:
        g.stop()

    # permissions: only what the user may read
    users = os.path.join(tmp, "zip-users")
    users_file(users, [("erin", "pw", "/a/b:r")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--users-file", users, "--private")
    try:
        st, body, r = get_zip(g.port, "/", basic("erin", "pw"))
        names = sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) if st == 200 else st
        check("--private: erin's zip of / holds only the way to /a/b and what is below it",
              names == ["a/", "a/b/", "a/b/deep.bin"], names)
        st, doc = search(g.port, "/", "e", basic("erin", "pw"))
        check("--private: erin's search sees only below /a/b",
              [x["path"] for x in doc.get("matches", [])] == ["a/b/deep.bin"], doc)
    finally:
        g.stop()


def run_zip64(tmp):
    """more than 65535 entries: zip64 end records, read by zipfile and unzip;
    the same tree bounds a search in time (~10 s)"""
    root = os.path.join(tmp, "zip64")
    many_files(root, 66000)
    g = Graced("--listen", "127.0.0.1:0", "--root", root)
    try:
        st, body, r = get_zip(g.port, "/")
        path = os.path.join(tmp, "zip64.zip")
        with open(path, "wb") as f:
            f.write(body)
        check("zip of 66066 entries: 200 with the zip64 end records",
              st == 200 and b"PK\x06\x06" in body[-200:] and b"PK\x06\x07" in body[-200:],
              (st, len(body)))
        body = None
        z = zipfile.ZipFile(path)
        check("zip64: python's zipfile reads 66066 entries, CRCs right",
              len(z.infolist()) == 66066 and z.testzip() is None, len(z.infolist()))
        u = subprocess.run(["unzip", "-tq", path], capture_output=True, text=True, timeout=300)
        check("zip64: unzip -t finds no error", u.returncode == 0 and "No errors" in u.stdout,
              (u.returncode, u.stdout[-300:], u.stderr[-300:]))
    finally:
        g.stop()
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--search-time", "1ms")
    try:
        st, doc = search(g.port, "/", "f0001")
        check("--search-time 1ms on 66066 entries: stops early and says so",
              doc.get("cut") == "time" and 0 < doc.get("visited", 0) < 66066, doc)
    finally:
        g.stop()
    if os.environ.get("GRACED_TEST_ZIP_BIG"):
        big = os.path.join(tmp, "zipbig")
        os.makedirs(big)
        with open(os.path.join(big, "sparse.bin"), "wb") as f:
            f.truncate((4 << 30) + 1)
        with open(os.path.join(big, "after.txt"), "wb") as f:
            f.write(b"after the big one")
        g = Graced("--listen", "127.0.0.1:0", "--root", big)
        try:
            path = os.path.join(tmp, "big.zip")
            r = subprocess.run(["curl", "-sS", "-o", path, "-w", "%{http_code}",
                                "http://127.0.0.1:%d/?zip" % g.port], capture_output=True,
                               text=True, timeout=600)
            z = zipfile.ZipFile(path)
            sizes = {i.filename: i.file_size for i in z.infolist()}
            check("GRACED_TEST_ZIP_BIG: a 4 GiB + 1 file zips (zip64 sizes and offsets)",
                  r.stdout == "200" and sizes == {"sparse.bin": (4 << 30) + 1, "after.txt": 17} and
                  z.read("after.txt") == b"after the big one", (r.stdout, sizes))
            u = subprocess.run(["unzip", "-tq", path], capture_output=True, text=True, timeout=600)
            check("GRACED_TEST_ZIP_BIG: unzip -t finds no error", u.returncode == 0, u.stdout)
        finally:
            g.stop()


NAV = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": "text/html"}


def form_body(**fields):
    from urllib.parse import urlencode
    return urlencode(fields).encode()


def login(port, path="/", user="alice", password="pw", headers=None):
    st, body, r = req(port, "POST", path + "?login", form_body(user=user, password=password),
                      {"Content-Type": "application/x-www-form-urlencoded", **NAV,
                       **(headers or {})})
    cookie = None
    for k, v in r.getheaders():
        if k.lower() == "set-cookie" and v.startswith("graced_session="):
            cookie = v
    return st, body, r, cookie


def cookie_hdr(set_cookie):
    return {"Cookie": set_cookie.split(";")[0]}


def on_every_worker(port, path, headers, want, n=12):
    """n new connections (SO_REUSEPORT spreads them over the workers): the
    statuses seen"""
    seen = set()
    for _ in range(n):
        st, body, r = req(port, "GET", path, headers=headers)
        seen.add(st)
    return seen == {want}, seen


def run_login(tmp):
    root = os.path.join(tmp, "login")
    tree(root, {"a.txt": b"a", "photos/p.jpg": b"p"})
    users = os.path.join(tmp, "login-users")
    users_file(users, [("alice", "pw", "rw"), ("bob", "pw", "/photos:r")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--users-file", users, "--private", "--workers", "2")
    try:
        st, body, r = req(g.port, "GET", "/", headers=NAV)
        check("--private, a browser's page load without a login: 401 with the login page "
              "(a form), no Basic challenge (no browser prompt)",
              st == 401 and b'action="?login"' in body and b'name="password"' in body and
              r.getheader("WWW-Authenticate", "").startswith("Cookie") and
              "Basic" not in r.getheader("WWW-Authenticate", "") and
              r.getheader("Content-Type", "").startswith("text/html"), (st, r.getheaders()))
        st, body, r = req(g.port, "GET", "/", headers={"Sec-Fetch-Mode": "cors"})
        check("a browser's script without a login: 401, a Cookie challenge, a short text",
              st == 401 and r.getheader("WWW-Authenticate", "").startswith("Cookie") and
              r.getheader("Content-Type", "").startswith("text/plain"), (st, r.getheaders()))
        st, body, r = req(g.port, "GET", "/")
        check("a client that is not a browser: Basic, as before",
              st == 401 and r.getheader("WWW-Authenticate", "").startswith("Basic"), st)
        st, body, r = req(g.port, "GET", "/photos/?login", headers=NAV)
        check("GET ?login: the login page (200)", st == 200 and b'name="user"' in body, st)
        st, body, r, c = login(g.port, password="wrong")
        check("a wrong password on the page: 401, the login page says so, no cookie",
              st == 401 and b"Wrong user or password" in body and c is None, (st, body[-300:]))
        st, body, r, c = login(g.port, headers={"Origin": "http://evil.example"})
        check("a login posted from another site's page: 403, no cookie", st == 403 and c is None,
              st)
        st, body, r, c = login(g.port, "/photos/")
        check("the page's login: 303 back to the folder, a session cookie HttpOnly, "
              "SameSite=Strict, Path=/ (no Secure over plain HTTP)",
              st == 303 and r.getheader("Location") == "/photos/" and c and
              "HttpOnly" in c and "SameSite=Strict" in c and "Path=/" in c and
              "Secure" not in c, (st, r.getheaders()))
        alice = cookie_hdr(c)
        ok, seen = on_every_worker(g.port, "/", alice, 200)
        check("the session works on every worker (12 new connections)", ok, seen)
        st, body, r = req(g.port, "GET", "/", headers=alice)
        check("logged in: the page names the user, offers a logout, has the upload form",
              b'class="user"' in body and b">alice<" in body and b'id="logout"' in body and
              b'id="upload"' in body, body[:200])
        st, body, r = req(g.port, "PUT", "/new.txt", b"n", headers=alice)
        check("a PUT with the session cookie: 201", st == 201, st)
        st, body, r = req(g.port, "PUT", "/evil.txt", b"n",
                          headers={**alice, "Origin": "http://evil.example"})
        check("a PUT with the cookie from another site's page: 403", st == 403, st)
        st, body, r = req(g.port, "POST", "/photos/?logout", b"",
                          headers={**alice, "Origin": "http://evil.example"})
        check("a logout posted from another site's page: 403 (the session stays)",
              st == 403 and req(g.port, "GET", "/", headers=alice)[0] == 200, st)
        st, body, r = req(g.port, "POST", "/photos/?logout", b"", headers=alice)
        sc = r.getheader("Set-Cookie", "")
        check("logout: 303 back, the cookie cleared (Max-Age=0)",
              st == 303 and r.getheader("Location") == "/photos/" and
              sc.startswith("graced_session=;") and "Max-Age=0" in sc, (st, r.getheaders()))
        ok, seen = on_every_worker(g.port, "/", alice, 401)
        check("after logout the old cookie is refused by every worker", ok, seen)

        st, body, r, c = login(g.port, user="bob")
        bob = cookie_hdr(c)
        st, body, r = req(g.port, "GET", "/photos/", headers=bob)
        st2, body2, r2 = req(g.port, "GET", "/a.txt", headers=bob)
        check("a session user's rules apply (bob: /photos:r)", st == 200 and st2 == 403,
              (st, st2))
        st, body, r, c = login(g.port)
        alice = cookie_hdr(c)
        with open(users) as f:  # bob's line as it was: only alice's password changes
            bob_line = [ln for ln in f if ln.startswith("bob:")][0]
        with open(users, "w") as f:
            f.write("alice:%s:rw\n%s" % (crypt_hash("new pw", b"$6$"), bob_line))
        g.p.send_signal(signal.SIGHUP)
        ok = False
        for _ in range(100):
            ok, seen = on_every_worker(g.port, "/", alice, 401, n=6)
            if ok:
                break
            time.sleep(0.1)
        check("a changed password (SIGHUP) ends that user's sessions", ok, seen)
        ok, seen = on_every_worker(g.port, "/photos/", bob, 200, n=6)
        check("... and not the others'", ok, seen)
    finally:
        g.stop()

    # bounds: --max-sessions, --session-time (used all along, it still ends)
    users_file(users, [("alice", "pw", "rw")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--users-file", users, "--private",
               "--max-sessions", "2", "--session-time", "2s")
    try:
        cookies = [cookie_hdr(login(g.port)[3]) for _ in range(3)]
        got = [req(g.port, "GET", "/", headers=c)[0] for c in cookies]
        check("--max-sessions 2: a third login ends the oldest", got == [401, 200, 200], got)
        t0 = time.monotonic()
        last = 200
        while time.monotonic() - t0 < 6 and last == 200:
            last = req(g.port, "GET", "/", headers=cookies[2])[0]
            time.sleep(0.2)
        check("--session-time 2s: a session in use every 0.2 s still ends (%.1f s)" %
              (time.monotonic() - t0), last == 401 and time.monotonic() - t0 >= 1.0, last)
    finally:
        g.stop()

    # over TLS the cookie is Secure
    crt, key = make_cert(tmp)
    g = Graced("--tls-listen", "127.0.0.1:0", "--tls-cert", crt, "--tls-key", key,
               "--root", root, "--users-file", users)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", g.port, context=ctx, timeout=30)
        c.request("POST", "/?login", form_body(user="alice", password="pw"),
                  {"Content-Type": "application/x-www-form-urlencoded", **NAV})
        r = c.getresponse()
        r.read()
        sc = r.getheader("Set-Cookie", "")
        check("over HTTPS the session cookie is Secure", r.status == 303 and "; Secure" in sc,
              (r.status, sc))
        c.close()
    finally:
        g.stop()
    # a public site: the page shows who is logged in
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--upload-dir", root,
               "--users-file", users)
    try:
        st, body, r = req(g.port, "GET", "/", headers=NAV)
        check("public reads: the page offers a login, no upload form for nobody",
              st == 200 and b'id="login"' in body and b'id="upload"' not in body, st)
        st, body, r, c = login(g.port)
        st, body, r = req(g.port, "GET", "/", headers=cookie_hdr(c))
        check("public reads, logged in on the page: the user, the upload form",
              b">alice<" in body and b'id="upload"' in body, body[:100])
    finally:
        g.stop()


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return run_sections((run_newcomer, run_readonly_form, run_perms, run_login, run_search, run_zip,
                         run_zip64), "graced-page.")


if __name__ == "__main__":
    sys.exit(main())
