/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * splice.c - a Content-Length body moved from a plain socket straight into
 * the application's file descriptor: socket -> pipe -> fd with splice(2),
 * so the bytes never cross into user space.
 *
 * A mover that knows no connection and no request. HTTP/1.1 (http1.c)
 * holds it: its read entry calls grace__splice_read() instead of letting
 * the engine read into the input buffer while such a body is due, and its
 * body phase calls grace__splice_buffered() to write what was buffered with
 * the headers first. HTTP/1.1 tells its parser of every byte moved, so
 * limits, pause, body-timeout (from the last bytes moved), early replies and
 * the drain that follows them work as for a streamed body.
 */
#define _GNU_SOURCE
#include "splice.h"

#include "transport.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <unistd.h>

#define SPLICE_PIPE (1 << 20)  /* asked pipe capacity; the default (64 KiB) if refused */
/* Moved per read event, then the other connections get their turn: a body
 * that arrives faster than it is stored (a fast link) must not hold the
 * loop. 4 MiB here held it ~1 ms per upload per iteration at full speed,
 * far longer on a shared core (preempted midway): GETs beside three 1 GiB
 * PUTs waited seconds (test/bench/upload_latency.sh). 128 KiB costs no
 * measurable CPU per GiB; 64 KiB cost 18% more. */
#define SPLICE_TURN (128u << 10)

int grace__splice_open(struct grace_splice *sp, int fd)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    (void)fcntl(p[1], F_SETPIPE_SZ, SPLICE_PIPE); /* fewer calls; fine without */
    sp->pipe_rd = p[0];
    sp->pipe_wr = p[1];
    sp->fd = fd;
    sp->err = 0;
    sp->open = 1;
    return 0;
}

void grace__splice_close(struct grace_splice *sp)
{
    if (!sp->open)
        return;
    close(sp->pipe_rd);
    close(sp->pipe_wr);
    sp->open = 0;
}

/* Empty the pipe into the fd (a regular file takes it all; anything else
 * may block us, which is the application's choice of fd). */
static int drain_pipe(struct grace_splice *sp, size_t n)
{
    while (n > 0) {
        ssize_t m = splice(sp->pipe_rd, NULL, sp->fd, NULL, n, SPLICE_F_MOVE);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return m < 0 ? -errno : -EIO;
        n -= (size_t)m;
    }
    return 0;
}

int grace__splice_read(struct grace_splice *sp, const struct grace_transport *tp,
                       struct grace_sock *s, uint64_t left, uint64_t *moved)
{
    uint64_t turn = SPLICE_TURN;

    while (turn > 0 && left > 0) {
        size_t want = left < turn ? (size_t)left : (size_t)turn;
        ssize_t n;
        int e;

        n = tp->splice(s, sp->pipe_wr, want);
        if (n == 0)
            return 1;
        if (n == -EAGAIN)
            break; /* the socket is empty (the pipe is always emptied) */
        if (n < 0)
            return (int)n;
        if ((e = drain_pipe(sp, (size_t)n)) < 0) {
            sp->err = e;
            break;
        }
        *moved += (uint64_t)n;
        left -= (uint64_t)n;
        turn -= (uint64_t)n;
    }
    return 0;
}

int grace__splice_buffered(struct grace_splice *sp, struct evbuffer *in, uint64_t left,
                           uint64_t *moved)
{
    size_t len = evbuffer_get_length(in);

    if (!sp->err && left && len) {
        size_t n = len < left ? len : (size_t)left, done = 0;
        while (done < n) {
            int w = evbuffer_write_atmost(in, sp->fd, (ev_ssize_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                sp->err = w < 0 ? -errno : -EIO;
                break;
            }
            done += (size_t)w;
        }
        *moved += done;
    }
    return sp->err;
}
