#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""CONNECT tunnels through test/integration/tunnel (the library's upgrade
API) with curl --proxytunnel: plain, a large download (backpressure), a
refused target, and the proxy spoken over TLS (curl's HTTPS proxy), so the
stream runs over the TLS transport. The tunnel is its own upstream.
Loopback only; every process started is stopped by PID.
Prints one line per test and a final "N passed, N failed"."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import check, results, stop_proc  # noqa: E402

BUILD = os.environ.get("top_builddir", ".")
TUNNEL = os.path.join(BUILD, "test", "integration", "tunnel")


def start(*args):
    p = subprocess.Popen([TUNNEL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    line = p.stdout.readline()
    if "listening on" not in line:
        p.kill()
        p.wait()
        return None, line
    return p, [int(x) for x in line.split()[-2:]]


stop = stop_proc


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True,
                         timeout=60)
    return out.returncode, out.stdout, out.stderr.decode()


def main():
    d = tempfile.mkdtemp(prefix="grace-tunnel-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    tls = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                          "/CN=localhost", "-keyout", key, "-out", cert],
                         capture_output=True).returncode == 0
    p, ports = start("--tls", cert, key) if tls else start()
    if p is None:  # a library without TLS: plain only
        tls = False
        p, ports = start()
    if p is None:
        check("tunnel starts", False, ports)
        return 1
    port, tport = ports
    try:
        proxy = f"http://127.0.0.1:{port}"
        rc, out, err = curl("-p", "-x", proxy, f"http://127.0.0.1:{port}/hello")
        check("curl -p: GET through the tunnel", rc == 0 and out == b"hello through the tunnel\n",
              (rc, out, err))
        rc, out, err = curl("-p", "-x", proxy, "-v", f"http://127.0.0.1:{port}/hello")
        check("curl -p: the CONNECT was answered 200",
              "HTTP/1.1 200" in err and "CONNECT 127.0.0.1:%d" % port in err, err[-800:])
        rc, out, err = curl("-p", "-x", proxy, f"http://127.0.0.1:{port}/big")
        check("curl -p: 8 MiB through the tunnel", rc == 0 and out == b"b" * (8 << 20),
              (rc, len(out), err))
        rc, out, err = curl("-p", "-x", proxy, "http://10.0.0.1:80/")
        check("curl -p: a target outside loopback is refused (403)",
              rc != 0 and "403" in err, (rc, err))
        if tls:
            # curl speaks TLS to the proxy; the tunnelled HTTP runs inside it
            hproxy = f"https://127.0.0.1:{tport}"
            rc, out, err = curl("-p", "-x", hproxy, "--proxy-insecure",
                                f"http://127.0.0.1:{port}/hello")
            check("curl -p over an HTTPS proxy: GET through the TLS stream",
                  rc == 0 and out == b"hello through the tunnel\n", (rc, out, err))
            rc, out, err = curl("-p", "-x", hproxy, "--proxy-insecure",
                                f"http://127.0.0.1:{port}/big")
            check("curl -p over an HTTPS proxy: 8 MiB through the TLS stream",
                  rc == 0 and out == b"b" * (8 << 20), (rc, len(out), err))
        else:
            print("skip HTTPS proxy: built without TLS")
    finally:
        stop(p)
        shutil.rmtree(d, ignore_errors=True)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
