#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Python httpx with h2 (Debian's python3-httpx 0.23 and python3-h2 4.1, so
/usr/bin/python3, not a pyenv or venv Python that does not see them) in the
HTTP/2 client matrix (test_h2_clients.py): TLS (ALPN h2) and h2c with prior
knowledge (http1=False).

Usage: /usr/bin/python3 client_httpx.py PLAN.json. Each case: a fresh
Client, the request (the body is the open file: httpx streams it), then a
GET of the follow-up URL with the same Client; reused: the follow-up's
stream id is above 1 (httpcore's "stream_id" extension: each Client starts
on a new connection, whose first stream is 1). One JSON line per case on stdout."""
import hashlib
import json
import sys
import time

import httpx


def request(client, method, url, path, token):
    headers = {"Authorization": "Bearer " + token} if token else {}
    t0 = time.monotonic()
    r = dict(status=0, sha256="", time=0.0, error="", proto="", stream=None)
    try:
        if path:
            with open(path, "rb") as body:
                resp = client.request(method, url, content=body, headers=headers)
        else:
            resp = client.request(method, url, headers=headers)
        r["status"] = resp.status_code
        r["sha256"] = hashlib.sha256(resp.content).hexdigest()
        r["proto"] = resp.http_version
        r["stream"] = resp.extensions.get("stream_id")
    except Exception as e:  # the client's own words are the result
        r["error"] = "%s: %s" % (type(e).__name__, e)
    r["time"] = time.monotonic() - t0
    return r


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    verify = plan["ca"] or False
    for k in plan["cases"]:
        # the plan's timeout bounds every read, write and wait of httpx;
        # the driver bounds the whole process
        with httpx.Client(http2=True, http1=not plan["h2c"], verify=verify,
                          timeout=httpx.Timeout(plan["timeout"])) as client:
            r = request(client, k["method"], k["url"], k["file"], plan["token"] if k["auth"] else "")
            line = dict(id=k["id"], status=r["status"], time=r["time"], error=r["error"],
                        sha256=r["sha256"], proto=r["proto"])
            if k["followup"]:
                f = request(client, "GET", k["followup"], None, "")
                line.update(followup_status=f["status"], followup_time=f["time"],
                            followup_error=f["error"], followup_sha256=f["sha256"],
                            reused=(f["stream"] > 1 if f["stream"] else None))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
