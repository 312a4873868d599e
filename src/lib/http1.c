/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http1.c - HTTP/1.1 on the engine: the message pump (request line and
 * headers, body pieces, the drain of an unread rest), keep-alive and close
 * decisions, the server's own error answers, 100-continue, file bodies read
 * as they go on a transport without sendfile, and HTTP/1.1's deadlines.
 *
 * The engine (conn.c) calls it through grace__http1 only: input when bytes
 * (or the peer's EOF) are buffered, output when the output has room, moved,
 * emptied or was flushed after a pump, timeout for its deadlines, stop,
 * end. Its state (struct h1) lives in the slot's protocol area, zeroed when
 * a slot is attached: H1_IDLE is the zeroed state, so an idle keep-alive
 * connection that gave its slot back keeps nothing of HTTP/1.1.
 *
 *   H1_IDLE   between requests (the engine's CS_IDLE, or CS_NEW)
 *   H1_HEAD   the request line and headers (header-timeout, a total)
 *   H1_BODY   the application's reply; the body read as it asks
 *             (body-timeout from the last byte, body-min-rate)
 *   H1_DRAIN  reply complete: the end of a small unread body (drain-time)
 */
#include "http1.h"

#include "parser.h"
#include "report.h"
#include "request.h"
#include "splice.h"
#include "stream.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A file body without sendfile() is read in pieces of this size as it goes. */
#define FILE_CHUNK (64u << 10)

enum h1_state {
    H1_IDLE, /* 0: the zeroed slot area */
    H1_HEAD,
    H1_BODY,
    H1_DRAIN,
    H1_GONE /* not HTTP/1.1's any more: closing, closed, or handed over */
};

struct h1 {
    enum h1_state state;
    unsigned parser_ready : 1; /* parser set up on this slot */
    unsigned read_paused : 1;  /* no new request until the output has gone */
    unsigned file_open : 1;    /* file_fd is ours */
    struct grace_request *req; /* in flight: its body is read, its reply made */
    int64_t start_us;          /* the current request's first byte */
    union {                    /* what the current state measures */
        struct {
            int64_t deadline;  /* header-timeout */
            size_t seen;       /* bytes already searched for an LF */
            size_t window;     /* where the parser's limit lies */
        } head;
        int64_t body_since;    /* H1_BODY: the application's wait began */
        struct {
            int64_t deadline;  /* drain-time */
            uint64_t bytes;
        } drain;
    } st;
    int file_fd;               /* a file body read as it is sent (no sendfile) */
    off_t file_off;
    uint64_t file_left;        /* its bytes not yet in the output */
    struct grace_reports reports; /* the records of its responses (report.c) */
    struct grace_splice sp;    /* a body into the application's fd (body_to_fd) */
    struct grace_parser parser;
};

static const struct grace_req_ops h1_req_ops;

static struct h1 *h1_of(const struct grace_conn *c)
{
    return (struct h1 *)c->slot->area;
}

/* HTTP/1.1's state, or H1_GONE once the engine closes the connection or
 * another protocol took it. */
static enum h1_state h1_state(const struct grace_conn *c)
{
    if (c->state >= CS_CLOSING || c->proto != &grace__http1 || !c->slot)
        return H1_GONE;
    return h1_of(c)->state;
}

static size_t buffered_in(const struct grace_conn *c)
{
    return evbuffer_get_length(c->slot->in);
}

/* Is the read event to move the request's body into the application's
 * fd (splice.c)? Not while body bytes read earlier (with the headers, or
 * while the application had not yet asked for the body) wait in the input
 * buffer: pump_body_fd() writes those first, or the file gets later bytes
 * before earlier ones. */
static int splice_active(const struct grace_conn *c, const struct h1 *h)
{
    const struct grace_request *req = h->req;
    return req && req->body_mode == BODY_FD && !req->body_done && h->sp.open && !h->sp.err &&
           grace_parser_body_left(&h->parser) && evbuffer_get_length(c->slot->in) == 0;
}

/* Body bytes moved into the fd: the parser skips them, body progress. */
static void splice_moved(struct h1 *h, uint64_t moved)
{
    if (!moved)
        return;
    grace_parser_body_skip(&h->parser, moved);
    h->req->body_read += moved;
    h->st.body_since = grace__now_ms();
}

/* The largest header block the parser can accept, plus its CRLFs. */
static size_t head_max(const struct grace_server *srv)
{
    return grace_parser_head_max(&srv->plim);
}

/* ---------------------------------------------------------------- states */

/* Between requests: the engine's keep-alive (from when the output is empty). */
static void to_idle(struct grace_conn *c)
{
    h1_of(c)->state = H1_IDLE;
    grace__conn_idle(c);
}

/* Bytes of a new request: header-timeout runs from now, or for a new
 * connection's first request from the accept. */
static void to_head(struct grace_conn *c)
{
    struct h1 *h = h1_of(c);
    int first = c->state == CS_NEW;

    if (!h->parser_ready) {
        grace_parser_init(&h->parser, &c->srv->plim, c->srv->fields);
        h->parser_ready = 1;
    }
    h->state = H1_HEAD;
    h->st.head.seen = 0;
    h->st.head.deadline = (first ? c->accepted_ms : grace__now_ms()) + OPT(c->srv, HEADER_TIMEOUT);
    h->start_us = first ? c->slot->woke_us : grace__now_us();
    grace__conn_active(c);
}

/* ---------------------------------------------------------------- deadlines */

/* Is the application waiting for body bytes (and not busy or paused)? */
static int waiting_for_body(const struct grace_conn *c)
{
    const struct h1 *h;
    const struct grace_request *req;

    if (h1_state(c) != H1_BODY)
        return 0;
    h = h1_of(c);
    req = h->req;
    return req && !req->paused && !req->body_done &&
           (req->body_mode == BODY_STREAM || req->body_mode == BODY_COLLECT ||
            req->body_mode == BODY_FD) &&
           !grace_parser_body_done(&h->parser);
}

/* body-timeout: the request's own, else the server's. It is also the
 * window over which body-min-rate is averaged. */
static int64_t body_period(const struct grace_conn *c, const struct grace_request *req)
{
    return req->body_timeout ? req->body_timeout : OPT(c->srv, BODY_TIMEOUT);
}

/* HTTP/1.1's deadlines: header-timeout, body progress, drain-time, the
 * request's own total. */
static int64_t h1_deadline(const struct grace_conn *c, enum grace_counter *why)
{
    struct grace_server *srv = c->srv;
    enum h1_state state = h1_state(c);
    const struct h1 *h;
    int64_t d = 0;

    if (state == H1_GONE)
        return 0;
    h = h1_of(c);
    if (state == H1_HEAD && !h->read_paused) {
        grace__earlier(&d, why, h->st.head.deadline, GRACE_CNT_TIMEOUT_HEADER);
    } else if (waiting_for_body(c)) {
        /* idle: a period from the last byte (the engine's last read, or when
         * the application began to wait); too slow: a period from the rate
         * window's start (body_rate_kept() decides when it passes) */
        const struct grace_request *req = h->req;
        int64_t since = c->slot->read_ms > h->st.body_since ? c->slot->read_ms : h->st.body_since;
        int64_t idle = since + body_period(c, req);
        int64_t slow = OPT(srv, BODY_MIN_RATE) && req->rate_since
                           ? req->rate_since + body_period(c, req) : 0;
        if (slow && slow < idle)
            grace__earlier(&d, why, slow, GRACE_CNT_BODY_TOO_SLOW);
        else
            grace__earlier(&d, why, idle, GRACE_CNT_TIMEOUT_BODY);
    } else if (state == H1_DRAIN) {
        grace__earlier(&d, why, h->st.drain.deadline, GRACE_CNT_TIMEOUT_DRAIN);
    }
    /* the application's total for its request, beside the progress timers */
    if (state == H1_BODY && h->req && h->req->deadline_at)
        grace__earlier(&d, why, h->req->deadline_at, GRACE_CNT_TIMEOUT_REQUEST);
    return d;
}

/* write-timeout for what is queued: the request's own, else the last
 * response's (its tail may still wait), kept in the slot. */
static int64_t h1_write_timeout(const struct grace_conn *c)
{
    const struct grace_request *req = h1_of(c)->req;

    if (!req)
        return c->slot->write_timeout;
    return req->write_timeout ? req->write_timeout : OPT(c->srv, WRITE_TIMEOUT);
}

static void body_wait(struct grace_conn *c)
{
    struct h1 *h;

    if (h1_state(c) != H1_BODY)
        return;
    h = h1_of(c);
    h->st.body_since = grace__now_ms();
    if (h->req) {
        h->req->rate_since = h->st.body_since;
        h->req->rate_bytes = h->req->body_read;
    }
}

/*
 * A body-min-rate window has passed: did the body average the rate over it
 * (the time it really took: a late timer is not the client's fault)? Then a
 * new window starts. A body that trickles a byte now and then never trips
 * body-timeout, but fails this; a slow but steady one passes every window.
 */
static int body_rate_kept(struct grace_conn *c)
{
    struct grace_request *req = h1_of(c)->req;
    int64_t now = grace__now_ms();
    uint64_t need = (uint64_t)(OPT(c->srv, BODY_MIN_RATE) * (now - req->rate_since) / 1000);

    if (req->body_read - req->rate_bytes < need)
        return 0;
    req->rate_since = now;
    req->rate_bytes = req->body_read;
    return 1;
}

/* ---------------------------------------------------------------- output */

/*
 * A file body on a transport without sendfile(): the next piece goes into
 * the output, read now (pread: a file that shrank is noticed, never mapped).
 * -EPIPE when the file ends before its promised length.
 */
static int file_refill(struct grace_conn *c, struct h1 *h)
{
    struct evbuffer *out = c->slot->out;
    struct evbuffer_iovec v;
    size_t want = h->file_left < FILE_CHUNK ? (size_t)h->file_left : FILE_CHUNK;
    ssize_t n;

    if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1)
        return -EPIPE;
    if (v.iov_len > want)
        v.iov_len = want;
    do
        n = pread(h->file_fd, v.iov_base, v.iov_len, h->file_off);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -EPIPE;
    v.iov_len = (size_t)n;
    evbuffer_commit_space(out, &v, 1);
    h->file_off += n;
    h->file_left -= (uint64_t)n;
    grace__conn_more(c, h->file_left);
    if (!h->file_left) {
        close(h->file_fd);
        h->file_open = 0;
    }
    return 0;
}

static void file_close(struct grace_conn *c, struct h1 *h)
{
    if (!h->file_open)
        return;
    close(h->file_fd);
    h->file_open = 0;
    h->file_left = 0;
    grace__conn_more(c, 0);
}

static int file_queue(struct grace_conn *c, int fd, off_t offset, off_t length)
{
    struct h1 *h = h1_of(c);
    if (h->file_left) {
        close(fd);
        return -1;
    }
    h->file_fd = fd;
    h->file_open = 1;
    h->file_off = offset;
    h->file_left = (uint64_t)length;
    grace__conn_more(c, h->file_left);
    return 0;
}

static void send_continue(struct grace_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    evbuffer_add(c->slot->out, cont, sizeof(cont) - 1);
    grace__conn_flush(c);
}

/* ---------------------------------------------------------------- the request */

static int body_complete(const struct grace_conn *c, const struct grace_request *req)
{
    return req->body_done || grace_parser_body_done(&h1_of(c)->parser);
}

static int h1_body_start(struct grace_request *req)
{
    struct grace_conn *c = req->conn;

    /* 100 Continue only now that the body is wanted, and only if the
     * response has not begun */
    if (req->p.expect_continue && !req->sent_continue && req->resp == RESP_NONE &&
        !body_complete(c, req)) {
        req->sent_continue = 1;
        grace__conn_enter(c);
        send_continue(c);
        grace__conn_leave(c);
    }
    body_wait(c);
    grace__conn_schedule(c);
    return 0;
}

static int body_drainable(const struct grace_conn *c, const struct grace_request *req)
{
    int64_t limit = OPT(c->srv, DRAIN_LIMIT);
    if (body_complete(c, req))
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

/* HTTP/1.1 lets go of its request: the connection ended first. */
static void request_detach(struct grace_conn *c, int err)
{
    struct h1 *h = h1_of(c);
    struct grace_request *req = h->req;

    if (!req)
        return;
    h->req = NULL;
    grace__splice_close(&h->sp);
    grace__request_detach(req, err);
}

static void response_done(struct grace_conn *c)
{
    struct h1 *h = h1_of(c);
    struct grace_request *req = h->req;
    int body_done = body_complete(c, req);

    if (!body_done)
        CNT(c->srv, EARLY_REPLIES);
    /* the rest of this response may still wait for the socket */
    c->slot->write_timeout = req->write_timeout ? req->write_timeout : OPT(c->srv, WRITE_TIMEOUT);
    h->req = NULL;
    grace__splice_close(&h->sp);
    grace__request_done(req);
    if (c->state == CS_DEAD)
        return;
    /* a response that did not say Connection: close (it started before a
     * stop) is not followed by a close the client cannot expect: the
     * connection goes idle, and a stop's lame duck takes it from there */
    if (req->close_after || c->stop_close) {
        grace__conn_close_graceful(c);
        return;
    }
    if (body_done) {
        to_idle(c);
    } else {
        h->state = H1_DRAIN;
        h->st.drain.bytes = 0;
        h->st.drain.deadline = grace__now_ms() + OPT(c->srv, DRAIN_TIME);
    }
    grace__conn_schedule(c);
}

/* An error answered by the server itself; the caller closes afterwards.
 * req: the request it ends, if any (for the report). nosniff: a browser
 * shows it as the text it is, whatever bytes the message holds. */
static int h1_error(struct grace_conn *c, struct grace_request *req, int status, const char *msg)
{
    struct evbuffer *out = c->slot->out;
    char head[256];
    size_t n, ml = strlen(msg);
    int k;

    grace__date_header(&c->srv->date, head, &n);
    k = snprintf(head + n, sizeof(head) - n,
                 "Content-Type: text/plain\r\nX-Content-Type-Options: nosniff\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 ml + 1);
    if (k < 0 || (size_t)k >= sizeof(head) - n)
        return -EINVAL;
    n += (size_t)k;
    char line[64];
    int ll = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, grace_status_reason(status));
    if (c->srv->on_response)
        grace__report_start(&h1_of(c)->reports, c, req, status,
                            req ? req->start_us : c->slot->woke_us, grace__conn_out_offset(c),
                            (size_t)ll + n);
    if (evbuffer_add(out, line, (size_t)ll) < 0 || evbuffer_add(out, head, n) < 0 ||
        evbuffer_add(out, msg, ml) < 0 || evbuffer_add(out, "\n", 1) < 0)
        return -ENOMEM;
    if (h1_of(c)->reports.head)
        grace__report_done(&h1_of(c)->reports, req, grace__conn_out_offset(c));
    return 0;
}

/* Answer an error on the connection itself (no request, or one that was
 * detached) and close gracefully. */
static void fail_with(struct grace_conn *c, struct grace_request *req, int status,
                      const char *msg)
{
    grace__count_status(c->srv, status);
    h1_error(c, req, status, msg);
    grace__conn_close_graceful(c);
}

/* The body broke a rule mid-way (limit, syntax, timeout, early end). The
 * answer is queued before the application hears of it: its finish
 * callback may release the request. */
static void body_fail(struct grace_conn *c, int status, const char *msg, int err)
{
    struct grace_request *req = h1_of(c)->req;
    int started = req && req->resp != RESP_NONE;

    if (!started) {
        grace__count_status(c->srv, status);
        h1_error(c, req, status, msg);
    }
    request_detach(c, err);
    if (c->state != CS_DEAD)
        grace__conn_close_graceful(c);
}

/* The request's own deadline passed before its reply completed: a 503 if
 * nothing was queued, else the cut-short response ends the connection. */
static void request_deadline(struct grace_conn *c)
{
    if (h1_of(c)->req->resp == RESP_NONE)
        body_fail(c, 503, "request deadline passed", -ETIMEDOUT);
    else
        grace__conn_abort(c, -ETIMEDOUT);
}

/* ---------------------------------------------------------------- drain */

/* Is a drain callback waiting, and the output at or below low-water? */
static int drain_due(const struct grace_conn *c)
{
    const struct grace_request *req;

    if (!c->slot || c->proto != &grace__http1)
        return 0;
    req = h1_of(c)->req;
    return req && req->on_drain &&
           grace__buffered_out(c) <= (size_t)OPT(c->srv, OUTPUT_LOW_WATER);
}

static void drain_check(struct grace_conn *c)
{
    if (c && drain_due(c))
        grace__conn_schedule(c); /* a running pump sees it at its end */
}

/* Run a due drain callback, once: it is unset before the call so that the
 * callback may register again. */
static void drain_fire(struct grace_conn *c)
{
    struct grace_request *req;
    grace_drain_cb cb;

    if (!drain_due(c))
        return;
    req = h1_of(c)->req;
    cb = req->on_drain;
    req->on_drain = NULL;
    cb(req, req->drain_arg);
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
    struct h1 *h = h1_of(c);
    struct evbuffer *in = c->slot->in;
    size_t len = evbuffer_get_length(in), n, used = 0, bl;
    const char *b;
    char *buf;

    if (len == 0)
        return 0;
    if (grace__buffered_out(c) > (size_t)OPT(srv, OUTPUT_HIGH_WATER) || h->file_left) {
        /* the client does not read its responses: stop taking requests.
         * The header deadline waits too (write-timeout guards the output).
         * A file body read as it goes must leave before the next response. */
        h->read_paused = 1;
        return 0;
    }
    n = len < head_max(srv) ? len : head_max(srv);
    buf = (char *)evbuffer_pullup(in, (ev_ssize_t)n);
    if (!buf)
        return 0;
    /* no new line since the last attempt, and no limit reached: wait */
    if (h->st.head.seen && n < h->st.head.window &&
        !memchr(buf + h->st.head.seen, '\n', n - h->st.head.seen)) {
        h->st.head.seen = n;
        return 0;
    }
    grace_parser_reset(&h->parser);
    enum grace_pev ev = grace_parser_execute(&h->parser, buf, n, &used, &b, &bl);
    switch (ev) {
    case GRACE_PEV_AGAIN:
        if (used) { /* blank lines before a request line */
            evbuffer_drain(in, used);
            h->st.head.seen = 0;
            return 1;
        }
        h->st.head.seen = n;
        h->st.head.window = h->parser.window;
        return 0;
    case GRACE_PEV_HEADERS: {
        struct grace_request *req = grace__request_new(
            c, &h1_req_ops, &h->parser, buf + used - h->parser.req.header_bytes, h->start_us);
        if (!req) {
            fail_with(c, NULL, 503, "out of memory");
            return 1;
        }
        evbuffer_drain(in, used);
        h->req = req;
        h->state = H1_BODY;
        h->st.body_since = grace__now_ms();
        CNT(srv, REQUESTS);
        srv->up.dispatch(req);
        return 1;
    }
    default: {
        enum grace_perr e = h->parser.err;
        fail_with(c, NULL, grace_perr_status(e), grace_perr_str(e));
        return 1;
    }
    }
}

static void deliver_end(struct grace_request *req)
{
    if (req->end_delivered || (req->body_mode != BODY_STREAM && req->body_mode != BODY_COLLECT &&
                               req->body_mode != BODY_FD))
        return;
    req->end_delivered = 1;
    if (req->body_mode != BODY_COLLECT) {
        if (req->on_end)
            req->on_end(req, req->body_arg);
    } else {
        req->on_body(req, req->body, req->body_arg);
    }
}

/* Hand a body piece to the application. The piece points into the input
 * buffer, which must outlive the call: a reply or close inside it only
 * marks the input for discarding (grace__conn_discard_input). */
static void deliver_piece(struct grace_conn *c, struct grace_request *req, const char *b,
                          size_t bl, size_t used)
{
    c->delivering = 1;
    req->on_data(req, b, bl, req->body_arg);
    c->delivering = 0;
    evbuffer_drain(c->slot->in, used);
    if (c->discard_after) {
        c->discard_after = 0;
        grace__conn_discard_input(c);
    }
}

/* Body phase of a body moved into the application's fd (splice.c): what
 * was buffered with the headers goes first. */
static int pump_body_fd(struct grace_conn *c, struct grace_request *req)
{
    struct h1 *h = h1_of(c);
    uint64_t moved = 0;
    int rc = grace__splice_buffered(&h->sp, c->slot->in, grace_parser_body_left(&h->parser),
                                    &moved);

    splice_moved(h, moved);
    if (rc < 0) {
        int full = rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG;
        body_fail(c, full ? 507 : 500, "could not store the request body", rc);
        return 1;
    }
    if (grace_parser_body_done(&h->parser)) {
        req->body_done = 1;
        deliver_end(req);
        return 1;
    }
    if (c->peer_eof) /* the body will never be complete */
        body_fail(c, 400, "request body incomplete", -ECONNRESET);
    return 0;
}

/* Body phase, in H1_BODY (for the application) or H1_DRAIN (discarding). */
static int pump_body(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    struct h1 *h = h1_of(c);
    struct evbuffer *in = c->slot->in;
    struct grace_request *req = h->req;

    if (h->state == H1_BODY) {
        if (req->paused) /* nothing, not even the end, until resumed */
            return 0;
        if (req->body_done) {
            deliver_end(req);
            return 0;
        }
        if (!grace_parser_body_done(&h->parser) && req->body_mode == BODY_NONE)
            return 0;
        if (req->body_mode == BODY_FD)
            return pump_body_fd(c, req);
    }
    for (;;) {
        struct evbuffer_iovec v = {NULL, 0};
        size_t len = evbuffer_get_length(in), used = 0, bl = 0;
        const char *b = NULL;

        if (len)
            evbuffer_peek(in, -1, NULL, &v, 1);
        enum grace_pev ev = grace_parser_execute(&h->parser, v.iov_base, v.iov_len, &used, &b, &bl);
        if (ev == GRACE_PEV_AGAIN) {
            if (used) {
                evbuffer_drain(in, used);
                continue;
            }
            if (v.iov_len < len) { /* a chunk line spans buffers: join them */
                size_t want =
                    v.iov_len + GRACE_PARSER_CHUNK_LINE_MAX + srv->plim.max_trailer_bytes;
                evbuffer_pullup(in, (ev_ssize_t)(want < len ? want : len));
                continue;
            }
            if (c->peer_eof) { /* the body will never be complete */
                if (h->state == H1_DRAIN)
                    grace__conn_close_graceful(c);
                else
                    body_fail(c, 400, "request body incomplete", -ECONNRESET);
                return 0;
            }
            return 0;
        }
        if (ev == GRACE_PEV_BODY) {
            if (h->state == H1_DRAIN) {
                evbuffer_drain(in, used);
                srv->cnt[GRACE_CNT_BYTES_DISCARDED] += bl;
                h->st.drain.bytes += bl;
                if (h->st.drain.bytes > (uint64_t)OPT(srv, DRAIN_LIMIT)) {
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
            deliver_piece(c, req, b, bl, used);
            if (h1_state(c) != H1_BODY || h->req != req || req->paused)
                return 1;
            continue;
        }
        if (ev == GRACE_PEV_TRAILER) { /* kept for the application, not when draining */
            const struct grace_hfield *f = &h->parser.trailer;
            int rc = h->state == H1_DRAIN ? 0
                     : grace__trailers_add(&req->trailers, b + f->name.off, f->name.len,
                                           b + f->value.off, f->value.len);
            evbuffer_drain(in, used);
            if (rc == -ENOMEM) {
                body_fail(c, 503, "out of memory", -ENOMEM);
                return 1;
            }
            continue;
        }
        if (ev == GRACE_PEV_DONE) {
            if (h->state == H1_DRAIN) {
                CNT(srv, KEEPALIVE_DRAINS);
                to_idle(c);
                return 1;
            }
            req->body_done = 1;
            deliver_end(req);
            return 1;
        }
        /* GRACE_PEV_ERROR: a malformed chunked body */
        if (h->state == H1_DRAIN) {
            grace__conn_close_graceful(c);
        } else {
            enum grace_perr e = h->parser.err;
            body_fail(c, grace_perr_status(e), grace_perr_str(e), -EPROTO);
        }
        return 1;
    }
}

/* ---------------------------------------------------------------- the request's ops */

#define PUT(buf, n, lit) (memcpy((buf) + (n), lit, sizeof(lit) - 1), (n) += sizeof(lit) - 1)

/* Decimal digits of v into out (no NUL); returns their count. */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/*
 * Status line and headers; content_length < 0: streamed (chunked, or
 * close-delimited for HTTP/1.0). Here the connection's fate is decided:
 * Connection: close goes out whenever the connection cannot be reused
 * (see body_drainable()).
 */
static int h1_send_head(struct grace_request *req, int status, int64_t content_length)
{
    struct grace_conn *c = req->conn;
    struct grace_server *srv = c->srv;
    struct evbuffer *out = c->slot->out;
    char head[512];
    size_t n, dl, extra = req->resp_headers ? evbuffer_get_length(req->resp_headers) : 0;
    /* a client that has half-closed gets answers to every complete request
     * it sent; the last one closes */
    int close = !req->p.keep_alive || srv->stopping || c->stop_close || req->want_close ||
                (c->peer_eof && !evbuffer_get_length(c->slot->in)) ||
                !body_drainable(c, req) || grace__request_upgrade_refused(req);

    if (content_length < 0 && !grace__no_body_status(status)) {
        if (req->p.version_minor == 1)
            req->chunked_out = !req->head;
        else
            close = req->close_delimited = 1;
    }
    req->close_after = close;
    req->status = status;

    /* formatted by hand: this runs once per response */
    n = 0;
    PUT(head, n, "HTTP/1.1 ");
    n += fmt_u64(head + n, (uint64_t)status);
    head[n++] = ' ';
    const char *reason = grace_status_reason(status);
    size_t rl = strlen(reason);
    memcpy(head + n, reason, rl);
    n += rl;
    PUT(head, n, "\r\n");
    grace__date_header(&srv->date, head + n, &dl);
    n += dl;
    if (grace__no_body_status(status)) {
        /* no framing header at all */
    } else if (content_length >= 0) {
        PUT(head, n, "Content-Length: ");
        n += fmt_u64(head + n, (uint64_t)content_length);
        PUT(head, n, "\r\n");
    } else if (req->p.version_minor == 1) {
        PUT(head, n, "Transfer-Encoding: chunked\r\n");
    }
    if (close)
        PUT(head, n, "Connection: close\r\n");
    else if (req->p.version_minor == 0)
        PUT(head, n, "Connection: keep-alive\r\n");
    if (srv->on_response) /* reports on: a record of it */
        grace__report_start(&h1_of(c)->reports, c, req, status, req->start_us,
                            grace__conn_out_offset(c), n + extra + 2);
    if (req->resp_headers) {
        evbuffer_add(out, head, n);
        evbuffer_add_buffer(out, req->resp_headers);
        evbuffer_add(out, "\r\n", 2);
    } else {
        memcpy(head + n, "\r\n", 2);
        evbuffer_add(out, head, n + 2);
    }
    if (content_length < 0) /* streamed: the head goes now */
        grace__conn_flush(c);
    return 0;
}

static int h1_send_data(struct grace_request *req, const char *data, size_t len,
                        struct evbuffer *move)
{
    struct grace_conn *c = req->conn;
    struct evbuffer *out = c->slot->out;

    if (req->chunked_out) {
        char line[24];
        int n = snprintf(line, sizeof(line), "%zx\r\n", len);
        evbuffer_add(out, line, (size_t)n);
    }
    if (move)
        evbuffer_add_buffer(out, move);
    else
        evbuffer_add(out, data, len);
    if (req->chunked_out)
        evbuffer_add(out, "\r\n", 2);
    if (req->resp == RESP_STREAMING) /* a whole reply goes out at its end */
        grace__conn_flush(c);
    return 0;
}

/* Queue length bytes of fd to be read as they are sent: sendfile(), or
 * pread() in pieces on a transport without it (TLS). Owns fd. A file that
 * ends early is found by the write path: -EPIPE, write_errors, the close. */
static int add_file_segment(struct grace_conn *c, int fd, off_t offset, off_t length)
{
    if (!c->tp->raw)
        return file_queue(c, fd, offset, length);
    return evbuffer_add_file(c->slot->out, fd, offset, length);
}

/*
 * Queue length bytes of fd. Small files are read into the buffer, so
 * headers and body leave in one write and one TCP segment; larger ones go
 * out as file segments (the evbuffer then owns fd). A small file that turns
 * out shorter than length is not cut here: what was read is queued and the
 * rest becomes a file segment, so that the write path ends it exactly as it
 * ends a big one (the same report, counter and close reason).
 */
#define SMALL_FILE 32768
static int add_file(struct grace_conn *c, int fd, off_t offset, off_t length)
{
    struct evbuffer *out = c->slot->out;
    if (length <= SMALL_FILE) {
        struct evbuffer_iovec v;
        ssize_t n = -1;
        if (evbuffer_reserve_space(out, length, &v, 1) == 1) {
            do
                n = pread(fd, v.iov_base, (size_t)length, offset);
            while (n < 0 && errno == EINTR);
            v.iov_len = n > 0 ? (size_t)n : 0;
            evbuffer_commit_space(out, &v, 1);
        }
        if (n == length) {
            close(fd);
            return 0;
        }
        if (n < 0)
            n = 0;
        return add_file_segment(c, fd, offset + n, length - n);
    }
    return add_file_segment(c, fd, offset, length);
}

static int h1_send_file(struct grace_request *req, int fd, off_t offset, off_t length)
{
    struct grace_conn *c = req->conn;
    int rc = add_file(c, fd, offset, length);

    if (rc < 0)
        c->stop_close = 1; /* the body is short: the client must see a close */
    return rc;
}

/* "name: value" lines of checked fields (name, value pairs), then the
 * empty line that ends their section. */
static void add_fields(struct evbuffer *out, const char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(out, "%s: %s\r\n", fields[2 * i], fields[2 * i + 1]);
    evbuffer_add(out, "\r\n", 2);
}

/* The last chunk and its trailer section; a body without chunks (HTTP/1.0's
 * close-delimited one) has no place for trailers. */
static int h1_req_end(struct grace_request *req, const char *const *trailers, size_t ntrailers)
{
    struct grace_conn *c = req->conn;
    int rc = 0;

    if (req->chunked_out) {
        evbuffer_add(c->slot->out, "0\r\n", 3);
        add_fields(c->slot->out, trailers, ntrailers);
    } else if (ntrailers) {
        rc = 1; /* complete, without them */
    }
    if (req->report)
        grace__report_done(&h1_of(c)->reports, req, grace__conn_out_offset(c));
    grace__conn_flush(c);
    response_done(c);
    return rc;
}

static int h1_informational(struct grace_request *req, int status, const char *const *fields,
                            size_t nfields)
{
    struct grace_conn *c = req->conn;
    struct evbuffer *out = c->slot->out;

    if (req->p.version_minor == 0) /* RFC 9110 15.2: never to an HTTP/1.0 client */
        return -EPROTONOSUPPORT;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, grace_status_reason(status));
    add_fields(out, fields, nfields);
    grace__conn_flush(c);
    return 0;
}

/* The switch: 101 Switching Protocols (or a 2xx to CONNECT), then the
 * connection is a raw stream's (stream.c) from the request's end on. */
static int h1_upgrade(struct grace_request *req, int status, struct grace_stream **stream)
{
    struct grace_conn *c = req->conn;
    struct grace_stream *st;
    int connect = req->p.method_id == GRACE_PM_CONNECT;
    char head[512];
    size_t n, dl, extra;

    /* the stream starts where the request ends */
    if (!body_complete(c, req))
        return -EBUSY;
    if (c->srv->stopping || c->stop_close)
        return -ESHUTDOWN;
    extra = req->resp_headers ? evbuffer_get_length(req->resp_headers) : 0;
    if (!(st = grace__stream_new()))
        return -ENOMEM;

    n = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", status,
                         grace_status_reason(status));
    grace__date_header(&c->srv->date, head + n, &dl);
    n += dl;
    if (!connect)
        n += (size_t)snprintf(head + n, sizeof(head) - n, "Connection: Upgrade\r\n");
    req->status = status;
    grace__report_start(&h1_of(c)->reports, c, req, status, req->start_us,
                        grace__conn_out_offset(c), n + extra + 2);
    evbuffer_add(c->slot->out, head, n);
    if (req->resp_headers)
        evbuffer_add_buffer(c->slot->out, req->resp_headers);
    evbuffer_add(c->slot->out, "\r\n", 2);
    req->resp = RESP_DONE;
    grace__report_done(&h1_of(c)->reports, req, grace__conn_out_offset(c));

    h1_of(c)->req = NULL; /* HTTP/1.1 lets go: the connection is the stream's */
    grace__splice_close(&h1_of(c)->sp);
    grace__stream_attach(c, st, &h1_of(c)->reports);
    CNT(c->srv, UPGRADES);
    grace__request_done(req);
    *stream = st;
    grace__conn_flush(c);
    return 0;
}

static void h1_body_resume(struct grace_request *req)
{
    body_wait(req->conn);
    grace__conn_schedule(req->conn);
}

/* A Content-Length body on a transport that can splice goes straight into
 * fd (splice.c); TLS, chunked or no body cannot. */
static int h1_body_to_fd(struct grace_request *req, int fd)
{
    struct grace_conn *c = req->conn;
    int rc;

    if (!c->tp->splice || req->p.framing != GRACE_FRAMING_LENGTH || req->p.content_length == 0)
        return -ENOTSUP;
    if (req->p.content_length > req->body_limit)
        return -EMSGSIZE;
    if ((rc = grace__splice_open(&h1_of(c)->sp, fd)) < 0)
        return rc;
    req->body_mode = BODY_FD;
    return h1_body_start(req);
}

static size_t h1_pending(const struct grace_request *req)
{
    return grace__buffered_out(req->conn);
}

static void h1_drain_check(struct grace_request *req)
{
    drain_check(req->conn);
}

/* The server refuses req after its handler (a Content-Length over the
 * limit the handler left in place). */
static void h1_fail(struct grace_request *req, int status, const char *msg, int err)
{
    body_fail(req->conn, status, msg, err);
}

static const struct grace_req_ops h1_req_ops = {
    .body_start = h1_body_start,
    .body_resume = h1_body_resume,
    .body_to_fd = h1_body_to_fd,
    .informational = h1_informational,
    .send_head = h1_send_head,
    .send_data = h1_send_data,
    .send_file = h1_send_file,
    .end = h1_req_end,
    .upgrade = h1_upgrade,
    .pending = h1_pending,
    .drain_check = h1_drain_check,
    .fail = h1_fail,
};

/* ---------------------------------------------------------------- the table */

/* Parse and deliver what is buffered, request after request, until it
 * waits, closes or hands the connection over. */
static void h1_input(struct grace_conn *c)
{
    int more = 1;
    while (more) {
        switch (h1_state(c)) {
        case H1_IDLE:
            more = buffered_in(c) > 0;
            if (more)
                to_head(c);
            break;
        case H1_HEAD:
            more = pump_head(c);
            break;
        case H1_BODY:
        case H1_DRAIN:
            more = pump_body(c);
            break;
        default:
            more = 0;
        }
    }
}

/*
 * The pump's output is flushed. Paused for output that has gone out
 * meanwhile: take requests again (1: input once more). Else a due drain
 * callback runs, and a client that has sent all it will is closed between
 * requests.
 */
static int pumped(struct grace_conn *c)
{
    struct h1 *h = h1_of(c);

    if (h->read_paused && !grace__buffered_out(c)) {
        h->read_paused = 0;
        if (h1_state(c) == H1_HEAD) /* the header deadline waited: a new period */
            h->st.head.deadline = grace__now_ms() + OPT(c->srv, HEADER_TIMEOUT);
        return 1;
    }
    if (h->req && h->req->on_drain) {
        drain_fire(c);
        if (c->state == CS_DEAD)
            return 0;
    }
    if (c->peer_eof && !h->read_paused && h1_state(c) <= H1_HEAD)
        grace__conn_close_idle(c);
    return 0;
}

static int h1_output(struct grace_conn *c, enum grace_out what)
{
    struct h1 *h = h1_of(c);

    switch (what) {
    case GRACE_OUT_ROOM:
        return h->file_left ? file_refill(c, h) : 0;
    case GRACE_OUT_SENT:
        if (h->reports.head) {
            grace__report_written(&h->reports, c->slot->written);
            if (c->state == CS_DEAD) /* a report callback dropped it */
                return 0;
        }
        if (h->req && h->req->on_drain)
            drain_check(c);
        return 0;
    case GRACE_OUT_EMPTY: /* takes requests again: see pumped() */
        if (h->read_paused && !c->pumping)
            grace__conn_schedule(c);
        return 0;
    case GRACE_OUT_FLUSHED:
        return pumped(c);
    }
    return 0;
}

/* Room for input: none while paused for output; a body moved straight into
 * a file takes what the socket has; else up to the input bound. */
static size_t h1_room(const struct grace_conn *c)
{
    const struct h1 *h = h1_of(c);
    size_t len, max;

    if (h->read_paused)
        return 0;
    if (h->req && h->req->body_mode == BODY_FD && h1_state(c) == H1_BODY && splice_active(c, h))
        return h->req->paused ? 0 : SIZE_MAX;
    len = buffered_in(c);
    max = grace__input_max(c->srv);
    return len < max ? max - len : 0;
}

/* The socket is readable while a body goes straight into a file: splice. */
static int h1_read(struct grace_conn *c)
{
    struct h1 *h = h1_of(c);
    uint64_t moved = 0;
    int rc;

    if (!h->req || h->req->body_mode != BODY_FD || h1_state(c) != H1_BODY ||
        !splice_active(c, h))
        return -ENOTSUP; /* the common case: the engine reads */
    if (h->req->paused)
        return 0;
    rc = grace__splice_read(&h->sp, c->tp, &c->sock, grace_parser_body_left(&h->parser),
                            &moved);
    splice_moved(h, moved); /* progress for body-timeout */
    return rc;
}

/* One of HTTP/1.1's deadlines passed. */
static void h1_timeout(struct grace_conn *c, enum grace_counter why)
{
    if (why == GRACE_CNT_BODY_TOO_SLOW && body_rate_kept(c))
        return; /* a new window: leave() arms the timer for it */
    grace__conn_timed_out(c, why);
    switch (why) {
    case GRACE_CNT_TIMEOUT_HEADER:
        if (buffered_in(c))
            fail_with(c, NULL, 408, "request header timeout");
        else
            grace__conn_close_idle(c);
        break;
    case GRACE_CNT_TIMEOUT_BODY:
        body_fail(c, 408, "request body timeout", -ETIMEDOUT);
        break;
    case GRACE_CNT_BODY_TOO_SLOW:
        body_fail(c, 408, "request body too slow", -ETIMEDOUT);
        break;
    case GRACE_CNT_TIMEOUT_REQUEST:
        request_deadline(c);
        break;
    default: /* drain-time */
        grace__conn_close_graceful(c);
    }
}

/*
 * The stop deadline has passed. A request whose reply has not started is
 * answered 503 with Connection: close, then the graceful close (bounded by
 * stop-linger-time): the client, maybe still sending a body, reads why
 * instead of a reset. A reply that has started is cut short, as is output
 * still waiting for a slow reader; a connection without a request closes.
 */
static void stop_cut(struct grace_conn *c)
{
    static const char msg[] = "server shutting down";
    enum h1_state state = h1_state(c);
    struct grace_request *req = h1_of(c)->req;

    if (state == H1_BODY && req && req->resp == RESP_NONE) {
        CNT(c->srv, STOP_DEADLINE);
        grace__conn_reason(c, -ESHUTDOWN);
        body_fail(c, 503, msg, -ESHUTDOWN);
    } else if (state == H1_HEAD && buffered_in(c)) { /* a request half sent */
        CNT(c->srv, STOP_DEADLINE);
        grace__conn_reason(c, -ESHUTDOWN);
        fail_with(c, NULL, 503, msg);
    } else if (state <= H1_HEAD && !grace__buffered_out(c)) {
        CNT(c->srv, STOP_IDLE_CLOSED);
        grace__conn_destroy(c);
    } else if (state == H1_DRAIN && !grace__buffered_out(c)) {
        grace__conn_close_graceful(c); /* its response is out: FIN, then the linger */
    } else {
        if (state == H1_BODY)
            CNT(c->srv, STOP_DEADLINE);
        grace__conn_abort(c, -ECANCELED);
    }
}

/* A drop closes an idle connection now and a busy one after its response
 * (c->stop_close); the lame duck changes nothing here (responses say
 * Connection: close); the stop's deadline cuts. */
static void h1_stop(struct grace_conn *c, enum grace_stop how)
{
    enum h1_state state = h1_state(c);

    if (how == GRACE_STOP_CUT)
        stop_cut(c);
    else if (how == GRACE_STOP_LAME_DUCK)
        return;
    else if (state <= H1_HEAD && !buffered_in(c))
        grace__conn_close_idle(c);
    else if (state == H1_DRAIN)
        grace__conn_close_graceful(c);
}

/* HTTP/1.1 leaves the connection: a request in flight is cut off, a file
 * being read goes, the records left are reported (err; 0, all written:
 * the never completed ones -ECONNRESET). The slot outlives a close inside
 * a callback here (busy), so they are reported whatever happened. */
static void h1_end(struct grace_conn *c, int err)
{
    struct h1 *h;

    if (!c->slot)
        return;
    h = h1_of(c);
    if (h->req)
        grace__conn_reason(c, err);
    request_detach(c, err);
    file_close(c, h);
    grace__report_all(&h->reports, c->slot->written, err ? err : -ECONNRESET);
}

/* Body bytes the client still owes, as far as we know (UINT64_MAX:
 * unknown); *upload: a request body is still arriving (known or chunked). */
static uint64_t h1_owed(const struct grace_conn *c, unsigned char *upload)
{
    const struct h1 *h;
    const struct grace_parser *p;
    uint64_t buffered;

    *upload = 0;
    if (!c->slot || (h = h1_of(c))->state == H1_IDLE)
        return 0;
    p = &h->parser;
    buffered = evbuffer_get_length(c->slot->in);
    if (grace_parser_body_done(p))
        return 0;
    if (h->state != H1_BODY && h->state != H1_DRAIN)
        return UINT64_MAX;
    if (p->req.framing == GRACE_FRAMING_CHUNKED) {
        *upload = 1;
        return UINT64_MAX;
    }
    if (p->req.framing != GRACE_FRAMING_LENGTH)
        return UINT64_MAX;
    *upload = p->remaining > buffered;
    return p->remaining > buffered ? p->remaining - buffered : 0;
}

/* Its request holds a stop (grace_request_hold_stop): the reply comes. */
static int h1_held(const struct grace_conn *c)
{
    const struct h1 *h = c->slot ? h1_of(c) : NULL;
    return h && h->req && h->req->hold_stop;
}

const struct grace_proto grace__http1 = {
    .name = "http/1.1",
    .alpn = "http/1.1",
    .slot_size = sizeof(struct h1),
    .input = h1_input,
    .output = h1_output,
    .timeout = h1_timeout,
    .stop = h1_stop,
    .end = h1_end,
    .deadline = h1_deadline,
    .write_timeout = h1_write_timeout,
    .room = h1_room,
    .read = h1_read,
    .owed = h1_owed,
    .held = h1_held,
};
