/*
 * internal.h - structures shared by the library's modules.
 *
 *   server.c    config, listeners, accept, routing, stop, counters
 *   conn.c      the per-connection pipeline: read, parse, dispatch, body
 *   linger.c    the graceful close: drain, half-close, discard, timers
 *   request.c   request accessors and the body-reading API
 *   response.c  reply functions, header formatting, Date cache
 */
#ifndef GRACE_INTERNAL_H
#define GRACE_INTERNAL_H

#include "gracehttp.h"
#include "parser.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <sys/queue.h>

struct bufferevent;

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                  \
    for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1); \
         (var) = (tvar))
#endif

struct grace_config {
    int64_t v[GRACE_OPT__COUNT];
};

/* Connection states; docs/design.md has the diagram. */
enum conn_state {
    CS_IDLE,        /* keep-alive, waiting for the first byte of a request */
    CS_HEAD,        /* receiving request line and headers */
    CS_ACTIVE,      /* request dispatched, response not complete */
    CS_DRAIN,       /* response complete; discarding a small body remainder */
    CS_CLOSE_WAIT,  /* response complete, closing: waiting for output to drain */
    CS_LINGER,      /* write side shut down; discarding until EOF or timer */
    CS_DEAD         /* closed; memory freed when nothing is on the stack */
};

enum body_mode { BODY_NONE, BODY_STREAM, BODY_COLLECT, BODY_DISCARD };
enum resp_state { RESP_NONE, RESP_STREAMING, RESP_DONE };

struct grace_request {
    struct grace_conn *conn;  /* NULL once the client has gone */
    struct grace_server *srv;
    struct grace_preq p;      /* parser results; offsets into blk */
    struct grace_hfield *fields;
    char *blk;                /* header block copy, NUL-terminated strings */
    const char *path, *query;

    enum body_mode body_mode;
    uint64_t body_read;       /* body bytes consumed so far */
    uint64_t body_limit;
    int paused;
    grace_data_cb on_data;
    grace_end_cb on_end;
    grace_body_cb on_body;
    void *body_arg;
    struct evbuffer *body;    /* BODY_COLLECT */

    grace_finish_cb on_finish;
    void *finish_arg;

    enum resp_state resp;
    int status;
    struct evbuffer *resp_headers; /* added by the application */
    unsigned head : 1, chunked_out : 1, close_delimited : 1, sent_continue : 1,
        close_after : 1, body_done : 1, finished : 1, detached : 1, end_delivered : 1;
    struct grace_request *next_free;    /* conn->free_reqs */
    TAILQ_ENTRY(grace_request) dlink;   /* srv->detached */
};
TAILQ_HEAD(req_list, grace_request);

/*
 * What a connection needs only while a request is in flight. An idle
 * keep-alive or lingering connection gives its slot back to the server's
 * pool and keeps only its socket, read event and struct grace_conn.
 */
struct grace_slot {
    struct bufferevent *bev;    /* output; its input buffer is filled by conn.c */
    struct event *timer;        /* header / body deadline */
    struct grace_parser parser;
    struct grace_slot *next;    /* srv->free_slots */
};

struct grace_conn {
    struct grace_server *srv;
    struct grace_slot *slot;  /* NULL while idle or lingering */
    struct event *rd;         /* the socket's read event; idle and linger timeouts */
    evutil_socket_t fd;
    enum conn_state state;
    struct grace_request *req;
    int64_t accepted_ms;      /* monotonic ms at accept: a new connection's header deadline */
    int64_t linger_deadline;  /* monotonic ms: linger-time ends here */
    uint64_t linger_bytes;
    size_t head_seen;         /* CS_HEAD: bytes already searched for an LF */
    size_t head_window;       /* CS_HEAD: where the parser's limit lies */
    uint64_t drained;         /* CS_DRAIN: body bytes discarded */
    int busy;                 /* callbacks on the stack: defer the free */
    struct grace_request *free_reqs; /* finished while busy */
    unsigned in_pump_list : 1, pumping : 1, read_paused : 1, stop_close : 1, peer_eof : 1,
        flush_pending : 1;
    socklen_t peer_len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    TAILQ_ENTRY(grace_conn) link;   /* srv->conns or srv->lingering */
    TAILQ_ENTRY(grace_conn) pump_link;
};
TAILQ_HEAD(conn_list, grace_conn);

struct grace_route {
    char *method; /* NULL: any */
    char *path;
    size_t path_len;
    int flags;
    grace_handler_cb cb;
    void *arg;
};

struct grace_listener {
    struct evconnlistener *lev;
};

struct grace_server {
    struct event_base *base;
    struct grace_config cfg;
    struct grace_parser_limits plim;
    struct grace_listener *listeners;
    int nlisteners;
    int listeners_paused;

    grace_handler_cb handler;
    void *handler_arg;
    struct grace_route *routes;
    size_t nroutes;

    struct conn_list conns;      /* every open connection but lingering ones */
    struct conn_list lingering;  /* oldest first */
    struct conn_list pump;       /* connections with deferred work */
    struct req_list detached;    /* client gone, reply not yet completed */
    size_t nlingering;
    struct event *pump_ev;
    struct grace_slot *free_slots; /* conn.c: pool of detached slots */
    size_t nfree_slots;
    struct grace_hfield *fields; /* parser scratch, shared: see conn.c */
    size_t nconns;

    int stopping;
    struct event *stop_timer;
    grace_stopped_cb on_stopped;
    void *stopped_arg;

    const struct timeval *tv_header, *tv_body, *tv_keepalive; /* common timeouts */
    char *discard_buf;      /* linger.c: recv() target, never read */
    char date[40];          /* "Date: ...\r\n" cache */
    time_t date_sec;

    uint64_t cnt[GRACE_CNT__COUNT];
};

#define CNT(srv, c) ((srv)->cnt[GRACE_CNT_##c]++)
#define OPT(srv, o) ((srv)->cfg.v[GRACE_OPT_##o])

/* server.c */
void grace__server_conn_closed(struct grace_server *srv);
void grace__server_dispatch(struct grace_request *req);
void grace__count_status(struct grace_server *srv, int status);
void grace__server_check_stopped(struct grace_server *srv);

/* conn.c */
void grace__conn_accept(struct grace_server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                        int salen);
void grace__conn_enter(struct grace_conn *c);
void grace__conn_leave(struct grace_conn *c);
void grace__conn_schedule(struct grace_conn *c);
void grace__conn_run_scheduled(struct grace_server *srv);
void grace__conn_response_done(struct grace_conn *c);
void grace__conn_flush(struct grace_conn *c);
void grace__conn_abort(struct grace_conn *c, int err);
void grace__conn_free_all(struct grace_server *srv);
void grace__conn_stop(struct grace_conn *c);
void grace__conn_send_continue(struct grace_conn *c);
void grace__conn_discard_input(struct grace_conn *c);
void grace__conn_watch_input(struct grace_conn *c);
void grace__conn_destroy(struct grace_conn *c);
void grace__slots_free(struct grace_server *srv);
int grace__body_drainable(const struct grace_conn *c, const struct grace_request *req);

/* linger.c */
void grace__conn_close_graceful(struct grace_conn *c);
void grace__conn_output_drained(struct grace_conn *c);
void grace__linger_stop(struct grace_conn *c);
void grace__linger_timer(struct grace_conn *c);
void grace__linger_read(struct grace_conn *c);
int64_t grace__now_ms(void);

/* request.c */
struct grace_request *grace__request_new(struct grace_conn *c, const char *blk);
void grace__request_finish(struct grace_request *req, int err);
void grace__request_free(struct grace_request *req);

/* response.c */
int grace__reply_error(struct grace_conn *c, int status, const char *msg);
void grace__date_header(struct grace_server *srv, char *out, size_t *len);

#endif
