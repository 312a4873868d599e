#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A rolling restart behind a real HAProxy (Debian's haproxy) in TCP mode:
three graced instances behind it with PROXY v2 (send-proxy-v2), health
checks on --health: docs/examples/haproxy.cfg itself, its addresses moved
to loopback.
Under load (Python http.client keep-alive threads sending GETs back to
back, and a loop of token-authorised PUTs of a few MiB), each instance in
turn gets SIGTERM, is waited for, started again and waited for until
HAProxy sees it up; twice round. Every request must succeed. Loopback
only; every process started here is stopped by PID; ~20 s.
Ends with "N passed, N failed"."""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import GRACED, MiB  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
results = []
procs = []

SRC = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# The recommended configuration, as documented: only the addresses change.
DOC_CFG = os.path.join(SRC, "docs", "examples", "haproxy.cfg")


def haproxy_cfg(text, sock, port, servers):
    """docs/examples/haproxy.cfg on this machine's loopback: its bind, server
    and stats socket lines point here; every other setting stays as written."""
    out, it = [], iter(servers)
    for line in text.splitlines():
        w = line.split()
        if w[:2] == ["stats", "socket"]:
            line = "    stats socket %s mode 600 level admin" % sock
        elif w[:1] == ["bind"]:
            line = "    bind 127.0.0.1:%d" % port
        elif w[:1] == ["server"]:
            name, sport = next(it)
            line = "    server %s 127.0.0.1:%d" % (name, sport)
        elif w[:1] == ["maxconn"]:
            line = "    maxconn 4096"
        out.append(line)
    return "\n".join(out) + "\n"


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Instance:
    """One graced on a fixed PROXY port, started again after each stop."""

    def __init__(self, name, port, tmp, graced=GRACED, extra=(), health=True):
        self.name, self.port, self.graced, self.extra = name, port, graced, tuple(extra)
        self.health = ("--health", "/healthz") if health else ()
        self.root = os.path.join(tmp, name)
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "small.txt"), "w") as f:
            f.write("small from %s\n" % name)
        self.token = os.path.join(tmp, "token")
        self.p = None

    def start(self):
        args = [self.graced, "--proxy-listen", "127.0.0.1:%d" % self.port,
                "--proxy-from", "127.0.0.0/8", "--root", self.root, "--upload-dir", self.root,
                "--auth-token-file", self.token, *self.health,
                "--shutdown-timeout", "10s", "--log-level", "warn", *self.extra]
        for _ in range(50):  # the port may still be held by the last one's exit
            self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
            procs.append(self.p)
            if "listening" in self.p.stdout.readline():
                return
            self.p.wait()
            time.sleep(0.1)
        raise RuntimeError("%s did not start" % self.name)

    def stop(self, timeout=30):
        """SIGTERM, then wait for the exit; the exit status."""
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return "killed"
        self.p.stdout.close()
        return self.p.returncode


class Fleet:
    """HAProxy in front of three graced instances."""

    def __init__(self, tmp, graced=GRACED, cfg=None, extra=(), health=True):
        """cfg: HAProxy's configuration text (docs/examples/haproxy.cfg by
        default); health False: a graced without --health, checked on a file."""
        self.tmp = tmp
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write("fleettoken\n")
        self.inst = [Instance("g%d" % i, free_port(), tmp, graced, extra, health)
                     for i in range(3)]
        self.port = free_port()
        self.sock = os.path.join(tmp, "haproxy.sock")
        if cfg is None:
            with open(DOC_CFG) as f:
                cfg = f.read()
        if not health:
            cfg = cfg.replace("uri /healthz", "uri /small.txt")
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(haproxy_cfg(cfg, self.sock, self.port,
                                [(i.name, i.port) for i in self.inst]))
        for i in self.inst:
            i.start()
        self.hap = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        procs.append(self.hap)
        for i in self.inst:
            self.wait_state(i.name, "UP", 20)

    def admin(self, cmd):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall((cmd + "\n").encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out.decode()

    def state(self, name):
        """UP, DOWN, ... as HAProxy's stats say, or "?"."""
        try:
            out = self.admin("show stat")
        except OSError:
            return "?"
        for line in out.splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0] == "graced" and f[1] == name:
                return f[17].split(" ")[0]
        return "?"

    def wait_state(self, name, want, limit):
        end = time.time() + limit
        while time.time() < end:
            if self.state(name) == want:
                return True
            time.sleep(0.05)
        return False

    def rolling_restart(self, rounds=2, outage=0.0):
        """Each instance in turn: SIGTERM, its exit, a new start, UP again.
        The first round starts it again at once (HAProxy may not even see it
        go); later rounds wait until HAProxy has marked it DOWN (connections
        refused meanwhile: its retries and redispatch at work), then outage
        seconds more (a slow start)."""
        report = []
        for rnd in range(rounds):
            for i in self.inst:
                t0 = time.time()
                rc = i.stop()
                stopped = time.time() - t0
                down = self.wait_state(i.name, "DOWN", 10) if rnd else None
                if rnd:
                    time.sleep(outage)
                i.start()
                up = self.wait_state(i.name, "UP", 20)
                report.append((i.name, rc, round(stopped, 2), down, up))
        return report

    def close(self):
        for i in self.inst:
            if i.p and i.p.poll() is None:
                i.stop()
        self.hap.terminate()
        try:
            self.hap.wait(10)
        except subprocess.TimeoutExpired:
            self.hap.kill()
            self.hap.wait()


class Getter(threading.Thread):
    """GETs back to back through HAProxy on a keep-alive connection (a new
    one after Connection: close); every failure counted."""

    def __init__(self, port, done):
        super().__init__(daemon=True)
        self.port, self.done = port, done
        self.ok = self.failed = 0
        self.errors = []

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.done.is_set():
            try:
                c.request("GET", "/small.txt")
                r = c.getresponse()
                body = r.read()
                if r.status == 200 and body.startswith(b"small from"):
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append("status %d" % r.status)
                if r.will_close:
                    c.close()
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                self.errors.append(repr(e))
                c.close()
        c.close()


class Uploader(threading.Thread):
    """PUTs of 3 MiB with the token, one after another, each on a new
    connection; every answer but 201/204 counted as a failure. paced: the
    body goes at ~3 MB/s (a second each), so uploads are in flight when an
    instance is told to stop."""

    def __init__(self, port, done, paced=False):
        super().__init__(daemon=True)
        self.port, self.done, self.paced = port, done, paced
        self.ok = self.failed = 0
        self.errors = []

    def body(self):
        piece = b"p" * (64 << 10)
        for _ in range(48):
            yield piece
            time.sleep(0.02)

    def run(self):
        n = 0
        while not self.done.is_set():
            n += 1
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                c.request("PUT", "/up%d%s.bin" % (n % 4, "p" if self.paced else ""),
                          body=self.body() if self.paced else b"p" * (3 * MiB),
                          headers={"Authorization": "Bearer fleettoken",
                                   "Content-Length": str(3 * MiB)})
                r = c.getresponse()
                r.read()
                if r.status in (201, 204):
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append("status %d" % r.status)
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                self.errors.append(repr(e))
            finally:
                c.close()


def under_load(fleet, action, ngetters=8, nuploaders=2):
    """Run action() while the load runs; (action's result, getters, uploaders)."""
    done = threading.Event()
    getters = [Getter(fleet.port, done) for _ in range(ngetters)]
    ups = [Uploader(fleet.port, done, paced=i % 2 == 1) for i in range(nuploaders)]
    for t in getters + ups:
        t.start()
    time.sleep(0.5)
    try:
        res = action()
    finally:
        time.sleep(0.5)
        done.set()
        for t in getters + ups:
            t.join(60)
    return res, getters, ups


def run_rolling_restart(tmp):
    fleet = Fleet(tmp)
    try:
        report, getters, ups = under_load(fleet, lambda: fleet.rolling_restart(rounds=2))
        check("rolling restart: every instance exited 0 (HAProxy marked it DOWN in the "
              "second round) and came back UP",
              all(rc == 0 and up and down is not False for _, rc, _, down, up in report), report)
        ok = sum(g.ok for g in getters)
        failed = sum(g.failed for g in getters)
        check("rolling restart x2 behind HAProxy (TCP, PROXY v2): %d GETs, none failed" % ok,
              failed == 0 and ok > 100, (failed, [e for g in getters for e in g.errors][:5]))
        uok = sum(u.ok for u in ups)
        ufailed = sum(u.failed for u in ups)
        pok = ups[1].ok
        check("... %d uploads of 3 MiB meanwhile (%d of them paced over a second, in flight "
              "at the stops), none failed" % (uok, pok),
              ufailed == 0 and uok > 3 and pok >= 3, (ufailed, [e for u in ups for e in u.errors][:5]))
    finally:
        fleet.close()


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    if not os.access(HAPROXY, os.X_OK):
        if os.environ.get("CI"):
            print("0 passed, 1 failed (no haproxy: setup.sh installs it)")
            return 1
        print("skip: no haproxy (apt-get install haproxy)")
        return 77
    tmp = tempfile.mkdtemp(prefix="graced-haproxy.")
    try:
        run_rolling_restart(tmp)
    except Exception as e:  # a crashed section is a failure, not a hang
        check("rolling restart raised", False, repr(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
