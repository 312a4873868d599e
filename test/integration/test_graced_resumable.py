#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Resumable uploads (issue 19): tus 1.0 and draft-ietf-httpbis-resumable-upload-05.

- tus-js-client (test/tus, node) uploads 20 MB, is cut off at 40% mid-PATCH
  (its abort(): the connection dropped), the server is asked what it kept
  (offset == bytes on disk == the first 40%, the target not there yet),
  then the same upload starts again: HEAD, one PATCH from that offset,
  byte-exact; with the tus protocol, ietf-draft-05 and ietf-draft-03;
  again over TLS with --users-file (its login, another user's 404);
- every refusal over raw HTTP: 412 (Tus-Resumable), 400 (missing or bad
  headers), 413 before a byte (Upload-Length or a PATCH over the limit),
  415, 409 (a wrong offset; the draft's problem type), 404 (an unknown id,
  another user's), 410 (expired), 423 (a PATCH or DELETE while another
  request writes), names sanitised as a form's, --metrics' path 409,
  If-None-Match at the creation and again at the final rename;
- a PATCH dropped mid-body (FIN: every byte sent is kept; RST: what
  reached graced, no more, no less) tells an offset that is the file on
  disk, and the rest goes on from it;
- graced killed (SIGKILL) and stopped (SIGTERM) mid-PATCH, then started
  again: the upload goes on; --workers 2 takes an upload's requests on
  either worker;
- the IETF draft's upgrade of a plain PUT (104 with the upload's URL
  before the body, the PUT cut off, then HEAD and PATCH), and a PUT of an
  unknown interop version left a plain PUT;
- --upload-expiry: expired uploads answered 410 then swept, one being
  written (its lock held) never, also by another instance; leftovers of a
  crash swept; /metrics counts it all;
- a 4 MiB disk (tmpfs, root): 507 at the creation of 8 MiB, 507 to a PATCH
  once the disk is full (the bytes before kept), then the rest;
- the TARGET's rules and locks, as a PUT's: a per-path rule on the file
  (403 at the creation), a right withdrawn by SIGHUP before or during the
  last PATCH (403, the bytes kept, stored once allowed), a WebDAV lock on
  the file or its folder at the creation and before or during the last
  PATCH (423; the token in If lets it through; unlocked, a HEAD stores it).

Needs root for the small disk (fails, not skips, without it). Loopback
only; every process started here is stopped by PID. ~12 s."""
import base64
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import (  # noqa: E402
    BUILD, GRACED, MiB, Graced, check, procs, run_sections, wait_for)
from test_graced_ops import basic, write_users  # noqa: E402
from test_graced_fix import make_cert  # noqa: E402

SRC = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TUS_DIR = os.path.abspath(os.path.join(SRC, "test", "tus"))
CLIENT = os.path.join(TUS_DIR, "tus_client.mjs")
PARTIAL = ".graced-tmp.uploads"
TUS = {"Tus-Resumable": "1.0.0"}
IETF = {"Upload-Draft-Interop-Version": "6"}
OCTETS = "application/offset+octet-stream"


def meta(name):
    return "filename " + base64.b64encode(name.encode()).decode()


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Conn:
    """http.client on plain HTTP or TLS (ca: the certificate to trust)."""
    def __init__(self, port, ca=None):
        self.port, self.ca = port, ca

    def req(self, method, path, body=None, headers=None):
        if self.ca:
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.check_hostname = False
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), r
        finally:
            c.close()


def create(c, folder, length, name, extra=None, body=None):
    h = dict(TUS, **{"Upload-Metadata": meta(name)})
    if length is None:
        h["Upload-Defer-Length"] = "1"
    else:
        h["Upload-Length"] = str(length)
    if body:
        h["Content-Type"] = OCTETS
    h.update(extra or {})
    st, b, r = c.req("POST", folder, body=body, headers=h)
    return st, r.getheader("Location"), r


def patch(c, url, offset, body, extra=None, proto=TUS, ctype=OCTETS):
    h = dict(proto, **{"Upload-Offset": str(offset), "Content-Type": ctype})
    h.update(extra or {})
    return c.req("PATCH", url, body=body, headers=h)


def offset_of(c, url, extra=None, proto=TUS):
    st, _, r = c.req("HEAD", url, headers=dict(proto, **(extra or {})))
    return st, int(r.getheader("Upload-Offset", "-1")), r


def data_file(up, url):
    return os.path.join(up, PARTIAL, url.rsplit("/", 1)[1])


def on_disk(up, url):
    try:
        with open(data_file(up, url), "rb") as f:
            return f.read()
    except OSError:
        return None


def unlocked(up, url):
    """Nobody writes the upload now: its data file's lock is free (the
    request that held it has ended and let it go), or the file is gone."""
    try:
        fd = os.open(data_file(up, url), os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def raw_open(port, head):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(head.encode() if isinstance(head, str) else head)
    return s


def read_responses(s, final_only=False, timeout=30):
    """Every response on s until a final one (status >= 200) with its body:
    a list of (status, headers (lower-case names), body)."""
    s.settimeout(timeout)
    buf, out = b"", []
    while True:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return out
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0")) if status >= 200 else 0
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        out.append((status, hdrs, buf[:n]))
        buf = buf[n:]
        if status >= 200:
            return out


def metrics(port):
    st, b, _ = Conn(port).req("GET", "/metrics")
    vals = {}
    for line in b.decode().splitlines():
        m = re.match(r"(graced_resumable_\w+) (\d+)$", line)
        if m:
            vals[m.group(1)] = int(m.group(2))
    return vals


def node_ready():
    """node and tus-js-client (./setup.sh: npm ci in test/tus)."""
    if shutil.which("node") and os.path.isfile(os.path.join(TUS_DIR, "node_modules", "tus-js-client",
                                                            "package.json")):
        return True
    check("tus-js-client in node (missing: ./setup.sh installs it)", not os.environ.get("CI"))
    return False


# ---------------------------------------------------------------- tus-js-client

def tus_js(port, up, folder, protocol, data, name, headers=None, ca=None, scheme="http", conn=None,
           auth=None):
    """One tus-js-client upload of data, cut off at 40% and resumed; the
    checks of what graced kept in between."""
    src = os.path.join(up, "..", "src-" + name)
    with open(src, "wb") as f:
        f.write(data)
    cfg = {"endpoint": "%s://127.0.0.1:%d%s" % (scheme, port, folder), "file": src, "name": name,
           "protocol": protocol, "pauseAt": 0.4, "headers": headers or {}}
    if ca:
        cfg["ca"] = ca
    p = subprocess.Popen(["node", CLIENT, json.dumps(cfg)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    procs.append(p)
    proto = TUS if protocol == "tus-v1" else {"Upload-Draft-Interop-Version":
                                              "6" if protocol == "ietf-draft-05" else "5"}
    lines = []
    tag = "%s: " % protocol

    def line():
        l = p.stdout.readline()
        lines.append(l)
        return l

    try:
        l = line()
        while l and not l.startswith("PAUSED") and not l.startswith("END"):
            l = line()
        check(tag + "the client paused at 40% of its PATCH", l.startswith("PAUSED"), lines[-3:])
        if not l.startswith("PAUSED"):
            return
        sent, url = int(l.split()[1]), l.split()[2]
        path = url.split("127.0.0.1:%d" % port, 1)[1]
        # what is handed to the request reaches the file while it is held
        # (over TLS the last MiB may wait in memory for more)
        check(tag + "graced has the 40% on disk while the PATCH is held",
              wait_for(lambda: len(on_disk(up, path) or b"") >= sent - (MiB if ca else 0)),
              len(on_disk(up, path) or b""))
        before = len(on_disk(up, path) or b"")
        p.stdin.write("ABORT\n")
        l = line()
        check(tag + "tus-js-client aborted the PATCH (connection dropped)", l.startswith("ABORTED"), l)
        check(tag + "graced ends that request and lets the upload go", wait_for(lambda: unlocked(up, path)))
        c = conn or Conn(port)
        st, off, r = offset_of(c, path, dict(auth or {}), proto)
        kept = on_disk(up, path)
        # node's abort() resets the connection: over TLS the bytes still in
        # graced's socket buffer (not yet read) are the kernel's to drop
        check(tag + "HEAD: the offset is the bytes kept on disk, the first 40%" +
              (" (what reached graced)" if ca else ""),
              st in (200, 204) and off == len(kept or b"") and kept == data[:off] and
              (before <= off <= sent if ca else off == sent), (st, off, sent, len(kept or b"")))
        check(tag + "nothing under the name yet", not os.path.exists(os.path.join(up, folder.strip("/"), name)))
        p.stdin.write("GO\n")
        while l and not l.startswith("END"):
            l = line()
        check(tag + "the resumed upload succeeds", l.startswith("END DONE"), lines[-4:])
        reqs = [json.loads(x[4:]) for x in lines if x.startswith("REQ ")]
        after = reqs[[i for i, q in enumerate(reqs) if q["method"] == "PATCH"][0] + 1:]
        heads = [q for q in after if q["method"] == "HEAD"]
        patches = [q for q in after if q["method"] == "PATCH"]
        check(tag + "it resumed with HEAD, then PATCH from the server's offset",
              heads and patches and all(q["offset"] == str(off) for q in patches), after)
        with open(os.path.join(up, folder.strip("/"), name), "rb") as f:
            got = f.read()
        check(tag + "stored byte-exact", sha(got) == sha(data), (len(got), len(data)))
        check(tag + "no data file left, only the completed upload's info",
              not os.path.exists(data_file(up, path)) and os.path.exists(data_file(up, path) + ".info"))
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()


def run_tus_js(tmp):
    if not node_ready():
        return
    up = os.path.join(tmp, "tusjs")
    os.makedirs(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--metrics", "/metrics")
    try:
        data = os.urandom(20 * 1000 * 1000)
        for protocol in ("tus-v1", "ietf-draft-05", "ietf-draft-03"):
            tus_js(g.port, up, "/in/", protocol, data, protocol + ".bin")
        m = metrics(g.port)
        check("metrics: 3 created, 3 completed, the bytes appended",
              m.get("graced_resumable_created_total") == 3 and
              m.get("graced_resumable_completed_total") == 3 and
              m.get("graced_resumable_bytes_total", 0) >= 3 * len(data), m)
    finally:
        check("graced stops cleanly", g.stop() == 0, g.p.returncode)


def run_tls_users(tmp):
    """Over TLS with --users-file: the client's login owns its upload."""
    if not node_ready():
        return
    d = os.path.join(tmp, "tlsusers")
    up = os.path.join(d, "up")
    os.makedirs(up)
    crt, key = make_cert(d)
    users = os.path.join(d, "users")
    write_users(users, [("alice", "a1", "rw", b"$6$"), ("bob", "b2", "rw", b"$6$"),
                        ("carol", "c3", "r", b"$6$")])
    g = Graced("--tls-listen", "127.0.0.1:0", "--tls-cert", crt, "--tls-key", key, "--root", up,
               "--upload-dir", up, "--users-file", users)
    c = Conn(g.port, ca=crt)
    alice, bob, carol = basic("alice", "a1"), basic("bob", "b2"), basic("carol", "c3")
    try:
        data = os.urandom(6 * 1000 * 1000)
        for protocol in ("tus-v1", "ietf-draft-05"):
            tus_js(g.port, up, "/sec/", protocol, data, "tls-" + protocol, headers=alice, ca=crt,
                   scheme="https", conn=c, auth=alice)
        # refusals of the login come before the body: 401 to a client that
        # sent only the headers of an 8 MiB creation and of a PATCH
        for what, head in (("a creation with its body", "POST /sec/ HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n"
                            "Upload-Length: 8388608\r\nUpload-Metadata: %s\r\nContent-Type: %s\r\n"
                            % (meta("x"), OCTETS)),
                           ("a PATCH", "PATCH /%s/%s HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n"
                            "Upload-Offset: 0\r\nContent-Type: %s\r\n" % (PARTIAL, "a" * 32, OCTETS))):
            ctx = ssl.create_default_context(cafile=crt)
            ctx.check_hostname = False
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", g.port), timeout=30))
            s.sendall((head + "Host: x\r\nContent-Length: 8388608\r\n\r\n").encode())
            res = read_responses(s)
            s.close()
            check("TLS, no login: 401 to %s before any body byte" % what,
                  res and res[-1][0] == 401 and "www-authenticate" in res[-1][1], res)
        st, loc, _ = create(c, "/sec/", 1000, "owned.bin", alice)
        check("TLS: alice makes an upload", st == 201 and loc, st)
        st, _, _ = patch(c, loc, 0, b"a" * 400, alice)
        check("alice appends", st == 204, st)
        st, _, _ = c.req("HEAD", loc, headers=dict(TUS, **bob))
        check("bob may not see alice's upload: 404", st == 404, st)
        st, _, _ = patch(c, loc, 400, b"b" * 100, bob)
        check("bob may not append to it: 404", st == 404, st)
        st, _, _ = c.req("DELETE", loc, headers=dict(TUS, **bob))
        check("bob may not cancel it: 404", st == 404, st)
        st, _, _ = c.req("HEAD", loc, headers=dict(TUS, **carol))
        check("a read-only user: 403", st == 403, st)
        st, _, _ = c.req("HEAD", loc, headers=TUS)
        check("no login: 401", st == 401, st)
        st, off, _ = offset_of(c, loc, alice)
        check("alice's upload is as she left it", st == 200 and off == 400, (st, off))
        st, _, r = patch(c, loc, 400, b"c" * 600, alice)
        check("alice completes it", st == 204 and r.getheader("Upload-Offset") == "1000", st)
        with open(os.path.join(up, "sec", "owned.bin"), "rb") as f:
            check("stored", f.read() == b"a" * 400 + b"c" * 600)
        # a PATCH over TLS dropped mid-body keeps what arrived
        st, loc, _ = create(c, "/sec/", 4 * MiB, "tlsdrop.bin", alice)
        body = os.urandom(4 * MiB)
        ctx = ssl.create_default_context(cafile=crt)
        ctx.check_hostname = False
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", g.port), timeout=30))
        hdr = "".join("%s: %s\r\n" % kv for kv in alice.items())
        s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                   "Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (loc, OCTETS, len(body), hdr)).encode())
        s.sendall(body[:MiB + 12345])
        wait_for(lambda: len(on_disk(up, loc) or b"") >= MiB)  # the rest may wait in memory
        # the server's TLS 1.3 session tickets, unread, would make the close
        # a reset (which may cut what graced has not read yet): read them,
        # so that the drop is a FIN after every byte sent
        s.setblocking(False)
        try:
            s.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        s.close()
        wait_for(lambda: unlocked(up, loc))
        st, off, _ = offset_of(c, loc, alice)
        kept = on_disk(up, loc)
        check("TLS: a PATCH dropped mid-body: offset == bytes on disk == what was sent",
              off == MiB + 12345 and kept == body[:off], (off, len(kept or b"")))
    finally:
        check("graced (TLS, users) stops cleanly", g.stop() == 0, g.p.returncode)


# ---------------------------------------------------------------- refusals

def run_errors(tmp):
    up = os.path.join(tmp, "errors")
    os.makedirs(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--max-body-size", "1M",
               "--metrics", "/metrics", "--cors-write", "http://app.test")
    c = Conn(g.port)
    try:
        st, _, r = c.req("OPTIONS", "/", headers={})
        check("OPTIONS: Tus-Version, Tus-Extension, Tus-Max-Size, Upload-Limit",
              st == 204 and r.getheader("Tus-Version") == "1.0.0" and
              "creation-with-upload" in r.getheader("Tus-Extension", "") and
              "termination" in r.getheader("Tus-Extension", "") and
              "expiration" in r.getheader("Tus-Extension", "") and
              r.getheader("Tus-Max-Size") == str(MiB) and
              r.getheader("Upload-Limit", "").startswith("max-size=%d" % MiB), r.getheaders())
        check("no folder for uploads before the first", not os.path.exists(os.path.join(up, PARTIAL)))
        st, _, r = c.req("POST", "/d/", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "5",
                                                 "Upload-Metadata": meta("x")})
        check("another tus version: 412 with Tus-Version", st == 412 and
              r.getheader("Tus-Version") == "1.0.0", st)
        st, _, _ = c.req("POST", "/d/", headers=dict(TUS, **{"Upload-Metadata": meta("x")}))
        check("no Upload-Length nor Upload-Defer-Length: 400", st == 400, st)
        st, _, _ = c.req("POST", "/d/", headers=dict(TUS, **{"Upload-Length": "-3",
                                                             "Upload-Metadata": meta("x")}))
        check("a bad Upload-Length: 400", st == 400, st)
        st, _, _ = c.req("POST", "/d/", headers=dict(TUS, **{"Upload-Length": "5"}))
        check("no filename: 400", st == 400, st)
        st, _, _ = c.req("POST", "/d/", headers=dict(TUS, **{"Upload-Length": "5",
                                                             "Upload-Metadata": "filename @@@"}))
        check("a filename that is not base64: 400", st == 400, st)
        # over the limit: 413 before any byte of a body sent after the headers
        s = raw_open(g.port, "POST /d/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                             "Upload-Length: %d\r\nUpload-Metadata: %s\r\nContent-Type: %s\r\n"
                             "Content-Length: 65536\r\n\r\n" % (MiB + 1, meta("big"), OCTETS))
        res = read_responses(s)
        s.close()
        check("Upload-Length over --max-body-size: 413 before any byte, Tus-Max-Size",
              res and res[-1][0] == 413 and res[-1][1].get("tus-max-size") == str(MiB), res)
        st, _, _ = c.req("POST", "/d/", headers=dict(TUS, **{"Upload-Length": str(MiB + 1),
                                                             "Upload-Metadata": meta("big")}))
        check("... and without a body: 413", st == 413, st)
        s = raw_open(g.port, "PUT /d/big.bin HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?1\r\n"
                             "Upload-Draft-Interop-Version: 6\r\nContent-Length: %d\r\n\r\n" % (MiB + 1))
        res = read_responses(s)
        s.close()
        check("IETF: a Content-Length over the limit: 413 before any byte, no 104",
              [x[0] for x in res] == [413], res)
        check("nothing made for refused uploads",
              not [n for n in os.listdir(os.path.join(up, PARTIAL)) if not n.endswith(".info")]
              if os.path.isdir(os.path.join(up, PARTIAL)) else True)

        st, loc, r = create(c, "/d/", 10, "ten.txt")
        check("tus creation: 201, Location under /%s/, Upload-Expires" % PARTIAL,
              st == 201 and re.match(r"^/%s/[0-9a-f]{32}$" % re.escape(PARTIAL), loc or "") and
              r.getheader("Upload-Expires", "").endswith("GMT") and
              r.getheader("Tus-Resumable") == "1.0.0", (st, loc))
        # a PATCH over the rest: 413 before any byte
        s = raw_open(g.port, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                             "Upload-Offset: 0\r\nContent-Type: %s\r\nContent-Length: 11\r\n\r\n"
                             % (loc, OCTETS))
        res = read_responses(s)
        s.close()
        check("a PATCH past Upload-Length: 413 before the body", res and res[-1][0] == 413, res)
        st, _, _ = patch(c, loc, 0, b"abc", ctype="application/octet-stream")
        check("PATCH of another Content-Type: 415", st == 415, st)
        st, _, _ = c.req("PATCH", loc, body=b"abc", headers=dict(TUS, **{"Content-Type": OCTETS}))
        check("PATCH without Upload-Offset: 400", st == 400, st)
        st, _, _ = c.req("PATCH", loc, body=b"abc", headers={"Upload-Offset": "0",
                                                             "Content-Type": OCTETS})
        check("PATCH without Tus-Resumable: 412", st == 412, st)
        st, _, r = patch(c, loc, 0, b"abcd")
        check("PATCH: 204, Upload-Offset 4", st == 204 and r.getheader("Upload-Offset") == "4", st)
        st, _, r = patch(c, loc, 2, b"zz")
        check("PATCH at a wrong offset: 409, the real offset told",
              st == 409 and r.getheader("Upload-Offset") == "4", (st, r.getheader("Upload-Offset")))
        check("... and nothing written", on_disk(up, loc) == b"abcd")
        st, _, r = c.req("HEAD", loc, headers=TUS)
        check("HEAD: 200, Upload-Offset, Upload-Length, Upload-Metadata, no-store",
              st == 200 and r.getheader("Upload-Offset") == "4" and
              r.getheader("Upload-Length") == "10" and r.getheader("Upload-Metadata") == meta("ten.txt")
              and r.getheader("Cache-Control") == "no-store", r.getheaders())
        st, _, r = c.req("POST", loc, body=b"efghij",
                         headers=dict(TUS, **{"X-HTTP-Method-Override": "PATCH",
                                              "Upload-Offset": "4", "Content-Type": OCTETS}))
        check("POST with X-HTTP-Method-Override: PATCH completes it: 204, Content-Location",
              st == 204 and r.getheader("Upload-Offset") == "10" and
              r.getheader("Content-Location") == "/d/ten.txt", (st, r.getheaders()))
        st, body, _ = c.req("GET", "/d/ten.txt")
        check("stored", st == 200 and body == b"abcdefghij", (st, body))
        st, _, r = patch(c, loc, 10, b"")
        check("a completed upload's last PATCH again: 204 (the answer was lost)",
              st == 204 and r.getheader("Upload-Offset") == "10", st)
        st, _, r = c.req("HEAD", loc, headers=TUS)
        check("HEAD of a completed upload: its length", st == 200 and
              r.getheader("Upload-Offset") == "10", st)
        for bad in ("/%s/0123" % PARTIAL, "/%s/%s" % (PARTIAL, "0" * 32), loc + "x"):
            st, _, _ = c.req("HEAD", bad, headers=TUS)
            check("HEAD %s: 404" % bad, st == 404, st)
        st, _, r = c.req("GET", loc)
        check("GET of an upload's URL: 405", st == 405 and "PATCH" in r.getheader("Allow", ""), st)
        st, _, _ = c.req("PUT", "/%s/x" % PARTIAL, body=b"x")
        check("PUT into the uploads' URL space: 405", st == 405, st)
        st, _, _ = c.req("PUT", "/%s" % PARTIAL, body=b"x")
        check("PUT of its name: 400 (graced's temporary names are no file's)", st == 400, st)

        # names as a form's: last path element, sanitised
        for sent, want in (("../../etc/passwd", "passwd"), (".hidden", "_hidden"),
                           ("a\x01b.txt", "a_b.txt"), ("C:\\Users\\x\\doc.txt", "doc.txt")):
            st, loc2, _ = create(c, "/names/", 1, sent)
            st2, _, r = patch(c, loc2, 0, b"x")
            check("filename %r stored as %r" % (sent, want),
                  st == 201 and st2 == 204 and r.getheader("Content-Location") == "/names/" + want and
                  os.path.isfile(os.path.join(up, "names", want)), (st, st2, r.getheader("Content-Location")))
        st, _, _ = create(c, "/", 1, "metrics")
        check("an upload onto --metrics' path: 409", st == 409, st)
        st, _, _ = create(c, "/d/", 3, "ten.txt", {"If-None-Match": "*"})
        check("If-None-Match: * on an existing name: 412 at the creation", st == 412, st)
        st, loc3, _ = create(c, "/d/", 3, "new.txt", {"If-None-Match": "*"})
        check("If-None-Match: * on a free name: 201", st == 201, st)
        st, _, _ = c.req("PUT", "/d/new.txt", body=b"theirs")
        st, _, _ = patch(c, loc3, 0, b"abc")
        check("... someone stores that name meanwhile: the final rename refuses, 412", st == 412, st)
        st, body, _ = c.req("GET", "/d/new.txt")
        check("... theirs is intact, the upload gone", body == b"theirs" and
              c.req("HEAD", loc3, headers=TUS)[0] == 404 and on_disk(up, loc3) is None)

        # IETF refusals
        st, _, _ = c.req("POST", "/i/", headers=dict(IETF, **{"Upload-Complete": "yes",
                                                              "Upload-Metadata": meta("x")}))
        check("IETF: Upload-Complete not a Boolean: 400", st == 400, st)
        st, _, _ = c.req("PUT", "/i/x.bin", body=b"abc",
                         headers=dict(IETF, **{"Upload-Complete": "?1", "Upload-Length": "4"}))
        check("IETF: Upload-Length is not the Content-Length of a complete upload: 400", st == 400, st)
        st, _, r = c.req("POST", "/i/", headers=dict(IETF, **{"Upload-Complete": "?0",
                                                              "Upload-Length": "6",
                                                              "Upload-Metadata": meta("i.txt")}))
        iloc = r.getheader("Location")
        check("IETF careful creation: 201, Upload-Complete ?0, Upload-Limit",
              st == 201 and iloc and r.getheader("Upload-Complete") == "?0" and
              "max-size=" in r.getheader("Upload-Limit", ""), (st, r.getheaders()))
        st, _, _ = c.req("HEAD", iloc, headers=dict(IETF, **{"Upload-Offset": "0"}))
        check("IETF: HEAD with Upload-Offset: 400", st == 400, st)
        st, _, r = patch(c, iloc, 0, b"abc", {"Upload-Complete": "?0"}, IETF,
                         "application/partial-upload")
        check("IETF PATCH: 204, Upload-Complete ?0", st == 204 and r.getheader("Upload-Complete") == "?0"
              and r.getheader("Upload-Offset") == "3", st)
        st, b, r = patch(c, iloc, 1, b"def", {"Upload-Complete": "?1"}, IETF,
                         "application/partial-upload")
        check("IETF PATCH at a wrong offset: 409 with the problem type",
              st == 409 and r.getheader("Content-Type") == "application/problem+json" and
              json.loads(b).get("expected-offset") == 3 and json.loads(b).get("provided-offset") == 1,
              (st, b))
        st, _, _ = patch(c, iloc, 3, b"def", {"Upload-Complete": "?1"}, IETF, OCTETS)
        check("IETF PATCH of another type: 415", st == 415, st)
        st, _, _ = patch(c, iloc, 3, b"de", {"Upload-Complete": "?1"}, IETF,
                         "application/partial-upload")
        check("IETF: Upload-Complete ?1 short of the length: 400", st == 400, st)
        st, _, r = patch(c, iloc, 3, b"def", {"Upload-Complete": "?1"}, IETF,
                         "application/partial-upload")
        check("IETF PATCH completes: 201, Upload-Complete ?1", st == 201 and
              r.getheader("Upload-Complete") == "?1" and r.getheader("Upload-Offset") == "6", st)
        st, b, _ = patch(c, iloc, 6, b"", {"Upload-Complete": "?1"}, IETF, "application/partial-upload")
        check("IETF PATCH of a completed upload: 400 completed-upload", st == 400 and
              b"completed-upload" in b, (st, b))
        st, _, r = c.req("HEAD", iloc, headers=IETF)
        check("IETF HEAD of it: 204, Upload-Complete ?1", st == 204 and
              r.getheader("Upload-Complete") == "?1" and r.getheader("Upload-Offset") == "6", st)
        st, _, _ = c.req("DELETE", iloc, headers=dict(IETF, **{"Upload-Complete": "?1"}))
        check("IETF DELETE with Upload-Complete: 400", st == 400, st)

        # termination
        st, dloc, _ = create(c, "/d/", 100, "gone.bin")
        patch(c, dloc, 0, b"x" * 50)
        st, _, r = c.req("DELETE", dloc, headers=TUS)
        check("DELETE: 204", st == 204 and r.getheader("Tus-Resumable") == "1.0.0", st)
        check("... its files gone, HEAD 404", on_disk(up, dloc) is None and
              not os.path.exists(data_file(up, dloc) + ".info") and
              c.req("HEAD", dloc, headers=TUS)[0] == 404)
        # CORS: a page of --cors-write may drive tus
        st, _, r = c.req("OPTIONS", dloc, headers={"Origin": "http://app.test",
                                                   "Access-Control-Request-Method": "PATCH",
                                                   "Access-Control-Request-Headers": "tus-resumable"})
        ah = r.getheader("Access-Control-Allow-Headers", "")
        check("CORS preflight of an upload: PATCH allowed, tus and IETF headers",
              "PATCH" in r.getheader("Access-Control-Allow-Methods", "") and
              all(h in ah for h in ("Tus-Resumable", "Upload-Offset", "Upload-Length", "Upload-Metadata",
                                    "Upload-Complete", "Upload-Draft-Interop-Version")), r.getheaders())
        st, _, r = create(c, "/d/", 5, "cors.txt", {"Origin": "http://app.test"})
        eh = r.getheader("Access-Control-Expose-Headers", "")
        check("CORS: Location, Upload-Offset, Upload-Expires... exposed",
              st == 201 and all(h in eh for h in ("Location", "Upload-Offset", "Upload-Expires",
                                                  "Tus-Resumable", "Upload-Complete", "Content-Location")),
              eh)
        st, _, _ = create(c, "/d/", 5, "evil.txt", {"Origin": "http://evil.test"})
        check("a page of another site may not make one: 403", st == 403, st)
        m = metrics(g.port)
        check("metrics: terminated 1", m.get("graced_resumable_terminated_total") == 1, m)
    finally:
        check("graced stops cleanly", g.stop() == 0, g.p.returncode)
    # --no-overwrite: at the creation too
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--no-overwrite")
    try:
        st, _, _ = create(Conn(g.port), "/d/", 3, "ten.txt")
        check("--no-overwrite: an existing name refused at the creation, 412", st == 412, st)
    finally:
        check("graced (--no-overwrite) stops cleanly", g.stop() == 0, g.p.returncode)


# ---------------------------------------------------------------- drops, locks, restarts

def start_patch(port, url, offset, total, proto=TUS, ctype=OCTETS, extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    hdr = "".join("%s: %s\r\n" % kv for kv in proto.items())
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\n%sUpload-Offset: %d\r\nContent-Type: %s\r\n"
               "Content-Length: %d\r\n%s\r\n" % (url, hdr, offset, ctype, total, extra)).encode())
    return s


def run_drops(tmp):
    up = os.path.join(tmp, "drops")
    os.makedirs(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    c = Conn(g.port)
    data = os.urandom(8 * MiB)
    try:
        st, loc, _ = create(c, "/x/", len(data), "drop.bin")
        # FIN after 3 MiB + 77: every byte sent is kept, no more
        s = start_patch(g.port, loc, 0, len(data))
        s.sendall(data[:3 * MiB + 77])
        s.shutdown(socket.SHUT_WR)
        res = read_responses(s)
        s.close()
        st, off, _ = offset_of(c, loc)
        check("a PATCH cut (FIN) mid-body: the offset is every byte sent, on disk",
              off == 3 * MiB + 77 and on_disk(up, loc) == data[:off], (off, res))
        # written by another process (another instance's request holds its lock)
        fd = os.open(data_file(up, loc), os.O_RDWR)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        s2 = start_patch(g.port, loc, off, 10)
        res = read_responses(s2)
        s2.close()
        check("a PATCH while another process writes the upload: 423 before its body, Retry-After",
              res and res[-1][0] == 423 and res[-1][1].get("retry-after"), res)
        st, _, _ = c.req("DELETE", loc, headers=TUS)
        check("a DELETE while it is written: 423", st == 423 and on_disk(up, loc) == data[:off], st)
        os.close(fd)
        # a request of this worker still writing it (its client gone unseen):
        # the next PATCH ends it and goes on
        s = start_patch(g.port, loc, off, len(data) - off)
        s.sendall(data[off:off + MiB])
        wait_for(lambda: len(on_disk(up, loc) or b"") >= off + MiB)
        st, _, r = patch(c, loc, off + MiB, data[off + MiB:off + 2 * MiB])
        check("a PATCH while an old one of this worker waits: that one is ended, this one 204",
              st == 204 and r.getheader("Upload-Offset") == str(off + 2 * MiB), st)
        try:
            s.settimeout(10)
            gone = s.recv(100) == b""
        except OSError:
            gone = True
        check("... the old one's connection is closed", gone)
        s.close()
        off += 2 * MiB
        s = start_patch(g.port, loc, off, len(data) - off)
        s.sendall(data[off:off + MiB])
        wait_for(lambda: len(on_disk(up, loc) or b"") >= off + MiB)
        # RST: what reached graced is kept, no more, no less
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        st, off2, _ = wait_for(lambda: (lambda t: t if t[0] == 200 else None)(offset_of(c, loc)))
        kept = on_disk(up, loc)
        check("a PATCH reset mid-body: the offset is the bytes on disk, a prefix",
              off <= off2 <= off + MiB and kept == data[:off2], (off, off2, len(kept or b"")))
        st = wait_for(lambda: (lambda t: t if t[0] != 423 else None)(patch(c, loc, off2, data[off2:])))
        check("the rest from there: 204, byte-exact", st and st[0] == 204, st and st[0])
        with open(os.path.join(up, "x", "drop.bin"), "rb") as f:
            check("... stored", f.read() == data)
        # creation-with-upload cut short: the upload is there with its bytes
        st, loc, _ = create(c, "/x/", 100, "cwu.bin", body=b"0123456789")
        check("creation with upload: 201, Upload-Offset 10", st == 201 and
              offset_of(c, loc)[1] == 10, st)
        # all its bytes there, never stored (the commit failed: a file is in
        # the way of its folder): a HEAD, which says it is complete, stores it
        st, loc, _ = create(c, "/y/", 5, "late.bin")
        shutil.rmtree(os.path.join(up, "y"))
        with open(os.path.join(up, "y"), "w") as f:
            f.write("in the way")
        st, _, r = patch(c, loc, 0, b"hello")
        check("the last PATCH cannot store it (a file in the way of its folder): 409, bytes kept",
              st == 409 and r.getheader("Upload-Offset") == "5" and on_disk(up, loc) == b"hello", st)
        os.unlink(os.path.join(up, "y"))
        st, off, r = offset_of(c, loc)
        check("... then HEAD (offset 5 = its length: done, to tus) stores it first",
              st == 200 and off == 5 and os.path.isfile(os.path.join(up, "y", "late.bin")) and
              r.getheader("Content-Location") == "/y/late.bin", (st, off, r.getheaders()))
        # deferred length: told by a later PATCH
        st, loc, r = create(c, "/x/", None, "defer.bin")
        st, _, r = c.req("HEAD", loc, headers=TUS)
        check("deferred length: HEAD says Upload-Defer-Length: 1",
              r.getheader("Upload-Defer-Length") == "1" and r.getheader("Upload-Length") is None,
              r.getheaders())
        patch(c, loc, 0, b"abc")
        st, _, r = patch(c, loc, 3, b"def", {"Upload-Length": "6"})
        check("... a PATCH that tells the length and reaches it completes it", st == 204 and
              os.path.isfile(os.path.join(up, "x", "defer.bin")), st)
    finally:
        check("graced stops cleanly", g.stop() == 0, g.p.returncode)


def run_restart(tmp):
    up = os.path.join(tmp, "restart")
    os.makedirs(up)
    data = os.urandom(6 * MiB)
    args = ("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--shutdown-timeout", "1s")
    g = Graced(*args)
    st, loc, _ = create(Conn(g.port), "/r/", len(data), "r.bin")
    s = start_patch(g.port, loc, 0, len(data))
    s.sendall(data[:2 * MiB])
    wait_for(lambda: len(on_disk(up, loc) or b"") == 2 * MiB)
    g.kill()
    s.close()
    g = Graced(*args)
    c = Conn(g.port)
    st, off, _ = offset_of(c, loc)
    check("graced killed mid-PATCH and started again: HEAD tells what is on disk",
          st == 200 and off == 2 * MiB and on_disk(up, loc) == data[:off], (st, off))
    # a stop mid-PATCH: the request is cut at --shutdown-timeout, the bytes stay
    s = start_patch(g.port, loc, off, len(data) - off)
    s.sendall(data[off:off + MiB])
    wait_for(lambda: len(on_disk(up, loc) or b"") == off + MiB)
    check("SIGTERM mid-PATCH: graced stops (exit 0)", g.stop() == 0, g.p.returncode)
    s.close()
    g = Graced(*args, "--workers", "2")
    c = Conn(g.port)
    try:
        st, off, _ = offset_of(c, loc)
        check("... started again (2 workers): the offset is what is on disk",
              st == 200 and off == 3 * MiB and on_disk(up, loc) == data[:off], (st, off))
        ok = True
        while off < len(data):  # small PATCHes, each on a new connection: either worker
            st, _, r = patch(c, loc, off, data[off:off + 256 * 1024])
            ok = ok and st == 204
            off = int(r.getheader("Upload-Offset"))
        check("PATCHes on either of 2 workers: all 204", ok)
        with open(os.path.join(up, "r", "r.bin"), "rb") as f:
            check("stored byte-exact across two restarts", f.read() == data)
    finally:
        check("graced stops cleanly", g.stop() == 0, g.p.returncode)


def run_ietf_upgrade(tmp):
    up = os.path.join(tmp, "upgrade")
    os.makedirs(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    c = Conn(g.port)
    data = os.urandom(4 * MiB)
    try:
        s = raw_open(g.port, "PUT /u/big.bin HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?1\r\n"
                             "Upload-Draft-Interop-Version: 6\r\nContent-Length: %d\r\n\r\n" % len(data))
        s.settimeout(30)
        first = b""
        while b"\r\n\r\n" not in first:
            first += s.recv(4096)
        m = re.search(rb"Location: (\S+)", first)
        check("a PUT with Upload-Complete: 104 with the upload's Location before the body",
              first.startswith(b"HTTP/1.1 104 Upload Resumption Supported") and m and b"Upload-Draft-Interop-Version: 6" in first,
              first)
        loc = m.group(1).decode()
        s.sendall(data[:MiB])
        s.shutdown(socket.SHUT_WR)
        s.close()
        st, off, r = wait_for(lambda: (lambda t: t if t[1] == MiB else None)(offset_of(c, loc, proto=IETF)))
        check("... cut off: HEAD 204, Upload-Complete ?0, the offset on disk",
              st == 204 and r.getheader("Upload-Complete") == "?0" and on_disk(up, loc) == data[:off],
              (st, off))
        check("... and no file under the name", not os.path.exists(os.path.join(up, "u", "big.bin")))
        st, _, r = patch(c, loc, off, data[off:], {"Upload-Complete": "?1"}, IETF,
                         "application/partial-upload")
        check("... the rest by PATCH: 201", st == 201, st)
        with open(os.path.join(up, "u", "big.bin"), "rb") as f:
            check("... stored byte-exact", f.read() == data)
        s = raw_open(g.port, "PUT /u/big.bin HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?1\r\n"
                             "Upload-Draft-Interop-Version: 6\r\nContent-Length: 5\r\n\r\nhello")
        res = read_responses(s)
        s.close()
        check("an upgraded PUT that completes: 104, then 204 (replaced) with Location, "
              "Content-Location", [x[0] for x in res] == [104, 204] and
              res[-1][1].get("content-location") == "/u/big.bin" and
              res[-1][1].get("location", "").startswith("/" + PARTIAL), res)
        st, _, r = c.req("PUT", "/u/plain.bin", body=b"plain",
                         headers={"Upload-Complete": "?1", "Upload-Draft-Interop-Version": "4"})
        check("an unknown interop version: a plain PUT (201, its own Location)", st == 201 and
              r.getheader("Location") == "/u/plain.bin", (st, r.getheaders()))
        s = raw_open(g.port, "POST /u/ HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?0\r\n"
                             "Upload-Draft-Interop-Version: 6\r\nContent-Disposition: attachment; "
                             "filename=\"cd name.txt\"\r\nUpload-Length: 10\r\nContent-Length: 4\r\n"
                             "\r\nabcd")
        res = read_responses(s)
        s.close()
        check("a POST to a folder, its name in Content-Disposition, ?0: 104, then 201 with "
              "Upload-Offset 4", [x[0] for x in res] == [104, 201] and
              res[-1][1].get("upload-offset") == "4" and res[-1][1].get("upload-complete") == "?0", res)
        loc = res[-1][1].get("location")
        st, _, r = patch(c, loc, 4, b"efghij", {"Upload-Complete": "?1"}, IETF,
                         "application/partial-upload")
        check("... completed: cd name.txt", st == 201 and
              r.getheader("Content-Location") == "/u/cd%20name.txt", (st, r.getheaders()))
    finally:
        check("graced stops cleanly", g.stop() == 0, g.p.returncode)


def run_expiry(tmp):
    up = os.path.join(tmp, "expiry")
    os.makedirs(up)
    args = ("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--upload-expiry", "2s",
            "--stale-upload-age", "0", "--metrics", "/metrics")
    g = Graced(*args)
    other = None
    c = Conn(g.port)
    try:
        st, loc, r = create(c, "/e/", 1000, "old.bin")
        patch(c, loc, 0, b"x" * 100)
        # one being written: its lock held while it sends nothing past the expiry
        st, held, _ = create(c, "/e/", 1000, "held.bin")
        s = start_patch(g.port, held, 0, 1000)
        s.sendall(b"y" * 10)
        wait_for(lambda: len(on_disk(up, held) or b"") == 10)
        # another instance sweeping the same folder, whose start-up sweep of
        # temporary files (--stale-upload-age 0: every unlocked one) leaves
        # resumable uploads to their expiry
        other = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
                       "--upload-expiry", "1s", "--metrics", "/metrics", "--stale-upload-age", "0")
        check("an instance starting with --stale-upload-age 0 leaves unfinished uploads alone",
              on_disk(up, loc) == b"x" * 100 and on_disk(up, held) == b"y" * 10)
        # leftovers of a crash: a data file without an info, a half-made info
        # made aside and renamed in, old already: a sweep running meanwhile
        # may take them at once (the test must not race it)
        junk = os.path.join(up, PARTIAL, "f" * 32)
        aside = os.path.join(tmp, "aside")
        os.makedirs(aside)
        with open(os.path.join(aside, "junk"), "wb") as f:
            f.write(b"junk")
        with open(os.path.join(aside, "new"), "w") as f:
            f.write("graced-partial 1\n")
        past = time.time() - 10
        os.utime(os.path.join(aside, "junk"), (past, past))
        os.rename(os.path.join(aside, "junk"), junk)
        os.rename(os.path.join(aside, "new"), os.path.join(up, PARTIAL, "e" * 32 + ".1234abcd.new"))
        time.sleep(2.5)
        st, _, _ = c.req("HEAD", loc, headers=TUS)
        check("an expired upload: 410 (or 404 once swept)", st in (410, 404), st)
        check("the sweep removes it (files gone)",
              wait_for(lambda: on_disk(up, loc) is None and
                       not os.path.exists(data_file(up, loc) + ".info"), 10))
        check("... and the crash's leftovers",
              wait_for(lambda: not os.path.exists(junk) and
                       not [n for n in os.listdir(os.path.join(up, PARTIAL)) if n.endswith(".new")], 10))
        check("the one being written stays (its lock), in both instances' sweeps",
              on_disk(up, held) == b"y" * 10)
        s.sendall(b"y" * 990)
        res = read_responses(s)
        s.close()
        check("... and completes: 204", res and res[-1][0] == 204, res)
        both = lambda: (metrics(g.port).get("graced_resumable_expired_total", 0) +
                        metrics(other.port).get("graced_resumable_expired_total", 0))
        check("metrics: 1 expired (by one of the two instances)", wait_for(lambda: both() == 1, 10) and
              both() == 1, both())
        m = wait_for(lambda: (lambda v: v if v.get("graced_resumable_unfinished") == 0 else None)(metrics(g.port)), 10)
        check("metrics: unfinished 0 and 0 bytes held after the next sweep",
              m and m.get("graced_resumable_held_bytes") == 0, m)
        st, loc, _ = create(c, "/e/", 1000, "count.bin")
        patch(c, loc, 0, b"z" * 300)
        m = wait_for(lambda: (lambda v: v if v.get("graced_resumable_held_bytes") == 300 else None)(metrics(g.port)), 10)
        check("metrics: an unfinished upload counted, its 300 bytes held", m and
              m.get("graced_resumable_unfinished") == 1, m)
    finally:
        if other:
            check("the other instance stops cleanly", other.stop() == 0, other.p.returncode)
        check("graced stops cleanly", g.stop() == 0, g.p.returncode)


def run_small_disk(tmp):
    """A disk that cannot take an upload says so before its bytes: 507 at
    the creation (free space below Upload-Length), 507 to a PATCH whose
    blocks it cannot reserve, the bytes before kept; room made, the upload
    goes on. The disk: a 4 MiB tmpfs in graced's own mount namespace."""
    d = os.path.join(tmp, "small")
    os.mkdir(d)
    if os.geteuid() != 0:
        check("a small disk needs root (unshare -m)", False)
        return
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                          "mount -t tmpfs -o size=4m tmpfs \"$1\" && exec \"$2\" --listen "
                          "127.0.0.1:0 --root \"$1\" --upload-dir \"$1\"", "sh", d, GRACED],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    try:
        line = p.stdout.readline()
        c = Conn(int(line.strip().rstrip("/").rsplit(":", 1)[1]))
        view = "/proc/%d/root%s" % (p.pid, d)  # the tmpfs, as graced sees it
        st, _, _ = create(c, "/", 8 * MiB, "big.bin")
        check("8 MiB announced to a 4 MiB disk: 507 at the creation", st == 507, st)
        data = os.urandom(3 * MiB)
        st, loc, _ = create(c, "/", len(data), "fits.bin")
        st, _, _ = patch(c, loc, 0, data[:MiB])
        filler = os.urandom(2 * MiB + 512 * 1024)
        st2, _, _ = c.req("PUT", "/filler.bin", body=filler)
        st, _, r = patch(c, loc, MiB, data[MiB:])
        check("the disk filled meanwhile: the next PATCH 507, its offset told",
              st2 == 201 and st == 507 and r.getheader("Upload-Offset") == str(MiB), (st2, st))
        check("... the bytes before kept", on_disk(view, loc) == data[:MiB])
        c.req("DELETE", "/filler.bin")
        st, off, _ = offset_of(c, loc)
        st, _, _ = patch(c, loc, off, data[off:])
        with open(os.path.join(view, "fits.bin"), "rb") as f:
            check("room made: the upload goes on and is stored", st == 204 and f.read() == data, st)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        check("graced on the small disk stops cleanly", p.returncode == 0, p.stderr.read()[-300:])


# ---------------------------------------------------------------- the target's rules and locks

LOCKINFO = ('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            '</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>')


def dav_lock(c, path, auth, depth="0"):
    st, _, r = c.req("LOCK", path, body=LOCKINFO,
                     headers=dict(auth, **{"Content-Type": "application/xml", "Depth": depth,
                                           "Timeout": "Second-600"}))
    return st, (r.getheader("Lock-Token") or "").strip("<>")


def patch_cut(port, url, offset, body, first, auth, between):
    """A PATCH that sends its headers and first bytes of body, runs
    between(), then sends the rest: its answers."""
    hdr = "".join("%s: %s\r\n" % kv for kv in auth.items())
    s = raw_open(port, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"
                 "Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (url, offset, OCTETS, len(body), hdr))
    s.sendall(body[:first])
    between()
    s.sendall(body[first:])
    res = read_responses(s)
    s.close()
    return res


def run_target_rights(tmp):
    """Issue 19: a resumable upload's TARGET (folder and name), not its URL,
    is checked as a PUT's is: the owner's per-path right and the WebDAV
    locks on the file and its folder, at the creation and again when it
    completes (before the last PATCH's body, and after it: a lock taken or
    a right withdrawn meanwhile). A refused upload keeps its bytes: once
    allowed, it is stored byte for byte."""
    d = os.path.join(tmp, "rights")
    up = os.path.join(d, "up")
    os.makedirs(os.path.join(up, "in", "dir"))
    users = os.path.join(d, "users")
    rules = "/in:rw,/in/secret.bin:r,/:r"
    write_users(users, [("alice", "a1", rules, b"$6$"), ("bob", "b2", "rw", b"$6$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--users-file", users,
               "--max-body-size", "64M")
    c = Conn(g.port)
    alice, bob = basic("alice", "a1"), basic("bob", "b2")
    size = 3 * MiB
    data = os.urandom(size)
    stored = lambda name: os.path.join(up, "in", name)

    def hup(new_rules, probe, probe_status):
        write_users(users, [("alice", "a1", new_rules, b"$6$"), ("bob", "b2", "rw", b"$6$")])
        g.p.send_signal(signal.SIGHUP)
        # a DELETE of a file not there yet: 404 where alice may write, 403 where not
        return wait_for(lambda: c.req("DELETE", probe, headers=alice)[0] == probe_status)

    try:
        # --- rights at the creation: a rule on the file, below the folder's
        st, loc, r = create(c, "/in/", size, "secret.bin", alice)
        check("creation: alice may write /in but not /in/secret.bin (her rule): 403 "
              "(was 201: only the folder's URL was asked)",
              st == 403 and not loc and not os.path.exists(stored("secret.bin")), st)
        st, loc, r = create(c, "/in/", size, "ok.bin", alice, body=data)
        check("creation with the whole body where she may write: 201, stored",
              st == 201 and open(stored("ok.bin"), "rb").read() == data, st)

        # --- rights at the completion: withdrawn (SIGHUP) between PATCHes
        st, loc, _ = create(c, "/in/", size, "later.bin", alice)
        st2, _, _ = patch(c, loc, 0, data[:MiB], alice)
        check("an upload to /in/later.bin, 1 MiB of 3 sent", st == 201 and st2 == 204, (st, st2))
        check("SIGHUP: alice's rules now /in/later.bin:r", hup(rules + ",/in/later.bin:r", "/in/later.bin", 403))
        s = raw_open(g.port, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"
                     "Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                     % (loc, MiB, OCTETS, size - MiB, "".join("%s: %s\r\n" % kv for kv in alice.items())))
        res = read_responses(s)
        s.close()
        check("the last PATCH, whose target she may no longer write: 403 before any body byte, "
              "Upload-Offset 1 MiB", res and res[-1][0] == 403 and
              res[-1][1].get("upload-offset") == str(MiB), res)
        st, off, _ = offset_of(c, loc, alice)
        check("... the upload keeps its 1 MiB, nothing stored",
              off == MiB and not os.path.exists(stored("later.bin")), (st, off))
        check("SIGHUP: the rule gone again", hup(rules, "/in/later.bin", 404))
        st, _, r = patch(c, loc, MiB, data[MiB:], alice)
        check("... then the rest: stored byte for byte",
              st == 204 and open(stored("later.bin"), "rb").read() == data, st)

        # withdrawn while the last PATCH's body is under way: refused after
        # it, the bytes kept (synced), stored once allowed (a tus HEAD)
        st, loc, _ = create(c, "/in/", size, "during.bin", alice)
        res = patch_cut(g.port, loc, 0, data, MiB, alice,
                        lambda: check("SIGHUP mid-PATCH: /in/during.bin:r",
                                      hup(rules + ",/in/during.bin:r", "/in/during.bin", 403)))
        check("a PATCH that completes an upload whose target became read-only meanwhile: 403, "
              "Upload-Offset the whole length", res and res[-1][0] == 403 and
              res[-1][1].get("upload-offset") == str(size), res)
        check("... nothing stored, every byte kept",
              not os.path.exists(stored("during.bin")) and on_disk(up, loc) == data, "")
        check("SIGHUP: the rule gone again", hup(rules, "/in/during.bin", 404))
        st, off, r = offset_of(c, loc, alice)
        check("... a tus HEAD then stores it (the offset at the length means done): "
              "byte for byte", st == 200 and off == size and
              open(stored("during.bin"), "rb").read() == data, (st, off))

        # --- locks at the creation: the file's and its folder's
        st, tok = dav_lock(c, "/in/locked.bin", bob)
        check("bob LOCKs /in/locked.bin", st in (200, 201) and tok, st)
        st, loc, r = create(c, "/in/", size, "locked.bin", alice)
        check("a creation onto a file locked by someone else: 423 (was 201)", st == 423 and not loc, st)
        st, loc, r = create(c, "/in/", 10, "locked.bin", dict(bob, If="(<%s>)" % tok),
                            body=b"0123456789")
        check("... with the lock's token in If: 201, stored",
              st == 201 and open(stored("locked.bin"), "rb").read() == b"0123456789", st)
        st, dtok = dav_lock(c, "/in/dir", bob, depth="0")
        check("bob LOCKs the folder /in/dir (depth 0)", st in (200, 201) and dtok, st)
        st, loc, r = create(c, "/in/dir/", size, "new.bin", alice)
        check("a creation of a new member of a locked folder: 423", st == 423 and not loc, st)
        c.req("UNLOCK", "/in/dir", headers=dict(bob, **{"Lock-Token": "<%s>" % dtok}))

        # --- locks at the completion: taken between PATCHes
        st, loc, _ = create(c, "/in/", size, "k.bin", alice)
        patch(c, loc, 0, data[:MiB], alice)
        st, ktok = dav_lock(c, "/in/k.bin", bob)
        check("bob LOCKs /in/k.bin while alice's upload to it is under way", st in (200, 201) and ktok, st)
        s = raw_open(g.port, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"
                     "Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                     % (loc, MiB, OCTETS, size - MiB, "".join("%s: %s\r\n" % kv for kv in alice.items())))
        res = read_responses(s)
        s.close()
        check("the last PATCH onto a locked target: 423 before any body byte (was: stored over "
              "the lock)", res and res[-1][0] == 423 and b"lock-token-submitted" in res[-1][2] and
              res[-1][1].get("upload-offset") == str(MiB), res)
        st, _, r = patch(c, loc, MiB, data[MiB:], dict(alice, If="(<%s>)" % ktok))
        check("... with the token in If: stored byte for byte",
              st == 204 and open(stored("k.bin"), "rb").read() == data, st)
        c.req("UNLOCK", "/in/k.bin", headers=dict(bob, **{"Lock-Token": "<%s>" % ktok}))

        # taken while the last PATCH's body is under way
        st, loc, _ = create(c, "/in/", size, "mid.bin", alice)
        got = {}
        res = patch_cut(g.port, loc, 0, data, MiB, alice,
                        lambda: got.update(zip(("st", "tok"), dav_lock(c, "/in/mid.bin", bob))))
        check("bob LOCKs /in/mid.bin mid-PATCH", got.get("st") in (200, 201), got)
        check("the PATCH that completes the upload: 423 after its body, Upload-Offset the length",
              res and res[-1][0] == 423 and res[-1][1].get("upload-offset") == str(size), res)
        mid = stored("mid.bin")
        check("... nothing stored over the lock (LOCK's empty file, if any, stays), every byte kept",
              (not os.path.exists(mid) or os.path.getsize(mid) == 0) and on_disk(up, loc) == data,
              os.path.exists(mid) and os.path.getsize(mid))
        st, off, r = offset_of(c, loc, alice)
        check("a HEAD while it is locked: 423 still (the upload is not stored over it)", st == 423, st)
        c.req("UNLOCK", "/in/mid.bin", headers=dict(bob, **{"Lock-Token": "<%s>" % got.get("tok")}))
        st, off, r = offset_of(c, loc, alice)
        check("unlocked, a tus HEAD stores it: byte for byte",
              st == 200 and off == size and open(stored("mid.bin"), "rb").read() == data, (st, off))
        check("no upload data left but the finished ones' records",
              sorted(n for n in os.listdir(os.path.join(up, PARTIAL)) if not n.endswith(".info")) == [],
              os.listdir(os.path.join(up, PARTIAL)))
    finally:
        check("graced (rights, locks) stops cleanly", g.stop() == 0, g.p.returncode)


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return run_sections((run_tus_js, run_tls_users, run_errors, run_target_rights, run_drops,
                         run_restart, run_ietf_upgrade, run_expiry, run_small_disk),
                        "graced-resumable.")


if __name__ == "__main__":
    sys.exit(main())
