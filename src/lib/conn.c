/*
 * conn.c - the per-connection pipeline.
 *
 * The connection's own read event reads the socket into the input buffer
 * of its bufferevent (one recv() per event: no FIONREAD first); pump()
 * feeds those bytes to the parser and acts on its events: headers complete
 * -> dispatch to the application, body pieces -> stream/collect/discard,
 * message done -> next request once the response is complete. Responses
 * are written straight to the socket when it accepts them (response.c) and
 * the bufferevent only takes over when the socket is full.
 *
 * Slots: the bufferevent, the deadline timer and the parser are needed only
 * while a request is in flight. An idle keep-alive connection gives them
 * back to a small per-server pool and keeps a read event (whose timeout is
 * the keep-alive timeout) and its struct grace_conn: a few hundred bytes.
 *
 * Re-entrancy: every entry from libevent or from the application brackets
 * its work with grace__conn_enter()/grace__conn_leave(). A connection (and
 * a finished request) is freed only when the outermost bracket is left, so
 * callbacks may reply, pause, resume or see the client vanish at any point.
 */
#include "internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Detached slots kept for reuse; more are freed. */
#define SLOT_POOL_MAX 64
/* One recv() at most: an evbuffer chain's header shares its 16 KiB malloc. */
#define READ_CHUNK (16384 - 128)

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void pump(struct grace_conn *c);

/* The largest header block the parser can accept, plus its CRLFs. */
static size_t head_max(const struct grace_server *srv)
{
    return srv->plim.max_request_line + 2 + srv->plim.max_header_bytes + 2;
}

/* Backpressure: stop reading once a full header block plus 64 KiB is
 * buffered and nobody consumes it. */
static size_t input_max(const struct grace_server *srv)
{
    return head_max(srv) + 65536;
}

/* ---------------------------------------------------------------- slots */

static void slot_free(struct grace_slot *s)
{
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->timer)
        event_free(s->timer);
    free(s);
}

static struct grace_slot *slot_new(struct grace_server *srv, evutil_socket_t fd)
{
    struct grace_slot *s = calloc(1, sizeof(*s));
    struct timeval wt;

    if (!s)
        return NULL;
    s->bev = bufferevent_socket_new(srv->base, fd, 0);
    s->timer = event_new(srv->base, -1, 0, timer_cb, NULL);
    if (!s->bev || !s->timer) {
        slot_free(s);
        return NULL;
    }
    wt.tv_sec = (time_t)(OPT(srv, WRITE_TIMEOUT) / 1000);
    wt.tv_usec = (suseconds_t)(OPT(srv, WRITE_TIMEOUT) % 1000) * 1000;
    bufferevent_set_timeouts(s->bev, NULL, &wt);
    /* libevent's default is 16 KiB per write: one loop iteration per
     * 16 KiB of a large file */
    bufferevent_set_max_single_write(s->bev, 1 << 20);
    /* the bufferevent never reads (read_cb does); it writes only while the
     * socket refuses output (see grace__conn_flush) */
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    return s;
}

static int slot_attach(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct grace_slot *s = srv->free_slots;

    if (s) {
        srv->free_slots = s->next;
        srv->nfree_slots--;
        bufferevent_setfd(s->bev, c->fd);
    } else if (!(s = slot_new(srv, c->fd))) {
        return -1;
    }
    bufferevent_setcb(s->bev, NULL, write_cb, event_cb, c);
    evtimer_assign(s->timer, srv->base, timer_cb, c);
    /* a socket bufferevent freezes the end of its input: only it may add.
     * read_cb is the one that adds here. */
    evbuffer_unfreeze(bufferevent_get_input(s->bev), 0);
    grace_parser_init(&s->parser, &srv->plim, srv->fields);
    c->slot = s;
    return 0;
}

/* Bytes (or EOF) on a connection without a slot: idle, or new. */
static int slot_wake(struct grace_conn *c)
{
    if (slot_attach(c) < 0)
        return -1;
    if (c->state == CS_HEAD) {
        /* a new connection's first bytes: its header-timeout runs on from
         * the accept, in the slot's timer now */
        int64_t left = OPT(c->srv, HEADER_TIMEOUT) - (grace__now_ms() - c->accepted_ms);
        struct timeval tv;
        if (left < 0)
            left = 0;
        tv.tv_sec = (time_t)(left / 1000);
        tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
        event_remove_timer(c->rd);
        event_add(c->slot->timer, &tv);
    }
    return 0;
}

/* Unhook the slot from the socket and give it to the pool (or free it). */
static void slot_detach(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct grace_slot *s = c->slot;
    struct evbuffer *in, *out;

    if (!s)
        return;
    c->slot = NULL;
    event_del(s->timer);
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    bufferevent_setfd(s->bev, -1);
    in = bufferevent_get_input(s->bev);
    out = bufferevent_get_output(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    evbuffer_drain(out, evbuffer_get_length(out)); /* releases file segments */
    if (srv->nfree_slots >= SLOT_POOL_MAX) {
        slot_free(s);
        return;
    }
    s->next = srv->free_slots;
    srv->free_slots = s;
    srv->nfree_slots++;
}

void grace__slots_free(struct grace_server *srv)
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
    return c->slot ? evbuffer_get_length(bufferevent_get_input(c->slot->bev)) : 0;
}

static size_t buffered_out(const struct grace_conn *c)
{
    return c->slot ? evbuffer_get_length(bufferevent_get_output(c->slot->bev)) : 0;
}

/* Does the connection still need its slot? Not when idle with nothing
 * buffered either way, nor while lingering. */
static int slot_needed(const struct grace_conn *c)
{
    if (c->state == CS_LINGER)
        return 0;
    if (c->state != CS_IDLE)
        return 1;
    return buffered_in(c) || buffered_out(c);
}

/* ---------------------------------------------------------------- lifetime */

void grace__conn_accept(struct grace_server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                        int salen)
{
    struct grace_conn *c;
    int one = 1;

    if (srv->stopping || !(c = calloc(1, sizeof(*c)))) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->accepted_ms = grace__now_ms();
    /* responses go out in one write; Nagle would only delay pipelined ones */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
        c->peer_len = (socklen_t)salen;
    }
    /* no slot until the first bytes: a silent connection costs little */
    c->rd = event_new(srv->base, fd, EV_READ | EV_PERSIST, read_cb, c);
    if (!c->rd || event_add(c->rd, srv->tv_header) < 0) {
        if (c->rd)
            event_free(c->rd);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    srv->nconns++;
    CNT(srv, CONN_ACCEPTED);
    srv->cnt[GRACE_CNT_CONN_ACTIVE]++;
    c->state = CS_HEAD;

    if (srv->nconns >= (size_t)OPT(srv, MAX_CONNECTIONS) && !srv->listeners_paused) {
        for (int i = 0; i < srv->nlisteners; i++)
            evconnlistener_disable(srv->listeners[i].lev);
        srv->listeners_paused = 1;
        CNT(srv, CONN_CAPPED);
    }
}

void grace__conn_enter(struct grace_conn *c)
{
    c->busy++;
}

void grace__conn_leave(struct grace_conn *c)
{
    if (--c->busy > 0)
        return;
    while (c->free_reqs) {
        struct grace_request *r = c->free_reqs;
        c->free_reqs = r->next_free;
        grace__request_free(r);
    }
    if (c->state == CS_DEAD)
        free(c);
    else if (c->slot && !slot_needed(c))
        slot_detach(c);
}

/* Close the socket and forget the connection; memory goes when not busy. */
void grace__conn_destroy(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;

    if (c->state == CS_DEAD)
        return;
    if (c->req) /* callers detach first; a request left here is aborted */
        grace__conn_abort(c, -ECONNRESET); /* detaches, then comes back here */
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
        c->in_pump_list = 0;
    }
    c->state = CS_DEAD;
    /* callers up the stack test for CS_DEAD before touching the buffers;
     * a pooled bufferevent is not reused before they have returned */
    slot_detach(c);
    event_free(c->rd);
    c->rd = NULL;
    evutil_closesocket(c->fd);
    c->fd = -1;
    srv->nconns--;
    srv->cnt[GRACE_CNT_CONN_ACTIVE]--;
    if (!c->busy)
        free(c);
    grace__server_conn_closed(srv);
}

/* Run pump() for c from the event loop, not from the current call stack. */
void grace__conn_schedule(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    if (c->in_pump_list || c->pumping || c->state == CS_DEAD)
        return; /* a running pump() sees the change */
    c->in_pump_list = 1;
    TAILQ_INSERT_TAIL(&srv->pump, c, pump_link);
    event_active(srv->pump_ev, EV_TIMEOUT, 1);
}

void grace__conn_run_scheduled(struct grace_server *srv)
{
    struct conn_list now;
    struct grace_conn *c;

    TAILQ_INIT(&now);
    TAILQ_CONCAT(&now, &srv->pump, pump_link);
    while ((c = TAILQ_FIRST(&now))) {
        TAILQ_REMOVE(&now, c, pump_link);
        c->in_pump_list = 0;
        grace__conn_enter(c);
        pump(c);
        grace__conn_leave(c);
    }
}

/* The request is done with this connection: free it (later if busy). */
static void request_release(struct grace_conn *c, struct grace_request *req)
{
    if (c->busy) {
        req->next_free = c->free_reqs;
        c->free_reqs = req;
    } else {
        grace__request_free(req);
    }
}

/* The connection ends before the application completed its reply. */
static void request_detach(struct grace_conn *c, int err)
{
    struct grace_request *req = c->req;
    if (!req)
        return;
    c->req = NULL;
    req->conn = NULL;
    req->detached = 1;
    TAILQ_INSERT_TAIL(&c->srv->detached, req, dlink);
    if (err == -ECONNRESET)
        CNT(c->srv, CLIENT_ABORTS);
    grace__request_finish(req, err);
}

void grace__conn_abort(struct grace_conn *c, int err)
{
    request_detach(c, err);
    grace__conn_destroy(c);
}

void grace__conn_free_all(struct grace_server *srv)
{
    struct grace_conn *c;
    while ((c = TAILQ_FIRST(&srv->conns)))
        grace__conn_abort(c, -ECANCELED);
    while ((c = TAILQ_FIRST(&srv->lingering)))
        grace__conn_destroy(c);
}

/* ---------------------------------------------------------------- input */

/* The read event times an idle connection, and a new one until its first
 * bytes; otherwise the slot's timer or linger.c does. */
static const struct timeval *rd_timeout(const struct grace_conn *c)
{
    if (c->state == CS_IDLE)
        return c->srv->tv_keepalive;
    if (c->state == CS_HEAD && !c->slot)
        return c->srv->tv_header;
    return NULL;
}

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
    else if (c->state >= CS_CLOSE_WAIT || !c->slot)
        want = 1; /* discarding, or idle without a slot */
    else
        want = !c->read_paused && buffered_in(c) < input_max(c->srv);
    if (want == !!event_pending(c->rd, EV_READ, NULL))
        return;
    if (want)
        event_add(c->rd, rd_timeout(c));
    else
        event_del(c->rd);
}

/*
 * Read what the socket holds into the input buffer, up to the room left.
 * A read shorter than asked means the socket is empty. Returns 0, or -1 on
 * EOF, or -2 on an error.
 */
static int read_input(struct grace_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->slot->bev);
    size_t len = evbuffer_get_length(in), max = input_max(c->srv);
    size_t room = len < max ? max - len : 0;

    while (room > 0) {
        struct evbuffer_iovec v;
        size_t want = room < READ_CHUNK ? room : READ_CHUNK;
        ssize_t n;

        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
            return -2;
        if (v.iov_len > room)
            v.iov_len = room;
        want = v.iov_len;
        n = recv(c->fd, v.iov_base, want, MSG_DONTWAIT);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(in, &v, 1);
            room -= (size_t)n;
            if ((size_t)n < want)
                return 0;
        } else if (n == 0) {
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno != EINTR) {
            return -2;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- output */

void grace__conn_flush(struct grace_conn *c)
{
    struct evbuffer *out;
    if (!c->slot)
        return;
    if (c->pumping) {
        /* inside pump(): responses to pipelined requests go out together,
         * in one write, when the pump is done */
        c->flush_pending = 1;
        return;
    }
    c->flush_pending = 0;
    out = bufferevent_get_output(c->slot->bev);
    /* Write now when the bufferevent is not already waiting for the socket:
     * saves a loop iteration and two epoll_ctl calls per response. Errors
     * are left for the bufferevent's own write to report. */
    if (evbuffer_get_length(out) && !(bufferevent_get_enabled(c->slot->bev) & EV_WRITE)) {
        /* a socket bufferevent keeps its output frozen at the start so
         * only it drains it; we are the exception, and say so */
        evbuffer_unfreeze(out, 1);
        /* one call per kind of chain: memory with writev, files with
         * sendfile; stop when the socket is full */
        while (evbuffer_get_length(out) && evbuffer_write(out, c->fd) > 0)
            ;
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out))
        bufferevent_enable(c->slot->bev, EV_WRITE);
    else if (c->state == CS_CLOSE_WAIT)
        grace__conn_output_drained(c);
}

void grace__conn_send_continue(struct grace_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    evbuffer_add(bufferevent_get_output(c->slot->bev), cont, sizeof(cont) - 1);
    grace__conn_flush(c);
}

/* ---------------------------------------------------------------- states */

/* Between requests the read event's timeout is the keep-alive timeout. */
static void to_idle(struct grace_conn *c)
{
    c->state = CS_IDLE;
    event_del(c->slot->timer);
    if (event_pending(c->rd, EV_READ, NULL))
        event_add(c->rd, rd_timeout(c));
}

static void to_head(struct grace_conn *c)
{
    c->state = CS_HEAD;
    c->head_seen = 0;
    event_remove_timer(c->rd);
    event_add(c->slot->timer, c->srv->tv_header);
}

/* Is the unread rest of the body known and small enough to discard? */
int grace__body_drainable(const struct grace_conn *c, const struct grace_request *req)
{
    int64_t limit = OPT(c->srv, DRAIN_LIMIT);
    if (req->body_done || grace_parser_body_done(&c->slot->parser))
        return 1;
    if (limit == 0 || c->peer_eof)
        return 0;
    /* the client may still be waiting for a 100 that will never come */
    if (req->p.expect_continue && !req->sent_continue)
        return 0;
    if (req->p.framing == GRACE_FRAMING_LENGTH)
        return req->p.content_length - req->body_read <= (uint64_t)limit;
    return 1; /* chunked: drained up to the limit, then closed gracefully */
}

/* The application completed its reply (all of it is queued). */
void grace__conn_response_done(struct grace_conn *c)
{
    struct grace_request *req = c->req;
    int body_done = req->body_done || grace_parser_body_done(&c->slot->parser);

    if (!body_done)
        CNT(c->srv, EARLY_REPLIES);
    c->req = NULL;
    grace__request_finish(req, 0);
    request_release(c, req);
    if (c->state == CS_DEAD)
        return;
    if (req->close_after || c->srv->stopping || c->stop_close) {
        grace__conn_close_graceful(c);
        return;
    }
    if (body_done) {
        to_idle(c);
    } else {
        c->state = CS_DRAIN;
        c->drained = 0;
    }
    grace__conn_schedule(c);
}

/* Answer an error on the connection itself (no request, or one that was
 * detached) and close gracefully. */
static void fail_with(struct grace_conn *c, int status, const char *msg)
{
    grace__count_status(c->srv, status);
    grace__reply_error(c, status, msg);
    grace__conn_close_graceful(c);
}

/* The body broke a rule mid-way (limit, syntax, timeout). */
static void body_fail(struct grace_conn *c, int status, const char *msg, int err)
{
    int started = c->req && c->req->resp != RESP_NONE;
    request_detach(c, err);
    if (c->state == CS_DEAD)
        return;
    if (started) /* the response is cut short: nothing better to do */
        grace__conn_close_graceful(c);
    else
        fail_with(c, status, msg);
}

/* ---------------------------------------------------------------- pump */

/*
 * Header phase. The parser's field array is shared by all connections of
 * the server, so a block that is not complete yet is parsed again from its
 * start when more bytes arrive: nothing is consumed until it is complete,
 * and a new attempt is only made once a new LF has arrived.
 */
static int pump_head(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->slot->bev);
    size_t len = evbuffer_get_length(in), n, used = 0, bl;
    const char *b;
    char *buf;

    if (len == 0)
        return 0;
    if (buffered_out(c) > (size_t)OPT(srv, OUTPUT_HIGH_WATER)) {
        /* the client does not read its responses: stop taking requests.
         * The header deadline waits too (write-timeout guards the output). */
        c->read_paused = 1; /* pump() stops the read event */
        event_del(c->slot->timer);
        return 0;
    }
    n = len < head_max(srv) ? len : head_max(srv);
    buf = (char *)evbuffer_pullup(in, (ev_ssize_t)n);
    if (!buf)
        return 0;
    /* no new line since the last attempt, and no limit reached: wait */
    if (c->head_seen && n < c->head_window && !memchr(buf + c->head_seen, '\n', n - c->head_seen)) {
        c->head_seen = n;
        return 0;
    }
    grace_parser_reset(&c->slot->parser);
    enum grace_pev ev = grace_parser_execute(&c->slot->parser, buf, n, &used, &b, &bl);
    switch (ev) {
    case GRACE_PEV_AGAIN:
        if (used) { /* blank lines before a request line */
            evbuffer_drain(in, used);
            c->head_seen = 0;
            return 1;
        }
        c->head_seen = n;
        c->head_window = c->slot->parser.window;
        return 0;
    case GRACE_PEV_HEADERS: {
        struct grace_request *req = grace__request_new(c, buf + used - c->slot->parser.req.header_bytes);
        if (!req) {
            fail_with(c, 503, "out of memory");
            return 1;
        }
        evbuffer_drain(in, used);
        c->head_seen = 0;
        c->req = req;
        c->state = CS_ACTIVE;
        event_del(c->slot->timer);
        CNT(srv, REQUESTS);
        grace__server_dispatch(req);
        return 1;
    }
    default: {
        enum grace_perr e = c->slot->parser.err;
        fail_with(c, grace_perr_status(e), grace_perr_str(e));
        return 1;
    }
    }
}

static void deliver_end(struct grace_request *req)
{
    if (req->end_delivered || (req->body_mode != BODY_STREAM && req->body_mode != BODY_COLLECT))
        return;
    req->end_delivered = 1;
    if (req->body_mode == BODY_STREAM) {
        if (req->on_end)
            req->on_end(req, req->body_arg);
    } else {
        req->on_body(req, req->body, req->body_arg);
    }
}

/* Body phase, in CS_ACTIVE (for the application) or CS_DRAIN (discarding). */
static int pump_body(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->slot->bev);
    struct grace_request *req = c->req;

    if (c->state == CS_ACTIVE) {
        if (req->body_done) {
            deliver_end(req);
            return 0;
        }
        if (!grace_parser_body_done(&c->slot->parser) && (req->body_mode == BODY_NONE || req->paused))
            return 0;
    }
    for (;;) {
        struct evbuffer_iovec v = {NULL, 0};
        size_t len = evbuffer_get_length(in), used = 0, bl = 0;
        const char *b = NULL;

        if (len)
            evbuffer_peek(in, -1, NULL, &v, 1);
        enum grace_pev ev = grace_parser_execute(&c->slot->parser, v.iov_base, v.iov_len, &used, &b, &bl);
        if (ev == GRACE_PEV_AGAIN) {
            if (used) {
                evbuffer_drain(in, used);
                continue;
            }
            if (v.iov_len < len) { /* a chunk line spans buffers: join them */
                size_t want = v.iov_len + GRACE_PARSER_CHUNK_LINE_MAX + srv->plim.max_trailer_bytes;
                evbuffer_pullup(in, (ev_ssize_t)(want < len ? want : len));
                continue;
            }
            if (c->peer_eof) { /* the body will never be complete */
                if (c->state == CS_DRAIN)
                    grace__conn_destroy(c);
                else
                    grace__conn_abort(c, -ECONNRESET);
                return 0;
            }
            event_add(c->slot->timer, srv->tv_body);
            return 0;
        }
        if (ev == GRACE_PEV_BODY) {
            if (c->state == CS_DRAIN) {
                evbuffer_drain(in, used);
                srv->cnt[GRACE_CNT_BYTES_DISCARDED] += bl;
                c->drained += bl;
                if (c->drained > (uint64_t)OPT(srv, DRAIN_LIMIT)) {
                    grace__conn_close_graceful(c);
                    return 1;
                }
                continue;
            }
            req->body_read += bl;
            if (req->body_read > req->body_limit) {
                evbuffer_drain(in, used);
                body_fail(c, 413, "request body too large", -EMSGSIZE);
                return 1;
            }
            if (req->body_mode == BODY_COLLECT) {
                evbuffer_remove_buffer(in, req->body, used);
                continue;
            }
            /* BODY_STREAM: b points into the input buffer, drained after */
            req->on_data(req, b, bl, req->body_arg);
            if (c->state != CS_DEAD)
                evbuffer_drain(in, used);
            if (c->state != CS_ACTIVE || c->req != req || req->paused)
                return 1;
            continue;
        }
        if (ev == GRACE_PEV_DONE) {
            event_del(c->slot->timer);
            if (c->state == CS_DRAIN) {
                CNT(srv, KEEPALIVE_DRAINS);
                to_idle(c);
                return 1;
            }
            req->body_done = 1;
            deliver_end(req);
            return 1;
        }
        /* GRACE_PEV_ERROR: a malformed chunked body */
        if (c->state == CS_DRAIN) {
            grace__conn_close_graceful(c);
        } else {
            enum grace_perr e = c->slot->parser.err;
            body_fail(c, grace_perr_status(e), grace_perr_str(e), -EPROTO);
        }
        return 1;
    }
}

/* Drop buffered input that will never be parsed (a close is pending). */
void grace__conn_discard_input(struct grace_conn *c)
{
    struct evbuffer *in;
    size_t n;

    if (!c->slot)
        return;
    in = bufferevent_get_input(c->slot->bev);
    n = evbuffer_get_length(in);
    c->srv->cnt[GRACE_CNT_BYTES_DISCARDED] += n;
    evbuffer_drain(in, n);
}

static void pump_states(struct grace_conn *c)
{
    int more = 1;
    while (more && c->state != CS_DEAD) {
        switch (c->state) {
        case CS_IDLE:
            more = buffered_in(c) > 0;
            if (more)
                to_head(c);
            break;
        case CS_HEAD:
            more = pump_head(c);
            break;
        case CS_ACTIVE:
        case CS_DRAIN:
            more = pump_body(c);
            break;
        case CS_CLOSE_WAIT:
            grace__conn_discard_input(c);
            more = 0;
            break;
        default:
            more = 0;
        }
    }
}

/* Parse and dispatch what is buffered, then write what that produced. */
static void pump(struct grace_conn *c)
{
    if (c->pumping) { /* re-entered from a callback: the outer pump goes on */
        pump_states(c);
        return;
    }
    for (;;) {
        c->pumping = 1;
        pump_states(c);
        c->pumping = 0;
        if (c->state == CS_DEAD)
            return;
        if (c->flush_pending)
            grace__conn_flush(c);
        if (c->state == CS_DEAD)
            return;
        /* paused for output that has gone out meanwhile: take requests again */
        if (!c->read_paused || !c->slot || buffered_out(c))
            break;
        c->read_paused = 0;
        if (c->state == CS_HEAD)
            event_add(c->slot->timer, c->srv->tv_header);
    }
    grace__conn_watch_input(c);
}

/* ---------------------------------------------------------------- events */

static void peer_eof(struct grace_conn *c);

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_conn *c = arg;
    int rc;

    grace__conn_enter(c);
    if (what & EV_TIMEOUT) { /* the read event times connections without a slot */
        if (c->state == CS_IDLE) {
            CNT(c->srv, TIMEOUT_KEEPALIVE);
            grace__conn_destroy(c);
        } else if (c->state == CS_HEAD) { /* new, and never sent a byte */
            CNT(c->srv, TIMEOUT_HEADER);
            grace__conn_destroy(c);
        } else if (c->state == CS_LINGER) {
            grace__linger_timer(c);
        }
    } else if (c->state >= CS_CLOSE_WAIT) {
        grace__linger_read(c);
    } else if (!c->slot && slot_wake(c) < 0) {
        grace__conn_destroy(c); /* out of memory: nothing to answer with */
    } else if ((rc = read_input(c)) == -2) {
        grace__conn_abort(c, -ECONNRESET);
    } else {
        pump(c);
        if (rc == -1 && c->state != CS_DEAD)
            peer_eof(c);
    }
    grace__conn_leave(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct grace_conn *c = arg;
    grace__conn_enter(c);
    /* the output is empty (low watermark 0): stop watching the socket */
    bufferevent_disable(bev, EV_WRITE);
    if (c->state == CS_CLOSE_WAIT) {
        grace__conn_output_drained(c);
    } else if (c->read_paused) {
        pump(c); /* takes requests again: see the end of pump() */
    }
    grace__conn_leave(c);
}

/* No request in progress: close now, or once the responses still queued
 * for a full socket are out. */
static void close_between_requests(struct grace_conn *c)
{
    if (buffered_out(c))
        grace__conn_close_graceful(c);
    else
        grace__conn_destroy(c);
}

/* The client closed its side (EOF). */
static void peer_eof(struct grace_conn *c)
{
    c->peer_eof = 1;
    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD: /* gone between requests, or gave up mid-headers */
        close_between_requests(c);
        break;
    case CS_ACTIVE:
    case CS_DRAIN:
        /* Deliver what is buffered first. A client that closes before its
         * response is complete has gone (as nginx's 499): the application
         * learns it through the finish callback. */
        pump(c);
        if (c->state == CS_ACTIVE)
            grace__conn_abort(c, -ECONNRESET);
        else if (c->state == CS_IDLE || c->state == CS_HEAD)
            peer_eof(c);
        break;
    default: /* CS_CLOSE_WAIT and CS_LINGER read in linger.c */
        break;
    }
    grace__conn_watch_input(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct grace_conn *c = arg;
    grace__conn_enter(c);
    if (what & BEV_EVENT_TIMEOUT) {
        CNT(c->srv, TIMEOUT_WRITE);
        grace__conn_abort(c, -ETIMEDOUT);
    } else if (what & BEV_EVENT_ERROR) {
        grace__conn_abort(c, -ECONNRESET);
    }
    grace__conn_leave(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_conn *c = arg;
    struct grace_server *srv = c->srv;
    grace__conn_enter(c);
    switch (c->state) {
    case CS_HEAD:
        CNT(srv, TIMEOUT_HEADER);
        if (buffered_in(c))
            fail_with(c, 408, "request header timeout");
        else
            grace__conn_destroy(c);
        break;
    case CS_ACTIVE:
        CNT(srv, TIMEOUT_BODY);
        body_fail(c, 408, "request body timeout", -ETIMEDOUT);
        break;
    case CS_DRAIN:
        CNT(srv, TIMEOUT_BODY);
        grace__conn_close_graceful(c);
        break;
    default:
        break;
    }
    grace__conn_leave(c);
}

/* Graceful stop: idle connections go now, the rest after their response. */
void grace__conn_stop(struct grace_conn *c)
{
    grace__conn_enter(c);
    c->stop_close = 1;
    if (c->state <= CS_HEAD && !buffered_in(c))
        close_between_requests(c);
    else if (c->state == CS_DRAIN)
        grace__conn_close_graceful(c);
    grace__conn_leave(c);
}
