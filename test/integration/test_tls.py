#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""HTTPS integration tests for graced with real clients: Python's ssl and
http.client, curl and openssl s_client, plus raw sockets for hostile
handshakes. Certificates are made at test time with the openssl CLI (a CA,
a leaf for localhost + 127.0.0.1, a leaf for other.test; EC P-256).
Loopback only; every process started here is stopped by PID; every wait is
bounded. Prints a line per check and a final "N passed, N failed"."""
import hashlib
import http.client
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_graced import GRACED, MiB, check, procs, run_sections  # noqa: E402

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
TOKEN = "tls-t0ken"
# the early 401 must arrive for every size; the naive close must lose some.
# 3 x 256 MiB take about 1 s on loopback: the server discards without decrypting
SIZES = [64 * 1024, MiB, 16 * MiB, 64 * MiB, 256 * MiB]
TRIES = 3


# ---------------------------------------------------------------- certificates

CNF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
subjectAltName = ${ENV::SAN}
"""


def openssl(*args, env=None):
    r = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30,
                       env={**os.environ, **(env or {})})
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args[:2]), r.stderr))


class Certs:
    """A CA and its leaves, in dir: each leaf is (cert.pem, key.pem)."""

    def __init__(self, d):
        self.dir = d
        self.serial = 1000
        os.makedirs(d, exist_ok=True)
        self.cnf = os.path.join(d, "openssl.cnf")
        with open(self.cnf, "w") as f:
            f.write(CNF)
        self.ca, self.ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
        openssl("req", "-x509", "-config", self.cnf, "-extensions", "ca", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.ca_key,
                "-out", self.ca, "-days", "2", "-subj", "/CN=graced test CA", env={"SAN": "DNS:x"})
        self.localhost = self.leaf("localhost", "DNS:localhost,IP:127.0.0.1")
        self.other = self.leaf("other.test", "DNS:other.test")

    def leaf(self, cn, san, tag=""):
        self.serial += 1
        base = os.path.join(self.dir, "%s%s" % (cn, tag))
        env = {"SAN": san}
        openssl("req", "-new", "-config", self.cnf, "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", base + ".key", "-out",
                base + ".csr", "-subj", "/CN=%s/O=graced test%s" % (cn, tag), env=env)
        openssl("x509", "-req", "-in", base + ".csr", "-CA", self.ca, "-CAkey", self.ca_key,
                "-set_serial", str(self.serial), "-days", "2", "-extfile", self.cnf,
                "-extensions", "leaf", "-out", base + ".pem", env=env)
        return base + ".pem", base + ".key"


def fingerprint(pem_file):
    with open(pem_file) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def peer_fp(sslsock):
    return hashlib.sha256(sslsock.getpeercert(binary_form=True)).hexdigest()


def client_ctx(certs, version=None):
    ctx = ssl.create_default_context(cafile=certs.ca)
    if version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def cert_args(*pairs):
    out = []
    for cert, key in pairs:
        out += ["--tls-cert", cert, "--tls-key", key]
    return out


# ---------------------------------------------------------------- graced

class TGraced:
    """graced with plain and TLS listeners on port 0: .http and .https are the
    first port of each (parsed from the http:// and https:// start lines).
    stderr goes to a file, so a chatty worker never blocks on a pipe."""

    def __init__(self, tmp, *args, env=None, pass_fds=(), lines=None):
        self.errfile = os.path.join(tmp, "graced-%d.err" % time.monotonic_ns())
        self.err_f = open(self.errfile, "w")
        self.p = subprocess.Popen([GRACED, *args], stdout=subprocess.PIPE, stderr=self.err_f,
                                  text=True, env=env, pass_fds=pass_fds)
        procs.append(self.p)
        self.urls = []
        want = lines if lines is not None else args.count("--listen") + args.count("--tls-listen")
        watchdog = threading.Timer(15, self.p.kill)  # never wait forever for a start line
        watchdog.start()
        try:
            for _ in range(want):
                line = self.p.stdout.readline()
                m = re.match(r"graced: listening on (https?)://(.+):(\d+)/$", line.strip())
                if not m and "systemd" not in line:
                    raise RuntimeError("graced did not start: %r %s" % (line, self.err()))
                self.urls.append((m.group(1), int(m.group(3))) if m else ("systemd", line.strip()))
        except Exception:
            self.kill()
            raise
        finally:
            watchdog.cancel()
        self.http = next((p for s, p in self.urls if s == "http"), None)
        self.https = next((p for s, p in self.urls if s == "https"), None)

    def err(self):
        with open(self.errfile) as f:
            return f.read()

    def wait_err(self, pattern, count=1, timeout=5):
        """Wait until stderr has pattern count times; the count seen."""
        deadline = time.time() + timeout
        while True:
            n = len(re.findall(pattern, self.err()))
            if n >= count or time.time() > deadline:
                return n
            time.sleep(0.05)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if not self.err_f.closed:
            self.err_f.close()
            # under --enable-sanitizers a report is a failure wherever it happens
            reports = re.findall(r".*(?:Sanitizer|runtime error:).*", self.err())
            if reports:
                check("graced %d: no sanitizer report" % self.p.pid, False, reports[:3])
        return self.p.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def metrics(self):
        """Counters (graced sums them over workers), read over the plain listener."""
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        try:
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
        finally:
            c.close()
        out = {}
        for name, v in re.findall(r'^graced_(\w+?)(?:_total)? (\d+)$', body, re.M):
            out[name] = out.get(name, 0) + int(v)
        return out


class Conn(http.client.HTTPSConnection):
    """http.client over TLS to 127.0.0.1, asking for the name sni (None: no
    SNI, the certificate is then checked against 127.0.0.1)."""

    def __init__(self, port, ctx, sni="localhost", timeout=30):
        super().__init__(sni or "127.0.0.1", port, timeout=timeout, context=ctx)

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def https(port, ctx, method="GET", path="/", body=None, headers=None, sni="localhost"):
    """One request on a new connection: (status, body, response, peer fingerprint, version)."""
    c = Conn(port, ctx, sni)
    try:
        c.request(method, path, body=body, headers=headers or {})
        # before the response: one with Connection: close takes the socket
        fp, ver = peer_fp(c.sock), c.sock.version()
        r = c.getresponse()
        data = r.read()
        return r.status, data, r, fp, ver
    finally:
        c.close()


def plain(port, method="GET", path="/", body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), r
    finally:
        c.close()


def make_root(tmp, name="www"):
    root = os.path.join(tmp, name)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "hello.txt"), "w") as f:
        f.write("hello over tls\n")
    return root


def upload_server(tmp, certs, name, *extra):
    up = os.path.join(tmp, name)
    os.makedirs(up, exist_ok=True)
    tok = os.path.join(tmp, name + ".token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    g = TGraced(tmp, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", up,
                "--upload-dir", up, "--auth-token-file", tok, "--metrics", "/metrics",
                *cert_args(certs.localhost), *extra)
    return g, up


# ---------------------------------------------------------------- sections

def run_startup_errors(tmp, certs):
    def start(*args, env=None):
        r = subprocess.run([GRACED, "--root", tmp, *args], capture_output=True, text=True,
                           timeout=10, env=env)
        return r.returncode, r.stderr.strip()

    def one_line_exit2(name, rc_err, *words):
        rc, err = rc_err
        check("start-up error, %s: exit 2, one line%s" % (name, " naming " + ", ".join(words) if words else ""),
              rc == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), (rc, err))
        return err

    cert, key = certs.localhost
    one_line_exit2("--tls-listen without a certificate",
                   start("--tls-listen", "127.0.0.1:0"), "--tls-cert", "--tls-key")
    one_line_exit2("--tls-cert without --tls-key",
                   start("--tls-listen", "127.0.0.1:0", "--tls-cert", cert), "--tls-key")
    one_line_exit2("missing certificate file",
                   start("--tls-listen", "127.0.0.1:0", *cert_args((tmp + "/nope.pem", key))),
                   "nope.pem")
    one_line_exit2("missing key file",
                   start("--tls-listen", "127.0.0.1:0", *cert_args((cert, tmp + "/nope.key"))),
                   "nope.key")
    junk = os.path.join(tmp, "junk.pem")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    err = one_line_exit2("garbage certificate",
                         start("--tls-listen", "127.0.0.1:0", *cert_args((junk, key))), "junk.pem")
    check("... and says why (grace_tls_last_error)", len(err.split("junk.pem", 1)[-1]) > 20, err)
    print("   garbage certificate:", err)
    err = one_line_exit2("certificate and key that do not match",
                         start("--tls-listen", "127.0.0.1:0", *cert_args((cert, certs.other[1]))),
                         os.path.basename(cert))
    print("   mismatched key:", err)
    err = one_line_exit2("bad second pair", start("--tls-listen", "127.0.0.1:0",
                                                  *cert_args(certs.localhost, (junk, key))), "junk.pem")
    one_line_exit2("--hsts not a number", start("--hsts", "a year"), "--hsts")
    one_line_exit2("--tls-listen bad address", start("--tls-listen", "localhost",
                                                     *cert_args(certs.localhost)), "--tls-listen")
    r = subprocess.run([GRACED, "--help"], capture_output=True, text=True, timeout=10)
    missing = [n for n in ("--tls-listen", "--tls-cert", "--tls-key", "--hsts",
                           "--tls-handshake-timeout") if n not in r.stdout]
    check("--help lists the TLS options", r.returncode == 0 and not missing, missing)


def put_body(port, ctx, body, size, token=None, path="/big.bin"):
    """http.client: write the whole body, then read the answer.
    (status, body) or (None, the error) when the answer was lost."""
    c = Conn(port, ctx)
    headers = {"Authorization": "Bearer " + token} if token else {}
    try:
        c.request("PUT", path, body=body[:size], headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, e
    finally:
        c.close()


def early_answers(port, ctx, body, sizes, tries, want=401, token=None):
    """{size: (answered, lost, seconds)} for PUTs that must be answered want."""
    out = {}
    for size in sizes:
        ok = lost = 0
        t0 = time.time()
        for _ in range(tries):
            st, data = put_body(port, ctx, body, size, token)
            if st == want:
                ok += 1
            else:
                lost += 1
                if st is not None:
                    print("   unexpected answer for %d bytes: %r %r" % (size, st, data[:60]))
        out[size] = (ok, lost, time.time() - t0)
    return out


def human(n):
    return "%d KiB" % (n >> 10) if n < MiB else "%d MiB" % (n >> 20)


def run_early_401(tmp, certs):
    ctx = client_ctx(certs)
    body = memoryview(b"p" * max(SIZES))
    g, up = upload_server(tmp, certs, "up401")
    try:
        res = early_answers(g.https, ctx, body, SIZES, TRIES)
        for size, (ok, lost, dt) in res.items():
            check("http.client over TLS, PUT %s without token: early 401 %d/%d (%.1f s)"
                  % (human(size), ok, TRIES, dt), ok == TRIES, (ok, lost))
        check("no file after refused uploads", os.listdir(up) == [], os.listdir(up))
        m = g.metrics()
        check("the 401s lingered: linger_started >= %d" % (TRIES * 2), m.get("linger_started", 0) >= TRIES * 2,
              m.get("linger_started"))
        st, data = put_body(g.https, ctx, body, MiB, TOKEN, "/ok.bin")
        check("with the token: 201 and the file", st == 201 and
              os.path.getsize(os.path.join(up, "ok.bin")) == MiB, (st, data))
        check("graced still running", g.alive())
    finally:
        check("early 401: SIGTERM exits 0", g.stop() == 0, g.p.returncode)

    g, up = upload_server(tmp, certs, "up413", "--max-body-size", "1M")
    try:
        for size in (2 * MiB, 16 * MiB):
            for token in (None, TOKEN):
                st, data = put_body(g.https, ctx, body, size, token)
                check("Content-Length %s over --max-body-size 1M%s: 413" %
                      (human(size), " (with token)" if token else ""), st == 413, (st, data))
    finally:
        g.stop()


def run_naive_loses(tmp, certs):
    """--linger off closes at once after the early answer: the client still
    writing gets a reset and never reads the 401. The test must see that."""
    ctx = client_ctx(certs)
    body = memoryview(b"n" * max(SIZES))
    g, up = upload_server(tmp, certs, "upnaive", "--linger", "off")
    try:
        large = [s for s in SIZES if s >= 16 * MiB]
        res = early_answers(g.https, ctx, body, large, TRIES)
        lost = sum(r[1] for r in res.values())
        for size, (ok, l, dt) in res.items():
            print("   --linger off, %s: %d answered, %d lost (%.1f s)" % (human(size), ok, l, dt))
        check("--linger off over TLS loses early answers (%d of %d lost, %s)" %
              (lost, TRIES * len(large), "/".join(human(s) for s in large)), lost > 0, res)
        check("... and graced stays up", g.alive())
    finally:
        g.stop()


def read_until_close(ss, timeout=10):
    """Read a TLS socket made with suppress_ragged_eofs=False to its end:
    (data, how): "close_notify" (recv gave b''), "no close_notify" (TCP EOF
    first: SSLEOFError), "reset", "timeout" or the error."""
    ss.settimeout(timeout)
    data = b""
    try:
        while True:
            d = ss.recv(65536)
            if not d:
                return data, "close_notify"
            data += d
    except ssl.SSLEOFError:
        return data, "no close_notify"
    except ConnectionResetError:
        return data, "reset"
    except socket.timeout:
        return data, "timeout"
    except (OSError, ssl.SSLError) as e:
        return data, repr(e)


def tcp_eof_after(ss, timeout=5):
    """After close_notify the TCP stream must end: b'' from the same socket
    read below TLS (OpenSSL read no further than the close_notify record),
    not more bytes, not a reset, not a hang. Nothing is sent: our own
    close_notify could meet a socket the server has already closed."""
    raw = socket.socket(fileno=os.dup(ss.fileno()))
    raw.settimeout(timeout)
    try:
        d = raw.recv(4096)
        return "eof" if d == b"" else "data %r" % d[:20]
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    finally:
        raw.close()


def ssl_conn(port, ctx, sni="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=sni, suppress_ragged_eofs=False)


def run_close_notify(tmp, certs):
    ctx = client_ctx(certs)
    g, up = upload_server(tmp, certs, "upclose", "--keepalive-timeout", "300ms",
                          "--header-timeout", "400ms")
    try:
        before = g.metrics().get("tls_close_notify", 0)
        cases = [
            ("early 401, 4 MiB body written in full", b"PUT /x HTTP/1.1\r\nHost: localhost\r\n"
             b"Content-Length: %d\r\n\r\n" % (4 * MiB) + b"b" * (4 * MiB), b"HTTP/1.1 401"),
            ("early 401, body not sent", b"PUT /x HTTP/1.1\r\nHost: localhost\r\n"
             b"Content-Length: %d\r\n\r\n" % (64 * MiB), b"HTTP/1.1 401"),
            ("GET with Connection: close", b"GET /nope HTTP/1.1\r\nHost: localhost\r\n"
             b"Connection: close\r\n\r\n", b"HTTP/1.1 404"),
            ("keep-alive timeout (300ms)", b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n",
             b"HTTP/1.1 404"),
            ("handshake, then no request (header-timeout 400ms)", b"", b""),
        ]
        for name, send, want in cases:
            ss = ssl_conn(g.https, ctx)
            if send:
                ss.sendall(send)
            t0 = time.time()
            data, how = read_until_close(ss)
            eof = tcp_eof_after(ss) if how == "close_notify" else "-"
            ss.close()
            check("close_notify then TCP EOF: %s (%s, then %s, %.2f s)" % (name, how, eof, time.time() - t0),
                  data.startswith(want) and how == "close_notify" and eof == "eof", (data[:40], how, eof))
        time.sleep(0.1)
        sent = g.metrics().get("tls_close_notify", 0) - before
        check("tls_close_notify counted %d for %d closes" % (sent, len(cases)), sent >= len(cases), sent)
    finally:
        g.stop()


def curl(*args, timeout=60):
    r = subprocess.run([CURL, "-sS", *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def run_curl(tmp, certs):
    g, up = upload_server(tmp, certs, "upcurl")
    with open(os.path.join(up, "hello.txt"), "w") as f:
        f.write("hello over tls\n")
    src = os.path.join(tmp, "curl16m.bin")
    with open(src, "wb") as f:
        f.write(b"c" * (16 * MiB))
    url = "https://localhost:%d" % g.https
    common = ["--cacert", certs.ca, "--resolve", "localhost:%d:127.0.0.1" % g.https]
    try:
        rc, out, err = curl(*common, "-w", "\n%{http_code} %{http_version} %{ssl_verify_result}",
                            url + "/hello.txt")
        check("curl GET over https: 200, verified, HTTP/2 (ALPN prefers h2)",
              rc == 0 and out == "hello over tls\n\n200 2 0", (rc, out, err))
        rc, out, err = curl(*common, "--http1.1", "-w", "\n%{http_code} %{http_version}",
                            url + "/hello.txt")
        check("curl --http1.1 GET over https: 200, HTTP/1.1 (ALPN)",
              rc == 0 and out == "hello over tls\n\n200 1.1", (rc, out, err))
        for expect, label in (("Expect: 100-continue", "with Expect: 100-continue"),
                              ("Expect:", "without Expect")):
            rc, out, err = curl(*common, "-o", "/dev/null", "-w", "%{http_code}", "-H", expect,
                                "-T", src, url + "/u.bin")
            check("curl upload 16 MiB %s, no token: 401" % label, rc == 0 and out == "401",
                  (rc, out, err))
            name = "/u%d.bin" % len(expect)
            rc, out, err = curl(*common, "-o", "/dev/null", "-w", "%{http_code}", "-H", expect,
                                "-H", "Authorization: Bearer " + TOKEN, "-T", src, url + name)
            check("curl upload 16 MiB %s, token: 201 and the file" % label,
                  rc == 0 and out == "201" and
                  os.path.getsize(os.path.join(up, name[1:])) == 16 * MiB, (rc, out, err))
        rc, out, err = curl(*common, "-D", "-", "-o", "/dev/null", url + "/hello.txt")
        check("no --hsts: no Strict-Transport-Security", rc == 0 and
              "strict-transport-security" not in out.lower(), out)
    finally:
        g.stop()
        os.unlink(src)


def s_client(port, certs, *args, stdin=b"", timeout=15):
    """openssl s_client to 127.0.0.1:port; (exit status, stdout+stderr)."""
    r = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                        certs.ca, *args], input=stdin, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def subject(out):
    m = re.search(r"^subject=(.*)$", out, re.M)
    return m.group(1) if m else None


def protocol(out):
    m = re.search(r"^New, (TLSv[\d.]+), Cipher is", out, re.M)
    return m.group(1) if m else None


def run_s_client(tmp, certs):
    root = make_root(tmp, "www-sc")
    g = TGraced(tmp, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", root,
                "--metrics", "/metrics", *cert_args(certs.localhost, certs.other))
    try:
        rc, out = s_client(g.https, certs, "-servername", "other.test")
        check("SNI other.test: the second certificate", rc == 0 and "CN = other.test" in (subject(out) or ""),
              subject(out))
        rc, out = s_client(g.https, certs, "-servername", "localhost")
        check("SNI localhost: the first certificate", rc == 0 and "CN = localhost" in (subject(out) or ""),
              subject(out))
        rc, out = s_client(g.https, certs, "-noservername")
        check("no SNI: the default (first) certificate",
              rc == 0 and "CN = localhost" in (subject(out) or ""), (rc, subject(out), out[-300:]))
        rc, out = s_client(g.https, certs, "-servername", "unknown.test")
        check("unknown SNI: the default certificate",
              rc == 0 and "CN = localhost" in (subject(out) or ""), (rc, subject(out), out[-300:]))
        # the same with Python's ssl, comparing whole certificates
        ctx = client_ctx(certs)
        st, _, _, fp, _ = https(g.https, ctx, path="/hello.txt", sni="other.test")
        check("Python ssl, SNI other.test: other.test's certificate",
              st == 200 and fp == fingerprint(certs.other[0]), st)
        st, _, _, fp, _ = https(g.https, ctx, path="/hello.txt", sni=None)
        check("Python ssl, no SNI: localhost's certificate (IP SAN verified)",
              st == 200 and fp == fingerprint(certs.localhost[0]), st)

        rc, out = s_client(g.https, certs, "-servername", "localhost", "-alpn", "http/1.1")
        check("ALPN http/1.1 negotiated", rc == 0 and "ALPN protocol: http/1.1" in out,
              re.findall(r".*ALPN.*", out))
        rc, out = s_client(g.https, certs, "-servername", "localhost", "-alpn", "h2")
        check("ALPN h2 only: h2 negotiated", rc == 0 and "ALPN protocol: h2" in out,
              re.findall(r".*ALPN.*", out))
        rc, out = s_client(g.https, certs, "-servername", "localhost", "-alpn", "h2,http/1.1")
        check("ALPN h2 and http/1.1: h2 preferred", rc == 0 and "ALPN protocol: h2" in out,
              re.findall(r".*ALPN.*", out))
        g2, _ = upload_server(tmp, certs, "h2off", "--http2", "off")
        try:  # graced --http2 off: HTTP/1.1 only, as before HTTP/2
            rc, out = s_client(g2.https, certs, "-servername", "localhost", "-alpn", "h2")
            no_alpn = rc == 0 and "No ALPN negotiated" in out
            refused = rc != 0 and "no application protocol" in out
            check("--http2 off, ALPN h2 only: %s" % (
                  "handshake completes without ALPN" if no_alpn else
                  "handshake refused (no_application_protocol)" if refused else "?"),
                  no_alpn or refused, out[-400:])
        finally:
            g2.stop()

        for ver in ("1_2", "1_3"):
            rc, out = s_client(g.https, certs, "-servername", "localhost", "-tls" + ver)
            check("-tls%s works" % ver, rc == 0 and protocol(out) == "TLSv" + ver.replace("_", "."),
                  (rc, protocol(out)))
        failed0 = g.metrics().get("tls_failed", 0)
        # SECLEVEL=0: OpenSSL 3 would otherwise refuse to even offer TLS 1.1
        rc, out = s_client(g.https, certs, "-servername", "localhost", "-tls1_1", "-cipher",
                           "DEFAULT@SECLEVEL=0")
        offered = "no protocols available" not in out
        check("-tls1_1 (really offered) is refused",
              offered and rc != 0 and protocol(out) is None, (rc, out[-400:]))
        print("   -tls1_1:", "; ".join(l for l in out.splitlines() if "error" in l or "alert" in l)[:300])
        time.sleep(0.1)
        check("... counted in tls_failed", g.metrics().get("tls_failed", 0) - failed0 == 1,
              g.metrics().get("tls_failed"))

        # session resumption, as advertised (a TLS 1.3 ticket, then a TLS 1.2 session)
        for ver in ("1.3", "1.2"):
            ctx = client_ctx(certs, ver)
            res0 = g.metrics().get("tls_resumed", 0)
            c = Conn(g.https, ctx)
            c.request("GET", "/hello.txt")
            c.getresponse().read()
            sess = c.sock.session
            c.close()
            raw = socket.create_connection(("127.0.0.1", g.https), timeout=10)
            ss = ctx.wrap_socket(raw, server_hostname="localhost", session=sess)
            reused = ss.session_reused
            ss.close()
            time.sleep(0.1)
            check("TLS %s session resumption (tls_resumed counted)" % ver,
                  reused and g.metrics().get("tls_resumed", 0) - res0 == 1, reused)
    finally:
        check("s_client: graced alive, SIGTERM exits 0", g.alive() and g.stop() == 0, g.p.returncode)


def client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl over memory BIOs)."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def until_closed(s, timeout=5):
    """Read until the server closes: (bytes, "eof"/"reset"/"timeout", seconds)."""
    s.settimeout(timeout)
    data, t0 = b"", time.time()
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return data, "eof", time.time() - t0
            data += d
    except ConnectionResetError:
        return data, "reset", time.time() - t0
    except socket.timeout:
        return data, "timeout", time.time() - t0


def all_closed(socks, timeout=5):
    """Wait for every socket to be closed by the server, all within one
    deadline: the list of "eof"/"reset"/"timeout"/"data"."""
    sel = selectors.DefaultSelector()
    ends = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    deadline = time.time() + timeout
    while len(ends) < len(socks) and time.time() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.time())):
            try:
                ends[key.fileobj] = "eof" if key.fileobj.recv(65536) == b"" else "data"
            except ConnectionResetError:
                ends[key.fileobj] = "reset"
            except BlockingIOError:
                continue
            sel.unregister(key.fileobj)
    sel.close()
    return [ends.get(s, "timeout") for s in socks]


def describe(data):
    if not data:
        return "nothing"
    if data[0] == 0x15 and len(data) >= 7:
        return "TLS alert %d" % data[6]
    if data.startswith(b"HTTP/"):
        return "plain %r" % data.split(b"\r\n", 1)[0].decode(errors="replace")
    return "%d bytes" % len(data)


def run_hostile(tmp, certs):
    root = make_root(tmp, "www-hostile")
    g = TGraced(tmp, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", root,
                "--metrics", "/metrics", "--tls-handshake-timeout", "500ms",
                *cert_args(certs.localhost))
    hello = client_hello()

    def case(name, counter, payload, after=None, cut=(0, 3)):
        """Connect to the TLS port, send payload (then after(sock)), wait for
        the close: within cut seconds, counter + 1, graced alive; and clean:
        a FIN (after an alert or nothing), not a reset."""
        m0 = g.metrics()
        s = socket.create_connection(("127.0.0.1", g.https), timeout=5)
        t0 = time.time()
        if payload:
            s.sendall(payload)
        if after:
            after(s)
        data, how, _ = until_closed(s, timeout=5)
        dt = time.time() - t0
        s.close()
        time.sleep(0.05)
        m1 = g.metrics()
        delta = {k: m1.get(k, 0) - m0.get(k, 0) for k in ("tls_failed", "tls_timeout", "tls_handshakes")}
        check("%s: closed in %.2f s (got %s), %s +1" % (name, dt, describe(data), counter),
              how != "timeout" and cut[0] <= dt <= cut[1] and delta[counter] == 1 and g.alive(),
              (how, dt, delta, data[:40]))
        check("... with a FIN, not a reset", how == "eof", how)
        return data

    try:
        case("random garbage", "tls_failed", b"\x00\xff" + os.urandom(510))
        case("plain HTTP request on the TLS port", "tls_failed",
             b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        case("truncated ClientHello, then silence", "tls_timeout", hello[:len(hello) // 2],
             cut=(0.4, 3))
        case("TLS record header only, then silence", "tls_timeout", hello[:5], cut=(0.4, 3))
        case("connect and say nothing", "tls_timeout", b"", cut=(0.4, 3))

        def read_flight(s):  # the server's hello flight, then we stop mid-handshake
            s.settimeout(5)
            first = s.recv(65536)
            assert first[:1] == b"\x16", first[:10]
        case("full ClientHello, read the server's flight, stop before Finished", "tls_timeout",
             hello, after=read_flight, cut=(0.4, 3))

        # the client vanishes mid-handshake: nothing to check but survival and no leak
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", g.https), timeout=5)
            s.sendall(hello)
            s.close()
        # many silent handshakes at once are all cut on time
        m0 = g.metrics()
        many = [socket.create_connection(("127.0.0.1", g.https), timeout=5) for _ in range(50)]
        for s in many:
            s.sendall(hello[:40])
        t0 = time.time()
        ends = all_closed(many, timeout=5)
        dt = time.time() - t0
        for s in many:
            s.close()
        time.sleep(0.1)
        n = g.metrics().get("tls_timeout", 0) - m0.get("tls_timeout", 0)
        check("50 truncated handshakes at once: all closed by the timeout (%.2f s), tls_timeout +%d"
              % (dt, n), ends.count("eof") == 50 and n == 50 and dt < 3, (ends.count("eof"), n, dt))

        run_renegotiation(g, certs)

        st, body, _, _, _ = https(g.https, client_ctx(certs), path="/hello.txt")
        check("after all that: HTTPS still served", st == 200 and body == b"hello over tls\n", st)
        time.sleep(0.2)
        m = g.metrics()
        check("no connection left behind (conn_active 1: this request)", m.get("conn_active") == 1,
              m.get("conn_active"))
    finally:
        check("hostile: graced alive, SIGTERM exits 0", g.alive() and g.stop() == 0, g.p.returncode)


def run_renegotiation(g, certs):
    """openssl s_client -tls1_2, then "R": the client asks to renegotiate. The
    server must refuse; the connection may close or go on, but never with a
    second handshake (a second Finished from the server in -msg)."""
    m0 = g.metrics()
    p = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % g.https, "-CAfile",
                          certs.ca, "-servername", "localhost", "-tls1_2", "-msg", "-crlf"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    procs.append(p)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, b"")), daemon=True)
    reader.start()

    def wait_for(pattern, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(re.search(pattern, l) for l in list(lines)) or p.poll() is not None:
                break
            time.sleep(0.05)
        return any(re.search(pattern, l) for l in list(lines))

    try:
        up = wait_for(rb"Verify return code")
        p.stdin.write(b"R\n")
        p.stdin.flush()
        asked = wait_for(rb"RENEGOTIATING")
        time.sleep(1.0)
        after = "closed" if p.poll() is not None else "open"
        if after == "open":  # does the connection still carry requests?
            try:
                p.stdin.write(b"GET /hello.txt HTTP/1.1\nHost: localhost\n\n")
                p.stdin.flush()
            except OSError:
                pass
            served = wait_for(rb"^HTTP/1.1 200", timeout=2)
            after = "open and serving" if served else "open, not serving"
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(5)
        reader.join(5)
    out = b"".join(lines).decode(errors="replace")
    finished = len(re.findall(r"^<<< .*Finished", out, re.M))
    hello_req = len(re.findall(r"^<<< .*HelloRequest|^<<< .*ServerHello$", out, re.M))
    time.sleep(0.1)
    m1 = g.metrics()
    delta = {k: m1.get(k, 0) - m0.get(k, 0) for k in ("tls_failed", "tls_handshakes")}
    alerts = sorted(set(re.findall(r"^<<< .*Alert \[length \w+\], (.*)$", out, re.M)))
    check("TLS 1.2 renegotiation refused: 1 server Finished (%d), connection %s, alerts %s"
          % (finished, after, alerts or "none"),
          up and asked and finished == 1 and g.alive(), (up, asked, finished, out[-600:]))
    print("   renegotiation: ServerHello/HelloRequest lines %d; handshakes +%d" %
          (hello_req, delta["tls_handshakes"]))
    # gracehttp.h: GRACE_CNT_TLS_FAILED counts "handshakes refused: ... renegotiation ..."
    check("... the refused renegotiation is counted (tls_failed +%d)" % delta["tls_failed"],
          delta["tls_failed"] == 1, delta)


def replace_file(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def run_reload(tmp, certs):
    """SIGHUP reads the certificates again in every worker: new connections
    get the new one, an open keep-alive connection goes on; a broken file
    keeps the old one."""
    d = os.path.join(tmp, "live")
    os.mkdir(d)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copyfile(certs.localhost[0], cert)
    shutil.copyfile(certs.localhost[1], key)
    new_cert, new_key = certs.leaf("localhost", "DNS:localhost,IP:127.0.0.1", "-renewed")
    root = make_root(tmp, "www-reload")
    g = TGraced(tmp, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", root,
                "--workers", "2", "--metrics", "/metrics", *cert_args((cert, key), certs.other))
    ctx = client_ctx(certs)
    old_fp, new_fp = fingerprint(certs.localhost[0]), fingerprint(new_cert)

    def fps(n=12, sni="localhost"):
        return {https(g.https, ctx, path="/hello.txt", sni=sni)[3] for _ in range(n)}

    try:
        check("before: the first certificate", fps() == {old_fp})
        keep = Conn(g.https, ctx)
        keep.request("GET", "/hello.txt")
        check("keep-alive connection open", keep.getresponse().read() == b"hello over tls\n")
        replace_file(new_cert, cert)
        replace_file(new_key, key)
        g.p.send_signal(signal.SIGHUP)
        n = g.wait_err(r"certificates reloaded", 2)
        check("SIGHUP: both workers log the reload", n == 2, g.err()[-400:])
        check("new connections (12, both workers) get the new certificate", fps() == {new_fp}, fps())
        check("SNI other.test still the second certificate", fps(4, "other.test") ==
              {fingerprint(certs.other[0])})
        keep.request("GET", "/hello.txt")
        r = keep.getresponse()
        check("the keep-alive connection opened before goes on (old certificate)",
              r.status == 200 and r.read() == b"hello over tls\n" and peer_fp(keep.sock) == old_fp)
        keep.close()

        with open(cert + ".new", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        os.replace(cert + ".new", cert)
        g.p.send_signal(signal.SIGHUP)
        n = g.wait_err(r"certificates not reloaded", 2)
        check("broken certificate + SIGHUP: both workers log the error", n == 2, g.err()[-400:])
        print("   " + (re.findall(r".*not reloaded.*", g.err()) or ["?"])[0])
        check("... and keep serving the previous certificate", fps() == {new_fp}, fps())
        replace_file(certs.localhost[0], cert)
        replace_file(certs.localhost[1], key)
        g.p.send_signal(signal.SIGHUP)
        g.wait_err(r"certificates reloaded", 4)
        check("fixed files + SIGHUP: reloaded again", fps() == {old_fp}, fps())
    finally:
        check("reload: graced alive, SIGTERM exits 0", g.alive() and g.stop() == 0, g.p.returncode)


LOG_RE = re.compile(r'^(\S+) - - \[[^]]+\] "([^"]*)" (\d{3}) (\S+) "([^"]*)" "([^"]*)" "([^"]*)"$')


def run_hsts_and_log(tmp, certs):
    root = make_root(tmp, "www-hsts")
    log = os.path.join(tmp, "tls-access.log")
    g = TGraced(tmp, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", root,
                "--hsts", "31536000", "--access-log", log, "--upload-dir", root,
                "--max-body-size", "1K", *cert_args(certs.localhost))
    try:
        for ver in ("1.3", "1.2"):
            st, body, r, _, v = https(g.https, client_ctx(certs, ver), path="/hello.txt?v" + ver,
                                      headers={"User-Agent": "ua-" + ver})
            check("TLS %s (%s): Strict-Transport-Security: max-age=31536000" % (ver, v),
                  st == 200 and r.getheader("Strict-Transport-Security") == "max-age=31536000",
                  r.getheaders())
        st, body, r, _, _ = https(g.https, client_ctx(certs), path="/nope")
        check("--hsts on graced's own 404 too", st == 404 and r.getheader("Strict-Transport-Security"),
              r.getheaders())
        st, body, r = plain(g.http, path="/hello.txt?plain", headers={"User-Agent": "ua-plain"})
        check("plain HTTP: no Strict-Transport-Security", st == 200 and
              r.getheader("Strict-Transport-Security") is None, r.getheaders())
        st, body, r, _, _ = https(g.https, client_ctx(certs), "PUT", "/big", b"x" * 4096,
                                  {"User-Agent": "ua-413"})
        check("the library's own 413 over TLS", st == 413, st)
        time.sleep(0.2)
        with open(log) as f:
            lines = f.read().splitlines()
        parsed = [LOG_RE.match(l) for l in lines]
        check("access log: every line Combined Log Format + one quoted field",
              lines and all(parsed), lines)
        by_ua = {m.group(6): m.group(7) for m in parsed if m}
        for ua, want in (("ua-1.3", "TLSv1.3"), ("ua-1.2", "TLSv1.2"), ("ua-plain", "-"),
                         ("ua-413", "TLSv1.3")):
            check("access log: %s -> \"%s\"" % (ua, want), by_ua.get(ua) == want, by_ua)
    finally:
        g.stop()


def listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def activated(tmp, certs, names, cert=True):
    """graced started the systemd way with two sockets named names[0],
    names[1] on fds 3 and 4: (TGraced or the exit status and stderr, ports)."""
    import fcntl
    socks = [listening_socket(), listening_socket()]
    high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in socks]
    script = ('exec 3<&%d 4<&%d %d<&- %d<&-; LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=%s '
              'exec "$0" "$@"' % (high[0], high[1], high[0], high[1], ":".join(names)))
    args = ["--root", make_root(tmp, "www-sa"), "--listen", "127.0.0.1:1"]
    if cert:
        args += cert_args(certs.localhost)
    ports = [s.getsockname()[1] for s in socks]
    try:
        if not cert:
            r = subprocess.run(["bash", "-c", script, GRACED, *args], capture_output=True,
                               text=True, timeout=10, pass_fds=high)
            return (r.returncode, r.stderr.strip()), ports
        g = TGraced.__new__(TGraced)
        g.errfile = os.path.join(tmp, "graced-sa-%d.err" % time.monotonic_ns())
        g.err_f = open(g.errfile, "w")
        g.p = subprocess.Popen(["bash", "-c", script, GRACED, *args], stdout=subprocess.PIPE,
                               stderr=g.err_f, text=True, pass_fds=high)
        procs.append(g.p)
        watchdog = threading.Timer(15, g.p.kill)
        watchdog.start()
        g.line = g.p.stdout.readline().strip()
        watchdog.cancel()
        return g, ports
    finally:
        for fd in high:
            os.close(fd)
        for s in socks:
            s.close()


def run_socket_activation(tmp, certs):
    ctx = client_ctx(certs)
    for names, tls_index in ((("http", "https"), 1), (("tls", "web"), 0)):
        g, ports = activated(tmp, certs, names)
        try:
            tls_port, plain_port = ports[tls_index], ports[1 - tls_index]
            check("socket activation, LISTEN_FDNAMES=%s: start line says 1 TLS" % ":".join(names),
                  "systemd" in g.line and "1 of them TLS" in g.line, (g.line, g.err()))
            st, body, _, fp, _ = https(tls_port, ctx, path="/hello.txt")
            check("... the socket named %s speaks TLS" % names[tls_index],
                  st == 200 and fp == fingerprint(certs.localhost[0]), st)
            st, body, _ = plain(plain_port, path="/hello.txt")
            check("... the socket named %s plain HTTP" % names[1 - tls_index], st == 200, st)
        finally:
            g.stop()
    (rc, err), _ = activated(tmp, certs, ("http", "https"), cert=False)
    check("socket activation: an https socket without --tls-cert: exit 2, one line",
          rc == 2 and len(err.splitlines()) == 1 and "--tls-cert" in err, (rc, err))


def main():
    if not os.access(GRACED, os.X_OK):
        print("0 passed, 1 failed (no %s)" % GRACED)
        return 1
    if not OPENSSL or not CURL:
        print("0 passed, 1 failed (needs the openssl and curl commands)")
        return 1
    r = subprocess.run([GRACED, "--tls-listen", "127.0.0.1:0", "--tls-cert", "/dev/null",
                        "--tls-key", "/dev/null"], capture_output=True, text=True, timeout=10)
    if "built without TLS" in r.stderr:
        print("0 passed, 0 failed (skipped: %s)" % r.stderr.strip())
        return 77  # automake: SKIP
    certs = []
    t0 = time.time()

    def make_certs(tmp):
        certs.append(Certs(os.path.join(tmp, "certs")))

    def section(f):
        def run(tmp):
            t = time.time()
            f(tmp, certs[0])
            print("   (%s: %.1f s)" % (f.__name__, time.time() - t), flush=True)
        run.__name__ = f.__name__
        return run

    def total(tmp):
        print("   (all: %.1f s)" % (time.time() - t0))

    return run_sections([make_certs] + [section(f) for f in (
        run_startup_errors, run_early_401, run_naive_loses, run_close_notify, run_curl,
        run_s_client, run_hostile, run_reload, run_hsts_and_log, run_socket_activation)] + [total],
        "graced-tls.")


if __name__ == "__main__":
    sys.exit(main())
