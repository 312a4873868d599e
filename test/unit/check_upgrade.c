/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_upgrade.c - upgrades and CONNECT tunnels (stream.c) over real
 * loopback sockets, the client in the test's client thread:
 *  - bytes pipelined after the upgrade request reach the stream, in order,
 *    then the peer's end of stream; grace_stream_close() ends it with a FIN;
 *  - a refused upgrade is answered, closed gracefully, never reset;
 *  - misuse: 101 to a request that did not ask, 2xx to a non-CONNECT;
 *  - writes are bounded by output-high-water, on_drain resumes them;
 *    write-timeout ends a stream whose peer does not read;
 *  - peer reset, graceful stop (a last message, then FIN), server free
 *    while a stream is open; the fd takeover with the unread bytes;
 *  - a CONNECT tunnel;
 *  - input held until the callbacks are set, and across pause/resume;
 *  - stream-idle-timeout: a silent peer is cut (-ETIMEDOUT, a last message,
 *    then FIN); bytes moving either way keep the stream; the per-stream
 *    setter shortens and lengthens it.
 * TLS streams are tested in check_tls.c.
 */
#define _GNU_SOURCE
#include "testlib.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What the server side saw; reset by each test (fork mode isolates them). */
static struct {
    int accept_rc, close_calls, close_err, eof_calls, drain_calls, enobufs, finish_err;
    size_t max_pending, written, total, chunk;
    struct grace_stream *st;
    int take_fd;
    char unread[256];
} S;

static struct event *later_ev; /* a test's own timer */

static const char UPGRADE_REQ[] = "GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                                  "Upgrade: echo\r\n\r\n";

/* ---------------------------------------------------------------- client helpers */

/* Read up to the blank line after the headers, byte by byte: what follows
 * stays in the socket for the test to read. */
static int read_head(int fd, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t k = recv(fd, out + n, 1, 0);
        if (k <= 0)
            return -1;
        n++;
        out[n] = '\0';
        if (n >= 4 && !memcmp(out + n - 4, "\r\n\r\n", 4))
            return 0;
    }
    return -1;
}

/* Read exactly n bytes. */
static int read_n(int fd, char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, out + got, n - got, 0);
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

/* Read until EOF; returns the byte count, or -1 on error/timeout. */
static ssize_t read_to_eof(int fd)
{
    char buf[65536];
    ssize_t total = 0, k;
    while ((k = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += k;
    return k == 0 ? total : -1;
}

/* ---------------------------------------------------------------- server side */

static void on_close(struct grace_stream *st, int err, void *arg)
{
    S.close_calls++;
    S.close_err = err;
}

/* Echo; the peer's end of stream closes our side too. */
static void echo_read(struct grace_stream *st, const char *data, size_t len, void *arg)
{
    if (!len) {
        S.eof_calls++;
        grace_stream_close(st);
        return;
    }
    ck_assert_int_eq(grace_stream_write(st, data, len), 0);
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    S.finish_err = err;
}

static void h_echo(struct grace_request *req, void *arg)
{
    struct grace_stream *st;
    S.finish_err = 1;
    grace_request_on_finish(req, on_finish, NULL);
    ck_assert(grace_request_is_upgrade(req));
    grace_response_add_header(req, "Upgrade", grace_request_header(req, "Upgrade"));
    S.accept_rc = grace_reply_upgrade(req, 101, &st);
    ck_assert_int_eq(S.accept_rc, 0);
    ck_assert_int_eq(S.finish_err, 0); /* finished by the switch */
    S.st = st;
    grace_stream_set_callbacks(st, echo_read, NULL, on_close, arg);
}

/* ---------------------------------------------------------------- pipelined */

static void c_pipelined(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[64];
    char req[256];
    /* the request and the first stream bytes in one segment */
    snprintf(req, sizeof(req), "%shello", UPGRADE_REQ);
    cli_send(fd, req);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    ck_assert_msg(!strncmp(head, "HTTP/1.1 101 Switching Protocols\r\n", 34), "%s", head);
    ck_assert_ptr_nonnull(strcasestr(head, "\r\nConnection: Upgrade\r\n"));
    ck_assert_ptr_nonnull(strcasestr(head, "\r\nUpgrade: echo\r\n"));
    ck_assert_ptr_null(strcasestr(head, "Content-Length"));
    ck_assert_int_eq(read_n(fd, buf, 5), 0);
    ck_assert(!memcmp(buf, "hello", 5));
    cli_send(fd, " again");
    ck_assert_int_eq(read_n(fd, buf, 6), 0);
    ck_assert(!memcmp(buf, " again", 6));
    shutdown(fd, SHUT_WR); /* our end: the server closes its side */
    ck_assert_int_eq(cli_wait_eof(fd, 5000), 1);
    close(fd);
}

START_TEST(test_pipelined_bytes_reach_stream)
{
    struct fx *f = fx_new();
    fx_start(f, h_echo);
    fx_run(f, c_pipelined, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_UPGRADES), 1);
    ck_assert_int_eq(S.eof_calls, 1);
    ck_assert_int_eq(S.close_calls, 0); /* none after grace_stream_close() */
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- refused */

static void h_refuse(struct grace_request *req, void *arg)
{
    ck_assert(grace_request_is_upgrade(req));
    grace_response_add_header(req, "Sec-WebSocket-Version", "13");
    grace_reply(req, 426, "upgrade refused\n", 16);
}

/* The client keeps sending (frames of a protocol that was never agreed)
 * while the answer comes: it must read the answer, then EOF, no reset. */
static void c_refused(struct fx *f)
{
    int fd = cli_connect(f->port);
    struct resp r;
    char junk[4096];
    memset(junk, 0x81, sizeof(junk));
    cli_send(fd, UPGRADE_REQ);
    for (int i = 0; i < 64; i++)
        if (cli_send_all(fd, junk, sizeof(junk)) < 0)
            break;
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 426);
    ck_assert_str_eq(r.body, "upgrade refused\n");
    ck_assert_ptr_nonnull(strcasestr(r.head, "Connection: close"));
    resp_free(&r);
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(cli_wait_eof(fd, 5000), 1);
    close(fd);
}

START_TEST(test_refused_upgrade_answered)
{
    struct fx *f = fx_new();
    fx_start(f, h_refuse);
    fx_run(f, c_refused, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_UPGRADES), 0);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 1);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- misuse */

static void h_misuse(struct grace_request *req, void *arg)
{
    struct grace_stream *st = (struct grace_stream *)1;
    int rc;
    if (grace_request_is_upgrade(req)) /* an upgrade request: 200 is not a switch */
        rc = grace_reply_upgrade(req, 200, &st);
    else
        rc = grace_reply_upgrade(req, 101, &st);
    ck_assert_ptr_null(st);
    char body[32];
    int n = snprintf(body, sizeof(body), "%d\n", rc);
    grace_reply(req, 200, body, (size_t)n);
}

static void c_misuse(struct fx *f)
{
    int fd = cli_connect(f->port);
    struct resp r;
    char buf[32];
    snprintf(buf, sizeof(buf), "%d\n", -EINVAL);
    cli_send(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_str_eq(r.body, buf);
    ck_assert(!r.closed); /* an ordinary request keeps its connection */
    resp_free(&r);
    /* Upgrade without "Connection: upgrade" is no upgrade request */
    cli_send(fd, "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\n");
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_str_eq(r.body, buf);
    resp_free(&r);
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_str_eq(r.body, buf);
    ck_assert_ptr_nonnull(strcasestr(r.head, "Connection: close"));
    resp_free(&r);
    close(fd);
}

START_TEST(test_upgrade_misuse_refused)
{
    struct fx *f = fx_new();
    fx_start(f, h_misuse);
    fx_run(f, c_misuse, 10000);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_UPGRADES), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- bounded writes */

#define HIGH_WATER 65536

/* Write chunks until refused or the total is queued. */
static void pour(struct grace_stream *st)
{
    static char chunk[16384];
    while (S.written < S.total) {
        size_t n = S.total - S.written < sizeof(chunk) ? S.total - S.written : sizeof(chunk);
        int rc = grace_stream_write(st, chunk, n);
        if (rc == -ENOBUFS) {
            S.enobufs++;
            return;
        }
        ck_assert_int_eq(rc, 0);
        S.written += n;
        if (grace_stream_pending(st) > S.max_pending)
            S.max_pending = grace_stream_pending(st);
    }
    if (!grace_stream_pending(st))
        grace_stream_close(st);
}

static void pour_drain(struct grace_stream *st, void *arg)
{
    S.drain_calls++;
    pour(st);
}

static void pour_read(struct grace_stream *st, const char *d, size_t n, void *arg)
{
}

static void h_pour(struct grace_request *req, void *arg)
{
    struct grace_stream *st;
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &st), 0);
    grace_stream_set_callbacks(st, pour_read, pour_drain, on_close, arg);
    S.st = st;
    pour(st);
}

static void c_slow_reader(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    /* not reading: the kernel's buffers fill, the server must hold back */
    for (int i = 0; i < 500 && !__atomic_load_n(&S.enobufs, __ATOMIC_SEQ_CST); i++)
        usleep(10 * 1000);
    ck_assert_int_eq(read_to_eof(fd), (ssize_t)S.total);
    close(fd);
}

START_TEST(test_writes_bounded)
{
    struct fx *f = fx_new();
    S.total = 32u << 20; /* far more than the socket buffers take */
    grace_config_set(f->cfg, GRACE_OPT_OUTPUT_HIGH_WATER, HIGH_WATER);
    fx_start(f, h_pour);
    fx_run(f, c_slow_reader, 30000);
    fx_spin(f, 50);
    ck_assert_uint_eq(S.written, S.total);
    ck_assert_int_gt(S.enobufs, 0);
    ck_assert_int_gt(S.drain_calls, 0);
    ck_assert_uint_le(S.max_pending, HIGH_WATER);
    ck_assert_int_eq(S.close_calls, 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- write-timeout */

static void c_never_reads(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    int64_t t0 = now_ms();
    while (!__atomic_load_n(&S.close_calls, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000)
        usleep(20 * 1000);
    close(fd);
}

START_TEST(test_write_timeout_ends_stream)
{
    struct fx *f = fx_new();
    S.total = (size_t)1 << 40;
    grace_config_set(f->cfg, GRACE_OPT_OUTPUT_HIGH_WATER, HIGH_WATER);
    grace_config_set(f->cfg, GRACE_OPT_WRITE_TIMEOUT, 300);
    fx_start(f, h_pour);
    fx_run(f, c_never_reads, 10000);
    ck_assert_int_eq(S.close_calls, 1);
    ck_assert_int_eq(S.close_err, -ETIMEDOUT);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 1);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- peer reset */

static void c_reset(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[4];
    struct linger lg = {1, 0};
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    cli_send(fd, "ping");
    ck_assert_int_eq(read_n(fd, buf, 4), 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* a reset */
    int64_t t0 = now_ms();
    while (!__atomic_load_n(&S.close_calls, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000)
        usleep(10 * 1000);
}

START_TEST(test_peer_reset_closes_stream)
{
    struct fx *f = fx_new();
    fx_start(f, h_echo);
    fx_run(f, c_reset, 10000);
    ck_assert_int_eq(S.close_calls, 1);
    ck_assert_int_eq(S.close_err, -ECONNRESET);
    ck_assert_int_eq(S.eof_calls, 0);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- stop */

static int stopped;
static void on_stopped(struct grace_server *srv, void *arg)
{
    stopped = 1;
}

/* On a stop, the stream says goodbye; the server then closes it. */
static void stop_close(struct grace_stream *st, int err, void *arg)
{
    S.close_calls++;
    S.close_err = err;
    if (err == -ESHUTDOWN)
        ck_assert_int_eq(grace_stream_write(st, "bye", 3), 0);
}

static void stop_read(struct grace_stream *st, const char *d, size_t n, void *arg)
{
    struct fx *f = arg;
    if (n && !memcmp(d, "stop", 4)) {
        /* a stop from inside a stream callback: on_close comes later */
        ck_assert_int_eq(grace_server_stop(f->srv, 5000, on_stopped, NULL), 0);
        ck_assert_int_eq(S.close_calls, 0);
    }
}

static void h_stop(struct grace_request *req, void *arg)
{
    struct grace_stream *st;
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &st), 0);
    grace_stream_set_callbacks(st, stop_read, NULL, stop_close, arg);
}

static void c_stop(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[8];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    cli_send(fd, "stop");
    ck_assert_int_eq(read_n(fd, buf, 3), 0);
    ck_assert(!memcmp(buf, "bye", 3));
    ck_assert_int_eq(cli_wait_eof(fd, 5000), 1); /* FIN, not a reset */
    close(fd);
}

START_TEST(test_stop_closes_stream_gracefully)
{
    struct fx *f = fx_new();
    fx_start(f, h_stop);
    fx_run(f, c_stop, 10000);
    fx_spin(f, 100);
    ck_assert_int_eq(S.close_calls, 1);
    ck_assert_int_eq(S.close_err, -ESHUTDOWN);
    ck_assert_int_eq(stopped, 1);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- free */

static int held_fd = -1;

static void c_hold(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[4];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    cli_send(fd, "ping"); /* the stream is open: echoed */
    ck_assert_int_eq(read_n(fd, buf, 4), 0);
    held_fd = fd;
}

START_TEST(test_free_with_stream_open)
{
    struct fx *f = fx_new();
    fx_start(f, h_echo);
    fx_run(f, c_hold, 10000);
    ck_assert_int_eq(S.close_calls, 0);
    fx_free(f); /* asserts nothing is left on the loop */
    ck_assert_int_eq(S.close_calls, 1);
    ck_assert_int_eq(S.close_err, -ECANCELED);
    ck_assert_int_eq(cli_wait_eof(held_fd, 2000), 1);
    close(held_fd);
}
END_TEST

/* ---------------------------------------------------------------- takeover */

static void take_read(struct grace_stream *st, const char *d, size_t n, void *arg)
{
    struct evbuffer *unread = evbuffer_new();
    /* the first piece is "first", delivered; the rest stays unread */
    ck_assert_uint_ge(n, 5);
    S.take_fd = grace_stream_take_fd(st, unread);
    ck_assert_int_ge(S.take_fd, 0);
    size_t u = evbuffer_get_length(unread);
    ck_assert_uint_lt(u, sizeof(S.unread));
    evbuffer_remove(unread, S.unread, u);
    evbuffer_free(unread);
    /* ours now: say so on the raw socket and close it */
    char msg[300];
    int len = snprintf(msg, sizeof(msg), "taken:%.*s|%s", (int)n, d, S.unread);
    ck_assert_int_eq(write(S.take_fd, msg, (size_t)len), len);
    close(S.take_fd);
}

static void h_take(struct grace_request *req, void *arg)
{
    struct grace_stream *st;
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &st), 0);
    grace_stream_set_callbacks(st, take_read, NULL, on_close, arg);
}

static void c_take(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[256];
    char req[256];
    snprintf(req, sizeof(req), "%sfirst", UPGRADE_REQ);
    cli_send(fd, req);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    ssize_t n = 0, k;
    while ((k = recv(fd, buf + n, sizeof(buf) - 1 - (size_t)n, 0)) > 0)
        n += k;
    ck_assert_int_eq(k, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "taken:first|");
    close(fd);
}

START_TEST(test_take_fd)
{
    struct fx *f = fx_new();
    fx_start(f, h_take);
    fx_run(f, c_take, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(S.close_calls, 0);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST


/* Taken from a timer, outside any stream callback: every byte that came
 * (pipelined, then more) is handed over unread. */
static void take_later(evutil_socket_t fd, short what, void *arg)
{
    struct evbuffer *unread = evbuffer_new();
    S.take_fd = grace_stream_take_fd(S.st, unread);
    ck_assert_int_ge(S.take_fd, 0);
    size_t u = evbuffer_get_length(unread);
    ck_assert_uint_lt(u, sizeof(S.unread));
    evbuffer_remove(unread, S.unread, u);
    evbuffer_free(unread);
    char msg[300];
    int len = snprintf(msg, sizeof(msg), "taken:|%s", S.unread);
    ck_assert_int_eq(write(S.take_fd, msg, (size_t)len), len);
    close(S.take_fd);
}

static void h_take_later(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {0, 300 * 1000};
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &S.st), 0);
    later_ev = evtimer_new(f->base, take_later, f);
    evtimer_add(later_ev, &tv);
}

static void c_take_later(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[256];
    char req[256];
    snprintf(req, sizeof(req), "%sfirst", UPGRADE_REQ);
    cli_send(fd, req);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    cli_send(fd, " second");
    ssize_t n = 0, k;
    while ((k = recv(fd, buf + n, sizeof(buf) - 1 - (size_t)n, 0)) > 0)
        n += k;
    ck_assert_int_eq(k, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "taken:|first second");
    close(fd);
}

START_TEST(test_take_fd_with_unread_bytes)
{
    struct fx *f = fx_new();
    fx_start(f, h_take_later);
    fx_run(f, c_take_later, 10000);
    fx_spin(f, 50);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    event_free(later_ev);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- CONNECT */

static void h_connect(struct grace_request *req, void *arg)
{
    struct grace_stream *st;
    ck_assert(grace_request_is_upgrade(req));
    if (strcmp(grace_request_method(req), "CONNECT")) {
        grace_reply(req, 405, "", 0);
        return;
    }
    ck_assert_str_eq(grace_request_target(req), "example.test:443");
    /* 101 is for Upgrade, not for CONNECT */
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &st), -EINVAL);
    ck_assert_int_eq(grace_reply_upgrade(req, 200, &st), 0);
    grace_stream_set_callbacks(st, echo_read, NULL, on_close, arg);
}

static void c_connect(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[16];
    cli_send(fd, "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\ntunnel");
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    ck_assert_msg(!strncmp(head, "HTTP/1.1 200 OK\r\n", 17), "%s", head);
    ck_assert_ptr_null(strcasestr(head, "Content-Length"));
    ck_assert_ptr_null(strcasestr(head, "Transfer-Encoding"));
    ck_assert_ptr_null(strcasestr(head, "Connection:"));
    ck_assert_int_eq(read_n(fd, buf, 6), 0);
    ck_assert(!memcmp(buf, "tunnel", 6));
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(cli_wait_eof(fd, 5000), 1);
    close(fd);
}

START_TEST(test_connect_tunnel)
{
    struct fx *f = fx_new();
    fx_start(f, h_connect);
    fx_run(f, c_connect, 10000);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_UPGRADES), 1);
    fx_free(f);
}
END_TEST


/* ---------------------------------------------------------------- pause, late callbacks */

#define PAUSE_BYTES (4u << 20)
static size_t got_bytes;
static int got_eof;

/* Counts; the first piece pauses the stream, a timer resumes it. */
static void count_read(struct grace_stream *st, const char *d, size_t n, void *arg)
{
    if (!n) {
        got_eof = 1;
        grace_stream_write(st, "done", 4);
        grace_stream_close(st);
        return;
    }
    size_t bad = 0; /* in order; one assertion per piece (each one costs a write) */
    for (size_t i = 0; i < n; i++)
        bad += d[i] != (char)('a' + (got_bytes + i) % 26);
    ck_assert_uint_eq(bad, 0);
    got_bytes += n;
}

/* The callbacks are set 300 ms after the switch: what came meanwhile
 * (pipelined bytes, then more until the input bound) waits. */
static void set_later(evutil_socket_t fd, short what, void *arg)
{
    grace_stream_set_callbacks(S.st, count_read, NULL, on_close, arg);
    ck_assert_uint_eq(got_bytes, 0); /* never from inside the call */
}

static void h_late(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {0, 300 * 1000};
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &S.st), 0);
    later_ev = evtimer_new(f->base, set_later, f);
    evtimer_add(later_ev, &tv);
}

static void c_late(struct fx *f)
{
    int fd = cli_connect(f->port);
    char *buf = malloc(PAUSE_BYTES), head[1024];
    for (size_t i = 0; i < PAUSE_BYTES; i++)
        buf[i] = (char)('a' + i % 26);
    ck_assert_int_eq(cli_send_all(fd, UPGRADE_REQ, sizeof(UPGRADE_REQ) - 1), 0);
    ck_assert_int_eq(cli_send_all(fd, buf, PAUSE_BYTES), 0); /* blocks until read */
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    int rn = read_n(fd, head, 4);
    ck_assert_msg(rn == 0, "got %zu eof %d", got_bytes, got_eof);
    ck_assert(!memcmp(head, "done", 4));
    ck_assert_int_eq(cli_wait_eof(fd, 5000), 1);
    free(buf);
    close(fd);
}

START_TEST(test_input_held_until_callbacks)
{
    struct fx *f = fx_new();
    fx_start(f, h_late);
    fx_run(f, c_late, 20000);
    fx_spin(f, 50);
    ck_assert_uint_eq(got_bytes, PAUSE_BYTES);
    ck_assert_int_eq(got_eof, 1);
    event_free(later_ev);
    fx_free(f);
}
END_TEST

static struct grace_stream *paused_st;

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    grace_stream_resume(paused_st);
}

static void pause_read(struct grace_stream *st, const char *d, size_t n, void *arg)
{
    struct fx *f = arg;
    count_read(st, d, n, arg);
    if (n && got_bytes < PAUSE_BYTES) { /* pause after every piece, resume in 1 ms */
        struct timeval tv = {0, 1000};
        paused_st = st;
        grace_stream_pause(st);
        event_base_once(f->base, -1, EV_TIMEOUT, resume_cb, NULL, &tv);
    }
}

static void h_pause(struct grace_request *req, void *arg)
{
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &S.st), 0);
    grace_stream_set_callbacks(S.st, pause_read, NULL, on_close, arg);
}

START_TEST(test_pause_resume_delivers_in_order)
{
    struct fx *f = fx_new();
    fx_start(f, h_pause);
    fx_run(f, c_late, 30000);
    fx_spin(f, 50);
    ck_assert_uint_eq(got_bytes, PAUSE_BYTES);
    ck_assert_int_eq(got_eof, 1);
    fx_free(f);
}
END_TEST

/* ---------------------------------------------------------------- stream-idle-timeout */

static int64_t idle_set_ms;     /* the handler's grace_stream_set_idle_timeout(), 0: none */
static struct event *tick_ev;   /* the server's writer in test_idle_server_only_writes */
#define TICKS 15                /* a byte every 100 ms: 1.5 s of progress */

/* The idle timeout says goodbye like a stop: a last message, then FIN. */
static void idle_close(struct grace_stream *st, int err, void *arg)
{
    S.close_calls++;
    S.close_err = err;
    S.chunk = S.written; /* what the server had written when it was cut */
    if (err == -ETIMEDOUT)
        S.accept_rc = grace_stream_write(st, "bye", 3);
    if (tick_ev)
        event_del(tick_ev);
}

/* Only receives: counts, never answers. */
static void idle_read(struct grace_stream *st, const char *d, size_t n, void *arg)
{
    if (!n) {
        S.eof_calls++;
        grace_stream_close(st);
        return;
    }
    S.total += n;
}

static void h_idle(struct grace_request *req, void *arg)
{
    grace_response_add_header(req, "Upgrade", "echo");
    ck_assert_int_eq(grace_reply_upgrade(req, 101, &S.st), 0);
    ck_assert_int_eq(grace_stream_set_idle_timeout(NULL, 100), -EINVAL);
    ck_assert_int_eq(grace_stream_set_idle_timeout(S.st, -1), -EINVAL);
    ck_assert_int_eq(grace_stream_set_idle_timeout(S.st, 86400001), -EINVAL);
    if (idle_set_ms)
        ck_assert_int_eq(grace_stream_set_idle_timeout(S.st, idle_set_ms), 0);
    grace_stream_set_callbacks(S.st, idle_read, NULL, idle_close, arg);
}

/* Reads the "bye" and the FIN that end an idle stream; returns the ms
 * from t0 to the FIN, or -1. */
static int64_t expect_bye(int fd, int64_t t0)
{
    char buf[4];
    if (read_n(fd, buf, 3) < 0 || memcmp(buf, "bye", 3))
        return -1;
    if (cli_wait_eof(fd, 5000) != 1)
        return -1;
    return now_ms() - t0;
}

/* Upgrade, then say nothing: cut after the timeout. */
static void c_silent(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    int64_t t0 = now_ms();
    int64_t el = expect_bye(fd, t0);
    ck_assert_msg(el >= 0, "no bye and FIN within 5 s of silence");
    f->bytes = (size_t)el;
    close(fd);
}

START_TEST(test_idle_silent_peer_cut)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_STREAM_IDLE_TIMEOUT, 300);
    ck_assert_int_eq(grace_config_get(f->cfg, GRACE_OPT_STREAM_IDLE_TIMEOUT), 300);
    fx_start(f, h_idle);
    fx_run(f, c_silent, 10000);
    fx_spin(f, 50);
    ck_assert_uint_ge(f->bytes, 250); /* not before the timeout (timer slack aside) */
    ck_assert_int_eq(S.close_calls, 1);
    ck_assert_int_eq(S.close_err, -ETIMEDOUT);
    ck_assert_int_eq(S.accept_rc, 0); /* the last message was accepted */
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_STREAM), 1);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 0);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

START_TEST(test_idle_default_and_name)
{
    struct grace_config *c = grace_config_new();
    ck_assert_int_eq(grace_config_get(c, GRACE_OPT_STREAM_IDLE_TIMEOUT), 600000);
    ck_assert_str_eq(grace_opt_name(GRACE_OPT_STREAM_IDLE_TIMEOUT), "stream-idle-timeout");
    ck_assert_str_eq(grace_counter_name(GRACE_CNT_TIMEOUT_STREAM), "timeout_stream");
    ck_assert_int_eq(grace_config_set(c, GRACE_OPT_STREAM_IDLE_TIMEOUT, 0), -EINVAL);
    grace_config_free(c);
}
END_TEST

/* Upgrade, then a byte every 100 ms for 1.5 s, then silence. */
static void c_slow_sender(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    for (int i = 0; i < TICKS; i++) {
        usleep(100 * 1000);
        ck_assert_int_eq(cli_send_all(fd, "x", 1), 0);
    }
    ck_assert_int_eq(__atomic_load_n(&S.close_calls, __ATOMIC_SEQ_CST), 0);
    int64_t el = expect_bye(fd, now_ms()); /* silence now: cut */
    ck_assert_msg(el >= 0, "no bye and FIN after the sender stopped");
    close(fd);
}

START_TEST(test_idle_slow_sender_kept)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_STREAM_IDLE_TIMEOUT, 400);
    fx_start(f, h_idle);
    fx_run(f, c_slow_sender, 10000);
    fx_spin(f, 50);
    ck_assert_uint_eq(S.total, TICKS); /* every byte came before the cut */
    ck_assert_int_eq(S.close_calls, 1);
    ck_assert_int_eq(S.close_err, -ETIMEDOUT);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_STREAM), 1);
    fx_free(f);
}
END_TEST

/* The server pushes a byte every 100 ms; the client sends nothing. */
static void tick(evutil_socket_t fd, short what, void *arg)
{
    if (S.written >= TICKS || !S.st) {
        event_del(tick_ev);
        return;
    }
    ck_assert_int_eq(grace_stream_write(S.st, "t", 1), 0);
    S.written++;
}

static void h_push(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {0, 100 * 1000};
    h_idle(req, arg);
    tick_ev = event_new(f->base, -1, EV_PERSIST, tick, NULL);
    event_add(tick_ev, &tv);
}

static void c_reader(struct fx *f)
{
    int fd = cli_connect(f->port);
    char head[1024], buf[TICKS];
    cli_send(fd, UPGRADE_REQ);
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 0);
    ck_assert_int_eq(read_n(fd, buf, TICKS), 0);
    ck_assert_int_eq(__atomic_load_n(&S.close_calls, __ATOMIC_SEQ_CST), 0);
    int64_t el = expect_bye(fd, now_ms());
    ck_assert_msg(el >= 0, "no bye and FIN after the server stopped writing");
    close(fd);
}

START_TEST(test_idle_server_only_writes)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_STREAM_IDLE_TIMEOUT, 400);
    fx_start(f, h_push);
    fx_run(f, c_reader, 10000);
    fx_spin(f, 50);
    ck_assert_uint_eq(S.chunk, TICKS); /* cut only after the last write */
    ck_assert_int_eq(S.close_err, -ETIMEDOUT);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_STREAM), 1);
    event_free(tick_ev);
    tick_ev = NULL;
    fx_free(f);
}
END_TEST

/* The setter shortens the server's 10 minutes to 300 ms... */
START_TEST(test_idle_setter_shorter)
{
    struct fx *f = fx_new();
    idle_set_ms = 300;
    fx_start(f, h_idle);
    fx_run(f, c_silent, 10000);
    fx_spin(f, 50);
    ck_assert_uint_ge(f->bytes, 250);
    ck_assert_int_eq(S.close_err, -ETIMEDOUT);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_STREAM), 1);
    fx_free(f);
}
END_TEST

/* ... and lengthens a 200 ms setting to 800 ms. */
START_TEST(test_idle_setter_longer)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_STREAM_IDLE_TIMEOUT, 200);
    idle_set_ms = 800;
    fx_start(f, h_idle);
    fx_run(f, c_silent, 10000);
    fx_spin(f, 50);
    ck_assert_uint_ge(f->bytes, 700);
    ck_assert_int_eq(S.close_err, -ETIMEDOUT);
    ck_assert_int_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_STREAM), 1);
    fx_free(f);
}
END_TEST

/* Without fork (valgrind runs CK_FORK=no) the state must start afresh. */
static void reset(void)
{
    memset(&S, 0, sizeof(S));
    S.take_fd = -1;
    stopped = 0;
    held_fd = -1;
    got_bytes = 0;
    got_eof = 0;
    later_ev = NULL;
    paused_st = NULL;
    idle_set_ms = 0;
    tick_ev = NULL;
}

static Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pipelined_bytes_reach_stream);
    tcase_add_test(tc, test_refused_upgrade_answered);
    tcase_add_test(tc, test_upgrade_misuse_refused);
    tcase_add_test(tc, test_writes_bounded);
    tcase_add_test(tc, test_write_timeout_ends_stream);
    tcase_add_test(tc, test_peer_reset_closes_stream);
    tcase_add_test(tc, test_stop_closes_stream_gracefully);
    tcase_add_test(tc, test_free_with_stream_open);
    tcase_add_test(tc, test_take_fd);
    tcase_add_test(tc, test_take_fd_with_unread_bytes);
    tcase_add_test(tc, test_connect_tunnel);
    tcase_add_test(tc, test_input_held_until_callbacks);
    tcase_add_test(tc, test_pause_resume_delivers_in_order);
    tcase_add_test(tc, test_idle_default_and_name);
    tcase_add_test(tc, test_idle_silent_peer_cut);
    tcase_add_test(tc, test_idle_slow_sender_kept);
    tcase_add_test(tc, test_idle_server_only_writes);
    tcase_add_test(tc, test_idle_setter_shorter);
    tcase_add_test(tc, test_idle_setter_longer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(upgrade_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
