#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The HTTP/2 client matrix (issue 18): real clients against a server under
test, over TLS (ALPN h2, a self-signed certificate made here with openssl)
and over h2c with prior knowledge where the client can. Each client
  get      GETs /file.bin (its bytes checked)
  put-1m, put-64m    PUTs 1 MiB and 64 MiB with the token: 2xx, and the
                     stored file must be byte-exact
  401-1m, 401-64m    PUTs without the token: the early 401
  413-1m, 413-64m    PUTs over the limited instance's limit: the early 413
and after each answer sends a follow-up GET /file.bin that must succeed on
the SAME connection (each runner says whether it reused it). Recorded per
client x case: the status, the time, whether the connection was reused, and
the client's error text. The server contract and the profiles are in
h2/servers.py, the runners in h2/clients.py.

In make check (no arguments, top_builddir set): graced over every client,
every cell must pass, except that curl 7.88 cannot reuse an h2c connection
with prior knowledge (against every server: exit 16 on its second transfer),
so its h2c follow-ups are waived (--waive-followup curl/h2c; the answers are
still judged). ~25 s. Against the reference servers: test/bench/h2_early.sh,
or by hand:
  /usr/bin/python3 test/integration/test_h2_clients.py --server nginx --server h2o
  test_h2_clients.py --server-cmd '{graced} --listen 127.0.0.1:{port} ...' --server-cmd '...'
Exit status: 0 when every cell passed (--expect-all) or always (default:
the matrix is a measurement); the closing line "N passed, N failed" counts
the cells."""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "h2"))
import clients  # noqa: E402
import servers  # noqa: E402

MiB = 1 << 20
SIZES = {"1m": MiB, "64m": 64 * MiB}
H2_NAMES = {"h2", "HTTP/2", "HTTP/2.0", "2"}  # as each client names HTTP/2
CASES = ["get", "put-1m", "put-64m", "401-1m", "401-64m", "413-1m", "413-64m"]


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def make_cases(fx, client, transport, want):
    p = fx.ports
    if transport == "tls":
        main, lim = "https://127.0.0.1:%d" % p["tls_port"], "https://127.0.0.1:%d" % p["lim_tls_port"]
    else:
        main, lim = "http://127.0.0.1:%d" % p["port"], "http://127.0.0.1:%d" % p["lim_port"]
    out = []
    for cid in want:
        kind, _, size = cid.partition("-")
        name = "%s-%s-%s" % (client, transport, cid)
        if kind == "get":
            c = dict(method="GET", url=main + "/file.bin", file=None, auth=False, expect=200)
        elif kind == "put":
            c = dict(method="PUT", url=main + "/up/" + name, file=fx.bodies[SIZES[size]], auth=True,
                     expect=201, stored=name)
        elif kind == "401":
            c = dict(method="PUT", url=main + "/up/" + name, file=fx.bodies[SIZES[size]], auth=False,
                     expect=401)
        else:
            c = dict(method="PUT", url=lim + "/up/" + name, file=fx.bodies[SIZES[size]], auth=True,
                     expect=413)
        c.update(id=cid, followup=(lim if kind == "413" else main) + "/file.bin")
        out.append(c)
    return out


def judge(case, r, fx, file_sha, body_sha):
    """Fill r's verdict: answered (the expected status came), ok (answered,
    no client error, the follow-up succeeded on the same connection, the
    bytes right), and why not."""
    why = []
    exp = case["expect"]
    answered = r["status"] == exp or (exp == 201 and r["status"] in (200, 201, 204))
    if not answered:
        why.append("status %s, not %s" % (r["status"], exp))
    if r["error"]:
        why.append("error: " + r["error"])
    # a client that fell back to HTTP/1.1 proves nothing about h2
    for k in ("proto", "followup_proto"):
        if answered and r.get(k) and r[k] not in H2_NAMES:
            why.append("%s spoke %s, not h2" % ("the follow-up" if k != "proto" else "it", r[k]))
    if case["id"] == "get" and answered and r["sha256"] and r["sha256"] != file_sha:
        why.append("GET body differs")
    if case.get("stored"):
        path = fx.stored(case["stored"])
        r["stored_ok"] = os.path.exists(path) and sha_file(path) == body_sha[case["file"]]
        if answered and not r["stored_ok"]:
            why.append("stored file " + ("differs" if os.path.exists(path) else "missing"))
        if os.path.exists(path):
            os.unlink(path)
    if case["followup"] and r.get("followup_same"):
        # nghttp, h2load: the follow-up is the same request again
        same = r["followup_status"] == r["status"] or (200 <= r["status"] < 300 and
                                                        200 <= r["followup_status"] < 300)
        if not (same and answered):
            why.append("second request: status %s %s" % (r["followup_status"], r["followup_error"]))
        if r["reused"] is not True:
            why.append("second request not on the same connection")
    elif case["followup"]:
        if r["followup_status"] != 200:
            why.append("follow-up: status %s %s" % (r["followup_status"], r["followup_error"]))
        elif r["followup_error"]:
            why.append("follow-up error: " + r["followup_error"])
        elif r.get("followup_sha256") and r["followup_sha256"] != file_sha:
            why.append("follow-up body differs")
        if r["reused"] is False:
            why.append("follow-up on a new connection")
    r["answered"] = answered
    r["ok"] = not why
    r["why"] = "; ".join(why)
    return r


def cell(case, r):
    if r["status"] == 0:
        s = "none"
    else:
        s = str(r["status"])
    reused = {True: "same", False: "new", None: "?"}[r["reused"]] if case["followup"] else ""
    mark = "ok" if r["ok"] else ("ANSWER" if r["answered"] else "LOST")
    return "%s %s %.2fs %s" % (mark, s, r["time"], reused)


def run_server(name, profile_fn, args, out):
    tmp = tempfile.mkdtemp(prefix="h2kit-%s." % name)
    t0 = time.monotonic()
    try:
        sizes = sorted({SIZES[c.split("-")[1]] for c in args.cases if "-" in c})
        fx = servers.Fixture(tmp, sizes)
        file_sha = hashlib.sha256(fx.file_data).hexdigest()
        body_sha = {p: sha_file(p) for p in fx.bodies.values()}
        profile = profile_fn(fx)
        if args.no_h2c:
            profile["h2c"] = False
        srv = servers.Running(profile, fx)
        print("== %s (%s)" % (name, profile.get("version", "")), flush=True)
        rows = []
        try:
            for client in args.clients:
                gone = clients.missing(client)
                for transport in ("tls", "h2c"):
                    if transport == "h2c" and (not profile["h2c"] or client in clients.TLS_ONLY):
                        continue
                    if gone:
                        rows.append(dict(client=client, transport=transport, missing=gone))
                        print("   %s/%s: missing %s" % (client, transport, gone), flush=True)
                        continue
                    cases = make_cases(fx, client, transport, args.cases)
                    c0 = time.monotonic()
                    res = clients.run(client, transport, cases, fx.cert, fx.token, args.timeout,
                                      args.build)
                    row = dict(client=client, transport=transport, seconds=time.monotonic() - c0,
                               cases={})
                    waived = "%s/%s" % (client, transport) in args.waive_followup
                    for c in cases:
                        r = judge(dict(c, followup=None) if waived else c, res[c["id"]], fx,
                                  file_sha, body_sha)
                        row["cases"][c["id"]] = r
                        print("   %-8s %-3s %-8s %-26s %s" % (client, transport, c["id"], cell(c, r),
                                                               r["why"]), flush=True)
                    if not srv.alive():
                        row["server_died"] = True
                        print("   the server died", flush=True)
                        rows.append(row)
                        raise RuntimeError(name + " died")
                    rows.append(row)
        finally:
            srv.stop()
        out[name] = dict(version=profile.get("version", ""), notes=profile.get("notes", ""),
                         seconds=time.monotonic() - t0, rows=rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def markdown(out, cases):
    lines = []
    for name, s in out.items():
        lines.append("### %s (%s), %.0f s for the matrix" % (name, s["version"], s["seconds"]))
        lines.append("")
        lines.append("| client | over | " + " | ".join(cases) + " | s |")
        lines.append("|---|---|" + "---|" * len(cases) + "---|")
        notes = []
        for row in s["rows"]:
            if "missing" in row:
                lines.append("| %s | %s | missing: %s |" % (row["client"], row["transport"], row["missing"]))
                continue
            cells = []
            for c in cases:
                r = row["cases"][c]
                reused = {True: "same", False: "new", None: "?"}[r["reused"]]
                mark = "ok" if r["ok"] else ("**answer**" if r["answered"] else "**LOST**")
                cells.append("%s %s %.2fs %s" % (mark, r["status"] or "none", r["time"], reused))
                if not r["ok"]:
                    notes.append("- %s/%s %s: %s" % (row["client"], row["transport"], c, r["why"]))
            lines.append("| %s | %s | %s | %.0f |" % (row["client"], row["transport"], " | ".join(cells),
                                                      row["seconds"]))
        lines.append("")
        early = [c for c in cases if c[:3] in ("401", "413")]
        for kind in ("401", "413"):
            ks = [c for c in early if c.startswith(kind)]
            for transport in ("tls", "h2c"):
                rs = [row["cases"][c] for row in s["rows"] if "cases" in row and row["transport"] == transport
                      for c in ks]
                if rs:
                    lines.append("- early %s over %s: answer received %d/%d, answer + clean follow-up on "
                                 "the same connection %d/%d" % (kind, transport, sum(r["answered"] for r in rs),
                                                                len(rs), sum(r["ok"] for r in rs), len(rs)))
        lines.append("")
        lines += notes
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", default=[], choices=sorted(servers.PROFILES),
                    help="a built-in profile (repeatable)")
    ap.add_argument("--server-cmd", action="append", default=[],
                    help="a command template of one custom profile (repeatable: all start together)")
    ap.add_argument("--name", default="custom", help="the custom profile's name")
    ap.add_argument("--no-h2c", action="store_true", help="the server has no h2c listener")
    ap.add_argument("--clients", default=",".join(clients.CLIENTS))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("H2KIT_TIMEOUT", "30")),
                    help="seconds each request may take (default 30)")
    ap.add_argument("--build", default=os.environ.get("top_builddir", "build"),
                    help="build folder (the Go client is built in BUILD/h2kit)")
    ap.add_argument("--json", help="write every result here")
    ap.add_argument("--markdown", help="write the matrix here")
    ap.add_argument("--expect-all", action="store_true", help="exit 1 unless every cell passed")
    ap.add_argument("--waive-followup", action="append", default=[], metavar="CLIENT/TRANSPORT",
                    help="judge only the answer, not the follow-up, for this row (a client bug)")
    if len(sys.argv) == 1 and os.environ.get("top_builddir"):  # make check
        sys.argv += ["--server", "graced", "--expect-all", "--waive-followup", "curl/h2c"]
    args = ap.parse_args()
    args.clients = [c for c in args.clients.split(",") if c]
    args.cases = [c for c in args.cases.split(",") if c]
    for c in args.clients:
        if c not in clients.CLIENTS:
            ap.error("no client %s (%s)" % (c, ", ".join(clients.CLIENTS)))
    for c in args.cases:
        if c not in CASES:
            ap.error("no case %s (%s)" % (c, ", ".join(CASES)))
    os.environ.setdefault("top_builddir", args.build)  # where the graced profile finds graced
    todo = [(n, servers.PROFILES[n]) for n in args.server]
    if args.server_cmd:
        todo.append((args.name, lambda fx: servers.template_profile(args.name, args.server_cmd, fx,
                                                                    h2c=not args.no_h2c)))
    if not todo:
        ap.error("no server: --server or --server-cmd")
    out = {}
    for name, fn in todo:
        try:
            run_server(name, fn, args, out)
        except Exception as e:  # one server's failure is reported, the others still run
            print("== %s: %s" % (name, e), flush=True)
            out.setdefault(name, dict(version="", notes="", seconds=0, rows=[], error=str(e)))
    md = markdown(out, args.cases)
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    cells = [r for s in out.values() for row in s["rows"] if "cases" in row for r in row["cases"].values()]
    passed = sum(r["ok"] for r in cells)
    failed = len(cells) - passed + sum(1 for s in out.values() if s.get("error"))
    failed += sum(1 for s in out.values() for row in s["rows"] if "missing" in row)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if args.expect_all and failed else 0


if __name__ == "__main__":
    sys.exit(main())
