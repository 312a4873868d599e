#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of streaming with backpressure (docs/examples/sse), 103
Early Hints (sse's page) and one server per thread (docs/examples/threads),
with real clients: curl, Python sockets and http.client. Loopback only; every
process started is stopped by PID. Prints one line per test and a final
"N passed, N failed"."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import check, results, start_example, stop_proc  # noqa: E402

BUILD = os.environ.get("top_builddir", ".")
SSE = os.path.join(BUILD, "docs", "examples", "sse")
THREADS = os.path.join(BUILD, "docs", "examples", "threads")
MiB = 1 << 20
EVENT_BYTES = 16384   # 1.6 MB/s at one event per 10 ms
STALL_S = 10          # how long the slow client stops reading


start = start_example


stop = stop_proc


def stats(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/stats")
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_events(s, want, limit_s=10):
    """Read from a chunked event stream until `want` event ids were seen;
    returns the ids (the chunk framing is skipped as text around them)."""
    buf, ids, end = b"", [], time.monotonic() + limit_s
    while len(ids) < want and time.monotonic() < end:
        data = s.recv(65536)
        if not data:
            break
        buf += data
        while b"id: " in buf:
            i = buf.index(b"id: ")
            j = buf.find(b"\n", i)
            if j < 0:
                break
            ids.append(int(buf[i + 4:j]))
            buf = buf[j:]
    return ids


def stall_run(*args):
    """A client that reads a few events, then stops reading for STALL_S seconds
    while the server goes on: how much did the server queue, and its RSS?"""
    p, port = start(SSE, "--event-bytes", str(EVENT_BYTES), *args)
    m = {}
    try:
        s = socket.socket()
        # a small receive window: the kernel's buffers soak up less of the stall
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        first = read_events(s, 5)
        m["rss_before"] = rss_kib(p.pid)
        time.sleep(STALL_S)
        st = stats(port)
        m["rss_after"] = rss_kib(p.pid)
        m.update(st)
        # reading again: the stream goes on where it stopped, nothing lost
        after = read_events(s, 2000, 20)
        m["ids"] = first + after
        m["resumed"] = stats(port)["resumes"]
        s.close()
    finally:
        m["rc"] = stop(p)
    return m


# GRACE_TEST_NO_HEAP: under ASan (quarantine, shadow memory) RSS says nothing
CHECK_RSS = not os.environ.get("GRACE_TEST_NO_HEAP")


def bounded(m):
    """The server's queue stayed within low-water plus one event (its chunk
    framing included), and its memory did not grow by the stalled output."""
    return (m["peak_pending"] <= m["low_water"] + EVENT_BYTES + 64 and
            (not CHECK_RSS or m["rss_after"] - m["rss_before"] < 4096))


def test_sse_curl():
    p, port = start(SSE)
    try:
        out = subprocess.run(["curl", "-sS", "-N", "-i", "--max-time", "1",
                              f"http://127.0.0.1:{port}/events"],
                             capture_output=True, timeout=30)
        text = out.stdout.decode()
        head, _, body = text.partition("\r\n\r\n")
        ids = [int(x[4:]) for x in body.split("\n") if x.startswith("id: ")]
        check("sse: curl gets text/event-stream", "Content-Type: text/event-stream" in head, head)
        check("sse: curl reads events in order (about 100 in 1 s)",
              len(ids) >= 20 and ids == list(range(len(ids))), ids[:10])
        time.sleep(0.2)
        st = stats(port)
        check("sse: curl gone, stream freed", st["clients"] == 0, st)
    finally:
        check("sse: exits cleanly on SIGTERM", stop(p) == 0)


def test_backpressure():
    m = stall_run()
    print(f"  backpressure: peak_pending {m['peak_pending']} B, low-water {m['low_water']}, "
          f"pauses {m['pauses']}, RSS {m['rss_before']} -> {m['rss_after']} KiB", flush=True)
    check("backpressure: the server's queue stays bounded while the client does not read",
          bounded(m), {k: v for k, v in m.items() if k != "ids"})
    check("backpressure: the producer paused", m["pauses"] >= 1 and m["events"] < 400, m)
    ids = m["ids"]
    check("backpressure: reading again, the stream resumes without a gap",
          len(ids) > 50 and ids == list(range(len(ids))) and m["resumed"] >= 1,
          (len(ids), ids[:5], m["resumed"]))
    check("backpressure: exits cleanly with a stream open", m["rc"] == 0, m["rc"])

    # the same measurement on a producer that ignores the drain callback
    n = stall_run("--no-backpressure")
    print(f"  no backpressure: peak_pending {n['peak_pending']} B, "
          f"RSS {n['rss_before']} -> {n['rss_after']} KiB", flush=True)
    check("backpressure: the measure catches a producer that ignores it",
          not bounded(n) and n["peak_pending"] > MiB,
          {k: v for k, v in n.items() if k != "ids"})


def early_hints_raw(port, version):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET / HTTP/{version}\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"</script>" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode("latin-1")


def test_early_hints():
    p, port = start(SSE)
    try:
        out = subprocess.run(["curl", "-sS", "-i", f"http://127.0.0.1:{port}/"],
                             capture_output=True, timeout=30).stdout.decode()
        check("103: curl shows 103 Early Hints with the Link, then 200",
              out.startswith("HTTP/1.1 103 Early Hints\r\nLink: </events>; rel=preload")
              and "\r\n\r\nHTTP/1.1 200 OK\r\n" in out, out[:200])
        out = subprocess.run(["curl", "-sS", "-i", "--http1.0", f"http://127.0.0.1:{port}/"],
                             capture_output=True, timeout=30).stdout.decode()
        check("103: none for an HTTP/1.0 client (curl --http1.0)",
              out.startswith("HTTP/1.1 200 OK\r\n") and " 103 " not in out, out[:100])
        raw = early_hints_raw(port, "1.1")
        first, _, rest = raw.partition("\r\n\r\n")
        check("103: Python socket reads the interim response, then the final one",
              first == "HTTP/1.1 103 Early Hints\r\nLink: </events>; rel=preload; as=fetch"
              and rest.startswith("HTTP/1.1 200 OK\r\n") and "EventSource" in rest, raw[:200])
        raw = early_hints_raw(port, "1.0")
        check("103: Python HTTP/1.0 request gets the final response only",
              raw.startswith("HTTP/1.1 200 OK\r\n") and "103" not in raw.split("\r\n")[0], raw[:80])
    finally:
        stop(p)


def test_threads():
    p, port = start(THREADS, "--threads", "2")
    try:
        seen = {}
        for _ in range(40):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            t = r.getheader("X-Thread")
            seen[t] = seen.get(t, 0) + 1
            c.close()
        check("threads: 40 connections served, answers correct", sum(seen.values()) == 40
              and body == b"hello world\n", seen)
        # SO_REUSEPORT hashes each connection's addresses: both threads take some
        check("threads: both threads accept connections", set(seen) == {"0", "1"}, seen)
        out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/",
                              f"http://127.0.0.1:{port}/"], capture_output=True, timeout=30)
        check("threads: curl keep-alive", out.stdout == b"hello world\n" * 2, out.stdout)
    finally:
        check("threads: exits cleanly on SIGTERM", stop(p) == 0)


def main():
    test_sse_curl()
    test_early_hints()
    test_threads()
    test_backpressure()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
