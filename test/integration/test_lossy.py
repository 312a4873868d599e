#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Early answers outside the lab, against graced with its default linger:

- a lossy path: two network namespaces joined by lossy_link (a user-space
  forwarder on a TUN pair: 25 ms each way, 1% of packets dropped, seeded),
  and a Python http.client with reno congestion control that PUTs 16 MiB
  without a token. TCP on such a path stalls for whole retransmission
  timeouts and runs at ~3 Mbit/s: the upload takes ~45 s, past
  linger-time, and must still read its early 401.
- a big fast upload: 1.5 GiB without a token over loopback must read its
  401 too (no byte cap on the linger by default).

The lossy path needs root (namespaces, /dev/net/tun) and the ip command:
without them that part is skipped, except under CI=1, where it fails.
Every process started here is stopped by PID and both namespaces are
deleted, also when a check fails. Prints a line per check and
"N passed, N failed"."""
import atexit
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import BUILD, GRACED, MiB, Graced, check, run_sections  # noqa: E402

LINK = os.path.abspath(os.path.join(BUILD, "test", "integration", "lossy_link"))
SRV_ADDR, CLI_ADDR, PORT = "10.231.0.1", "10.231.0.2", 8080
UPLOAD = 16 * MiB
DELAY_MS, LOSS_PCT, SEED = 25, 1, 17
# bounds, not measurements: the upload takes ~45 s, linger-max-time is 5 min.
# Python's sendall() applies its timeout to the whole body, not to each send.
CLIENT_TIMEOUT, CLIENT_LIMIT = 200, 240

netns = []     # namespaces created here, deleted at exit
children = []  # processes started here, killed at exit


def cleanup():
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()
    children.clear()
    for ns in netns:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    netns.clear()


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # atexit runs on SIGTERM too


def die_with_parent():
    """preexec: SIGKILL when this test dies, whatever kills it."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def ip(*args):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))


# ---------------------------------------------------------------- client mode

class RenoConnection(http.client.HTTPConnection):
    """http.client with reno, the congestion control that loss hurts most."""

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
        s.settimeout(self.timeout)
        s.connect((self.host, self.port))
        self.sock = s


def client(host, port, size):
    """Run in the client namespace: PUT size bytes without a token, the way
    http.client does (the whole body, then the answer); one JSON line."""
    out = {"status": None, "body": "", "error": None}
    c = RenoConnection(host, int(port), timeout=CLIENT_TIMEOUT)
    t0 = time.monotonic()
    try:
        c.connect()
        out["cc"] = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16) \
            .rstrip(b"\0").decode()
        c.request("PUT", "/big.bin", body=bytes(int(size)))
        r = c.getresponse()
        out["status"], out["body"] = r.status, r.read().decode(errors="replace")
    except OSError as e:
        out["error"] = repr(e)
    out["seconds"] = round(time.monotonic() - t0, 1)
    c.close()
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------- the lossy path

def lossy_missing():
    """Why the lossy path cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not shutil.which("ip"):
        return "needs the ip command (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if not os.access(LINK, os.X_OK):
        return "no %s" % LINK
    return None


def lossy_path():
    """Two namespaces joined by lossy_link: (server ns, client ns)."""
    tag = os.getpid()
    srv, cli = "glossy-srv-%d" % tag, "glossy-cli-%d" % tag
    for ns in (srv, cli):
        ip("netns", "add", ns)
        netns.append(ns)
    link = subprocess.Popen([LINK, "--ns-a", "/run/netns/" + srv, "--ns-b", "/run/netns/" + cli,
                             "--delay", str(DELAY_MS), "--loss", str(LOSS_PCT), "--seed",
                             str(SEED)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(link)
    if link.stdout.readline().strip() != "ready":
        raise RuntimeError("lossy_link: " + link.stderr.read())
    for ns, me, peer in ((srv, SRV_ADDR, CLI_ADDR), (cli, CLI_ADDR, SRV_ADDR)):
        ip("-n", ns, "addr", "add", me, "peer", peer, "dev", "lossy0")
        ip("-n", ns, "link", "set", "lossy0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
    # the namespace's default too, beside the client's own setsockopt
    subprocess.run(["ip", "netns", "exec", cli, "sysctl", "-q", "-w",
                    "net.ipv4.tcp_congestion_control=reno"], check=True)
    return srv, cli, link


def metric(text, name):
    m = re.search(r"^graced_%s(?:_total)? (\d+)$" % name, text, re.M)
    return int(m.group(1)) if m else None


def run_lossy_early_401(tmp):
    why = lossy_missing()
    if why:
        if os.environ.get("CI"):
            check("lossy path available under CI", False, why)
        else:
            print("skip lossy path: " + why, flush=True)
        return
    up = os.path.join(tmp, "lossy-up")
    os.mkdir(up)
    tok = os.path.join(tmp, "lossy-token")
    with open(tok, "w") as f:
        f.write("secret\n")
    try:
        srv, cli, link = lossy_path()
        # graced with its default linger: the point is that the defaults deliver
        g = subprocess.Popen(["ip", "netns", "exec", srv, GRACED, "--listen",
                              "%s:%d" % (SRV_ADDR, PORT), "--listen", "127.0.0.1:8081",
                              "--root", up, "--upload-dir", up, "--auth-token-file", tok,
                              "--metrics", "/metrics"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=die_with_parent)
        children.append(g)
        for _ in range(2):
            line = g.stdout.readline()
            if not re.search(r":\d+/$", line.strip()):
                raise RuntimeError("graced did not start: %r %s" % (line, g.stderr.read()))
        c = subprocess.run(["ip", "netns", "exec", cli, sys.executable, os.path.abspath(__file__),
                            "--client", SRV_ADDR, str(PORT), str(UPLOAD)],
                           capture_output=True, text=True, timeout=CLIENT_LIMIT,
                           preexec_fn=die_with_parent)
        try:
            r = json.loads(c.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            r = {"error": "client: %r %r" % (c.stdout, c.stderr)}
        print("   16 MiB over 25 ms each way, 1%% loss, %s: %s s, %s" %
              (r.get("cc"), r.get("seconds"), r.get("error") or r.get("status")), flush=True)
        check("lossy path: the client used reno", r.get("cc") == "reno", r)
        check("lossy path: 16 MiB PUT without token reads its early 401",
              r.get("status") == 401 and r.get("body") == "missing or wrong token\n", r)
        m = subprocess.run(["ip", "netns", "exec", srv, "curl", "-s", "--max-time", "10",
                            "http://127.0.0.1:8081/metrics"], capture_output=True, text=True)
        ext, slow = metric(m.stdout, "linger_extended"), metric(m.stdout, "linger_too_slow")
        # what makes this test worth its time: the upload outlived linger-time
        check("lossy path: the linger was extended past linger-time, never cut as too slow",
              ext == 1 and slow == 0, (ext, slow, m.stdout[-300:]))
        g.send_signal(signal.SIGTERM)
        g.wait(15)
        link.send_signal(signal.SIGTERM)
        link.wait(5)
        print("   " + link.stderr.read().strip().replace("\n", "\n   "), flush=True)
    finally:
        cleanup()


# ---------------------------------------------------------------- a big fast upload

def run_big_fast_upload(tmp):
    """1.5 GiB without a token at loopback speed: the linger has no byte
    cap by default, so the client sends it all and reads the 401."""
    size = 3 * (1 << 29)
    up = os.path.join(tmp, "big-up")
    os.mkdir(up)
    tok = os.path.join(tmp, "big-token")
    with open(tok, "w") as f:
        f.write("secret\n")
    g = Graced("--listen", "127.0.0.1:0", "--root", up, "--upload-dir", up, "--auth-token-file",
               tok, "--max-body-size", "2G", "--metrics", "/metrics")
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=60)
        buf = memoryview(bytearray(4 * MiB))
        sent, err, answer = 0, None, b""
        t0 = time.monotonic()
        try:
            s.sendall(b"PUT /big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            while sent < size:
                n = min(len(buf), size - sent)
                s.sendall(buf[:n])
                sent += n
            while True:
                d = s.recv(65536)
                if not d:
                    break
                answer += d
        except OSError as e:
            err = repr(e)
        s.close()
        print("   1.5 GiB: %d bytes sent in %.1f s, %s" % (sent, time.monotonic() - t0,
                                                          err or answer[:12]), flush=True)
        check("1.5 GiB PUT without token at loopback speed reads its 401",
              err is None and answer.startswith(b"HTTP/1.1 401 ") and
              answer.endswith(b"\r\n\r\nmissing or wrong token\n"), (sent, err, answer[:200]))
        with socket.create_connection(("127.0.0.1", g.port), timeout=10) as m:
            m.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            text = b""
            while True:
                d = m.recv(65536)
                if not d:
                    break
                text += d
        cap = metric(text.decode(errors="replace"), "linger_byte_cap")
        check("no linger cut by bytes", cap == 0, cap)
    finally:
        g.stop()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--client":
        client(*sys.argv[2:])
        return 0
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    return run_sections((run_big_fast_upload, run_lossy_early_401), "graced-lossy.")


if __name__ == "__main__":
    sys.exit(main())
