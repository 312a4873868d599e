/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_stream.c - streaming replies over real loopback sockets: the drain
 * callback (backpressure), informational 1xx responses, and the
 * per-request total deadline.
 *
 * Timing: bounds are several times the timer under test, so a loaded
 * machine does not fail them; counters show which timer ended something.
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* A server whose listen socket (and so every accepted one) has a small
 * send buffer: output waits in the server's queue, not the kernel's. */
static void fx_start_sndbuf(struct fx *f, grace_handler_cb h, int sndbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    f->srv = grace_server_new(f->base, f->cfg);
    ck_assert_ptr_nonnull(f->srv);
    grace_server_set_handler(f->srv, h, f);
    ck_assert_int_eq(grace_server_listen_fd(f->srv, fd, NULL), 0);
    f->port = grace_server_port(f->srv, 0);
}

static void set_rcvbuf(int fd, int n)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

/* Read until EOF (or limit bytes); returns the bytes read. */
static size_t read_all(int fd, char *buf, size_t limit)
{
    size_t got = 0;
    ssize_t k;
    while (got < limit && (k = recv(fd, buf + got, limit - got, 0)) > 0)
        got += (size_t)k;
    return got;
}

/* Does a chunked body end with its last chunk? */
static int chunked_complete(const char *buf, size_t n)
{
    return n >= 5 && !memcmp(buf + n - 5, "0\r\n\r\n", 5);
}

/* ================================================================ drain */

#define DR_BIG (2 * MIB)
#define DR_LOW (16 * KIB)
static struct {
    struct fx *f;
    struct grace_request *req;
    int calls, calls_at_timer, in_call, called_inside, end_rc, reg_rc;
    size_t pending_at[4];
    int64_t at_ms[4];
    char *big;
} dr;

static void dr_finish(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    if (err)
        f->reply_rc = grace_reply_end(req); /* -ENOTCONN: releases req */
}

static void dr_drained(struct grace_request *req, void *arg);

/* Registers once more, then the callback ends the reply from inside. */
static void dr_end_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dr.calls_at_timer = dr.calls;
    if (dr.calls == 2) /* else the reply has ended: req is gone */
        dr.reg_rc = grace_reply_on_drain(arg, dr_drained, dr.f);
}

static void dr_drained(struct grace_request *req, void *arg)
{
    int n = dr.calls++;
    if (dr.in_call)
        dr.called_inside = 1;
    if (n < 4) {
        dr.pending_at[n] = grace_reply_pending(req);
        dr.at_ms[n] = now_ms();
    }
    if (n == 0) { /* queue far more than the socket takes, wait again */
        ck_assert_int_eq(grace_reply_chunk(req, dr.big, DR_BIG), 0);
        ck_assert_uint_gt(grace_reply_pending(req), DR_LOW);
        dr.in_call = 1;
        dr.reg_rc = grace_reply_on_drain(req, dr_drained, arg);
        dr.in_call = 0;
    } else if (n == 1) {
        /* more output, written at once: a callback that were not one-shot
         * would run again now; the reply ends a little later */
        struct timeval tv = {0, 100000};
        ck_assert_int_eq(grace_reply_chunk(req, "tail", 4), 0);
        event_base_once(dr.f->base, -1, EV_TIMEOUT, dr_end_later, req, &tv);
    } else {
        dr.end_rc = grace_reply_end(req); /* completing from inside is safe */
    }
}

static void h_drain(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    dr.req = req;
    grace_request_on_finish(req, dr_finish, f);
    ck_assert_int_eq(grace_reply_start(req, 200), 0);
    /* nothing queued yet: due at once, but from the loop, not from here */
    dr.in_call = 1;
    ck_assert_int_eq(grace_reply_on_drain(req, dr_drained, f), 0);
    dr.in_call = 0;
    ck_assert_int_eq(dr.calls, 0);
}

static size_t dr_got;
static int64_t dr_sent_ms;

/* Reads nothing for 500 ms, then everything. */
static void c_drain_slow(struct fx *f)
{
    char *buf = malloc(DR_BIG + 64 * KIB);
    int fd = cli_connect(f->port);
    set_rcvbuf(fd, 16384);
    cli_send(fd, GET("/drain"));
    dr_sent_ms = now_ms();
    usleep(500000);
    dr_got = read_all(fd, buf, DR_BIG + 64 * KIB);
    ck_assert_msg(chunked_complete(buf, dr_got), "stream incomplete (%zu bytes)", dr_got);
    free(buf);
    close(fd);
}

START_TEST(test_drain_once_per_registration)
{
    struct fx *f = fx_new();
    memset(&dr, 0, sizeof(dr));
    dr.f = f;
    dr.big = calloc(1, DR_BIG);
    grace_config_set(f->cfg, GRACE_OPT_OUTPUT_LOW_WATER, DR_LOW);
    fx_start_sndbuf(f, h_drain, 32 * 1024);
    fx_run(f, c_drain_slow, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(dr.called_inside, 0);
    ck_assert_msg(dr.calls_at_timer == 2, "drain callback ran again without a registration");
    ck_assert_msg(dr.calls == 3, "drain callback ran %d times, want 3", dr.calls);
    ck_assert_int_eq(dr.reg_rc, 0);
    ck_assert_uint_eq(dr.pending_at[0], 0);
    /* the second one waited for the client: it read nothing for 500 ms */
    ck_assert_uint_le(dr.pending_at[1], DR_LOW);
    ck_assert_msg(dr.at_ms[1] - dr_sent_ms >= 400, "drained after %lld ms while not read",
                  (long long)(dr.at_ms[1] - dr_sent_ms));
    ck_assert_int_eq(dr.end_rc, 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, 0);
    ck_assert_uint_gt(dr_got, DR_BIG);
    free(dr.big);
    fx_free(f);
}
END_TEST

/* Queues 2 MiB and waits for a drain; the client reads a little and
 * resets the connection: the finish callback says so, the drain callback
 * never runs. */
static void h_drain_gone(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    grace_request_on_finish(req, dr_finish, f);
    ck_assert_int_eq(grace_reply_start(req, 200), 0);
    ck_assert_int_eq(grace_reply_chunk(req, dr.big, DR_BIG), 0);
    ck_assert_int_eq(grace_reply_on_drain(req, dr_drained, f), 0);
}

static void c_drain_gone(struct fx *f)
{
    char buf[4096];
    struct linger lg = {1, 0};
    int fd = cli_connect(f->port);
    set_rcvbuf(fd, 16384);
    cli_send(fd, GET("/gone"));
    ck_assert_int_gt(recv(fd, buf, sizeof(buf), 0), 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* a reset */
    close(fd);
    usleep(200000);
}

START_TEST(test_drain_client_gone)
{
    struct fx *f = fx_new();
    memset(&dr, 0, sizeof(dr));
    dr.f = f;
    dr.big = calloc(1, DR_BIG);
    fx_start_sndbuf(f, h_drain_gone, 32 * 1024);
    fx_run(f, c_drain_gone, 10000);
    fx_spin(f, 100);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, -ECONNRESET);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    ck_assert_int_eq(dr.calls, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    free(dr.big);
    fx_free(f);
}
END_TEST

/* Registration errors, the option, and a cancelled registration. */
static void h_drain_cancel(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    ck_assert_int_eq(grace_reply_on_drain(NULL, dr_drained, f), -EINVAL);
    ck_assert_int_eq(grace_reply_on_drain(req, dr_drained, f), 0);
    ck_assert_int_eq(grace_reply_on_drain(req, NULL, NULL), 0); /* cancelled */
    grace_reply(req, 200, "ok", 2);
}

static void c_one_get(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, GET("/x"));
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    close(fd);
}

START_TEST(test_drain_cancel_and_option)
{
    struct fx *f = fx_new();
    memset(&dr, 0, sizeof(dr));
    ck_assert_int_eq(grace_config_get(f->cfg, GRACE_OPT_OUTPUT_LOW_WATER), 65536);
    ck_assert_str_eq(grace_opt_name(GRACE_OPT_OUTPUT_LOW_WATER), "output-low-water");
    ck_assert_int_eq(grace_config_set(f->cfg, GRACE_OPT_OUTPUT_LOW_WATER, -1), -EINVAL);
    ck_assert_int_eq(grace_config_set(f->cfg, GRACE_OPT_OUTPUT_LOW_WATER, 0), 0);
    fx_start(f, h_drain_cancel);
    fx_run(f, c_one_get, 5000);
    fx_spin(f, 50);
    ck_assert_int_eq(dr.calls, 0);
    fx_free(f);
}
END_TEST

/* ================================================================ 1xx */

static int ix_rc[10];

static void h_interim(struct grace_request *req, void *arg)
{
    static const char *const links[] = {"Link", "</a.css>; rel=preload; as=style", "Link",
                                        "</b.js>; rel=preload; as=script"};
    static const char *const bad_name[] = {"Li nk", "x"};
    static const char *const framing[] = {"Content-Length", "0"};
    static const char *const crlf[] = {"Link", "a\r\nX-Evil: 1"};
    (void)arg;
    ix_rc[0] = grace_reply_informational(req, 100, NULL, 0);
    ix_rc[1] = grace_reply_informational(req, 101, NULL, 0);
    ix_rc[2] = grace_reply_informational(req, 200, NULL, 0);
    ix_rc[3] = grace_reply_informational(req, 103, bad_name, 1);
    ix_rc[4] = grace_reply_informational(req, 103, framing, 1);
    ix_rc[5] = grace_reply_informational(req, 103, crlf, 1);
    ix_rc[6] = grace_reply_informational(req, 103, links, 2);
    ix_rc[7] = grace_reply_informational(req, 102, NULL, 0);
    grace_reply_start(req, 200);
    ix_rc[8] = grace_reply_informational(req, 103, links, 1);
    grace_reply_chunk(req, "body", 4);
    grace_reply_end(req);
}

static char ix_buf[4096];
static size_t ix_len;

static void c_interim(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, "GET /i HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    ix_len = read_all(fd, ix_buf, sizeof(ix_buf) - 1);
    ix_buf[ix_len] = '\0';
    close(fd);
}

static void c_interim_10(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, "GET /i HTTP/1.0\r\n\r\n");
    ix_len = read_all(fd, ix_buf, sizeof(ix_buf) - 1);
    ix_buf[ix_len] = '\0';
    close(fd);
}

START_TEST(test_informational)
{
    struct fx *f = fx_new();
    static const char want[] = "HTTP/1.1 103 Early Hints\r\n"
                               "Link: </a.css>; rel=preload; as=style\r\n"
                               "Link: </b.js>; rel=preload; as=script\r\n\r\n"
                               "HTTP/1.1 102 Processing\r\n\r\n"
                               "HTTP/1.1 200 OK\r\n";
    fx_start(f, h_interim);
    fx_run(f, c_interim, 5000);
    for (int i = 0; i <= 5; i++)
        ck_assert_msg(ix_rc[i] == -EINVAL, "case %d: %d", i, ix_rc[i]);
    ck_assert_int_eq(ix_rc[6], 0);
    ck_assert_int_eq(ix_rc[7], 0);
    ck_assert_int_eq(ix_rc[8], -EALREADY);
    ck_assert_msg(!strncmp(ix_buf, want, sizeof(want) - 1), "got:\n%s", ix_buf);
    ck_assert_ptr_nonnull(strstr(ix_buf, "\r\n\r\n4\r\nbody\r\n0\r\n\r\n"));
    ck_assert_ptr_null(strstr(ix_buf, "X-Evil"));
    fx_free(f);
}
END_TEST

START_TEST(test_informational_http10)
{
    struct fx *f = fx_new();
    fx_start(f, h_interim);
    fx_run(f, c_interim_10, 5000);
    ck_assert_int_eq(ix_rc[6], -EPROTONOSUPPORT);
    ck_assert_int_eq(ix_rc[7], -EPROTONOSUPPORT);
    ck_assert_msg(!strncmp(ix_buf, "HTTP/1.1 200 OK\r\n", 17), "got:\n%s", ix_buf);
    ck_assert_ptr_null(strstr(ix_buf, " 103 "));
    ck_assert_ptr_nonnull(strstr(ix_buf, "\r\n\r\nbody"));
    fx_free(f);
}
END_TEST

/* ================================================================ deadline */

/*
 * The application sets a total deadline; a handler that answers late (a
 * timer), one that streams slowly but steadily, and one that reads a body
 * trickling in. dl.deadline_ms is set in the handler.
 */
enum dl_mode { DL_LATE, DL_STREAM, DL_BODY, DL_QUICK };
static struct {
    enum dl_mode mode;
    struct grace_request *req;
    struct event *ev;
    int deadline_ms, remove, late_ms, ticks, set_rc, neg_rc, started;
    int64_t finish_ms, t0;
} dl;

static void dl_finish(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    dl.finish_ms = now_ms() - dl.t0;
    if (err) {
        event_del(dl.ev);
        /* complete our side: -ENOTCONN, and the request is released */
        f->reply_rc = dl.started ? grace_reply_end(req) : grace_reply(req, 500, NULL, 0);
    }
}

static void dl_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (dl.mode == DL_STREAM) {
        dl.ticks++;
        grace_reply_chunk(dl.req, "tick\n", 5);
    } else {
        grace_reply(dl.req, 200, "late", 4);
    }
}

static void dl_body(struct grace_request *req, struct evbuffer *body, void *arg)
{
    (void)body;
    (void)arg;
    grace_reply(req, 200, "body", 4);
}

static void h_deadline(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {dl.late_ms / 1000, (dl.late_ms % 1000) * 1000};
    f->handler_calls++;
    dl.req = req;
    dl.started = 0;
    dl.t0 = now_ms();
    grace_request_on_finish(req, dl_finish, f);
    dl.neg_rc = grace_request_set_deadline(req, -1);
    dl.set_rc = grace_request_set_deadline(req, dl.deadline_ms);
    if (dl.remove)
        grace_request_set_deadline(req, 0);
    switch (dl.mode) {
    case DL_LATE:
        event_add(dl.ev, &tv);
        break;
    case DL_STREAM:
        dl.started = 1;
        grace_reply_start(req, 200);
        event_add(dl.ev, &tv);
        break;
    case DL_BODY:
        grace_request_collect_body(req, 0, dl_body, f);
        break;
    case DL_QUICK:
        grace_reply(req, 200, "quick", 5);
        break;
    }
}

/* A server for h_deadline; opt (if not -1) set to val first. */
static struct fx *dl_new(enum dl_mode mode, int deadline_ms, int late_ms, int opt, int64_t val)
{
    struct fx *f = fx_new();
    /* totals only: body-min-rate (check_progress) would cut the trickles first */
    grace_config_set(f->cfg, GRACE_OPT_BODY_MIN_RATE, 0);
    if (opt >= 0)
        grace_config_set(f->cfg, (enum grace_opt)opt, val);
    memset(&dl, 0, sizeof(dl));
    dl.mode = mode;
    dl.deadline_ms = deadline_ms;
    dl.late_ms = late_ms;
    fx_start(f, h_deadline);
    dl.ev = event_new(f->base, -1, mode == DL_STREAM ? EV_PERSIST : 0, dl_tick, f);
    return f;
}

static void dl_free(struct fx *f)
{
    event_del(dl.ev);
    event_free(dl.ev);
    fx_free(f);
}

static struct resp dl_r;
static int64_t dl_client_ms;

static void c_get_timed(struct fx *f)
{
    int fd = cli_connect(f->port);
    int64_t t0 = now_ms();
    cli_send(fd, GET("/d"));
    ck_assert_int_eq(cli_read_response(fd, &dl_r, 0), 0);
    dl_client_ms = now_ms() - t0;
    close(fd);
}

/* Nothing sent when the deadline passes: 503, and the connection closes. */
START_TEST(test_deadline_503)
{
    struct fx *f = dl_new(DL_LATE, 300, 1500, -1, 0);
    fx_run(f, c_get_timed, 8000);
    ck_assert_int_eq(dl_r.status, 503);
    ck_assert(dl_r.closed);
    resp_free(&dl_r);
    ck_assert_msg(dl_client_ms >= 250 && dl_client_ms < 1400, "503 after %lld ms",
                  (long long)dl_client_ms);
    ck_assert_int_eq(dl.neg_rc, -EINVAL);
    ck_assert_int_eq(dl.set_rc, 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, -ETIMEDOUT);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_REQUEST), 1);
    dl_free(f);
}
END_TEST

/* A deadline removed again (0) cuts nothing: the late reply is a 200. */
START_TEST(test_deadline_removed)
{
    struct fx *f = dl_new(DL_LATE, 100, 400, -1, 0);
    dl.remove = 1;
    fx_run(f, c_get_timed, 8000);
    ck_assert_int_eq(dl_r.status, 200);
    ck_assert_str_eq(dl_r.body, "late");
    resp_free(&dl_r);
    ck_assert_int_eq(f->finish_err, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_REQUEST), 0);
    dl_free(f);
}
END_TEST

/* A stream that makes steady progress (a chunk every 50 ms, read at once,
 * so write-timeout never runs out) is still cut at its total deadline. */
static char dl_buf[64 * 1024];
static size_t dl_len;

static void c_stream_read(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, GET("/s"));
    dl_len = read_all(fd, dl_buf, sizeof(dl_buf) - 1);
    dl_buf[dl_len] = '\0';
    close(fd);
}

START_TEST(test_deadline_total_stream)
{
    struct fx *f = dl_new(DL_STREAM, 800, 50, GRACE_OPT_WRITE_TIMEOUT, 300);
    fx_run(f, c_stream_read, 8000);
    ck_assert_ptr_nonnull(strstr(dl_buf, "HTTP/1.1 200 OK\r\n"));
    ck_assert_ptr_nonnull(strstr(dl_buf, "tick\n"));
    ck_assert_msg(!chunked_complete(dl_buf, dl_len), "the cut stream looks complete");
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, -ETIMEDOUT);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    ck_assert_msg(dl.finish_ms >= 700 && dl.finish_ms < 2500, "cut after %lld ms",
                  (long long)dl.finish_ms);
    ck_assert_msg(dl.ticks >= 8, "only %d chunks: not progressing", dl.ticks);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_REQUEST), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 0);
    dl_free(f);
}
END_TEST

/* A body trickling in (a byte every 100 ms; body-timeout 400 ms never
 * runs out) is cut at the total deadline with a 503. */
static void c_trickle(struct fx *f)
{
    char b;
    int fd = cli_connect(f->port);
    int64_t t0 = now_ms();
    cli_send(fd, "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n");
    for (int i = 0; i < 40; i++) {
        usleep(100000);
        if (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
            break; /* answered */
        if (cli_send_all(fd, "x", 1) < 0)
            break;
    }
    ck_assert_int_eq(cli_read_response(fd, &dl_r, 0), 0);
    dl_client_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_deadline_total_body)
{
    struct fx *f = dl_new(DL_BODY, 800, 0, GRACE_OPT_BODY_TIMEOUT, 400);
    fx_run(f, c_trickle, 10000);
    ck_assert_int_eq(dl_r.status, 503);
    ck_assert(dl_r.closed);
    resp_free(&dl_r);
    ck_assert_msg(dl_client_ms >= 700 && dl_client_ms < 2500, "503 after %lld ms",
                  (long long)dl_client_ms);
    ck_assert_int_eq(f->finish_err, -ETIMEDOUT);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_REQUEST), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 0);
    dl_free(f);
}
END_TEST

/* The other timers are unaffected: a long deadline does not stop
 * body-timeout from answering a stalled body 408... */
static void c_stall(struct fx *f)
{
    int fd = cli_connect(f->port);
    int64_t t0 = now_ms();
    cli_send(fd, "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\nabc");
    ck_assert_int_eq(cli_read_response(fd, &dl_r, 0), 0);
    dl_client_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_deadline_body_timeout_unaffected)
{
    struct fx *f = dl_new(DL_BODY, 5000, 0, GRACE_OPT_BODY_TIMEOUT, 300);
    fx_run(f, c_stall, 10000);
    ck_assert_int_eq(dl_r.status, 408);
    resp_free(&dl_r);
    ck_assert_msg(dl_client_ms >= 250 && dl_client_ms < 2000, "408 after %lld ms",
                  (long long)dl_client_ms);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_REQUEST), 0);
    dl_free(f);
}
END_TEST

/* ...and a deadline ends with its reply: the connection stays for the
 * next request long after it (keep-alive), and a deadline is per request. */
static int ka_second;

static void c_keepalive_after(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, GET("/q"));
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.closed);
    resp_free(&r);
    usleep(600000); /* three times the deadline */
    cli_send(fd, GET("/q"));
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ka_second = r.status;
    resp_free(&r);
    close(fd);
}

START_TEST(test_deadline_keepalive_unaffected)
{
    struct fx *f = dl_new(DL_QUICK, 200, 0, -1, 0);
    fx_run(f, c_keepalive_after, 8000);
    ck_assert_int_eq(ka_second, 200);
    ck_assert_int_eq(f->handler_calls, 2);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_REQUEST), 0);
    dl_free(f);
}
END_TEST

static Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("drain");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_drain_once_per_registration);
    tcase_add_test(tc, test_drain_client_gone);
    tcase_add_test(tc, test_drain_cancel_and_option);
    suite_add_tcase(s, tc);

    tc = tcase_create("informational");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_informational);
    tcase_add_test(tc, test_informational_http10);
    suite_add_tcase(s, tc);

    tc = tcase_create("deadline");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_deadline_503);
    tcase_add_test(tc, test_deadline_removed);
    tcase_add_test(tc, test_deadline_total_stream);
    tcase_add_test(tc, test_deadline_total_body);
    tcase_add_test(tc, test_deadline_body_timeout_unaffected);
    tcase_add_test(tc, test_deadline_keepalive_unaffected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stream_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
