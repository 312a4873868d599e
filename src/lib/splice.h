/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * splice.h - a body moved from a socket straight into a file descriptor:
 * socket -> pipe -> fd with splice(2). A mover only: the protocol that
 * holds it (http1.c) knows the body's framing, its limits and its timers,
 * and is told how many bytes moved.
 */
#ifndef GRACE_SPLICE_H
#define GRACE_SPLICE_H

#include <stdint.h>

struct evbuffer;
struct grace_sock;
struct grace_transport;

struct grace_splice {
    int fd;               /* the application's, written at its offset */
    int pipe_rd, pipe_wr;
    int err;              /* a failed write to fd, -errno (kept: answered 507/500) */
    unsigned open : 1;    /* the pipe is ours to close */
};

/* Open the pipe for a body into fd: 0 or -errno. */
int grace__splice_open(struct grace_splice *sp, int fd);
/* Close the pipe (fd stays the application's); again: nothing. */
void grace__splice_close(struct grace_splice *sp);
/* The socket is readable: move up to left bytes (a turn at most), until it
 * is empty; *moved: the bytes moved. 0, 1 at the end of the stream, or the
 * socket's -errno; a failed write is kept in sp->err. */
int grace__splice_read(struct grace_splice *sp, const struct grace_transport *tp,
                       struct grace_sock *s, uint64_t left, uint64_t *moved);
/* Write up to left bytes buffered in in (read with the headers) to fd
 * first; *moved: the bytes written. 0, or sp->err. */
int grace__splice_buffered(struct grace_splice *sp, struct evbuffer *in, uint64_t left,
                           uint64_t *moved);

#endif
