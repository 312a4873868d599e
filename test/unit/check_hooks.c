/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_hooks.c - per-request limits (body size, body and write timeouts)
 * and the connection hooks (accept filter, close hook, user data, local
 * address, drop), over real loopback sockets. Every hook test counts how
 * often each hook ran; the close hook must run exactly once per kept
 * connection, whatever ended it, and ASan watches the callbacks that drop
 * connections and free their data.
 */
#include "config.h"
#include "testlib.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static struct resp R;

static void expect_status(int fd, int status, const char *body)
{
    ck_assert_int_eq(cli_read_response(fd, &R, 0), 0);
    ck_assert_int_eq(R.status, status);
    if (body)
        ck_assert_str_eq(R.body, body);
}

/* A body of n bytes, 'b' each (static: the client thread sends it). */
static char *body_of(size_t n)
{
    static char *b;
    static size_t bn;
    if (bn < n) {
        free(b);
        b = malloc(n);
        ck_assert_ptr_nonnull(b);
        bn = n;
    }
    memset(b, 'b', n);
    return b;
}

/* Send a PUT of n bytes with Content-Length; returns the send result. */
static int put_len(int fd, const char *path, size_t n)
{
    char head[256];
    snprintf(head, sizeof(head), "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", path,
             n);
    cli_send(fd, head);
    return cli_send_all(fd, body_of(n), n);
}

/* ---------------------------------------------------------------- handlers */

static void finish_record(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    if (err)
        f->reply_rc = grace_reply(req, 500, NULL, 0); /* completes our side: -ENOTCONN */
}

static void collected_len(struct grace_request *req, struct evbuffer *body, void *arg)
{
    char out[32];
    int n = snprintf(out, sizeof(out), "%zu", evbuffer_get_length(body));
    grace_reply(req, 200, out, (size_t)n);
}

/* /big: its own limit of 1 MB, far over the server's 1000 bytes */
static void h_big(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_record, f);
    ck_assert_int_eq(grace_request_set_max_body(req, 1000000), 0);
    f->reply_rc = grace_request_collect_body(req, 0, collected_len, f);
    if (f->reply_rc == 0) /* too late to change the limit now */
        ck_assert_int_eq(grace_request_set_max_body(req, 10), -EALREADY);
}

/* /small: a limit of 10 bytes, and the handler returns without reading or
 * replying: the server decides the 413 when it returns */
static void h_small_defer(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_record, f);
    ck_assert_int_eq(grace_request_set_max_body(req, 10), 0);
}

/* /ask: a limit of 10, then asks for the body: refused, and it answers */
static void h_small_ask(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    ck_assert_int_eq(grace_request_set_max_body(req, 10), 0);
    f->reply_rc = grace_request_collect_body(req, 0, collected_len, f);
    if (f->reply_rc < 0)
        grace_reply(req, 413, "mine\n", 5);
}

/* /chunk3k: chunked bodies are cut at its own limit of 3000 */
static void h_chunk3k(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_record, f);
    ck_assert_int_eq(grace_request_set_max_body(req, 3000), 0);
    ck_assert_int_eq(grace_request_collect_body(req, 0, collected_len, f), 0);
}

static void add_limit_routes(struct fx *f)
{
    ck_assert_int_eq(grace_server_route(f->srv, NULL, "/big", 0, h_big, f), 0);
    ck_assert_int_eq(grace_server_route(f->srv, NULL, "/small", 0, h_small_defer, f), 0);
    ck_assert_int_eq(grace_server_route(f->srv, NULL, "/ask", 0, h_small_ask, f), 0);
    ck_assert_int_eq(grace_server_route(f->srv, NULL, "/chunk3k", 0, h_chunk3k, f), 0);
}

static void send_chunked(int fd, const char *path, int pieces)
{
    char head[256], chunk[1100];
    snprintf(head, sizeof(head),
             "PUT %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", path);
    cli_send(fd, head);
    int n = snprintf(chunk, sizeof(chunk), "%x\r\n", 1000);
    memset(chunk + n, 'z', 1000);
    memcpy(chunk + n + 1000, "\r\n", 2);
    for (int i = 0; i < pieces; i++)
        if (cli_send_all(fd, chunk, (size_t)n + 1002) < 0)
            return;
    cli_send_all(fd, "0\r\n\r\n", 5);
}

/* ---------------------------------------------------------------- body limits */

static void c_route_limits(struct fx *f)
{
    int fd = cli_connect(f->port);
    /* a route raises the limit for itself: 500 kB where the server allows 1000 */
    ck_assert_int_eq(put_len(fd, "/big", 500000), 0);
    expect_status(fd, 200, "500000");
    ck_assert(!R.closed);
    resp_free(&R);
    /* chunked too */
    send_chunked(fd, "/big", 5);
    expect_status(fd, 200, "5000");
    resp_free(&R);
    /* the server's default still holds where no handler changed it */
    cli_send(fd, "PUT /other HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
    expect_status(fd, 413, "too big\n"); /* the application's answer (h_collect) */
    resp_free(&R);
    close(fd);

    /* a route lowers it, and returns without reading: 413 from the server,
     * before any body byte was sent */
    fd = cli_connect(f->port);
    cli_send(fd, "PUT /small HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n");
    expect_status(fd, 413, "request body too large\n");
    ck_assert(R.closed);
    resp_free(&R);
    ck_assert_int_eq(cli_wait_eof(fd, 3000), 1);
    close(fd);

    /* asking for the body refuses it at once: the application answers */
    fd = cli_connect(f->port);
    cli_send(fd, "PUT /ask HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 "Content-Length: 11\r\n\r\n");
    expect_status(fd, 413, "mine\n"); /* and no 100 Continue before it */
    ck_assert(R.closed);
    resp_free(&R);
    close(fd);

    /* a chunked body is cut at the route's limit */
    fd = cli_connect(f->port);
    send_chunked(fd, "/chunk3k", 5);
    expect_status(fd, 413, NULL);
    ck_assert(R.closed);
    resp_free(&R);
    close(fd);
}

static void h_other(struct grace_request *req, void *arg)
{
    h_collect(req, arg); /* the server's limit: collect_body(0) */
}

START_TEST(test_route_body_limit)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, 1000);
    fx_start(f, h_other);
    add_limit_routes(f);
    fx_run(f, c_route_limits, 10000);
    /* /big twice, /other, /small, /ask, /chunk3k */
    ck_assert_int_eq(f->handler_calls, 6);
    ck_assert_int_eq(f->finish_err, -EMSGSIZE); /* the last: /chunk3k */
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_ERR_413), 2); /* /small, /chunk3k */
    fx_free(f);
}
END_TEST

/* The server's 413 after the handler returned reaches a client that is
 * still sending a large body, then the connection closes gracefully. */
static void c_413_while_uploading(struct fx *f)
{
    int fd = cli_connect(f->port);
    /* 8 MB: far more than the socket buffers take; send() blocks until the
     * server discards while it lingers */
    ck_assert_int_eq(put_len(fd, "/small", 8u << 20), 0);
    expect_status(fd, 413, "request body too large\n");
    ck_assert(R.closed);
    resp_free(&R);
    shutdown(fd, SHUT_WR); /* ends the server's linger */
    ck_assert_int_eq(cli_wait_eof(fd, 5000), 1);
    close(fd);
}

START_TEST(test_route_413_while_uploading)
{
    struct fx *f = fx_new();
    fx_start(f, h_other);
    add_limit_routes(f);
    fx_run(f, c_413_while_uploading, 15000);
    ck_assert_int_eq(f->handler_calls, 1);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, -EMSGSIZE);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 1);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- timeouts */

static void h_short_body(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_record, f);
    ck_assert_int_eq(grace_request_set_body_timeout(req, -1), -EINVAL);
    ck_assert_int_eq(grace_request_set_body_timeout(req, 86400001), -EINVAL);
    ck_assert_int_eq(grace_request_set_body_timeout(req, 300), 0);
    ck_assert_int_eq(grace_request_collect_body(req, 0, collected_len, f), 0);
}

static int64_t elapsed_ms;

static void c_short_body(struct fx *f)
{
    int fd = cli_connect(f->port);
    int64_t t0 = now_ms();
    cli_send(fd, "PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    expect_status(fd, 408, NULL);
    elapsed_ms = now_ms() - t0;
    resp_free(&R);
    close(fd);
}

START_TEST(test_request_body_timeout)
{
    struct fx *f = fx_new();
    /* the server's body-timeout is the default 30 s: only the request's
     * own 300 ms can end this within the test's 10 s */
    fx_start(f, h_short_body);
    fx_run(f, c_short_body, 10000);
    ck_assert_int_eq(f->finish_err, -ETIMEDOUT);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 1);
    ck_assert_int_ge(elapsed_ms, 250);
    ck_assert_int_lt(elapsed_ms, 8000);
    fx_free(f);
}
END_TEST

/* Progress, not silence: a body trickling in (a byte per 100 ms, 1 s in
 * all) outlives the request's own 300 ms body-timeout. */
static void c_trickle_body(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    for (int i = 0; i < 10; i++) {
        usleep(100000);
        ck_assert_int_eq(cli_send_all(fd, "b", 1), 0);
    }
    expect_status(fd, 200, "10");
    resp_free(&R);
    close(fd);
}

START_TEST(test_request_body_timeout_progress)
{
    struct fx *f = fx_new();
    /* body-timeout alone: 10 bytes/s is below body-min-rate (check_progress) */
    grace_config_set(f->cfg, GRACE_OPT_BODY_MIN_RATE, 0);
    fx_start(f, h_short_body);
    fx_run(f, c_trickle_body, 10000);
    ck_assert_int_eq(f->finish_err, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 0);
    fx_free(f);
}
END_TEST

#define BIG_REPLY (16u << 20)

static void h_short_write(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_record, f);
    ck_assert_int_eq(grace_request_set_write_timeout(req, 300), 0);
    grace_reply(req, 200, body_of(BIG_REPLY), BIG_REPLY);
}

static void c_short_write(struct fx *f)
{
    int n = 4096, fd = cli_connect(f->port);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
    cli_send(fd, GET("/x"));
    /* read nothing: only the request's own 300 ms write-timeout (the
     * server's is 30 s) ends the connection; the client then sees EOF or a
     * reset after what the buffers held */
    int64_t t0 = now_ms();
    while (f->handler_calls == 0 || fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE) == 0) {
        if (now_ms() - t0 > 8000)
            break;
        usleep(50000);
    }
    elapsed_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_request_write_timeout)
{
    struct fx *f = fx_new();
    fx_start(f, h_short_write);
    fx_run(f, c_short_write, 12000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 1);
    ck_assert_int_lt(elapsed_ms, 8000);
    fx_free(f);
}
END_TEST

/* A slow but steady reader (256 KiB per 100 ms: 16 MiB take seconds, far
 * beyond what the socket buffers hold) is never cut by the request's own
 * 300 ms write-timeout, although its reads free too little of the send
 * buffer for the socket to wake the server within 300 ms. */
static void h_steady_write(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_record, f);
    ck_assert_int_eq(grace_request_set_write_timeout(req, 300), 0);
    grace_reply(req, 200, body_of(BIG_REPLY), BIG_REPLY);
}

static void c_steady_read(struct fx *f)
{
    int fd = cli_connect(f->port);
    static char buf[32768];
    size_t got = 0;
    ssize_t k = 1;
    int64_t t0 = now_ms();
    cli_send(fd, GET("/x"));
    while (k != 0 && got < BIG_REPLY) { /* the head, then the whole body */
        size_t tick = 0;
        usleep(100000);
        while (tick < 256 * 1024 && (k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            tick += (size_t)k;
        got += tick;
    }
    ck_assert_uint_ge(got, BIG_REPLY);
    elapsed_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_request_write_timeout_progress)
{
    struct fx *f = fx_new();
    fx_start(f, h_steady_write);
    fx_run(f, c_steady_read, 20000);
    ck_assert_int_ge(elapsed_ms, 1000); /* many write-timeout periods */
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- hooks */

#define MAXC 64
static int accepted_n, closes[MAXC], close_reason[MAXC], refuse_all;
static int last_reason = 1;

struct cdata {
    int id;
    char *heap; /* freed by the close hook: ASan sees a leak or a double free */
};

static int on_accept(struct grace_conn *conn, void *arg)
{
    socklen_t len, llen;
    const struct sockaddr_in *peer = (const void *)grace_conn_peer(conn, &len);
    const struct sockaddr_in *local = (const void *)grace_conn_local(conn, &llen);
    struct fx *f = arg;

    ck_assert_ptr_eq(grace_conn_server(conn), f->srv);
    ck_assert_int_eq(peer->sin_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(llen, sizeof(struct sockaddr_in));
    ck_assert_int_eq(ntohs(local->sin_port), f->port);
    ck_assert_int_eq(grace_conn_is_tls(conn), 0);
    /* refuse by peer address: 127.0.0.2 is not welcome */
    if (peer->sin_addr.s_addr == htonl(0x7f000002))
        return -1;
    if (refuse_all) { /* a drop from the accept hook is a refusal */
        ck_assert_int_eq(grace_conn_drop(conn, GRACE_DROP_ABORT), 0);
        return 0;
    }
    ck_assert_int_lt(accepted_n, MAXC);
    struct cdata *d = calloc(1, sizeof(*d));
    d->id = accepted_n++;
    d->heap = strdup("conn");
    ck_assert_ptr_null(grace_conn_data(conn));
    grace_conn_set_data(conn, d);
    return 0;
}

static void on_close(struct grace_conn *conn, int reason, void *arg)
{
    struct cdata *d = grace_conn_data(conn);
    (void)arg;
    ck_assert_ptr_nonnull(d);
    closes[d->id]++;
    close_reason[d->id] = reason;
    last_reason = reason;
    /* a drop here does nothing: it is closed already */
    ck_assert_int_eq(grace_conn_drop(conn, GRACE_DROP_ABORT), 0);
    free(d->heap);
    free(d);
    grace_conn_set_data(conn, NULL);
}

static void hooks_reset(void)
{
    accepted_n = 0;
    refuse_all = 0;
    last_reason = 1;
    memset(closes, 0, sizeof(closes));
    memset(close_reason, 0, sizeof(close_reason));
}

static void hooks_on(struct fx *f)
{
    hooks_reset();
    grace_server_on_accept(f->srv, on_accept, f);
    grace_server_on_close(f->srv, on_close, f);
}

/* every kept connection closed exactly once */
static void assert_closed_once(struct fx *f)
{
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), (uint64_t)accepted_n);
    for (int i = 0; i < accepted_n; i++)
        ck_assert_msg(closes[i] == 1, "connection %d: close hook ran %d times", i, closes[i]);
}

/* the connection's data, reached from a request: its id in the body */
static void h_whoami(struct grace_request *req, void *arg)
{
    struct grace_conn *conn = grace_request_conn(req);
    struct cdata *d = grace_conn_data(conn);
    socklen_t len;
    const struct sockaddr_in *local = (const void *)grace_request_local(req, &len);
    char out[64];
    int n = snprintf(out, sizeof(out), "%d %d", d ? d->id : -1, ntohs(local->sin_port));
    (void)arg;
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    grace_reply(req, 200, out, (size_t)n);
}

static int connect_from(const char *src, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    inet_pton(AF_INET, src, &sa.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* a refused connection: closed without a byte read or written */
static void expect_refused(int fd)
{
    char buf[64];
    send(fd, GET("/"), strlen(GET("/")), MSG_NOSIGNAL);
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "refused: recv %zd", n);
    close(fd);
}

static void c_accept_filter(struct fx *f)
{
    char want[64];
    /* kept: the data set in the accept hook is there for its requests */
    int fd = cli_connect(f->port);
    for (int i = 0; i < 2; i++) {
        cli_send(fd, GET("/"));
        snprintf(want, sizeof(want), "0 %d", f->port);
        expect_status(fd, 200, want);
        resp_free(&R);
    }
    close(fd);
    expect_refused(connect_from("127.0.0.2", f->port));
    fd = cli_connect(f->port);
    cli_send(fd, GET("/"));
    snprintf(want, sizeof(want), "1 %d", f->port);
    expect_status(fd, 200, want);
    resp_free(&R);
    close(fd);
    refuse_all = 1;
    expect_refused(cli_connect(f->port));
    usleep(100000);
}

START_TEST(test_accept_filter)
{
    struct fx *f = fx_new();
    fx_start(f, h_whoami);
    hooks_on(f);
    fx_run(f, c_accept_filter, 10000);
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_REFUSED), 2);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 2);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_REQUESTS), 3);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    assert_closed_once(f);
    ck_assert_int_eq(close_reason[0], 0); /* the client closed */
    fx_free(f);
}
END_TEST

/* Two listeners: each request knows which one it came through. */
static void c_local(struct fx *f)
{
    char want[64];
    int port2 = grace_server_port(f->srv, 1);
    int fd = cli_connect(port2);
    cli_send(fd, GET("/"));
    snprintf(want, sizeof(want), "-1 %d", port2);
    expect_status(fd, 200, want);
    resp_free(&R);
    close(fd);
    fd = cli_connect(f->port);
    cli_send(fd, GET("/"));
    snprintf(want, sizeof(want), "-1 %d", f->port);
    expect_status(fd, 200, want);
    resp_free(&R);
    close(fd);
}

START_TEST(test_local_address)
{
    struct fx *f = fx_new();
    fx_start(f, h_whoami);
    ck_assert_int_eq(grace_server_listen(f->srv, "127.0.0.1", 0, NULL), 0);
    ck_assert_int_ne(grace_server_port(f->srv, 1), f->port);
    fx_run(f, c_local, 10000);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- close hook */

/* /later: replies from a timer, so a connection is in flight at a stop */
static void h_route(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    const char *p = grace_request_path(req);
    if (!strcmp(p, "/later"))
        h_later(req, arg);
    else if (!strcmp(p, "/hold")) /* never answered: grace_server_free ends it */
        grace_request_on_finish(req, finish_record, f);
    else if (!strcmp(p, "/collect"))
        h_collect(req, arg);
    else if (!strcmp(p, "/big")) {
        f->handler_calls++;
        grace_reply(req, 200, body_of(BIG_REPLY), BIG_REPLY);
    } else
        h_whoami(req, arg);
}

static void c_close_reasons(struct fx *f)
{
    struct linger lg = {1, 0};
    /* 0: keep-alive, the client closes */
    int fd = cli_connect(f->port);
    cli_send(fd, GET("/"));
    expect_status(fd, 200, NULL);
    resp_free(&R);
    close(fd);
    usleep(50000);
    /* 1: silent, cut by header-timeout */
    fd = cli_connect(f->port);
    ck_assert_int_eq(cli_wait_eof(fd, 3000), 1);
    close(fd);
    /* 2: an early reply, graceful close with linger */
    fd = cli_connect(f->port);
    cli_send(fd, "PUT /collect HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n");
    expect_status(fd, 413, NULL);
    resp_free(&R);
    close(fd);
    usleep(50000);
    /* 3: reset in the middle of a large response */
    fd = cli_connect(f->port);
    int n = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
    cli_send(fd, GET("/big"));
    usleep(200000);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    usleep(200000);
}

START_TEST(test_close_hook_reasons)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_HEADER_TIMEOUT, 300);
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, 1000);
    fx_start(f, h_route);
    hooks_on(f);
    fx_run(f, c_close_reasons, 10000);
    fx_spin(f, 200);
    ck_assert_int_eq(accepted_n, 4);
    assert_closed_once(f);
    ck_assert_int_eq(close_reason[0], 0);
    ck_assert_int_eq(close_reason[1], -ETIMEDOUT);
    ck_assert_int_eq(close_reason[2], 0); /* the linger ended on the client's EOF */
    ck_assert_int_eq(close_reason[3], -ECONNRESET);
    fx_free(f);
}
END_TEST

/* A graceful stop: an idle connection, one in flight, one lingering. */
static void c_stop_mix(struct fx *f)
{
    int idle = cli_connect(f->port);
    cli_send(idle, GET("/"));
    expect_status(idle, 200, NULL);
    resp_free(&R);
    int busy = cli_connect(f->port);
    cli_send(busy, GET("/later"));
    usleep(100000);
    /* the main thread stops the server now (see stop_soon) */
    expect_status(busy, 200, "later /later");
    ck_assert(R.closed);
    resp_free(&R);
    ck_assert_int_eq(cli_wait_eof(idle, 3000), 1);
    close(idle);
    close(busy);
    usleep(100000);
}

static void stopped(struct grace_server *srv, void *arg)
{
    struct fx *f = arg;
    f->stopped++;
}

static void stop_soon(evutil_socket_t fd, short what, void *arg)
{
    struct fx *f = arg;
    ck_assert_int_eq(grace_server_stop(f->srv, 5000, stopped, f), 0);
}

START_TEST(test_close_hook_stop)
{
    struct fx *f = fx_new();
    f->later_ms = 400;
    grace_config_set(f->cfg, GRACE_OPT_STOP_IDLE_GRACE, 500); /* the idle one closes then */
    fx_start(f, h_route);
    hooks_on(f);
    struct timeval tv = {0, 250000};
    struct event *t = evtimer_new(f->base, stop_soon, f);
    evtimer_add(t, &tv);
    fx_run(f, c_stop_mix, 10000);
    fx_spin(f, 100);
    event_free(t);
    ck_assert_int_eq(f->stopped, 1);
    ck_assert_int_eq(accepted_n, 2);
    assert_closed_once(f);
    ck_assert_int_eq(close_reason[0], 0);
    ck_assert_int_eq(close_reason[1], 0);
    fx_free(f);
}
END_TEST

/*
 * Contract: grace_server_stop() from inside the accept hook. The stopped
 * callback frees the server, as docs/examples/echo.c and graced do (their
 * loop ends and the server is freed): it must come only once the
 * connection being accepted is done, and that client gets its answer. The
 * old code reported "stopped" with conn_active 1 and the client read EOF.
 */
static int64_t active_at_stopped = -1;

static void stopped_free(struct grace_server *srv, void *arg)
{
    struct fx *f = arg;
    f->stopped++;
    active_at_stopped = (int64_t)grace_server_counter(srv, GRACE_CNT_CONN_ACTIVE);
    grace_server_free(srv);
    f->srv = NULL;
}

static int stop_in_accept(struct grace_conn *conn, void *arg)
{
    struct fx *f = arg;
    accepted_n++;
    ck_assert_int_eq(grace_server_stop(f->srv, 5000, stopped_free, f), 0);
    return 0;
}

static void c_stop_in_accept(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, GET("/"));
    ck_assert_msg(cli_read_response(fd, &R, 0) == 0,
                  "the connection whose accept hook stopped the server got no answer");
    ck_assert_int_eq(R.status, 200);
    ck_assert(R.closed); /* Connection: close: the server is stopping */
    resp_free(&R);
    close(fd);
    for (int i = 0; i < 100 && !f->stopped; i++)
        usleep(20000);
}

START_TEST(test_stop_in_accept_hook)
{
    struct fx *f = fx_new();
    fx_start(f, h_hello);
    hooks_reset();
    active_at_stopped = -1;
    grace_server_on_accept(f->srv, stop_in_accept, f);
    fx_run(f, c_stop_in_accept, 10000);
    if (f->srv)
        fx_spin(f, 200);
    ck_assert_int_eq(accepted_n, 1);
    ck_assert_int_eq(f->stopped, 1);
    ck_assert_int_eq(active_at_stopped, 0); /* old code: 1 */
    fx_free(f);
}
END_TEST

/*
 * grace_server_stop() from the accept hook while more connections wait in
 * the listen queue: the stop takes them (they may hold requests), each
 * through the accept hook, but not from inside the hook that is running
 * (the old code accepted them there: the hook ran inside itself). "/block"
 * holds the loop while they queue; the hook then stops at the next accept.
 */
#define QN 4
static int hook_depth, hook_max_depth, stop_armed;

static void stopped_count(struct grace_server *srv, void *arg)
{
    ((struct fx *)arg)->stopped++;
}

static int stop_in_accept_queued(struct grace_conn *conn, void *arg)
{
    struct fx *f = arg;
    hook_depth++;
    if (hook_depth > hook_max_depth)
        hook_max_depth = hook_depth;
    accepted_n++;
    if (stop_armed == 1) {
        stop_armed = 2;
        ck_assert_int_eq(grace_server_stop(f->srv, 5000, stopped_count, f), 0);
    }
    hook_depth--;
    return 0;
}

static void h_block_arm(struct grace_request *req, void *arg)
{
    if (!strcmp(grace_request_path(req), "/block")) {
        usleep(400000); /* the loop is held: connections queue in the kernel */
        stop_armed = 1;
    }
    h_hello(req, arg);
}

static void c_stop_in_accept_queued(struct fx *f)
{
    int q[QN], b = cli_connect(f->port);
    cli_send(b, GET("/block"));
    usleep(100000);
    for (int i = 0; i < QN; i++) {
        q[i] = cli_connect(f->port);
        cli_send(q[i], GET("/q"));
    }
    expect_status(b, 200, "hello");
    resp_free(&R);
    for (int i = 0; i < QN; i++) {
        ck_assert_msg(cli_read_response(q[i], &R, 0) == 0, "queued connection %d: no answer", i);
        ck_assert_int_eq(R.status, 200);
        ck_assert(R.closed);
        resp_free(&R);
        close(q[i]);
    }
    close(b);
    for (int i = 0; i < 100 && !f->stopped; i++)
        usleep(20000);
}

START_TEST(test_stop_in_accept_hook_queue)
{
    struct fx *f = fx_new();
    fx_start(f, h_block_arm);
    hooks_reset();
    hook_depth = hook_max_depth = stop_armed = 0;
    grace_server_on_accept(f->srv, stop_in_accept_queued, f);
    fx_run(f, c_stop_in_accept_queued, 10000);
    fx_spin(f, 100);
    ck_assert_int_eq(stop_armed, 2);
    ck_assert_int_eq(accepted_n, 1 + QN);
    ck_assert_msg(hook_max_depth == 1, "the accept hook ran inside itself (depth %d)",
                  hook_max_depth);
    ck_assert_int_eq(f->stopped, 1);
    fx_free(f);
}
END_TEST

/* grace_server_free with connections open: each gets its close hook,
 * inside the free, with -ECANCELED. */
static void c_hold_open(struct fx *f)
{
    static int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = cli_connect(f->port);
    cli_send(fds[0], GET("/"));
    expect_status(fds[0], 200, NULL);
    resp_free(&R);
    cli_send(fds[1], GET("/hold"));
    cli_send(fds[2], "GET / HTTP/1.1\r\n"); /* half a request */
    /* refused early, lingering while the client says nothing more */
    cli_send(fds[3], "PUT /collect HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n");
    expect_status(fds[3], 413, NULL);
    resp_free(&R);
    usleep(150000);
    /* the sockets stay open: fx_free closes the server under them */
}

START_TEST(test_close_hook_server_free)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, 1000);
    fx_start(f, h_route);
    hooks_on(f);
    fx_run(f, c_hold_open, 10000);
    ck_assert_int_eq(accepted_n, 4);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGERING), 1);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(closes[i], 0);
    grace_server_free(f->srv);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(closes[i], 1);
        ck_assert_int_eq(close_reason[i], -ECANCELED);
    }
    ck_assert_int_eq(f->finish_err, -ECANCELED); /* /hold */
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    f->srv = grace_server_new(f->base, NULL); /* for fx_free */
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- drop */

/*
 * Drops from inside every kind of callback: the handler (abort and
 * graceful), a body piece, the finish callback, a response report, and
 * from the application's own timer.
 */
static int drop_mode;
enum { D_HANDLER_ABORT = 1, D_HANDLER_GRACEFUL, D_BODY_PIECE, D_FINISH, D_REPORT, D_TIMER };
static struct grace_conn *held_conn;
static int reply_rc_after_drop;

static void drop_finish(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    if (drop_mode == D_FINISH && err == 0)
        ck_assert_int_eq(grace_conn_drop(grace_request_conn(req), GRACE_DROP_ABORT), 0);
}

static void drop_piece(struct grace_request *req, const char *data, size_t len, void *arg)
{
    struct fx *f = arg;
    f->data_calls++;
    ck_assert_int_eq(grace_conn_drop(grace_request_conn(req), GRACE_DROP_ABORT), 0);
    /* the piece stays readable for the whole call */
    ck_assert_int_eq(data[0], 'b');
    ck_assert_int_eq(data[len - 1], 'b');
    reply_rc_after_drop = grace_reply(req, 200, "x", 1); /* releases it */
}

static void drop_end(struct grace_request *req, void *arg)
{
    ck_abort_msg("no end after a drop");
}

static void h_drop(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct grace_conn *conn = grace_request_conn(req);
    f->handler_calls++;
    grace_request_on_finish(req, drop_finish, f);
    switch (drop_mode) {
    case D_HANDLER_ABORT:
        ck_assert_int_eq(grace_conn_drop(conn, 7), -EINVAL);
        ck_assert_int_eq(grace_conn_drop(conn, GRACE_DROP_ABORT), 0);
        ck_assert_ptr_null(grace_request_conn(req));
        reply_rc_after_drop = grace_reply(req, 200, "late", 4);
        break;
    case D_HANDLER_GRACEFUL:
        ck_assert_int_eq(grace_conn_drop(conn, GRACE_DROP_GRACEFUL), 0);
        reply_rc_after_drop = grace_reply(req, 200, "last", 4);
        break;
    case D_BODY_PIECE:
        ck_assert_int_eq(grace_request_read_body(req, drop_piece, drop_end, f), 0);
        break;
    case D_TIMER:
        held_conn = conn;
        /* fall through */
    default:
        grace_reply(req, 200, "ok", 2);
    }
}

static void drop_report(const struct grace_response_info *ri, void *arg)
{
    struct fx *f = arg;
    f->end_calls++;
    if (drop_mode == D_REPORT)
        ck_assert_int_eq(grace_conn_drop(grace_response_info_conn(ri), GRACE_DROP_ABORT), 0);
}

static void c_drop(struct fx *f)
{
    int fd = cli_connect(f->port);
    switch (drop_mode) {
    case D_HANDLER_ABORT:
        cli_send(fd, GET("/"));
        ck_assert_int_ne(cli_wait_eof(fd, 3000), 0); /* EOF or reset, no answer */
        break;
    case D_HANDLER_GRACEFUL:
        cli_send(fd, GET("/"));
        expect_status(fd, 200, "last");
        ck_assert(R.closed);
        resp_free(&R);
        ck_assert_int_eq(cli_wait_eof(fd, 3000), 1);
        break;
    case D_BODY_PIECE:
        put_len(fd, "/", 100000);
        ck_assert_int_ne(cli_wait_eof(fd, 3000), 0);
        break;
    case D_FINISH: /* dropped before the queued answer was written */
        cli_send(fd, GET("/"));
        ck_assert_int_ne(cli_wait_eof(fd, 3000), 0);
        break;
    case D_REPORT:
        cli_send(fd, GET("/"));
        expect_status(fd, 200, "ok");
        resp_free(&R);
        ck_assert_int_ne(cli_wait_eof(fd, 3000), 0);
        break;
    case D_TIMER:
        cli_send(fd, GET("/"));
        expect_status(fd, 200, "ok");
        ck_assert(!R.closed);
        resp_free(&R);
        /* idle now: the main thread's timer drops it gracefully */
        ck_assert_int_eq(cli_wait_eof(fd, 3000), 1);
        break;
    }
    close(fd);
    usleep(50000);
}

static void drop_later(evutil_socket_t fd, short what, void *arg)
{
    if (held_conn)
        ck_assert_int_eq(grace_conn_drop(held_conn, GRACE_DROP_GRACEFUL), 0);
    else
    {
        struct timeval tv = {0, 20000};
        evtimer_add(*(struct event **)arg, &tv);
    }
}

static void run_drop(int mode, int want_reason)
{
    struct fx *f = fx_new();
    struct event *t = NULL;
    drop_mode = mode;
    held_conn = NULL;
    reply_rc_after_drop = 1;
    fx_start(f, h_drop);
    hooks_on(f);
    grace_server_on_response(f->srv, drop_report, f);
    if (mode == D_TIMER) {
        struct timeval tv = {0, 20000};
        t = evtimer_new(f->base, drop_later, &t);
        evtimer_add(t, &tv);
    }
    fx_run(f, c_drop, 10000);
    fx_spin(f, 50);
    if (t)
        event_free(t);
    ck_assert_int_eq(accepted_n, 1);
    assert_closed_once(f);
    ck_assert_int_eq(close_reason[0], want_reason);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_DROPPED), 1);
    ck_assert_int_eq(f->finish_calls, 1);
    fx_free(f);
    f = NULL;
}

START_TEST(test_drop_in_handler)
{
    run_drop(D_HANDLER_ABORT, -ECONNABORTED);
    ck_assert_int_eq(reply_rc_after_drop, -ENOTCONN);
    run_drop(D_HANDLER_GRACEFUL, 0);
    ck_assert_int_eq(reply_rc_after_drop, 0);
}
END_TEST

START_TEST(test_drop_in_body_piece)
{
    run_drop(D_BODY_PIECE, -ECONNABORTED);
    ck_assert_int_eq(reply_rc_after_drop, -ENOTCONN);
}
END_TEST

START_TEST(test_drop_in_finish_and_report)
{
    run_drop(D_FINISH, -ECONNABORTED);
    run_drop(D_REPORT, -ECONNABORTED);
}
END_TEST

START_TEST(test_drop_from_timer)
{
    run_drop(D_TIMER, 0);
}
END_TEST

/* ---------------------------------------------------------------- reports */

/*
 * The response report covers the server's own answers beyond those
 * check_progress tests: 405, 414, 417, 501, a 413 decided after the handler, a
 * 413 cutting a chunked body and a 408 in the middle of a body.
 */
static int rep_status[16], nrep;

static void rep_cb(const struct grace_response_info *ri, void *arg)
{
    if (nrep < 16)
        rep_status[nrep] = grace_response_info_status(ri);
    nrep++;
}

static void h_rep(struct grace_request *req, void *arg)
{
    if (!strcmp(grace_request_path(req), "/slow")) {
        struct fx *f = arg;
        grace_request_on_finish(req, finish_record, f);
        grace_request_set_body_timeout(req, 200);
        grace_request_collect_body(req, 0, collected_len, f);
    } else if (!strcmp(grace_request_path(req), "/c")) {
        struct fx *f = arg;
        grace_request_on_finish(req, finish_record, f);
        grace_request_set_max_body(req, 10);
        grace_request_collect_body(req, 0, collected_len, f);
    } else {
        h_small_defer(req, arg);
    }
}

static const struct {
    const char *req;
    int status;
} rcases[] = {
    {"DELETE /only-get HTTP/1.1\r\nHost: t\r\n\r\n", 405},
    {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: t\r\n\r\n",
     414},
    {"PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"PUT / HTTP/1.1\r\nHost: t\r\nExpect: fancy\r\nContent-Length: 1\r\n\r\n", 417},
    {"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n", 413},
    {"PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     "14\r\n01234567890123456789\r\n",
     413},
    {"PUT /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab", 408},
};
#define NR (sizeof(rcases) / sizeof(rcases[0]))

static void c_reports(struct fx *f)
{
    for (size_t i = 0; i < NR; i++) {
        int fd = cli_connect(f->port);
        cli_send(fd, rcases[i].req);
        expect_status(fd, rcases[i].status, NULL);
        resp_free(&R);
        close(fd);
        usleep(20000);
    }
}

START_TEST(test_report_server_answers)
{
    struct fx *f = fx_new();
    nrep = 0;
    grace_config_set(f->cfg, GRACE_OPT_MAX_REQUEST_LINE, 100);
    fx_start(f, h_rep);
    ck_assert_int_eq(grace_server_route(f->srv, "GET", "/only-get", 0, h_hello, f), 0);
    grace_server_on_response(f->srv, rep_cb, f);
    fx_run(f, c_reports, 10000);
    fx_spin(f, 100);
    ck_assert_int_eq(nrep, (int)NR);
    for (size_t i = 0; i < NR; i++)
        ck_assert_msg(rep_status[i] == rcases[i].status, "report %zu: %d, want %d", i,
                      rep_status[i], rcases[i].status);
    fx_free(f);
}
END_TEST

static Suite *hooks_suite(void)
{
    Suite *s = suite_create("hooks");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_route_body_limit);
    tcase_add_test(tc, test_route_413_while_uploading);
    tcase_add_test(tc, test_request_body_timeout);
    tcase_add_test(tc, test_request_write_timeout);
    tcase_add_test(tc, test_request_body_timeout_progress);
    tcase_add_test(tc, test_request_write_timeout_progress);
    suite_add_tcase(s, tc);
    tc = tcase_create("hooks");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_accept_filter);
    tcase_add_test(tc, test_local_address);
    tcase_add_test(tc, test_close_hook_reasons);
    tcase_add_test(tc, test_close_hook_stop);
    tcase_add_test(tc, test_close_hook_server_free);
    tcase_add_test(tc, test_stop_in_accept_hook);
    tcase_add_test(tc, test_stop_in_accept_hook_queue);
    tcase_add_test(tc, test_drop_in_handler);
    tcase_add_test(tc, test_drop_in_body_piece);
    tcase_add_test(tc, test_drop_in_finish_and_report);
    tcase_add_test(tc, test_drop_from_timer);
    tcase_add_test(tc, test_report_server_answers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hooks_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
