/*
 * conn.c - the per-connection pipeline.
 *
 * A bufferevent reads into its input evbuffer; pump() feeds those bytes to
 * the parser and acts on its events: headers complete -> dispatch to the
 * application, body pieces -> stream/collect/discard, message done -> next
 * request once the response is complete. Responses are written straight to
 * the socket when it accepts them (response.c) and the bufferevent only
 * takes over when the socket is full.
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

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void pump(struct grace_conn *c);

/* The largest header block the parser can accept, plus its CRLFs. */
static size_t head_max(const struct grace_server *srv)
{
    return srv->plim.max_request_line + 2 + srv->plim.max_header_bytes + 2;
}

void grace__conn_accept(struct grace_server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                        int salen)
{
    struct grace_conn *c;
    struct timeval wt;
    int one = 1;

    if (srv->stopping || !(c = calloc(1, sizeof(*c)))) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    /* responses go out in one write; Nagle would only delay pipelined ones */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
        c->peer_len = (socklen_t)salen;
    }
    c->bev = bufferevent_socket_new(srv->base, fd, 0);
    c->timer = evtimer_new(srv->base, timer_cb, c);
    if (!c->bev || !c->timer) {
        if (c->bev)
            bufferevent_free(c->bev);
        if (c->timer)
            event_free(c->timer);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    grace_parser_init(&c->parser, &srv->plim, srv->fields);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* backpressure: stop reading once a full header block plus 64 KiB is
     * buffered and nobody consumes it */
    bufferevent_setwatermark(c->bev, EV_READ, 0, head_max(srv) + 65536);
    wt.tv_sec = (time_t)(OPT(srv, WRITE_TIMEOUT) / 1000);
    wt.tv_usec = (suseconds_t)(OPT(srv, WRITE_TIMEOUT) % 1000) * 1000;
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    /* libevent's default is 16 KiB per read or write: one loop iteration
     * per 16 KiB of a large upload or file */
    bufferevent_set_max_single_read(c->bev, 65536);
    bufferevent_set_max_single_write(c->bev, 1 << 20);
    /* bufferevents start with EV_WRITE enabled; we enable it only while
     * the socket refuses output (see grace__conn_flush) */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);

    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    srv->nconns++;
    CNT(srv, CONN_ACCEPTED);
    srv->cnt[GRACE_CNT_CONN_ACTIVE]++;
    c->state = CS_HEAD;
    event_add(c->timer, srv->tv_header);

    if (srv->nconns >= (size_t)OPT(srv, MAX_CONNECTIONS) && !srv->listeners_paused) {
        for (int i = 0; i < srv->nlisteners; i++)
            evconnlistener_disable(srv->listeners[i].lev);
        srv->listeners_paused = 1;
        CNT(srv, CONN_CAPPED);
    }
}

/* ---------------------------------------------------------------- lifetime */

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

/* ---------------------------------------------------------------- output */

void grace__conn_flush(struct grace_conn *c)
{
    struct evbuffer *out;
    if (!c->bev)
        return;
    if (c->pumping) {
        /* inside pump(): responses to pipelined requests go out together,
         * in one write, when the pump is done */
        c->flush_pending = 1;
        return;
    }
    c->flush_pending = 0;
    out = bufferevent_get_output(c->bev);
    /* Write now when the bufferevent is not already waiting for the socket:
     * saves a loop iteration and two epoll_ctl calls per response. Errors
     * are left for the bufferevent's own write to report. */
    if (evbuffer_get_length(out) && !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
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
        bufferevent_enable(c->bev, EV_WRITE);
    else if (c->state == CS_CLOSE_WAIT)
        grace__conn_output_drained(c);
}

void grace__conn_send_continue(struct grace_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    evbuffer_add(bufferevent_get_output(c->bev), cont, sizeof(cont) - 1);
    grace__conn_flush(c);
}

/* ---------------------------------------------------------------- states */

static void to_idle(struct grace_conn *c)
{
    c->state = CS_IDLE;
    event_add(c->timer, c->srv->tv_keepalive);
}

static void to_head(struct grace_conn *c)
{
    c->state = CS_HEAD;
    c->head_seen = 0;
    event_add(c->timer, c->srv->tv_header);
}

/* Is the unread rest of the body known and small enough to discard? */
int grace__body_drainable(const struct grace_conn *c, const struct grace_request *req)
{
    int64_t limit = OPT(c->srv, DRAIN_LIMIT);
    if (req->body_done || grace_parser_body_done(&c->parser))
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
    int body_done = req->body_done || grace_parser_body_done(&c->parser);

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
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in), n, used = 0, bl;
    const char *b;
    char *buf;

    if (len == 0)
        return 0;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > (size_t)OPT(srv, OUTPUT_HIGH_WATER)) {
        /* the client does not read its responses: stop taking requests.
         * The header deadline waits too (write-timeout guards the output). */
        bufferevent_disable(c->bev, EV_READ);
        c->read_paused = 1;
        event_del(c->timer);
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
    grace_parser_reset(&c->parser);
    enum grace_pev ev = grace_parser_execute(&c->parser, buf, n, &used, &b, &bl);
    switch (ev) {
    case GRACE_PEV_AGAIN:
        if (used) { /* blank lines before a request line */
            evbuffer_drain(in, used);
            c->head_seen = 0;
            return 1;
        }
        c->head_seen = n;
        c->head_window = c->parser.window;
        return 0;
    case GRACE_PEV_HEADERS: {
        struct grace_request *req = grace__request_new(c, buf + used - c->parser.req.header_bytes);
        if (!req) {
            fail_with(c, 503, "out of memory");
            return 1;
        }
        evbuffer_drain(in, used);
        c->head_seen = 0;
        c->req = req;
        c->state = CS_ACTIVE;
        event_del(c->timer);
        CNT(srv, REQUESTS);
        grace__server_dispatch(req);
        return 1;
    }
    default: {
        enum grace_perr e = c->parser.err;
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
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct grace_request *req = c->req;

    if (c->state == CS_ACTIVE) {
        if (req->body_done) {
            deliver_end(req);
            return 0;
        }
        if (!grace_parser_body_done(&c->parser) && (req->body_mode == BODY_NONE || req->paused))
            return 0;
    }
    for (;;) {
        struct evbuffer_iovec v = {NULL, 0};
        size_t len = evbuffer_get_length(in), used = 0, bl = 0;
        const char *b = NULL;

        if (len)
            evbuffer_peek(in, -1, NULL, &v, 1);
        enum grace_pev ev = grace_parser_execute(&c->parser, v.iov_base, v.iov_len, &used, &b, &bl);
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
            event_add(c->timer, srv->tv_body);
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
            event_del(c->timer);
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
            enum grace_perr e = c->parser.err;
            body_fail(c, grace_perr_status(e), grace_perr_str(e), -EPROTO);
        }
        return 1;
    }
}

/* Drop buffered input that will never be parsed (a close is pending). */
void grace__conn_discard_input(struct grace_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    c->srv->cnt[GRACE_CNT_BYTES_DISCARDED] += n;
    evbuffer_drain(in, n);
}

static void pump_states(struct grace_conn *c)
{
    int more = 1;
    while (more && c->state != CS_DEAD) {
        switch (c->state) {
        case CS_IDLE:
            more = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
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
        /* paused for output that has gone out meanwhile: take requests again */
        if (c->state == CS_DEAD || !c->read_paused || !c->bev ||
            evbuffer_get_length(bufferevent_get_output(c->bev)))
            return;
        c->read_paused = 0;
        bufferevent_enable(c->bev, EV_READ);
        if (c->state == CS_HEAD)
            event_add(c->timer, c->srv->tv_header);
    }
}

/* ---------------------------------------------------------------- events */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct grace_conn *c = arg;
    grace__conn_enter(c);
    pump(c);
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

/* The client closed its side (EOF). */
static void peer_eof(struct grace_conn *c)
{
    c->peer_eof = 1;
    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD: /* gone between requests, or gave up mid-headers */
        grace__conn_destroy(c);
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
            grace__conn_destroy(c);
        break;
    case CS_CLOSE_WAIT:
        if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
            grace__conn_destroy(c);
        break;
    default:
        break;
    }
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
    } else if (what & BEV_EVENT_EOF) {
        peer_eof(c);
    }
    grace__conn_leave(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_conn *c = arg;
    struct grace_server *srv = c->srv;
    grace__conn_enter(c);
    switch (c->state) {
    case CS_IDLE:
        CNT(srv, TIMEOUT_KEEPALIVE);
        grace__conn_destroy(c);
        break;
    case CS_HEAD:
        CNT(srv, TIMEOUT_HEADER);
        if (evbuffer_get_length(bufferevent_get_input(c->bev)))
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
    case CS_LINGER:
        grace__linger_timer(c);
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
    if (c->state == CS_IDLE ||
        (c->state == CS_HEAD && !evbuffer_get_length(bufferevent_get_input(c->bev))))
        grace__conn_destroy(c);
    else if (c->state == CS_DRAIN)
        grace__conn_close_graceful(c);
    grace__conn_leave(c);
}
