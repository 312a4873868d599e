#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Every directory entry a 2xx stands on is on disk before the 2xx, and
every fsync runs off the event loop (review of graced: durability).

slowsync.so (LD_PRELOAD) notes each fsync that returns with the inode it
synced and the thread that waited for it (SLOWSYNC_TRACE=1): the event
loop of a single graced is its main thread (thread id = PID). The folders
are looked at by inode, only for what happened after the request was sent.

- a PUT to a path whose folders do not exist: the upload tree, each new
  folder and the file's folder synced, on pool threads;
- a form upload into new folders: the same;
- a resumable (tus) upload: its first creation syncs the folder that keeps
  uploads into the upload tree; its last PATCH stores into new folders with
  each synced; a termination (DELETE) syncs that folder before its 204;
- MKCOL: the new folder, its parent and the folders above synced; a folder
  fsync that fails is a 500, not a 201;
- DELETE of a file: its folder's fsync on a pool thread, and GETs answered
  while that fsync is held (SLOWSYNC_DIR_GATE); a folder's fsync that fails
  after a DELETE of a folder is a 500, not a 204;
- COPY and MOVE: a folder fsync that fails is a 500;
- a PATCH that does not complete an upload lets the upload's lock go before
  its answer (a client's next PATCH may reach another worker at once): the
  closes of the uploads' files are made slow (SLOWSYNC_CLOSE_MS), and the
  lock must be free as soon as the 204 is read.

Loopback only; every graced started here is stopped by PID. ~4 s."""
import base64
import fcntl
import http.client
import os
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import Graced, check, req, run_sections, wait_for, SHIM  # noqa: E402


class Traced:
    """A graced (one process: its loop is its main thread) whose fsyncs are
    noted; dir_errno: a folder's fsync fails so; gate: folders' fsyncs
    wait while that file exists."""
    def __init__(self, tmp, name, *args, dir_errno=0, gate=None, env_add=None):
        self.dir = os.path.join(tmp, name)
        os.mkdir(self.dir)
        with open(os.path.join(self.dir, "small.txt"), "w") as f:
            f.write("small file\n")
        self.log = os.path.join(tmp, name + ".log")
        env = dict(os.environ, LD_PRELOAD=SHIM, SLOWSYNC_LOG=self.log, SLOWSYNC_TRACE="1",
                   SLOWSYNC_DIR_ERRNO=str(dir_errno))
        if gate:
            env["SLOWSYNC_DIR_GATE"] = gate
        env.update(env_add or {})
        env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                     "verify_asan_link_order=0"]))
        self.g = Graced("--listen", "127.0.0.1:0", "--root", self.dir, "--upload-dir", self.dir,
                        "--list-dirs", *args, env=env)
        self.mark()

    def lines(self):
        try:
            with open(self.log) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def mark(self):
        """Only what happens from now on counts."""
        self.start = len(self.lines())

    def syncs(self):
        """{inode: set of 'loop'/'pool'} of the fsyncs since mark()."""
        out = {}
        for line in self.lines()[self.start:]:
            w = line.split()
            if len(w) == 4 and w[0] == "fsync":
                out.setdefault(int(w[1]), set()).add("loop" if w[2] == w[3] else "pool")
        return out

    def ino(self, rel):
        return os.stat(os.path.join(self.dir, rel)).st_ino

    def synced(self, rels):
        """The folders of rels not synced on a pool thread since mark()."""
        got = self.syncs()
        return [r or "(top)" for r in rels if "pool" not in got.get(self.ino(r), ())]

    def on_loop(self):
        return [i for i, where in self.syncs().items() if "loop" in where]

    def stop(self):
        return self.g.stop()


def form(files):
    b = b"graced-durable-boundary"
    out = b""
    for name, data in files:
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"%s\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n" % (b, name.encode())) + data + b"\r\n"
    return out + b"--%s--\r\n" % b, {"Content-Type": "multipart/form-data; boundary=" + b.decode(),
                                     "Accept": "application/json"}


def run_put(tmp):
    t = Traced(tmp, "put")
    try:
        st, _, _ = req(t.g.port, "PUT", "/n1/n2/n3/f.txt", b"durable\n")
        missing = t.synced(["", "n1", "n1/n2", "n1/n2/n3"])
        check("PUT into three new folders: 201, the upload tree and each folder synced on the "
              "pool before the answer", st == 201 and not missing, (st, "not synced:", missing))
        check("no fsync on the event loop", not t.on_loop(), t.on_loop())
        # a folder made by another upload, found there by this one
        t.mark()
        st, _, _ = req(t.g.port, "PUT", "/n1/n2/other.txt", b"x")
        missing = t.synced(["", "n1", "n1/n2"])
        check("PUT into folders that exist: the folders above synced too (one may be another "
              "upload's, not yet synced)", st == 201 and not missing, (st, missing))

        t.mark()
        data, hdrs = form([("a.bin", b"a" * 1000), ("b.bin", b"b" * 2000)])
        st, body, _ = req(t.g.port, "POST", "/f1/f2/", data, hdrs)
        missing = t.synced(["", "f1", "f1/f2"])
        check("form upload into two new folders: 201, each folder synced on the pool",
              st == 201 and b'"count":2' in body and not missing, (st, body[:200], missing))
        check("no fsync on the event loop (form)", not t.on_loop(), t.on_loop())
    finally:
        check("SIGTERM: exit 0", t.stop() == 0)


def run_resumable(tmp):
    t = Traced(tmp, "tus")
    try:
        body = os.urandom(5000)
        c = http.client.HTTPConnection("127.0.0.1", t.g.port, timeout=30)
        c.request("POST", "/r1/r2/", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)),
            "Upload-Metadata": "filename " + base64.b64encode(b"t.bin").decode()})
        r = c.getresponse()
        r.read()
        loc = r.getheader("Location") or ""
        missing = t.synced([""])
        check("the first tus creation: 201, the new folder of uploads synced into the upload "
              "tree", r.status == 201 and not missing, (r.status, loc, missing))
        t.mark()
        path = loc.split("127.0.0.1:%d" % t.g.port)[-1]
        c.request("PATCH", path, body=body, headers={
            "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream"})
        r = c.getresponse()
        r.read()
        c.close()
        with open(os.path.join(t.dir, "r1", "r2", "t.bin"), "rb") as f:
            whole = f.read() == body
        missing = t.synced(["", "r1", "r1/r2"])
        check("its last PATCH: 204, stored in the new folders, each synced on the pool",
              r.status == 204 and whole and not missing, (r.status, whole, missing))
        check("no fsync on the event loop (tus)", not t.on_loop(), t.on_loop())

        # termination: gone for good before the 204
        c = http.client.HTTPConnection("127.0.0.1", t.g.port, timeout=30)
        c.request("POST", "/", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": "100",
            "Upload-Metadata": "filename " + base64.b64encode(b"c.bin").decode()})
        r = c.getresponse()
        r.read()
        path = (r.getheader("Location") or "").split("127.0.0.1:%d" % t.g.port)[-1]
        t.mark()
        c.request("DELETE", path, headers={"Tus-Resumable": "1.0.0"})
        r = c.getresponse()
        r.read()
        c.close()
        missing = t.synced([".graced-tmp.uploads"])
        check("a tus termination: 204, the folder of uploads synced on the pool before it",
              r.status == 204 and not missing, (r.status, path, missing))
    finally:
        check("SIGTERM: exit 0", t.stop() == 0)


def run_mkcol(tmp):
    t = Traced(tmp, "mkcol")
    try:
        st, _, _ = req(t.g.port, "MKCOL", "/m1")
        t.mark()
        st, _, _ = req(t.g.port, "MKCOL", "/m1/m2")
        missing = t.synced(["", "m1", "m1/m2"])
        check("MKCOL: 201, the new folder, its parent and the upload tree synced on the pool",
              st == 201 and not missing, (st, missing))
    finally:
        t.stop()
    t = Traced(tmp, "mkcolfail", dir_errno=5)
    try:
        st, body, _ = req(t.g.port, "MKCOL", "/m1")
        check("MKCOL whose folder fsync fails (EIO): 500, not 201", st == 500, (st, body))
    finally:
        t.stop()


def run_delete(tmp):
    gate = os.path.join(tmp, "delete.gate")
    t = Traced(tmp, "delete", gate=gate)
    try:
        st, _, _ = req(t.g.port, "PUT", "/gone.txt", b"x")
        t.mark()
        st, _, _ = req(t.g.port, "DELETE", "/gone.txt")
        check("DELETE of a file: 204, its folder synced on a pool thread, none on the loop",
              st == 204 and not t.synced([""]) and not t.on_loop(),
              (st, t.synced([""]), t.on_loop()))

        req(t.g.port, "PUT", "/held.txt", b"x")
        open(gate, "w").close()
        t.mark()
        out = []

        def delete():
            try:
                out.append(req(t.g.port, "DELETE", "/held.txt")[0])
            except OSError as e:
                out.append(repr(e))
        th = threading.Thread(target=delete)
        th.start()
        held = wait_for(lambda: any(x.startswith("dirstart") for x in t.lines()[t.start:]))
        ok = 0
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", t.g.port, timeout=5)
            try:
                c.request("GET", "/small.txt")
                r = c.getresponse()
                ok += r.status == 200 and r.read() == b"small file\n"
            except OSError:
                break
            finally:
                c.close()
        pending = not out
        os.unlink(gate)
        th.join(30)
        check("3 GETs answered while a DELETE's folder fsync is held, the DELETE unanswered",
              held and ok == 3 and pending, (held, ok, pending))
        check("then the DELETE is answered 204, the file gone",
              out == [204] and not os.path.exists(os.path.join(t.dir, "held.txt")), out)
    finally:
        if os.path.exists(gate):
            os.unlink(gate)
        check("SIGTERM: exit 0", t.stop() == 0)


def run_dir_sync_fails(tmp):
    t = Traced(tmp, "dirfail", dir_errno=5)
    try:
        os.makedirs(os.path.join(t.dir, "tree", "sub"))
        with open(os.path.join(t.dir, "tree", "sub", "x.txt"), "w") as f:
            f.write("x")
        st, body, _ = req(t.g.port, "DELETE", "/tree")
        check("DELETE of a folder whose folder fsync fails (EIO): 500, not 204",
              st == 500, (st, body))
        with open(os.path.join(t.dir, "src.txt"), "w") as f:
            f.write("source\n")
        for method, dest in (("COPY", "/copied.txt"), ("MOVE", "/moved.txt")):
            st, body, _ = req(t.g.port, method, "/src.txt",
                              headers={"Destination": "http://127.0.0.1:%d%s" % (t.g.port, dest)})
            check("%s whose folder fsync fails (EIO): 500, not 201" % method, st == 500,
                  (st, body))
    finally:
        t.stop()


def lock_free(path):
    """Can a read lock be had on path now (nobody writes it)?"""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def run_lock_before_answer(tmp):
    t = Traced(tmp, "lock", env_add={"SLOWSYNC_CLOSE_MATCH": "/.graced-tmp.uploads/",
                                     "SLOWSYNC_CLOSE_MS": "400"})
    try:
        c = http.client.HTTPConnection("127.0.0.1", t.g.port, timeout=30)
        c.request("POST", "/", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": "1000",
            "Upload-Metadata": "filename " + base64.b64encode(b"l.bin").decode()})
        r = c.getresponse()
        r.read()
        path = (r.getheader("Location") or "").split("127.0.0.1:%d" % t.g.port)[-1]
        data = os.path.join(t.dir, path.lstrip("/"))
        free = []
        for off in (0, 100, 200):
            c.request("PATCH", path, body=b"p" * 100, headers={
                "Tus-Resumable": "1.0.0", "Upload-Offset": str(off),
                "Content-Type": "application/offset+octet-stream"})
            r = c.getresponse()
            r.read()
            free.append((r.status, lock_free(data)))
        c.close()
        check("PATCHes that do not complete: each 204 comes after the upload's lock is let go",
              free == [(204, True)] * 3, free)
    finally:
        check("SIGTERM: exit 0", t.stop() == 0)


def main():
    if not os.path.exists(SHIM):
        print("FAIL no %s (make check builds it)\n0 passed, 1 failed" % SHIM)
        return 1
    return run_sections((run_put, run_resumable, run_mkcol, run_delete, run_dir_sync_fails,
                         run_lock_before_answer),
                        "graced-durable.")


if __name__ == "__main__":
    sys.exit(main())
