/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * conn.h - the connection engine (conn.c): slots, reads and writes through
 * the transport table, deadlines and the one timer per slot, keep-alive,
 * the enter/leave bracket, closing and the lingering close (linger.c is its
 * policy). It knows no protocol: it calls the one speaking on a connection
 * through struct grace_proto, and the server through srv->up.
 */
#ifndef GRACE_CONN_H
#define GRACE_CONN_H

#include "core.h"
#include "linger.h"
#include "transport.h"
#include "util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
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
    GRACE_OUT_SENT,   /* bytes left (slot->written): reports, drain callbacks */
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
    /* Choosing it on a new connection (conn.c, before any protocol reads a
     * byte): the ALPN id that selects it on TLS, and on plain its first
     * bytes: 1 mine, 0 not, -1 need more (srv->by_alpn, srv->by_sniff). */
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
    /* A request of its holds a stop (grace_request_hold_stop): the stop's
     * cut and last bound leave the connection to close after the reply.
     * NULL: never. */
    int (*held)(const struct grace_conn *c);
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
    CS_NEW,      /* its first bytes (and TLS handshake): header-timeout from the
                    accept; c->proto NULL until they (or ALPN) chose one */
    CS_IDLE,     /* keep-alive: nothing in flight (the protocol said so) */
    CS_ACTIVE,   /* the protocol's work (HTTP/1.1's request, a stream) */
    CS_CLOSING,  /* reply complete, closing: our output to drain */
    CS_LINGER,   /* our FIN is sent: the client's EOF, discarding meanwhile */
    CS_DEAD      /* closed; memory freed when nothing is on the stack */
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
        accepting : 1, refused : 1, stop_cut : 1;
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
/* Hand the connection to a protocol (the one chosen for a new connection,
 * an upgrade): proto->start(c, arg). */
int grace__conn_switch(struct grace_conn *c, const struct grace_proto *proto, void *arg);
/* A deadline passed: count it (why), and -ETIMEDOUT is the close reason. */
void grace__conn_timed_out(struct grace_conn *c, enum grace_counter why);
/* The engine's share of the server: lists, slots, the pump event, the
 * common timeouts. init: -ENOMEM; free: every connection closed first. */
int grace__engine_init(struct grace_server *srv);
void grace__engine_free(struct grace_server *srv);
/* For a stop (stop.c is its policy): a connection without a slot (new or
 * idle) re-arms its read event for when it is due now (the stop's due
 * through srv->up.stop_due); the protocol's stop (-1: none, or closing; a
 * new connection's is the default's, except for the lame duck); a
 * lingering connection's linger cut short. */
void grace__conn_rearm(struct grace_conn *c);
int grace__conn_proto_stop(struct grace_conn *c, enum grace_stop how);
/* Does a request hold the stop (grace_request_hold_stop) until its reply
 * completes? Neither the deadline nor the stop's last bound cuts it. */
int grace__conn_held(const struct grace_conn *c);
void grace__conn_linger_stop(struct grace_conn *c);
/* Close every connection now (-ECANCELED): grace_server_free, a stop's end. */
void grace__engine_close_all(struct grace_server *srv);
void grace__conn_discard_input(struct grace_conn *c);
void grace__conn_watch_input(struct grace_conn *c);
void grace__conn_destroy(struct grace_conn *c);
void grace__conn_reason(struct grace_conn *c, int err);
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
/* The transport's answers, for the layers above it (NULL for plain). */
const char *grace__conn_tls_version(const struct grace_conn *c);
const char *grace__conn_tls_sni(const struct grace_conn *c);

/* conn.c: the lingering close (linger.c is its policy) */
void grace__conn_close_graceful(struct grace_conn *c);

/* Output not yet written: queued, and what the protocol will still
 * produce (grace__conn_more). Inline: asked per response and per write. */
static inline size_t grace__buffered_out(const struct grace_conn *c)
{
    return c->slot ? evbuffer_get_length(c->slot->out) + c->slot->more : 0;
}

/* Where the output ends now: bytes written plus bytes queued. */
static inline uint64_t grace__conn_out_offset(const struct grace_conn *c)
{
    return c->slot->written + grace__buffered_out(c);
}

#endif
