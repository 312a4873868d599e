/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_linger.c - the early-reply guarantee over real loopback sockets.
 *
 * A client that writes its whole body before reading (as Python's
 * http.client does) must receive the complete early 401 for every body
 * size; with linger=off the same client must fail, which proves the test
 * can fail. Then each way a linger ends (client EOF, idle timeout, total
 * time, byte cap, eviction), the progress-aware extension past linger-time
 * for a client still sending its body (steady, bursty, chunked), the keep-alive drain
 * path, and re-entrant application calls from inside body callbacks.
 */
#include "testlib.h"

#include "linger.h" /* the policy alone, no socket: like parser.h, a pure module */

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *bigbuf; /* 64 MiB of body */
#define BIG (64u << 20)

static void setup(void)
{
    bigbuf = malloc(BIG);
    ck_assert_ptr_nonnull(bigbuf);
    memset(bigbuf, 'b', BIG);
}

static void teardown(void)
{
    free(bigbuf);
}

/* ---------------------------------------------------------------- delivery */

static const size_t sizes[] = {64u << 10, 1u << 20, 16u << 20, 64u << 20};
#define RUNS 3
static int delivered[4];

/* Write the whole request, then read: 1 if the complete 401 arrived. */
static int upload_then_read(int port, size_t n)
{
    struct resp r;
    char head[128];
    int fd = cli_connect(port), ok;
    snprintf(head, sizeof(head), "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    if (cli_send_all(fd, head, strlen(head)) < 0 || cli_send_all(fd, bigbuf, n) < 0) {
        close(fd);
        return 0; /* reset or broken pipe while sending: the answer is lost */
    }
    ok = cli_read_response(fd, &r, 0) == 0 && r.status == 401 && !strcmp(r.body, "no token\n");
    resp_free(&r);
    close(fd);
    return ok;
}

static void c_delivery(struct fx *f)
{
    for (size_t s = 0; s < 4; s++) {
        delivered[s] = 0;
        for (int i = 0; i < RUNS; i++)
            delivered[s] += upload_then_read(f->port, sizes[s]);
    }
}

START_TEST(test_early_401_delivered)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_401);
    fx_run(f, c_delivery, 60000);
    for (size_t s = 0; s < 4; s++)
        ck_assert_msg(delivered[s] == RUNS, "%zu-byte body: %d of %d 401s delivered", sizes[s],
                      delivered[s], RUNS);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_EARLY_REPLIES), 4 * RUNS);
    /* 64 KiB is drained to keep the connection; the rest linger */
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 3 * RUNS);
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 3 * RUNS);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

START_TEST(test_early_401_naive_close_fails)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER, 0);
    fx_start(f, h_401);
    fx_run(f, c_delivery, 60000);
    /* the naive close loses answers for the large bodies */
    int lost = (RUNS - delivered[2]) + (RUNS - delivered[3]);
    ck_assert_msg(lost > 0, "naive close delivered every answer: the test cannot fail");
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- linger ends */

/* Send the request head in f->user, read the 401, then keep sending 20 KB/s
 * until the server cuts the connection: after linger-time, for a client
 * that is not sending a body, or one below linger-min-rate. */
static void c_slow_sender(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, f->user);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 401);
    ck_assert(r.closed);
    resp_free(&r);
    int64_t t0 = now_ms();
    char chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    int rc = 0;
    while (rc == 0 && now_ms() - t0 < 4000) {
        rc = cli_send_all(fd, chunk, sizeof(chunk));
        usleep(50000);
    }
    int64_t dt = now_ms() - t0;
    ck_assert_msg(rc < 0, "server never cut the slow sender");
    ck_assert_msg(dt >= 700 && dt < 3000, "cut after %lld ms", (long long)dt);
    close(fd);
}

/* The request was complete (Connection: close): what the client sends
 * afterwards is no body we wait for, so no rate extends the linger past
 * linger-time, not even with linger-min-rate 0. */
START_TEST(test_linger_total_time)
{
    struct fx *f = fx_new();
    f->user = "PUT /up HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 800);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIMEOUT, 500);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MIN_RATE, 0);
    fx_start(f, h_401);
    int fds = count_fds();
    fx_run(f, c_slow_sender, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(count_fds(), fds); /* back to where it started */
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGERING), 0);
    ck_assert_uint_gt(fx_cnt(f, GRACE_CNT_BYTES_DISCARDED), 0);
    fx_free(f);
}
END_TEST

/* A chunked body at 20 KB/s, below linger-min-rate (256 KiB/s): cut at
 * linger-time as too slow. */
START_TEST(test_linger_chunked_too_slow)
{
    struct fx *f = fx_new();
    f->user = "PUT /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_DRAIN_LIMIT, 0); /* a chunked body would be drained */
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 800);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIMEOUT, 500);
    fx_start(f, h_401);
    fx_run(f, c_slow_sender, 10000);
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGERING), 0);
    fx_free(f);
}
END_TEST

/* Reply 401, then go quiet without closing: cut at the linger timeout. */
static void c_quiet(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\nsome");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    int64_t t0 = now_ms();
    ck_assert_int_eq(cli_wait_eof(fd, 3000), 1); /* our FIN came first... */
    /* ...and the socket is closed after the idle timeout: a write now resets */
    usleep(700000);
    int rc = cli_send_all(fd, "x", 1);
    usleep(50000);
    if (rc == 0)
        rc = cli_send_all(fd, "x", 1);
    ck_assert_msg(rc < 0, "socket still open %lld ms after the reply", (long long)(now_ms() - t0));
    close(fd);
}

START_TEST(test_linger_idle_timeout)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIMEOUT, 300);
    fx_start(f, h_401);
    int fds = count_fds();
    fx_run(f, c_quiet, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_IDLE_TIMEOUT), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* The client's close ends the linger at once, not after a fixed wait. */
static void c_prompt_close(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\nsome");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    resp_free(&r);
    close(fd);
    usleep(100000);
}

START_TEST(test_linger_client_eof)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_401);
    fx_run(f, c_prompt_close, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

static void c_byte_cap(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    resp_free(&r);
    /* 64 MiB is far more than the socket buffers hold: cut off before */
    int rc = cli_send_all(fd, bigbuf, BIG);
    ck_assert_int_lt(rc, 0);
    close(fd);
}

START_TEST(test_linger_byte_cap)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_BYTES, 1 << 20);
    fx_start(f, h_401);
    fx_run(f, c_byte_cap, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_BYTE_CAP), 1);
    fx_free(f);
}
END_TEST

static void c_evict(struct fx *f)
{
    struct resp r;
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = cli_connect(f->port);
        cli_send(fd[i], "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\nx");
        ck_assert_int_eq(cli_read_response(fd[i], &r, 0), 0);
        resp_free(&r);
        usleep(20000);
    }
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    usleep(100000);
}

START_TEST(test_linger_cap_evicts_oldest)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_MAX_LINGERING, 2);
    fx_start(f, h_401);
    fx_run(f, c_evict, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EVICTED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 2);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- drain */

static void c_drain(struct fx *f)
{
    struct resp r;
    static char body[10240];
    char head[128];
    int fd = cli_connect(f->port);
    memset(body, 'd', sizeof(body));
    for (int i = 0; i < 3; i++) {
        snprintf(head, sizeof(head), "PUT /%d HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                 i, sizeof(body));
        cli_send(fd, head);
        ck_assert_int_eq(cli_send_all(fd, body, sizeof(body)), 0);
        ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
        ck_assert_int_eq(r.status, 401);
        ck_assert(!r.closed);
        resp_free(&r);
    }
    /* chunked too, when it ends within the limit */
    cli_send(fd, "PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n0\r\n\r\n" "GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
        ck_assert_int_eq(r.status, 401);
        resp_free(&r);
    }
    close(fd);
}

START_TEST(test_drain_keeps_connection)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_401);
    fx_run(f, c_drain, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_REQUESTS), 5);
    ck_assert_uint_ge(fx_cnt(f, GRACE_CNT_KEEPALIVE_DRAINS), 3);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 0);
    fx_free(f);
}
END_TEST

/* Over the drain limit: Connection: close, then linger. */
static void c_over_drain(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 401);
    ck_assert(r.closed);
    resp_free(&r);
    close(fd);
}

START_TEST(test_drain_limit)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_DRAIN_LIMIT, 1000);
    fx_start(f, h_401);
    fx_run(f, c_over_drain, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 1);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- re-entrancy */

/* Reply from inside the data callback, mid-parse, with a pipelined request
 * right behind the body in the same segment. */
static void data_reply(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct fx *f = arg;
    f->data_calls++;
    f->bytes += n;
    if (grace_reply(req, 200, "early", 5) == 0)
        ck_assert_str_eq(grace_request_path(req), "/p"); /* still valid in the callback */
}

static void end_never(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->end_calls++;
}

static void h_reentrant(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    if (!strcmp(grace_request_path(req), "/p"))
        ck_assert_int_eq(grace_request_read_body(req, data_reply, end_never, f), 0);
    else
        grace_reply(req, 200, "next", 4);
}

static void c_reply_in_data(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789"
                 "GET /q HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_str_eq(r.body, "early");
    resp_free(&r);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_str_eq(r.body, "next");
    resp_free(&r);
    close(fd);
}

START_TEST(test_reply_inside_data_cb)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_reentrant);
    fx_run(f, c_reply_in_data, 5000);
    ck_assert_int_eq(f->handler_calls, 2);
    ck_assert_int_eq(f->data_calls, 1);
    ck_assert_int_eq(f->end_calls, 0); /* no pieces after the reply completed */
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 1);
    fx_free(f);
}
END_TEST

/* Pause in the data callback, resume from a timer; and the client vanishes
 * while paused. */
struct pauser {
    struct fx *f;
    struct grace_request *req;
    struct event *ev;
    int paused_once;
};

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pauser *p = arg;
    grace_request_resume(p->req);
}

static void pause_data(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct pauser *p = arg;
    p->f->bytes += n;
    p->f->data_calls++;
    if (!p->paused_once) {
        struct timeval tv = {0, 100000};
        p->paused_once = 1;
        grace_request_pause(req);
        evtimer_add(p->ev, &tv);
    }
}

static void pause_end(struct grace_request *req, void *arg)
{
    struct pauser *p = arg;
    char b[32];
    int n = snprintf(b, sizeof(b), "%zu", p->f->bytes);
    p->f->end_calls++;
    grace_reply(req, 200, b, (size_t)n);
}

static void pause_finish(struct grace_request *req, int err, void *arg)
{
    struct pauser *p = arg;
    p->f->finish_calls++;
    p->f->finish_err = err;
    if (err) {
        evtimer_del(p->ev); /* the application's own cleanup */
        p->f->reply_rc = grace_reply(req, 500, NULL, 0);
    }
}

static void h_pause(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct pauser *p = f->user;
    p->req = req;
    p->paused_once = 0;
    f->bytes = 0;
    grace_request_on_finish(req, pause_finish, p);
    grace_request_read_body(req, pause_data, pause_end, p);
}

static void c_pause(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n");
    usleep(30000);
    cli_send(fd, "4\r\ndefg\r\n0\r\n\r\n");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_str_eq(r.body, "7");
    resp_free(&r);
    /* the second time the client leaves while the app is paused */
    cli_send(fd, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    usleep(30000);
    close(fd);
    usleep(200000);
}

START_TEST(test_pause_resume_and_vanish)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    struct pauser p = {.f = f};
    f->user = &p;
    fx_start(f, h_pause);
    p.ev = evtimer_new(f->base, resume_cb, &p);
    fx_run(f, c_pause, 5000);
    ck_assert_int_eq(f->end_calls, 1);
    ck_assert_int_eq(f->finish_calls, 2);
    ck_assert_int_eq(f->finish_err, -ECONNRESET);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    event_free(p.ev);
    fx_free(f);
}
END_TEST

/*
 * The client resets the connection while the application is inside a data
 * callback (busy for 100 ms). The loop cannot see the reset before the
 * callback returns, so nothing is destroyed under it. What must hold: the
 * piece stays readable for the whole call, the finish callback reports the
 * reset exactly once and only after the data callback has returned, and a
 * late reply is refused with -ENOTCONN (which releases the request).
 */
static int in_data, finish_in_data;

static void data_then_gone(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct fx *f = arg;
    in_data = 1;
    f->data_calls++;
    ck_assert(f->bytes + n <= 5 && !memcmp(d, "01234" + f->bytes, n));
    usleep(100000); /* the client resets meanwhile */
    ck_assert(!memcmp(d, "01234" + f->bytes, n)); /* still the same bytes */
    f->bytes += n;
    in_data = 0;
}

static void finish_gone(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    finish_in_data |= in_data;
    f->finish_calls++;
    f->finish_err = err;
    f->reply_rc = grace_reply(req, 200, "late", 4);
}

static void h_gone(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    grace_request_on_finish(req, finish_gone, f);
    grace_request_read_body(req, data_then_gone, NULL, f);
}

static void c_gone(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n01234");
    usleep(20000);
    struct linger lg = {1, 0}; /* close with a reset */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    usleep(300000);
}

START_TEST(test_client_reset_mid_body)
{
    struct fx *f = fx_new();
    in_data = finish_in_data = 0;
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_gone);
    fx_run(f, c_gone, 5000);
    ck_assert_int_ge(f->data_calls, 1);
    ck_assert_uint_eq(f->bytes, 5);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(finish_in_data, 0);
    ck_assert_int_eq(f->finish_err, -ECONNRESET);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CLIENT_ABORTS), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* A graceful stop bounds lingering: a linger that would go on 30 s ends
 * stop-linger-time after the stop's deadline (not before the deadline:
 * until then it is an answer's linger like any other), then it reports. */
static void stop_done(struct grace_server *srv, void *arg)
{
    struct fx *f = arg;
    f->stopped++;
}

static void h_401_then_stop(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    h_401(req, arg);
    grace_server_stop(f->srv, 1000, stop_done, f);
}

static void c_linger_during_stop(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\nsome");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    int64_t t0 = now_ms();
    char chunk[1000] = {0};
    int rc = 0;
    while (rc == 0 && now_ms() - t0 < 5000) { /* keeps sending: would linger 30 s */
        rc = cli_send_all(fd, chunk, sizeof(chunk));
        usleep(20000);
    }
    int64_t dt = now_ms() - t0;
    ck_assert_msg(rc < 0 && dt < 1000 + 300 + 1500, "linger not cut by the stop (%lld ms)",
                  (long long)dt);
    ck_assert_msg(dt >= 900, "linger cut %lld ms into a stop, before its deadline (1000)",
                  (long long)dt);
    close(fd);
}

START_TEST(test_linger_cut_by_stop)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_STOP_LINGER_TIME, 300);
    fx_start(f, h_401_then_stop);
    fx_run(f, c_linger_during_stop, 10000);
    fx_spin(f, 100);
    ck_assert_int_eq(f->stopped, 1);
    /* its own timer (linger_total_time) and the stop's last bound are due
     * at the same time: either may close it */
    ck_assert_uint_le(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGERING), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- progress */

/*
 * A linger that reaches linger-time goes on while the client is visibly
 * finishing its request body (Content-Length or chunked): it sent at least
 * linger-min-rate over linger-rate-window, or the whole linger while that is
 * shorter (checked every second), or, its remainder known, fast enough to
 * end it before linger-max-time. Otherwise it is cut
 * (linger_too_slow); linger-max-time is the hard bound (linger_total_time);
 * linger-timeout of silence still ends it (linger_idle_timeout).
 */

/* n bytes at rate bytes/s, in 256 KiB writes. 0, or -errno once cut. */
static int send_paced(int fd, size_t n, double rate, size_t *sent)
{
    int64_t t0 = now_ms();
    *sent = 0;
    while (*sent < n) {
        size_t k = n - *sent < (256u << 10) ? n - *sent : (256u << 10);
        int rc = cli_send_all(fd, bigbuf, k);
        if (rc)
            return rc;
        *sent += k;
        int64_t due = t0 + (int64_t)((double)*sent * 1000 / rate), now = now_ms();
        if (due > now)
            usleep((useconds_t)(due - now) * 1000);
    }
    return 0;
}

#define PROG_BODY (128u << 20)
#define PROG_RATE (2.5 * (1 << 20)) /* 51 s for the body: past linger-time */
static int prog_rc, prog_got;
static size_t prog_sent;

/* Python's http.client: the whole body first, then read the answer. */
static void c_paced_upload(struct fx *f)
{
    char head[128];
    struct resp r;
    int fd = cli_connect(f->port);
    snprintf(head, sizeof(head), "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
             PROG_BODY);
    cli_send(fd, head);
    prog_rc = send_paced(fd, PROG_BODY, PROG_RATE, &prog_sent);
    prog_got = prog_rc == 0 && cli_read_response(fd, &r, 0) == 0 && r.status == 401 &&
               !strcmp(r.body, "no token\n");
    if (prog_rc == 0)
        resp_free(&r);
    close(fd);
}

START_TEST(test_linger_steady_sender_extended)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30); /* else all defaults */
    fx_start(f, h_401);
    fx_run(f, c_paced_upload, 90000);
    ck_assert_msg(prog_rc == 0, "upload cut after %zu of %u bytes (%d)", prog_sent, PROG_BODY,
                  prog_rc);
    ck_assert_msg(prog_got, "the 401 was not received complete");
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 0);
    fx_free(f);
}
END_TEST

/* Read the 401, then send at a fixed pace (bytes every 10 ms) until the
 * server cuts the connection or stop_ms; return how long that took. */
static int64_t send_until_cut(struct fx *f, const char *head, size_t per_10ms, int stop_ms,
                              int *cut)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, head);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    int64_t t0 = now_ms();
    *cut = 0;
    while (!*cut && now_ms() - t0 < stop_ms) {
        *cut = cli_send_all(fd, bigbuf, per_10ms) < 0;
        usleep(10000);
    }
    close(fd);
    return now_ms() - t0;
}

#define HEAD_512M "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 536870912\r\n\r\n"
static int64_t cut_ms;
static int cut_seen;

static void c_too_slow(struct fx *f) /* 100 KiB/s */
{
    cut_ms = send_until_cut(f, HEAD_512M, 1024, 4000, &cut_seen);
}

START_TEST(test_linger_too_slow)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 500);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MIN_RATE, 1000000);
    fx_start(f, h_401);
    fx_run(f, c_too_slow, 10000);
    ck_assert_msg(cut_seen && cut_ms >= 400 && cut_ms < 2500, "cut %d after %lld ms", cut_seen,
                  (long long)cut_ms);
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 0);
    fx_free(f);
}
END_TEST

static void c_fast_sender(struct fx *f) /* 6.4 MB/s */
{
    cut_ms = send_until_cut(f, HEAD_512M, 64 << 10, 4000, &cut_seen);
}

/* A steady sender is extended, but not past linger-max-time. */
START_TEST(test_linger_max_time)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 300);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MAX_TIME, 1000);
    fx_start(f, h_401);
    fx_run(f, c_fast_sender, 10000);
    ck_assert_msg(cut_seen && cut_ms >= 800 && cut_ms < 2500, "cut %d after %lld ms", cut_seen,
                  (long long)cut_ms);
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 1);
    fx_free(f);
}
END_TEST

/* Sends steadily for 1 s, then stops without closing: linger-timeout
 * still ends it, whatever the remainder. */
static int quiet_rc_before, quiet_rc_after;

static void c_stops_after_1s(struct fx *f)
{
    char head[128];
    struct resp r;
    size_t sent;
    int fd = cli_connect(f->port);
    snprintf(head, sizeof(head), "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
             PROG_BODY);
    cli_send(fd, head);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    resp_free(&r);
    quiet_rc_before = send_paced(fd, (size_t)PROG_RATE, PROG_RATE, &sent);
    usleep(900000); /* linger-timeout is 500 ms */
    quiet_rc_after = cli_send_all(fd, "x", 1);
    usleep(50000);
    if (quiet_rc_after == 0)
        quiet_rc_after = cli_send_all(fd, "x", 1); /* the first only earns the reset */
    close(fd);
}

START_TEST(test_linger_steady_then_quiet)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIMEOUT, 500);
    fx_start(f, h_401);
    fx_run(f, c_stops_after_1s, 10000);
    ck_assert_int_eq(quiet_rc_before, 0);
    ck_assert_msg(quiet_rc_after < 0, "still open 900 ms after the client went quiet");
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_IDLE_TIMEOUT), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 0);
    fx_free(f);
}
END_TEST

/*
 * Real TCP on a lossy path does not send steadily: it stalls for whole
 * retransmission timeouts (1-3 s) and catches up. The rate is judged over
 * linger-rate-window (or the whole linger if shorter), so a sender with
 * bursts and 2 s stalls that averages above linger-min-rate is extended
 * and reads its answer; one that averages below it is cut.
 */
#define BURST (256u << 10)
#define BURSTS 4
#define BURST_GAP_US 2000000 /* 128 KiB/s on average */
static int burst_rc, burst_got, burst_sent;
static size_t burst_body; /* Content-Length: the bursts, or more */

static void c_bursty(struct fx *f)
{
    char head[128];
    struct resp r;
    int fd = cli_connect(f->port);
    snprintf(head, sizeof(head), "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             burst_body);
    cli_send(fd, head);
    usleep(50000); /* the 401 is out and the linger begun: every burst counts */
    burst_rc = 0;
    burst_sent = 0;
    for (int i = 0; i < BURSTS && burst_rc == 0; i++) {
        if (i)
            usleep(BURST_GAP_US);
        burst_rc = cli_send_all(fd, bigbuf, BURST);
        burst_sent += burst_rc == 0;
    }
    burst_got = burst_rc == 0 && cli_read_response(fd, &r, 0) == 0 && r.status == 401 &&
                !strcmp(r.body, "no token\n");
    if (burst_rc == 0)
        resp_free(&r);
    close(fd);
}

static struct fx *bursty_fx(int64_t min_rate)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 1000);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIMEOUT, 3000); /* longer than a stall */
    grace_config_set(f->cfg, GRACE_OPT_LINGER_RATE_WINDOW, 5000);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MIN_RATE, min_rate);
    fx_start(f, h_401);
    return f;
}

/* Every window of 5 s holds two bursts or more: 102 KiB/s or more. */
START_TEST(test_linger_bursty_extended)
{
    struct fx *f = bursty_fx(64 << 10);
    burst_body = BURST * BURSTS;
    fx_run(f, c_bursty, 30000);
    ck_assert_msg(burst_rc == 0, "cut after %d of %d bursts (%d)", burst_sent, BURSTS, burst_rc);
    ck_assert_msg(burst_got, "the 401 was not received complete");
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 0);
    fx_free(f);
}
END_TEST

/* At most three bursts in any window of 4.4 s or more: 175 KiB/s, below;
 * and a 512 MiB body would take an hour at that pace. */
START_TEST(test_linger_bursty_too_slow)
{
    struct fx *f = bursty_fx(192 << 10);
    burst_body = 512u << 20;
    fx_run(f, c_bursty, 30000);
    ck_assert_msg(burst_rc < 0 && burst_sent < BURSTS, "never cut (%d bursts)", burst_sent);
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOTAL_TIME), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGERING), 0);
    fx_free(f);
}
END_TEST

/* Below linger-min-rate but its known remainder ends well before
 * linger-max-time at this pace: extended, and it reads its answer (a slow
 * link still gets it). 300 KiB at 100 KiB/s, floor 1 MB/s. */
static void c_slow_but_finishing(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 307200\r\n\r\n");
    usleep(50000);
    prog_rc = 0;
    for (int i = 0; i < 300 && prog_rc == 0; i++) {
        prog_rc = cli_send_all(fd, bigbuf, 1024);
        usleep(10000);
    }
    prog_got = prog_rc == 0 && cli_read_response(fd, &r, 0) == 0 && r.status == 401;
    if (prog_rc == 0)
        resp_free(&r);
    close(fd);
}

START_TEST(test_linger_slow_but_finishing)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 500);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MIN_RATE, 1000000);
    fx_start(f, h_401);
    fx_run(f, c_slow_but_finishing, 20000);
    ck_assert_msg(prog_rc == 0, "slow upload cut (%d)", prog_rc);
    ck_assert_msg(prog_got, "the 401 was not received complete");
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 1);
    fx_free(f);
}
END_TEST

/* The window slides: 4 MiB at once, then 10 KiB/s. The whole linger's
 * average stays above 100 KiB/s for 40 s; the last 2 s fall below it
 * about 2 s after the burst. */
static void c_fast_then_trickle(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, HEAD_512M);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    int64_t t0 = now_ms();
    cut_seen = cli_send_all(fd, bigbuf, 4u << 20) < 0;
    while (!cut_seen && now_ms() - t0 < 8000) {
        usleep(100000);
        cut_seen = cli_send_all(fd, bigbuf, 1024) < 0;
    }
    cut_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_linger_rate_window_slides)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 500);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_RATE_WINDOW, 2000);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MIN_RATE, 100 << 10);
    fx_start(f, h_401);
    fx_run(f, c_fast_then_trickle, 15000);
    ck_assert_msg(cut_seen && cut_ms >= 1500 && cut_ms < 5000, "cut %d after %lld ms", cut_seen,
                  (long long)cut_ms);
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_TOO_SLOW), 1);
    fx_free(f);
}
END_TEST

/* A chunked upload (remainder unknown) that keeps the rate is extended
 * too, and reads its answer after the last chunk. */
static void c_chunked_steady(struct fx *f)
{
    struct resp r;
    char size[16];
    int fd = cli_connect(f->port);
    cli_send(fd, "PUT /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    usleep(50000);
    snprintf(size, sizeof(size), "%x\r\n", 32u << 10);
    int64_t t0 = now_ms();
    prog_rc = 0;
    while (prog_rc == 0 && now_ms() - t0 < 2000) { /* 320 KiB/s */
        cli_send(fd, size);
        prog_rc = cli_send_all(fd, bigbuf, 32u << 10);
        if (prog_rc == 0)
            prog_rc = cli_send_all(fd, "\r\n", 2);
        usleep(100000);
    }
    if (prog_rc == 0)
        prog_rc = cli_send_all(fd, "0\r\n\r\n", 5);
    prog_got = prog_rc == 0 && cli_read_response(fd, &r, 0) == 0 && r.status == 401;
    if (prog_rc == 0)
        resp_free(&r);
    close(fd);
}

START_TEST(test_linger_chunked_extended)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    grace_config_set(f->cfg, GRACE_OPT_DRAIN_LIMIT, 0); /* a chunked body would be drained */
    grace_config_set(f->cfg, GRACE_OPT_LINGER_TIME, 500);
    grace_config_set(f->cfg, GRACE_OPT_LINGER_MIN_RATE, 64 << 10);
    fx_start(f, h_401);
    fx_run(f, c_chunked_steady, 10000);
    ck_assert_msg(prog_rc == 0, "chunked upload cut (%d)", prog_rc);
    ck_assert_msg(prog_got, "the 401 was not received complete");
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EXTENDED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_CLIENT_EOF), 1);
    fx_free(f);
}
END_TEST

/* Bytes bound no linger by default: linger-bytes is 0 (no cap). */
START_TEST(test_linger_options)
{
    struct grace_config *c = grace_config_new();
    ck_assert_int_eq(grace_config_get(c, GRACE_OPT_LINGER_BYTES), 0);
    ck_assert_int_eq(grace_config_get(c, GRACE_OPT_LINGER_RATE_WINDOW), 30000);
    ck_assert_str_eq(grace_opt_name(GRACE_OPT_LINGER_RATE_WINDOW), "linger-rate-window");
    ck_assert_int_eq(grace_opt_by_name("linger-rate-window"), GRACE_OPT_LINGER_RATE_WINDOW);
    ck_assert_int_eq(grace_config_set(c, GRACE_OPT_LINGER_RATE_WINDOW, 0), -EINVAL);
    ck_assert_int_eq(grace_config_set(c, GRACE_OPT_LINGER_BYTES, -1), -EINVAL);
    grace_config_free(c);
}
END_TEST


/* ---------------------------------------------------------------- policy */

/*
 * linger.c's policy alone, without a socket: a table of senders (bytes every
 * so many ms) and settings, driven as the engine drives it (a discard is
 * heard at its time, the timer fires when due), and the verdict with its
 * time. The socket tests above show the engine acts on these verdicts.
 */
#define LP_T0 1000000 /* monotonic ms at the FIN */
#define LP_NEVER INT64_MAX
static const struct lp_row {
    const char *name;
    struct { enum grace_opt o; int64_t v; } opt[4]; /* the rest: defaults */
    uint64_t left;         /* body still due at the close, UINT64_MAX: unknown */
    unsigned char upload;  /* a body was still arriving */
    int64_t stop_bound;    /* a stop ends every linger this many ms after the FIN (0: none) */
    int64_t until, every;  /* a sender: from 0 until `until`, `bytes` every `every` ms */
    uint64_t bytes;
    enum grace_counter verdict;
    int64_t at;            /* ms after the FIN */
    unsigned char extended;
} lp_rows[] = {
    {"a silent client: linger-timeout", {{0}}, 0, 0, 0, 0, 0, 0,
     GRACE_CNT_LINGER_IDLE_TIMEOUT, 5000, 0},
    {"no body arriving: linger-time, however fast it sends", {{0}}, 0, 0, 0, LP_NEVER, 100,
     1 << 20, GRACE_CNT_LINGER_TOTAL_TIME, 30000, 0},
    {"a fast upload goes on past linger-time, then ends quiet", {{0}}, UINT64_MAX, 1, 0, 40000,
     100, 100000, GRACE_CNT_LINGER_IDLE_TIMEOUT, 44900, 1},
    {"an upload too slow at linger-time", {{0}}, UINT64_MAX, 1, 0, LP_NEVER, 100, 1000,
     GRACE_CNT_LINGER_TOO_SLOW, 30000, 0},
    {"slow, but its remainder ends before linger-max-time",
     {{GRACE_OPT_LINGER_MIN_RATE, 1 << 20}, {GRACE_OPT_LINGER_TIME, 10000}}, 3000000, 1, 0,
     30000, 100, 10000, GRACE_CNT_LINGER_IDLE_TIMEOUT, 34900, 1},
    {"slow, and its remainder cannot end in time",
     {{GRACE_OPT_LINGER_MIN_RATE, 1 << 20}, {GRACE_OPT_LINGER_TIME, 10000}}, 100000000, 1, 0,
     LP_NEVER, 100, 10000, GRACE_CNT_LINGER_TOO_SLOW, 10000, 0},
    {"linger-bytes caps what is discarded", {{GRACE_OPT_LINGER_BYTES, 1000000}}, 0, 0, 0,
     LP_NEVER, 100, 300000, GRACE_CNT_LINGER_BYTE_CAP, 300, 0},
    {"a stop: its bound (deadline + stop-linger-time), no extension past it", {{0}},
     UINT64_MAX, 1, 1000, LP_NEVER, 100, 100000, GRACE_CNT_LINGER_TOTAL_TIME, 1000, 0},
    {"linger-max-time bounds a fast upload",
     {{GRACE_OPT_LINGER_TIME, 1000}, {GRACE_OPT_LINGER_MAX_TIME, 5000}}, UINT64_MAX, 1, 0,
     LP_NEVER, 100, 100000, GRACE_CNT_LINGER_TOTAL_TIME, 5000, 1},
    {"bursts judged over the window, not the last second",
     {{GRACE_OPT_LINGER_TIMEOUT, 10000}}, UINT64_MAX, 1, 0, 60000, 3000, 2 << 20,
     GRACE_CNT_LINGER_IDLE_TIMEOUT, 67000, 1},
    {"sparse bursts average too slow", {{GRACE_OPT_LINGER_TIMEOUT, 25000}}, UINT64_MAX, 1, 0,
     LP_NEVER, 20000, 1 << 20, GRACE_CNT_LINGER_TOO_SLOW, 30000, 0},
};

START_TEST(test_policy_table)
{
    const struct lp_row *r = &lp_rows[_i];
    struct grace_config *cfg = grace_config_new();
    struct grace_linger l;
    enum grace_counter v = GRACE_CNT__COUNT;
    int64_t t = 0, send = 0;

    for (int i = 0; i < 4 && r->opt[i].v; i++)
        ck_assert_int_eq(grace_config_set(cfg, r->opt[i].o, r->opt[i].v), 0);
    memset(&l, 0xa5, sizeof(l)); /* the union it lives in held something else */
    grace__linger_owed(&l, r->left, r->upload);
    int64_t bound = r->stop_bound ? LP_T0 + r->stop_bound : INT64_MAX;
    grace__linger_begin(&l, cfg, LP_T0, bound);
    for (int steps = 0; v == GRACE_CNT__COUNT; steps++) {
        int64_t due = grace__linger_due(&l, cfg) - LP_T0;
        ck_assert_msg(steps < 100000, "%s: no verdict", r->name);
        if (r->every && send < r->until && send < due) { /* a discard comes first */
            t = send;
            v = grace__linger_bytes(&l, cfg, r->bytes, r->bytes, 1);
            if (v == GRACE_CNT__COUNT)
                grace__linger_heard(&l, cfg, r->bytes, LP_T0 + t);
            send += r->every;
        } else {
            t = due;
            v = grace__linger_timer(&l, cfg, LP_T0 + t, bound);
        }
    }
    ck_assert_msg(v == r->verdict && t == r->at && l.extended == r->extended,
                  "%s: %s at %lld ms%s; expected %s at %lld ms%s", r->name, grace_counter_name(v),
                  (long long)t, l.extended ? ", extended" : "", grace_counter_name(r->verdict),
                  (long long)r->at, r->extended ? ", extended" : "");
    grace_config_free(cfg);
}
END_TEST

/* Before our FIN (closing) discarded bytes only pay off the body still due
 * (by the plaintext they carry); linger-bytes counts from the FIN.
 * grace__linger_stop() bounds a deadline. */
START_TEST(test_policy_closing_and_stop)
{
    struct grace_config *cfg = grace_config_new();
    struct grace_linger l;

    ck_assert_int_eq(grace_config_set(cfg, GRACE_OPT_LINGER_BYTES, 100), 0);
    grace__linger_owed(&l, 1000, 1);
    ck_assert_int_eq(grace__linger_bytes(&l, cfg, 400, 400, 0), GRACE_CNT__COUNT);
    ck_assert_uint_eq(l.left, 600);
    ck_assert_int_eq(grace__linger_bytes(&l, cfg, 500, 300, 0), GRACE_CNT__COUNT); /* TLS */
    ck_assert_uint_eq(l.left, 300);
    ck_assert_int_eq(grace__linger_bytes(&l, cfg, 2000, 2000, 0), GRACE_CNT__COUNT);
    ck_assert_uint_eq(l.left, 0);
    grace__linger_owed(&l, 1000, 1);
    grace__linger_begin(&l, cfg, LP_T0, INT64_MAX);
    ck_assert_int_eq(grace__linger_bytes(&l, cfg, 99, 99, 1), GRACE_CNT__COUNT);
    ck_assert_int_eq(grace__linger_bytes(&l, cfg, 1, 1, 1), GRACE_CNT_LINGER_BYTE_CAP);
    ck_assert_uint_eq(l.left, 900);
    grace__linger_begin(&l, cfg, LP_T0, INT64_MAX);
    ck_assert_int_eq(grace__linger_due(&l, cfg), LP_T0 + 5000); /* linger-timeout first */
    grace__linger_stop(&l, LP_T0 + 1100); /* the stop's bound */
    ck_assert_int_eq(grace__linger_due(&l, cfg), LP_T0 + 1100);
    ck_assert_int_eq(grace__linger_timer(&l, cfg, LP_T0 + 1100, LP_T0 + 1100),
                     GRACE_CNT_LINGER_TOTAL_TIME);
    grace_config_free(cfg);
}
END_TEST

static Suite *linger_suite(void)
{
    Suite *s = suite_create("linger");
    TCase *tc = tcase_create("delivery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_early_401_delivered);
    tcase_add_test(tc, test_early_401_naive_close_fails);
    suite_add_tcase(s, tc);

    tc = tcase_create("ends");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_linger_total_time);
    tcase_add_test(tc, test_linger_chunked_too_slow);
    tcase_add_test(tc, test_linger_idle_timeout);
    tcase_add_test(tc, test_linger_client_eof);
    tcase_add_test(tc, test_linger_byte_cap);
    tcase_add_test(tc, test_linger_cap_evicts_oldest);
    tcase_add_test(tc, test_linger_cut_by_stop);
    suite_add_tcase(s, tc);

    tc = tcase_create("progress");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120); /* the steady sender takes 51 s */
    tcase_add_test(tc, test_linger_steady_sender_extended);
    tcase_add_test(tc, test_linger_too_slow);
    tcase_add_test(tc, test_linger_max_time);
    tcase_add_test(tc, test_linger_steady_then_quiet);
    tcase_add_test(tc, test_linger_bursty_extended);
    tcase_add_test(tc, test_linger_bursty_too_slow);
    tcase_add_test(tc, test_linger_rate_window_slides);
    tcase_add_test(tc, test_linger_slow_but_finishing);
    tcase_add_test(tc, test_linger_chunked_extended);
    tcase_add_test(tc, test_linger_options);
    suite_add_tcase(s, tc);

    tc = tcase_create("policy");
    tcase_add_loop_test(tc, test_policy_table, 0, sizeof(lp_rows) / sizeof(lp_rows[0]));
    tcase_add_test(tc, test_policy_closing_and_stop);
    suite_add_tcase(s, tc);

    tc = tcase_create("drain");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_drain_keeps_connection);
    tcase_add_test(tc, test_drain_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("reentrancy");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_reply_inside_data_cb);
    tcase_add_test(tc, test_pause_resume_and_vanish);
    tcase_add_test(tc, test_client_reset_mid_body);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(linger_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
