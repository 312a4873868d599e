/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * core.h - what every layer of the library shares: the settings (struct
 * grace_config, OPT), the counters (CNT), and the server object's layout,
 * its fields grouped by the module that owns them. Below everything but
 * the parser and util: it calls nothing above.
 */
#ifndef GRACE_CORE_H
#define GRACE_CORE_H

#include "gracehttp.h"
#include "parser.h"
#include "util.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <sys/queue.h>

struct grace_config {
    int64_t v[GRACE_OPT__COUNT];
};

/* Every option at its default. */
void grace__config_defaults(struct grace_config *cfg);

/* A graceful stop (server.c), in order; docs/design.md "Stop". */
enum stop_phase {
    STOP_NONE,
    STOP_LAME_DUCK, /* listeners closed; requests answered with Connection: close */
    STOP_CUTTING,   /* the deadline passed: 503s and closes, the last linger */
    STOP_DONE       /* everything closed: reported */
};

/* How the engine stops connections: one the application drops gracefully,
 * all at a server stop's start (no callback runs), all at its deadline. */
enum grace_stop {
    GRACE_STOP_DROP,      /* idle ones close now, the rest after their response */
    GRACE_STOP_LAME_DUCK, /* responses say Connection: close; idle ones get stop-idle-grace */
    GRACE_STOP_CUT        /* 503 before a reply, else cut; idle ones close */
};

struct grace_conn;
struct grace_proto;
/* Protocols a connection may choose besides the default (core.h's lists). */
#define GRACE_PROTOS_MAX 4
struct grace_request;
struct grace_slot;
struct grace_route;
struct grace_listener;
TAILQ_HEAD(conn_list, grace_conn);
TAILQ_HEAD(req_list, grace_request);

/* The engine's and the protocols' only ways up to the server (server.c
 * fills them): they never name it. */
struct grace_server_up {
    /* A request's head is complete: route it, run its handler. */
    void (*dispatch)(struct grace_request *req);
    /* nconns changed: after an accept (closed 0: pause at the cap) or a close
     * (closed 1: accept again below it); a stop may be over. */
    void (*conns_changed)(struct grace_server *srv, int closed);
    /* During a stop: when a connection without a request (new: since its
     * accept; idle: since its output emptied) is due to close (stop.c). */
    int64_t (*stop_due)(const struct grace_server *srv, int64_t since);
};

struct grace_server {
    struct event_base *base;
    struct grace_server_up up;
    struct grace_config cfg;
    struct grace_parser_limits plim;
    uint64_t cnt[GRACE_CNT__COUNT];

    /* server.c: listeners, routes, the stop */
    struct grace_listener **listeners;
    int nlisteners;
    int listeners_paused;
    grace_handler_cb handler;
    void *handler_arg;
    struct grace_route *routes;
    size_t nroutes;
    enum stop_phase stopping;
    int64_t stop_at;             /* monotonic ms: grace_server_stop() was called */
    int64_t stop_deadline;       /* monotonic ms: its timeout_ms passes */
    int64_t stop_linger_bound;   /* stop.c: every linger ends by then (the
                                    deadline + stop-linger-time); INT64_MAX */
    int queue_pending;           /* a stop's listen queue is still to be taken */
    int in_accept_hook;          /* conn.c: the accept hook is running */
    struct event *stop_timer;    /* the deadline, then the last bound, then the report */
    struct event *accept_timer;  /* out of fds: accept again after accept-retry;
                                    in a stop: take the listen queue */
    grace_stopped_cb on_stopped;
    void *stopped_arg;

    /* conn.c: the engine's connections, slots and timeouts */
    struct conn_list conns;      /* every open connection but lingering ones */
    struct conn_list lingering;  /* oldest first */
    struct conn_list pump;       /* connections with deferred work */
    size_t npump;
    size_t nlingering;
    size_t nconns;
    struct event *pump_ev;
    struct grace_slot *free_slots; /* pool of detached slots */
    size_t nfree_slots;
    struct grace_hfield *fields; /* parser scratch, shared: see http1.c */
    size_t slot_extra;           /* the largest protocol state in a slot */
    /* server.c: what a new connection may speak (conn.c chooses): besides
     * the default, the ones chosen by ALPN on TLS listeners and by their
     * first bytes on plain ones, each in order of preference, NULL-ended */
    const struct grace_proto *by_alpn[GRACE_PROTOS_MAX + 1];
    const struct grace_proto *by_sniff[GRACE_PROTOS_MAX + 1];
    const struct grace_proto *proto_default; /* HTTP/1.1: nothing else chosen */
    const struct timeval *tv_header, *tv_body, *tv_keepalive, *tv_handshake; /* common timeouts */

    /* request.c: requests whose client has gone, reply not yet completed */
    struct req_list detached;

    /* report.c, hooks.c: the application's callbacks */
    grace_response_cb on_response;
    void *response_arg;
    grace_accept_cb on_accept;
    void *accept_arg;
    grace_close_cb on_close;
    void *close_arg;
    union {                      /* grace_conn_local()'s answer, not kept per
                                    connection (idle memory) */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } local;

    const unsigned char *alpn;   /* the protocols TLS listeners offer (ALPN wire format) */
    size_t alpn_len;
    unsigned char alpn_offer[64]; /* server.c: alpn's bytes, from the protocols */
    char *discard_buf;           /* io.c: recv() target, never read */
    struct grace_date date;      /* util.c: the Date header of this second */
};

#define CNT(srv, c) ((srv)->cnt[GRACE_CNT_##c]++)
#define OPT(srv, o) ((srv)->cfg.v[GRACE_OPT_##o])

/* The err_4xx/err_5xx counter of a status the server answers itself. */
void grace__count_status(struct grace_server *srv, int status);

#endif
