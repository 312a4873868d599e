#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""An upload's final fsync, rename and folder fsync run off the event loop
(issue 17, "an upload freezes everyone else"). The disk is made as slow as
the test wants by slowsync.so (LD_PRELOAD): an upload's fsync waits while a
gate file exists, so nothing here depends on the speed of the machine.

- while an upload's fsync is held, GETs of a small file are answered and the
  upload's answer is not: the loop is free (PUT and form parts); then the
  upload is answered 201 with its bytes;
- --sync-threads 3: four held uploads, three fsyncs at a time; a form of
  8 files: at most 4 parts wait for their commit;
- an fsync that fails (ENOSPC): 507, nothing left; a form names the part
  stored before; a folder fsync that fails after the rename: 500 (PUT, form,
  DELETE), the name holds the content, not durably;
- a PUT's blocks are reserved before its body is read: a disk too small
  for its Content-Length answers 507 before the body (a 4 MiB tmpfs);
- a client that resets during the fsync: graced goes on, no temporary file,
  nothing stored under the name; one that closes: stored, nothing left;
- a stop during the fsync: the upload is answered, then graced exits; with
  --shutdown-timeout shorter than the fsync (and a second signal: now)
  graced still exits only once the fsync is done, and leaves no temporary
  file; a stop's deadline during the folder fsync after the rename (a PUT,
  a form): the answer is the 2xx, not a 503 for a file that is stored;
- write-back (sync_file_range) starts while a PUT's body arrives;
- the threads' setpriority denied (a seccomp filter): said once;
- durability checks without the shim: PUT (spliced and chunked), a form,
  the preconditions.

Loopback only; every graced started here is stopped by PID. ~17 s."""
import hashlib
import http.client
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import (  # noqa: E402
    BUILD, GRACED, MiB, Graced, check, req, run_sections, wait_for, SHIM)


def tmp_names(d):
    return [n for n in os.listdir(d) if n.startswith(".graced-tmp.")]


class Slow:
    """A graced whose big fsyncs wait while self.gate exists."""
    def __init__(self, tmp, name, *args, errno=0, no_noreplace=False, dir_errno=0, env_add=None,
                 shared=None):
        self.dir = shared or os.path.join(tmp, name)
        if not shared:
            os.mkdir(self.dir)
            with open(os.path.join(self.dir, "small.txt"), "w") as f:
                f.write("small file\n")
        self.gate = os.path.join(tmp, name + ".gate")
        self.log = os.path.join(tmp, name + ".log")
        open(self.gate, "w").close()
        env = dict(os.environ, LD_PRELOAD=SHIM, SLOWSYNC_GATE=self.gate, SLOWSYNC_LOG=self.log,
                   SLOWSYNC_ERRNO=str(errno), SLOWSYNC_NO_NOREPLACE="1" if no_noreplace else "0",
                   SLOWSYNC_DIR_ERRNO=str(dir_errno), **(env_add or {}))
        # graced may be built with ASan, whose runtime then is not first in line
        env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                     "verify_asan_link_order=0"]))
        self.g = Graced("--listen", "127.0.0.1:0", "--root", self.dir, "--upload-dir", self.dir,
                        *args, env=env)
        self.err = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.g.p.stderr:
            self.err.append(line)

    def count(self, what):
        try:
            with open(self.log) as f:
                return sum(1 for line in f if line.startswith(what + " "))
        except OSError:
            return 0

    def release(self):
        if os.path.exists(self.gate):
            os.unlink(self.gate)

    def gets(self, n=5):
        """n GETs of the small file, each with 5 s to answer: how many did."""
        ok = 0
        for _ in range(n):
            c = http.client.HTTPConnection("127.0.0.1", self.g.port, timeout=5)
            try:
                c.request("GET", "/small.txt")
                r = c.getresponse()
                ok += r.status == 200 and r.read() == b"small file\n"
            except OSError:
                break
            finally:
                c.close()
        return ok


def put_thread(port, path, body, out, headers=None):
    def run():
        try:
            st, data, _ = req(port, "PUT" if headers is None else "POST", path, body, headers)
            out.append((st, data))
        except OSError as e:
            out.append((repr(e), b""))
    t = threading.Thread(target=run)
    t.start()
    return t


def form_body(files):
    b = b"graced-sync-boundary"
    out = b""
    for name, data in files:
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"%s\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n" % (b, name.encode())) + data + b"\r\n"
    return out + b"--%s--\r\n" % b, {"Content-Type": "multipart/form-data; boundary=" + b.decode()}


def run_loop_free(tmp):
    s = Slow(tmp, "free")
    try:
        body = os.urandom(4 * MiB)
        out = []
        t = put_thread(s.g.port, "/big.bin", body, out)
        check("the upload's fsync has started (held)", wait_for(lambda: s.count("start") == 1))
        n = s.gets()
        pending = not out
        s.release()
        t.join(30)
        check("5 GETs answered while an upload's fsync is held, its answer still pending",
              n == 5 and pending, (n, pending))
        with open(os.path.join(s.dir, "big.bin"), "rb") as f:
            check("then the PUT is answered 201 with its 4 MiB", out and out[0][0] == 201 and
                  f.read() == body, out[:1])

        # a form: each part's fsync is a job too
        open(s.gate, "w").close()
        a, b = os.urandom(2 * MiB), os.urandom(3 * MiB)
        data, hdrs = form_body([("fa.bin", a), ("fb.bin", b)])
        out = []
        t = put_thread(s.g.port, "/", data, out, dict(hdrs, Accept="application/json"))
        check("a form part's fsync has started (held)", wait_for(lambda: s.count("start") >= 2))
        n = s.gets()
        pending = not out
        s.release()
        t.join(30)
        check("GETs answered while a form part's fsync is held, the form's answer pending",
              n == 5 and pending, (n, pending))
        ok = out and out[0][0] == 201 and b'"count":2' in out[0][1]
        for name, want in (("fa.bin", a), ("fb.bin", b)):
            with open(os.path.join(s.dir, name), "rb") as f:
                ok = ok and f.read() == want
        check("then the form is answered 201 with both files whole", ok, out[:1])
        check("no temporary file left", not tmp_names(s.dir), tmp_names(s.dir))
    finally:
        s.release()
        check("SIGTERM: exit 0", s.g.stop() == 0, s.g.p.returncode)


def run_threads(tmp):
    r = subprocess.run([GRACED, "--sync-threads", "0"], capture_output=True, text=True)
    check("--sync-threads 0: exit 2 naming it", r.returncode == 2 and "--sync-threads" in r.stderr,
          (r.returncode, r.stderr))
    s = Slow(tmp, "threads", "--sync-threads", "3")
    try:
        bodies = [os.urandom(2 * MiB) for _ in range(4)]
        outs = [[] for _ in bodies]
        ts = [put_thread(s.g.port, "/t%d.bin" % i, b, o) for i, (b, o) in
              enumerate(zip(bodies, outs))]
        three = wait_for(lambda: s.count("start") == 3)
        time.sleep(0.5)  # a fourth would start now if it could
        check("--sync-threads 3: three held fsyncs at a time, the fourth waits",
              three and s.count("start") == 3, s.count("start"))
        check("GETs answered meanwhile", s.gets() == 5)
        s.release()
        for t in ts:
            t.join(30)
        ok = all(o and o[0][0] == 201 for o in outs)
        bad = []
        for i, b in enumerate(bodies):
            with open(os.path.join(s.dir, "t%d.bin" % i), "rb") as f:
                got = f.read()
            if got != b:
                bad.append((i, len(got), next((k for k in range(min(len(got), len(b)))
                                                if got[k] != b[k]), None)))
        check("all four answered 201 with their bytes once released", ok and not bad,
              ([o[:1] for o in outs], bad))
    finally:
        s.release()
        s.g.stop()


def run_form_bound(tmp):
    """A form of 8 files of 1 MiB while the fsyncs are held: its parts commit
    one after the other, at most 4 wait for their commit (then reading
    pauses), all stored once released."""
    s = Slow(tmp, "formbound")
    try:
        parts = [("p%d.bin" % i, os.urandom(MiB)) for i in range(8)]
        data, hdrs = form_body(parts)
        out = []
        t = put_thread(s.g.port, "/", data, out, hdrs)
        check("form: one part's fsync held", wait_for(lambda: s.count("start") == 1))
        time.sleep(0.5)  # more parts would be read (or committed) now if they could
        waiting = len(tmp_names(s.dir))
        check("form: parts commit in order, at most 4 wait, one more is read (%d files)" % waiting,
              4 <= waiting <= 5 and s.count("start") == 1 and not out, (waiting, out[:1]))
        s.release()
        t.join(30)
        ok = out and out[0][0] == 201
        for name, want in parts:
            with open(os.path.join(s.dir, name), "rb") as f:
                ok = ok and f.read() == want
        check("form: then 201, all 8 files whole, no temporary file", ok and not tmp_names(s.dir),
              (out[:1], tmp_names(s.dir)))
    finally:
        s.release()
        s.g.stop()


def run_commit_fails(tmp):
    """The disk fills up at the last moment (fsync fails ENOSPC): 507, the
    name untouched, no temporary file; a form says what was stored."""
    s = Slow(tmp, "fails", errno=28)
    s.release()
    try:
        with open(os.path.join(s.dir, "keep.bin"), "wb") as f:
            f.write(b"old")
        st, body, _ = req(s.g.port, "PUT", "/keep.bin", os.urandom(2 * MiB))
        with open(os.path.join(s.dir, "keep.bin"), "rb") as f:
            check("PUT whose fsync fails ENOSPC: 507, the old file untouched, nothing left",
                  st == 507 and f.read() == b"old" and not tmp_names(s.dir), (st, body))
        data, hdrs = form_body([("small.bin", b"s" * 1000), ("big.bin", os.urandom(2 * MiB)),
                                ("after.bin", b"a" * 10)])
        st, body, _ = req(s.g.port, "POST", "/", data, hdrs)
        check("form whose second part's fsync fails: 507 naming the part stored before it",
              st == 507 and b"could not store big.bin" in body and
              b"stored before: small.bin" in body and b"after.bin" not in body, (st, body))
        check("form: the first part stored, no other file, nothing left",
              open(os.path.join(s.dir, "small.bin"), "rb").read() == b"s" * 1000 and
              not os.path.exists(os.path.join(s.dir, "big.bin")) and
              not os.path.exists(os.path.join(s.dir, "after.bin")) and not tmp_names(s.dir),
              os.listdir(s.dir))
    finally:
        check("SIGTERM: exit 0", s.g.stop() == 0, s.g.p.returncode)


def run_dir_sync_fails(tmp):
    """The rename is done but the folder's fsync fails (EIO): the name holds
    the whole new content, which may not survive a crash. Not a 2xx (it was
    201/204 with a warning): 500 saying so, for PUT (new and replacing), a
    form part (the parts before it listed) and DELETE; no retry (a second
    fsync after a failed one can report success for what the first lost).
    The small-file cache forgets the old content all the same."""
    s = Slow(tmp, "dirfail", "--log-level", "info", dir_errno=5)
    s.release()
    try:
        st, body, r = req(s.g.port, "PUT", "/new.bin", b"new content")
        check("PUT whose folder fsync fails: 500 saying the name may hold it, not durable",
              st == 500 and b"not durable" in body and r.getheader("ETag") is None and
              r.getheader("Location") is None, (st, body, r.getheaders()))
        with open(os.path.join(s.dir, "new.bin"), "rb") as f:
            check("... the name holds the whole content, no temporary file",
                  f.read() == b"new content" and not tmp_names(s.dir), os.listdir(s.dir))
        st, body, _ = req(s.g.port, "GET", "/small.txt")  # into the small-file cache
        st, body, _ = req(s.g.port, "PUT", "/small.txt", b"replaced")
        check("PUT over a file whose folder fsync fails: 500", st == 500 and b"not durable" in body,
              (st, body))
        st, body, _ = req(s.g.port, "GET", "/small.txt")
        check("... GET serves what the name holds (the cache forgot the old content)",
              st == 200 and body == b"replaced", (st, body))
        data, hdrs = form_body([("fa.txt", b"a"), ("fb.txt", b"b")])
        st, body, _ = req(s.g.port, "POST", "/", data, hdrs)
        check("a form whose first part's folder fsync fails: 500 naming it, fb.txt not stored",
              st == 500 and b"fa.txt" in body and b"not durable" in body and
              not os.path.exists(os.path.join(s.dir, "fb.txt")), (st, body))
        st, body, _ = req(s.g.port, "DELETE", "/new.bin")
        check("DELETE whose folder fsync fails: 500, not durable", st == 500 and
              b"not durable" in body and not os.path.exists(os.path.join(s.dir, "new.bin")),
              (st, body))
        # stderr is read by a thread: the last line may come just after the answer
        check("each failure logged",
              wait_for(lambda: sum("not durable" in x for x in s.err) >= 4, 5), s.err[-4:])
    finally:
        check("SIGTERM: exit 0", s.g.stop() == 0, s.g.p.returncode)


def run_if_match_race(tmp):
    """Concurrent PUTs naming the same version (If-Match): exactly one
    replaces it (204), the others find it changed (412), across the pool's
    threads of one graced and across two graced on one folder. The shim
    holds every fsync until all uploads are committing, then makes each
    rename wait 300 ms: without a lock shared by the commits each checked
    If-Match before any renamed, and all answered 204."""
    a = Slow(tmp, "ifmatch-a", "--sync-threads", "4", env_add={"SLOWSYNC_RENAME_MS": "300"})
    b = Slow(tmp, "ifmatch-b", "--sync-threads", "4", env_add={"SLOWSYNC_RENAME_MS": "300"},
             shared=a.dir)
    try:
        for rnd, ports in (("one graced, 4 threads", [a.g.port] * 4),
                           ("two graced on one folder", [a.g.port, b.g.port] * 2)):
            open(a.gate, "w").close()
            open(b.gate, "w").close()
            path = os.path.join(a.dir, "race.bin")
            with open(path, "wb") as f:
                f.write(b"the version they all name")
            st, _, r = req(a.g.port, "GET", "/race.bin")
            etag = r.getheader("ETag")
            bodies = [bytes([65 + i]) * (MiB + i) for i in range(len(ports))]
            outs = [[] for _ in ports]
            starts = a.count("start") + b.count("start")
            ts = [threading.Thread(target=lambda port=port, body=body, out=out: out.append(
                      req(port, "PUT", "/race.bin", body, {"If-Match": etag})[:2]))
                  for port, body, out in zip(ports, bodies, outs)]
            for t in ts:
                t.start()
            held = wait_for(lambda: a.count("start") + b.count("start") == starts + len(ports))
            a.release()
            b.release()
            for t in ts:
                t.join(60)
            codes = sorted(o[0][0] if o else None for o in outs)
            with open(path, "rb") as f:
                got = f.read()
            winner = [i for i, o in enumerate(outs) if o and o[0][0] == 204]
            check("%s: %d PUTs with the same If-Match, all committing at once: one 204, "
                  "the others 412" % (rnd, len(ports)),
                  held and codes == [204] + [412] * (len(ports) - 1), (held, codes))
            check("%s: the file is the 204's upload, whole; no temporary file" % rnd,
                  len(winner) == 1 and got == bodies[winner[0]] and not tmp_names(a.dir),
                  (winner, len(got), tmp_names(a.dir)))
    finally:
        a.release()
        b.release()
        check("SIGTERM: both exit 0", a.g.stop() == 0 and b.g.stop() == 0)


def run_writeback(tmp):
    """Write-back starts while the body arrives (sync_file_range, every 8 MiB
    new, looked at every 25 ms), so the final fsync has little left: a PUT
    of 40 MiB sent in two halves; after the first 24 MiB, write-back has
    been started for them before the rest is sent (the shim notes each
    sync_file_range with the offset it reaches); then it is answered 201.
    Progress, not time: the test waits for the kick, then sends on."""
    s = Slow(tmp, "writeback")
    s.release()
    try:
        first, rest = os.urandom(24 * MiB), os.urandom(16 * MiB)
        c = socket.create_connection(("127.0.0.1", s.g.port), timeout=30)
        c.sendall(b"PUT /wb.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                  % (len(first) + len(rest)) + first)

        def kicks():
            try:
                with open(s.log) as f:
                    return [int(x.split()[1]) for x in f if x.startswith("kick ")]
            except OSError:
                return []
        early = wait_for(lambda: kicks(), timeout=30)
        check("write-back started during the body: sync_file_range before the rest is sent "
              "(up to %s bytes)" % (max(early) if early else None),
              early and 8 * MiB <= max(early) <= len(first), early)
        c.sendall(rest)
        resp = b""
        while b"\r\n\r\n" not in resp:
            d = c.recv(4096)
            if not d:
                break
            resp += d
        c.close()
        with open(os.path.join(s.dir, "wb.bin"), "rb") as f:
            check("... then 201, the 40 MiB whole", resp.startswith(b"HTTP/1.1 201") and
                  f.read() == first + rest, resp[:40])
    finally:
        check("SIGTERM: exit 0", s.g.stop() == 0, s.g.p.returncode)


def run_nice_denied(tmp):
    """The pool's threads lower their priority (nice +10) with setpriority,
    which systemd's SystemCallFilter=~@resources denies (EPERM): that was
    ignored, and the threads competed with the loop unnoticed. Now one warn
    line per process, however many threads tried; the uploads are stored."""
    s = Slow(tmp, "nice", "--sync-threads", "3", env_add={"SLOWSYNC_NO_SETPRIORITY": "1"})
    try:
        bodies = [os.urandom(2 * MiB) for _ in range(3)]
        outs = [[] for _ in bodies]
        ts = [put_thread(s.g.port, "/n%d.bin" % i, b, o) for i, (b, o) in
              enumerate(zip(bodies, outs))]
        three = wait_for(lambda: s.count("start") == 3)  # three threads, each tried
        s.release()
        for t in ts:
            t.join(30)
        check("three uploads held at once (three threads): all 201",
              three and all(o and o[0][0] == 201 for o in outs), [o[:1] for o in outs])
        tried = s.count("setpriority")
        said = [x for x in s.err if "setpriority" in x]
        check("setpriority denied in %d threads: said once, at warn, naming the systemd setting"
              % tried, tried >= 3 and len(said) == 1 and "warn" in said[0] and
              "SystemCallFilter=setpriority" in said[0], (tried, said))
    finally:
        s.release()
        check("SIGTERM: exit 0", s.g.stop() == 0, s.g.p.returncode)


def run_no_renameat2_flags(tmp):
    """A filesystem that refuses RENAME_NOREPLACE (EINVAL, as NFS does):
    --no-overwrite still stores a new name and never replaces one (link)."""
    s = Slow(tmp, "nfsish", "--no-overwrite", no_noreplace=True)
    try:
        # the name appears while the upload's fsync is held: the final
        # link(2) refuses it, as RENAME_NOREPLACE would
        out = []
        t = put_thread(s.g.port, "/race.bin", os.urandom(2 * MiB), out)
        wait_for(lambda: s.count("start") == 1)
        with open(os.path.join(s.dir, "race.bin"), "wb") as f:
            f.write(b"came first")
        s.release()
        t.join(30)
        with open(os.path.join(s.dir, "race.bin"), "rb") as f:
            check("no RENAME_NOREPLACE: a name taken during the fsync is not replaced (412)",
                  out and out[0][0] == 412 and f.read() == b"came first" and not tmp_names(s.dir),
                  (out[:1], os.listdir(s.dir)))
        st, _, _ = req(s.g.port, "PUT", "/n.txt", b"first")
        st2, _, _ = req(s.g.port, "PUT", "/n.txt", b"second")
        data, hdrs = form_body([("n.txt", b"third")])
        st3, _, _ = req(s.g.port, "POST", "/", data, hdrs)
        with open(os.path.join(s.dir, "n.txt"), "rb") as f:
            check("no RENAME_NOREPLACE: new name 201, then PUT and form over it 412, untouched",
                  (st, st2, st3) == (201, 412, 412) and f.read() == b"first" and
                  not tmp_names(s.dir), (st, st2, st3, os.listdir(s.dir)))
    finally:
        s.g.stop()


def run_reserve(tmp):
    """A PUT's blocks are reserved before its body is read: a disk that
    cannot take the Content-Length is answered 507 at once, before the
    client sends the body (Expect: 100-continue gets the 507, not a 100).
    The disk: a 4 MiB tmpfs in graced's own mount namespace (root)."""
    d = os.path.join(tmp, "small-disk")
    os.mkdir(d)
    if os.geteuid() != 0:
        check("a small disk needs root (unshare -m)", False)
        return
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                          "mount -t tmpfs -o size=4m tmpfs \"$1\" && exec \"$2\" --listen "
                          "127.0.0.1:0 --root \"$1\" --upload-dir \"$1\"", "sh", d, GRACED],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
        view = "/proc/%d/root%s" % (p.pid, d)  # the tmpfs, as graced sees it
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"PUT /big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % (8 * MiB))
        first = c.recv(4096)
        c.close()
        check("8 MiB announced to a 4 MiB disk: 507 before the body (no 100 Continue)",
              first.startswith(b"HTTP/1.1 507"), first[:80])
        body = os.urandom(MiB)
        st, _, _ = req(port, "PUT", "/fits.bin", body)
        with open(os.path.join(view, "fits.bin"), "rb") as f:
            check("1 MiB fits: 201, stored", st == 201 and f.read() == body, st)
        check("no temporary file left on the small disk", not tmp_names(view), os.listdir(view))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_client_gone(tmp):
    s = Slow(tmp, "gone", "--log-level", "info")
    try:
        body = os.urandom(4 * MiB)
        c = socket.create_connection(("127.0.0.1", s.g.port), timeout=30)
        c.sendall(b"PUT /reset.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
        check("a reset client: the fsync started (held)", wait_for(lambda: s.count("start") == 1))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST
        check("graced notices the reset during the fsync",
              wait_for(lambda: any("abandoned" in x and "reset.bin" in x for x in s.err)),
              s.err[-3:])
        s.release()
        check("the fsync ends", wait_for(lambda: s.count("done") == 1))
        check("graced goes on serving", s.gets(1) == 1)
        check("a reset client: no temporary file, nothing stored under its name",
              wait_for(lambda: not tmp_names(s.dir)) and
              not os.path.exists(os.path.join(s.dir, "reset.bin")), os.listdir(s.dir))

        # a client that sends all, then closes (FIN): the upload is complete
        open(s.gate, "w").close()
        c = socket.create_connection(("127.0.0.1", s.g.port), timeout=30)
        c.sendall(b"PUT /closed.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
        check("a closing client: the fsync started (held)", wait_for(lambda: s.count("start") == 2))
        c.close()
        time.sleep(0.2)
        s.release()
        check("a closing client: the fsync ends", wait_for(lambda: s.count("done") == 2))
        path = os.path.join(s.dir, "closed.bin")
        check("a closing client: stored whole, no temporary file",
              wait_for(lambda: not tmp_names(s.dir) and os.path.exists(path)) and
              open(path, "rb").read() == body, os.listdir(s.dir))
        check("graced still serves", s.gets(1) == 1)
    finally:
        s.release()
        check("SIGTERM: exit 0", s.g.stop() == 0, s.g.p.returncode)


def run_stop(tmp):
    # a graceful stop waits for the upload's answer
    s = Slow(tmp, "stop1")
    body = os.urandom(3 * MiB)
    try:
        out = []
        t = put_thread(s.g.port, "/s.bin", body, out)
        check("stop: the fsync started (held)", wait_for(lambda: s.count("start") == 1))
        s.g.p.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        alive = s.g.p.poll() is None
        s.release()
        t.join(30)
        rc = s.g.stop()
        with open(os.path.join(s.dir, "s.bin"), "rb") as f:
            stored = f.read()
        check("SIGTERM during an upload's fsync: it is answered 201, stored, then exit 0",
              alive and out and out[0][0] == 201 and stored == body and rc == 0,
              (alive, out[:1], rc))
    finally:
        s.release()
        s.g.stop()

    # the stop deadline (and "stop now") cut the request, not the job
    for name, sigs in (("stop2", 1), ("stop3", 2)):
        s = Slow(tmp, name, "--shutdown-timeout", "200ms")
        try:
            out = []
            t = put_thread(s.g.port, "/s.bin", body, out)
            check("%s: the fsync started (held)" % name, wait_for(lambda: s.count("start") == 1))
            for _ in range(sigs):
                s.g.p.send_signal(signal.SIGTERM)
                time.sleep(0.1)
            time.sleep(1.0)  # well past the deadline
            alive = s.g.p.poll() is None
            s.release()
            try:
                s.g.p.wait(20)
            except Exception:
                pass
            done = s.count("done")
            t.join(30)
            path = os.path.join(s.dir, "s.bin")
            whole = not os.path.exists(path) or open(path, "rb").read() == body
            check("%s: graced outlives the deadline while the fsync runs, exits 0 after it; "
                  "no temporary file, no partial file" % ("deadline" if sigs == 1 else "stop now"),
                  alive and done == 1 and s.g.p.returncode == 0 and not tmp_names(s.dir) and whole,
                  (alive, done, s.g.p.returncode, tmp_names(s.dir), whole))
        finally:
            s.release()
            s.g.stop()


def run_stop_commit(tmp):
    # the stop's deadline passes while an upload commits (its folder fsync,
    # after the rename, takes 2 s; --shutdown-timeout 1s): the answer says
    # what happened - 2xx with the whole file under its name, never a 503
    # (or no answer) for a file that is there. Before: '503 server shutting
    # down' and the file stored. A PUT and a form.
    # A DELETE too: its unlink is made when its folder fsync waits.
    for name, form in (("commit-put", False), ("commit-form", True), ("commit-delete", None)):
        s = Slow(tmp, name, "--shutdown-timeout", "1s", env_add={"SLOWSYNC_DIR_MS": "2000"})
        s.release()  # small files: only the folder fsync is slow
        try:
            body = os.urandom(100000)
            out = []
            if form is None:
                with open(os.path.join(s.dir, "c.bin"), "wb") as f:
                    f.write(body)

                def run_delete():
                    try:
                        out.append(req(s.g.port, "DELETE", "/c.bin", b"")[:2])
                    except OSError as e:
                        out.append((repr(e), b""))
                t = threading.Thread(target=run_delete)
                t.start()
            elif form:
                data, hdrs = form_body([("c.bin", body)])
                t = put_thread(s.g.port, "/", data, out, hdrs)
            else:
                t = put_thread(s.g.port, "/c.bin", body, out)
            check("%s: the folder fsync started (after the rename)" % name,
                  wait_for(lambda: s.count("dirwait") >= 1))
            s.g.p.send_signal(signal.SIGTERM)
            t.join(30)
            try:
                s.g.p.wait(20)
            except Exception:
                pass
            path = os.path.join(s.dir, "c.bin")
            there = os.path.exists(path)
            whole = there and open(path, "rb").read() == body
            st = out[0][0] if out else None
            ok2xx = isinstance(st, int) and 200 <= st < 300
            if form is None:
                check("%s: a stop's deadline while the DELETE syncs its folder: 204, the file "
                      "gone; exit 0" % name, st == 204 and not there and s.g.p.returncode == 0,
                      (out[:1], there, s.g.p.returncode))
                continue
            check("%s: a stop's deadline during the commit: 2xx and the whole file, or no 2xx "
                  "and no file; exit 0" % name,
                  ((ok2xx and whole) or (not ok2xx and not there)) and s.g.p.returncode == 0
                  and not tmp_names(s.dir),
                  (out[:1], there, whole, s.g.p.returncode, tmp_names(s.dir)))
            check("%s: it was answered, not cut (2xx)" % name, ok2xx, out[:1])
        finally:
            s.g.stop()


def run_durable(tmp):
    up = os.path.join(tmp, "durable")
    os.mkdir(up)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    try:
        body = os.urandom(8 * MiB + 7)
        st, _, r = req(g.port, "PUT", "/d/spliced.bin", body)
        etag = r.getheader("ETag")
        with open(os.path.join(up, "d", "spliced.bin"), "rb") as f:
            check("PUT 8 MiB: 201 with an ETag, bytes intact", st == 201 and etag and
                  f.read() == body, st)
        st, got, r = req(g.port, "GET", "/d/spliced.bin")
        check("its ETag is the file's", st == 200 and r.getheader("ETag") == etag and got == body)

        def chunks():
            for i in range(0, len(body), 300000):
                yield body[i:i + 300000]
        st, _, _ = req(g.port, "PUT", "/d/spliced.bin", chunks(), {"Transfer-Encoding": "chunked"},
                       chunked=True)
        with open(os.path.join(up, "d", "spliced.bin"), "rb") as f:
            check("chunked PUT over it: 204, bytes intact", st == 204 and f.read() == body, st)
        st, _, _ = req(g.port, "PUT", "/d/spliced.bin", b"x", {"If-None-Match": "*"})
        check("If-None-Match: * on an existing file: 412", st == 412, st)
        st, _, _ = req(g.port, "PUT", "/d/spliced.bin", b"x", {"If-Match": etag})
        check("If-Match with a replaced version's ETag: 412", st == 412, st)
        data, hdrs = form_body([("f1.txt", b"one"), ("f2.bin", body)])
        st, got, _ = req(g.port, "POST", "/d/", data, hdrs)
        ok = st == 201
        for n, want in (("f1.txt", b"one"), ("f2.bin", body)):
            with open(os.path.join(up, "d", n), "rb") as f:
                ok = ok and f.read() == want
        check("a form of two files: 201, both intact", ok, st)
        check("no temporary file left", not tmp_names(up) and not tmp_names(os.path.join(up, "d")))
    finally:
        g.stop()


def main():
    if not os.path.exists(SHIM):
        print("FAIL no %s (make check builds it)\n0 passed, 1 failed" % SHIM)
        return 1
    return run_sections((run_durable, run_loop_free, run_threads, run_form_bound,
                         run_commit_fails, run_dir_sync_fails, run_if_match_race, run_writeback,
                         run_nice_denied,
                         run_no_renameat2_flags, run_reserve, run_client_gone,
                         run_stop, run_stop_commit),
                        "graced-sync.")


if __name__ == "__main__":
    sys.exit(main())
