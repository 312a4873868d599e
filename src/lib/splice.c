/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * splice.c - a Content-Length body moved from a plain socket straight into
 * the application's file descriptor: socket -> pipe -> fd with splice(2),
 * so the bytes never cross into user space.
 *
 * HTTP/1.1 (http1.c) keeps its role: its read entry calls
 * grace__splice_read() instead of letting the engine read into the input
 * buffer while such a body is due, and its body phase calls
 * grace__splice_pump() to write what was buffered with the headers, to
 * notice the end, a failed write, or a client gone early. Limits, pause,
 * body-timeout (from the last bytes moved), early replies and the drain that
 * follows them work as for a streamed body: the parser is told of every byte
 * moved, so it always knows what is left.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <unistd.h>

#define SPLICE_PIPE (1 << 20)  /* asked pipe capacity; the default (64 KiB) if refused */
#define SPLICE_TURN (4u << 20) /* moved per read event, so others get their turn */

int grace__splice_open(struct grace_request *req, int fd)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    (void)fcntl(p[1], F_SETPIPE_SZ, SPLICE_PIPE); /* fewer calls; fine without */
    req->pipe_rd = p[0];
    req->pipe_wr = p[1];
    req->body_fd = fd;
    return 0;
}

void grace__splice_release(struct grace_request *req)
{
    if (req->body_mode != BODY_FD)
        return;
    close(req->pipe_rd);
    close(req->pipe_wr);
    req->body_mode = BODY_NONE;
}

/* Is the read event to move req's body bytes into the application's fd? */
int grace__splice_active(const struct grace_request *req, const struct grace_parser *p)
{
    return req->body_mode == BODY_FD && !req->body_done && !req->fd_err &&
           grace_parser_body_left(p);
}

/* Empty the pipe into the fd (a regular file takes it all; anything else
 * may block us, which is the application's choice of fd). */
static int drain_pipe(struct grace_request *req, size_t n)
{
    while (n > 0) {
        ssize_t m = splice(req->pipe_rd, NULL, req->body_fd, NULL, n, SPLICE_F_MOVE);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return m < 0 ? -errno : -EIO;
        n -= (size_t)m;
    }
    return 0;
}

static void progress(struct grace_request *req, struct grace_parser *p, uint64_t n,
                     uint64_t *moved)
{
    grace_parser_body_skip(p, n);
    req->body_read += n;
    *moved += n;
}

/*
 * The socket is readable: move up to the body's end, until it is empty.
 * 0, or 1 at the end of the stream, or a negative errno of the socket. A
 * failed write is kept in fd_err for grace__splice_pump().
 */
int grace__splice_read(const struct grace_transport *tp, struct grace_sock *s,
                       struct grace_request *req, struct grace_parser *p, uint64_t *moved)
{
    uint64_t turn = SPLICE_TURN;

    if (req->paused)
        return 0;
    while (turn > 0) {
        uint64_t left = grace_parser_body_left(p);
        size_t want = left < turn ? (size_t)left : (size_t)turn;
        ssize_t n;
        int e;

        if (want == 0)
            break;
        n = tp->splice(s, req->pipe_wr, want);
        if (n == 0)
            return 1;
        if (n == -EAGAIN)
            break; /* the socket is empty (the pipe is always emptied) */
        if (n < 0)
            return (int)n;
        if ((e = drain_pipe(req, (size_t)n)) < 0) {
            req->fd_err = e;
            break;
        }
        progress(req, p, (uint64_t)n, moved);
        turn -= (uint64_t)n;
    }
    return 0;
}

/*
 * Body phase of a BODY_FD request: bytes buffered with the headers are
 * written first. 1 when the body is complete, 0 while more is due, or the
 * negative errno of a failed write.
 */
int grace__splice_pump(struct evbuffer *in, struct grace_request *req, struct grace_parser *p,
                       uint64_t *moved)
{
    uint64_t left = grace_parser_body_left(p);
    size_t len = evbuffer_get_length(in);

    if (!req->fd_err && left && len) {
        size_t n = len < left ? len : (size_t)left, done = 0;
        while (done < n) {
            int w = evbuffer_write_atmost(in, req->body_fd, (ev_ssize_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                req->fd_err = w < 0 ? -errno : -EIO;
                break;
            }
            done += (size_t)w;
        }
        progress(req, p, done, moved);
    }
    if (req->fd_err)
        return req->fd_err;
    return grace_parser_body_done(p);
}
