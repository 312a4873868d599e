#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""graced over HTTP/2 (issue 18): --tls-listen offers h2, --listen takes h2c
with prior knowledge, and downloads and uploads behave as over HTTP/1.1:
ranges (206), conditional GETs (304), HEAD, a PUT and a form stored
byte-exact, an upload the client resets mid-way leaves no file, the access
log says HTTP/2.0, /metrics counts h2 requests apart; --http2 off speaks
HTTP/1.1 only (ALPN and h2c). curl for the requests, Python's h2 for the
reset. Runs with /usr/bin/python3 (python3-h2). ~5 s."""
import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.environ.get("top_builddir", "build")
GRACED = os.path.join(TOP, "src", "graced", "graced")
HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("h2lib", os.path.join(HERE, "test_h2_lib.py"))
h2lib = importlib.util.module_from_spec(spec)
spec.loader.exec_module(h2lib)
check, failures, n_checks = h2lib.check, h2lib.failures, h2lib.n_checks
TOKEN = "h2-token-for-tests"


def wait_port(port, proc):
    end = time.monotonic() + 10
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def curl(*args):
    r = subprocess.run(["curl", "-sk", *args], capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace")


def main():
    tmp = tempfile.mkdtemp(prefix="graced-h2.")
    procs = []
    try:
        root, up = os.path.join(tmp, "root"), os.path.join(tmp, "up")
        os.makedirs(root)
        os.makedirs(up)
        data = os.urandom(300000)
        with open(os.path.join(root, "file.bin"), "wb") as f:
            f.write(data)
        body = os.urandom(1 << 20)
        with open(os.path.join(tmp, "body"), "wb") as f:
            f.write(body)
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write(TOKEN + "\n")
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        log = os.path.join(tmp, "access.log")

        def start(*extra):
            port, tport = h2lib.free_ports(2)
            p = subprocess.Popen([GRACED, "--listen", "127.0.0.1:%d" % port, "--tls-listen",
                                  "127.0.0.1:%d" % tport, "--tls-cert", cert, "--tls-key", key, "--root",
                                  root, "--upload-dir", up, "--auth-token-file", os.path.join(tmp, "token"),
                                  "--metrics", "/metrics", "--access-log", log, "--log-level", "error",
                                  *extra])
            procs.append(p)
            if not (wait_port(port, p) and wait_port(tport, p)):
                raise RuntimeError("graced did not start")
            return p, port, tport

        p, port, tport = start()
        tls, plain = "https://127.0.0.1:%d" % tport, "http://127.0.0.1:%d" % port
        w = "%{http_version} %{http_code} %{size_download}"
        rc, out = curl("--http2", "-r", "100-199", "-o", os.path.join(tmp, "r"), "-w", w, tls + "/file.bin")
        with open(os.path.join(tmp, "r"), "rb") as f:
            got = f.read()
        check(out == "2 206 100" and got == data[100:200], "h2 over TLS: a range, 206 (%s)" % out)
        rc, out = curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", plain + "/file.bin")
        etag = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.lower().startswith("etag:")]
        check(out.startswith("HTTP/2 200") and etag, "h2c: GET, 200 with an ETag")
        rc, out = curl("--http2-prior-knowledge", "-H", "If-None-Match: " + (etag[0] if etag else "x"),
                       "-o", "/dev/null", "-w", w, plain + "/file.bin")
        check(out == "2 304 0", "h2c: If-None-Match, 304 (%s)" % out)
        rc, out = curl("--http2", "-I", "-w", "%{http_version}", tls + "/file.bin")
        check("content-length: 300000" in out.lower() and out.endswith("2"), "h2: HEAD says the length")
        rc, out = curl("--http2", "-T", os.path.join(tmp, "body"), "-H", "Authorization: Bearer " + TOKEN,
                       "-o", "/dev/null", "-w", w, tls + "/put.bin")
        with open(os.path.join(up, "put.bin"), "rb") as f:
            same = hashlib.sha256(f.read()).digest() == hashlib.sha256(body).digest()
        check(out.startswith("2 201") and same, "h2: a PUT of 1 MiB stored byte-exact (%s)" % out)
        rc, out = curl("--http2", "-H", "Authorization: Bearer " + TOKEN, "-F",
                       "file=@%s;filename=form.bin" % os.path.join(tmp, "body"), "-o", "/dev/null", "-w", w,
                       tls + "/")
        ok = os.path.exists(os.path.join(up, "form.bin")) and open(os.path.join(up, "form.bin"), "rb").read() == body
        check(out.startswith("2 201") and ok, "h2: a form upload stored byte-exact (%s)" % out)
        rc, out = curl("--http2", "-T", os.path.join(tmp, "body"), "-o", "/dev/null", "-w", w, tls + "/no.bin")
        check(out.startswith("2 401") and not os.path.exists(os.path.join(up, "no.bin")),
              "h2: an upload without the token, early 401 (%s)" % out)
        # a client that resets its upload mid-way: nothing is left behind
        before = sorted(os.listdir(up))
        c = h2lib.Client(port)
        sid = c.request("/reset.bin", "PUT", [("content-length", str(4 << 20)),
                                              ("authorization", "Bearer " + TOKEN)], end=False)
        c.send_body(sid, 4 << 20, stop_after=1 << 20)
        c.c.reset_stream(sid, 8)
        c.flush()
        r = c.get("/file.bin")
        time.sleep(0.3)
        check(r["status"] == 200 and r["body"] == data and sorted(os.listdir(up)) == before,
              "h2c: an upload reset mid-way leaves no file; the connection goes on (%s)" % sorted(os.listdir(up)))
        c.close()
        time.sleep(0.3)  # the access log is written as responses complete
        with open(log) as f:
            lines = f.read().splitlines()
        check(any('"PUT /put.bin HTTP/2.0" 201' in ln for ln in lines) and
              any('"GET /file.bin HTTP/2.0" 206' in ln for ln in lines),
              "access log: HTTP/2.0 (%s)" % (lines[-1] if lines else None))
        rc, out = curl(plain + "/metrics")
        m = {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines() if ln and not ln.startswith("#")}
        check(m.get("graced_h2_requests_total", 0) >= 8 and
              m.get("graced_requests_total", 0) > m.get("graced_h2_requests_total", 0),
              "metrics: h2 requests counted apart (h2 %s of %s)" % (m.get("graced_h2_requests_total"),
                                                                   m.get("graced_requests_total")))
        p.terminate()
        p.wait(10)

        p, port, tport = start("--http2", "off")
        rc, out = curl("--http2", "-o", "/dev/null", "-w", w, "https://127.0.0.1:%d/file.bin" % tport)
        check(out.startswith("1.1 200"), "--http2 off: curl --http2 over TLS gets HTTP/1.1 (%s)" % out)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        got = s.recv(100)
        s.close()
        check(got.startswith(b"HTTP/1.1 "), "--http2 off: no h2c either (%r)" % got[:16])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (n_checks[0] - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
