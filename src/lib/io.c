/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io.c - the plain transport: the only place that calls recv/writev/
 * sendfile/splice/shutdown/close on a plain connection's socket. The engine
 * reaches the socket through struct grace_transport (transport.h), so the
 * TLS transport (tls.c) replaces these functions without touching it.
 */
#define _GNU_SOURCE /* splice */
#include "transport.h"

#include "core.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

/* The most one discard recv() drops. */
#define DISCARD_CHUNK (256u << 10)

static ssize_t plain_read(struct grace_sock *s, struct evbuffer *in, size_t max)
{
    struct evbuffer_iovec v;
    size_t want = max < GRACE_READ_CHUNK ? max : GRACE_READ_CHUNK;
    ssize_t n;

    if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
        return -ENOMEM;
    if (v.iov_len > want)
        v.iov_len = want;
    do
        n = recv(s->fd, v.iov_base, v.iov_len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    v.iov_len = (size_t)n;
    evbuffer_commit_space(in, &v, 1);
    return n;
}

/*
 * One writev() of the memory chains at the front, or one sendfile() of a
 * file segment. libevent returns 0 both for a sendfile() that would block
 * and for one that hit the end of the file before the length we promised;
 * errno tells them apart. The second is -EPIPE: the response cannot be
 * completed.
 */
static ssize_t plain_write(struct grace_sock *s, struct evbuffer *out)
{
    int n;

    errno = 0;
    n = evbuffer_write(out, s->fd);
    if (n > 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -EAGAIN;
    return n == 0 ? -EPIPE : -errno;
}

static int plain_shutdown(struct grace_sock *s)
{
    return shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

/*
 * Drop up to n bytes of what the client sent. On Linux, TCP + MSG_TRUNC
 * discards in the kernel without copying; the buffer is never written but
 * must exist (and tools like valgrind check that it does). Elsewhere the
 * bytes are copied into it and forgotten.
 */
static ssize_t plain_discard(struct grace_sock *s, size_t n, uint64_t *plain)
{
    struct grace_server *srv = s->srv;
    ssize_t k;
    int flags = MSG_DONTWAIT;

    if (!srv->discard_buf && !(srv->discard_buf = malloc(DISCARD_CHUNK)))
        return -ENOMEM;
    if (n > DISCARD_CHUNK)
        n = DISCARD_CHUNK;
#if defined(__linux__)
    flags |= MSG_TRUNC;
#endif
    do
        k = recv(s->fd, srv->discard_buf, n, flags);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (plain)
        *plain = (uint64_t)k;
    return k;
}

/* Bytes written but not yet taken by the client (the kernel's send queue),
 * or 0 where that cannot be known. */
static size_t plain_unsent(struct grace_sock *s)
{
#ifdef SIOCOUTQ
    int n = 0;
    if (ioctl(s->fd, SIOCOUTQ, &n) == 0 && n > 0)
        return (size_t)n;
#endif
    return 0;
}

static void plain_close(struct grace_sock *s)
{
    evutil_closesocket(s->fd);
}

static int plain_waiting(struct grace_sock *s)
{
    char b;
    ssize_t k;
    do
        k = recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    return k > 0;
}

static size_t plain_pending(struct grace_sock *s)
{
    return 0; /* the kernel announces every byte it holds */
}

static int plain_read_wants_write(struct grace_sock *s)
{
    return 0;
}

static int plain_open(struct grace_sock *s, struct grace_tls *ctx, const unsigned char *alpn,
                      size_t alpn_len)
{
    return 0;
}

static int plain_ready(const struct grace_sock *s)
{
    return 1;
}

static const char *plain_none(const struct grace_sock *s)
{
    return NULL;
}

static const char *plain_alpn(const struct grace_sock *s, size_t *len)
{
    *len = 0;
    return NULL;
}

/* Socket -> pipe in the kernel: the bytes never cross into user space. */
static ssize_t plain_splice(struct grace_sock *s, int pipe_wr, size_t max)
{
    ssize_t n;

    do
        n = splice(s->fd, NULL, pipe_wr, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

const struct grace_transport grace__plain = {
    .read = plain_read,
    .write = plain_write,
    .shutdown = plain_shutdown,
    .discard = plain_discard,
    .unsent = plain_unsent,
    .close = plain_close,
    .pending = plain_pending,
    .waiting = plain_waiting,
    .read_wants_write = plain_read_wants_write,
    .open = plain_open,
    .ready = plain_ready,
    .version = plain_none,
    .sni = plain_none,
    .alpn = plain_alpn,
    .splice = plain_splice,
    .secure = 0,
    .raw = 1,
};
