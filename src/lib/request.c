/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * request.c - the request object: accessors and the body-reading API.
 *
 * A request is one allocation: the struct, its header fields, a copy of the
 * header block (with NULs written after each string) and the path.
 */
#include "request.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the path starts and how long it is, inside the target. */
static void split_target(const struct grace_preq *p, const char *t, size_t tn, size_t *off,
                         size_t *len)
{
    size_t s = 0, e;
    if (p->form == GRACE_FORM_ABSOLUTE) {
        const char *auth = memchr(t, ':', tn); /* scheme "://" authority */
        const char *slash = memchr(auth + 3, '/', tn - (size_t)(auth + 3 - t));
        s = slash ? (size_t)(slash - t) : tn;
    }
    for (e = s; e < tn && t[e] != '?' && t[e] != '#'; e++)
        ;
    *off = s;
    *len = e - s;
}

struct grace_request *grace__request_new(struct grace_conn *c, const struct grace_req_ops *ops,
                                         const struct grace_parser *parser, const char *src,
                                         int64_t start_us)
{
    const struct grace_preq *p = &parser->req;
    const char *target = src + p->target.off;
    size_t poff, plen, nf = p->nfields, hb = p->header_bytes;
    size_t size = sizeof(struct grace_request) + nf * sizeof(struct grace_hfield) + hb + 1;
    struct grace_request *req;
    char *path;

    split_target(p, target, p->target.len, &poff, &plen);
    size += 2 * (plen + 2); /* the path, and its normalized form */
    req = malloc(size);
    if (!req)
        return NULL;
    memset(req, 0, sizeof(*req));
    req->ops = ops;
    req->conn = c;
    req->srv = c->srv;
    req->p = *p;
    req->fields = (struct grace_hfield *)(req + 1);
    memcpy(req->fields, parser->fields, nf * sizeof(struct grace_hfield));
    req->blk = (char *)(req->fields + nf);
    memcpy(req->blk, src, hb);
    req->blk[hb] = '\0';
    /* every string ends on a separator (SP, ':', OWS or CR): make it a NUL */
    req->blk[p->method.off + p->method.len] = '\0';
    req->blk[p->target.off + p->target.len] = '\0';
    for (size_t i = 0; i < nf; i++) {
        req->blk[req->fields[i].name.off + req->fields[i].name.len] = '\0';
        req->blk[req->fields[i].value.off + req->fields[i].value.len] = '\0';
    }
    path = req->blk + hb + 1;
    if (plen == 0) { /* absolute-form without a path, or "*" */
        path[0] = p->form == GRACE_FORM_ASTERISK ? '*' : '/';
        path[1] = '\0';
    } else {
        memcpy(path, target + poff, plen);
        path[plen] = '\0';
    }
    req->path = path;
    if (p->form == GRACE_FORM_ASTERISK || p->form == GRACE_FORM_AUTHORITY) {
        req->npath = path; /* "*" or CONNECT's host:port: no path to normalize */
    } else {
        size_t rl = strlen(path);
        char *np = path + rl + 1;
        if (grace_path_normalize(path, rl, np, rl + 1) >= 0)
            req->npath = np;
    }
    const char *q = strchr(req->blk + p->target.off, '?');
    req->query = q ? q + 1 : NULL;
    req->head = p->method_id == GRACE_PM_HEAD;
    req->tls_version = grace__conn_tls_version(c);
    req->start_us = start_us;
    req->body_limit = (uint64_t)OPT(c->srv, MAX_BODY_SIZE);
    return req;
}

void grace__request_finish(struct grace_request *req, int err)
{
    if (req->finished)
        return;
    req->finished = 1;
    if (req->on_finish)
        req->on_finish(req, err, req->finish_arg);
}

static void request_free_deferred(struct grace_defer *d);

void grace__request_free(struct grace_request *req)
{
    if (req->detached)
        TAILQ_REMOVE(&req->srv->detached, req, dlink);
    if (req->body)
        evbuffer_free(req->body);
    if (req->resp_headers)
        evbuffer_free(req->resp_headers);
    grace__trailers_free(&req->trailers);
    free(req);
}

static void request_free_deferred(struct grace_defer *d)
{
    grace__request_free((struct grace_request *)((char *)d - offsetof(struct grace_request, defer)));
}

void grace__request_release(struct grace_request *req)
{
    req->app_done = 1;
    if (req->report) /* report.c frees it once the response is reported */
        return;
    if (req->held) { /* grace__request_unhold() releases it */
        req->release_held = 1;
        return;
    }
    req->defer.run = request_free_deferred;
    grace__conn_defer(req->conn, &req->defer); /* later, while its connection is busy */
}

void grace__request_hold(struct grace_request *req)
{
    req->held++;
}

void grace__request_unhold(struct grace_request *req)
{
    if (--req->held == 0 && req->release_held) {
        req->release_held = 0;
        grace__request_release(req);
    }
}

void grace__request_done(struct grace_request *req)
{
    grace__request_finish(req, 0);
    grace__request_release(req);
}

void grace__request_detach(struct grace_request *req, int err)
{
    struct grace_server *srv = req->srv;

    req->conn = NULL;
    req->detached = 1;
    req->on_drain = NULL; /* the finish callback says it instead */
    TAILQ_INSERT_TAIL(&srv->detached, req, dlink);
    if (err == -ECONNRESET)
        CNT(srv, CLIENT_ABORTS);
    grace__request_finish(req, err);
}

/* ---------------------------------------------------------------- accessors */

const char *grace_request_method(const struct grace_request *req)
{
    return req->blk + req->p.method.off;
}

const char *grace_request_target(const struct grace_request *req)
{
    return req->blk + req->p.target.off;
}

const char *grace_request_path(const struct grace_request *req)
{
    return req->path;
}

const char *grace_request_path_decoded(const struct grace_request *req)
{
    return req->npath ? req->npath : req->path;
}

const char *grace_request_query(const struct grace_request *req)
{
    return req->query;
}

int grace_request_version_minor(const struct grace_request *req)
{
    return req->version ? 0 : req->p.version_minor; /* HTTP/2.0 */
}

const char *grace_request_version(const struct grace_request *req)
{
    if (req->version)
        return req->version;
    return req->p.version_minor ? "HTTP/1.1" : "HTTP/1.0";
}

const char *grace_request_header(const struct grace_request *req, const char *name)
{
    for (size_t i = 0; i < req->p.nfields; i++)
        if (!strcasecmp(req->blk + req->fields[i].name.off, name))
            return req->blk + req->fields[i].value.off;
    return NULL;
}

const char *grace_request_header_next(const struct grace_request *req, const char *name,
                                      size_t *pos)
{
    for (size_t i = *pos; i < req->p.nfields; i++)
        if (!strcasecmp(req->blk + req->fields[i].name.off, name)) {
            *pos = i + 1;
            return req->blk + req->fields[i].value.off;
        }
    *pos = req->p.nfields;
    return NULL;
}

size_t grace_request_header_count(const struct grace_request *req)
{
    return req->p.nfields;
}

int grace_request_header_at(const struct grace_request *req, size_t i, const char **name,
                            const char **value)
{
    if (i >= req->p.nfields)
        return -ERANGE;
    *name = req->blk + req->fields[i].name.off;
    *value = req->blk + req->fields[i].value.off;
    return 0;
}

/* Trailers are shown once the body is complete: before, a trailer section
 * may still be arriving, and a half-kept one must not look whole. */
const char *grace_request_trailer(const struct grace_request *req, const char *name)
{
    size_t pos = 0;
    return req->body_done ? grace__trailers_next(&req->trailers, name, &pos) : NULL;
}

const char *grace_request_trailer_next(const struct grace_request *req, const char *name,
                                       size_t *pos)
{
    return req->body_done ? grace__trailers_next(&req->trailers, name, pos) : NULL;
}

size_t grace_request_trailer_count(const struct grace_request *req)
{
    return req->body_done ? req->trailers.n : 0;
}

int grace_request_trailer_at(const struct grace_request *req, size_t i, const char **name,
                             const char **value)
{
    return req->body_done ? grace__trailers_at(&req->trailers, i, name, value) : -ERANGE;
}

const struct sockaddr *grace_request_peer(const struct grace_request *req, socklen_t *len)
{
    /* the peer is kept in the connection; a detached request has none */
    static const struct sockaddr none = {AF_UNSPEC, {0}};
    if (!req->conn) {
        if (len)
            *len = 0;
        return &none;
    }
    if (len)
        *len = req->conn->peer_len;
    return &req->conn->peer.sa;
}

int64_t grace_request_content_length(const struct grace_request *req)
{
    switch (req->p.framing) {
    case GRACE_FRAMING_LENGTH:
        return (int64_t)req->p.content_length;
    case GRACE_FRAMING_CHUNKED:
        return -1;
    default:
        return 0;
    }
}

int grace_request_is_chunked(const struct grace_request *req)
{
    return req->p.framing == GRACE_FRAMING_CHUNKED;
}

struct grace_server *grace_request_server(const struct grace_request *req)
{
    return req->srv;
}

const char *grace_request_tls_version(const struct grace_request *req)
{
    return req ? req->tls_version : NULL;
}

const char *grace_request_tls_sni(const struct grace_request *req)
{
    return req && req->conn ? grace__conn_tls_sni(req->conn) : NULL;
}

void grace_request_on_finish(struct grace_request *req, grace_finish_cb cb, void *arg)
{
    req->on_finish = cb;
    req->finish_arg = arg;
}

/* ---------------------------------------------------------------- upgrade */

int grace__request_asks_upgrade(const struct grace_request *req)
{
    const char *u;
    if (!req->p.upgrade || req->p.version_minor != 1)
        return 0;
    u = grace_request_header(req, "Upgrade");
    return u && *u;
}

int grace_request_is_upgrade(const struct grace_request *req)
{
    return req && (req->p.method_id == GRACE_PM_CONNECT || grace__request_asks_upgrade(req));
}

int grace__request_upgrade_refused(const struct grace_request *req)
{
    return grace_request_is_upgrade(req);
}

/* ---------------------------------------------------------------- limits */

int grace_request_set_max_body(struct grace_request *req, uint64_t bytes)
{
    if (!req)
        return -EINVAL;
    if (!req->conn)
        return -ENOTCONN;
    if (req->body_mode != BODY_NONE || req->body_read)
        return -EALREADY;
    req->body_limit = bytes;
    return 0;
}

/* 0 restores the default; else 1 ms .. 1 day, like the options. */
static int timeout_ok(int64_t ms)
{
    return ms == 0 || (ms >= 1 && ms <= 86400000);
}

int grace_request_set_body_timeout(struct grace_request *req, int64_t ms)
{
    if (!req || !timeout_ok(ms))
        return -EINVAL;
    if (!req->conn)
        return -ENOTCONN;
    req->body_timeout = ms;
    grace__conn_enter(req->conn);
    grace__conn_leave(req->conn); /* an earlier deadline re-arms the timer */
    return 0;
}

int grace_request_set_write_timeout(struct grace_request *req, int64_t ms)
{
    if (!req || !timeout_ok(ms))
        return -EINVAL;
    if (!req->conn)
        return -ENOTCONN;
    req->write_timeout = ms;
    grace__conn_enter(req->conn);
    grace__conn_leave(req->conn);
    return 0;
}

/* ---------------------------------------------------------------- body */

/* Common checks of read_body/collect_body/body_to_fd. A Content-Length
 * over the limit is refused before anything is sent (no 100 Continue): the
 * application answers. */
static int body_check(const struct grace_request *req)
{
    if (!req->conn)
        return -ENOTCONN;
    if (req->body_mode != BODY_NONE || req->resp == RESP_DONE)
        return -EALREADY;
    if (req->p.framing == GRACE_FRAMING_LENGTH && req->p.content_length > req->body_limit)
        return -EMSGSIZE;
    return 0;
}

static int body_begin(struct grace_request *req, enum body_mode mode)
{
    int rc = body_check(req);
    if (rc)
        return rc;
    req->body_mode = mode;
    return req->ops->body_start(req);
}

int grace_request_read_body(struct grace_request *req, grace_data_cb on_data, grace_end_cb on_end,
                            void *arg)
{
    if (!req || !on_data)
        return -EINVAL;
    if (req->body_mode != BODY_NONE)
        return -EALREADY;
    if (req->conn && req->p.framing == GRACE_FRAMING_LENGTH &&
        req->p.content_length > req->body_limit)
        return -EMSGSIZE; /* before the callbacks are kept */
    req->on_data = on_data;
    req->on_end = on_end;
    req->body_arg = arg;
    return body_begin(req, BODY_STREAM);
}

int grace_request_collect_body(struct grace_request *req, size_t limit, grace_body_cb on_body,
                               void *arg)
{
    if (!req || !on_body)
        return -EINVAL;
    if (req->body_mode != BODY_NONE)
        return -EALREADY;
    if (!req->conn)
        return -ENOTCONN;
    if (limit) /* the request's limit, raised or lowered: as set_max_body() */
        req->body_limit = limit;
    if (req->p.framing == GRACE_FRAMING_LENGTH && req->p.content_length > req->body_limit)
        return -EMSGSIZE;
    if (!req->body && !(req->body = evbuffer_new()))
        return -ENOMEM;
    req->on_body = on_body;
    req->body_arg = arg;
    return body_begin(req, BODY_COLLECT);
}

void grace_request_pause(struct grace_request *req)
{
    req->paused = 1;
}

void grace_request_resume(struct grace_request *req)
{
    if (!req->paused)
        return;
    req->paused = 0;
    if (req->conn)
        req->ops->body_resume(req); /* body-timeout waited while paused */
}

int grace_request_body_to_fd(struct grace_request *req, int fd, grace_end_cb on_end, void *arg)
{
    int rc;

    if (!req || fd < 0)
        return -EINVAL;
    if ((rc = body_check(req)) < 0 && rc != -EMSGSIZE) /* -EMSGSIZE after -ENOTSUP */
        return rc;
    if (!req->ops->body_to_fd)
        return -ENOTSUP;
    req->on_end = on_end;
    req->body_arg = arg;
    return req->ops->body_to_fd(req, fd); /* -ENOTSUP: TLS, chunked or no body */
}

/* ---------------------------------------------------------------- deadline */

int grace_request_hold_stop(struct grace_request *req)
{
    int rc = grace__request_open(req);
    if (rc < 0)
        return rc;
    req->hold_stop = 1;
    return 0;
}

int grace_request_set_deadline(struct grace_request *req, int64_t ms)
{
    struct grace_conn *c;
    int rc;

    if (ms < 0)
        return -EINVAL;
    if ((rc = grace__request_open(req)) < 0)
        return rc;
    c = req->conn;
    /* total: from the request's first byte, as its report measures */
    req->deadline_at = ms ? req->start_us / 1000 + ms : 0;
    grace__conn_enter(c);
    grace__conn_leave(c); /* the outermost bracket arms the slot's timer */
    return 0;
}
