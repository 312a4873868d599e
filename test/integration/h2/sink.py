#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""An HTTP/1.1 upload sink behind a proxy under test (h2o in the HTTP/2
client matrix): PUT /up/NAME stores the body at UP/up/NAME (through a
temporary name, renamed once complete) and answers 201; anything else 404.
Usage: sink.py PORT UP. Loopback only; runs until SIGTERM."""
import http.server
import os
import re
import signal
import threading
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        m = re.fullmatch(r"/up/([A-Za-z0-9._-]+)", self.path)
        if not m:
            self.answer(404, "no such place\n")
            return
        length = self.headers.get("Content-Length")
        if length is None:
            self.answer(411, "length required\n")
            return
        left = int(length)
        final = os.path.join(self.server.up, "up", m.group(1))
        part = final + ".part.%d" % threading.get_ident()
        with open(part, "wb") as f:
            while left:
                d = self.rfile.read(min(left, 1 << 20))
                if not d:
                    break
                f.write(d)
                left -= len(d)
        if left:
            os.unlink(part)
            self.close_connection = True
            return
        os.rename(part, final)
        self.answer(201, "stored\n")

    def log_message(self, *args):
        pass


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    srv.daemon_threads = True
    srv.up = sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    srv.serve_forever()


if __name__ == "__main__":
    main()
