/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * transport.h - the socket seam. Every call on a connection's socket goes
 * through one of these tables: io.c's plain one, or tls.c's. Above it the
 * engine (conn.c) and nothing else touches the socket, and nobody asks
 * "is this TLS?": they ask the table (ready, version, raw...).
 *
 * Errors are negative errno values; -EAGAIN means "not now, wait for the
 * event".
 */
#ifndef GRACE_TRANSPORT_H
#define GRACE_TRANSPORT_H

#include <event2/util.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evbuffer;
struct grace_server;
struct grace_tls;

/* What a transport keeps per connection. */
struct grace_sock {
    void *tls;                /* tls.c's session; NULL for plain */
    struct grace_server *srv; /* counters, the discard buffer */
    evutil_socket_t fd;       /* -1 once closed or handed over */
};

struct grace_transport {
    /* Read at most max bytes into in: >0 read, 0 end of stream, or -errno. */
    ssize_t (*read)(struct grace_sock *s, struct evbuffer *in, size_t max);
    /* Write from the front of out (memory or file segments): >0 written, or
     * -errno; -EPIPE when a file ended before its promised length. */
    ssize_t (*write)(struct grace_sock *s, struct evbuffer *out);
    /* End our direction of the stream: close_notify (TLS), then the FIN. */
    int (*shutdown)(struct grace_sock *s);
    /* Drop at most n bytes the client sent, without reading them (raw: for
     * TLS the session is over for us): >0 dropped, 0 end of stream, or
     * -errno; *plain: how many of the client's data bytes they carried, as
     * far as known (TLS: plaintext, counted per record once it is whole;
     * never more than there were). plain NULL: no count is wanted, now or
     * later (TLS drops faster). */
    ssize_t (*discard)(struct grace_sock *s, size_t n, uint64_t *plain);
    /* Bytes written but not yet taken by the client, as far as known. */
    size_t (*unsent)(struct grace_sock *s);
    /* Close the socket (and the session). */
    void (*close)(struct grace_sock *s);
    /* Nonzero while input is held below us that no socket event announces. */
    size_t (*pending)(struct grace_sock *s);
    /* Nonzero if input waits, in the socket (peeked, not read) or below us. */
    int (*waiting)(struct grace_sock *s);
    /* The last read stopped until the socket takes our bytes (a handshake). */
    int (*read_wants_write)(struct grace_sock *s);
    /* Set up the session on s->fd: ctx the TLS context, alpn the protocols
     * offered (RFC 7301 wire format; kept, not copied). 0, or -errno. */
    int (*open)(struct grace_sock *s, struct grace_tls *ctx, const unsigned char *alpn,
                size_t alpn_len);
    /* The handshake is done (plain: always). */
    int (*ready)(const struct grace_sock *s);
    /* "TLSv1.3"..., or NULL for plain. */
    const char *(*version)(const struct grace_sock *s);
    /* The server name the client asked for, or NULL. */
    const char *(*sni)(const struct grace_sock *s);
    /* The protocol chosen by ALPN and its length, or NULL. */
    const char *(*alpn)(const struct grace_sock *s, size_t *len);
    /* Move at most max bytes from the socket into the pipe pipe_wr, raw
     * (splice(2)): >0 moved, 0 end of stream, or -errno. NULL: the bytes on
     * the socket are not the application's (TLS). */
    ssize_t (*splice)(struct grace_sock *s, int pipe_wr, size_t max);
    unsigned secure : 1; /* grace_conn_is_tls(): known before the session exists */
    unsigned raw : 1;    /* socket bytes are the application's: sendfile, take_fd */
};

extern const struct grace_transport grace__plain, grace__tls;

/* tls.c: a listener's reference on its context (grace_tls_free() drops it). */
void grace__tls_ref(struct grace_tls *tls);

/* One read at most: an evbuffer chain's header shares its 16 KiB malloc. */
#define GRACE_READ_CHUNK (16384 - 128)

#endif
