/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * response.c - writing responses: status line and headers, bodies from
 * memory, evbuffers or files, and streamed (chunked / close-delimited).
 */
#include "internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
 * Write status line and headers. content_length < 0 means streamed. Here
 * the connection's fate is decided: Connection: close goes out whenever the
 * connection cannot be reused (see grace__body_drainable()).
 */
static void write_head(struct grace_request *req, int status, int64_t content_length)
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
                !grace__body_drainable(c, req) || grace__request_upgrade_refused(req);

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
    grace__report_start(&c->slot->reports, c, req, status, req->start_us,
                        grace__conn_out_offset(c), n + extra + 2);
    if (req->resp_headers) {
        evbuffer_add(out, head, n);
        evbuffer_add_buffer(out, req->resp_headers);
        evbuffer_add(out, "\r\n", 2);
    } else {
        memcpy(head + n, "\r\n", 2);
        evbuffer_add(out, head, n + 2);
    }
}

/* Checks shared by every reply function. 0: go on; else the return value. */
static int reply_check(struct grace_request *req, enum resp_state want, int completes)
{
    if (!req)
        return -EINVAL;
    if (req->detached) {
        if (completes) /* the application is done with it */
            grace__request_release(req);
        return -ENOTCONN;
    }
    if (req->resp != want)
        return -EALREADY;
    return 0;
}

static void reply_done(struct grace_request *req)
{
    struct grace_conn *c = req->conn;
    req->resp = RESP_DONE;
    grace__report_done(&c->slot->reports, req, grace__conn_out_offset(c));
    grace__conn_flush(c);
    grace__conn_response_done(c);
}

int grace_response_add_header(struct grace_request *req, const char *name, const char *value)
{
    int rc = reply_check(req, RESP_NONE, 0);
    if (rc)
        return rc;
    if (!name || !value || strpbrk(name, ":\r\n ") || strpbrk(value, "\r\n") || !*name)
        return -EINVAL;
    /* the framing is the server's: two framings would let a proxy in front
     * and the client disagree on where the response ends */
    if (!strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding"))
        return -EINVAL;
    if (!strcasecmp(name, "Connection")) {
        if (strcasecmp(value, "close"))
            return -EINVAL;
        req->want_close = 1; /* write_head() sends it */
        return 0;
    }
    if (!req->resp_headers && !(req->resp_headers = evbuffer_new()))
        return -ENOMEM;
    size_t nl = strlen(name), vl = strlen(value);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(req->resp_headers, (ev_ssize_t)(nl + vl + 4), &v, 1) < 1)
        return -ENOMEM;
    char *p = v.iov_base;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    v.iov_len = nl + vl + 4;
    return evbuffer_commit_space(req->resp_headers, &v, 1) < 0 ? -ENOMEM : 0;
}

/* The reply of a request another protocol carries (req->ops: h2): head,
 * body, end; HEAD and the no-body statuses send no body, as below. */
static void ops_whole(struct grace_request *req, int status, const char *mem, size_t len,
                      struct evbuffer *buf)
{
    req->status = status;
    req->ops->send_head(req, status, (int64_t)len);
    if (len && !req->head)
        req->ops->send_data(req, mem, len, buf);
    if (buf)
        evbuffer_drain(buf, evbuffer_get_length(buf));
    req->resp = RESP_DONE;
    req->ops->end(req);
}

/* A complete reply whose body is either memory (copied) or an evbuffer (moved). */
static int reply_whole(struct grace_request *req, int status, const char *mem, size_t len,
                       struct evbuffer *buf)
{
    int rc = reply_check(req, RESP_NONE, 1);
    struct grace_conn *c;
    if (rc)
        return rc;
    if (status < 200 || status > 999 || (len && !mem && !buf))
        return -EINVAL;
    c = req->conn;
    grace__conn_enter(c);
    if (grace__no_body_status(status))
        len = 0;
    if (req->ops) {
        ops_whole(req, status, mem, len, buf);
        grace__conn_leave(c);
        return 0;
    }
    write_head(req, status, (int64_t)len);
    if (len && !req->head) {
        struct evbuffer *out = c->slot->out;
        if (buf)
            evbuffer_add_buffer(out, buf);
        else
            evbuffer_add(out, mem, len);
    }
    if (buf) /* moved or, without a body to send, dropped */
        evbuffer_drain(buf, evbuffer_get_length(buf));
    reply_done(req);
    grace__conn_leave(c);
    return 0;
}

int grace_reply(struct grace_request *req, int status, const char *body, size_t len)
{
    return reply_whole(req, status, body, len, NULL);
}

int grace_reply_buffer(struct grace_request *req, int status, struct evbuffer *body)
{
    return reply_whole(req, status, NULL, body ? evbuffer_get_length(body) : 0, body);
}

/* Queue length bytes of fd to be read as they are sent: sendfile(), or
 * pread() in pieces on a transport without it (TLS). Owns fd. A file that
 * ends early is found by the write path: -EPIPE, write_errors, the close. */
static int add_file_segment(struct grace_conn *c, int fd, off_t offset, off_t length)
{
    if (!c->tp->raw)
        return grace__conn_send_file(c, fd, offset, length);
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

int grace_reply_file(struct grace_request *req, int status, int fd, off_t offset, off_t length)
{
    int rc = reply_check(req, RESP_NONE, 1);
    struct grace_conn *c;
    if (rc || status < 200 || status > 999 || fd < 0 || offset < 0 || length < 0) {
        if (fd >= 0)
            close(fd);
        return rc ? rc : -EINVAL;
    }
    c = req->conn;
    grace__conn_enter(c);
    if (req->ops) {
        int body = length > 0 && !req->head && !grace__no_body_status(status);
        req->status = status;
        req->ops->send_head(req, status, grace__no_body_status(status) ? 0 : (int64_t)length);
        if (body)
            req->ops->send_file(req, fd, offset, length);
        else
            close(fd);
        req->resp = RESP_DONE;
        req->ops->end(req);
        grace__conn_leave(c);
        return 0;
    }
    write_head(req, status, grace__no_body_status(status) ? 0 : (int64_t)length);
    if (length > 0 && !req->head && !grace__no_body_status(status)) {
        if (add_file(c, fd, offset, length) < 0)
            c->stop_close = 1; /* the body is short: the client must see a close */
    } else {
        close(fd);
    }
    reply_done(req);
    grace__conn_leave(c);
    return 0;
}

int grace_reply_start(struct grace_request *req, int status)
{
    int rc = reply_check(req, RESP_NONE, 0);
    struct grace_conn *c;
    if (rc)
        return rc;
    if (status < 200 || status > 999)
        return -EINVAL;
    c = req->conn;
    grace__conn_enter(c);
    if (req->ops) {
        req->status = status;
        req->ops->send_head(req, status, -1);
        req->resp = RESP_STREAMING;
        grace__conn_leave(c);
        return 0;
    }
    write_head(req, status, -1);
    req->resp = RESP_STREAMING;
    grace__conn_flush(c);
    grace__conn_leave(c);
    return 0;
}

int grace_reply_chunk(struct grace_request *req, const char *data, size_t len)
{
    int rc = reply_check(req, RESP_STREAMING, 0);
    struct grace_conn *c;
    struct evbuffer *out;
    if (rc)
        return rc;
    if (len && !data)
        return -EINVAL;
    if (len == 0 || req->head || grace__no_body_status(req->status))
        return 0;
    c = req->conn;
    if (req->ops) {
        grace__conn_enter(c);
        rc = req->ops->send_data(req, data, len, NULL);
        grace__conn_leave(c);
        return rc;
    }
    out = c->slot->out;
    grace__conn_enter(c);
    if (req->chunked_out) {
        char line[24];
        int n = snprintf(line, sizeof(line), "%zx\r\n", len);
        evbuffer_add(out, line, (size_t)n);
        evbuffer_add(out, data, len);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, data, len);
    }
    grace__conn_flush(c);
    grace__conn_leave(c);
    return 0;
}

int grace_reply_end(struct grace_request *req)
{
    int rc = reply_check(req, RESP_STREAMING, 1);
    struct grace_conn *c;
    if (rc)
        return rc;
    c = req->conn;
    grace__conn_enter(c);
    if (req->ops) {
        req->resp = RESP_DONE;
        req->ops->end(req);
        grace__conn_leave(c);
        return 0;
    }
    if (req->chunked_out)
        evbuffer_add(c->slot->out, "0\r\n\r\n", 5);
    reply_done(req);
    grace__conn_leave(c);
    return 0;
}

size_t grace_reply_pending(const struct grace_request *req)
{
    if (req->conn && req->ops)
        return req->ops->pending(req);
    return req->conn ? grace__buffered_out(req->conn) : 0;
}

int grace_reply_on_drain(struct grace_request *req, grace_drain_cb cb, void *arg)
{
    if (!req)
        return -EINVAL;
    if (req->detached)
        return -ENOTCONN;
    if (req->resp == RESP_DONE)
        return -EALREADY;
    req->on_drain = cb;
    req->drain_arg = arg;
    if (req->ops)
        req->ops->drain_check(req);
    else
        grace__conn_drain_check(req->conn);
    return 0;
}

/* A field of an interim response: the rules of grace_response_add_header(),
 * and no framing or Connection field at all (a 1xx has no body). */
static int interim_field_ok(const char *name, const char *value)
{
    return name && value && *name && !strpbrk(name, ":\r\n ") && !strpbrk(value, "\r\n") &&
           strcasecmp(name, "Content-Length") && strcasecmp(name, "Transfer-Encoding") &&
           strcasecmp(name, "Connection");
}

int grace_reply_informational(struct grace_request *req, int status, const char *const *fields,
                              size_t nfields)
{
    int rc = reply_check(req, RESP_NONE, 0);
    struct grace_conn *c;
    struct evbuffer *out;

    if (rc)
        return rc;
    /* 100 belongs to read_body(), 101 to protocol upgrades */
    if (status < 102 || status > 199 || (nfields && !fields))
        return -EINVAL;
    for (size_t i = 0; i < nfields; i++)
        if (!interim_field_ok(fields[2 * i], fields[2 * i + 1]))
            return -EINVAL;
    c = req->conn;
    if (req->ops) {
        grace__conn_enter(c);
        rc = req->ops->informational(req, status, fields, nfields);
        grace__conn_leave(c);
        return rc;
    }
    if (req->p.version_minor == 0) /* RFC 9110 15.2: never to an HTTP/1.0 client */
        return -EPROTONOSUPPORT;
    out = c->slot->out;
    grace__conn_enter(c);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, grace_status_reason(status));
    for (size_t i = 0; i < nfields; i++)
        evbuffer_add_printf(out, "%s: %s\r\n", fields[2 * i], fields[2 * i + 1]);
    evbuffer_add(out, "\r\n", 2);
    grace__conn_flush(c);
    grace__conn_leave(c);
    return 0;
}

/* An error answered by the server itself; the caller closes afterwards.
 * req: the request it ends, if any (for the report). nosniff: a browser
 * shows it as the text it is, whatever bytes the message holds. */
int grace__reply_error(struct grace_conn *c, struct grace_request *req, int status,
                       const char *msg)
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
    grace__report_start(&c->slot->reports, c, req, status,
                        req ? req->start_us : c->slot->req_start_us, grace__conn_out_offset(c),
                        (size_t)ll + n);
    if (evbuffer_add(out, line, (size_t)ll) < 0 || evbuffer_add(out, head, n) < 0 ||
        evbuffer_add(out, msg, ml) < 0 || evbuffer_add(out, "\n", 1) < 0)
        return -ENOMEM;
    grace__report_done(&c->slot->reports, req, grace__conn_out_offset(c));
    return 0;
}
