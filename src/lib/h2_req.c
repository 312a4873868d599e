/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * h2_req.c - HTTP/2 streams as requests: the head built in HTTP/1.1's shape
 * (so every grace_request_* accessor works unchanged), the body handed to
 * the application with the window credited only for what it took
 * (nghttp2_session_consume), the request ops (response HEADERS, DATA
 * through a data provider from memory or a file, 1xx), the server's own
 * answers on a stream, and the early answer: a stream answered before its
 * body was read keeps its window open and has its DATA discarded, under
 * the lingering close's policy (linger.c), then RST_STREAM(NO_ERROR) -
 * never at once, never CANCEL (clients that write everything before
 * reading would lose the answer).
 */
#include "h2_req.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const struct grace_req_ops h2_ops;

/* A stream's write stall (its window shut), told apart from the engine's
 * own write-timeout (a full socket), which the engine acts on itself. */
#define H2_WRITE_STALL GRACE_CNT_TIMEOUT_STREAM

/* ---------------------------------------------------------------- streams */

void grace__h2_kick(struct h2 *h)
{
    if (h->dead)
        return;
    h->again = 1;
    grace__conn_schedule(h->c);
}

void grace__h2_reset(struct h2s *st, uint32_t code)
{
    if (st->rst_sent || st->closed)
        return;
    st->rst_sent = 1;
    st->end_sent = 1;
    nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, code);
    grace__h2_kick(st->h);
}


struct h2s *grace__h2s_new(struct h2 *h, int32_t id)
{
    struct h2s *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    st->h = h;
    st->id = id;
    st->file_fd = -1;
    st->reports.tail = &st->reports.head;
    st->start_us = grace__now_us();
    st->begin_ms = grace__now_ms();
    TAILQ_INSERT_TAIL(&h->streams, st, link);
    h->nstreams++;
    h->idle_since = 0;
    return st;
}

void grace__h2s_free(struct h2s *st)
{
    free(st->head);
    free(st->fields);
    free(st->method);
    free(st->path);
    free(st->authority);
    free(st->cookie);
    if (st->in)
        evbuffer_free(st->in);
    if (st->out)
        evbuffer_free(st->out);
    grace__trailers_free(&st->trailers);
    grace__trailers_free(&st->out_trailers);
    if (st->file_fd >= 0)
        close(st->file_fd);
    free(st);
}

/* n bytes of the stream's DATA are done with: the client may send more. */
static void consume(struct h2s *st, size_t n)
{
    if (n)
        nghttp2_session_consume(st->h->s, st->id, n);
}

static size_t in_len(const struct h2s *st)
{
    return st->in ? evbuffer_get_length(st->in) : 0;
}

/* ---------------------------------------------------------------- the head */

/* Field names in lowercase, as HTTP/2 wants them. */
static void lowercase(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)tolower((unsigned char)p[i]);
}

static int append(char **buf, size_t *len, size_t *cap, const char *a, size_t n)
{
    if (!n) /* nothing: *buf may still be NULL */
        return 0;
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap * 2 : 512;
        char *nb;
        while (nc < *len + n)
            nc *= 2;
        if (!(nb = realloc(*buf, nc)))
            return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, a, n);
    *len += n;
    return 0;
}

static char *dup_n(const uint8_t *v, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, v, n);
        s[n] = '\0';
    }
    return s;
}

/* The head's limits are HTTP/1.1's: the path as the request line
 * (max-request-line: 414), the fields as the header section
 * (max-header-bytes, max-header-fields: 431). Past a limit nothing more is
 * kept: the stream is answered, its memory stays bounded. */
int grace__h2s_header(struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value,
                      size_t vl)
{
    struct grace_server *srv = st->h->c->srv;

    if (st->head_error)
        return 0;
    if (nl && name[0] == ':') {
        char **slot = NULL;
        if (nl == 7 && !memcmp(name, ":method", 7))
            slot = &st->method;
        else if (nl == 5 && !memcmp(name, ":path", 5))
            slot = &st->path;
        else if (nl == 10 && !memcmp(name, ":authority", 10))
            slot = &st->authority;
        if (!slot || *slot)
            return 0; /* :scheme; nghttp2 refuses duplicates */
        if (vl > (size_t)OPT(srv, MAX_REQUEST_LINE)) {
            st->head_error = slot == &st->path ? 414 : 431;
            return 0;
        }
        if (!(*slot = dup_n(value, vl)))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    if (st->nfields + 2 > (size_t)OPT(srv, MAX_HEADER_FIELDS) ||
        st->head_len + st->cookie_len + nl + vl + 4 > (size_t)OPT(srv, MAX_HEADER_BYTES)) {
        st->head_error = 431;
        return 0;
    }
    if (nl == 6 && !memcmp(name, "cookie", 6)) { /* crumbs joined (RFC 9113 8.2.3) */
        if ((st->cookie_len && append(&st->cookie, &st->cookie_len, &st->cookie_cap, "; ", 2)) ||
            append(&st->cookie, &st->cookie_len, &st->cookie_cap, (const char *)value, vl))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    if (nl == 4 && !memcmp(name, "host", 4))
        st->has_host = 1;
    else if (nl == 14 && !memcmp(name, "content-length", 14)) {
        uint64_t v = 0;
        for (size_t i = 0; i < vl; i++)
            v = v * 10 + (uint64_t)(value[i] - '0'); /* digits: nghttp2 checked */
        st->has_cl = 1;
        st->content_length = v;
    } else if (nl == 6 && !memcmp(name, "expect", 6) && vl == 12 &&
               !strncasecmp((const char *)value, "100-continue", 12))
        st->expect_continue = 1;
    if (!(st->nfields % 16)) {
        struct grace_hfield *f = realloc(st->fields, (st->nfields + 16 + 2) * sizeof(*f));
        if (!f)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->fields = f;
    }
    st->fields[st->nfields].name.off = (uint32_t)st->head_len;
    st->fields[st->nfields].name.len = (uint32_t)nl;
    st->fields[st->nfields].value.off = (uint32_t)(st->head_len + nl + 2);
    st->fields[st->nfields].value.len = (uint32_t)vl;
    if (append(&st->head, &st->head_len, &st->head_cap, (const char *)name, nl) ||
        append(&st->head, &st->head_len, &st->head_cap, ": ", 2) ||
        append(&st->head, &st->head_len, &st->head_cap, (const char *)value, vl) ||
        append(&st->head, &st->head_len, &st->head_cap, "\r\n", 2))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->nfields++;
    return 0;
}

/* Trailers are bounded as HTTP/1.1's are: max-trailer-bytes of "name:
 * value" lines. Past it nothing more is kept, and the body's end is
 * answered 431 instead of delivered. A stream already answered or gone
 * keeps none. */
int grace__h2s_trailer(struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value,
                       size_t vl)
{
    struct grace_server *srv = st->h->c->srv;

    if (st->trailers_big || st->discarding || st->closed)
        return 0;
    st->trailer_bytes += nl + vl + 4;
    if (st->trailer_bytes > (size_t)OPT(srv, MAX_TRAILER_BYTES)) {
        st->trailers_big = 1;
        grace__trailers_free(&st->trailers);
        return 0;
    }
    if (grace__trailers_add(&st->trailers, (const char *)name, nl, (const char *)value, vl) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static enum grace_pmethod method_id(const char *m)
{
    static const struct {
        const char *name;
        enum grace_pmethod id;
    } t[] = {{"GET", GRACE_PM_GET},         {"HEAD", GRACE_PM_HEAD},
             {"POST", GRACE_PM_POST},       {"PUT", GRACE_PM_PUT},
             {"DELETE", GRACE_PM_DELETE},   {"OPTIONS", GRACE_PM_OPTIONS},
             {"CONNECT", GRACE_PM_CONNECT}, {"PATCH", GRACE_PM_PATCH},
             {"TRACE", GRACE_PM_TRACE}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(m, t[i].name))
            return t[i].id;
    return GRACE_PM_OTHER;
}

/* One more field after the ones received (Host from :authority, the
 * joined Cookie), at the end of blk. */
static int add_field(char **blk, size_t *len, size_t *cap, struct grace_hfield *f, const char *name,
                     const char *value, size_t vl)
{
    size_t nl = strlen(name);
    f->name.off = (uint32_t)*len;
    f->name.len = (uint32_t)nl;
    f->value.off = (uint32_t)(*len + nl + 2);
    f->value.len = (uint32_t)vl;
    return append(blk, len, cap, name, nl) || append(blk, len, cap, ": ", 2) ||
           append(blk, len, cap, value, vl) || append(blk, len, cap, "\r\n", 2);
}

/* The head as HTTP/1.1 would have sent it: "METHOD SP target SP HTTP/2.0",
 * the fields, Host from :authority when absent, the Cookie crumbs joined. */
static struct grace_request *build(struct h2s *st)
{
    struct grace_conn *c = st->h->c;
    int connect = !strcmp(st->method, "CONNECT");
    const char *target = connect ? st->authority : st->path;
    struct grace_preq p;
    struct grace_request *req = NULL;
    char *blk = NULL;
    size_t len = 0, cap = 0, ml = strlen(st->method), tl = strlen(target), line;
    struct grace_hfield *f = st->fields;

    if (!f && !(f = st->fields = malloc(2 * sizeof(*f))))
        return NULL;
    memset(&p, 0, sizeof(p));
    if (append(&blk, &len, &cap, st->method, ml) || append(&blk, &len, &cap, " ", 1) ||
        append(&blk, &len, &cap, target, tl) || append(&blk, &len, &cap, " HTTP/2.0\r\n", 11))
        goto out;
    line = len;
    if (st->head_len && append(&blk, &len, &cap, st->head, st->head_len))
        goto out;
    for (size_t i = 0; i < st->nfields; i++) {
        f[i].name.off += (uint32_t)line;
        f[i].value.off += (uint32_t)line;
    }
    p.nfields = st->nfields;
    p.host_index = -1;
    for (size_t i = 0; i < st->nfields; i++)
        if (f[i].name.len == 4 && !memcmp(blk + f[i].name.off, "host", 4))
            p.host_index = (int)i;
    if (!st->has_host && st->authority) {
        if (add_field(&blk, &len, &cap, &f[p.nfields], "host", st->authority,
                      strlen(st->authority)))
            goto out;
        p.host_index = (int)p.nfields++;
    }
    if (st->cookie_len &&
        add_field(&blk, &len, &cap, &f[p.nfields++], "cookie", st->cookie, st->cookie_len))
        goto out;
    if (append(&blk, &len, &cap, "\r\n", 2))
        goto out;
    p.method.off = 0;
    p.method.len = (uint32_t)ml;
    p.target.off = (uint32_t)ml + 1;
    p.target.len = (uint32_t)tl;
    p.method_id = method_id(st->method);
    p.form = connect ? GRACE_FORM_AUTHORITY
             : !strcmp(target, "*") ? GRACE_FORM_ASTERISK
                                    : GRACE_FORM_ORIGIN;
    p.version_minor = 1;
    p.keep_alive = 1;
    p.expect_continue = st->expect_continue;
    if (st->has_cl) {
        p.framing = GRACE_FRAMING_LENGTH;
        p.content_length = st->content_length;
    } else if (!st->end_in) {
        p.framing = GRACE_FRAMING_CHUNKED; /* a body of unknown length */
    }
    p.header_bytes = len;
    {
        struct grace_parser pr; /* what grace__request_new reads: the results */
        pr.req = p;
        pr.fields = f;
        req = grace__request_new(c, &h2_ops, &pr, blk, st->start_us);
    }
out:
    free(blk);
    return req;
}

void grace__h2s_dispatch(struct h2s *st)
{
    struct grace_conn *c = st->h->c;
    struct grace_server *srv = c->srv;
    struct grace_request *req;

    if (st->closed) /* reset by the client before it was ever looked at */
        return;
    if (st->head_error) {
        grace__h2s_fail(st, st->head_error,
                        st->head_error == 414 ? "URI too long" : "request header fields too large",
                        -EPROTO);
        return;
    }
    if (!st->method || (!st->path && strcmp(st->method, "CONNECT")) ||
        (!st->authority && !strcmp(st->method, "CONNECT"))) {
        grace__h2s_fail(st, 400, "malformed request head", -EPROTO); /* nghttp2 checks first */
        return;
    }
    if (!(req = build(st))) {
        grace__h2s_fail(st, 503, "out of memory", -ENOMEM);
        return;
    }
    free(st->head);
    st->head = NULL;
    st->head_len = st->head_cap = 0;
    req->ps = st;
    req->version = "HTTP/2.0";
    st->req = req;
    st->body_since = grace__now_ms();
    CNT(srv, REQUESTS);
    CNT(srv, H2_REQUESTS);
    srv->up.dispatch(req);
    /* a Content-Length over the handler's limit, nothing read nor answered:
     * 413 now (HTTP/1.1's dispatch does the same for its requests) */
    if (st->req == req && req->resp == RESP_NONE && req->body_mode == BODY_NONE &&
        req->p.framing == GRACE_FRAMING_LENGTH && req->p.content_length > req->body_limit)
        grace__h2s_fail(st, 413, "request body too large", -EMSGSIZE);
}

/* ---------------------------------------------------------------- the body */

/* The application is done with the stream's body (it answered, or the
 * server did): what is buffered and what comes is consumed unread. The
 * linger's clocks start once our END_STREAM is out (grace__h2s_sent_end). */
static void start_discard(struct h2s *st)
{
    size_t n = in_len(st);

    if (st->discarding || st->end_in || st->closed)
        return;
    st->discarding = 1;
    if (n && !st->delivering) {
        evbuffer_drain(st->in, n);
        st->h->c->srv->cnt[GRACE_CNT_BYTES_DISCARDED] += n;
        consume(st, n);
    }
    grace__linger_owed(&st->lg, st->has_cl ? st->content_length - st->received : UINT64_MAX, 1);
}

void grace__h2s_data(struct h2s *st, const uint8_t *data, size_t len)
{
    struct grace_server *srv = st->h->c->srv;
    int64_t now = grace__now_ms();

    st->received += len;
    st->body_since = now;
    if (st->discarding || st->closed) {
        srv->cnt[GRACE_CNT_BYTES_DISCARDED] += len;
        consume(st, len);
        if (st->lingering) {
            enum grace_counter how = grace__linger_bytes(&st->lg, &srv->cfg, len, len, 1);
            grace__linger_heard(&st->lg, &srv->cfg, len, now);
            if (how != GRACE_CNT__COUNT) {
                srv->cnt[how]++;
                st->lingering = 0;
                grace__h2_reset(st, NGHTTP2_NO_ERROR);
            }
        }
        return;
    }
    /* held until the application asks: the window we granted bounds it */
    if (!st->in && !(st->in = evbuffer_new())) {
        consume(st, len);
        return;
    }
    evbuffer_add(st->in, data, len);
}

/* The application's drain callback, once the stream's queue is at or
 * below output-low-water (unset before the call: it may register again). */
void grace__h2s_drain(struct h2s *st)
{
    struct grace_request *req = st->req;
    grace_drain_cb cb;

    if (!req || !req->on_drain || h2_ops.pending(req) > (size_t)OPT(st->h->c->srv, OUTPUT_LOW_WATER))
        return;
    cb = req->on_drain;
    req->on_drain = NULL;
    cb(req, req->drain_arg);
}

/* Body bytes the application asked for, piece by piece while it does not
 * pause, then the end; each piece credited back to the client's window. */
void grace__h2s_deliver(struct h2s *st)
{
    struct grace_request *req = st->req;
    struct h2 *h = st->h;

    if (!req)
        return;
    grace__h2s_drain(st);
    if (st->req != req || h->dead)
        return;
    if (req->body_mode != BODY_STREAM && req->body_mode != BODY_COLLECT)
        return;
    while (st->req == req && !req->paused && in_len(st)) {
        struct evbuffer_iovec v;
        size_t n = in_len(st);

        if (req->body_read + n > req->body_limit) {
            grace__h2s_fail(st, 413, "request body too large", -EMSGSIZE);
            return;
        }
        if (req->body_mode == BODY_COLLECT) {
            evbuffer_add_buffer(req->body, st->in);
            req->body_read += n;
            consume(st, n);
            continue;
        }
        evbuffer_peek(st->in, -1, NULL, &v, 1);
        req->body_read += v.iov_len;
        st->delivering = 1;
        req->on_data(req, v.iov_base, v.iov_len, req->body_arg);
        st->delivering = 0;
        if (h->dead)
            return;
        evbuffer_drain(st->in, v.iov_len);
        consume(st, v.iov_len);
        if (st->discarding) { /* answered from inside the callback */
            n = in_len(st);
            evbuffer_drain(st->in, n);
            h->c->srv->cnt[GRACE_CNT_BYTES_DISCARDED] += n;
            consume(st, n);
        }
    }
    if (st->req == req && !req->paused && st->end_in && !in_len(st) && !req->end_delivered) {
        if (st->trailers_big) {
            grace__h2s_fail(st, 431, "trailer section too large", -EPROTO);
            return;
        }
        req->trailers = st->trailers; /* the request's from now on */
        memset(&st->trailers, 0, sizeof(st->trailers));
        req->body_done = 1;
        req->end_delivered = 1;
        if (req->body_mode == BODY_COLLECT)
            req->on_body(req, req->body, req->body_arg);
        else if (req->on_end)
            req->on_end(req, req->body_arg);
    }
}

/* ---------------------------------------------------------------- frames */

/* Fields that mean nothing in HTTP/2 (RFC 9113 8.2.2): never sent. */
static int connection_specific(const char *n, size_t l)
{
    static const char *const t[] = {"connection", "keep-alive", "proxy-connection",
                                    "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strlen(t[i]) == l && !strncasecmp(n, t[i], l))
            return 1;
    return 0;
}

#define NV(n, v, vl) ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), (vl), NGHTTP2_NV_FLAG_NONE})

/*
 * The response's fields: :status, date, content-length when known, and the
 * application's (validated "Name: value" lines, lowercased here). Strings
 * point into scratch, which the caller frees after the submit (nghttp2
 * copies them).
 */
static nghttp2_nv *response_nv(struct h2s *st, int status, int64_t length, size_t *n,
                               char **scratch)
{
    struct grace_request *req = st->req;
    struct grace_server *srv = st->h->c->srv;
    struct evbuffer *rh = req ? req->resp_headers : NULL;
    size_t hl = rh ? evbuffer_get_length(rh) : 0, lines = 0, k = 0, dl;
    char *s, *p, *end;
    nghttp2_nv *nv;

    s = malloc(hl + 96);
    if (!s)
        return NULL;
    if (hl)
        evbuffer_copyout(rh, s, hl);
    for (p = s; p < s + hl; p++)
        lines += *p == '\n';
    nv = malloc((lines + 3) * sizeof(*nv));
    if (!nv) {
        free(s);
        return NULL;
    }
    /* :status, date and content-length go after the header copy */
    p = s + hl;
    snprintf(p, 4, "%03d", status);
    nv[k++] = NV(":status", p, 3);
    p += 4;
    grace__date_header(&srv->date, p, &dl); /* "Date: <value>\r\n" */
    nv[k++] = NV("date", p + 6, dl - 8);
    p += dl + 1;
    if (length >= 0 && !grace__no_body_status(status)) {
        int m = snprintf(p, 24, "%lld", (long long)length);
        nv[k++] = NV("content-length", p, (size_t)m);
    }
    for (p = s, end = s + hl; p < end;) {
        char *eol = memchr(p, '\r', (size_t)(end - p)), *colon;
        if (!eol)
            break;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && !connection_specific(p, (size_t)(colon - p))) {
            lowercase(p, (size_t)(colon - p));
            nv[k].name = (uint8_t *)p;
            nv[k].namelen = (size_t)(colon - p);
            nv[k].value = (uint8_t *)colon + 2;
            nv[k].valuelen = (size_t)(eol - colon - 2);
            nv[k].flags = NGHTTP2_NV_FLAG_NONE;
            k++;
        }
        p = eol + 2;
    }
    *n = k;
    *scratch = s;
    return nv;
}

/* The application's trailers as a HEADERS frame with END_STREAM, queued
 * behind the last DATA (nghttp2 lets a data provider do it at its end). */
static int submit_trailers(struct h2s *st)
{
    const struct grace_trailers *t = &st->out_trailers;
    nghttp2_nv *nv = malloc(t->n * sizeof(*nv));
    int rc;

    if (!nv)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        const char *name, *value;
        grace__trailers_at(t, i, &name, &value);
        nv[i] = NV(name, value, strlen(value));
    }
    rc = nghttp2_submit_trailer(st->h->s, st->id, nv, t->n);
    free(nv);
    return rc ? -EIO : 0;
}

static h2_ssize read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                          uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct h2s *st = src->ptr;
    size_t n = 0;

    if (st->out && evbuffer_get_length(st->out)) {
        int r = evbuffer_remove(st->out, buf, len);
        n = r > 0 ? (size_t)r : 0;
    } else if (st->file_left) {
        size_t want = len < st->file_left ? len : (size_t)st->file_left;
        ssize_t r;
        do
            r = pread(st->file_fd, buf, want, st->file_off);
        while (r < 0 && errno == EINTR);
        if (r <= 0) { /* the file ended before its length: the stream is reset */
            CNT(st->h->c->srv, WRITE_ERRORS);
            st->file_err = 1;
            st->file_left = 0;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        n = (size_t)r;
        st->file_off += r;
        st->file_left -= n;
        if (!st->file_left) {
            close(st->file_fd);
            st->file_fd = -1;
        }
    }
    if (n) {
        st->out_since = grace__now_ms();
        if (st->req && st->req->on_drain)
            grace__h2_kick(st->h);
    }
    if (!n && !st->out_end) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (st->out_end && !(st->out && evbuffer_get_length(st->out)) && !st->file_left) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->out_trailers.n || st->trailers_lost) {
            /* a clean end without the trailers (a gRPC status) would be a
             * wrong answer: the stream is reset (INTERNAL_ERROR) instead */
            if (st->trailers_lost || submit_trailers(st))
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* they carry END_STREAM */
        }
    }
    return (h2_ssize)n;
}

/* Submit the response's HEADERS; with a data provider unless the response
 * has no body (END_STREAM on the HEADERS). */
static int submit(struct h2s *st, int status, int64_t length, int body)
{
    h2_provider prov;
    char *scratch = NULL;
    size_t n;
    nghttp2_nv *nv = response_nv(st, status, length, &n, &scratch);
    int rc;

    if (!nv)
        return -ENOMEM;
    prov.source.ptr = st;
    prov.read_callback = read_body;
    rc = h2_submit_response(st->h->s, st->id, nv, n, body ? &prov : NULL);
    free(nv);
    free(scratch);
    if (rc)
        return -EIO;
    st->submitted = 1;
    st->out_since = grace__now_ms();
    grace__h2_kick(st->h);
    return 0;
}

/* More body bytes, or the end, for a provider that waits. */
static void wake(struct h2s *st)
{
    st->out_since = st->deferred ? grace__now_ms() : st->out_since;
    if (st->deferred && !st->closed) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->h->s, st->id);
    }
    grace__h2_kick(st->h);
}

void grace__h2s_fail(struct h2s *st, int status, const char *msg, int err)
{
    struct grace_conn *c = st->h->c;
    struct grace_request *req = st->req;

    if (req) {
        st->req = NULL;
        req->ps = NULL;
    }
    if (st->submitted || (req && req->resp != RESP_NONE) || st->closed) {
        grace__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
    } else {
        size_t ml = strlen(msg);
        grace__count_status(c->srv, status);
        grace__report_start(&st->reports, c, req, status, req ? req->start_us : st->start_us,
                            st->sent, 0);
        if (!st->out)
            st->out = evbuffer_new();
        if (st->out) {
            evbuffer_add(st->out, msg, ml);
            evbuffer_add(st->out, "\n", 1);
        }
        st->out_end = 1;
        {
            char len[24];
            int m = snprintf(len, sizeof(len), "%zu", ml + 1);
            nghttp2_nv nv[] = {NV(":status", "000", 3), NV("content-type", "text/plain", 10),
                               NV("x-content-type-options", "nosniff", 7),
                               NV("content-length", len, (size_t)m)};
            char code[4];
            h2_provider prov;
            snprintf(code, sizeof(code), "%03d", status);
            nv[0].value = (uint8_t *)code;
            prov.source.ptr = st;
            prov.read_callback = read_body;
            if (h2_submit_response(st->h->s, st->id, nv, 4, &prov))
                grace__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
            st->submitted = 1;
            st->out_since = grace__now_ms();
        }
    }
    start_discard(st);
    grace__h2_kick(st->h);
    if (req)
        grace__request_detach(req, err);
}

void grace__h2s_sent_end(struct h2s *st)
{
    struct grace_response_info *ri;

    if (st->end_sent && st->lingering)
        return;
    st->end_sent = 1;
    for (ri = st->reports.head; ri; ri = ri->next) {
        if (!ri->done) {
            ri->end = st->sent;
            ri->done = 1;
        }
    }
    if (st->discarding && !st->end_in && !st->closed && !st->lingering && !st->rst_sent) {
        struct grace_server *srv = st->h->c->srv;
        st->lingering = 1;
        grace__linger_begin(&st->lg, &srv->cfg, grace__now_ms(), srv->stop_linger_bound);
    }
    grace__h2_kick(st->h);
}

void grace__h2s_closed(struct h2s *st, uint32_t code)
{
    struct grace_request *req = st->req;

    st->closed = 1;
    st->lingering = 0;
    if (st->file_fd >= 0) {
        close(st->file_fd);
        st->file_fd = -1;
        st->file_left = 0;
    }
    if (req) { /* reset before our reply completed */
        st->req = NULL;
        req->ps = NULL;
        grace__request_detach(req, -ECONNRESET);
    }
    grace__h2_kick(st->h);
}

int grace__h2s_report_due(const struct h2s *st)
{
    const struct grace_conn *c = st->h->c;

    if (!st->reports.head || !st->end_framed || st->file_err || !c->slot)
        return 0;
    /* an empty output took everything framed, whatever the offsets say */
    return c->slot->written >= st->last_off || !grace__buffered_out(c);
}

uint64_t grace__h2s_written(const struct h2s *st)
{
    const struct grace_conn *c = st->h->c;
    uint64_t behind;

    if (grace__h2s_report_due(st))
        return st->sent;
    if (!c->slot)
        return 0;
    /* at most what the output still holds up to our last frame is ours */
    behind = st->last_off > c->slot->written ? st->last_off - c->slot->written : 0;
    return st->sent > behind ? st->sent - behind : 0;
}

void grace__h2s_report_now(struct h2s *st, int force)
{
    if (!st->reports.head)
        return;
    if (grace__h2s_report_due(st) || (force && st->closed && st->end_framed && !st->file_err))
        grace__report_written(&st->reports, st->sent);
    /* closed before its end was framed (a reset, a frame nghttp2 dropped, a
     * file cut short): there will be no more, and it did not all leave. A
     * complete answer waits for the socket (h2.c: reports_due) */
    if (st->closed && st->reports.head && (!st->end_framed || st->file_err))
        grace__report_cut(&st->reports, grace__h2s_written(st),
                          st->file_err ? -EPIPE : -ECONNRESET);
}

/* ---------------------------------------------------------------- deadlines */

/* Is the application waiting for body bytes the client has not sent? */
static int waiting_for_body(const struct h2s *st)
{
    const struct grace_request *req = st->req;
    return req && !req->paused && !st->end_in && !in_len(st) &&
           (req->body_mode == BODY_STREAM || req->body_mode == BODY_COLLECT);
}

int64_t grace__h2s_deadline(const struct h2s *st, enum grace_counter *why)
{
    const struct grace_request *req = st->req;
    const struct grace_conn *c = st->h->c;
    const struct grace_server *srv = c->srv;
    int64_t d = 0;

    if (st->closed)
        return 0;
    if (!req && !st->submitted && !st->end_in && !st->discarding) /* a head still arriving */
        grace__earlier(&d, why, st->begin_ms + OPT(srv, HEADER_TIMEOUT), GRACE_CNT_TIMEOUT_HEADER);
    if (waiting_for_body(st)) {
        int64_t period = req->body_timeout ? req->body_timeout : OPT(srv, BODY_TIMEOUT);
        grace__earlier(&d, why, st->body_since + period, GRACE_CNT_TIMEOUT_BODY);
    }
    /* body-min-rate, as HTTP/1.1 judges it: over each body-timeout period the
     * application reads (a new window on every resume) */
    if (req && OPT(srv, BODY_MIN_RATE) && req->rate_since && !req->paused && !st->end_in &&
        (req->body_mode == BODY_STREAM || req->body_mode == BODY_COLLECT))
        grace__earlier(&d, why,
                       req->rate_since + (req->body_timeout ? req->body_timeout
                                                            : OPT(srv, BODY_TIMEOUT)),
                       GRACE_CNT_BODY_TOO_SLOW);
    if (req && req->deadline_at)
        grace__earlier(&d, why, req->deadline_at, GRACE_CNT_TIMEOUT_REQUEST);
    /* bytes to send that nghttp2 does not take: the client's window stays
     * shut (the engine's write-timeout watches a full socket instead) */
    if (st->submitted && !st->end_sent && !grace__buffered_out(c) &&
        ((st->out && evbuffer_get_length(st->out)) || st->file_left || st->out_end)) {
        int64_t wt = req && req->write_timeout ? req->write_timeout
                     : st->write_timeout      ? st->write_timeout
                                              : OPT(srv, WRITE_TIMEOUT);
        grace__earlier(&d, why, st->out_since + wt, H2_WRITE_STALL);
    }
    if (st->lingering)
        grace__earlier(&d, why, grace__linger_due(&st->lg, &srv->cfg), GRACE_CNT_LINGER_STARTED);
    return d;
}

void grace__h2s_timeout(struct h2s *st, int64_t now)
{
    struct h2 *h = st->h;
    struct grace_server *srv = h->c->srv;
    enum grace_counter why = GRACE_CNT__COUNT;
    int64_t d = grace__h2s_deadline(st, &why);

    if (!d || d > now)
        return;
    switch (why) {
    case GRACE_CNT_TIMEOUT_HEADER: /* CONTINUATION must follow: the connection waits */
        srv->cnt[why]++;
        nghttp2_session_terminate_session(h->s, NGHTTP2_NO_ERROR);
        h->goaway = h->closing = 1;
        st->closed = 1;
        break;
    case GRACE_CNT_TIMEOUT_BODY:
        srv->cnt[why]++;
        grace__h2s_fail(st, 408, "request body timeout", -ETIMEDOUT);
        break;
    case GRACE_CNT_BODY_TOO_SLOW: {
        struct grace_request *req = st->req;
        uint64_t need = (uint64_t)(OPT(srv, BODY_MIN_RATE) * (now - req->rate_since) / 1000);
        if (req->body_read - req->rate_bytes >= need) { /* kept up: a new window */
            req->rate_since = now;
            req->rate_bytes = req->body_read;
            break;
        }
        srv->cnt[why]++;
        grace__h2s_fail(st, 408, "request body too slow", -ETIMEDOUT);
        break;
    }
    case GRACE_CNT_TIMEOUT_REQUEST:
        srv->cnt[why]++;
        grace__h2s_fail(st, 503, "request deadline passed", -ETIMEDOUT);
        break;
    case H2_WRITE_STALL:
        CNT(srv, TIMEOUT_WRITE);
        grace__h2s_fail(st, 0, "", -ETIMEDOUT); /* started: a reset */
        break;
    default: { /* the early answer's discard: the linger's verdict */
        enum grace_counter how =
            grace__linger_timer(&st->lg, &srv->cfg, now, srv->stop_linger_bound);
        if (how != GRACE_CNT__COUNT) {
            srv->cnt[how]++;
            st->lingering = 0;
            grace__h2_reset(st, NGHTTP2_NO_ERROR);
        }
    }
    }
}

/* ---------------------------------------------------------------- request ops */

static struct h2s *stream(const struct grace_request *req)
{
    return req->ps;
}

static int op_body_start(struct grace_request *req)
{
    struct h2s *st = stream(req);

    if (!st)
        return -ENOTCONN;
    /* 100 Continue only now that the body is wanted, and only if the
     * response has not begun */
    if (st->expect_continue && !req->sent_continue && req->resp == RESP_NONE && !st->end_in) {
        nghttp2_nv nv[] = {NV(":status", "100", 3)};
        req->sent_continue = 1;
        nghttp2_submit_headers(st->h->s, NGHTTP2_FLAG_NONE, st->id, NULL, nv, 1, NULL);
    }
    st->body_since = grace__now_ms();
    req->rate_since = st->body_since; /* a body-min-rate window starts */
    req->rate_bytes = req->body_read;
    grace__h2_kick(st->h);
    return 0;
}

static void op_body_resume(struct grace_request *req)
{
    struct h2s *st = stream(req);

    if (!st)
        return;
    st->body_since = grace__now_ms(); /* body-timeout waited while paused */
    req->rate_since = st->body_since;   /* the pause was not the client's */
    req->rate_bytes = req->body_read;
    grace__h2_kick(st->h);
}

static int op_informational(struct grace_request *req, int status, const char *const *fields,
                            size_t n)
{
    struct h2s *st = stream(req);
    nghttp2_nv *nv;
    char code[4], *names;
    size_t total = 0;
    int rc;

    if (!st)
        return -ENOTCONN;
    for (size_t i = 0; i < n; i++)
        total += strlen(fields[2 * i]) + 1;
    nv = malloc((n + 1) * sizeof(*nv));
    names = malloc(total + 1);
    if (!nv || !names) {
        free(nv);
        free(names);
        return -ENOMEM;
    }
    snprintf(code, sizeof(code), "%03d", status);
    nv[0] = NV(":status", code, 3);
    total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(fields[2 * i]);
        memcpy(names + total, fields[2 * i], l);
        lowercase(names + total, l);
        names[total + l] = '\0';
        nv[i + 1] = NV(names + total, fields[2 * i + 1], strlen(fields[2 * i + 1]));
        total += l + 1;
    }
    rc = nghttp2_submit_headers(st->h->s, NGHTTP2_FLAG_NONE, st->id, NULL, nv, n + 1, NULL);
    free(nv);
    free(names);
    grace__h2_kick(st->h);
    return rc < 0 ? -EIO : 0;
}

static int op_send_head(struct grace_request *req, int status, int64_t length)
{
    struct h2s *st = stream(req);
    int body = length != 0 && !req->head && !grace__no_body_status(status);

    if (!st)
        return -ENOTCONN;
    req->status = status;
    grace__report_start(&st->reports, st->h->c, req, status, req->start_us, st->sent, 0);
    return submit(st, status, length, body);
}

static int op_send_data(struct grace_request *req, const char *data, size_t len,
                        struct evbuffer *move)
{
    struct h2s *st = stream(req);

    if (!st)
        return -ENOTCONN;
    if (!st->out && !(st->out = evbuffer_new()))
        return -ENOMEM;
    if (move ? evbuffer_add_buffer(st->out, move) : evbuffer_add(st->out, data, len))
        return -ENOMEM;
    wake(st);
    return 0;
}

static int op_send_file(struct grace_request *req, int fd, off_t off, off_t len)
{
    struct h2s *st = stream(req);

    if (!st || st->file_fd >= 0) {
        close(fd);
        return st ? -EALREADY : -ENOTCONN;
    }
    st->file_fd = fd;
    st->file_off = off;
    st->file_left = (uint64_t)len;
    wake(st);
    return 0;
}

/* The reply is complete: the stream lets go of its request. A body the
 * client is still sending is discarded (the early answer). */
static int op_end(struct grace_request *req, const char *const *trailers, size_t ntrailers)
{
    struct h2s *st = stream(req);
    struct grace_server *srv = req->srv;

    if (!st)
        return -ENOTCONN;
    for (size_t i = 0; i < ntrailers; i++) { /* copied, names lowercased */
        const char *name = trailers[2 * i], *value = trailers[2 * i + 1];
        size_t nl = strlen(name);
        struct grace_trailers *t = &st->out_trailers;
        int r = grace__trailers_add(t, name, nl, value, strlen(value));
        if (r < 0) { /* out of memory: the stream will be reset (read_body) */
            grace__trailers_free(t);
            st->trailers_lost = 1;
            break;
        }
        if (!r) /* kept, not dropped */
            lowercase(t->blk + t->off[t->n - 1], nl);
    }
    st->out_end = 1;
    wake(st);
    if (!st->end_in || in_len(st))
        CNT(srv, EARLY_REPLIES);
    st->write_timeout = req->write_timeout ? req->write_timeout : OPT(srv, WRITE_TIMEOUT);
    st->req = NULL;
    req->ps = NULL;
    start_discard(st);
    grace__request_done(req);
    return 0;
}

static size_t op_pending(const struct grace_request *req)
{
    const struct h2s *st = stream(req);

    if (!st)
        return 0;
    return (st->out ? evbuffer_get_length(st->out) : 0) + (size_t)st->file_left;
}

static void op_drain_check(struct grace_request *req)
{
    struct h2s *st = stream(req);

    if (st && req->on_drain && op_pending(req) <= (size_t)OPT(req->srv, OUTPUT_LOW_WATER))
        grace__h2_kick(st->h); /* from the loop, never under the application's call */
}

/* The server's own answer to req (a Content-Length over the handler's limit). */
static void op_fail(struct grace_request *req, int status, const char *msg, int err)
{
    struct h2s *st = stream(req);

    if (st)
        grace__h2s_fail(st, status, msg, err);
}

static const struct grace_req_ops h2_ops = {
    .body_start = op_body_start,
    .body_resume = op_body_resume,
    .informational = op_informational,
    .send_head = op_send_head,
    .send_data = op_send_data,
    .send_file = op_send_file,
    .end = op_end,
    .pending = op_pending,
    .drain_check = op_drain_check,
    .fail = op_fail,
    /* body_to_fd: bytes come in frames; upgrade: no Upgrade in HTTP/2, and
     * CONNECT streams are not ours yet (-ENOTSUP) */
};
