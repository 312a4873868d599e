/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * request.h - the request object (request.c): what a protocol builds from a
 * complete head, the application's accessors and body verbs, its lifetime
 * (done, detach, release, the deferred free), and the request ops through
 * which it reaches its protocol. It knows no protocol.
 */
#ifndef GRACE_REQUEST_H
#define GRACE_REQUEST_H

#include "conn.h"
#include "core.h"
#include "parser.h"
#include "trailer.h"

#include <errno.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct evbuffer;

enum body_mode { BODY_NONE, BODY_STREAM, BODY_COLLECT, BODY_DISCARD, BODY_FD };
enum resp_state { RESP_NONE, RESP_STREAMING, RESP_DONE };

struct grace_stream;

/*
 * What a request asks of the protocol that carries it (http1.c's; h2's per
 * stream): request.c and response.c check the application's arguments and
 * the request's state, then call through req->ops only, never a protocol by
 * name. Each runs inside the connection's bracket (the caller's), with
 * req->conn set; one that may close the connection says so.
 */
struct grace_req_ops {
    /* The application starts reading the body (req->body_mode is set):
     * 100 Continue if owed, body-timeout starts, delivery is scheduled. */
    int (*body_start)(struct grace_request *req);
    /* Delivery goes on after grace_request_resume(). */
    void (*body_resume)(struct grace_request *req);
    /* The body straight into fd (grace_request_body_to_fd): -ENOTSUP when
     * the protocol or the request's framing cannot; NULL: never. */
    int (*body_to_fd)(struct grace_request *req, int fd);
    /* A 1xx with fields (name, value pairs), checked by response.c. */
    int (*informational)(struct grace_request *req, int status, const char *const *fields,
                         size_t nfields);
    /* The status and headers (req->resp_headers); length < 0: streamed. A
     * streamed head goes out at once, a whole reply's with its body. */
    int (*send_head)(struct grace_request *req, int status, int64_t length);
    /* Body bytes, copied from data or moved out of move; framed as the head
     * said. A streamed response's go out at once. */
    int (*send_data)(struct grace_request *req, const char *data, size_t len,
                     struct evbuffer *move);
    /* length bytes of fd from offset, read as they are sent; owns fd. <0:
     * the body will be short (the connection must close after it). */
    int (*send_file)(struct grace_request *req, int fd, off_t offset, off_t length);
    /* The reply is complete (req->resp is RESP_DONE): the framing's end
     * with ntrailers trailer fields (name, value pairs, checked by
     * response.c; copied), then the protocol lets go of req, whatever it
     * returns. -EPROTONOSUPPORT: the framing cannot carry trailers (they
     * were not sent; the reply ended as without them). */
    int (*end)(struct grace_request *req, const char *const *trailers, size_t ntrailers);
    /* The switch to a raw stream (101, or 2xx to CONNECT), checked by
     * response.c; NULL: -ENOTSUP. */
    int (*upgrade)(struct grace_request *req, int status, struct grace_stream **stream);
    /* Output bytes not yet written that are this request's to wait for. */
    size_t (*pending)(const struct grace_request *req);
    /* req->on_drain was set: fire it from the loop once due. */
    void (*drain_check)(struct grace_request *req);
    /* The server's own answer to req (status, msg; nothing if the reply
     * began), then the protocol lets go of it with err. */
    void (*fail)(struct grace_request *req, int status, const char *msg, int err);
};

struct grace_request {
    const struct grace_req_ops *ops; /* its protocol's */
    void *ps;                 /* the protocol's handle (h2: its stream), or NULL */
    const char *version;      /* "HTTP/2.0"; NULL: HTTP/1.x as p says */
    struct grace_conn *conn;  /* NULL once the client has gone */
    struct grace_server *srv;
    struct grace_preq p;      /* parser results; offsets into blk */
    struct grace_hfield *fields;
    char *blk;                /* header block copy, NUL-terminated strings */
    const char *path, *query;
    const char *npath;        /* grace_request_path_decoded(); NULL: refused */

    enum body_mode body_mode;
    uint64_t body_read;       /* body bytes consumed so far */
    uint64_t body_limit;      /* max-body-size, or the handler's own */
    int64_t body_timeout;     /* ms; 0: the server's body-timeout */
    int64_t rate_since;       /* body-min-rate: this window's start, ms */
    uint64_t rate_bytes;      /* body_read at that start */
    int64_t write_timeout;    /* ms; 0: the server's write-timeout */
    int paused;
    grace_data_cb on_data;
    grace_end_cb on_end;
    grace_body_cb on_body;
    void *body_arg;
    struct evbuffer *body;    /* BODY_COLLECT */
    struct grace_trailers trailers; /* the client's, shown once body_done */

    grace_finish_cb on_finish;
    void *finish_arg;
    grace_drain_cb on_drain;  /* one-shot: output at or below low-water */
    void *drain_arg;
    int64_t deadline_at;      /* grace_request_set_deadline: monotonic ms; 0 none */

    enum resp_state resp;
    int status;
    struct evbuffer *resp_headers; /* added by the application */
    struct grace_response_info *report; /* report.c: this response's record */
    const char *tls_version;  /* a static string, or NULL for plain */
    unsigned head : 1, chunked_out : 1, close_delimited : 1, sent_continue : 1,
        close_after : 1, body_done : 1, finished : 1, detached : 1, end_delivered : 1,
        want_close : 1, app_done : 1, release_held : 1,
        hold_stop : 1;        /* grace_request_hold_stop(): a stop waits for the reply */
    int held;                           /* grace__request_hold() */
    int64_t start_us;                   /* its first byte (monotonic us) */
    struct grace_defer defer;           /* its free, while its connection is busy */
    TAILQ_ENTRY(grace_request) dlink;   /* srv->detached */
};

/* A request a call may still change: 0, or -EINVAL (none), -ENOTCONN (its
 * connection went), -EALREADY (its reply is complete). */
static inline int grace__request_open(const struct grace_request *req)
{
    return !req ? -EINVAL : req->detached ? -ENOTCONN : req->resp == RESP_DONE ? -EALREADY : 0;
}

/* request.c */
/* A request from a complete head: p's results, blk its header block,
 * start_us its first byte. NULL: out of memory. */
struct grace_request *grace__request_new(struct grace_conn *c, const struct grace_req_ops *ops,
                                         const struct grace_parser *p, const char *blk,
                                         int64_t start_us);
/* An HTTP/1.1 request with "Connection: upgrade" and an Upgrade header. */
int grace__request_asks_upgrade(const struct grace_request *req);
/* A reply other than the switch: the client may already speak the new
 * protocol after its request, so the connection is not reused. */
int grace__request_upgrade_refused(const struct grace_request *req);
void grace__request_finish(struct grace_request *req, int err);
void grace__request_free(struct grace_request *req);
/* The application is done with req: freed once no report pins it (later if
 * its connection is busy). */
void grace__request_release(struct grace_request *req);
/* Its protocol lets go of req, exactly one of the two, once: the reply is
 * complete (finish 0), or the connection ended first (finish err; req joins
 * srv->detached). */
void grace__request_done(struct grace_request *req);
/* Keep req's memory while a caller still looks at it after a callback (the
 * server across a handler): a release in between waits for the unhold. */
void grace__request_hold(struct grace_request *req);
void grace__request_unhold(struct grace_request *req);
void grace__request_detach(struct grace_request *req, int err);

#endif
