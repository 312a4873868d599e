#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Several graced on one --upload-dir (issue 17, "a fleet on one folder"): a
temporary upload file belongs to whoever holds a lock on it, not to a PID.

- an instance started in another PID namespace (a container) while an
  upload is in flight leaves its temporary file alone: the upload ends 201
  with the right bytes (it was deleted at that start-up, and answered 500);
- two instances, each PID 1 of its own namespace, under concurrent PUTs of
  one name while a third restarts on the folder again and again: every
  answer 2xx, every version read complete, no temporary file left;
- a sweep in the window between a file's creation and its lock (made wide
  by slowsync.so): the writer notices and starts over (it answered 500);
- start-up and the periodic sweep remove only unlocked files older than
  --stale-upload-age; a file locked by someone else stays, whatever its age.

Needs root (unshare -p): fails, not skips, without it. Loopback only; every
process started here is stopped by PID. ~15 s."""
import fcntl
import hashlib
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import (  # noqa: E402
    BUILD, GRACED, MiB, Graced, check, procs, req, run_sections, SHIM)


def tmp_names(d):
    out = []
    for dirpath, _dirs, files in os.walk(d):
        out += [os.path.join(dirpath, n) for n in files if n.startswith(".graced-tmp.")]
    return out


def child_of(pid, timeout=10.0):
    """The one child process of pid (graced under unshare --fork)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = f.read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    raise RuntimeError("no child under unshare %d" % pid)


class NsGraced(Graced):
    """graced as PID 1 of a new PID namespace (unshare -p -f --mount-proc),
    as in a container. unshare blocks SIGTERM, so a stop goes to graced
    itself; --kill-child takes graced along if unshare is killed."""
    def __init__(self, *args):
        p = subprocess.Popen(["unshare", "-p", "-f", "--mount-proc", "--kill-child", GRACED, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        self.p = p
        line = p.stdout.readline()
        m = re.search(r":(\d+)/$", line.strip())
        if not m:
            p.kill()
            p.wait()
            raise RuntimeError("graced in a PID namespace did not start: %r %s" %
                               (line, p.stderr.read()))
        self.port = int(m.group(1))
        self.pid = child_of(p.pid)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def ofd_lock(fd, kind=fcntl.F_WRLCK):
    """An open-file-description lock on the whole file, as graced takes."""
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0))


def run_pidns_start(tmp):
    """The issue's case: an 8 MiB upload in flight on instance A; instance B
    starts in another PID namespace on the same folder (and would remove
    any unlocked temporary file: --stale-upload-age 0)."""
    up = os.path.join(tmp, "fleet1")
    os.mkdir(up)
    body = os.urandom(8 * MiB)
    a = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    b = None
    s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
    try:
        s.sendall(b"PUT /big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.sendall(body[:4 * MiB])
        end = time.time() + 10
        while time.time() < end and not [n for n in tmp_names(up) if os.path.getsize(n) >= MiB]:
            time.sleep(0.02)
        check("an upload in flight has its temporary file", tmp_names(up), os.listdir(up))
        b = NsGraced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
                     "--stale-upload-age", "0")
        check("an instance started in another PID namespace leaves it alone", tmp_names(up),
              os.listdir(up))
        s.sendall(body[4 * MiB:])
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        status = out.split(b"\r\n", 1)[0]
        try:
            with open(os.path.join(up, "big.bin"), "rb") as f:
                stored = f.read()
        except OSError:
            stored = b""
        check("the upload ends 201 with its 8 MiB intact", status.startswith(b"HTTP/1.1 201") and
              stored == body, (status, len(stored)))
        st, got, _ = req(b.port, "GET", "/big.bin")
        check("the other instance serves it", st == 200 and got == body, (st, len(got)))
        check("no temporary file left", not tmp_names(up), tmp_names(up))
    finally:
        s.close()
        if b:
            check("the namespaced instance stops cleanly (SIGTERM to its PID 1)", b.stop() == 0,
                  b.p.returncode)
        check("instance A stops cleanly", a.stop() == 0, a.p.returncode)


def run_two_instances(tmp):
    """A and B, each PID 1 of its namespace (so their PIDs are the same),
    take PUTs of one name from 4 clients at once, while instance C starts
    on the folder again and again with --stale-upload-age 0; a reader
    checks that every version it sees is one that was sent, whole."""
    up = os.path.join(tmp, "fleet2")
    os.mkdir(up)
    a = NsGraced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    b = NsGraced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    sent, statuses, seen, errors = set(), [], [], []
    lock = threading.Lock()
    done = threading.Event()

    def writer(t):
        for i in range(10):
            body = os.urandom((1 + (t + i) % 3) * MiB)
            with lock:
                sent.add(hashlib.sha256(body).hexdigest())
            port = (a if (t + i) % 2 else b).port
            try:
                st, _, _ = req(port, "PUT", "/same.bin", body)
            except OSError as e:
                st = repr(e)
            with lock:
                statuses.append(st)

    def reader():
        while not done.is_set():
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
            try:
                c.request("GET", "/same.bin")
                r = c.getresponse()
                data = r.read()
                if r.status == 200:
                    seen.append(hashlib.sha256(data).hexdigest())
                elif r.status != 404:
                    errors.append(r.status)
            except OSError as e:
                errors.append(repr(e))
            finally:
                c.close()
            time.sleep(0.01)

    ws = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    rd = threading.Thread(target=reader)
    restarts = 0
    try:
        for t in ws + [rd]:
            t.start()
        while any(t.is_alive() for t in ws) and restarts < 40:
            c = NsGraced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
                         "--stale-upload-age", "0")
            restarts += 1
            c.stop()
            time.sleep(0.05)
        for t in ws:
            t.join(120)
        done.set()
        rd.join(30)
        with lock:
            bad = [s for s in statuses if s not in (201, 204)]
            unknown = [h for h in seen if h not in sent]
        check("%d concurrent PUTs of one name on two instances (%d start-ups of a third): all 2xx"
              % (len(statuses), restarts), len(statuses) == 40 and not bad and restarts >= 2,
              (bad, len(statuses), restarts))
        check("every version read is one sent, whole (%d reads)" % len(seen),
              seen and not unknown and not errors, (len(unknown), errors[:3]))
        with open(os.path.join(up, "same.bin"), "rb") as f:
            final = hashlib.sha256(f.read()).hexdigest()
        check("the file left is one of those sent", final in sent)
        check("no temporary file left", not tmp_names(up), tmp_names(up))
    finally:
        done.set()
        check("both instances stop cleanly", a.stop() == 0 and b.stop() == 0,
              (a.p.returncode, b.p.returncode))
        for x in (a, b):
            err = x.p.stderr.read()
            if "error" in err:
                print("  stderr of %d: %s" % (x.port, err[-2000:]))


def run_lock_window(tmp):
    """The window between creating a temporary file and locking it, made
    2 s wide (slowsync.so delays the first lock): a sweep in that window
    (another instance starting, --stale-upload-age 0, in another PID
    namespace) takes the file, removes it and lets go; the writer's lock
    then lands on a file without a name. It must notice and start over
    under a new name: 201 with the bytes, not 500."""
    up = os.path.join(tmp, "fleet4")
    os.mkdir(up)
    log = os.path.join(tmp, "fleet4.log")
    env = dict(os.environ, LD_PRELOAD=SHIM, SLOWSYNC_LOCK_MS="2000", SLOWSYNC_LOG=log)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                 "verify_asan_link_order=0"]))
    a = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, env=env)
    body = os.urandom(MiB)
    out = []

    def put():
        try:
            out.append(req(a.port, "PUT", "/w.bin", body)[0])
        except OSError as e:
            out.append(repr(e))
    t = threading.Thread(target=put)
    b = None
    try:
        t.start()
        end = time.time() + 10
        while time.time() < end and not (os.path.exists(log) and "lock" in open(log).read()):
            time.sleep(0.01)
        first = tmp_names(up)
        time.sleep(0.05)
        b = NsGraced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
                     "--stale-upload-age", "0")
        check("a sweep in the create-lock window removes the new, unlocked file",
              first and not [n for n in tmp_names(up) if n in first], (first, tmp_names(up)))
        t.join(30)
        try:
            with open(os.path.join(up, "w.bin"), "rb") as f:
                stored = f.read()
        except OSError:
            stored = b""
        check("the writer starts over under a new name: 201, bytes intact, nothing left",
              out == [201] and stored == body and not tmp_names(up), (out, len(stored)))
    finally:
        t.join(30)
        if b:
            b.stop()
        a.stop()


def run_stale_rules(tmp):
    """Start-up removes what is unlocked and older than --stale-upload-age,
    nothing locked, nothing fresh; a running worker sweeps again."""
    up = os.path.join(tmp, "fleet3")
    os.makedirs(os.path.join(up, "sub"))
    old = time.time() - 7200
    files = {"old": True, "sub/old2": True, "fresh": False, "locked": False}
    held = []
    for n in files:
        p = os.path.join(up, os.path.dirname(n), ".graced-tmp.0123456789abcdef." +
                         os.path.basename(n))
        with open(p, "w") as f:
            f.write("partial")
        if n != "fresh":
            os.utime(p, (old, old))
        if n == "locked":  # another host's upload in flight, paused a long time
            fd = os.open(p, os.O_WRONLY)
            ofd_lock(fd)
            held.append(fd)
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up)
    try:
        left = sorted(os.path.relpath(p, up) for p in tmp_names(up))
        check("start-up removes unlocked files older than --stale-upload-age (1h), "
              "in subfolders too; keeps fresh and locked ones",
              left == [".graced-tmp.0123456789abcdef.fresh",
                       ".graced-tmp.0123456789abcdef.locked"], left)
    finally:
        g.stop()
    # the periodic sweep of a running instance: --stale-upload-age 1s
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up,
               "--stale-upload-age", "1s")
    try:
        p = os.path.join(up, "sub", ".graced-tmp.00000000000000ff.late")
        with open(p, "w") as f:
            f.write("left by a crash after the start")
        end = time.time() + 20  # one sweep may see one file old enough, the next both
        while time.time() < end and (os.path.exists(p) or len(tmp_names(up)) > 1):
            time.sleep(0.1)
        left = sorted(os.path.relpath(p, up) for p in tmp_names(up))
        check("a running instance sweeps again: a crash's file goes, the locked one stays",
              left == [".graced-tmp.0123456789abcdef.locked"], left)
        st, _, _ = req(g.port, "PUT", "/after.txt", b"still fine")
        check("uploads work beside the sweep", st == 201, st)
    finally:
        g.stop()
        for fd in held:
            os.close(fd)


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    if os.geteuid() != 0:
        print("FAIL unshare -p needs root\n0 passed, 1 failed")
        return 1
    if not os.path.exists(SHIM):
        print("FAIL no %s (make check builds it)\n0 passed, 1 failed" % SHIM)
        return 1
    return run_sections((run_pidns_start, run_two_instances, run_lock_window, run_stale_rules),
                        "graced-fleet.")


if __name__ == "__main__":
    sys.exit(main())
