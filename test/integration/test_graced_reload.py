#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""What a SIGHUP reloaded is what a worker restarted later serves (review of
graced: state carried to restarted workers).

--workers 2 with --users-file and --private: the file is changed (alice's
password), SIGHUP, each worker says it reloaded; then one worker is killed
(SIGKILL) and the supervisor starts another. Every request, on 40 fresh
connections (spread over both workers by SO_REUSEPORT), must take the new
password and refuse the old one: the new worker forks from the supervisor,
whose copy of the users must be the reloaded one, not the start's.

Loopback only; every graced started here is stopped by PID. ~3 s."""
import base64
import http.client
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import Graced, check, run_sections  # noqa: E402
from test_graced_ops import write_users  # noqa: E402

CONNS = 40


def wait_for(cond, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    return cond()


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


def main():
    return run_sections((run_users_after_restart,), "graced-reload.")


if __name__ == "__main__":
    sys.exit(main())
