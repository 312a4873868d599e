# SPDX-License-Identifier: BSD-3-Clause
"""The client runners of the HTTP/2 client matrix (test_h2_clients.py).

A case is one request and, after its answer, a follow-up GET on the same
connection:
  dict(id, method, url, file (body to upload or None), auth (send the
       Bearer token), followup (URL or None))
run(client, transport, cases, ...) runs one client over one transport
("tls": https with ALPN h2; "h2c": http with prior knowledge) and returns
{id: result}, each result a dict:
  status          the answer's status, 0 when none came
  time            seconds to the end of the answer (or to the failure)
  error           the client's own error text ("" when none)
  sha256          of the answer's body
  followup_status, followup_time, followup_error, followup_sha256
  reused          True: the follow-up went over the first request's
                  connection; False: the client had to open another; None:
                  the client cannot tell
  proto           what the client says it spoke ("h2", "HTTP/2", "2"...)
Clients:
  curl      curl --http2 / --http2-prior-knowledge, the follow-up as a
            second transfer (--next); reused: its num_connects is 0
  nghttp    nghttp2-client's nghttp; it sends its -d body and -H headers
            with every URI, so the follow-up is the same request again on a
            second stream (-m 2, concurrent with the first)
  h2load    nghttp2-client's h2load -n 2 -c 1 -m 1: the same request twice,
            one after the other on one connection (h2load does not reconnect
            an h2 connection, so a second answer means it was reused); h2load
            does not check the certificate
  go        Go's net/http (client.go, built here with the build folder's
            GOCACHE and GOPATH); TLS only
  node      node's http2 (client_node.mjs)
  httpx     Python httpx with h2 (client_httpx.py, run by /usr/bin/python3:
            Debian's python3-httpx and python3-h2)
  chromium, firefox  through puppeteer-core (client_browser.mjs); TLS only
Each runner's whole run is bounded (timeout per request x requests + slack)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SYSTEM_PYTHON = "/usr/bin/python3"

CLIENTS = ["curl", "nghttp", "h2load", "go", "node", "httpx", "chromium", "firefox"]
TLS_ONLY = {"go": "Go 1.19's net/http has no h2c prior-knowledge client (golang.org/x/net/http2 has one; "
                  "not in Debian's golang-go, and the build is offline)",
            "chromium": "browsers speak h2 over TLS only",
            "firefox": "browsers speak h2 over TLS only"}


def _empty(cid, error):
    return dict(id=cid, status=0, time=0.0, error=error, sha256="", followup_status=0,
                followup_time=0.0, followup_error="", followup_sha256="", reused=None, proto="")


def _sha_file(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
    except OSError:
        return ""
    return h.hexdigest()


def missing(client):
    """What is missing for this client, or None."""
    need = {"curl": ["curl"], "nghttp": ["nghttp"], "h2load": ["h2load"], "go": ["go"],
            "node": ["node"], "chromium": ["node", "chromium"], "firefox": ["node", "firefox-esr"]}
    if client == "httpx":
        r = subprocess.run([SYSTEM_PYTHON, "-c", "import httpx, h2"], capture_output=True, text=True)
        return None if r.returncode == 0 else "%s cannot import httpx and h2 (python3-httpx, python3-h2)" \
            % SYSTEM_PYTHON
    gone = [c for c in need[client] if not shutil.which(c)]
    if client in ("chromium", "firefox") and not os.path.exists(
            os.path.join(TOP, "test", "browser", "node_modules", "puppeteer-core", "package.json")):
        gone.append("puppeteer-core (npm ci in test/browser)")
    return " ".join(gone) or None


# ---------------------------------------------------------------- curl

CURL_FMT = r"%{http_code}\t%{num_connects}\t%{time_total}\t%{exitcode}\t%{http_version}\t%{errormsg}\n"


def curl(transport, cases, ca, token, timeout, work):
    out = {}
    proto = ["--http2", "--cacert", ca] if transport == "tls" else ["--http2-prior-knowledge"]
    for k in cases:
        body_out = os.path.join(work, "curl-body")
        follow_out = os.path.join(work, "curl-follow")
        args = ["curl", "-sS", *proto, "--max-time", str(timeout), "-o", body_out, "-w", CURL_FMT]
        if k["file"]:
            args += ["-T", k["file"]]
        if k["auth"]:
            args += ["-H", "Authorization: Bearer " + token]
        args.append(k["url"])
        if k["followup"]:
            args += ["--next", *proto, "--max-time", str(timeout), "-o", follow_out, "-w", CURL_FMT,
                     k["followup"]]
        for f in (body_out, follow_out):
            if os.path.exists(f):
                os.unlink(f)
        r = subprocess.run(args, capture_output=True, text=True, timeout=3 * timeout + 30)
        lines = [ln.split("\t") for ln in r.stdout.splitlines() if ln.count("\t") >= 5]
        res = _empty(k["id"], "")
        if not lines:
            res["error"] = "curl exit %d: %s" % (r.returncode, r.stderr.strip()[-300:])
            out[k["id"]] = res
            continue
        code, conns, took, rc, ver, msg = lines[0][:6]
        res.update(status=int(code), time=float(took), proto="HTTP/" + ver,
                   error="" if rc == "0" else "exit %s: %s" % (rc, msg), sha256=_sha_file(body_out))
        if k["followup"] and len(lines) > 1:
            code, conns, took, rc, ver, msg = lines[1][:6]
            res.update(followup_status=int(code), followup_time=float(took),
                       followup_error="" if rc == "0" else "exit %s: %s" % (rc, msg),
                       followup_sha256=_sha_file(follow_out), reused=(conns == "0"))
        out[k["id"]] = res
    return out


# ---------------------------------------------------------------- nghttp

def nghttp(transport, cases, ca, token, timeout, work):
    """nghttp -s prints, per request, "responseEnd requestStart process
    code size request path" once its stream ends; two streams (-m 2)."""
    out = {}
    for k in cases:
        args = ["nghttp", "-n", "-s", "--no-dep", "-t", "%ds" % timeout]
        if k["file"]:
            args += ["-d", k["file"], "-H", ":method: %s" % k["method"]]
        if k["auth"]:
            args += ["-H", "authorization: Bearer " + token]
        if k["followup"]:
            args += ["-m", "2"]
        args.append(k["url"])
        t0 = time.monotonic()
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=2 * timeout + 30)
            stdout, stderr, rc = r.stdout, r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            stdout, stderr, rc = (e.stdout or b"").decode(), "killed after %ds" % (2 * timeout + 30), -9
        took = time.monotonic() - t0
        rows = []  # (stream id, status, seconds), in stream order
        for ln in stdout.splitlines():
            m = re.match(r"\s*(\d+)\s+\+?([\d.]+)(us|ms|s)\s+\+?[\d.]+(?:us|ms|s)\s+\+?[\d.]+(?:us|ms|s)"
                         r"\s+(\d+)\s", ln)
            if m:
                scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(3)]
                rows.append((int(m.group(1)), int(m.group(4)), float(m.group(2)) * scale))
        rows = [(st, sec) for _, st, sec in sorted(rows)]
        res = _empty(k["id"], "")
        err = "; ".join(x.strip() for x in stderr.splitlines() if x.strip())[-300:]
        if rows:
            res.update(status=rows[0][0], time=rows[0][1], proto="h2")
        else:
            res["time"] = took
        if rc != 0 or not rows:
            res["error"] = "exit %d: %s" % (rc, err or "no answer")
        if k["followup"]:
            if len(rows) > 1:
                res.update(followup_status=rows[1][0], followup_time=rows[1][1], reused=True)
            else:
                res.update(followup_error="no second answer", reused=None)
            res["followup_same"] = True
        out[k["id"]] = res
    return out


# ---------------------------------------------------------------- h2load

def h2load(transport, cases, ca, token, timeout, work):
    """h2load --log-file writes "start-us status duration-us" per request."""
    out = {}
    for k in cases:
        log = os.path.join(work, "h2load.log")
        if os.path.exists(log):
            os.unlink(log)
        n = 2 if k["followup"] else 1
        args = ["h2load", "-n", str(n), "-c", "1", "-m", "1", "-T", "%ds" % timeout,
                "-N", "%ds" % timeout, "--log-file", log]
        if k["file"]:
            args += ["-d", k["file"], "-H", ":method: %s" % k["method"]]
        if k["auth"]:
            args += ["-H", "authorization: Bearer " + token]
        args.append(k["url"])
        t0 = time.monotonic()
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=n * timeout + 30)
            stdout, rc = r.stdout + r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            stdout, rc = (e.stdout or b"").decode() + " killed", -9
        took = time.monotonic() - t0
        rows = []
        try:
            with open(log) as f:
                for ln in f:
                    p = ln.split()
                    if len(p) >= 3:
                        rows.append((int(p[1]), int(p[2]) / 1e6))
        except OSError:
            pass
        res = _empty(k["id"], "")
        m = re.search(r"requests: .*", stdout)
        summary = m.group(0) if m else stdout.strip()[-200:]
        errs = re.search(r"(\d+) errored", summary)
        if rows:
            res.update(status=rows[0][0], time=rows[0][1], proto="h2")
        else:
            res.update(time=took, error="no answer (exit %d): %s" % (rc, summary))
        if rows and rows[0][0] <= 0:
            res["error"] = "failed: " + summary
        if k["followup"]:
            if len(rows) > 1:
                res.update(followup_status=rows[1][0], followup_time=rows[1][1], reused=True)
            else:
                res.update(followup_error="no second answer: " + summary, reused=False if rows else None)
            res["followup_same"] = True
        if errs and int(errs.group(1)) and not res["error"]:
            res["error"] = summary
        out[k["id"]] = res
    return out


# ---------------------------------------------------------------- plan runners

def go_binary(build):
    """Build client.go into BUILD/h2kit/ with its own GOCACHE and GOPATH
    (nothing outside the build folder; offline: standard library only)."""
    d = os.path.join(os.path.abspath(build), "h2kit")
    exe = os.path.join(d, "h2client-go")
    src = os.path.join(HERE, "client.go")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, GOCACHE=os.path.join(d, "gocache"), GOPATH=os.path.join(d, "gopath"),
               GOPROXY="off", GOFLAGS="", GO111MODULE="on", GOTOOLCHAIN="local", CGO_ENABLED="0")
    r = subprocess.run(["go", "build", "-o", exe, src], capture_output=True, text=True, env=env,
                       cwd=d, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("go build client.go: " + r.stderr[-1000:])
    return exe


def plan_runner(cmd, transport, cases, ca, token, timeout, work):
    plan = dict(ca=ca if transport == "tls" else "", token=token, h2c=(transport == "h2c"),
                timeout=timeout, cases=cases)
    path = os.path.join(work, "plan.json")
    with open(path, "w") as f:
        json.dump(plan, f)
    bound = timeout * 2 * len(cases) + 120
    out = {}
    try:
        r = subprocess.run([*cmd, path], capture_output=True, text=True, timeout=bound)
        stdout, stderr, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr, rc = "runner killed after %d s" % bound, -9
    for ln in stdout.splitlines():
        try:
            d = json.loads(ln)
        except ValueError:
            continue
        res = _empty(d["id"], "")
        res.update({k: v for k, v in d.items() if v is not None or k == "reused"})
        out[d["id"]] = res
    for k in cases:
        if k["id"] not in out:
            out[k["id"]] = _empty(k["id"], "runner exit %s: %s" % (rc, stderr.strip()[-300:]))
            if os.environ.get("H2KIT_DEBUG"):
                sys.stderr.write(stderr)
    return out


def run(client, transport, cases, ca, token, timeout, build):
    """{case id: result} for this client over this transport."""
    work = tempfile.mkdtemp(prefix="h2kit-%s." % client)
    try:
        if client == "curl":
            return curl(transport, cases, ca, token, timeout, work)
        if client == "nghttp":
            return nghttp(transport, cases, ca, token, timeout, work)
        if client == "h2load":
            return h2load(transport, cases, ca, token, timeout, work)
        if client == "go":
            cmd = [go_binary(build)]
        elif client == "node":
            cmd = ["node", os.path.join(HERE, "client_node.mjs")]
        elif client == "httpx":
            cmd = [SYSTEM_PYTHON, os.path.join(HERE, "client_httpx.py")]
        elif client in ("chromium", "firefox"):
            cmd = ["node", os.path.join(HERE, "client_browser.mjs"), client]
        else:
            raise ValueError("no client " + client)
        return plan_runner(cmd, transport, cases, ca, token, timeout, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

