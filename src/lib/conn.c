/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * conn.c - the connection engine.
 *
 * conn.c owns both directions of the socket, through the transport table
 * (transport.h): its read event reads into the slot's input buffer and
 * hands it to the connection's protocol (c->proto: HTTP/1.1, an upgraded
 * stream), and its write path writes the output buffer straight away,
 * adding the write event only while the socket refuses more. Every event
 * of the socket lands here; a protocol hears of them only through its
 * table, and the engine never asks which protocol it carries.
 *
 * Deadlines follow I/O progress, not states (see deadline()): write-timeout
 * counts from the last byte written while output waits; keep-alive from
 * the moment the output is empty; a new connection's header-timeout and
 * the TLS handshake from the accept. The protocol adds its own (body
 * progress, header and drain totals, stream idleness) from the engine's
 * progress stamps (slot->read_ms, slot->wrote_ms). One timer per slot
 * fires at the earliest; progress only stores a time.
 *
 * Slots: the buffers, the write event, the timer and the protocol's state
 * (the slot's area) are needed only while work is in flight. An idle
 * keep-alive connection gives them back to a small per-server pool and
 * keeps its read event (whose timeout is the keep-alive timeout) and its
 * struct grace_conn. Closing and lingering are the engine's alone
 * (linger.c is their policy).
 *
 * Re-entrancy: every entry from libevent or from the application brackets
 * its work with grace__conn_enter()/grace__conn_leave(). A connection (its
 * slot, and a finished request) is freed only when the outermost bracket is
 * left, so callbacks may reply, pause, resume, stop the server or see the
 * client vanish at any point, and a body piece stays valid for its callback.
 */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Detached slots kept for reuse; more are freed. */
#define SLOT_POOL_MAX 64
/* A protocol with more to produce is asked for it while less than this is
 * queued (a file read as it goes: a piece at a time). */
#define ROOM_MARK (64u << 10)

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void pump(struct grace_conn *c);
static void output_empty(struct grace_conn *c);
static int rd_arm_new(struct grace_conn *c);

size_t grace__input_max(const struct grace_server *srv)
{
    return grace_parser_head_max(&srv->plim) + 65536;
}

/* ---------------------------------------------------------------- slots */

static void slot_free(struct grace_slot *s)
{
    if (s->in)
        evbuffer_free(s->in);
    if (s->out)
        evbuffer_free(s->out);
    if (s->wr)
        event_free(s->wr);
    if (s->timer)
        event_free(s->timer);
    free(s);
}

static struct grace_slot *slot_new(struct grace_server *srv)
{
    struct grace_slot *s = calloc(1, sizeof(*s) + srv->slot_extra);

    if (!s)
        return NULL;
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    s->wr = event_new(srv->base, -1, 0, write_cb, NULL);
    s->timer = event_new(srv->base, -1, 0, timer_cb, NULL);
    if (!s->in || !s->out || !s->wr || !s->timer) {
        slot_free(s);
        return NULL;
    }
    /* file segments go out with sendfile(), not through a mapping */
    evbuffer_set_flags(s->out, EVBUFFER_FLAG_DRAINS_TO_FD);
    return s;
}

static int slot_attach(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct grace_slot *s = srv->free_slots;

    if (s) {
        srv->free_slots = s->next;
        srv->nfree_slots--;
    } else if (!(s = slot_new(srv))) {
        return -1;
    }
    event_assign(s->wr, srv->base, c->sock.fd, EV_WRITE | EV_PERSIST, write_cb, c);
    evtimer_assign(s->timer, srv->base, timer_cb, c);
    s->timer_at = 0;
    s->write_err = 0;
    s->more = 0;
    s->written = 0;
    s->read_ms = 0;
    s->wrote_ms = 0;
    s->write_timeout = OPT(srv, WRITE_TIMEOUT);
    memset(s->area, 0, srv->slot_extra); /* the protocol's state starts at zero */
    c->slot = s;
    return 0;
}

/* Bytes (or EOF) on a connection without a slot: idle, or new. */
static int slot_wake(struct grace_conn *c)
{
    if (slot_attach(c) < 0)
        return -1;
    event_remove_timer(c->rd); /* the slot's timer takes over */
    c->slot->woke_us = grace__now_us();
    return 0;
}

/* Stop the slot's events: the socket is closing or the slot is leaving. */
static void slot_quiet(struct grace_slot *s)
{
    event_del(s->wr);
    event_del(s->timer);
    s->timer_at = 0;
}

/* Give the slot to the pool (or free it). Its buffers are emptied here,
 * never under a callback that may still look at them. */
static void slot_detach(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct grace_slot *s = c->slot;

    if (!s)
        return;
    c->slot = NULL;
    slot_quiet(s);
    evbuffer_drain(s->in, evbuffer_get_length(s->in));
    evbuffer_drain(s->out, evbuffer_get_length(s->out)); /* releases file segments */
    if (srv->nfree_slots >= SLOT_POOL_MAX) {
        slot_free(s);
        return;
    }
    s->next = srv->free_slots;
    srv->free_slots = s;
    srv->nfree_slots++;
}

static void slots_free(struct grace_server *srv)
{
    struct grace_slot *s;
    while ((s = srv->free_slots)) {
        srv->free_slots = s->next;
        slot_free(s);
    }
    srv->nfree_slots = 0;
}

/* Bytes waiting in the connection's buffers (none without a slot). */
static size_t buffered_in(const struct grace_conn *c)
{
    return c->slot ? evbuffer_get_length(c->slot->in) : 0;
}

/* Does the connection still need its slot? Not when idle with nothing
 * buffered either way, nor while lingering. */
static int slot_needed(const struct grace_conn *c)
{
    if (c->state == CS_LINGER)
        return 0;
    if (c->state != CS_IDLE)
        return 1;
    return buffered_in(c) || grace__buffered_out(c);
}

/* ---------------------------------------------------------------- deadlines */

/*
 * The earliest deadline of a connection with a slot, in monotonic ms, or 0
 * for none. *why says which: the counter to bump when it passes. The
 * engine's own (write-timeout, the TLS handshake), then its protocol's.
 */
static int64_t deadline(const struct grace_conn *c, enum grace_counter *why)
{
    struct grace_server *srv = c->srv;
    int64_t d = 0;

    if (grace__buffered_out(c)) {
        /* the protocol's (a request's own), else the last one set */
        int64_t wt = c->proto && c->proto->write_timeout ? c->proto->write_timeout(c)
                                                         : c->slot->write_timeout;
        grace__earlier(&d, why, c->slot->write_since + wt, GRACE_CNT_TIMEOUT_WRITE);
    }
    if (!c->tp->ready(&c->sock))
        grace__earlier(&d, why, c->accepted_ms + OPT(srv, TLS_HANDSHAKE_TIMEOUT),
                       GRACE_CNT_TLS_TIMEOUT);
    /* a new connection's first request: header-timeout from the accept */
    if (c->state == CS_NEW)
        grace__earlier(&d, why, c->accepted_ms + OPT(srv, HEADER_TIMEOUT),
                       GRACE_CNT_TIMEOUT_HEADER);
    if (c->state < CS_CLOSING && c->proto && c->proto->deadline) {
        enum grace_counter pw = GRACE_CNT__COUNT;
        int64_t t = c->proto->deadline(c, &pw);
        if (t)
            grace__earlier(&d, why, t, pw);
    }
    return d;
}

/*
 * Arm the slot's timer for the earliest deadline. Progress moves deadlines
 * later, which needs no call here: a timer that fires early finds nothing
 * due and is armed again (as nginx does with its timers). Only a deadline
 * earlier than the armed one re-adds the event.
 */
static void timer_update(struct grace_conn *c)
{
    struct grace_slot *s = c->slot;
    enum grace_counter why;
    int64_t d = deadline(c, &why);

    if (!d) {
        if (s->timer_at) {
            event_del(s->timer);
            s->timer_at = 0;
        }
        return;
    }
    if (s->timer_at && s->timer_at <= d)
        return;
    struct timeval tv = grace__ms_tv(d - grace__now_ms());
    event_add(s->timer, &tv);
    s->timer_at = d;
}

/* ---------------------------------------------------------------- lifetime */

/* The protocol leaves the connection, once: it lets go of what it holds
 * (what it cuts off is err's doing). CLOSING and LINGER are the engine's. */
static void proto_end(struct grace_conn *c, int err)
{
    const struct grace_proto *p = c->proto;

    if (!p)
        return;
    c->proto = NULL;
    p->end(c, err);
}

int grace__conn_switch(struct grace_conn *c, const struct grace_proto *proto, void *arg)
{
    c->proto = proto;
    c->ps = NULL;
    return proto->start ? proto->start(c, arg) : 0;
}

/* The application's accept hook (hooks.c): nonzero refuses the connection
 * (the hook said so, or dropped it). */
static int hook_accept(struct grace_conn *c)
{
    int rc;
    c->accepting = 1;
    c->srv->in_accept_hook++;
    rc = c->srv->on_accept(c, c->srv->accept_arg);
    c->srv->in_accept_hook--;
    c->accepting = 0;
    return rc || c->refused;
}

static void hook_close(struct grace_conn *c)
{
    c->srv->on_close(c, c->close_err, c->srv->close_arg);
}

/* Out of memory after the accept hook kept the connection: its close hook
 * still runs once, so data the hook attached is freed. */
static void accept_failed(struct grace_conn *c)
{
    if (c->srv->on_close) {
        c->close_err = -ENOMEM;
        c->state = CS_DEAD; /* grace_conn_drop() does nothing */
        hook_close(c);
    }
}

/* The set-up of a connection counted in nconns failed or was refused. */
static void accept_abandoned(struct grace_server *srv)
{
    srv->nconns--;
    srv->up.conns_changed(srv, 0); /* a stop from the accept hook */
}

void grace__conn_idle(struct grace_conn *c)
{
    c->state = CS_IDLE;
}

void grace__conn_active(struct grace_conn *c)
{
    c->state = CS_ACTIVE;
}

void grace__conn_more(struct grace_conn *c, uint64_t bytes)
{
    c->slot->more = bytes;
}

void grace__conn_accept(struct grace_server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                        int salen, const struct grace_transport *tp, struct grace_tls *tls)
{
    struct grace_conn *c;
    int one = 1;

    if (srv->stopping >= STOP_CUTTING || !(c = calloc(1, sizeof(*c)))) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->sock.fd = fd;
    c->sock.srv = srv;
    c->accepted_ms = grace__now_ms();
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
        c->peer_len = (socklen_t)salen;
    }
    c->tp = tp; /* the hook may ask */
    /* counted before the hook: a stop from inside it does not report
     * "stopped" before this one is served (its deadline comes from the
     * loop, even with timeout 0, so the hook never returns into a cut) */
    srv->nconns++;
    if (srv->on_accept && hook_accept(c) != 0) { /* before any byte is read */
        CNT(srv, CONN_REFUSED);
        evutil_closesocket(fd);
        free(c);
        accept_abandoned(srv);
        return;
    }
    if (c->tp->open(&c->sock, tls, srv->alpn, srv->alpn_len) < 0) {
        accept_failed(c);
        free(c);
        evutil_closesocket(fd);
        accept_abandoned(srv);
        return;
    }
    /* responses go out in one write; Nagle would only delay pipelined ones */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* no slot until the first bytes: a silent connection costs little */
    c->rd = event_new(srv->base, fd, EV_READ | EV_PERSIST, read_cb, c);
    if (!c->rd || rd_arm_new(c) < 0) {
        if (c->rd)
            event_free(c->rd);
        accept_failed(c);
        c->tp->close(&c->sock);
        free(c);
        accept_abandoned(srv);
        return;
    }
    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    CNT(srv, CONN_ACCEPTED);
    srv->cnt[GRACE_CNT_CONN_ACTIVE]++;
    c->state = CS_NEW;

    srv->up.conns_changed(srv, 0); /* pauses the listeners at the cap */
}

void grace__conn_enter(struct grace_conn *c)
{
    c->busy++;
}

/*
 * During a stop a connection without a request is kept stop-idle-grace
 * for one (its client may be sending it now), counted from since (when it
 * became idle, or its accept) or from the stop, whichever is later.
 * INT64_MAX when not stopping.
 */
static int64_t lame_duck_due(const struct grace_conn *c, int64_t since)
{
    const struct grace_server *srv = c->srv;
    return srv->stopping ? srv->up.stop_due(srv, since) : INT64_MAX; /* stop.c's */
}

/* The first byte of a new connection: header-timeout (or the TLS
 * handshake's) from the accept; during a stop, the lame duck's if earlier. */
static int64_t new_conn_due(const struct grace_conn *c)
{
    const struct grace_server *srv = c->srv;
    int64_t d = c->accepted_ms + (!c->tp->ready(&c->sock) && OPT(srv, TLS_HANDSHAKE_TIMEOUT) <
                                                                   OPT(srv, HEADER_TIMEOUT)
                                      ? OPT(srv, TLS_HANDSHAKE_TIMEOUT)
                                      : OPT(srv, HEADER_TIMEOUT));
    int64_t ld = lame_duck_due(c, c->accepted_ms);
    return ld < d ? ld : d;
}

/* Keep-alive from when the output became empty; during a stop, the lame
 * duck's if earlier. */
static int64_t idle_due(const struct grace_conn *c)
{
    int64_t d = c->st.idle.since + OPT(c->srv, KEEPALIVE_TIMEOUT);
    int64_t ld = lame_duck_due(c, c->st.idle.since);
    return ld < d ? ld : d;
}

/* The read event's timeout at due (monotonic ms). */
static int rd_arm_at(struct grace_conn *c, int64_t due)
{
    int64_t now = grace__now_ms();
    struct timeval tv = grace__ms_tv(due > now ? due - now : 0);
    return event_add(c->rd, &tv);
}

/* A new connection's read event: the shared header (or handshake) timeout,
 * or during a stop its own. */
static int rd_arm_new(struct grace_conn *c)
{
    if (c->srv->stopping)
        return rd_arm_at(c, new_conn_due(c));
    return event_add(c->rd, c->tp->ready(&c->sock) ? c->srv->tv_header : c->srv->tv_handshake);
}

/* The read event's timeout when the connection has no slot: keep-alive
 * while idle, header-timeout for a new one; linger.c arms its own. */
static void rd_arm_idle(struct grace_conn *c)
{
    if (c->state == CS_IDLE) {
        c->st.idle.unsent = SIZE_MAX;
        c->st.idle.since = grace__now_ms();
        if (c->srv->stopping) /* a client's EOF never idles: pump() closes */
            rd_arm_at(c, idle_due(c));
        else
            event_add(c->rd, c->srv->tv_keepalive);
    }
}

/*
 * keep-alive-timeout (during a stop: stop-idle-grace, if sooner) has passed
 * since the output became empty. A client still taking our last response
 * from the kernel's send queue is reading, not idle: it gets another period
 * as long as the queue shrinks. The first time the queue is not empty, a
 * short probe (a quarter of the timeout, a second at most) tells whether
 * it does.
 */
static void keepalive_timeout(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    int64_t period = OPT(srv, KEEPALIVE_TIMEOUT), due = idle_due(c);
    size_t unsent;

    if (grace__now_ms() < due && c->st.idle.unsent == SIZE_MAX) {
        /* early: armed before the stop, or by libevent from the time it read
         * before a callback that held the loop (its cached time) */
        rd_arm_at(c, due);
        return;
    }
    /* a reader still taking our output is polled at most every 25 ms */
    if (srv->stopping && OPT(srv, STOP_IDLE_GRACE) < period)
        period = OPT(srv, STOP_IDLE_GRACE) > 100 ? OPT(srv, STOP_IDLE_GRACE) : 100;
    unsent = c->tp->unsent(&c->sock);
    if (unsent && c->st.idle.unsent == SIZE_MAX) {
        int64_t probe = period / 4;
        struct timeval tv = grace__ms_tv(probe < 1000 ? probe : 1000);
        c->st.idle.unsent = unsent;
        event_add(c->rd, &tv);
        return;
    }
    if (unsent && unsent < c->st.idle.unsent) {
        struct timeval tv = grace__ms_tv(period);
        c->st.idle.unsent = unsent;
        if (srv->stopping)
            event_add(c->rd, &tv);
        else
            event_add(c->rd, srv->tv_keepalive);
        return;
    }
    /* the stop's doing only when its grace, not the keep-alive, ended first */
    if (lame_duck_due(c, c->st.idle.since) < c->st.idle.since + OPT(srv, KEEPALIVE_TIMEOUT))
        CNT(srv, STOP_IDLE_CLOSED);
    else
        CNT(srv, TIMEOUT_KEEPALIVE);
    grace__conn_destroy(c);
}

void grace__conn_leave(struct grace_conn *c)
{
    if (--c->busy > 0)
        return;
    while (c->defer) {
        struct grace_defer *d = c->defer;
        c->defer = d->next;
        d->queued = 0;
        d->run(d);
    }
    if (c->state == CS_DEAD) {
        slot_detach(c);
        free(c);
    } else if (c->slot && !slot_needed(c)) {
        /* idle with nothing buffered: keep-alive starts now that the
         * output has fully left */
        slot_detach(c);
        rd_arm_idle(c);
        if (c->tp->pending(&c->sock)) /* a TLS layer's input raises no event */
            event_active(c->rd, EV_READ, 1);
    } else if (c->slot) {
        timer_update(c);
    }
}

/* Why the connection ends, for the close hook: the first reason given wins
 * (an abort after a timeout is still the timeout's doing). */
void grace__conn_reason(struct grace_conn *c, int err)
{
    if (!c->close_err)
        c->close_err = err;
}

/* Close the socket and forget the connection; memory goes when not busy. */
void grace__conn_destroy(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;

    if (c->state == CS_DEAD)
        return;
    proto_end(c, -ECONNRESET); /* what it still holds is cut off */
    if (c->state == CS_DEAD)
        return;
    if (c->state == CS_LINGER) {
        TAILQ_REMOVE(&srv->lingering, c, link);
        srv->nlingering--;
        srv->cnt[GRACE_CNT_LINGERING]--;
    } else {
        TAILQ_REMOVE(&srv->conns, c, link);
    }
    if (c->in_pump_list) {
        TAILQ_REMOVE(&srv->pump, c, pump_link);
        srv->npump--;
        c->in_pump_list = 0;
    }
    c->state = CS_DEAD;
    if (c->slot) /* the buffers stay until the callbacks on the stack have returned */
        slot_quiet(c->slot);
    event_free(c->rd);
    c->rd = NULL;
    if (srv->on_close) { /* last word, with the socket still open (its address) */
        c->busy++; /* held, but not a bracket: the free comes below */
        hook_close(c);
        c->busy--;
    }
    if (c->sock.fd >= 0) /* -1: taken over by the application (stream.c) */
        c->tp->close(&c->sock);
    c->sock.fd = -1;
    srv->nconns--;
    srv->cnt[GRACE_CNT_CONN_ACTIVE]--;
    if (!c->busy) {
        slot_detach(c);
        free(c);
    }
    srv->up.conns_changed(srv, 1);
}

/* Run pump() for c from the event loop, not from the current call stack. */
void grace__conn_schedule(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    if (c->in_pump_list || c->pumping || c->state == CS_DEAD)
        return; /* a running pump() sees the change */
    c->in_pump_list = 1;
    TAILQ_INSERT_TAIL(&srv->pump, c, pump_link);
    srv->npump++;
    event_active(srv->pump_ev, EV_TIMEOUT, 1);
}

/*
 * Run the connections queued now. Each is unlinked from the server's list
 * before it runs, so a callback that destroys any connection (itself, or
 * one still queued) finds the list whole. Ones queued meanwhile wait for
 * the next round.
 */
static void run_scheduled(struct grace_server *srv)
{
    size_t n = srv->npump;
    struct grace_conn *c;

    while (n-- > 0 && (c = TAILQ_FIRST(&srv->pump))) {
        TAILQ_REMOVE(&srv->pump, c, pump_link);
        srv->npump--;
        c->in_pump_list = 0;
        grace__conn_enter(c);
        pump(c);
        grace__conn_leave(c);
    }
    if (srv->npump)
        event_active(srv->pump_ev, EV_TIMEOUT, 1);
}

void grace__conn_defer(struct grace_conn *c, struct grace_defer *d)
{
    if (!c || !c->busy) {
        d->run(d);
        return;
    }
    assert(!d->queued);
    d->queued = 1;
    d->next = c->defer;
    c->defer = d;
}

void grace__conn_abort(struct grace_conn *c, int err)
{
    grace__conn_reason(c, err);
    proto_end(c, err); /* what it holds and its unwritten responses: err */
    grace__conn_destroy(c);
}

void grace__engine_close_all(struct grace_server *srv)
{
    struct grace_conn *c;
    while ((c = TAILQ_FIRST(&srv->conns)))
        grace__conn_abort(c, -ECANCELED);
    while ((c = TAILQ_FIRST(&srv->lingering))) {
        grace__conn_reason(c, -ECANCELED);
        grace__conn_destroy(c);
    }
}

const char *grace__conn_tls_version(const struct grace_conn *c)
{
    return c->tp->version(&c->sock);
}

const char *grace__conn_tls_sni(const struct grace_conn *c)
{
    return c->tp->sni(&c->sock);
}

/* ---------------------------------------------------------------- input */

/*
 * Watch the socket while there is room for input and a reason to read it.
 * The read event stays added across requests: toggling it would cost an
 * epoll_ctl() each time.
 */
void grace__conn_watch_input(struct grace_conn *c)
{
    int want;

    if (c->state == CS_DEAD)
        return;
    if (c->peer_eof)
        want = 0;
    else if (c->state >= CS_CLOSING || !c->slot)
        want = 1; /* discarding, or idle without a slot */
    else if (c->proto && c->proto->room)
        want = c->proto->room(c) > 0;
    else
        want = buffered_in(c) < grace__input_max(c->srv);
    if (want != !!event_pending(c->rd, EV_READ, NULL)) {
        if (!want)
            event_del(c->rd);
        else if (c->slot)
            event_add(c->rd, NULL); /* the slot's timer keeps the time */
        else
            rd_arm_idle(c);
    }
    /* bytes a TLS layer already took from the socket raise no event (a
     * closing connection discards raw and never asks the layer again) */
    if (want && c->slot && c->state < CS_CLOSING && c->tp->pending(&c->sock))
        event_active(c->rd, EV_READ, 1);
}

/*
 * Read what the socket holds into the input buffer, up to the room left.
 * A read shorter than asked means the socket is empty. Returns 0, or 1 at
 * the end of the stream, or a negative errno.
 */
static int read_input(struct grace_conn *c)
{
    struct evbuffer *in = c->slot->in;
    size_t len = evbuffer_get_length(in), max = grace__input_max(c->srv);
    size_t room = len < max ? max - len : 0;
    int got = 0;

    while (room > 0) {
        size_t want = room < GRACE_READ_CHUNK ? room : GRACE_READ_CHUNK;
        ssize_t n = c->tp->read(&c->sock, in, want);
        if (n > 0) {
            got = 1;
            room -= (size_t)n;
            if ((size_t)n < want)
                break;
        } else if (n == 0) {
            return 1;
        } else if (n == -EAGAIN) {
            break;
        } else {
            return (int)n;
        }
    }
    if (got)
        c->slot->read_ms = grace__now_ms(); /* progress, for the protocol's timers */
    return 0;
}

/* ---------------------------------------------------------------- output */

/*
 * Write what is queued until the socket refuses more. Progress restarts the
 * write-timeout clock; while output waits the write event is added (once:
 * re-adding would cost an epoll_ctl). A file that ends early (-EPIPE) or a
 * reset ends the connection: the response cannot be completed. That end
 * comes from the write event, never from under an application call that
 * only queued output (in_event 0): the request it holds stays its own.
 */
static void write_output(struct grace_conn *c, int in_event)
{
    struct grace_slot *s = c->slot;
    int progress = 0;

    for (;;) {
        ssize_t n;
        int e;
        if (s->more && evbuffer_get_length(s->out) < ROOM_MARK && c->proto &&
            (e = c->proto->output(c, GRACE_OUT_ROOM)) < 0)
            n = e; /* it cannot (a file ended early: -EPIPE) */
        else if (!evbuffer_get_length(s->out))
            break;
        else
            n = c->tp->write(&c->sock, s->out);
        if (n > 0) {
            s->written += (uint64_t)n;
            progress = 1;
            continue;
        }
        if (n == -EAGAIN)
            break;
        if (!in_event) {
            s->write_err = n == -EPIPE ? -EPIPE : -ECONNRESET;
            event_active(s->wr, EV_WRITE, 1);
            return;
        }
        CNT(c->srv, WRITE_ERRORS);
        grace__conn_abort(c, n == -EPIPE ? -EPIPE : -ECONNRESET);
        return;
    }
    if (progress) {
        s->write_since = grace__now_ms();
        s->wrote_ms = s->write_since; /* progress, for the protocol's timers */
        if (c->proto) /* reports, drain callbacks: either may drop c */
            c->proto->output(c, GRACE_OUT_SENT);
        if (c->state == CS_DEAD)
            return;
    }
    if (evbuffer_get_length(s->out)) {
        if (progress) /* the socket is full now: what its queue holds */
            s->write_unsent = c->tp->unsent(&c->sock);
        if (!event_pending(s->wr, EV_WRITE, NULL)) {
            if (!progress)
                s->write_since = grace__now_ms();
            event_add(s->wr, NULL);
        }
        return;
    }
    if (event_pending(s->wr, EV_WRITE, NULL))
        event_del(s->wr);
    output_empty(c);
}

void grace__conn_flush(struct grace_conn *c)
{
    if (!c->slot || c->state == CS_DEAD)
        return;
    if (c->pumping) {
        /* inside pump(): responses to pipelined requests go out together,
         * in one write, when the pump is done */
        c->flush_pending = 1;
        return;
    }
    c->flush_pending = 0;
    /* while the write event waits, the socket is full: it will write */
    if (!event_pending(c->slot->wr, EV_WRITE, NULL) && !c->slot->write_err)
        write_output(c, 0);
}

/* Write what the socket takes now, even inside pump() (where flushes wait
 * for its end): the socket is about to be handed over (stream.c). */
void grace__conn_write_now(struct grace_conn *c)
{
    if (!c->slot || c->state == CS_DEAD || c->slot->write_err ||
        event_pending(c->slot->wr, EV_WRITE, NULL))
        return;
    c->flush_pending = 0;
    write_output(c, 0);
}

/* ---------------------------------------------------------------- states */

/* ---------------------------------------------------------------- drain */

/* ---------------------------------------------------------------- pump */

/* Drop buffered input that will never be parsed (a close is pending). */
void grace__conn_discard_input(struct grace_conn *c)
{
    size_t n;

    if (!c->slot)
        return;
    if (c->delivering) { /* a body piece in there is being read: later */
        c->discard_after = 1;
        return;
    }
    n = evbuffer_get_length(c->slot->in);
    c->srv->cnt[GRACE_CNT_BYTES_DISCARDED] += n;
    evbuffer_drain(c->slot->in, n);
}

/*
 * A new connection's protocol, once it can be told: on TLS the ALPN result
 * once the handshake is done; on plain the first protocol whose sniff()
 * claims the first bytes (one that needs more waits for them, bounded by
 * the header-timeout from the accept); else the default, HTTP/1.1. The
 * client's EOF ends any wait (the default closes what never began). 0: not
 * yet (or c closed).
 */
static int choose(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    const struct grace_proto *p = srv->proto_default;

    if (!c->tp->ready(&c->sock) && !c->peer_eof) /* at EOF nothing more can come */
        return 0;
    if (c->tp->secure) {
        size_t n = 0;
        const char *a = c->tp->alpn(&c->sock, &n);
        for (int i = 0; a && srv->by_alpn[i]; i++)
            if (strlen(srv->by_alpn[i]->alpn) == n && !memcmp(a, srv->by_alpn[i]->alpn, n)) {
                p = srv->by_alpn[i];
                break;
            }
    } else if (srv->by_sniff[0]) {
        size_t len = buffered_in(c), n = len < 64 ? len : 64;
        const char *b = n ? (const char *)evbuffer_pullup(c->slot->in, (ev_ssize_t)n) : "";
        int wait = 0;
        for (int i = 0; srv->by_sniff[i]; i++) {
            int r = srv->by_sniff[i]->sniff(b, n);
            if (r > 0) {
                p = srv->by_sniff[i];
                wait = 0;
                break;
            }
            wait |= r < 0;
        }
        if (wait && !c->peer_eof)
            return 0;
    }
    if (grace__conn_switch(c, p, NULL) < 0) {
        grace__conn_destroy(c); /* out of memory: nothing to answer with */
        return 0;
    }
    return 1;
}

/* The protocol a new connection speaks for what must be answered now (a
 * timeout, a drop, a stop) before its first bytes chose one: the
 * default's. NULL once the connection closes. */
static const struct grace_proto *proto_now(struct grace_conn *c)
{
    if (!c->proto && c->state == CS_NEW)
        grace__conn_switch(c, c->srv->proto_default, NULL);
    return c->proto;
}

/* The protocol takes the buffered input; one that hands the connection over
 * (an upgrade) leaves the rest to the next. A closing connection's input is
 * discarded. */
static void pump_input(struct grace_conn *c)
{
    const struct grace_proto *p = NULL;

    if (!c->proto && c->state == CS_NEW && !choose(c))
        return;
    while (c->state < CS_CLOSING && c->proto && c->proto != p) {
        p = c->proto;
        p->input(c);
    }
    if (c->state == CS_CLOSING)
        grace__conn_discard_input(c);
}

/*
 * The protocol takes what is buffered, then what that produced is written:
 * flushes inside only mark (responses to pipelined requests go out
 * together, in one write). Then the protocol hears that its output is
 * flushed, and may ask for another round (it paused for output that has
 * gone meanwhile).
 */
static void pump(struct grace_conn *c)
{
    if (!c->slot) { /* idle, nothing buffered: a client done sending is done */
        if (c->peer_eof && c->state < CS_ACTIVE)
            grace__conn_close_idle(c);
        else
            grace__conn_watch_input(c);
        return;
    }
    if (c->pumping) { /* re-entered from a callback: the outer pump goes on */
        pump_input(c);
        return;
    }
    do {
        c->pumping = 1;
        pump_input(c);
        c->pumping = 0;
        if (c->state == CS_DEAD)
            return;
        if (c->flush_pending)
            grace__conn_flush(c);
        if (c->state == CS_DEAD)
            return;
    } while (c->state < CS_CLOSING && c->proto && c->proto->output(c, GRACE_OUT_FLUSHED) > 0);
    if (c->state == CS_DEAD)
        return;
    grace__conn_watch_input(c);
}

/* ---------------------------------------------------------------- closing */

/* How much one read event may discard before yielding to the loop. */
#define LINGER_BUDGET (1u << 20)

/*
 * Close after the output has gone (docs/design.md "The graceful close"):
 * CS_CLOSING reads and discards while the output drains, then
 * output_drained() sends the FIN and the connection lingers (CS_LINGER)
 * under linger.c's policy.
 */
static uint64_t owed(const struct grace_conn *c, unsigned char *upload)
{
    *upload = 0;
    return c->proto && c->proto->owed ? c->proto->owed(c, upload) : 0;
}

/* The graceful close, the body still owed known. */
static void close_owing(struct grace_conn *c, uint64_t left, unsigned char upload)
{
    if (c->state >= CS_CLOSING)
        return;
    grace__linger_owed(&c->st.linger, left, upload);
    c->state = CS_CLOSING;
    grace__conn_discard_input(c);
    /* keep reading (watch_input: always while closing): a client blocked
     * in send() must not stall our writes */
    grace__conn_watch_input(c);
    grace__conn_flush(c); /* calls output_drained() once empty */
}

void grace__conn_close_graceful(struct grace_conn *c)
{
    unsigned char upload;
    uint64_t left = owed(c, &upload);
    close_owing(c, left, upload);
}

/* The read event's timeout: when the linger's policy is due next. */
static void linger_arm(struct grace_conn *c, int64_t now)
{
    struct timeval tv = grace__ms_tv(grace__linger_due(&c->st.linger, &c->srv->cfg) - now);
    event_add(c->rd, &tv);
}

static void linger_end(struct grace_conn *c, enum grace_counter how)
{
    c->srv->cnt[how]++;
    if (how == GRACE_CNT_LINGER_ERROR)
        grace__conn_reason(c, -ECONNRESET);
    grace__conn_destroy(c);
}

/*
 * The read event of a closing connection: discard. In CS_CLOSING the
 * client's EOF ends the connection once the output is out; in CS_LINGER
 * every ending is counted.
 */
static void linger_read(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    size_t budget = LINGER_BUDGET;
    int lingering = c->state == CS_LINGER;
    uint64_t got = 0;

    while (budget > 0) {
        uint64_t plain = 0; /* the body's bytes in them (TLS: plaintext) */
        int count = c->st.linger.left && c->st.linger.left != UINT64_MAX;
        ssize_t n = c->tp->discard(&c->sock, budget, count ? &plain : NULL);
        if (n > 0) {
            enum grace_counter how;
            budget -= (size_t)n < budget ? (size_t)n : budget;
            srv->cnt[GRACE_CNT_BYTES_DISCARDED] += (uint64_t)n;
            how = grace__linger_bytes(&c->st.linger, &srv->cfg, (uint64_t)n, plain, lingering);
            if (how != GRACE_CNT__COUNT) {
                linger_end(c, how);
                return;
            }
            if (lingering)
                got += (uint64_t)n;
        } else if (n == 0) {
            if (lingering) {
                linger_end(c, GRACE_CNT_LINGER_CLIENT_EOF);
            } else {
                c->peer_eof = 1; /* output_drained() closes */
                grace__conn_watch_input(c);
            }
            return;
        } else if (n == -EAGAIN) {
            break;
        } else if (lingering) { /* ECONNRESET and friends end it, nothing more */
            linger_end(c, GRACE_CNT_LINGER_ERROR);
            return;
        } else { /* the response cannot arrive any more */
            grace__conn_abort(c, -ECONNRESET);
            return;
        }
    }
    if (got) {
        int64_t now = grace__now_ms();
        grace__linger_heard(&c->st.linger, &srv->cfg, got, now);
        linger_arm(c, now);
    }
}

/* A closing connection's output has all gone: the FIN, then the linger. */
static void output_drained(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    int64_t now;

    proto_end(c, 0); /* all its output is written */
    if (c->state == CS_DEAD)
        return;
    if (c->peer_eof || !OPT(srv, LINGER)) {
        /* the client already closed; or linger=off, the naive close */
        grace__conn_destroy(c);
        return;
    }
    if (c->tp->shutdown(&c->sock) < 0) {
        grace__conn_destroy(c);
        return;
    }
    grace__conn_discard_input(c);
    /* from here on a lingering socket costs its read event and struct
     * grace_conn: the slot goes back when the callbacks return */
    now = grace__now_ms();
    c->state = CS_LINGER;
    grace__linger_begin(&c->st.linger, &srv->cfg, now, srv->stop_linger_bound);
    TAILQ_REMOVE(&srv->conns, c, link);
    TAILQ_INSERT_TAIL(&srv->lingering, c, link);
    srv->nlingering++;
    srv->cnt[GRACE_CNT_LINGERING]++;
    CNT(srv, LINGER_STARTED);
    linger_arm(c, now);
    if (srv->nlingering > (size_t)OPT(srv, MAX_LINGERING)) {
        struct grace_conn *old = TAILQ_FIRST(&srv->lingering);
        grace__conn_enter(old);
        linger_end(old, GRACE_CNT_LINGER_EVICTED);
        grace__conn_leave(old);
    }
}

/* The read event's timeout while lingering: the policy's verdict. */
static void linger_timer(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    int64_t now = grace__now_ms();
    unsigned char was = c->st.linger.extended;
    enum grace_counter how = grace__linger_timer(&c->st.linger, &srv->cfg, now,
                                                 srv->stop_linger_bound);

    if (how != GRACE_CNT__COUNT) {
        linger_end(c, how);
        return;
    }
    if (!was && c->st.linger.extended)
        CNT(srv, LINGER_EXTENDED);
    linger_arm(c, now);
}

void grace__conn_linger_stop(struct grace_conn *c)
{
    int64_t now = grace__now_ms();
    grace__linger_stop(&c->st.linger, c->srv->stop_linger_bound);
    linger_arm(c, now);
}

/* ---------------------------------------------------------------- events */

static void peer_eof(struct grace_conn *c);

/* The socket has bytes (or EOF) for a connection that is not closing. */
static void input_ready(struct grace_conn *c)
{
    int rc;

    if (!c->slot && slot_wake(c) < 0) {
        grace__conn_destroy(c); /* out of memory: nothing to answer with */
        return;
    }
    /* the protocol may move the socket's bytes itself (a body into a file) */
    rc = c->proto && c->proto->read ? c->proto->read(c) : -ENOTSUP;
    if (rc == -ENOTSUP)
        rc = read_input(c);
    if (rc == -EPROTO) {
        /* a TLS protocol error (garbage, plain HTTP, renegotiation): what
         * the client still sends is discarded, then a FIN, not a reset */
        unsigned char upload;
        uint64_t left = owed(c, &upload);
        grace__conn_reason(c, -EPROTO);
        proto_end(c, -EPROTO);
        if (c->state != CS_DEAD)
            close_owing(c, left, upload);
        return;
    }
    if (rc < 0) {
        grace__conn_abort(c, -ECONNRESET);
        return;
    }
    if (c->tp->read_wants_write(&c->sock) && !event_pending(c->slot->wr, EV_WRITE, NULL))
        event_add(c->slot->wr, NULL); /* a handshake waits for the socket */
    pump(c);
    if (rc == 1 && c->state != CS_DEAD)
        peer_eof(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_conn *c = arg;

    grace__conn_enter(c);
    if ((what & EV_TIMEOUT) && c->state <= CS_IDLE && c->tp->waiting(&c->sock)) {
        /* a request came before the timeout but is seen only now (the loop
         * was busy; libevent drops a read activation when the same event
         * times out in that turn): closing would reset it, so it is read */
        input_ready(c);
    } else if (what & EV_TIMEOUT) { /* the read event times connections without a slot */
        if (c->state == CS_IDLE) {
            keepalive_timeout(c);
        } else if (c->state == CS_NEW && grace__now_ms() < new_conn_due(c)) {
            /* early: as in keepalive_timeout */
            rd_arm_at(c, new_conn_due(c));
        } else if (c->state == CS_NEW && new_conn_due(c) == lame_duck_due(c, c->accepted_ms)) {
            CNT(c->srv, STOP_IDLE_CLOSED); /* no request within the stop's grace */
            grace__conn_destroy(c);
        } else if (c->state == CS_NEW) { /* new, and never sent a byte */
            grace__conn_reason(c, -ETIMEDOUT);
            if (c->tp->ready(&c->sock))
                CNT(c->srv, TIMEOUT_HEADER);
            else
                CNT(c->srv, TLS_TIMEOUT);
            grace__conn_destroy(c);
        } else if (c->state == CS_LINGER) {
            linger_timer(c);
        }
    } else if (c->state >= CS_CLOSING) {
        linger_read(c);
    } else {
        input_ready(c);
    }
    grace__conn_leave(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_conn *c = arg;
    int err = c->slot->write_err;

    grace__conn_enter(c);
    if (err) { /* a write failed under an application call */
        CNT(c->srv, WRITE_ERRORS);
        grace__conn_abort(c, err);
    } else if (c->tp->read_wants_write(&c->sock)) { /* the handshake goes on */
        if (!evbuffer_get_length(c->slot->out))
            event_del(c->slot->wr);
        input_ready(c);
    } else {
        write_output(c, 1);
    }
    grace__conn_leave(c);
}

/* The output buffer has become empty: whoever waited for that goes on. */
static void output_empty(struct grace_conn *c)
{
    if (c->state == CS_CLOSING)
        output_drained(c);
    else if (c->proto && c->proto->output)
        c->proto->output(c, GRACE_OUT_EMPTY);
}

/* No request in progress: close now, or once the responses still queued
 * for a full socket are out. */
void grace__conn_close_idle(struct grace_conn *c)
{
    if (grace__buffered_out(c))
        grace__conn_close_graceful(c);
    else
        grace__conn_destroy(c);
}

/*
 * The client closed its sending side (EOF). That means "done sending", not
 * "gone": a request whose body is complete is still answered, and only a
 * failed write ends it. The socket is read no more.
 */
static void peer_eof(struct grace_conn *c)
{
    c->peer_eof = 1;
    /* complete requests already read are still answered; pump() closes
     * once nothing complete is left */
    if (c->state < CS_CLOSING)
        pump(c);
    /* the EOF a linger waits for was read with the last request, whose
     * answer and our FIN are already out: the client has closed. (Left to
     * the read event, the linger would wait for an EOF already taken.) */
    if (c->state == CS_LINGER) {
        linger_end(c, GRACE_CNT_LINGER_CLIENT_EOF);
        return;
    }
    grace__conn_watch_input(c);
}

/*
 * write-timeout has passed without a write that moved bytes. The socket only
 * wakes us once a good part of its send buffer is free, so a reader that
 * takes less than that per period is still reading: the kernel's send queue
 * shrinking since it was last full (or last looked at) counts as progress.
 * Returns 1 when the connection has another period.
 */
static int send_queue_moved(struct grace_conn *c)
{
    struct grace_slot *s = c->slot;
    size_t unsent = c->tp->unsent(&c->sock);

    if (unsent >= s->write_unsent)
        return 0;
    s->write_since = grace__now_ms();
    s->write_unsent = unsent;
    return 1;
}

/* The slot's timer: the earliest deadline may have passed. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_conn *c = arg;
    enum grace_counter why;
    int64_t d;

    grace__conn_enter(c);
    c->slot->timer_at = 0;
    d = deadline(c, &why);
    if (d && d <= grace__now_ms()) {
        if (why == GRACE_CNT_TIMEOUT_WRITE) {
            if (!send_queue_moved(c)) { /* else leave() arms the timer anew */
                grace__conn_timed_out(c, why);
                grace__conn_abort(c, -ETIMEDOUT);
            }
        } else if (why == GRACE_CNT_TLS_TIMEOUT) { /* nothing can be answered yet */
            grace__conn_timed_out(c, why);
            grace__conn_destroy(c);
        } else if (proto_now(c)) { /* the protocol's, or a new connection's header-timeout */
            c->proto->timeout(c, why);
        }
    }
    grace__conn_leave(c); /* arms the timer for what is left */
}

void grace__conn_timed_out(struct grace_conn *c, enum grace_counter why)
{
    c->srv->cnt[why]++;
    grace__conn_reason(c, -ETIMEDOUT);
}

/* grace_conn_drop(GRACEFUL): idle connections go now, the rest after
 * their response. */
void grace__conn_drop(struct grace_conn *c)
{
    grace__conn_enter(c);
    c->stop_close = 1;
    if (!c->slot && c->state < CS_CLOSING) /* new or idle: nothing buffered */
        grace__conn_close_idle(c);
    else if (c->state < CS_CLOSING && proto_now(c))
        c->proto->stop(c, GRACE_STOP_DROP);
    grace__conn_leave(c);
}

void grace__conn_rearm(struct grace_conn *c)
{
    if (c->slot || c->state > CS_IDLE)
        return;
    rd_arm_at(c, c->state == CS_IDLE ? idle_due(c) : new_conn_due(c));
}

int grace__conn_held(const struct grace_conn *c)
{
    return c->state < CS_CLOSING && c->proto && c->proto->held && c->proto->held(c);
}

int grace__conn_proto_stop(struct grace_conn *c, enum grace_stop how)
{
    /* the lame duck lets a new connection still choose its protocol */
    const struct grace_proto *p = how == GRACE_STOP_LAME_DUCK ? c->proto : proto_now(c);

    if (c->state >= CS_CLOSING || !p)
        return -1;
    p->stop(c, how);
    return 0;
}

/* ---------------------------------------------------------------- engine */

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    run_scheduled(arg);
}

static const struct timeval *common_timeout(struct event_base *base, int64_t ms)
{
    struct timeval tv = grace__ms_tv(ms);
    return event_base_init_common_timeout(base, &tv);
}

int grace__engine_init(struct grace_server *srv)
{
    struct event_base *base = srv->base;

    TAILQ_INIT(&srv->conns);
    TAILQ_INIT(&srv->lingering);
    TAILQ_INIT(&srv->pump);
    srv->fields = calloc(srv->plim.max_fields, sizeof(*srv->fields));
    srv->pump_ev = event_new(base, -1, 0, pump_cb, srv);
    srv->tv_header = common_timeout(base, OPT(srv, HEADER_TIMEOUT));
    srv->tv_body = common_timeout(base, OPT(srv, BODY_TIMEOUT));
    srv->tv_keepalive = common_timeout(base, OPT(srv, KEEPALIVE_TIMEOUT));
    /* a new TLS connection's read event: the handshake, within the header time */
    srv->tv_handshake = common_timeout(base, OPT(srv, TLS_HANDSHAKE_TIMEOUT) <
                                                     OPT(srv, HEADER_TIMEOUT)
                                                 ? OPT(srv, TLS_HANDSHAKE_TIMEOUT)
                                                 : OPT(srv, HEADER_TIMEOUT));
    if (!srv->fields || !srv->pump_ev || !srv->tv_header || !srv->tv_body ||
        !srv->tv_keepalive || !srv->tv_handshake)
        return -ENOMEM;
    return 0;
}

void grace__engine_free(struct grace_server *srv)
{
    grace__engine_close_all(srv);
    slots_free(srv);
    if (srv->pump_ev)
        event_free(srv->pump_ev);
    srv->pump_ev = NULL;
    free(srv->fields);
    srv->fields = NULL;
}
