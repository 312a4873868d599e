#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests against docs/examples/echo with real clients: curl and
Python's http.client. Loopback only; every process started is stopped by PID.
Prints one line per test and a final "N passed, N failed"."""
import http.client
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import check, req, results, start_example, stop_proc  # noqa: E402

BUILD = os.environ.get("top_builddir", ".")
ECHO = os.path.join(BUILD, "docs", "examples", "echo")
TOKEN = "sekret"
MiB = 1 << 20


def start(*args):
    return start_example(ECHO, "--tick-ms", "50", *args)


stop = stop_proc


def curl(port, *args):
    out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
                          *args, f"http://127.0.0.1:{port}/up"],
                         capture_output=True, timeout=60)
    body, _, code = out.stdout.rpartition(b"\n")
    return out.returncode, int(code or 0), body, out.stderr.decode()


def main():
    # a name of our own: several worktrees run this test at once
    fd, big = tempfile.mkstemp(prefix="grace-it-16m.", suffix=".bin")
    with os.fdopen(fd, "wb") as f:
        f.write(b"u" * (16 * MiB))
    auth = {"Authorization": "Bearer " + TOKEN}

    p, port = start("--token", TOKEN, "--max-body", str(32 * MiB))
    try:
        # the JSON echo round-trips every byte value
        body = bytes(range(256)) * 4
        st, data, _ = req(port, "POST", "/a/b?c=d", body,
                              {**auth, "X-First": "1", "x-second": "two"})
        doc = json.loads(data)
        check("echo status", st == 200, st)
        check("echo body round-trips", doc.get("body", "").encode("latin-1") == body)
        check("echo method/target/version",
              (doc["method"], doc["target"], doc["version"]) == ("POST", "/a/b?c=d", "HTTP/1.1"),
              doc)
        names = [h[0] for h in doc["headers"]]
        check("echo headers in order, names as sent",
              names.index("X-First") < names.index("x-second"), names)

        # every value of a repeated header (grace_request_header_next), from curl
        # and from http.client; and the normalized path routes see
        out = subprocess.run(["curl", "-sS", "--path-as-is", "-H", "Authorization: Bearer " + TOKEN,
                              "-H", "X-Tag: a", "-H", "X-Other: z", "-H", "x-tag: b, c",
                              "-H", "X-TAG;", "-H", "X-Tag:  d ",
                              "http://127.0.0.1:%d/x/..//%%61b?values=x-tag" % port],
                             capture_output=True, timeout=30)
        try:
            doc = json.loads(out.stdout)
        except ValueError:
            doc = {}
        check("curl repeated X-Tag: every value in order",
              doc.get("values") == ["a", "b, c", "", "d"], (out.stdout[:200], out.stderr))
        check("curl /x/..//%61b: path seen as /ab", doc.get("path") == "/ab", doc.get("path"))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.putrequest("GET", "/?values=Cookie")
        for k, v in [("Authorization", "Bearer " + TOKEN), ("Cookie", "a=1"), ("Cookie", "b=2")]:
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        doc = json.loads(r.read())
        c.close()
        check("http.client two Cookie lines: both values",
              doc.get("values") == ["a=1", "b=2"], doc.get("values"))

        # Python http.client writes the whole body before it reads
        ok = 0
        for _ in range(5):
            try:
                st, data, r = req(port, "PUT", "/up", b"p" * (16 * MiB))
                ok += st == 401 and data == b"missing or wrong token\n"
            except OSError as e:
                print("   http.client:", e)
        check("http.client 16 MiB without token: 401 delivered 5/5", ok == 5, f"{ok}/5")

        # curl without Expect: sends the body; must still get the 401
        ok = 0
        for _ in range(3):
            rc, code, data, err = curl(port, "-H", "Expect:", "--data-binary", "@" + big)
            ok += rc == 0 and code == 401 and data == b"missing or wrong token\n"
            if rc:
                print("   curl:", rc, err.strip())
        check("curl -H 'Expect:' 16 MiB without token: 401 delivered 3/3", ok == 3, f"{ok}/3")

        # curl with Expect: 100-continue: the 401 comes instead of a 100
        rc, code, data, err = curl(port, "-H", "Expect: 100-continue", "-v",
                                   "--data-binary", "@" + big)
        check("curl with Expect: 401, no 100", rc == 0 and code == 401 and "100 Continue" not in err,
              (rc, code, err[-300:]))

        # with the token the upload is read and echoed
        rc, code, data, err = curl(port, "-H", "Authorization: Bearer " + TOKEN,
                                   "--data-binary", "hello")
        check("curl with token: 200 echo", rc == 0 and code == 200 and b'"body":"hello"' in data,
              (rc, code, data[:200]))
    finally:
        check("echo stops cleanly on SIGTERM", stop(p) == 0, p.returncode)

    # --max-body: 413 early by length, and for a chunked body that crosses it
    p, port = start("--max-body", "1000")
    try:
        st, data, r = req(port, "PUT", "/up", b"x" * (4 * MiB))
        check("--max-body: 413 by Content-Length", st == 413, st)
        def chunks():
            for _ in range(10):
                yield b"y" * 500
        try:
            st, data, r = req(port, "PUT", "/up", chunks(), {"Transfer-Encoding": "chunked"},
                                 chunked=True)
            check("--max-body: 413 for chunked overflow", st == 413, st)
        except OSError as e:
            check("--max-body: 413 for chunked overflow", False, e)
    finally:
        stop(p)

    # the hooks and a per-route limit, with real clients: /upload takes bodies
    # up to --upload-max while other paths keep --max-body; per-connection data
    # counts the requests of one keep-alive connection; --allow refuses others
    p, port = start("--max-body", "1000", "--upload-max", str(8 * MiB))
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        seen = []
        for _ in range(3):
            c.request("GET", "/n")
            r = c.getresponse()
            r.read()
            seen.append(r.getheader("X-Conn-Requests"))
        c.close()
        check("per-connection data: X-Conn-Requests 1, 2, 3 on one connection",
              seen == ["1", "2", "3"], seen)
        st, data, r = req(port, "POST", "/upload/a", b"u" * (4 * MiB))
        check("route /upload: its own limit takes 4 MiB", st == 200 and len(data) > 4 * MiB,
              (st, len(data)))
        check("route /upload: a new connection counts from 1",
              r.getheader("X-Conn-Requests") == "1", r.getheader("X-Conn-Requests"))
        st, data, r = req(port, "POST", "/other", b"u" * (4 * MiB))
        check("other paths: --max-body still 413", st == 413, st)
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", big,
                              "-H", "Expect:", f"http://127.0.0.1:{port}/upload/b"],
                             capture_output=True, timeout=60)
        check("route /upload: curl's 16 MiB upload (no Expect) gets the 413, no reset",
              out.returncode == 0 and out.stdout == b"413", (out.returncode, out.stdout, out.stderr))
    finally:
        check("hooks echo stops cleanly", stop(p) == 0, p.returncode)
    p, port = start("--allow", "127.0.0.2")
    try:
        out = subprocess.run(["curl", "-sS", "-m", "5", f"http://127.0.0.1:{port}/"],
                             capture_output=True, timeout=30)
        check("--allow: a refused address gets no response (curl 52 or 56)", out.returncode in (52, 56),
              (out.returncode, out.stderr[:200]))
    finally:
        stop(p)

    os.unlink(big)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
