/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * response.c - the application's replies: whole (memory, an evbuffer, a
 * file), streamed, 1xx, drain callbacks and the switch to a raw stream. It
 * checks the arguments and the request's state, keeps the rules that hold
 * for every protocol (HEAD, 204 and 304 carry no body), and hands the rest
 * to the request's protocol (req->ops): how a head, a body piece or an end
 * is framed is the protocol's business.
 */
#include "request.h"
#include "trailer.h"

#include <errno.h>
#include <event2/buffer.h>
#include <strings.h>
#include <string.h>
#include <unistd.h>

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
    req->resp = RESP_DONE;
    req->ops->end(req, NULL, 0);
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
        req->want_close = 1; /* the protocol's head says it */
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
    req->ops->send_head(req, status, (int64_t)len);
    if (len && !req->head)
        req->ops->send_data(req, buf ? NULL : mem, len, buf);
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
    req->ops->send_head(req, status, grace__no_body_status(status) ? 0 : (int64_t)length);
    if (length > 0 && !req->head && !grace__no_body_status(status)) {
        req->ops->send_file(req, fd, offset, length); /* owns fd */
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
    req->resp = RESP_STREAMING;
    req->ops->send_head(req, status, -1);
    grace__conn_leave(c);
    return 0;
}

int grace_reply_chunk(struct grace_request *req, const char *data, size_t len)
{
    int rc = reply_check(req, RESP_STREAMING, 0);
    struct grace_conn *c;
    if (rc)
        return rc;
    if (len && !data)
        return -EINVAL;
    if (len == 0 || req->head || grace__no_body_status(req->status))
        return 0;
    c = req->conn;
    grace__conn_enter(c);
    req->ops->send_data(req, data, len, NULL);
    grace__conn_leave(c);
    return 0;
}

int grace_reply_end(struct grace_request *req)
{
    return grace_reply_end_trailers(req, NULL, 0);
}

/* Fields are checked before anything changes: a refused call leaves the
 * reply streaming. A message without content (HEAD, 204, 304) has no
 * place for trailers in any protocol; the rest is the framing's to say. */
int grace_reply_end_trailers(struct grace_request *req, const char *const *fields,
                             size_t nfields)
{
    int rc = reply_check(req, RESP_STREAMING, 1);
    struct grace_conn *c;
    if (rc)
        return rc;
    if (nfields && !fields)
        return -EINVAL;
    for (size_t i = 0; i < nfields; i++)
        if (!grace__trailer_field_ok(fields[2 * i], fields[2 * i + 1]))
            return -EINVAL;
    if (nfields && (req->head || grace__no_body_status(req->status))) {
        nfields = 0; /* the reply ends without them */
        rc = 1;
    }
    c = req->conn;
    grace__conn_enter(c);
    req->resp = RESP_DONE;
    if (req->ops->end(req, fields, nfields) == 1)
        rc = 1;
    grace__conn_leave(c);
    return rc;
}

size_t grace_reply_pending(const struct grace_request *req)
{
    return req->conn ? req->ops->pending(req) : 0;
}

int grace_reply_on_drain(struct grace_request *req, grace_drain_cb cb, void *arg)
{
    int rc = grace__request_open(req);
    if (rc < 0)
        return rc;
    req->on_drain = cb;
    req->drain_arg = arg;
    req->ops->drain_check(req);
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

    if (rc)
        return rc;
    /* 100 belongs to read_body(), 101 to protocol upgrades */
    if (status < 102 || status > 199 || (nfields && !fields))
        return -EINVAL;
    for (size_t i = 0; i < nfields; i++)
        if (!interim_field_ok(fields[2 * i], fields[2 * i + 1]))
            return -EINVAL;
    c = req->conn;
    grace__conn_enter(c);
    rc = req->ops->informational(req, status, fields, nfields);
    grace__conn_leave(c);
    return rc;
}

int grace_reply_upgrade(struct grace_request *req, int status, struct grace_stream **stream)
{
    struct grace_conn *c;
    int connect;

    if (!req || !stream)
        return -EINVAL;
    *stream = NULL;
    if (req->detached) { /* completes the reply: the application is done with it */
        grace__request_release(req);
        return -ENOTCONN;
    }
    if (req->resp != RESP_NONE)
        return -EALREADY;
    connect = req->p.method_id == GRACE_PM_CONNECT;
    if (connect ? status < 200 || status > 299
                : status != 101 || !grace__request_asks_upgrade(req))
        return -EINVAL;
    if (!req->ops->upgrade)
        return -ENOTSUP;
    c = req->conn;
    grace__conn_enter(c);
    int rc = req->ops->upgrade(req, status, stream);
    grace__conn_leave(c);
    return rc;
}
