#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the hand-made seeds of the connection fuzzer (test/fuzz/fuzz_conn.c)
into test/fuzz/corpus/conn/, one per bug class the harness should reach.

    python3 test/fuzz/gen_conn_seeds.py [outdir]

The input format is described at the top of fuzz_conn.c: a 4-byte header,
then slices [ctl][len][bytes]; ctl = connection | action << 2. The request
path "/BP" picks the handler's behaviour B and its parameter byte P.
"""
import os
import sys

RUN, HALF, VANISH, TIMERS, NOREAD, READ, WAIT, BATCH, NAP = range(9)
MAXL = {1024: 0, 1: 1, 2: 2, 3: 3}


def header(conns=1, linger=True, max_lingering=1024, stop_short=False, low_hw=False,
           drain=256, collect=0, header_bytes=512):
    h0 = (conns - 1) | (0 if linger else 4) | MAXL[max_lingering] << 3
    h0 |= (32 if stop_short else 0) | (64 if low_hw else 0)
    return bytes([h0, drain // 16, collect // 64, header_bytes - 512])


def sl(conn, act, data=b''):
    """One action on a connection after sending data (split as needed:
    the pieces before the last are sent without running the loop)."""
    out = b''
    while len(data) > 255:
        out += bytes([conn | BATCH << 2, 255]) + data[:255]
        data = data[255:]
    return out + bytes([conn | act << 2, len(data)]) + data


def target(path):
    """A request-target takes 0x21-0xff but DEL; '?' and '#' end the path."""
    assert all(c > 0x20 and c != 0x7f for c in path) and b'?' not in path and b'#' not in path
    return path


def get(path, extra=b'', method=b'GET', version=b'1.1'):
    target(path)
    return method + b' ' + path + b' HTTP/' + version + b'\r\nHost: a\r\n' + extra + b'\r\n'


def post(path, body, extra=b'', send=None):
    """A request with a Content-Length body; send: how much of it to send."""
    target(path)
    head = (b'POST ' + path + b' HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n' % len(body)
            + extra + b'\r\n')
    return head + (body if send is None else body[:send])


def chunked(path, pieces, extra=b'', end=True):
    target(path)
    body = b''.join(b'%x\r\n' % len(p) + p + b'\r\n' for p in pieces)
    return (b'POST ' + path + b' HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n'
            + extra + b'\r\n' + body + (b'0\r\n\r\n' if end else b''))


CLOSE = b'Connection: close\r\n'

SEEDS = {
    # the basics, one connection
    'early-reply-unread-body': header() + sl(0, RUN, post(b'/e', b'x' * 600)),
    'stream-body-pause-resume': header() + sl(0, RUN, post(b'/sB', b'y' * 300, send=100))
    + sl(0, TIMERS, b'y' * 200),
    'collect-chunked-expect': header(collect=1024)
    + sl(0, RUN, chunked(b'/c', [b'a' * 10, b'b' * 500], extra=b'Expect: 100-continue\r\n')),
    'reply-in-data-callback': header(drain=0) + sl(0, RUN, post(b'/d', b'z' * 50)),
    'pipelined-mixed': header()
    + sl(0, TIMERS, get(b'/l') + get(b'/e') + get(b'/rC') + get(b'/fE', method=b'HEAD')),
    # a client that half-closes after a complete request must get its answer
    'halfclose-after-late-reply': header() + sl(0, HALF, get(b'/l')),
    'halfclose-after-stream-body': header()
    + sl(0, HALF, post(b'/sD', b'q' * 40)) + sl(0, TIMERS),
    'halfclose-pipelined-file': header() + sl(0, HALF, get(b'/e') + get(b'/fQ')),
    # files: small (read into memory) and large (sendfile); past the end
    'file-small-memfd': header() + sl(0, TIMERS, get(b'/fG')),
    'file-small-tmpfile-late': header() + sl(0, TIMERS, get(b'/fC')),
    'file-large-sendfile': header() + sl(0, TIMERS, get(b'/FI')) + sl(0, TIMERS),
    'file-small-past-end': header() + sl(0, TIMERS, get(b'/pP') + get(b'/e')),
    'file-large-past-end': header() + sl(0, TIMERS, get(b'/P`')) + sl(0, TIMERS),
    'file-large-starts-past-end': header() + sl(0, TIMERS, get(b'/P\x84')),
    'file-large-unread-then-read': header() + sl(0, NOREAD, get(b'/F@'))
    + sl(0, TIMERS) + sl(0, READ) + sl(0, TIMERS),
    # streamed replies: at once, from timers, and one that never ends by
    # itself while we do not read (write-timeout must end it)
    'stream-reply-chunks': header() + sl(0, RUN, get(b'/rB') + get(b'/rA', version=b'1.0')),
    'stream-reply-ticker': header() + sl(0, TIMERS, get(b'/tF')) + sl(0, TIMERS)
    + sl(0, TIMERS) + sl(0, TIMERS),
    'stream-endless-unread': header() + sl(0, NOREAD, get(b'/E@')) + sl(0, WAIT)
    + sl(0, WAIT) + sl(0, WAIT),
    'stream-endless-read': header() + sl(0, TIMERS, get(b'/EB')) + sl(0, TIMERS),
    # backpressure: a large reply not read (for less than write-timeout)
    # while the keep-alive timer runs; then with linger
    'buffer-unread-keepalive': header() + sl(0, NOREAD, get(b'/bp')) + sl(0, TIMERS)
    + sl(0, TIMERS) + sl(0, TIMERS) + sl(0, TIMERS) + sl(0, READ),
    'buffer-unread-close-linger': header(low_hw=True)
    + sl(0, NOREAD, post(b'/b`', b'u' * 1000, extra=CLOSE, send=500)) + sl(0, TIMERS)
    + sl(0, READ, b'u' * 500) + sl(0, TIMERS),
    # stop from inside a handler while another connection's work is queued:
    # both late replies fire in one iteration (the nap), then the pump runs
    # conn 0's pipelined "/x" (stop), which closes idle conn 1, last in the
    # queue being run
    'stop-in-handler-queued': header(conns=2) + sl(0, BATCH, get(b'/l') + get(b'/x'))
    + sl(1, RUN, get(b'/l')) + sl(0, NAP) + sl(0, TIMERS),
    'stop-in-data-callback-queued': header(conns=3)
    + sl(0, BATCH, get(b'/l') + post(b'/X', b'w' * 20)) + sl(1, BATCH, get(b'/l'))
    + sl(2, TIMERS, get(b'/l')) + sl(0, TIMERS),
    # ... and a third connection's late body read schedules it afterwards
    'stop-in-handler-then-late-read': header(conns=3) + sl(2, RUN, post(b'/sp', b'r' * 30))
    + sl(0, BATCH, get(b'/l') + get(b'/x')) + sl(1, RUN, get(b'/l')) + sl(0, NAP)
    + sl(2, TIMERS) + sl(2, TIMERS),
    'stop-in-data-then-late-resume': header(conns=3)
    + sl(2, RUN, post(b'/sH', b'r' * 30, send=10))
    + sl(0, BATCH, get(b'/l') + post(b'/X', b'w' * 20)) + sl(1, RUN, get(b'/l'))
    + sl(0, NAP) + sl(2, TIMERS, b'r' * 20) + sl(0, TIMERS),
    'stop-in-body-collect-short-deadline': header(conns=2, stop_short=True)
    + sl(0, BATCH, post(b'/XA', b'v' * 30)) + sl(1, TIMERS, get(b'/tC')) + sl(1, TIMERS),
    # lingering eviction from callbacks run off the queue
    'linger-evict-max1': header(conns=3, max_lingering=1)
    + sl(0, BATCH, get(b'/l', extra=CLOSE)) + sl(1, BATCH, get(b'/l') + get(b'/e', extra=CLOSE))
    + sl(2, TIMERS, get(b'/l', extra=CLOSE)) + sl(1, TIMERS),
    'linger-evict-max2': header(conns=4, max_lingering=2)
    + sl(0, BATCH, post(b'/e', b'p' * 400, extra=CLOSE, send=10))
    + sl(1, BATCH, post(b'/e', b'p' * 400, extra=CLOSE, send=10))
    + sl(2, BATCH, get(b'/l') + get(b'/e', extra=CLOSE))
    + sl(3, TIMERS, get(b'/l', extra=CLOSE)) + sl(2, TIMERS),
    # linger off: the naive close must still deliver on AF_UNIX
    'linger-off-close': header(linger=False) + sl(0, RUN, post(b'/e', b'n' * 300, extra=CLOSE)),
    # vanish mid-stream
    'vanish-during-file': header(conns=2) + sl(0, NOREAD, get(b'/FQ'))
    + sl(1, RUN, get(b'/l')) + sl(0, VANISH) + sl(1, TIMERS),
    # drain of a small remainder keeps the connection
    'drain-remainder-keepalive': header(drain=4000)
    + sl(0, RUN, post(b'/e', b'k' * 200, send=50)) + sl(0, RUN, b'k' * 150 + get(b'/nD')),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                             'corpus', 'conn')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed-' + name), 'wb') as f:
            f.write(data)
    print('%d seeds written to %s' % (len(SEEDS), out))


if __name__ == '__main__':
    main()
