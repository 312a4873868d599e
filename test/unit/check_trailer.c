/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_trailer.c - trailers (trailer.c, and both directions over HTTP/1.1
 * on loopback sockets): which fields a trailer may carry, the request's
 * store, grace_reply_end_trailers()'s framing and every one of its answers
 * (the reply's state after each), and the client's chunked trailers as
 * grace_request_trailer*() show them. HTTP/2 and real clients:
 * test/integration/test_trailers.py.
 */
#include "testlib.h"
#include "trailer.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the rules */

static const struct {
    const char *name, *value;
    int ok;
} field_cases[] = {
    {"grpc-status", "0", 1},
    {"grpc-message", "all good", 1},
    {"X-Checksum", "sha-256=:abc=:", 1},
    {"Server-Timing", "db;dur=53, app;dur=47.2", 1},
    {"x", "", 1},                 /* an empty value */
    {"x", "a\tb", 1},             /* HTAB inside */
    {"x", "caf\xc3\xa9", 1},      /* obs-text */
    {"!#$%&'*+-.^_`|~09azAZ", "v", 1},
    /* not a token */
    {"", "v", 0},
    {"Bad Name", "v", 0},
    {"x:y", "v", 0},
    {"x\ty", "v", 0},
    {"caf\xc3\xa9", "v", 0},
    {"(x)", "v", 0},
    /* values: no control bytes, no whitespace at either end (HTTP/2) */
    {"x", "a\r\nInjected: 1", 0},
    {"x", "a\nb", 0},
    {"x", "a\rb", 0},
    {"x", "a\x01", 0},
    {"x", "a\x7f", 0},
    {"x", " lead", 0},
    {"x", "trail ", 0},
    {"x", "\ttab", 0},
    /* RFC 9110 6.5.1, whatever the case */
    {"Content-Length", "5", 0},
    {"content-length", "5", 0},
    {"TRANSFER-ENCODING", "chunked", 0},
    {"Trailer", "x", 0},
    {"Connection", "close", 0},
    {"Keep-Alive", "1", 0},
    {"Upgrade", "h2c", 0},
    {"TE", "trailers", 0},
    {"Host", "evil", 0},
    {"Expect", "100-continue", 0},
    {"Max-Forwards", "1", 0},
    {"Cache-Control", "no-store", 0},
    {"Range", "bytes=0-1", 0},
    {"If-None-Match", "*", 0},
    {"Authorization", "Bearer x", 0},
    {"Proxy-Authorization", "x", 0},
    {"WWW-Authenticate", "Bearer", 0},
    {"Cookie", "a=b", 0},
    {"Set-Cookie", "a=b", 0},
    {"Content-Type", "text/plain", 0},
    {"Content-Encoding", "gzip", 0},
    {"Content-Range", "bytes 0-1/2", 0},
    {"Date", "now", 0},
    {"Location", "/", 0},
    {"Retry-After", "1", 0},
    {"Vary", "*", 0},
    /* near misses stay allowed */
    {"Content-Lengths", "5", 1},
    {"Content-Lengt", "5", 1},
    {"X-Host", "h", 1},
    {"Content-MD5", "x", 1},
};

START_TEST(test_field_ok)
{
    const char *n = field_cases[_i].name, *v = field_cases[_i].value;
    ck_assert_msg(grace__trailer_field_ok(n, v) == field_cases[_i].ok, "\"%s: %s\" should be %s",
                  n, v, field_cases[_i].ok ? "allowed" : "refused");
}
END_TEST

START_TEST(test_field_null)
{
    ck_assert(!grace__trailer_field_ok(NULL, "v"));
    ck_assert(!grace__trailer_field_ok("x", NULL));
}
END_TEST

/* The store: kept in order, repeated names walked, forbidden ones dropped. */
START_TEST(test_store)
{
    struct grace_trailers t = {0};
    static const char *const in[][2] = {
        {"grpc-status", "0"}, {"Content-Length", "99"}, {"X-Sum", "5"}, {"host", "evil"},
        {"x-sum", "6"},       {"Empty", ""},           {"X-SUM", "7"},
    };
    const char *name, *value;
    size_t pos = 0;

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        ck_assert_int_eq(grace__trailers_add(&t, in[i][0], strlen(in[i][0]), in[i][1],
                                             strlen(in[i][1])),
                         grace__trailer_allowed(in[i][0], strlen(in[i][0])) ? 0 : 1);
    ck_assert_uint_eq(t.n, 5);
    ck_assert_int_eq(grace__trailers_at(&t, 0, &name, &value), 0);
    ck_assert_str_eq(name, "grpc-status");
    ck_assert_str_eq(value, "0");
    ck_assert_int_eq(grace__trailers_at(&t, 3, &name, &value), 0);
    ck_assert_str_eq(name, "Empty");
    ck_assert_str_eq(value, "");
    ck_assert_int_eq(grace__trailers_at(&t, 5, &name, &value), -ERANGE);
    ck_assert_str_eq(grace__trailers_next(&t, "x-sum", &pos), "5");
    ck_assert_uint_eq(pos, 2);
    ck_assert_str_eq(grace__trailers_next(&t, "X-Sum", &pos), "6");
    ck_assert_str_eq(grace__trailers_next(&t, "x-SUM", &pos), "7");
    ck_assert_ptr_null(grace__trailers_next(&t, "x-sum", &pos));
    ck_assert_uint_eq(pos, 5);
    pos = 0;
    ck_assert_ptr_null(grace__trailers_next(&t, "content-length", &pos));
    pos = 0;
    ck_assert_ptr_null(grace__trailers_next(&t, "Host", &pos));
    /* growth past the first allocations keeps every field where it was */
    for (int i = 0; i < 200; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        ck_assert_int_eq(grace__trailers_add(&t, "n", 1, v, strlen(v)), 0);
    }
    ck_assert_int_eq(grace__trailers_at(&t, 5 + 199, &name, &value), 0);
    ck_assert_str_eq(value, "199");
    pos = 0;
    ck_assert_str_eq(grace__trailers_next(&t, "grpc-status", &pos), "0");
    grace__trailers_free(&t);
    ck_assert_uint_eq(t.n, 0);
    ck_assert_ptr_null(t.blk);
    grace__trailers_free(&t); /* twice: nothing */
}
END_TEST

/* ---------------------------------------------------------------- client side */

/* Everything the server sends until it closes. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    ssize_t r;
    ck_assert_ptr_nonnull(b);
    while ((r = recv(fd, b + n, cap - n, 0)) > 0) {
        n += (size_t)r;
        if (n == cap) {
            b = realloc(b, (cap *= 2) + 1);
            ck_assert_ptr_nonnull(b);
        }
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* Send req on a new connection, and return all of the answer (closed). */
static char *exchange(struct fx *f, const char *req)
{
    size_t n;
    int fd = cli_connect(f->port);
    char *out;
    cli_send(fd, req);
    out = read_all(fd, &n);
    close(fd);
    return out;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* ---------------------------------------------------------------- response trailers */

struct rc_log {
    int rc[16];
    int n;
};

static void note(struct fx *f, int rc)
{
    struct rc_log *l = f->user;
    ck_assert_int_lt(l->n, 16);
    l->rc[l->n++] = rc;
}

static const char *const good[] = {"grpc-status", "0", "X-Sum", "5"};

/* /ok: a streamed reply with trailers. /bad: refused trailers leave it
 * streaming (a chunk still goes), then good ones end it, then -EALREADY.
 * /none: never started. /empty: nfields 0 is grace_reply_end. */
static void h_reply(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    const char *p = grace_request_path(req);

    if (!strcmp(p, "/none")) {
        note(f, grace_reply_end_trailers(req, good, 2)); /* -EALREADY, nothing sent */
        grace_reply(req, 200, "whole", 5);
        note(f, grace_reply_end_trailers(req, good, 2)); /* -EALREADY: complete */
        return;
    }
    if (!strcmp(p, "/204")) {
        grace_reply_start(req, 204);
        note(f, grace_reply_end_trailers(req, good, 2)); /* no content: 1, complete without them */
        return;
    }
    grace_reply_start(req, 200);
    grace_reply_chunk(req, "hello", 5);
    if (!strcmp(p, "/bad")) {
        static const char *const bad[][2] = {
            {"Content-Length", "5"}, {"Bad Name", "x"}, {"x", "a\r\nInjected: 1"}, {"x", " v"},
            {"Set-Cookie", "a=b"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *const pair[] = {"grpc-status", "0", bad[i][0], bad[i][1]};
            note(f, grace_reply_end_trailers(req, pair, 2)); /* -EINVAL: the first is fine */
        }
        note(f, grace_reply_end_trailers(req, NULL, 1)); /* -EINVAL */
        note(f, grace_reply_chunk(req, "more", 4));      /* 0: still streaming */
    }
    if (!strcmp(p, "/empty"))
        note(f, grace_reply_end_trailers(req, NULL, 0));
    else
        note(f, grace_reply_end_trailers(req, good, 2));
    note(f, grace_reply_end_trailers(req, good, 2)); /* -EALREADY */
}

#define CLOSE_REQ(m, path, v) m " " path " HTTP/" v "\r\nHost: t\r\nConnection: close\r\n\r\n"

static void c_reply(struct fx *f)
{
    struct rc_log *l = f->user;
    char *r;

    /* HTTP/1.1: the last chunk, the fields, the empty line */
    r = exchange(f, CLOSE_REQ("GET", "/ok", "1.1"));
    ck_assert_msg(strstr(r, "Transfer-Encoding: chunked\r\n"), "%s", r);
    ck_assert_msg(ends_with(r, "\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\nX-Sum: 5\r\n\r\n"),
                  "%s", r);
    free(r);
    ck_assert_int_eq(l->n, 2);
    ck_assert_int_eq(l->rc[0], 0);
    ck_assert_int_eq(l->rc[1], -EALREADY);

    /* refused fields: nothing sent, the reply goes on */
    l->n = 0;
    r = exchange(f, CLOSE_REQ("GET", "/bad", "1.1"));
    ck_assert_msg(ends_with(r, "5\r\nhello\r\n4\r\nmore\r\n0\r\ngrpc-status: 0\r\nX-Sum: 5\r\n\r\n"),
                  "%s", r);
    ck_assert_ptr_null(strstr(r, "Injected"));
    free(r);
    ck_assert_int_eq(l->n, 9);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(l->rc[i], -EINVAL);
    ck_assert_int_eq(l->rc[6], 0);
    ck_assert_int_eq(l->rc[7], 0);
    ck_assert_int_eq(l->rc[8], -EALREADY);

    /* HTTP/1.0: close-delimited, no place for them: the body ends as usual */
    l->n = 0;
    r = exchange(f, CLOSE_REQ("GET", "/ok", "1.0"));
    ck_assert_ptr_null(strstr(r, "Transfer-Encoding"));
    ck_assert_msg(ends_with(r, "\r\n\r\nhello"), "%s", r);
    free(r);
    ck_assert_int_eq(l->rc[0], 1);
    ck_assert_int_eq(l->rc[1], -EALREADY); /* the reply is complete nonetheless */

    /* HEAD: no content, no trailers; the connection goes on */
    l->n = 0;
    r = exchange(f, "HEAD /ok HTTP/1.1\r\nHost: t\r\n\r\n" CLOSE_REQ("GET", "/empty", "1.1"));
    ck_assert_msg(ends_with(r, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "%s", r);
    ck_assert_ptr_null(strstr(r, "grpc-status"));
    free(r);
    ck_assert_int_eq(l->n, 4);
    ck_assert_int_eq(l->rc[0], 1);
    ck_assert_int_eq(l->rc[1], -EALREADY);
    ck_assert_int_eq(l->rc[2], 0);
    ck_assert_int_eq(l->rc[3], -EALREADY);

    /* 204 has no content either; a reply never started is refused */
    l->n = 0;
    r = exchange(f, "GET /204 HTTP/1.1\r\nHost: t\r\n\r\n" CLOSE_REQ("GET", "/none", "1.1"));
    ck_assert_ptr_null(strstr(r, "grpc-status"));
    ck_assert_msg(ends_with(r, "\r\n\r\nwhole"), "%s", r);
    free(r);
    ck_assert_int_eq(l->n, 3);
    ck_assert_int_eq(l->rc[0], 1);
    ck_assert_int_eq(l->rc[1], -EALREADY);
    ck_assert_int_eq(l->rc[2], -EALREADY);
}

START_TEST(test_reply_trailers)
{
    struct rc_log log = {{0}, 0};
    struct fx *f = fx_new();
    f->user = &log;
    fx_start(f, h_reply);
    fx_run(f, c_reply, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_REQUESTS), 7);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- request trailers */

/* What the handler saw: "<before>|<in on_data>|name=value;...|<count>". */
struct seen {
    struct evbuffer *out;
    int before_data;
};

static void list_trailers(struct grace_request *req, struct evbuffer *out)
{
    const char *name, *value, *v;
    size_t pos = 0;

    for (size_t i = 0; grace_request_trailer_at(req, i, &name, &value) == 0; i++)
        evbuffer_add_printf(out, "%s=%s;", name, value);
    evbuffer_add_printf(out, "|%zu|", grace_request_trailer_count(req));
    while ((v = grace_request_trailer_next(req, "x-sum", &pos)))
        evbuffer_add_printf(out, "%s,", v);
    evbuffer_add_printf(out, "|%s|%s|%s", grace_request_trailer(req, "GRPC-STATUS") ?: "-",
                        grace_request_trailer(req, "content-length") ?: "-",
                        grace_request_header(req, "Host") ?: "-");
}

static void rt_data(struct grace_request *req, const char *d, size_t len, void *arg)
{
    struct seen *s = arg;
    if (grace_request_trailer(req, "x-sum") || grace_request_trailer_count(req))
        s->before_data = 1; /* shown before the body's end */
}

static void rt_end(struct grace_request *req, void *arg)
{
    struct seen *s = arg;
    evbuffer_add_printf(s->out, "%d|", s->before_data);
    list_trailers(req, s->out);
    grace_reply_buffer(req, 200, s->out);
}

static void rt_collected(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct seen *s = arg;
    evbuffer_add_printf(s->out, "%zu|", evbuffer_get_length(body));
    list_trailers(req, s->out);
    grace_reply_buffer(req, 200, s->out);
}

static void rt_finish(struct grace_request *req, int err, void *arg)
{
    struct seen *s = arg;
    evbuffer_free(s->out);
    free(s);
}

static void h_request(struct grace_request *req, void *arg)
{
    struct seen *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    s->out = evbuffer_new();
    /* in the handler: the body (and its trailers) still to come */
    s->before_data = grace_request_trailer(req, "x-sum") || grace_request_trailer_count(req);
    grace_request_on_finish(req, rt_finish, s);
    if (!strcmp(grace_request_path(req), "/collect"))
        grace_request_collect_body(req, 0, rt_collected, s);
    else
        grace_request_read_body(req, rt_data, rt_end, s);
}

#define CHUNKED(path) \
    "POST " path " HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

static void c_request(struct fx *f)
{
    char *r;

    /* kept in order, repeated names walked, the forbidden ones dropped
     * (never merged: Host stays the head's, Content-Length absent) */
    r = exchange(f, CHUNKED("/read") "5\r\nhello\r\n0\r\nX-Sum: 5\r\nContent-Length: 99\r\n"
                                     "Host: evil\r\nx-sum:  6 \r\ngrpc-status: 0\r\n\r\n");
    ck_assert_msg(ends_with(r, "\r\n\r\n0|X-Sum=5;x-sum=6;grpc-status=0;|3|5,6,|0|-|t"), "%s", r);
    free(r);
    r = exchange(f, CHUNKED("/collect") "5\r\nhello\r\n0\r\ngrpc-status: 2\r\n\r\n");
    ck_assert_msg(ends_with(r, "\r\n\r\n5|grpc-status=2;|1||2|-|t"), "%s", r);
    free(r);
    /* none: an empty section, and a Content-Length body */
    r = exchange(f, CHUNKED("/read") "5\r\nhello\r\n0\r\n\r\n");
    ck_assert_msg(ends_with(r, "\r\n\r\n0||0||-|-|t"), "%s", r);
    free(r);
    r = exchange(f, "POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close"
                    "\r\n\r\nab");
    ck_assert_msg(ends_with(r, "\r\n\r\n0||0||-|-|t"), "%s", r);
    free(r);
    /* above max-trailer-bytes (128 here): 431, the connection closes;
     * exactly at it: kept */
    for (int over = 1; over >= 0; over--) {
        char req[512], want[256];
        size_t v = 128 - strlen("X-Sum: 5\r\nX-Big: \r\n") + (size_t)over;
        int n = snprintf(req, sizeof(req), CHUNKED("/read") "5\r\nhello\r\n0\r\nX-Sum: 5\r\nX-Big: ");
        memset(req + n, 'b', v);
        strcpy(req + n + v, "\r\n\r\n");
        r = exchange(f, req);
        if (over) {
            ck_assert_msg(!strncmp(r, "HTTP/1.1 431 ", 13), "%s", r);
            ck_assert_ptr_nonnull(strstr(r, "trailer section too large"));
        } else {
            n = snprintf(want, sizeof(want), "X-Big=");
            memset(want + n, 'b', v);
            strcpy(want + n + v, ";|2|5,|-|-|t");
            ck_assert_msg(ends_with(r, want), "%s", r);
        }
        free(r);
    }
}

START_TEST(test_request_trailers)
{
    struct fx *f = fx_new();
    ck_assert_int_eq(grace_config_set(f->cfg, GRACE_OPT_MAX_TRAILER_BYTES, 128), 0);
    fx_start(f, h_request);
    fx_run(f, c_request, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_REQUESTS), 6);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_ERR_431), 1);
    fx_free(f);
}
END_TEST

static Suite *trailer_suite(void)
{
    Suite *s = suite_create("trailer");
    TCase *tc = tcase_create("rules");
    tcase_add_loop_test(tc, test_field_ok, 0, (int)(sizeof(field_cases) / sizeof(field_cases[0])));
    tcase_add_test(tc, test_field_null);
    tcase_add_test(tc, test_store);
    suite_add_tcase(s, tc);

    tc = tcase_create("http1");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_reply_trailers);
    tcase_add_test(tc, test_request_trailers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trailer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
