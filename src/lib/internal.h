/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * internal.h - structures shared by the library's modules.
 *
 *   server.c    config, listeners, accept, routing, stop, counters
 *   conn.c      the per-connection pipeline: read, parse, dispatch, body,
 *               write, the deadlines
 *   io.c        the socket seam (read, write/sendfile, shutdown, discard, close)
 *   linger.c    the graceful close's policy: when discarding ends (pure)
 *   report.c    responses reported to the application once written
 *   request.c   request accessors and the body-reading API
 *   response.c  reply functions, header formatting, Date cache
 *   stream.c    upgrades and CONNECT tunnels: the connection as a raw stream
 *   hooks.c     connection hooks: accept filter, close notification, user
 *               data, local address, drop
 */
#ifndef GRACE_INTERNAL_H
#define GRACE_INTERNAL_H

#include "core.h"
#include "gracehttp.h"
#include "linger.h"
#include "parser.h"
#include "transport.h"
#include "util.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/queue.h>

struct evbuffer;
struct grace_conn;

/*
 * Work left for when nothing is on the connection's stack (a request's
 * free): run once, at the outermost grace__conn_leave(), or at once if the
 * connection is not busy (grace__conn_defer). Queued at most once.
 */
struct grace_defer {
    struct grace_defer *next;
    void (*run)(struct grace_defer *d);
    int queued;
};


/* Which output event the engine tells its protocol of. */
enum grace_out {
    GRACE_OUT_ROOM,   /* it announced more (grace__conn_more): produce some now */
    GRACE_OUT_SENT,   /* bytes left: reports, drain callbacks */
    GRACE_OUT_EMPTY,  /* the output buffer became empty */
    GRACE_OUT_FLUSHED /* a pump's output is written as far as the socket takes */
};

/*
 * What the engine asks of the protocol that speaks on a connection: conn.c
 * calls through this table only, never a protocol by name (http1.c's
 * grace__http1, chosen at accept from srv->protos; stream.c's
 * grace__stream_proto after an upgrade). Every call runs inside the
 * connection's enter/leave bracket and may close or destroy c. Once the
 * connection closes (CS_CLOSING on) only output and end are called.
 */
struct grace_proto {
    const char *name;
    /* Choosing it on a new connection (before HTTP/1.1 reads a byte): the
     * ALPN id that selects it on TLS, and on plain its first bytes: 1 mine,
     * 0 not, -1 need more (srv->alpn_proto, srv->sniff_proto). */
    const char *alpn;
    int (*sniff)(const char *b, size_t n);
    /* Its state in every slot (the slot's area, zeroed when attached). */
    size_t slot_size;
    /* It takes the connection (grace__conn_switch): arg is its own. */
    int (*start)(struct grace_conn *c, void *arg);
    /* Bytes in the slot's input, or the peer's EOF (c->peer_eof). */
    void (*input)(struct grace_conn *c);
    /* An output event: 0; ROOM: -errno when it cannot produce what it
     * announced (-EPIPE: a file ended early); FLUSHED: 1 for another
     * round of input. */
    int (*output)(struct grace_conn *c, enum grace_out what);
    /* Its deadline passed (deadline()'s why): it counts it
     * (grace__conn_timed_out) unless it finds it not due after all. */
    void (*timeout)(struct grace_conn *c, enum grace_counter why);
    void (*stop)(struct grace_conn *c, enum grace_stop how);
    /* It leaves the connection, once: on an abort or destroy with the error,
     * or 0 when a graceful close has written everything. What it cuts off
     * makes err the connection's close reason. Memory that must outlive the
     * stack goes through grace__conn_defer(). */
    void (*end)(struct grace_conn *c, int err);
    /* Its earliest deadline (monotonic ms, 0: none), and why. */
    int64_t (*deadline)(const struct grace_conn *c, enum grace_counter *why);
    /* write-timeout for what is queued now (ms); NULL: slot->write_timeout. */
    int64_t (*write_timeout)(const struct grace_conn *c);
    /* Input it takes now; 0 stops reading. NULL: up to grace__input_max(). */
    size_t (*room)(const struct grace_conn *c);
    /* It moves the socket's bytes itself (a body spliced into a file): 0, 1
     * at the end of the stream, or -errno; -ENOTSUP: the engine reads. */
    int (*read)(struct grace_conn *c);
    /* Body bytes the client still owes (UINT64_MAX: unknown), for the
     * linger; *upload: one was still arriving. NULL: none. */
    uint64_t (*owed)(const struct grace_conn *c, unsigned char *upload);
};

/* d = the earlier of d and t (0: none yet), *why its reason; on a tie the
 * first stays. */
static inline void grace__earlier(int64_t *d, enum grace_counter *why, int64_t t,
                                  enum grace_counter cnt)
{
    if (!*d || t < *d) {
        *d = t;
        *why = cnt;
    }
}

/* Connection states, named by what the connection waits for;
 * docs/design.md has the diagram. */
enum conn_state {
    CS_NEW,      /* its first bytes (and TLS handshake): header-timeout from the accept */
    CS_IDLE,     /* keep-alive: nothing in flight (the protocol said so) */
    CS_ACTIVE,   /* the protocol's work (HTTP/1.1's request, a stream) */
    CS_CLOSING,  /* reply complete, closing: our output to drain */
    CS_LINGER,   /* our FIN is sent: the client's EOF, discarding meanwhile */
    CS_DEAD      /* closed; memory freed when nothing is on the stack */
};

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
    /* The reply is complete (req->resp is RESP_DONE): the framing's end,
     * trailers (NULL for now), then the protocol lets go of req. */
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
    int body_fd, pipe_rd, pipe_wr; /* BODY_FD (splice.c) */
    int fd_err;               /* BODY_FD: a failed write to body_fd, -errno */

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
        want_close : 1, app_done : 1, release_held : 1;
    int held;                           /* grace__request_hold() */
    int64_t start_us;                   /* its first byte (monotonic us) */
    struct grace_defer defer;           /* its free, while its connection is busy */
    TAILQ_ENTRY(grace_request) dlink;   /* srv->detached */
};

/*
 * A response on its way out, reported to the application (report.c) once
 * its last byte is written or the connection ends. Exists only while the
 * application asked for reports.
 */
struct grace_response_info {
    struct grace_response_info *next; /* conn->reports, oldest first */
    struct grace_request *req;        /* pinned until reported; may be NULL */
    struct grace_conn *conn;
    uint64_t start, head_end, end;    /* offsets in the connection's output */
    int64_t start_us, end_us;
    uint64_t sent;                    /* the output's offset when it was reported */
    const char *tls_version;          /* the connection's, when it started */
    int status, err;
    unsigned done : 1;                /* end is known: the reply completed */
};

/* The records of a connection's responses, oldest first. */
struct grace_reports {
    struct grace_response_info *head, **tail;
};

/*
 * What a connection needs only while a request is in flight. An idle
 * keep-alive or lingering connection gives its slot back to the server's
 * pool and keeps only its socket, read event and struct grace_conn.
 */
struct grace_slot {
    struct evbuffer *in, *out;
    struct event *wr;           /* the socket's write event, added while output waits */
    struct event *timer;        /* the earliest deadline (see conn.c: deadline()) */
    int64_t timer_at;           /* when the timer fires; 0: not armed */
    int64_t write_since;        /* output waiting: its last progress */
    size_t write_unsent;        /* the kernel's send queue when it was last
                                   full, or write-timeout last looked */
    int64_t write_timeout;      /* ms: the last completed response's, for its
                                   tail still waiting (conn.c: deadline()) */
    int write_err;              /* a write failed; the write event ends the connection */
    uint64_t more;              /* bytes the protocol will still produce (grace__conn_more) */
    int64_t woke_us;            /* the first byte after the slot was attached */
    uint64_t written;           /* bytes written since the slot was attached */
    int64_t read_ms, wrote_ms;  /* the last read, the last write that moved bytes */
    struct grace_reports reports; /* report.c */
    struct grace_slot *next;    /* srv->free_slots */
    max_align_t area[];         /* the protocol's state: srv->slot_extra bytes */
};

struct grace_conn {
    struct grace_server *srv;
    const struct grace_transport *tp;
    struct grace_slot *slot;  /* NULL while idle or lingering */
    struct event *rd;         /* the socket's read event; idle and linger timeouts */
    struct grace_sock sock;   /* the transport's: fd, TLS session */
    enum conn_state state;
    const struct grace_proto *proto; /* who speaks on it; NULL once it left */
    void *ps;                 /* the protocol's handle (stream.c: its stream) */
    int64_t accepted_ms;      /* monotonic ms at accept */
    union {                   /* what the current state measures */
        struct {
            size_t unsent;    /* CS_IDLE: the kernel's send queue at the last look */
            int64_t since;    /* when the output became empty */
        } idle;
        struct grace_linger linger; /* CS_CLOSING, CS_LINGER (linger.c's policy) */
    } st;
    int busy;                 /* callbacks on the stack: defer the free */
    struct grace_defer *defer; /* to run at the outermost leave */
    unsigned in_pump_list : 1, pumping : 1, stop_close : 1, peer_eof : 1,
        flush_pending : 1, delivering : 1, discard_after : 1,
        accepting : 1, refused : 1, stop_cut : 1, chosen : 1;
    int close_err;            /* why it closes, for the close hook; first set wins */
    void *data;               /* the application's (grace_conn_set_data) */
    socklen_t peer_len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    TAILQ_ENTRY(grace_conn) link;   /* srv->conns or srv->lingering */
    TAILQ_ENTRY(grace_conn) pump_link;
};


/* conn.c */
/* A new connection on fd speaking tp (with the context tls, or NULL), from a
 * listener or the application: it owns fd from here on. */
void grace__conn_accept(struct grace_server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                        int salen, const struct grace_transport *tp, struct grace_tls *tls);
void grace__conn_enter(struct grace_conn *c);
void grace__conn_leave(struct grace_conn *c);
void grace__conn_schedule(struct grace_conn *c);
void grace__conn_flush(struct grace_conn *c);
void grace__conn_write_now(struct grace_conn *c);
void grace__conn_abort(struct grace_conn *c, int err);
void grace__conn_drop(struct grace_conn *c);
/* Hand the connection to another protocol (an upgrade): proto->start(c, arg). */
int grace__conn_switch(struct grace_conn *c, const struct grace_proto *proto, void *arg);
/* A deadline passed: count it (why), and -ETIMEDOUT is the close reason. */
void grace__conn_timed_out(struct grace_conn *c, enum grace_counter why);
/* The engine's share of the server: lists, slots, the pump event, the
 * common timeouts. init: -ENOMEM; free: every connection closed first. */
int grace__engine_init(struct grace_server *srv);
void grace__engine_free(struct grace_server *srv);
/* A server stop: GRACE_STOP_LAME_DUCK at its start, GRACE_STOP_CUT at its
 * deadline, for every connection (docs/design.md "Stop"). */
void grace__engine_stop(struct grace_server *srv, enum grace_stop how);
/* Close every connection now (-ECANCELED): grace_server_free, a stop's end. */
void grace__engine_close_all(struct grace_server *srv);
void grace__conn_discard_input(struct grace_conn *c);
void grace__conn_watch_input(struct grace_conn *c);
void grace__conn_destroy(struct grace_conn *c);
/* splice.c: a Content-Length body moved straight into a file descriptor;
 * moved: the body bytes it moved (the parser was told) */
int grace__splice_active(const struct grace_request *req, const struct grace_parser *p);
int grace__splice_read(const struct grace_transport *tp, struct grace_sock *s,
                       struct grace_request *req, struct grace_parser *p, uint64_t *moved);
int grace__splice_pump(struct evbuffer *in, struct grace_request *req, struct grace_parser *p,
                       uint64_t *moved);
/* Its pipe, and fd to write to: 0 or -errno. */
int grace__splice_open(struct grace_request *req, int fd);
void grace__splice_release(struct grace_request *req);
void grace__conn_reason(struct grace_conn *c, int err);
size_t grace__buffered_out(const struct grace_conn *c);
/* The input bound: a full header block plus 64 KiB, buffered and unread. */
size_t grace__input_max(const struct grace_server *srv);
/* The protocol says: nothing in flight (keep-alive), or work under way. */
void grace__conn_idle(struct grace_conn *c);
void grace__conn_active(struct grace_conn *c);
/* The protocol will produce bytes more (a file read as it goes): they count
 * as queued output, and output(GRACE_OUT_ROOM) asks for them. */
void grace__conn_more(struct grace_conn *c, uint64_t bytes);
/* Nothing in flight: close now, or gracefully once the output is out. */
void grace__conn_close_idle(struct grace_conn *c);
/* Run d now, or at the outermost grace__conn_leave() while c is busy (c
 * NULL: now). */
void grace__conn_defer(struct grace_conn *c, struct grace_defer *d);
/* Where the output ends now: bytes written plus bytes queued. */
uint64_t grace__conn_out_offset(const struct grace_conn *c);
/* The transport's answers, for the layers above it (NULL for plain). */
const char *grace__conn_tls_version(const struct grace_conn *c);
const char *grace__conn_tls_sni(const struct grace_conn *c);

/* conn.c: the lingering close (linger.c is its policy) */
void grace__conn_close_graceful(struct grace_conn *c);

/* report.c */
void grace__report_start(struct grace_reports *l, struct grace_conn *c, struct grace_request *req,
                         int status, int64_t start_us, uint64_t start, size_t head_len);
void grace__report_done(struct grace_reports *l, struct grace_request *req, uint64_t end);
void grace__report_written(struct grace_reports *l, uint64_t written);
void grace__report_all(struct grace_reports *l, uint64_t written, int err);


/* stream.c */
extern const struct grace_proto grace__stream_proto;
/* A stream for an upgrade about to be answered (then grace__conn_switch(c,
 * &grace__stream_proto, st)); NULL: out of memory. */
struct grace_stream *grace__stream_new(void);

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
