# SPDX-License-Identifier: BSD-3-Clause
"""Servers under test for the HTTP/2 client matrix (test_h2_clients.py) and
the fixtures they share: a self-signed certificate made with the openssl CLI,
a token, the files to GET and to upload.

Every server under test honours one contract, on two instances:
  main     - GET /file.bin (FILE_SIZE random bytes) and /index.html (an empty
             page, for the browsers' origin); PUT /up/NAME with
             "Authorization: Bearer TOKEN" stores the body byte-exact at
             UP/up/NAME and answers 2xx; without the token: 401, early (the
             server does not wait for the body it will not use)
  limited  - the same, but a body over LIMIT (512 KiB) is refused: 413
Each instance listens on a TLS port (ALPN h2) and, where the server can, on a
plain port that takes h2c with prior knowledge. A profile is a list of
commands (templates) started together; placeholders:
  {port} {tls_port} {lim_port} {lim_tls_port}  ports chosen free here
  {cert} {key}     PEM certificate (self-signed, CN localhost, SAN
                   127.0.0.1) and its key
  {root}           folder holding file.bin and index.html
  {up}             upload folder (a PUT /up/NAME lands at {up}/up/NAME)
  {token} {token_file}  the Bearer token, and a file whose first line it is
  {limit}          the limited instance's body limit in bytes
  {tmp}            a scratch folder for configs and logs
  {graced}         the graced binary of the build (top_builddir)
  {python} {here}  this Python and this folder (for helpers such as sink.py)
Built-in profiles: nginx (http2 + dav), h2o (mruby for the 401, a proxy to
sink.py for the store), Go's net/http (server_go.go) and node's http2
(server_node.mjs), graced (the hook: its command line, once graced
speaks h2). Any other server: --server-cmd TEMPLATE (repeatable).
Every process started here is stopped by its PID."""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20
FILE_SIZE = 256 << 10
LIMIT = 512 << 10


def free_ports(n):
    """n distinct free ports: held open together, so that none comes twice."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port():
    return free_ports(1)[0]


def wait_port(port, proc=None, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Fixture:
    """The certificate, token and files in tmp (removed by the caller)."""

    def __init__(self, tmp, sizes):
        self.tmp = tmp
        os.chmod(tmp, 0o755)  # nginx's workers run as nobody
        self.root = os.path.join(tmp, "root")
        self.up = os.path.join(tmp, "up")
        os.makedirs(self.root)
        os.makedirs(os.path.join(self.up, "up"))
        os.chmod(self.up, 0o777)
        os.chmod(os.path.join(self.up, "up"), 0o777)
        self.token = "h2kit-" + secrets.token_hex(8)
        self.token_file = os.path.join(tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        self.cert = os.path.join(tmp, "cert.pem")
        self.key = os.path.join(tmp, "key.pem")
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", self.key, "-out", self.cert], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl req: " + r.stderr)
        os.chmod(self.key, 0o644)
        self.file = os.path.join(self.root, "file.bin")
        self.file_data = os.urandom(FILE_SIZE)
        with open(self.file, "wb") as f:
            f.write(self.file_data)
        with open(os.path.join(self.root, "index.html"), "w") as f:
            f.write("<!doctype html><title>h2kit</title><p>h2kit\n")
        # bodies to upload: random, so that a byte out of place shows
        self.bodies = {}
        for size in sizes:
            path = os.path.join(tmp, "body-%d" % size)
            with open(path, "wb") as f:
                left = size
                while left:
                    n = min(left, 4 * MiB)
                    f.write(os.urandom(n))
                    left -= n
            self.bodies[size] = path
        self.limit = LIMIT
        names = ("port", "tls_port", "lim_port", "lim_tls_port")
        self.ports = dict(zip(names, free_ports(len(names))))

    def fields(self):
        top = os.environ.get("top_builddir", ".")
        return dict(self.ports, cert=self.cert, key=self.key, root=self.root, up=self.up,
                    token=self.token, token_file=self.token_file, limit=self.limit,
                    tmp=self.tmp, graced=os.path.abspath(os.path.join(top, "src", "graced", "graced")),
                    python=sys.executable, here=HERE)

    def stored(self, name):
        return os.path.join(self.up, "up", name)


# ---------------------------------------------------------------- nginx

NGINX_SERVER = """
  server {{
    listen 127.0.0.1:{tls} ssl http2;
    listen 127.0.0.1:{plain} http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    root {root};
    client_max_body_size {maxbody};
    location /up/ {{
      if ($http_authorization != "Bearer {token}") {{ return 401 "no token\\n"; }}
      root {up};
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }}
  }}
"""


def nginx_profile(fx):
    """nginx (Debian's nginx-light 1.22: http_v2 and dav): one process, the
    two instances as two server blocks; the 401 by "return" before the body
    is read, the 413 by client_max_body_size, the store by dav's PUT."""
    f = fx.fields()
    common = dict(cert=f["cert"], key=f["key"], root=f["root"], up=f["up"], token=f["token"])
    conf = os.path.join(fx.tmp, "nginx.conf")
    body = os.path.join(fx.tmp, "nginx")
    os.makedirs(body, exist_ok=True)
    with open(conf, "w") as c:
        c.write("worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\n" % fx.tmp)
        c.write("error_log %s/nginx-error.log info;\nevents { worker_connections 4096; }\n" % fx.tmp)
        c.write("http {\n  access_log %s/nginx-access.log;\n" % fx.tmp)
        c.write("  types { text/html html; application/octet-stream bin; }\n")
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            c.write("  %s_temp_path %s/%s;\n" % (k, body, k))
        c.write(NGINX_SERVER.format(tls=f["tls_port"], plain=f["port"], maxbody="1g", **common))
        c.write(NGINX_SERVER.format(tls=f["lim_tls_port"], plain=f["lim_port"],
                                    maxbody="%dk" % (f["limit"] >> 10), **common))
        c.write("}\n")
    return dict(name="nginx", cmds=[["nginx", "-c", conf]], h2c=True,
                version=_version(["nginx", "-v"]),
                notes="nginx: return 401 before the body (discarded by nginx), "
                      "client_max_body_size for the 413, dav PUT stores")


# ---------------------------------------------------------------- h2o

H2O_CONF = """num-threads: 1
error-log: {tmp}/h2o-{tag}-error.log
limit-request-body: {maxbody}
listen:
  host: 127.0.0.1
  port: {plain}
listen:
  host: 127.0.0.1
  port: {tls}
  ssl:
    certificate-file: {cert}
    key-file: {key}
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /up:
        mruby.handler: |
          Proc.new do |env|
            if env["HTTP_AUTHORIZATION"] == "Bearer {token}"
              [399, {{}}, []]
            else
              [401, {{"content-type" => "text/plain"}}, ["no token\\n"]]
            end
          end
        proxy.reverse.url: http://127.0.0.1:{sink}/up
      /:
        file.dir: {root}
"""


def h2o_profile(fx):
    """h2o 2.2 (Debian): two processes (limit-request-body is global); the
    401 from mruby, the store by a proxy to sink.py. h2o 2.2 buffers an h2
    request body whole before any handler runs, and past the limit it
    resets the stream (REFUSED_STREAM) instead of answering 413."""
    f = fx.fields()
    sink = free_port()
    cmds = [[sys.executable, os.path.join(HERE, "sink.py"), str(sink), f["up"]]]
    for tag, plain, tls, maxbody in (("main", f["port"], f["tls_port"], 1 << 30),
                                     ("lim", f["lim_port"], f["lim_tls_port"], f["limit"])):
        conf = os.path.join(fx.tmp, "h2o-%s.conf" % tag)
        with open(conf, "w") as c:
            c.write(H2O_CONF.format(tmp=fx.tmp, tag=tag, maxbody=maxbody, plain=plain, tls=tls,
                                    cert=f["cert"], key=f["key"], token=f["token"], sink=sink,
                                    root=f["root"]))
        cmds.append(["h2o", "-c", conf])
    return dict(name="h2o", cmds=cmds, h2c=True, wait=[sink], version=_version(["h2o", "--version"]),
                notes="h2o: mruby 401, limit-request-body, proxy to sink.py")


# ---------------------------------------------------------------- Go and node

SERVER_ARGS = ["{port}", "{tls_port}", "{lim_port}", "{lim_tls_port}", "{cert}", "{key}", "{root}",
               "{up}", "{token}", "{limit}"]


def go_profile(fx):
    """Go's net/http (server_go.go, built here in GOPATH mode with Debian's
    x/net for h2c): the handler answers 401/413 without reading the body."""
    d = os.path.join(fx.tmp, "gobuild")
    exe = os.path.join(d, "server_go")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, GOCACHE=os.path.join(d, "cache"),
               GOPATH=os.path.join(d, "gopath") + ":/usr/share/gocode", GO111MODULE="off",
               GOPROXY="off", GOTOOLCHAIN="local", CGO_ENABLED="0")
    r = subprocess.run(["go", "build", "-o", exe, os.path.join(HERE, "server_go.go")],
                       capture_output=True, text=True, env=env, cwd=d, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("go build server_go.go: " + r.stderr[-1000:])
    f = fx.fields()
    return dict(name="go", cmds=[[exe] + [a.format(**f) for a in SERVER_ARGS]], h2c=True,
                version=_version(["go", "version"]),
                notes="Go net/http: 401/413 from the handler, the body unread")


def node_profile(fx):
    """node's http2 (server_node.mjs): the compatibility API's handler answers
    401/413 without reading the body."""
    f = fx.fields()
    return dict(name="node", cmds=[["node", os.path.join(HERE, "server_node.mjs")] +
                                   [a.format(**f) for a in SERVER_ARGS]], h2c=True,
                version=_version(["node", "--version"]),
                notes="node http2: 401/413 from the handler, the body unread")


# ---------------------------------------------------------------- graced (the hook)

GRACED_CMDS = [
    "{graced} --listen 127.0.0.1:{port} --tls-listen 127.0.0.1:{tls_port} --tls-cert {cert} "
    "--tls-key {key} --root {root} --upload-dir {up} --auth-token-file {token_file} --log-level error",
    "{graced} --listen 127.0.0.1:{lim_port} --tls-listen 127.0.0.1:{lim_tls_port} --tls-cert {cert} "
    "--tls-key {key} --root {root} --upload-dir {up} --auth-token-file {token_file} "
    "--max-body-size {limit} --log-level error",
]


def template_profile(name, templates, fx, h2c=True):
    f = fx.fields()
    cmds = [t.format(**f).split() for t in templates]
    return dict(name=name, cmds=cmds, h2c=h2c, version="", notes="")


def graced_profile(fx):
    p = template_profile("graced", GRACED_CMDS, fx)
    p["version"] = _version([fx.fields()["graced"], "--version"])
    return p


PROFILES = {"nginx": nginx_profile, "h2o": h2o_profile, "graced": graced_profile,
            "go": go_profile, "node": node_profile}


def _version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


class Running:
    """A profile's processes, started; stop() ends them by PID."""

    def __init__(self, profile, fx):
        self.profile = profile
        self.procs = []
        self.log = open(os.path.join(fx.tmp, profile["name"] + ".log"), "ab")
        for cmd in profile["cmds"]:
            self.procs.append(subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True))
        ports = list(profile.get("wait", []))
        ports += [fx.ports["tls_port"], fx.ports["lim_tls_port"]]
        if profile["h2c"]:
            ports += [fx.ports["port"], fx.ports["lim_port"]]
        for port in ports:
            if not wait_port(port):
                self.stop()
                with open(self.log.name, errors="replace") as f:
                    raise RuntimeError("%s: nothing listens on %d: %s" %
                                       (profile["name"], port, f.read()[-2000:]))

    def cpu_pids(self):
        """The PIDs whose CPU is the server's (nginx's workers too)."""
        pids = [p.pid for p in self.procs]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid in pids[:len(self.procs)]:
                    pids.append(int(d))
        return pids

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                # nginx: TERM is its fast stop; its workers are in its session
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


def which(cmd):
    return shutil.which(cmd)
