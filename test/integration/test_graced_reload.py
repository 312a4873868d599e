#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""What a SIGHUP reloaded is what a worker restarted later serves (review of
graced: state carried to restarted workers).

Users:
--workers 2 with --users-file and --private: the file is changed (alice's
password), SIGHUP, each worker says it reloaded; then one worker is killed
(SIGKILL) and the supervisor starts another. Every request, on 40 fresh
connections (spread over both workers by SO_REUSEPORT), must take the new
password and refuse the old one: the new worker forks from the supervisor,
whose copy of the users must be the reloaded one, not the start's.

Certificates: --workers 2 over TLS; the certificate file is broken, SIGHUP
(both workers keep the old one), then a worker is killed: its replacement
must serve the certificate its sibling serves, not fail on the broken file
(restarted again and again, its connections left waiting).

Loopback only; every graced started here is stopped by PID. ~4 s."""
import base64
import http.client
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import Graced, check, run_sections, wait_for  # noqa: E402
from test_graced_ops import write_users  # noqa: E402
from test_graced_fix import make_cert  # noqa: E402

CONNS = 40


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def statuses(port, user, password):
    """The status of a GET on each of CONNS fresh connections."""
    auth = {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()}
    out = []
    for _ in range(CONNS):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", "/pub.txt", headers=auth)
            r = c.getresponse()
            r.read()
            out.append(r.status)
        except OSError as e:
            out.append(repr(e))
        finally:
            c.close()
    return out


def run_users_after_restart(tmp):
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    with open(os.path.join(root, "pub.txt"), "w") as f:
        f.write("for users only\n")
    users = os.path.join(tmp, "users")
    write_users(users, [("alice", "old secret", "r", b"$6$")])
    g = Graced("--listen", "127.0.0.1:0", "--root", root, "--users-file", users, "--private",
               "--workers", "2", "--restart-delay-max", "200ms", "--auth-fail-limit", "1000")
    err = []

    def drain():
        for line in g.p.stderr:
            err.append(line)
    threading.Thread(target=drain, daemon=True).start()
    try:
        st = statuses(g.port, "alice", "old secret")
        check("before: the old password is taken on every connection", st == [200] * CONNS, st)
        workers = wait_for(lambda: len(children(g.p.pid)) == 2 and children(g.p.pid))
        write_users(users, [("alice", "new secret", "r", b"$6$")])
        g.p.send_signal(signal.SIGHUP)
        reloaded = wait_for(lambda: all(any(re.search(r"worker %d: 1 user\(s\) loaded" % w, x)
                                            for x in err) for w in (1, 2)))
        check("SIGHUP: both workers reloaded the users", reloaded, err[-5:])
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        fresh = wait_for(lambda: len(children(g.p.pid)) == 2 and victim not in children(g.p.pid)
                         and any("restarted" in x for x in err))
        check("a worker killed (SIGKILL) is restarted", fresh, (children(g.p.pid), err[-5:]))
        st = statuses(g.port, "alice", "new secret")
        check("after the restart: the new password is taken on every connection (%d)" % CONNS,
              st == [200] * CONNS, st)
        st = statuses(g.port, "alice", "old secret")
        check("after the restart: the old password is refused on every connection (%d)" % CONNS,
              st == [401] * CONNS, st)
    finally:
        g.stop()
        check("SIGTERM: exit 0", g.p.returncode == 0, (g.p.returncode, err[-5:]))


def tls_gets(port):
    """CONNS fresh TLS connections, a GET on each: the statuses."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = []
    for _ in range(CONNS):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET /pub.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                        data += d
                    out.append(int(data.split(b" ", 2)[1]) if data else "eof")
        except (OSError, ValueError, IndexError) as e:
            out.append(type(e).__name__)
    return out


def run_certs_after_restart(tmp):
    root = os.path.join(tmp, "troot")
    os.mkdir(root)
    with open(os.path.join(root, "pub.txt"), "w") as f:
        f.write("public\n")
    crt, key = make_cert(tmp)
    g = Graced("--tls-listen", "127.0.0.1:0", "--tls-cert", crt, "--tls-key", key, "--root", root,
               "--workers", "2", "--restart-delay-max", "200ms")
    err = []

    def drain():
        for line in g.p.stderr:
            err.append(line)
    threading.Thread(target=drain, daemon=True).start()
    try:
        st = tls_gets(g.port)
        check("before: every TLS connection answered", st == [200] * CONNS, st)
        workers = wait_for(lambda: len(children(g.p.pid)) == 2 and children(g.p.pid))
        with open(crt + ".new", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        os.replace(crt + ".new", crt)
        g.p.send_signal(signal.SIGHUP)
        kept = wait_for(lambda: all(any("worker %d: certificates not reloaded" % w in x for x in err)
                                    for w in (1, 2)))
        check("a broken certificate + SIGHUP: both workers keep the old one", kept, err[-4:])
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: any("restarted" in x for x in err))
        time.sleep(0.5)  # a replacement that fails on the file fails within this
        st = tls_gets(g.port)
        fails = [x for x in err if "exited with status" in x]
        check("after a worker's restart: every TLS connection (%d) answered, no worker failing"
              % CONNS, st == [200] * CONNS and not fails, (st, fails[-3:]))
    finally:
        g.stop()
        check("SIGTERM: exit 0", g.p.returncode == 0, (g.p.returncode, err[-5:]))


def main():
    return run_sections((run_users_after_restart, run_certs_after_restart), "graced-reload.")


if __name__ == "__main__":
    sys.exit(main())
