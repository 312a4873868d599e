#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Trailers in both directions through the library's one API
(grace_reply_end_trailers, grace_request_trailer*), with real clients against
h2srv (HTTP/1.1 and h2c on one port, h2 by ALPN on a TLS port, a certificate
made here with openssl):
  Go net/http     reads resp.Trailer over HTTP/1.1, h2 (TLS) and h2c (x/net/http2),
                  and sends req.Trailer with a body of no length in each: the
                  server sees them (body) and echoes them (its trailers); a refused
                  trailer (Content-Length) leaves the reply going
  curl            --raw shows HTTP/1.1's last chunk and trailer section byte-exact;
                  -v --http2 (TLS) and --http2-prior-knowledge print the trailers
  Python h2       raw frames: the trailers are ONE HEADERS frame with END_STREAM after
                  DATA frames without it; a request HEADERS-DATA-HEADERS(trailers) is
                  read (a forbidden trailer dropped); trailers above max-trailer-bytes
                  get 431 on their stream while another stream on the same connection
                  is served and the connection goes on
  slow readers    4 MB ended with trailers to a client that reads nothing for 1.5 s
                  (h2, and HTTP/1.1 with a small receive buffer): everything arrives
Runs with /usr/bin/python3 (Debian's python3-h2); Go builds the client in
BUILD/trailerkit (GOPATH mode, golang-golang-x-net-dev). ~15 s."""
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

TOP = os.environ.get("top_builddir", "build")
SRC = os.environ.get("top_srcdir", ".")
SRV = os.environ.get("H2SRV") or os.path.join(TOP, "test", "integration", "h2srv")
HERE = os.path.dirname(os.path.abspath(__file__))
MAX_TRAILER = 1024  # the server's max-trailer-bytes here
_spec = importlib.util.spec_from_file_location("h2lib", os.path.join(HERE, "test_h2_lib.py"))
h2lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h2lib)
check, failures, n_checks, free_ports = h2lib.check, h2lib.failures, h2lib.n_checks, h2lib.free_ports


def need(tool):
    """A tool the test needs: under CI its absence fails, else it skips."""
    if shutil.which(tool):
        return True
    check(not os.environ.get("CI"), "%s is installed" % tool)
    return False


class Fixture:
    def __init__(self, work):
        self.work = work
        self.cert, self.key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                            self.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1"], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("openssl req: " + r.stderr)
        self.port, self.tls_port = free_ports(2)
        self.p = subprocess.Popen([SRV, "--port", str(self.port), "--tls-port", str(self.tls_port),
                                   "--cert", self.cert, "--key", self.key,
                                   "--opt", "max-trailer-bytes=%d" % MAX_TRAILER],
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError("h2srv did not start: %r" % line)
        self.plain = "http://127.0.0.1:%d" % self.port
        self.tls = "https://127.0.0.1:%d" % self.tls_port

    def stop(self):
        """A graceful stop: under ASan, LeakSanitizer speaks at the exit."""
        self.p.terminate()
        try:
            rc = self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        check(rc == 0, "h2srv stops and exits cleanly (%s)" % rc)


# ---------------------------------------------------------------- Go

def go_client():
    d = os.path.join(os.path.abspath(TOP), "trailerkit")
    exe = os.path.join(d, "trailers-go")
    src = os.path.join(HERE, "trailers_client.go")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, GOCACHE=os.path.join(d, "gocache"),
               GOPATH=os.path.join(d, "gopath") + ":/usr/share/gocode", GO111MODULE="off",
               GOPROXY="off", GOFLAGS="", GOTOOLCHAIN="local", CGO_ENABLED="0")
    r = subprocess.run(["go", "build", "-o", exe, src], capture_output=True, text=True, env=env,
                       cwd=d, timeout=600)
    if r.returncode:
        raise RuntimeError("go build trailers_client.go: " + r.stderr[-1500:])
    return exe


def go(exe, fx, how, path, *args):
    url = (fx.tls if how == "h2" else fx.plain) + path
    cmd = [exe] + (["-ca", fx.cert] if how == "h2" else ["-h2c"] if how == "h2c" else [])
    r = subprocess.run(cmd + list(args) + [url], capture_output=True, text=True, timeout=90)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": "no JSON: %r %r" % (r.stdout[-300:], r.stderr[-300:]), "trailer": None}


def case_go(fx):
    if not need("go"):
        return
    exe = go_client()
    proto = {"h1": "HTTP/1.1", "h2": "HTTP/2.0", "h2c": "HTTP/2.0"}
    for how in ("h1", "h2", "h2c"):
        n = 100000 if how == "h2" else 1000
        r = go(exe, fx, how, "/trailers?%d" % n)
        check(r.get("status") == 200 and r.get("proto") == proto[how] and r.get("body_len") == n and
              r.get("trailer") == {"Grpc-Status": ["0"], "Grpc-Message": ["all sent"],
                                   "X-Bytes": [str(n)]},
              "Go %s: resp.Trailer after %d bytes (%s)" % (how, n, {k: v for k, v in r.items() if k != "body"}))
        r = go(exe, fx, how, "/echo-trailers", "-post", "hello world", "-trailer", "X-Sum=11",
               "-trailer", "Grpc-Status=0", "-trailer", "X-Rep=a", "-trailer", "X-Rep=b",
               "-trailer", "Authorization=secret")
        body = r.get("body", "")
        got = sorted(body.split("|", 1)[1].lower().rstrip(";").split(";")) if "|" in body else body
        check(r.get("status") == 200 and body.startswith("11|") and
              got == ["grpc-status=0", "x-rep=a", "x-rep=b", "x-sum=11"],
              "Go %s: req.Trailer reaches grace_request_trailer_at, Authorization dropped (%r)" % (how, body))
        check(r.get("trailer") == {"Grpc-Status": ["0"], "X-Rep": ["a", "b"], "X-Sum": ["11"]},
              "Go %s: and comes back as unannounced response trailers (%s)" % (how, r.get("trailer")))
        r = go(exe, fx, how, "/trailers-bad")
        check(r.get("body") == "hello" and
              r.get("trailer") == {"X-First-Rc": ["-22"], "Grpc-Status": ["0"]},
              "Go %s: a refused trailer (-EINVAL) leaves the reply going (%s)" % (how, r.get("trailer")))


# ---------------------------------------------------------------- curl

def case_curl(fx):
    if not need("curl"):
        return
    r = subprocess.run(["curl", "-s", "--raw", fx.plain + "/trailers?10"], capture_output=True,
                       timeout=30)
    check(r.stdout == b"a\r\nxxxxxxxxxx\r\n0\r\ngrpc-status: 0\r\nGrpc-Message: all sent\r\n"
                      b"x-bytes: 10\r\n\r\n",
          "curl --raw: the last chunk and the trailer section (%r)" % r.stdout[-120:])
    for how, args in (("h2", ["--http2", "--cacert", fx.cert, fx.tls]),
                      ("h2c", ["--http2-prior-knowledge", fx.plain])):
        r = subprocess.run(["curl", "-s", "-v", "-o", "/dev/null"] + args[:-1] +
                           [args[-1] + "/trailers?70000"], capture_output=True, text=True,
                           timeout=30)
        lines = r.stderr.splitlines()
        tr = [ln for ln in lines if ln.startswith("< grpc-") or ln.startswith("< x-bytes")]
        check(r.returncode == 0 and any(ln.startswith("< HTTP/2 200") for ln in lines) and
              tr == ["< grpc-status: 0", "< grpc-message: all sent", "< x-bytes: 70000"],
              "curl %s: prints the trailers (rc %d, %s)" % (how, r.returncode, tr))


# ---------------------------------------------------------------- Python h2, raw frames

class Raw:
    """An h2c connection: frames as they come (type, flags, stream, length), and h2's events."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                       header_encoding="utf-8"))
        self.c.initiate_connection()
        self.buf = b""
        self.frames = []
        self.st = {}
        self.goaway = None
        self.flush()

    def flush(self):
        d = self.c.data_to_send()
        if d:
            self.s.sendall(d)

    def split(self, data):
        self.buf += data
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            self.frames.append((self.buf[3], self.buf[4],
                                int.from_bytes(self.buf[5:9], "big") & 0x7fffffff, n))
            self.buf = self.buf[9 + n:]

    def pump(self, t=0.2):
        self.s.settimeout(t)
        try:
            d = self.s.recv(1 << 20)
        except socket.timeout:
            return
        if not d:
            raise ConnectionError("closed")
        self.split(d)
        for e in self.c.receive_data(d):
            sid = getattr(e, "stream_id", None)
            st = self.st.setdefault(sid, {"body": b"", "trailers": None, "ended": False,
                                          "status": None, "reset": None})
            if isinstance(e, h2.events.ResponseReceived):
                st["status"] = int(dict(e.headers)[":status"])
            elif isinstance(e, h2.events.DataReceived):
                st["body"] += e.data
                self.c.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, h2.events.TrailersReceived):
                st["trailers"] = list(e.headers)
            elif isinstance(e, h2.events.StreamEnded):
                st["ended"] = True
            elif isinstance(e, h2.events.StreamReset):
                st["reset"] = e.error_code
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.goaway = e.error_code
        self.flush()

    def until(self, cond, limit=20):
        end = time.monotonic() + limit
        while not cond() and time.monotonic() < end:
            self.pump()
        return cond()

    def done(self, sid):
        st = self.st.get(sid)
        return st is not None and (st["ended"] or st["reset"] is not None)

    def request(self, path, method="GET", end=True):
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                                  (":authority", "127.0.0.1")], end_stream=end)
        self.flush()
        return sid


HEADERS, DATA, CONTINUATION = 1, 0, 9
END_STREAM, END_HEADERS = 1, 4


def case_raw(fx):
    c = Raw(fx.port)
    sid = c.request("/trailers?40000")
    c.until(lambda: c.done(sid))
    fr = [f for f in c.frames if f[2] == sid]
    kinds = [f[0] for f in fr]
    last = fr[-1] if fr else None
    check(c.st[sid]["status"] == 200 and len(c.st[sid]["body"]) == 40000 and
          c.st[sid]["trailers"] == [("grpc-status", "0"), ("grpc-message", "all sent"),
                                    ("x-bytes", "40000")],
          "h2 raw: 40000 bytes, then the trailers (%s)" % c.st[sid]["trailers"])
    check(last is not None and last[0] == HEADERS and last[1] & END_STREAM and
          last[1] & END_HEADERS and kinds.count(HEADERS) == 2 and CONTINUATION not in kinds,
          "h2 raw: the trailers are one HEADERS frame with END_STREAM, the last (%s)" % fr[-3:])
    check(all(not (f[1] & END_STREAM) and f[3] > 0 for f in fr if f[0] == DATA),
          "h2 raw: DATA frames carry no END_STREAM, none empty (%s)" %
          [f for f in fr if f[0] == DATA][-2:])
    # an end with nothing left to send: still no empty DATA frame
    sid = c.request("/trailers?0")
    c.until(lambda: c.done(sid))
    fr = [f for f in c.frames if f[2] == sid]
    check([f[0] for f in fr] == [HEADERS, HEADERS] and fr[-1][1] & END_STREAM,
          "h2 raw: a streamed reply without a byte: HEADERS, then the trailers (%s)" % fr)

    # the client's trailers: HEADERS, DATA, HEADERS(trailers, END_STREAM)
    sid = c.request("/echo-trailers", "POST", end=False)
    c.c.send_data(sid, b"hello")
    c.c.send_headers(sid, [("x-sum", "5"), ("grpc-status", "0"), ("authorization", "x"),
                           ("x-sum", "6")], end_stream=True)
    c.flush()
    c.until(lambda: c.done(sid))
    st = c.st[sid]
    check(st["status"] == 200 and st["body"] == b"5|x-sum=5;grpc-status=0;x-sum=6;" and
          st["trailers"] == [("x-sum", "5"), ("grpc-status", "0"), ("x-sum", "6")],
          "h2 raw: request trailers read, authorization dropped, echoed (%r %s)" %
          (st["body"], st["trailers"]))

    # above max-trailer-bytes: 431 on that stream; another stream opened
    # before it is served, and the connection takes a third
    slow = c.request("/late")
    sid = c.request("/echo-trailers", "POST", end=False)
    c.c.send_data(sid, b"hello")
    c.c.send_headers(sid, [("x-big", "b" * MAX_TRAILER)], end_stream=True)
    c.flush()
    c.until(lambda: c.done(sid) and c.done(slow))
    check(c.st[sid]["status"] == 431 and c.st[sid]["trailers"] is None,
          "h2 raw: trailers above max-trailer-bytes: 431 (%s)" % c.st[sid]["status"])
    check(c.st[slow]["status"] == 200 and c.st[slow]["body"] == b"late\n",
          "h2 raw: the other stream is untouched (%s)" % c.st[slow]["status"])
    sid = c.request("/trailers?5")
    c.until(lambda: c.done(sid))
    check(c.st[sid]["status"] == 200 and c.goaway is None,
          "h2 raw: the connection goes on (%s, goaway %s)" % (c.st[sid]["status"], c.goaway))
    # exactly at it ("name: value\r\n" counted as HTTP/1.1 counts): kept
    sid = c.request("/echo-trailers", "POST", end=False)
    c.c.send_data(sid, b"hello")
    c.c.send_headers(sid, [("x-big", "b" * (MAX_TRAILER - 9))], end_stream=True)
    c.flush()
    c.until(lambda: c.done(sid))
    check(c.st[sid]["status"] == 200 and c.st[sid]["trailers"] == [("x-big", "b" * (MAX_TRAILER - 9))],
          "h2 raw: trailers at max-trailer-bytes are kept (%s)" % c.st[sid]["status"])


# ---------------------------------------------------------------- slow readers

def case_slow(fx):
    n = 4000000
    c = Raw(fx.port)
    c.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    c.c.increment_flow_control_window(16 << 20)
    c.flush()
    sid = c.request("/trailers?%d" % n)
    time.sleep(1.5)  # read nothing: the server's output and the app's drain wait
    c.until(lambda: c.done(sid), 60)
    st = c.st[sid]
    check(len(st["body"]) == n and st["trailers"] == [("grpc-status", "0"),
                                                      ("grpc-message", "all sent"),
                                                      ("x-bytes", str(n))],
          "slow h2 reader: %d bytes, then the trailers (%d, %s)" % (n, len(st["body"]), st["trailers"]))
    # HTTP/1.1: a small receive buffer, nothing read for 1.5 s, then all of it
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(30)
    s.connect(("127.0.0.1", fx.port))
    s.sendall(b"GET /trailers?%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % n)
    time.sleep(1.5)
    data = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    tail = b"0\r\ngrpc-status: 0\r\nGrpc-Message: all sent\r\nx-bytes: %d\r\n\r\n" % n
    check(data.endswith(tail) and data.count(b"x") >= n,
          "slow HTTP/1.1 reader: all, then the trailers (%d bytes, %r)" % (len(data), bytes(data[-60:])))


def main():
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="trailers-%d-" % os.getpid())
    fx = None
    try:
        fx = Fixture(work)
        for case in (case_go, case_curl, case_raw, case_slow):
            try:
                case(fx)
            except Exception as e:  # one case's crash is a failure, the others still run
                check(False, "%s: %s: %s" % (case.__name__, type(e).__name__, e))
    finally:
        if fx:
            fx.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("%.0f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (n_checks[0] - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
