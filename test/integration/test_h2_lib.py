#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The library's HTTP/2 (issue 18) through its public API: h2srv (a test
server, one route per behaviour) and a client written with Python's h2
package frame by frame, so that the test sees windows, resets and GOAWAYs.
Each case starts its own h2srv with the options it tests:
  version, h1 beside h2   grace_request_version() is "HTTP/2.0"; HTTP/1.1 on the same port
  early answer, fast      an early 401 while the client sends 8 MiB: the window stays open,
                          no RST at all, the next request on the connection is answered
  early answer, silent    the client stops sending: RST_STREAM(NO_ERROR) (never CANCEL)
                          after linger-timeout, after the answer, not before
  window follows reads    a paused application: the client may send a window, no more
  header limits           431 (max-header-bytes), 414 (max-request-line), the connection goes on
  body timeout            a stream that never sends its body: 408 on it; others served
  body-min-rate           a trickle never silent for body-timeout: 408, body_too_slow
  keep-alive              an idle connection: GOAWAY(NO_ERROR), then closed
  103, streamed + drain, deadline, collect, max streams / HPACK settings, h2c off
  zero window             a reader that never opens its window: the stream is reset at
                          write-timeout, the server goes on
  rapid reset             h2-reset-rate: GOAWAY(ENHANCE_YOUR_CALM), counted; others served
  stop                    SIGTERM: GOAWAY, the stream in flight finishes, then the close
Runs with /usr/bin/python3 (Debian's python3-h2). ~30 s."""
import os
import select
import signal
import socket
import subprocess
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

TOP = os.environ.get("top_builddir", "build")
SRV = os.environ.get("H2SRV") or os.path.join(TOP, "test", "integration", "h2srv")
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0, 1, 2, 7, 8, 11
failures = []
n_checks = [0]


def check(cond, what):
    n_checks[0] += 1
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)


def free_ports(n):
    """n distinct free ports: held open together, so that none comes twice."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Server:
    def __init__(self, *opts, sndbuf=None):
        self.port = free_ports(1)[0]
        cmd = [SRV, "--port", str(self.port)] + (["--sndbuf", str(sndbuf)] if sndbuf else [])
        for o in opts:
            cmd += ["--opt", o]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError("h2srv did not start: %r" % line)

    def lines(self, path):
        """The words of each line of an HTTP/1.1 GET's body."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        return [ln.split() for ln in data.split(b"\r\n\r\n", 1)[1].decode().splitlines()]

    def reports(self):
        return self.lines("/reports")

    def counters(self):
        return {k: int(v) for k, v in self.lines("/counters")}

    def stop(self):
        """A graceful stop: under ASan, LeakSanitizer speaks at the exit."""
        if self.p.poll() is not None:
            return
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        check(rc == 0, "h2srv stops and exits cleanly (%s)" % rc)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


class Client:
    """One HTTP/2 connection; per stream: status, headers, body, 1xx, end, reset."""

    def __init__(self, port, settings=None, window=True, rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:  # before the connect: the window the kernel offers
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", port))
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                       header_encoding="utf-8"))
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.window = window  # give back what we read
        self.st = {}
        self.goaway = None
        self.closed = False
        self.remote = {}
        self.flush()

    def flush(self):
        d = self.c.data_to_send()
        if d:
            try:
                self.s.sendall(d)
            except OSError:
                self.closed = True

    def stream(self, sid):
        return self.st.setdefault(sid, dict(status=None, headers={}, body=b"", info=[], ended=False,
                                            reset=None, t_end=None, t_reset=None))

    def request(self, path, method="GET", headers=(), end=True):
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(":method", method), (":scheme", "http"), (":path", path),
                                  (":authority", "127.0.0.1")] + list(headers), end_stream=end)
        self.stream(sid)
        self.flush()
        return sid

    def pump(self, timeout):
        """Read what comes within timeout (one read); False once closed."""
        if self.closed:
            return False
        r, _, _ = select.select([self.s], [], [], max(0.0, timeout))
        if not r:
            return True
        try:
            data = self.s.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.c.receive_data(data):
            self.on(ev)
        self.flush()
        return True

    def on(self, ev):
        now = time.monotonic()
        if isinstance(ev, h2.events.ResponseReceived):
            s = self.stream(ev.stream_id)
            s["headers"] = dict(ev.headers)
            s["status"] = int(s["headers"][":status"])
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            self.stream(ev.stream_id)["info"].append(dict(ev.headers))
        elif isinstance(ev, h2.events.DataReceived):
            self.stream(ev.stream_id)["body"] += ev.data
            if self.window and ev.flow_controlled_length:
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            s = self.stream(ev.stream_id)
            s["ended"], s["t_end"] = True, now
        elif isinstance(ev, h2.events.StreamReset):
            s = self.stream(ev.stream_id)
            s["reset"], s["t_reset"] = ev.error_code, now
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev.error_code
            self.last_stream_id = ev.last_stream_id
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote[k] = v.new_value

    def until(self, cond, timeout):
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            if not self.pump(end - time.monotonic()) and not cond():
                break
        return cond()

    def done(self, sid):
        s = self.st[sid]
        return s["ended"] or s["reset"] is not None

    def get(self, path, timeout=10, **kw):
        sid = self.request(path, **kw)
        self.until(lambda: self.done(sid), timeout)
        return self.st[sid]

    def send_body(self, sid, total, chunk=16384, stop_after=None, deadline=30):
        """Send as the windows allow, reading meanwhile; returns bytes sent."""
        sent, end = 0, time.monotonic() + deadline
        limit = total if stop_after is None else stop_after
        while sent < limit and time.monotonic() < end and not self.closed:
            s = self.st[sid]
            if s["reset"] is not None:
                break
            room = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size,
                       chunk, limit - sent)
            if room <= 0:
                self.pump(0.2)
                continue
            self.c.send_data(sid, b"u" * room, end_stream=(sent + room == total))
            sent += room
            self.flush()
            self.pump(0)
        return sent

    def close(self):
        self.s.close()


def case_version():
    with Server() as srv:
        c = Client(srv.port)
        r = c.get("/version")
        check(r["status"] == 200 and r["body"] == b"HTTP/2.0", "version: grace_request_version() says HTTP/2.0")
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(4096)
        check(data.startswith(b"HTTP/1.1 200") and data.endswith(b"HTTP/1.1"),
              "version: HTTP/1.1 on the same plain port (h2c is chosen by its preface only)")
        c.close()


def case_early_fast():
    with Server() as srv:
        c = Client(srv.port)
        total = 8 << 20
        sid = c.request("/early", "POST", [("content-length", str(total))], end=False)
        sent = c.send_body(sid, total)
        c.until(lambda: c.done(sid), 10)
        s = c.st[sid]
        check(s["status"] == 401 and s["body"] == b"no\n", "early answer: the 401 arrives (%s)" % s["status"])
        check(sent == total, "early answer: the window stays open for all %d bytes (sent %d)" % (total, sent))
        check(s["reset"] in (None, NO_ERROR), "early answer: no reset but NO_ERROR (got %s)" % s["reset"])
        r = c.get("/hello")
        check(r["status"] == 200 and c.goaway is None, "early answer: the next request on the connection is served")
        cnt = srv.counters()
        check(cnt["early_replies"] >= 1 and cnt["bytes_discarded"] > 0,
              "early answer: counted (early_replies %d, bytes_discarded %d)" % (cnt["early_replies"], cnt["bytes_discarded"]))


def case_early_silent():
    with Server("linger-timeout=500") as srv:
        c = Client(srv.port)
        sid = c.request("/early", "POST", [("content-length", str(1 << 20))], end=False)
        c.send_body(sid, 1 << 20, stop_after=100000)
        c.until(lambda: c.st[sid]["ended"] or c.st[sid]["reset"] is not None, 10)
        t0 = time.monotonic()
        s = c.st[sid]
        check(s["status"] == 401 and s["ended"], "early answer, then silence: the 401 is complete first")
        c.until(lambda: s["reset"] is not None, 10)
        waited = (s["t_reset"] or time.monotonic()) - t0
        check(s["reset"] == NO_ERROR, "early answer, then silence: RST_STREAM(NO_ERROR), never CANCEL (got %s)" % s["reset"])
        check(0.3 <= waited <= 5, "early answer, then silence: reset after linger-timeout (500 ms), not at once: %.2f s" % waited)
        r = c.get("/hello")
        check(r["status"] == 200, "early answer, then silence: the connection goes on")
        check(srv.counters()["h2_resets"] == 1, "early answer, then silence: counted in h2_resets")


def case_window():
    with Server("h2-stream-window=65536", "h2-conn-window=16777216") as srv:
        c = Client(srv.port)
        total = 1 << 20
        sid = c.request("/pause", "POST", [("content-length", str(total))], end=False)
        sent = c.send_body(sid, total, deadline=0.8)  # the application pauses for 1.5 s
        check(sent <= 2 * 65536 + 16384,
              "window: a paused application takes no more than the stream window (sent %d in 0.8 s)" % sent)
        rest = 0
        end = time.monotonic() + 20
        while sent + rest < total and time.monotonic() < end and c.st[sid]["reset"] is None:
            room = min(c.c.local_flow_control_window(sid), 16384, total - sent - rest)
            if room <= 0:
                c.pump(0.2)
                continue
            c.c.send_data(sid, b"u" * room, end_stream=(sent + rest + room == total))
            rest += room
            c.flush()
            c.pump(0)
        c.until(lambda: c.done(sid), 10)
        check(c.st[sid]["body"] == str(total).encode(),
              "window: resumed, the whole body arrives (%r)" % c.st[sid]["body"])


def case_header_limits():
    with Server("max-header-bytes=1024", "max-request-line=256") as srv:
        c = Client(srv.port)
        r = c.get("/hello", headers=[("x-big", "a" * 2000)])
        check(r["status"] == 431, "limits: a header list over max-header-bytes: 431 (%s)" % r["status"])
        r = c.get("/" + "p" * 300)
        check(r["status"] == 414, "limits: a path over max-request-line: 414 (%s)" % r["status"])
        r = c.get("/hello")
        check(r["status"] == 200 and c.goaway is None, "limits: the connection goes on")


def case_body_timeout():
    with Server("body-timeout=500") as srv:
        c = Client(srv.port)
        t0 = time.monotonic()
        sid = c.request("/never", "POST", [("content-length", "1000")], end=False)
        r = c.get("/hello")
        check(r["status"] == 200 and time.monotonic() - t0 < 0.4,
              "body timeout: another stream is served meanwhile")
        c.until(lambda: c.done(sid), 10)
        took = time.monotonic() - t0
        check(c.st[sid]["status"] == 408 and 0.4 <= took <= 5,
              "body timeout: the stream that never sends its body gets 408 (%s after %.2f s)" % (c.st[sid]["status"], took))
        r = c.get("/hello")
        check(r["status"] == 200, "body timeout: the connection goes on")


def case_body_min_rate():
    with Server("body-timeout=1000", "body-min-rate=100000") as srv:
        c = Client(srv.port)
        t0 = time.monotonic()
        sid = c.request("/never", "POST", [("content-length", "100000")], end=False)
        while c.st[sid]["status"] is None and not c.done(sid) and time.monotonic() - t0 < 8:
            c.c.send_data(sid, b"t")  # a byte every 200 ms: never silent for body-timeout
            c.flush()
            c.pump(0.2)
        c.until(lambda: c.done(sid), 5)
        took = time.monotonic() - t0
        check(c.st[sid]["status"] == 408 and b"slow" in c.st[sid]["body"] and 0.8 <= took <= 6,
              "body-min-rate: a trickle never silent for body-timeout is cut, 408 (%s after %.2f s)"
              % (c.st[sid]["status"], took))
        check(srv.counters()["body_too_slow"] == 1, "body-min-rate: counted in body_too_slow")


def case_keepalive():
    with Server("keepalive-timeout=500") as srv:
        c = Client(srv.port)
        c.get("/hello")
        t0 = time.monotonic()
        c.until(lambda: c.closed, 10)
        took = time.monotonic() - t0
        check(c.goaway == NO_ERROR and c.closed and 0.4 <= took <= 5,
              "keep-alive: an idle connection gets GOAWAY(NO_ERROR) and is closed (%s, %.2f s)" % (c.goaway, took))
        cnt = srv.counters()
        check(cnt["timeout_keepalive"] == 1, "keep-alive: counted")


def case_keepalive_after_block():
    """HTTP/1.1 keep-alive after an application blocked the loop: libevent
    arms timers from the time it read before the block, so a keep-alive
    timer added right after it fired that much early. B's request is read in
    the same turn as A's 1500 ms block (both came while C's held the loop);
    B must still get its full second of keep-alive (keepalive-timeout=1000)."""
    with Server("keepalive-timeout=1000", "header-timeout=1000") as srv:
        def send(path):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            return s
        c = send("/block?700")
        time.sleep(0.3)
        a = send("/block?1500")
        time.sleep(0.05)
        b = send("/hello")
        data = b""
        while not data.endswith(b"hello\n"):
            chunk = b.recv(65536)
            if not chunk:
                break
            data += chunk
        t_answer = time.monotonic()
        b.settimeout(10)
        try:
            eof = b.recv(1) == b""
        except OSError:
            eof = True
        idle = time.monotonic() - t_answer
        check(data.endswith(b"hello\n") and eof and 0.8 <= idle <= 5,
              "keep-alive after a blocked loop: closed %.2f s after the answer (1 s)" % idle)
        for s in (a, b, c):
            s.close()
        # the same for a new connection's header-timeout (1 s): accepted in
        # the turn that runs A's block (A's connection is older, so its
        # request comes first), it must get its second after the block
        a = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        time.sleep(0.1)
        c = send("/block?700")
        time.sleep(0.3)
        a.sendall(b"GET /block?1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        t0 = time.monotonic()
        n = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            eof = n.recv(1) == b""
        except OSError:
            eof = True
        took = time.monotonic() - t0
        check(eof and took >= 1.85 + 0.9, "header-timeout after a blocked loop: closed %.2f s after the "
              "connect (the loop held it ~1.85 s; then 1 s)" % took)
        for s in (a, c, n):
            s.close()


def case_misc():
    with Server("h2-max-streams=7", "h2-hpack-table=0") as srv:
        c = Client(srv.port)
        r = c.get("/hints")
        check(r["status"] == 200 and r["info"] and r["info"][0].get(":status") == "103" and
              "preload" in r["info"][0].get("link", ""), "103 Early Hints before the answer")
        r = c.get("/stream?3000000")
        check(r["status"] == 200 and len(r["body"]) == 3000000 and r["body"].count(b"x") == 3000000,
              "a streamed reply driven by drain callbacks (%d bytes)" % len(r["body"]))
        r = c.get("/deadline")
        check(r["status"] == 503, "a request deadline: 503 (%s)" % r["status"])
        sid = c.request("/collect", "POST", [("content-length", str(2 << 20))], end=False)
        c.send_body(sid, 2 << 20)
        c.until(lambda: c.done(sid), 10)
        check(c.st[sid]["body"] == str(2 << 20).encode(), "a collected body (%r)" % c.st[sid]["body"])
        check(c.remote.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 7 and
              c.remote.get(h2.settings.SettingCodes.HEADER_TABLE_SIZE) == 0,
              "SETTINGS: h2-max-streams and h2-hpack-table (%s)" % c.remote)
        sids = [c.request("/late") for _ in range(7)]
        c.until(lambda: all(c.done(s) for s in sids), 10)
        check(all(c.st[s]["status"] == 200 for s in sids), "7 streams at once at h2-max-streams=7")


def case_zero_window():
    with Server("write-timeout=500", "keepalive-timeout=1000") as srv:
        c = Client(srv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}, window=False)
        t0 = time.monotonic()
        sid = c.request("/stream?1000000")
        c.until(lambda: c.done(sid), 10)
        took = time.monotonic() - t0
        check(c.st[sid]["reset"] is not None and 0.4 <= took <= 5,
              "zero window: the stream is reset at write-timeout (%s after %.2f s)" % (c.st[sid]["reset"], took))
        cnt = srv.counters()
        check(cnt["timeout_write"] >= 1, "zero window: counted in timeout_write")
        check(cnt["h2_resets"] == 1, "zero window: counted in h2_resets (%d)" % cnt["h2_resets"])
        rep = [r for r in srv.reports() if r[0] == "/stream"]
        check(len(rep) == 1 and rep[0][3] != "0",
              "zero window: the reset answer is reported, with an error (%s)" % rep)
        t0 = time.monotonic()
        c.until(lambda: c.closed, 10)
        check(c.closed and c.goaway == NO_ERROR and time.monotonic() - t0 < 5,
              "zero window: the stream is gone, keep-alive then closes the connection (%.1f s)" %
              (time.monotonic() - t0))


def case_patient_write():
    with Server("write-timeout=500") as srv:
        c = Client(srv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2147483647})
        c.c.increment_flow_control_window(1 << 30)
        c.flush()
        sid = c.request("/patient")
        time.sleep(1.5)  # the socket fills and stays full: longer than write-timeout
        c.until(lambda: c.done(sid), 40)  # Python's h2 parses a few MB/s
        check(c.st[sid]["status"] == 200 and len(c.st[sid]["body"]) == 16 << 20,
              "a request's own write-timeout (5 s) outlasts the server's (500 ms) over HTTP/2 (%s, %d bytes)"
              % (c.st[sid]["status"], len(c.st[sid]["body"])))


def case_rapid_reset():
    with Server("h2-reset-rate=20") as srv:
        c = Client(srv.port)
        for _ in range(100):
            if c.closed:
                break
            sid = c.request("/late")
            c.c.reset_stream(sid, CANCEL)
            c.flush()
        c.until(lambda: c.goaway is not None, 5)
        check(c.goaway == ENHANCE_YOUR_CALM, "rapid reset: GOAWAY(ENHANCE_YOUR_CALM) (%s)" % c.goaway)
        d = Client(srv.port)
        t0 = time.monotonic()
        r = d.get("/hello")
        check(r["status"] == 200 and time.monotonic() - t0 < 1, "rapid reset: another connection is served")
        check(srv.counters()["h2_calm"] == 1, "rapid reset: counted in h2_calm")


def case_h2c_off():
    with Server("h2c=0") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        data = s.recv(4096)
        check(data.startswith(b"HTTP/1.1 "), "h2c=0: the preface is HTTP/1.1's to refuse (%r)" % data[:20])


def case_stop():
    with Server() as srv:
        c = Client(srv.port)
        sid = c.request("/late")
        c.pump(0.1)
        srv.p.send_signal(signal.SIGTERM)
        c.until(lambda: c.done(sid), 10)
        check(c.st[sid]["status"] == 200 and c.st[sid]["body"] == b"late\n",
              "stop: the stream in flight finishes")
        c.until(lambda: c.closed, 10)
        check(c.goaway == NO_ERROR and c.closed, "stop: GOAWAY(NO_ERROR), then the close (%s)" % c.goaway)
        try:
            rc = srv.p.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "stop: the server exits (%s)" % rc)


def case_stop_upload():
    """A stop while one upload is still moving, for longer than
    stop-idle-grace: no stream is opened after the stop, so no GOAWAY cuts
    in (Python's h2 would end the connection on it); the upload finishes,
    is answered whole, then the GOAWAY and the close."""
    total = 2 << 20
    with Server("stop-idle-grace=300") as srv:
        c = Client(srv.port)
        sid = c.request("/collect", "POST", [("content-length", str(total))], end=False)
        sent = c.send_body(sid, total, stop_after=64 << 10)
        srv.p.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        while sent < total and not c.closed and c.goaway is None:  # ~1.3 s: 16 KiB per 10 ms
            step = min(16384, c.c.local_flow_control_window(sid), total - sent)
            if step <= 0:
                c.pump(0.05)
                continue
            c.c.send_data(sid, b"u" * step, end_stream=(sent + step == total))
            c.flush()
            sent += step
            time.sleep(0.01)
            c.pump(0)
        c.until(lambda: c.done(sid), 10)
        took = time.monotonic() - t0
        check(sent == total and c.st[sid]["status"] == 200 and c.st[sid]["body"] == str(total).encode()
              and took > 1.0, "stop during an upload: it moves for %.1f s after the stop (grace 0.3 s), and is answered "
              "whole (%s %r)" % (took, c.st[sid]["status"], c.st[sid]["body"]))
        c.until(lambda: c.closed, 10)
        check(c.goaway == NO_ERROR and c.closed, "stop during an upload: then GOAWAY and the close (%s)" % c.goaway)


def raw_frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def case_stop_busy():
    """A client that always has a stream in flight gets its GOAWAY once
    stop-idle-grace has passed, not at the stop's deadline (5 s in h2srv):
    every stream the GOAWAY names is answered 200, none 503. Two chains of
    requests (600 ms and 770 ms each, one starting 300 ms later: their ends
    never meet in the first 5 s), written as raw frames: Python's h2 ends the
    connection on a GOAWAY and would refuse the answers that follow it."""
    with Server("stop-idle-grace=1000") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.settimeout(0.05)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + raw_frame(4, 0, 0) + raw_frame(4, 1, 0))
        nxt, inflight, status, buf = [1], {}, {}, b""

        def req(ms):  # GET /late?ms: :method GET, :scheme http, :path and :authority literal
            path, sid = ("/late?%d" % ms).encode(), nxt[0]
            block = b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01\x01x"
            s.sendall(raw_frame(1, 0x5, sid, block))
            inflight[sid], nxt[0] = ms, sid + 2

        t0 = time.monotonic()
        req(600)
        time.sleep(0.3)
        req(770)
        term = goaway = last = None
        closed = False
        while not closed and time.monotonic() - t0 < 15:
            if term is None and time.monotonic() - t0 > 1.5:
                term = time.monotonic()
                srv.p.send_signal(signal.SIGTERM)
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                closed = True
            buf += data
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                ln = int.from_bytes(buf[:3], "big")
                ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
                payload, buf = buf[9:9 + ln], buf[9 + ln:]
                if ftype == 7:
                    goaway, last = time.monotonic() - (term or t0), int.from_bytes(payload[:4], "big")
                elif ftype == 1 and sid in inflight:
                    status[sid] = payload[:1]
                if ftype in (0, 1) and flags & 1 and sid in inflight:
                    ms = inflight.pop(sid)
                    if goaway is None:
                        req(ms)
        s.close()
        named = [x for x in range(1, nxt[0], 2) if last is not None and x <= last]
        check(term is not None and goaway is not None and 0.8 <= goaway < 3.0,
              "busy stop: GOAWAY once stop-idle-grace (1 s) has passed, before the deadline (%s s)" %
              (None if goaway is None else round(goaway, 2)))
        check(named and all(status.get(x) == b"\x88" for x in named) and closed,
              "busy stop: all %d streams up to the GOAWAY's last answered 200, then the close (%s)" %
              (len(named), [status.get(x) for x in named]))
        try:
            rc = srv.p.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "busy stop: the server exits (%s)" % rc)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))


def case_idle_release():
    """A connection idle for a second gives back the pages of nghttp2's frame
    buffer; its next frames are byte-exact (the pages come back zeroed)."""
    n = 200
    with Server() as srv:
        cs = [Client(srv.port) for _ in range(n)]
        for c in cs:  # 16 KiB DATA frames: the whole frame buffer is written
            c.get("/stream?40000", headers=[("x-note", "warm")])
        before = rss_kib(srv.p.pid)
        time.sleep(2.0)
        after = rss_kib(srv.p.pid)
        if not os.environ.get("GRACE_TEST_NO_HEAP"):  # ASan's allocator counts its own way
            per = (before - after) * 1024 / n
            check(per >= 8192, "idle: %d connections gave back %.0f bytes each (>= 8192)" % (n, per))
        ok = 0
        for c in cs[:20]:
            c.c.ping(b"idlepage")
            c.flush()
            r = c.get("/stream?300000", headers=[("x-note", "warm")])
            ok += r["status"] == 200 and r["body"] == b"x" * 300000 and not c.closed
        check(ok == 20, "idle: after the release, PING and a 300000-byte answer byte-exact (%d/20)" % ok)
        r = cs[0].get("/hello")
        check(r["status"] == 200, "idle: another stream on the same connection (%s)" % r["status"])
        for c in cs:
            c.close()


def case_report_written():
    """A response is reported written when the socket has taken it, not when
    its frames are in our output: to a client that reads nothing and then
    resets, the report says so (an error, fewer bytes)."""
    n = 200000  # below output-high-water: all of it framed at once
    with Server(sndbuf=8192) as srv:  # the kernel takes little of it
        big = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20}
        c = Client(srv.port, settings=big, rcvbuf=4096)
        c.c.increment_flow_control_window(16 << 20)
        c.flush()
        c.request("/blob?%d" % n)
        time.sleep(1.5)  # read nothing
        early = [r for r in srv.reports() if r[0] == "/blob"]
        check(not early, "report: not before the socket took the answer (%s)" % early)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # a reset: most of the answer never left
        end = time.monotonic() + 5
        got = []
        while not got and time.monotonic() < end:
            got = [r for r in srv.reports() if r[0] == "/blob"]
            time.sleep(0.05)
        check(len(got) == 1 and got[0][1] == "200" and int(got[0][2]) < n and int(got[0][3]) != 0,
              "report: a reset before the end says an error and fewer bytes (%s)" % got)
        c = Client(srv.port)
        r = c.get("/blob?%d" % n)
        end = time.monotonic() + 5
        got = []
        while len(got) < 2 and time.monotonic() < end:
            got = [r for r in srv.reports() if r[0] == "/blob"]
            time.sleep(0.05)
        check(r["body"] == b"b" * n and len(got) == 2 and got[1][1:] == ["200", str(n), "0"],
              "report: a reader's answer is reported whole, err 0 (%s)" % got[1:])
        c.close()


def main():
    t0 = time.monotonic()
    for case in (case_version, case_early_fast, case_early_silent, case_window, case_header_limits,
                 case_body_timeout, case_body_min_rate, case_keepalive, case_keepalive_after_block, case_misc, case_zero_window, case_patient_write, case_rapid_reset,
                 case_h2c_off, case_stop, case_stop_busy, case_stop_upload, case_idle_release, case_report_written):
        try:
            case()
        except Exception as e:  # one case's crash is a failure, the others still run
            check(False, "%s: %s: %s" % (case.__name__, type(e).__name__, e))
    print("%.0f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (n_checks[0] - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
