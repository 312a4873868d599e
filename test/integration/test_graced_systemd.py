#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""graced under systemd's protocols, with the test in systemd's place:
sd_notify(3) messages received on an AF_UNIX datagram socket the test binds
(NOTIFY_SOCKET: READY=1 once the port answers, RELOADING=1 then READY=1
around SIGHUP, STOPPING=1 on SIGTERM; with --workers READY=1 once every
worker is up, STATUS= when one dies and is back), and socket activation
(LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) of sockets named http, proxy and
proxy-https. Loopback only; every graced started here is stopped by PID.
About 15 s. Ends with "N passed, N failed"."""
import fcntl
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_graced as tg  # noqa: E402
from test_graced import check, req, GRACED, procs  # noqa: E402


class Notify:
    """systemd's end of NOTIFY_SOCKET: a datagram socket on a path, or on an
    abstract name (NOTIFY_SOCKET=@name)."""

    def __init__(self, tmp, abstract=False):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        tag = "%d-%d" % (os.getpid(), time.monotonic_ns())
        if abstract:
            self.s.bind("\0graced-test-notify-" + tag)
            self.env = "@graced-test-notify-" + tag
        else:
            self.env = os.path.join(tmp, "notify-" + tag)
            self.s.bind(self.env)
        self.seen = []  # every message, as a dict

    def next(self, key, timeout=20):
        """The next message with key=value ("READY=1"); None after timeout.
        Messages before it are kept in self.seen too."""
        want = key.split("=", 1)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(4096).decode()
            except socket.timeout:
                return None
            m = dict(line.split("=", 1) for line in d.split("\n") if "=" in line)
            m["_at"] = time.monotonic()
            self.seen.append(m)
            if m.get(want[0]) == want[1]:
                return m

    def close(self):
        self.s.close()


def start(tmp, args, env_add, pass_fds=()):
    """graced with extra environment; stderr into a file: (Popen, err path)."""
    err = os.path.join(tmp, "graced-%d.err" % time.monotonic_ns())
    with open(err, "w") as ef:
        p = subprocess.Popen([GRACED, *args], stdout=subprocess.PIPE, stderr=ef, text=True,
                             env={**os.environ, **env_add}, pass_fds=pass_fds)
    procs.append(p)
    return p, err


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def run_notify_one(tmp):
    """One process: READY=1 once the port answers; SIGHUP: RELOADING=1 with
    MONOTONIC_USEC, then READY=1; SIGTERM: STOPPING=1."""
    for abstract in (False, True):
        kind = "@abstract" if abstract else "path"
        n = Notify(tmp, abstract)
        port = free_port()
        p, err = start(tmp, ["--listen", "127.0.0.1:%d" % port, "--root", tmp], {"NOTIFY_SOCKET": n.env})
        try:
            ready = n.next("READY=1")
            st = req(port, "GET", "/nope")[0] if ready else None
            check("notify (%s): READY=1, and the port answers at once (404)" % kind,
                  ready and st == 404, (ready, st, open(err).read()[-300:]))
            check("notify (%s): no MAINPID= from the main process itself" % kind,
                  ready and "MAINPID" not in ready, ready)
            if abstract:
                continue
            t0 = time.monotonic()
            p.send_signal(signal.SIGHUP)
            rl = n.next("RELOADING=1")
            usec = int(rl.get("MONOTONIC_USEC", "0")) if rl else 0
            check("notify: SIGHUP -> RELOADING=1 with MONOTONIC_USEC of this clock",
                  rl and abs(usec / 1e6 - t0) < 30, (rl, t0))
            again = n.next("READY=1")
            check("notify: ... then READY=1 after the reload", again is not None, n.seen)
            p.send_signal(signal.SIGTERM)
            check("notify: SIGTERM -> STOPPING=1", n.next("STOPPING=1") is not None, n.seen)
            check("notify: then graced ends with 0", p.wait(15) == 0, p.returncode)
        finally:
            stop(p)
            n.close()
    # a NOTIFY_SOCKET that is not an address: one warning, graced serves on
    p, err = start(tmp, ["--listen", "127.0.0.1:0", "--root", tmp], {"NOTIFY_SOCKET": "relative/x"})
    try:
        line = p.stdout.readline()
        check("notify: a NOTIFY_SOCKET that is not a path or @name: warned, still serving",
              "listening on" in line and "NOTIFY_SOCKET" in open(err).read(), (line, open(err).read()))
    finally:
        stop(p)


def run_notify_workers(tmp):
    """--workers 3: READY=1 with MAINPID once all workers are up (a SIGHUP at
    once kills none); a worker killed: STATUS= says 2 of 3, then 3 of 3;
    SIGHUP: RELOADING=1, READY=1 once all reloaded; SIGTERM: STOPPING=1."""
    n = Notify(tmp)
    port = free_port()
    p, err = start(tmp, ["--listen", "127.0.0.1:%d" % port, "--root", tmp, "--workers", "3"],
                   {"NOTIFY_SOCKET": n.env})
    try:
        ready = n.next("READY=1")
        # every worker has its handlers once READY=1: SIGHUP kills none
        if ready:
            p.send_signal(signal.SIGHUP)
        check("notify --workers 3: READY=1 with MAINPID of the main process, all 3 serving",
              ready and ready.get("MAINPID") == str(p.pid) and "3 of 3" in ready.get("STATUS", ""),
              (ready, open(err).read()[-300:]))
        oks = [req(port, "GET", "/nope")[0] for _ in range(12)]
        check("notify --workers 3: the port answers on every connection at READY=1",
              oks == [404] * 12, oks)
        rl = n.next("RELOADING=1")
        again = n.next("READY=1") if rl else None
        check("notify --workers 3: SIGHUP at READY=1 -> RELOADING=1, READY=1 once all reloaded",
              rl and again and "MONOTONIC_USEC" in rl, n.seen)
        time.sleep(0.3)
        text = open(err).read()
        check("notify --workers 3: a SIGHUP right at READY=1 killed no worker",
              "killed by signal" not in text and "restarted" not in text, text[-400:])
        kids = children(p.pid)
        if kids:
            os.kill(kids[0], signal.SIGKILL)
        down = n.next("STATUS=2 of 3 workers serving; restarting the others")
        back = n.next("STATUS=3 of 3 workers serving") if down else None
        check("notify --workers 3: a worker killed -> STATUS 2 of 3, then 3 of 3 when back",
              len(kids) == 3 and down and back and "READY" not in down, (kids, n.seen[-3:]))
        p.send_signal(signal.SIGTERM)
        check("notify --workers 3: SIGTERM -> STOPPING=1", n.next("STOPPING=1") is not None, n.seen[-2:])
        check("notify --workers 3: ends with 0", p.wait(15) == 0, p.returncode)
    finally:
        stop(p)
        n.close()


SHIM = tg.SHIM


def notes(path, what, pid=None):
    """the values of the shim's "what VALUE PID" lines (of one process)"""
    try:
        with open(path) as f:
            return [int(x.split()[1]) for x in f if x.startswith(what + " ") and
                    (pid is None or int(x.split()[2]) == pid)]
    except OSError:
        return []


def note_pids(path, what):
    try:
        with open(path) as f:
            return [int(x.split()[2]) for x in f if x.startswith(what + " ")]
    except OSError:
        return []


def wait_until(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def run_worker_start(tmp):
    """A worker the supervisor starts again is fresh for a while: its loop,
    server and pool are made before its signal handlers. The shim widens
    that (the pool's eventfd waits 400 ms) and makes each worker's reload of
    the users file slow (500 ms).
     - SIGHUPs to the supervisor then (systemctl reload right after a
       restart) are forwarded to it: they must wait for its handlers, not
       kill it (SIGHUP's default action);
     - RELOADING=1, then READY=1 only once every worker has reloaded, the
       fresh one too: its "up" of the start, sent before it got to the
       SIGHUP waiting for it, must not count for the reload;
     - SIGTERM to the supervisor in that window: forwarded, it must stop the
       fresh worker gracefully (exit 0), not kill it."""
    if not os.path.exists(SHIM):
        check("the shim %s (make check builds it)" % SHIM, False)
        return
    n = Notify(tmp)
    port = free_port()
    users = os.path.join(tmp, "ws-users")
    with open(users, "w") as f:
        f.write("alice:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq."
                "qc.eUoqKG3.gxm6n1/pgJ1a/:rw\n")
    log = os.path.join(tmp, "ws.log")
    env = {"NOTIFY_SOCKET": n.env, "LD_PRELOAD": SHIM, "SLOWSYNC_LOG": log,
           "SLOWSYNC_EVENTFD_MS": "400", "SLOWSYNC_OPEN_PATH": users, "SLOWSYNC_OPEN_MS": "500",
           "ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                  "verify_asan_link_order=0"]))}
    p, err = start(tmp, ["--listen", "127.0.0.1:%d" % port, "--root", tmp, "--workers", "2",
                         "--users-file", users], env)
    try:
        ready = n.next("READY=1", timeout=30)
        kids = children(p.pid)
        check("worker start: READY=1 with 2 workers", ready and len(kids) == 2,
              (ready, kids, open(err).read()[-300:]))
        if not ready or len(kids) != 2:
            return
        started = len(notes(log, "eventfd-wait"))
        os.kill(kids[0], signal.SIGKILL)
        fresh = wait_until(lambda: len(notes(log, "eventfd-wait")) == started + 1)
        for _ in range(5):  # a storm of reloads while the fresh worker has no handlers yet
            p.send_signal(signal.SIGHUP)
            time.sleep(0.02)
        in_window = len(notes(log, "eventfd")) == started  # its eventfd still waits
        rl = n.next("RELOADING=1")
        again = n.next("READY=1") if rl else None
        wait_until(lambda: len(children(p.pid)) == 2 and
                   len(notes(log, "opened")) >= 3, timeout=10)
        time.sleep(0.5)
        text = open(err).read()
        check("worker start: SIGHUPs while a restarted worker has no handlers yet kill it not",
              fresh and in_window and "killed by signal 1;" not in text, (fresh, in_window, text[-500:]))
        pid = note_pids(log, "eventfd-wait")[started] if fresh else None
        opened = [t / 1e6 for t in notes(log, "opened", pid)]  # its reload
        check("worker start: READY=1 after the reload only once every worker has reloaded "
              "(the fresh one too)", again and opened and again["_at"] >= max(opened),
              (again and again["_at"], opened, n.seen[-4:]))
        # and a stop signal in that window
        kids = children(p.pid)
        started, done = len(notes(log, "eventfd-wait")), len(notes(log, "eventfd"))
        if kids:
            os.kill(kids[0], signal.SIGKILL)
        fresh = wait_until(lambda: len(notes(log, "eventfd-wait")) == started + 1)
        p.send_signal(signal.SIGTERM)
        in_window = len(notes(log, "eventfd")) == done
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            pass
        text = open(err).read()
        check("worker start: SIGTERM while a restarted worker has no handlers yet: it stops "
              "gracefully, graced exits 0", fresh and in_window and p.returncode == 0 and
              "abnormally" not in text and "killed by signal 15" not in text,
              (fresh, in_window, p.returncode, text[-500:]))
    finally:
        stop(p)
        n.close()


def listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def activate(tmp, names, args, env_add=None):
    """graced started as systemd starts it: sockets named names on fds 3...;
    (Popen, err path, ports). LISTEN_PID must be graced's own pid: bash sets
    it to $$ and execs graced in its place."""
    socks = [listening_socket() for _ in names]
    high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in socks]
    moves = " ".join("%d<&%d %d<&-" % (3 + i, h, h) for i, h in enumerate(high))
    script = ('exec %s; LISTEN_PID=$$ LISTEN_FDS=%d LISTEN_FDNAMES=%s exec "$0" "$@"' %
              (moves, len(names), ":".join(names)))
    err = os.path.join(tmp, "graced-sa-%d.err" % time.monotonic_ns())
    with open(err, "w") as ef:
        p = subprocess.Popen(["bash", "-c", script, GRACED, *args], stdout=subprocess.PIPE,
                             stderr=ef, text=True, pass_fds=high, env={**os.environ, **(env_add or {})})
    procs.append(p)
    ports = [s.getsockname()[1] for s in socks]
    for fd in high:
        os.close(fd)
    for s in socks:
        s.close()
    return p, err, ports


def read_all(s):
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (OSError, ssl.SSLError):
        pass
    s.close()
    return out


def run_activation_names(tmp):
    if b"without TLS" in subprocess.run([GRACED, "--tls-cert", "x", "--tls-key", "y", "--tls-listen",
                                         "127.0.0.1:0"], capture_output=True).stderr:
        print("skip: libgracehttp built without TLS")
        return
    root = os.path.join(tmp, "sa")
    os.mkdir(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("activated\n")
    cert, key = os.path.join(tmp, "sa.pem"), os.path.join(tmp, "sa.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    log = os.path.join(tmp, "sa-access.log")
    get = b"GET /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

    # a PROXY socket needs --proxy-from, as --proxy-listen does
    p, err, ports = activate(tmp, ["http", "proxy"], ["--root", root])
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass
    text = open(err).read()
    check("activation: a socket named proxy without --proxy-from: exit 2, one line",
          p.poll() == 2 and "--proxy-from" in text and len(text.strip().splitlines()) == 1,
          (p.poll(), text))
    stop(p, signal.SIGKILL)

    n = Notify(tmp)
    p, err, ports = activate(tmp, ["http", "proxy", "proxy-https"],
                             ["--root", root, "--proxy-from", "127.0.0.1", "--tls-cert", cert,
                              "--tls-key", key, "--access-log", log, "--listen", "127.0.0.1:1",
                              "--proxy-listen", "127.0.0.1:2", "--tls-listen", "127.0.0.1:3"],
                             {"NOTIFY_SOCKET": n.env})
    try:
        ready = n.next("READY=1")
        line = p.stdout.readline()
        check("activation: READY=1 and the start line counts the sockets",
              ready and "3 socket(s) from systemd, 1 of them TLS, 2 PROXY" in line,
              (ready, line, open(err).read()))
        st = req(ports[0], "GET", "/f.txt")[0]
        check("activation: the socket named http serves plain HTTP", st == 200, st)
        s = socket.create_connection(("127.0.0.1", ports[1]), timeout=10)
        s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n" + get)
        out = read_all(s)
        check("activation: the socket named proxy takes a PROXY header, then HTTP",
              out.startswith(b"HTTP/1.1 200") and out.endswith(b"activated\n"), out[:80])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = socket.create_connection(("127.0.0.1", ports[2]), timeout=10)
        s.sendall(b"PROXY TCP4 198.51.100.3 127.0.0.1 4444 443\r\n")
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(get)
        out = read_all(t)
        check("activation: the socket named proxy-https takes a PROXY header, then TLS",
              out.startswith(b"HTTP/1.1 200") and out.endswith(b"activated\n"), out[:80])
        time.sleep(0.2)
        with open(log) as f:
            text = f.read()
        check("activation: the access log shows the clients of the PROXY headers",
              re.search(r'^203\.0\.113\.7 - - .*"-"$', text, re.M) and
              re.search(r'^198\.51\.100\.3 - - .*"TLSv1\.[23]"$', text, re.M), text)
    finally:
        stop(p)
        n.close()
    text = open(err).read()
    warn = [x for x in text.splitlines() if "ignored" in x]
    check("activation: one warning line names every listener option ignored",
          len(warn) == 1 and all(o in warn[0] for o in ("--listen 127.0.0.1:1", "--proxy-listen 127.0.0.1:2",
                                                        "--tls-listen 127.0.0.1:3")), text)

    # no listener option: no warning (the default 127.0.0.1:8080 is not one)
    p, err, ports = activate(tmp, ["web"], ["--root", root])
    try:
        line = p.stdout.readline()
        st = req(ports[0], "GET", "/f.txt")[0]
    finally:
        stop(p)
    text = open(err).read()
    check("activation without listener options: serves, no warning",
          "systemd" in line and st == 200 and "ignored" not in text, (line, st, text))


def run_unit(tmp):
    src = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
    with open(os.path.join(src, "docs", "graced.service")) as f:
        unit = f.read()
    with open(os.path.join(src, "docs", "graced.socket")) as f:
        sock = f.read()
    check("docs/graced.service is Type=notify, only the main process notifies",
          re.search(r"^Type=notify$", unit, re.M) and not re.search(r"^NotifyAccess=", unit, re.M),
          [x for x in unit.splitlines() if x.startswith(("Type=", "NotifyAccess="))])
    check("docs/graced.socket names the kinds of sockets (https, proxy, proxy-https)",
          all(n in sock for n in ("FileDescriptorName=https", "FileDescriptorName=proxy",
                                  "proxy-https")), sock[:200])


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return tg.run_sections((run_notify_one, run_notify_workers, run_worker_start,
                            run_activation_names, run_unit),
                           "graced-systemd.")


if __name__ == "__main__":
    sys.exit(main())
