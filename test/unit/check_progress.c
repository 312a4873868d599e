/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_progress.c - timers that must follow progress, and lifetimes that
 * must survive re-entrant callbacks, over real loopback sockets.
 *
 * One test (or a few) per defect of the issue, each of which failed on the
 * code before the fix:
 *   1. keep-alive timer armed while a slow download is still being written
 *   2. the deferred-work list corrupted by a destroy from inside its run
 *   3. a file shorter than its Content-Length left the connection open
 *   4. write-timeout restarted by every flush, not by progress
 *   5. body-timeout running while the application has paused reading
 *   6. a reply from inside on_data freeing the piece being delivered
 *   7. a half-closed client losing an answer given asynchronously
 *   8. no accept() ever again after EMFILE with no connection open
 *   9. the application adding framing headers (Content-Length...)
 *  10. no total bound on discarding a remainder after an early reply
 *  11. responses the server makes itself invisible to an access log
 *
 * Timing: bounds are generous (several times the timer under test) so a
 * loaded machine does not fail them, but tight enough that the old
 * behaviour (a timer that never fires, or fires at the wrong time) does.
 * Counters show that the timer that ended something is the right one.
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"
#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

/* Bodies are slices of one pattern, so a client can check every byte. */
#define PAT_LEN (8 * MIB)
static char *pat;

static void setup(void)
{
    pat = malloc(PAT_LEN);
    ck_assert_ptr_nonnull(pat);
    for (size_t i = 0; i < PAT_LEN; i++)
        pat[i] = (char)(i % 251);
}

static void teardown(void)
{
    free(pat);
    pat = NULL;
}

/* ---------------------------------------------------------------- helpers */

/*
 * Start the server on a listening socket with a small, fixed send buffer.
 * Accepted sockets inherit it (and with it no autotuning), so output a
 * client does not read stays in the server's own buffers, as it does over
 * a real network, instead of vanishing into 4 MiB of loopback buffers.
 */
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
    if (h)
        grace_server_set_handler(f->srv, h, f);
    ck_assert_int_eq(grace_server_listen_fd(f->srv, fd, NULL), 0);
    f->port = grace_server_port(f->srv, 0);
    ck_assert_int_gt(f->port, 0);
}

static void set_rcvbuf(int fd, int n)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

static void set_rcvtimeo(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Read a status line and headers one byte at a time, so that nothing of
 * the body is consumed. Returns the status, or -1. */
static int read_head(int fd, char *head, size_t n)
{
    size_t k = 0;
    while (k + 1 < n && recv(fd, head + k, 1, 0) == 1) {
        k++;
        if (k >= 4 && !memcmp(head + k - 4, "\r\n\r\n", 4)) {
            head[k] = 0;
            return atoi(head + 9);
        }
    }
    head[k] = 0;
    return -1;
}

/* How often a header occurs in a head; *value gets the last one's number. */
static int header_count(const char *head, const char *name, long long *value)
{
    size_t nl = strlen(name);
    int n = 0;
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
            n++;
            if (value)
                *value = strtoll(p + 3 + nl, NULL, 10);
        }
    }
    return n;
}

static int raw_mismatch; /* body bytes that were not the pattern */

/*
 * Read up to n body bytes, which must be pat[off...], spread over pace_ms
 * (0: as fast as they come). Stops early at EOF (*eof = 1) or an error or
 * timeout (*eof = -errno). Returns the bytes read.
 */
static size_t read_body_raw(int fd, size_t n, size_t off, int pace_ms, int *eof)
{
    char *buf = malloc(64 * KIB);
    size_t got = 0;
    int64_t t0 = now_ms();
    *eof = 0;
    while (got < n) {
        size_t want = n - got < 64 * KIB ? n - got : 64 * KIB;
        ssize_t k = recv(fd, buf, want, 0);
        if (k <= 0) {
            *eof = k == 0 ? 1 : -errno;
            break;
        }
        if (memcmp(buf, pat + off + got, (size_t)k))
            raw_mismatch++;
        got += (size_t)k;
        if (pace_ms) {
            int64_t due = t0 + (int64_t)((double)got / (double)n * pace_ms), now = now_ms();
            if (due > now)
                usleep((useconds_t)(due - now) * 1000);
        }
    }
    free(buf);
    return got;
}

/* An unlinked temp file holding pat[0..n); the caller closes it. */
static int pat_file(size_t n)
{
    char path[] = "/tmp/grace-progressXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(write(fd, pat, n), (ssize_t)n);
    return fd;
}

/* Run then(f) from the loop once cond(f) holds (checked every 10 ms), or
 * after limit_ms anyway. */
struct waiter {
    struct fx *f;
    struct event *ev;
    int (*cond)(struct fx *);
    void (*then)(struct fx *);
    int64_t deadline;
};

static void waiter_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    struct fx *f = w->f;
    void (*then)(struct fx *) = w->then;
    if (!w->cond(f) && now_ms() < w->deadline)
        return;
    event_free(w->ev);
    free(w);
    then(f);
}

static void when(struct fx *f, int (*cond)(struct fx *), void (*then)(struct fx *), int limit_ms)
{
    struct waiter *w = calloc(1, sizeof(*w));
    struct timeval tv = {0, 10000};
    ck_assert_ptr_nonnull(w);
    w->f = f;
    w->cond = cond;
    w->then = then;
    w->deadline = now_ms() + limit_ms;
    w->ev = event_new(f->base, -1, EV_PERSIST, waiter_cb, w);
    event_add(w->ev, &tv);
}

/* A reply given later from a timer: the asynchronous application. */
struct later_reply {
    struct grace_request *req;
    struct fx *f;
    int status;
    char body[32];
};

static void later_reply_cb(evutil_socket_t fd, short what, void *arg)
{
    struct later_reply *l = arg;
    l->f->reply_rc = grace_reply(l->req, l->status, l->body, strlen(l->body));
    free(l);
}

static void reply_later(struct fx *f, struct grace_request *req, int ms, int status,
                        const char *body)
{
    struct later_reply *l = calloc(1, sizeof(*l));
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    l->req = req;
    l->f = f;
    l->status = status;
    snprintf(l->body, sizeof(l->body), "%s", body);
    ck_assert_int_eq(event_base_once(f->base, -1, EV_TIMEOUT, later_reply_cb, l, &tv), 0);
}

/* The finish callback of most handlers here: note it, and complete our
 * side if the request ended early (that reply must say -ENOTCONN). */
static void note_finish(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    if (err)
        f->reply_rc = grace_reply(req, 500, NULL, 0);
}

/* Collected body -> 200 "<length>", right away. */
static void reply_length(struct grace_request *req, struct evbuffer *body, void *arg)
{
    char out[32];
    int n = snprintf(out, sizeof(out), "%zu", evbuffer_get_length(body));
    grace_reply(req, 200, out, (size_t)n);
}

/* The response reports, copied out of the callback. */
struct report {
    int status, has_req, err;
    uint64_t bytes, body_bytes;
    int64_t us;
};
static struct report reports[16];
static int nreports;

static void on_report(const struct grace_response_info *ri, void *arg)
{
    if (nreports < 16) {
        struct report *r = &reports[nreports];
        r->status = grace_response_info_status(ri);
        r->has_req = grace_response_info_request(ri) != NULL;
        r->err = grace_response_info_error(ri);
        r->bytes = grace_response_info_bytes(ri);
        r->body_bytes = grace_response_info_body_bytes(ri);
        r->us = grace_response_info_duration_us(ri);
    }
    nreports++;
}

/* ================================================================ 1. keep-alive */

/*
 * A keep-alive connection whose response takes longer to download than
 * keepalive-timeout must not be cut: the connection is idle only once the
 * response is written. The old code armed the keep-alive timer when the
 * reply was queued and closed the connection mid-download.
 */
static int dl_file = -1;
static const char *dl_path;
static uint64_t dl_ka_at_second; /* TIMEOUT_KEEPALIVE when the 2nd request came */
static size_t dl_got;
static int dl_eof, dl_status2, dl_idle_eof;
static int64_t dl_ms, dl_idle_ms;

static void h_download(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    const char *p = grace_request_path(req);
    f->handler_calls++;
    if (!strcmp(p, "/mem")) {
        grace_reply(req, 200, pat, PAT_LEN);
    } else if (!strcmp(p, "/file")) { /* over 32 KiB: sendfile */
        grace_reply_file(req, 200, dup(dl_file), 0, PAT_LEN);
    } else {
        dl_ka_at_second = fx_cnt(f, GRACE_CNT_TIMEOUT_KEEPALIVE);
        grace_reply(req, 200, "hello", 5);
    }
}

static void c_download(struct fx *f)
{
    char head[2048], req[64];
    long long cl = -1;
    struct resp r;
    int fd = cli_connect(f->port);
    set_rcvbuf(fd, 16384);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", dl_path);
    cli_send(fd, req);
    int64_t t0 = now_ms();
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 200);
    header_count(head, "Content-Length", &cl);
    ck_assert_int_eq(cl, PAT_LEN);
    /* 8 MiB in 1.5 s: five keep-alive periods */
    dl_got = read_body_raw(fd, PAT_LEN, 0, 1500, &dl_eof);
    dl_ms = now_ms() - t0;
    if (dl_got == PAT_LEN) {
        cli_send(fd, GET("/again"));
        if (cli_read_response(fd, &r, 0) == 0)
            dl_status2 = r.status;
        resp_free(&r);
        t0 = now_ms();
        dl_idle_eof = cli_wait_eof(fd, 3000);
        dl_idle_ms = now_ms() - t0;
    }
    close(fd);
}

static void run_download(const char *path)
{
    struct fx *f = fx_new();
    dl_path = path;
    dl_got = 0;
    dl_status2 = dl_idle_eof = 0;
    dl_ka_at_second = 99;
    raw_mismatch = 0;
    grace_config_set(f->cfg, GRACE_OPT_KEEPALIVE_TIMEOUT, 300);
    fx_start_sndbuf(f, h_download, 64 * 1024);
    fx_run(f, c_download, 10000);
    ck_assert_msg(dl_got == PAT_LEN, "download cut after %zu of %zu bytes, %lld ms (eof %d)",
                  dl_got, PAT_LEN, (long long)dl_ms, dl_eof);
    ck_assert_msg(dl_ms >= 1400, "download took %lld ms: not slow", (long long)dl_ms);
    ck_assert_int_eq(raw_mismatch, 0);
    ck_assert_int_eq(dl_status2, 200);
    ck_assert_uint_eq(dl_ka_at_second, 0); /* no keep-alive period counted yet */
    /* idle now: closed one keep-alive period later, by that timer */
    ck_assert_int_eq(dl_idle_eof, 1);
    ck_assert_msg(dl_idle_ms >= 200 && dl_idle_ms < 1000, "idle close after %lld ms",
                  (long long)dl_idle_ms);
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_KEEPALIVE), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_REQUESTS), 2);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}

START_TEST(test_keepalive_slow_download)
{
    run_download("/mem");
}
END_TEST

START_TEST(test_keepalive_slow_download_file)
{
    int fds;
    dl_file = pat_file(PAT_LEN);
    fds = count_fds();
    run_download("/file");
    ck_assert_int_eq(count_fds(), fds); /* the response's dup of the file is closed */
    close(dl_file);
}
END_TEST

/* ================================================================ 2. deferred work */

/*
 * Several connections get deferred work (a reply queued, a pipelined
 * request behind it) from one timer callback. While that list is run, a
 * callback destroys another connection that is still on it: the old code
 * unlinked it from the wrong list head and left the server's list pointing
 * into a dead stack frame or freed connection, so later deferred work was
 * lost (and ASan reports the write as a use-after-free).
 */
static struct grace_request *held[4];
static int nheld;

static void stop_done(struct grace_server *srv, void *arg)
{
    struct fx *f = arg;
    f->stopped++;
}

static int one_conn_left(struct fx *f)
{
    return fx_cnt(f, GRACE_CNT_CONN_ACTIVE) == 1;
}

/* Collect the body of held[3], already buffered: only deferred work can
 * deliver it now, since no more bytes will arrive on the socket. */
static void collect_held(struct fx *f)
{
    f->reply_rc = grace_request_collect_body(held[3], 0, reply_length, f);
}

/* Scenario: A "/a1" + pipelined "POST /stop", C "/c1" + pipelined "/c2",
 * B "/b1". One timer replies A, C, B: all three are queued, in that order.
 * A's deferred work runs /stop, whose handler stops the server, which
 * closes B (idle, queued last). Once C is gone too, /stop's body is
 * collected: deferred work that must still run. */
static void reply_acb(evutil_socket_t fd, short what, void *arg)
{
    grace_reply(held[0], 200, "a1", 2);
    grace_reply(held[1], 200, "c1", 2);
    grace_reply(held[2], 200, "b1", 2);
}

static void h_stop_queued(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    const char *p = grace_request_path(req);
    struct timeval tv = {0, 20000};
    f->handler_calls++;
    if (!strcmp(p, "/stop")) {
        ck_assert_int_eq(grace_server_stop(f->srv, 1500, stop_done, f), 0);
        held[3] = req;
        when(f, one_conn_left, collect_held, 1000);
    } else if (!strcmp(p, "/c2")) {
        grace_reply(req, 200, "c2", 2);
    } else {
        held[p[1] == 'a' ? 0 : p[1] == 'c' ? 1 : 2] = req;
        if (++nheld == 3)
            event_base_once(f->base, -1, EV_TIMEOUT, reply_acb, f, &tv);
    }
}

static void expect(int fd, int status, const char *body)
{
    struct resp r;
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, status);
    if (body)
        ck_assert_str_eq(r.body, body);
    resp_free(&r);
}

static void c_stop_queued(struct fx *f)
{
    struct resp r;
    int a = cli_connect(f->port), c = cli_connect(f->port), b = cli_connect(f->port);
    cli_send(a, GET("/a1") "POST /stop HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    cli_send(c, GET("/c1") GET("/c2"));
    cli_send(b, GET("/b1"));
    expect(a, 200, "a1");
    expect(c, 200, "c1");
    /* /c2 arrived before the stop: answered (with close) or dropped */
    if (cli_read_response(c, &r, 0) == 0)
        ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    close(c);
    expect(b, 200, "b1");
    ck_assert_int_eq(cli_wait_eof(b, 2000), 1); /* idle: closed by the stop */
    close(b);
    set_rcvtimeo(a, 3000);
    ck_assert_msg(cli_read_response(a, &r, 0) == 0, /* old code: EOF at the stop deadline */
                  "/stop never answered: its deferred work was lost");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "5");
    resp_free(&r);
    close(a);
}

START_TEST(test_stop_destroys_queued_conn)
{
    struct fx *f = fx_new();
    nheld = 0;
    f->reply_rc = 1; /* collect_body not called yet */
    fx_start(f, h_stop_queued);
    fx_run(f, c_stop_queued, 8000);
    fx_spin(f, 100);
    ck_assert_int_eq(f->reply_rc, 0); /* collect_body */
    ck_assert_int_eq(f->stopped, 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* Scenario with eviction (max-lingering 1), no stop: Z "/z1" + pipelined
 * "PUT /z2" (answered 401 at once, 10 MB unread: closes and lingers), Y
 * "/y1", X "PUT /x" (10 MB announced), W "POST /w" with its body. One
 * timer replies Z, Y, and for X starts reading the body (deferred work)
 * then answers 401: X lingers while still queued. Z's deferred work
 * answers /z2, Z lingers and evicts X, last on the list being run. Once
 * Y and Z are gone, W's body is collected. */
static void data_never(struct grace_request *req, const char *d, size_t n, void *arg)
{
    ck_abort_msg("body delivered after the reply completed");
}

static void step_zyx(evutil_socket_t fd, short what, void *arg)
{
    struct fx *f = arg;
    grace_reply(held[0], 200, "z1", 2);
    grace_reply(held[1], 200, "y1", 2);
    ck_assert_int_eq(grace_request_read_body(held[2], data_never, NULL, f), 0);
    grace_reply(held[2], 401, "no\n", 3);
    when(f, one_conn_left, collect_held, 1000);
}

static void h_evict_queued(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    const char *p = grace_request_path(req);
    struct timeval tv = {0, 20000};
    f->handler_calls++;
    if (!strcmp(p, "/z2")) {
        grace_reply(req, 401, "no\n", 3);
        return;
    }
    held[p[1] == 'z' ? 0 : p[1] == 'y' ? 1 : p[1] == 'x' ? 2 : 3] = req;
    if (++nheld == 4)
        event_base_once(f->base, -1, EV_TIMEOUT, step_zyx, f, &tv);
}

static void c_evict_queued(struct fx *f)
{
    struct resp r;
    int z = cli_connect(f->port), y = cli_connect(f->port), x = cli_connect(f->port),
        w = cli_connect(f->port);
    cli_send(z, GET("/z1") "PUT /z2 HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n");
    cli_send(y, GET("/y1"));
    cli_send(x, "PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n");
    cli_send(w, "POST /w HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    expect(z, 200, "z1");
    expect(z, 401, NULL);
    close(z);
    expect(y, 200, "y1");
    close(y);
    expect(x, 401, NULL);
    close(x);
    set_rcvtimeo(w, 3000);
    ck_assert_msg(cli_read_response(w, &r, 0) == 0, "/w never answered: its deferred work was lost");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "5");
    resp_free(&r);
    close(w);
}

START_TEST(test_eviction_destroys_queued_conn)
{
    struct fx *f = fx_new();
    nheld = 0;
    f->reply_rc = 1; /* collect_body not called yet */
    grace_config_set(f->cfg, GRACE_OPT_MAX_LINGERING, 1);
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_evict_queued);
    fx_run(f, c_evict_queued, 8000);
    fx_spin(f, 100);
    ck_assert_int_eq(f->reply_rc, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_EVICTED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* ================================================================ 3. file EOF */

/*
 * A file that ends before offset + length: the server cannot send the
 * promised Content-Length, so the client must see the bytes that exist,
 * then EOF; the fds are released. The old code stopped writing at the
 * file's end and left connection and file open forever.
 */
#define EOF_FILE (100 * KIB)
#define EOF_OFF (32 * KIB)
#define EOF_LEN (100 * KIB) /* over 32 KiB: sendfile */
static int eof_fd = -1, eof_seen;
static size_t eof_got;
static int64_t eof_ms;

static void h_past_eof(struct grace_request *req, void *arg)
{
    grace_reply_file(req, 200, dup(eof_fd), EOF_OFF, EOF_LEN);
}

static void c_past_eof(struct fx *f)
{
    char head[2048];
    long long cl = -1;
    int fd = cli_connect(f->port);
    set_rcvtimeo(fd, 3000);
    cli_send(fd, GET("/"));
    int64_t t0 = now_ms();
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 200);
    header_count(head, "Content-Length", &cl);
    ck_assert_int_eq(cl, EOF_LEN);
    eof_got = read_body_raw(fd, EOF_LEN, EOF_OFF, 0, &eof_seen);
    eof_ms = now_ms() - t0;
    close(fd);
}

/* Old API only: the client's view and the fds. */
static struct fx *run_past_eof(int *fds_before)
{
    struct fx *f = fx_new();
    raw_mismatch = 0;
    eof_fd = pat_file(EOF_FILE);
    fx_start(f, h_past_eof);
    *fds_before = count_fds();
    return f;
}

static void check_past_eof(struct fx *f, int fds_before)
{
    ck_assert_msg(eof_seen == 1 && eof_ms < 2000, "no EOF after the file's end: %d after %lld ms",
                  eof_seen, (long long)eof_ms);
    ck_assert_uint_eq(eof_got, EOF_FILE - EOF_OFF);
    ck_assert_int_eq(raw_mismatch, 0);
    fx_spin(f, 100);
    ck_assert_int_eq(count_fds(), fds_before);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
}

START_TEST(test_file_past_eof)
{
    int fds;
    struct fx *f = run_past_eof(&fds);
    nreports = 0;
    grace_server_on_response(f->srv, on_report, f);
    fx_run(f, c_past_eof, 8000);
    check_past_eof(f, fds);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_WRITE_ERRORS), 1);
    ck_assert_int_eq(nreports, 1);
    ck_assert_int_eq(reports[0].err, -EPIPE);
    ck_assert_uint_eq(reports[0].body_bytes, EOF_FILE - EOF_OFF);
    fx_free(f);
    close(eof_fd);
}
END_TEST

/* The same with the old API only: it fails on the old code too. */
START_TEST(test_file_past_eof_closes)
{
    int fds;
    struct fx *f = run_past_eof(&fds);
    fx_run(f, c_past_eof, 8000);
    check_past_eof(f, fds);
    fx_free(f);
    close(eof_fd);
}
END_TEST

/*
 * The same with a file of 32 KiB or less, which is read into the response
 * instead of sendfile()'d: the client must see the same thing, and so must
 * the access log and the close hook. The old code sent the bytes that
 * existed, reported err 0 (a truncated 200 logged as good), counted no
 * write error and gave the close hook reason 0.
 */
#define SMALL_EOF_FILE (10 * KIB)
#define SMALL_EOF_LEN (20 * KIB) /* promised: 20 KiB of a 10 KiB file */
static int small_close_calls, small_close_reason;

static void h_small_past_eof(struct grace_request *req, void *arg)
{
    grace_reply_file(req, 200, dup(eof_fd), 0, SMALL_EOF_LEN);
}

static void small_on_close(struct grace_conn *conn, int reason, void *arg)
{
    small_close_calls++;
    small_close_reason = reason;
}

static void c_small_past_eof(struct fx *f)
{
    char head[2048];
    long long cl = -1;
    int fd = cli_connect(f->port);
    set_rcvtimeo(fd, 3000);
    cli_send(fd, GET("/"));
    int64_t t0 = now_ms();
    ck_assert_int_eq(read_head(fd, head, sizeof(head)), 200);
    header_count(head, "Content-Length", &cl);
    ck_assert_int_eq(cl, SMALL_EOF_LEN);
    eof_got = read_body_raw(fd, SMALL_EOF_LEN, 0, 0, &eof_seen);
    eof_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_small_file_past_eof)
{
    struct fx *f = fx_new();
    int fds;
    raw_mismatch = 0;
    nreports = 0;
    small_close_calls = 0;
    small_close_reason = 1;
    eof_fd = pat_file(SMALL_EOF_FILE);
    fx_start(f, h_small_past_eof);
    grace_server_on_response(f->srv, on_report, f);
    grace_server_on_close(f->srv, small_on_close, f);
    fds = count_fds();
    fx_run(f, c_small_past_eof, 8000);
    fx_spin(f, 100);
    ck_assert_msg(eof_seen == 1 && eof_ms < 2000, "no EOF after the file's end: %d after %lld ms",
                  eof_seen, (long long)eof_ms);
    ck_assert_uint_eq(eof_got, SMALL_EOF_FILE); /* what exists, then the close */
    ck_assert_int_eq(raw_mismatch, 0);
    ck_assert_int_eq(nreports, 1);
    ck_assert_msg(reports[0].err == -EPIPE, "report err %d, not -EPIPE", reports[0].err);
    ck_assert_uint_eq(reports[0].body_bytes, SMALL_EOF_FILE);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_WRITE_ERRORS), 1);
    ck_assert_int_eq(small_close_calls, 1);
    ck_assert_int_eq(small_close_reason, -EPIPE);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
    close(eof_fd);
}
END_TEST

/* ================================================================ 4. write-timeout */

/*
 * write-timeout means "no write progress for that long". The old code
 * re-armed it on every flush, so an application that keeps streaming to
 * a client that reads nothing was never cut, and its output grew without
 * bound.
 */
#define WT_CHUNK (16 * KIB) /* every 10 ms: 1.6 MB/s */
#define WT_PENDING_MAX (2 * MIB) /* 0.5 s of that stream, plus 0.8 s of slack */
static struct {
    struct grace_request *req;
    struct event *tick;
    int64_t t0, finish_ms;
    size_t max_pending;
    int paced; /* the application adds a chunk only while pending < 256 KiB */
    int chunk_rc_after, end_rc, done;
} wt;

static void wt_finish(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    wt.finish_ms = now_ms() - wt.t0;
}

static void wt_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fx *f = arg;
    int64_t t = now_ms() - wt.t0;
    if (f->finish_calls) { /* ended under us: the stream is gone */
        wt.chunk_rc_after = grace_reply_chunk(wt.req, pat, WT_CHUNK);
        wt.end_rc = grace_reply_end(wt.req); /* releases the request */
    } else if (t > (wt.paced ? 2000 : 3000)) { /* the application's own end */
        wt.end_rc = grace_reply_end(wt.req);
    } else {
        size_t pending = grace_reply_pending(wt.req);
        if (pending > wt.max_pending)
            wt.max_pending = pending;
        if (!wt.paced || pending < 256 * KIB)
            ck_assert_int_eq(grace_reply_chunk(wt.req, pat, WT_CHUNK), 0);
        return;
    }
    event_del(wt.tick);
    __atomic_store_n(&wt.done, 1, __ATOMIC_SEQ_CST);
}

static void h_stream(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {0, 10000};
    wt.req = req;
    wt.t0 = now_ms();
    grace_request_on_finish(req, wt_finish, f);
    ck_assert_int_eq(grace_reply_start(req, 200), 0);
    event_add(wt.tick, &tv);
}

static struct fx *wt_start(int paced)
{
    struct fx *f = fx_new();
    memset(&wt, 0, sizeof(wt));
    wt.paced = paced;
    wt.chunk_rc_after = wt.end_rc = 1;
    grace_config_set(f->cfg, GRACE_OPT_WRITE_TIMEOUT, 500);
    fx_start_sndbuf(f, h_stream, 64 * 1024);
    wt.tick = event_new(f->base, -1, EV_PERSIST, wt_tick, f);
    return f;
}

static void wt_free(struct fx *f)
{
    event_free(wt.tick);
    fx_free(f);
}

/* Never reads; leaves once the application is done (at most 4 s). */
static void c_never_reads(struct fx *f)
{
    int fd = cli_connect(f->port);
    set_rcvbuf(fd, 4096);
    cli_send(fd, GET("/stream"));
    for (int i = 0; i < 400 && !__atomic_load_n(&wt.done, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
    close(fd);
}

START_TEST(test_write_timeout_stalled_stream)
{
    struct fx *f = wt_start(0);
    fx_run(f, c_never_reads, 8000);
    ck_assert_msg(f->finish_calls == 1 && f->finish_err == -ETIMEDOUT,
                  "stream to a client that reads nothing not cut in 3 s (finish calls %d, err "
                  "%d, pending up to %zu bytes)",
                  f->finish_calls, f->finish_err, wt.max_pending);
    ck_assert_msg(wt.finish_ms >= 400 && wt.finish_ms < 2000, "cut after %lld ms",
                  (long long)wt.finish_ms);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 1);
    ck_assert_int_eq(wt.chunk_rc_after, -ENOTCONN);
    ck_assert_int_eq(wt.end_rc, -ENOTCONN);
    ck_assert_msg(wt.max_pending <= WT_PENDING_MAX, "%zu bytes pending", wt.max_pending);
    fx_spin(f, 50);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    wt_free(f);
}
END_TEST

/* Reads 32 KiB every 50 ms (slower than the stream, never stalling for
 * 500 ms) for 2.3 s, then the rest at full speed. */
static int steady_end;

static void c_steady_reader(struct fx *f)
{
    static const char last[] = "\r\n0\r\n\r\n"; /* end of the chunked stream */
    char *buf = malloc(32 * KIB), tail[8] = "";
    int fd = cli_connect(f->port);
    set_rcvbuf(fd, 65536);
    cli_send(fd, GET("/stream"));
    int64_t t0 = now_ms();
    steady_end = 0;
    while (!steady_end && now_ms() - t0 < 8000) {
        ssize_t k = recv(fd, buf, 32 * KIB, 0);
        if (k <= 0)
            break;
        if (k >= 7) {
            memcpy(tail, buf + k - 7, 7);
        } else {
            memmove(tail, tail + k, (size_t)(7 - k));
            memcpy(tail + 7 - k, buf, (size_t)k);
        }
        steady_end = !memcmp(tail, last, 7);
        if (now_ms() - t0 < 2300)
            usleep(50000);
    }
    free(buf);
    close(fd);
}

START_TEST(test_write_timeout_steady_reader)
{
    struct fx *f = wt_start(1);
    fx_run(f, c_steady_reader, 10000);
    ck_assert_msg(steady_end, "stream cut (finish err %d after %lld ms)", f->finish_err,
                  (long long)wt.finish_ms);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, 0);
    ck_assert_int_eq(wt.end_rc, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 0);
    /* the reader was the bottleneck: output waited, the timer was running */
    ck_assert_uint_ge(wt.max_pending, 64 * KIB);
    wt_free(f);
}
END_TEST

/* ================================================================ 5. body-timeout */

/*
 * body-timeout is how long the server waits for body bytes the
 * application wants, idle time, not total. The old code left the timer
 * armed while the application had paused, and answered 408 to a client
 * that had sent everything.
 */
#define BT_BODY 100000
static struct fx *bt_f;

static void bt_finish(struct grace_request *req, int err, void *arg)
{
    bt_f->finish_calls++;
    bt_f->finish_err = err;
}

static void bt_resume(evutil_socket_t fd, short what, void *arg)
{
    struct grace_request *req = arg;
    if (bt_f->finish_err) /* ended while paused: complete our side */
        bt_f->reply_rc = grace_reply(req, 500, NULL, 0);
    else
        grace_request_resume(req);
}

static void bt_data(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {1, 500000};
    if (memcmp(d, pat + f->bytes, n))
        raw_mismatch++;
    f->bytes += n;
    if (f->data_calls++ == 0) { /* busy elsewhere for 1.5 s */
        grace_request_pause(req);
        event_base_once(f->base, -1, EV_TIMEOUT, bt_resume, req, &tv);
    }
}

static void bt_end(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    char b[32];
    int n = snprintf(b, sizeof(b), "%zu", f->bytes);
    grace_reply(req, 200, b, (size_t)n);
}

static void h_pause_long(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    grace_request_on_finish(req, bt_finish, f);
    ck_assert_int_eq(grace_request_read_body(req, bt_data, bt_end, f), 0);
}

static int bt_status;
static char bt_body[32];
static int64_t bt_ms;

static void c_pause_long(struct fx *f)
{
    char head[128];
    struct resp r;
    int fd = cli_connect(f->port);
    snprintf(head, sizeof(head), "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             BT_BODY);
    cli_send(fd, head);
    usleep(100000); /* the server now waits for the body: its timer runs */
    int64_t t0 = now_ms();
    ck_assert_int_eq(cli_send_all(fd, pat, BT_BODY), 0); /* all of it, at once */
    if (cli_read_response(fd, &r, 0) == 0) {
        bt_status = r.status;
        snprintf(bt_body, sizeof(bt_body), "%s", r.body);
    }
    bt_ms = now_ms() - t0;
    resp_free(&r);
    close(fd);
}

START_TEST(test_body_timeout_paused)
{
    struct fx *f = bt_f = fx_new();
    bt_status = 0;
    raw_mismatch = 0;
    grace_config_set(f->cfg, GRACE_OPT_BODY_TIMEOUT, 500);
    fx_start(f, h_pause_long);
    fx_run(f, c_pause_long, 8000);
    ck_assert_msg(bt_status == 200, "paused application: got %d after %lld ms (timeout_body %d)",
                  bt_status, (long long)bt_ms, (int)fx_cnt(f, GRACE_CNT_TIMEOUT_BODY));
    ck_assert_str_eq(bt_body, "100000");
    ck_assert_int_ge(bt_ms, 1400); /* the pause did happen */
    ck_assert_int_eq(raw_mismatch, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, 0);
    fx_free(f);
}
END_TEST

/* One body byte every 200 ms for 2 s: idle 200 ms at most, never cut. */
static void c_trickle_body(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /t HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    for (int i = 0; i < 10; i++) {
        usleep(200000);
        ck_assert_int_eq(cli_send_all(fd, "0123456789" + i, 1), 0);
    }
    expect(fd, 200, "10");
    close(fd);
}

static void h_collect_len(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, note_finish, f);
    ck_assert_int_eq(grace_request_collect_body(req, 0, reply_length, f), 0);
}

START_TEST(test_body_timeout_idle_not_total)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_BODY_TIMEOUT, 500);
    /* body-timeout alone: 5 bytes/s is far below body-min-rate (tested below) */
    grace_config_set(f->cfg, GRACE_OPT_BODY_MIN_RATE, 0);
    fx_start(f, h_collect_len);
    fx_run(f, c_trickle_body, 8000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, 0);
    fx_free(f);
}
END_TEST

/* Half a body, then silence while the application waits: 408. */
static int64_t stall_ms;

static void c_stall_body(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabcde");
    int64_t t0 = now_ms();
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    stall_ms = now_ms() - t0;
    ck_assert_int_eq(r.status, 408);
    ck_assert(r.closed);
    resp_free(&r);
    ck_assert_int_eq(cli_wait_eof(fd, 2000), 1);
    close(fd);
}

START_TEST(test_body_timeout_stalled_client)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_BODY_TIMEOUT, 500);
    fx_start(f, h_collect_len);
    fx_run(f, c_stall_body, 8000);
    ck_assert_msg(stall_ms >= 400 && stall_ms < 1500, "408 after %lld ms", (long long)stall_ms);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 1);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, -ETIMEDOUT);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    fx_free(f);
}
END_TEST

/*
 * body-min-rate: a body trickled a byte now and then is never silent for a
 * whole body-timeout, and the old code held its slot (and graced its
 * temporary file) for as long as the client liked. Averaged over each
 * body-timeout period the application waits, it must reach the rate: a
 * trickle is cut with 408, a slow but steady body is not, and the time the
 * application spends paused is not counted.
 */
static int slow_status;
static int64_t slow_ms;
static size_t slow_sent;

/* 1000 bytes announced; one byte every 200 ms (5 bytes/s) for up to 5 s */
static void c_trickle_slow(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port);
    set_rcvtimeo(fd, 200);
    cli_send(fd, "POST /t HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    int64_t t0 = now_ms();
    slow_status = 0;
    slow_sent = 0;
    memset(&r, 0, sizeof(r));
    while (now_ms() - t0 < 5000) {
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_PEEK); /* an answer has come? */
        if (k == 1) {
            set_rcvtimeo(fd, 3000);
            if (cli_read_response(fd, &r, 0) == 0)
                slow_status = r.status;
            resp_free(&r);
            break;
        }
        if (cli_send_all(fd, "x", 1) < 0)
            break;
        slow_sent++;
    }
    slow_ms = now_ms() - t0;
    close(fd);
}

START_TEST(test_body_min_rate_trickle)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_BODY_TIMEOUT, 1000); /* and the default rate */
    fx_start(f, h_collect_len);
    fx_run(f, c_trickle_slow, 10000);
    ck_assert_msg(slow_status == 408, "a trickle (5 bytes/s) was not cut: status %d after %lld ms, "
                  "%zu bytes sent", slow_status, (long long)slow_ms, slow_sent);
    /* one window (1 s), not the whole body: a late timer or two at most */
    ck_assert_msg(slow_ms >= 900 && slow_ms < 3500, "408 after %lld ms", (long long)slow_ms);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_BODY_TOO_SLOW), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, -ETIMEDOUT);
    fx_free(f);
}
END_TEST

/* 600 bytes, 20 every 100 ms: 200 bytes/s for 3 s (three windows), above a
 * floor of 100 */
static void c_slow_but_steady(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 600\r\n\r\n");
    for (int i = 0; i < 30; i++) {
        usleep(100000);
        ck_assert_int_eq(cli_send_all(fd, pat + 20 * i, 20), 0);
    }
    expect(fd, 200, "600");
    close(fd);
}

START_TEST(test_body_min_rate_steady)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_BODY_TIMEOUT, 1000);
    grace_config_set(f->cfg, GRACE_OPT_BODY_MIN_RATE, 100);
    fx_start(f, h_collect_len);
    fx_run(f, c_slow_but_steady, 10000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_BODY_TOO_SLOW), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_BODY), 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, 0);
    fx_free(f);
}
END_TEST

/* The application pauses for 1.5 s (three windows) while the client, whose
 * bytes it does not take, can send nothing: not the client's slowness. */
START_TEST(test_body_min_rate_paused)
{
    struct fx *f = bt_f = fx_new();
    bt_status = 0;
    raw_mismatch = 0;
    grace_config_set(f->cfg, GRACE_OPT_BODY_TIMEOUT, 500);
    grace_config_set(f->cfg, GRACE_OPT_BODY_MIN_RATE, 1 << 20); /* 1 MiB/s while it waits */
    fx_start(f, h_pause_long);
    fx_run(f, c_pause_long, 8000);
    ck_assert_msg(bt_status == 200, "paused application: got %d after %lld ms (too slow %d)",
                  bt_status, (long long)bt_ms, (int)fx_cnt(f, GRACE_CNT_BODY_TOO_SLOW));
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_BODY_TOO_SLOW), 0);
    ck_assert_int_eq(f->finish_err, 0);
    fx_free(f);
}
END_TEST

/* ================================================================ 6. reply in on_data */

/*
 * on_data's piece is valid for the whole call, also after the callback
 * completed a reply that ends the connection's reading (a body far over
 * drain-limit: close, discard what is buffered). The old code drained
 * the input buffer inside grace_reply(), freeing the piece: reading it
 * afterwards is a heap-use-after-free under ASan.
 */
#define UAF_BODY (2 * MIB)

static void data_reply_then_read(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct fx *f = arg;
    f->data_calls++;
    ck_assert_int_eq(grace_reply(req, 401, "no token\n", 9), 0);
    if (memcmp(d, pat + f->bytes, n)) /* every byte, after the reply */
        raw_mismatch++;
    f->bytes += n;
}

static void end_count(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->end_calls++;
}

static void h_reply_in_data(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    ck_assert_int_eq(grace_request_read_body(req, data_reply_then_read, end_count, f), 0);
}

static void c_upload_then_read(struct fx *f)
{
    char head[128];
    int fd = cli_connect(f->port);
    snprintf(head, sizeof(head), "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             UAF_BODY);
    cli_send(fd, head);
    ck_assert_int_eq(cli_send_all(fd, pat, UAF_BODY), 0);
    expect(fd, 401, "no token\n");
    close(fd);
}

START_TEST(test_reply_in_data_keeps_piece)
{
    struct fx *f = fx_new();
    raw_mismatch = 0;
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    fx_start(f, h_reply_in_data);
    fx_run(f, c_upload_then_read, 8000);
    ck_assert_int_eq(f->data_calls, 1); /* no pieces after the reply */
    ck_assert_int_eq(f->end_calls, 0);
    ck_assert_uint_gt(f->bytes, 0);
    ck_assert_int_eq(raw_mismatch, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_EARLY_REPLIES), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 1);
    fx_free(f);
}
END_TEST

/* ================================================================ 7. half-close */

/*
 * A client may shut down its sending side once its request is complete
 * and wait for the answer. The old code took that EOF for a client that
 * had gone, aborted the request (-ECONNRESET) and closed without an
 * answer when the handler answered asynchronously.
 */
static void note_finish_only(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
}

static void collected_later(struct grace_request *req, struct evbuffer *body, void *arg)
{
    char b[32];
    snprintf(b, sizeof(b), "%zu", evbuffer_get_length(body));
    reply_later(arg, req, 200, 200, b);
}

static void collected_counted(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct fx *f = arg;
    f->end_calls++;
    reply_length(req, body, arg);
}

static void h_half_close(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    const char *p = grace_request_path(req);
    f->handler_calls++;
    if (!strcmp(p, "/mid")) { /* the finish callback completes an aborted reply */
        grace_request_on_finish(req, note_finish, f);
        ck_assert_int_eq(grace_request_collect_body(req, 0, collected_counted, f), 0);
        return;
    }
    /* the later reply completes ours either way: -ENOTCONN if it ended */
    grace_request_on_finish(req, note_finish_only, f);
    if (!strcmp(grace_request_method(req), "POST"))
        ck_assert_int_eq(grace_request_collect_body(req, 0, collected_later, f), 0);
    else
        reply_later(f, req, 200, 200, "later");
}

static const char *hc_req;
static struct resp hc_r;
static int hc_rc, hc_eof;

static void c_half_close(struct fx *f)
{
    int fd = cli_connect(f->port);
    cli_send(fd, hc_req);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    hc_rc = cli_read_response(fd, &hc_r, 0);
    hc_eof = hc_rc == 0 ? cli_wait_eof(fd, 2000) : 0;
    close(fd);
}

static struct fx *run_half_close(const char *req)
{
    struct fx *f = fx_new();
    hc_req = req;
    fx_start(f, h_half_close);
    fx_run(f, c_half_close, 8000);
    fx_spin(f, 50);
    return f;
}

static void check_half_close_answered(struct fx *f, const char *body)
{
    ck_assert_msg(hc_rc == 0, "half-closed client got no answer (finish err %d, client_aborts %d)",
                  f->finish_err, (int)fx_cnt(f, GRACE_CNT_CLIENT_ABORTS));
    ck_assert_int_eq(hc_r.status, 200);
    ck_assert_str_eq(hc_r.body, body);
    ck_assert_int_eq(hc_eof, 1); /* then closed: the client sends nothing more */
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_eq(f->finish_err, 0);
    ck_assert_int_eq(f->reply_rc, 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CLIENT_ABORTS), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    resp_free(&hc_r);
}

START_TEST(test_half_close_get_answered)
{
    struct fx *f = run_half_close(GET("/"));
    check_half_close_answered(f, "later");
    fx_free(f);
}
END_TEST

START_TEST(test_half_close_post_answered)
{
    struct fx *f = run_half_close("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    check_half_close_answered(f, "5");
    fx_free(f);
}
END_TEST

/*
 * Half-closed in the middle of a body the application reads: the body can
 * never be complete. Asserted: the client gets no success, only a 4xx
 * (400) followed by EOF, or a plain EOF, never a reset; the application
 * never sees the body and its finish callback reports an error once.
 */
START_TEST(test_half_close_mid_body)
{
    struct fx *f =
        run_half_close("POST /mid HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabcde");
    if (hc_rc == 0) {
        ck_assert_msg(hc_r.status >= 400 && hc_r.status < 500, "status %d", hc_r.status);
        ck_assert_int_eq(hc_eof, 1);
    } else {
        ck_assert_msg(hc_r.err == -1, "not a clean EOF: %d", hc_r.err);
    }
    resp_free(&hc_r);
    ck_assert_int_eq(f->end_calls, 0);
    ck_assert_int_eq(f->finish_calls, 1);
    ck_assert_int_lt(f->finish_err, 0);
    ck_assert_int_eq(f->reply_rc, -ENOTCONN);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* ================================================================ 8. EMFILE */

/*
 * accept() failing with EMFILE pauses the listeners. The old code
 * re-enabled them only when a connection closed: with none open, never.
 * The client thread takes every fd but one (a lowered RLIMIT_NOFILE and
 * dup()), connects (the kernel completes the handshake), lets the server
 * fail its accept(), then gives the fds back.
 */
static struct rlimit em_saved;
static int em_fds[4096], em_n, em_src = -1;

static void emfile_take(void)
{
    struct rlimit lim;
    int fd;
    em_src = open("/dev/null", O_RDONLY);
    getrlimit(RLIMIT_NOFILE, &em_saved);
    lim = em_saved;
    lim.rlim_cur = (rlim_t)count_fds() + 16;
    setrlimit(RLIMIT_NOFILE, &lim);
    em_n = 0;
    while (em_n < 4096 && (fd = dup(em_src)) >= 0)
        em_fds[em_n++] = fd;
    if (em_n)
        close(em_fds[--em_n]); /* one left: the client's socket */
}

/* Idempotent: the test calls it again in case the client failed half-way. */
static void emfile_give_back(void)
{
    while (em_n)
        close(em_fds[--em_n]);
    if (em_src >= 0)
        close(em_src);
    em_src = -1;
    setrlimit(RLIMIT_NOFILE, &em_saved);
}

static int em_wait_counter = -1; /* counter that shows the failed accept, or -1: wait 300 ms */
static int em_status, em_failed_accept;
static int64_t em_ms;

static void c_emfile(struct fx *f)
{
    struct resp r;
    emfile_take();
    int fd = cli_connect(f->port);
    cli_send(fd, GET("/"));
    for (int i = 0; i < 100; i++) { /* let the server fail its accept() */
        usleep(10000);
        if (em_wait_counter < 0 ? i >= 30 : fx_cnt(f, em_wait_counter) > 0)
            break;
    }
    em_failed_accept = em_wait_counter < 0 || fx_cnt(f, em_wait_counter) > 0;
    emfile_give_back();
    int64_t t0 = now_ms();
    set_rcvtimeo(fd, 2000);
    em_status = cli_read_response(fd, &r, 0) == 0 ? r.status : -1;
    em_ms = now_ms() - t0;
    resp_free(&r);
    close(fd);
}

static int skip_rlimit(void)
{
    if (!getenv("GRACE_TEST_NO_RLIMIT"))
        return 0;
    fprintf(stderr, "EMFILE test skipped (GRACE_TEST_NO_RLIMIT)\n");
    return 1;
}

START_TEST(test_emfile_accept_retry)
{
    struct fx *f;
    if (skip_rlimit())
        return;
    f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_ACCEPT_RETRY, 100);
    em_wait_counter = GRACE_CNT_ACCEPT_ERRORS;
    fx_start(f, h_hello);
    fx_run(f, c_emfile, 8000);
    emfile_give_back();
    ck_assert_msg(em_status == 200 && em_ms < 1000, "after EMFILE: status %d after %lld ms",
                  em_status, (long long)em_ms);
    ck_assert_msg(em_failed_accept, "the server never failed an accept(): the test proves nothing");
    ck_assert_uint_ge(fx_cnt(f, GRACE_CNT_ACCEPT_ERRORS), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 1);
    fx_free(f);
}
END_TEST

/* The same with the old API: default accept-retry (500 ms). */
START_TEST(test_emfile_accepts_again)
{
    struct fx *f;
    if (skip_rlimit())
        return;
    f = fx_new();
    em_wait_counter = -1;
    fx_start(f, h_hello);
    fx_run(f, c_emfile, 8000);
    emfile_give_back();
    ck_assert_msg(em_status == 200 && em_ms < 1500, "after EMFILE: status %d after %lld ms",
                  em_status, (long long)em_ms);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 1);
    fx_free(f);
}
END_TEST

/* ================================================================ 9. framing headers */

/*
 * The server owns the framing: Content-Length, Transfer-Encoding and
 * Connection are refused from the application (names case-insensitive),
 * except "Connection: close", which makes the server close after the
 * response and send that header once. The old code accepted them all and
 * sent duplicates (two Content-Lengths: a request-smuggling vector).
 */
static const struct {
    const char *name, *value;
} refused[] = {
    {"Content-Length", "5"},       {"content-length", "5"},         {"CONTENT-LENGTH", "0"},
    {"Transfer-Encoding", "chunked"}, {"transfer-encoding", "identity"},
    {"Connection", "keep-alive"},  {"connection", "upgrade"},       {"CONNECTION", "Keep-Alive"},
};

static void h_headers(struct grace_request *req, void *arg)
{
    const char *p = grace_request_path(req);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        ck_assert_msg(grace_response_add_header(req, refused[i].name, refused[i].value) == -EINVAL,
                      "accepted \"%s: %s\"", refused[i].name, refused[i].value);
    ck_assert_int_eq(grace_response_add_header(req, "X-Fine", "1"), 0);
    if (!strcmp(p, "/close"))
        ck_assert_int_eq(grace_response_add_header(req, "Connection", "close"), 0);
    if (!strcmp(p, "/stream")) {
        grace_reply_start(req, 200);
        grace_reply_chunk(req, "hello", 5);
        grace_reply_end(req);
    } else {
        grace_reply(req, 200, "hello", 5);
    }
}

/* One response: its framing headers counted; EOF expected after it? */
static void check_framing(int fd, const char *req, int n_cl, int closes)
{
    struct resp r;
    char v[64];
    cli_send(fd, req);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_int_eq(header_count(r.head, "Content-Length", NULL), n_cl);
    ck_assert_int_eq(header_count(r.head, "Transfer-Encoding", NULL), !n_cl);
    ck_assert_int_eq(header_count(r.head, "X-Fine", NULL), 1);
    ck_assert_int_eq(header_count(r.head, "Connection", NULL), closes);
    if (closes) {
        ck_assert(resp_header(&r, "Connection", v, sizeof(v)));
        ck_assert_str_eq(v, "close");
        ck_assert_int_eq(cli_wait_eof(fd, 1000), 1);
    }
    resp_free(&r);
}

static void c_framing(struct fx *f)
{
    int fd = cli_connect(f->port);
    check_framing(fd, GET("/plain"), 1, 0);
    check_framing(fd, GET("/stream"), 0, 0);
    check_framing(fd, GET("/plain"), 1, 0); /* still open */
    check_framing(fd, GET("/close"), 1, 1);
    close(fd);
    /* HTTP/1.0 keep-alive: not "keep-alive" and "close" both */
    fd = cli_connect(f->port);
    check_framing(fd, "GET /close HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 1);
    close(fd);
    /* the client asked for close too: still one header */
    fd = cli_connect(f->port);
    check_framing(fd, "GET /close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 1, 1);
    close(fd);
}

START_TEST(test_framing_headers_refused)
{
    struct fx *f = fx_new();
    fx_start(f, h_headers);
    fx_run(f, c_framing, 8000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_REQUESTS), 6);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACCEPTED), 3);
    fx_free(f);
}
END_TEST

/* ================================================================ 10. drain time */

/*
 * After an early reply a small remainder (under drain-limit) is read and
 * discarded to keep the connection; drain-time bounds how long that may
 * take in total. The old code only had the idle body-timeout: a client
 * trickling its remainder held the connection as long as it liked.
 */
#define DR_LEN (200 * KIB) /* under drain-limit (256 KiB) */
static int dr_eof, dr_send_rc, dr_closed_401;
static int64_t dr_ms;
static size_t dr_sent;

static void c_trickle_remainder(struct fx *f)
{
    char head[128];
    struct resp r;
    int limit = *(int *)f->user, fd = cli_connect(f->port);
    snprintf(head, sizeof(head), "PUT /d HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             DR_LEN);
    cli_send(fd, head);
    ck_assert_int_eq(cli_send_all(fd, pat, KIB), 0);
    ck_assert_int_eq(cli_read_response(fd, &r, 0), 0); /* the 401 first, never a reset */
    ck_assert_int_eq(r.status, 401);
    dr_closed_401 = r.closed;
    resp_free(&r);
    int64_t t0 = now_ms();
    dr_sent = KIB;
    dr_eof = dr_send_rc = 0;
    while (!dr_eof && !dr_send_rc && dr_sent < DR_LEN && now_ms() - t0 < limit) {
        dr_send_rc = cli_send_all(fd, pat + dr_sent, KIB); /* 1 KiB every 50 ms */
        dr_sent += KIB;
        dr_eof = cli_wait_eof(fd, 50);
    }
    dr_ms = now_ms() - t0;
    close(fd);
}

static void check_drain_cut(struct fx *f, int lo, int hi)
{
    ck_assert_int_eq(dr_closed_401, 0); /* keep-alive was offered */
    ck_assert_msg(dr_eof == 1 && dr_send_rc == 0,
                  "drain not ended gracefully: eof %d, send %d, after %lld ms and %zu bytes",
                  dr_eof, dr_send_rc, (long long)dr_ms, dr_sent);
    ck_assert_msg(dr_ms >= lo && dr_ms < hi, "drain ended after %lld ms", (long long)dr_ms);
    fx_spin(f, 100);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_LINGER_STARTED), 1);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_KEEPALIVE_DRAINS), 0);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
}

START_TEST(test_drain_time)
{
    struct fx *f = fx_new();
    int limit = 3000;
    f->user = &limit;
    grace_config_set(f->cfg, GRACE_OPT_DRAIN_TIME, 500);
    fx_start(f, h_401);
    fx_run(f, c_trickle_remainder, 8000);
    check_drain_cut(f, 400, 1500);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_DRAIN), 1);
    fx_free(f);
}
END_TEST

/* The default drain-time (5 s), old API only. Takes 5 s. */
START_TEST(test_drain_time_default)
{
    struct fx *f = fx_new();
    int limit = 7000;
    f->user = &limit;
    fx_start(f, h_401);
    fx_run(f, c_trickle_remainder, 10000);
    check_drain_cut(f, 4500, 6500);
    fx_free(f);
}
END_TEST

/* ================================================================ 11. reports */

/*
 * Every response is reported once to grace_server_on_response(), also
 * those the server makes itself, and the bytes reported are the bytes the
 * client received. The old code had no such report.
 */
static const struct {
    const char *req; /* NULL: a header section over max-header-bytes */
    int status, has_req;
} rep_cases[] = {
    {GET("/ok"), 200, 1},
    {GET("/nowhere"), 404, 1},
    {"GET / HTTP/1.1\nHost: t\n\n", 400, 0},
    {NULL, 431, 0},
    {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, 0},
    /* a handler that neither replies nor reads: the server's 413 */
    {"POST /wait HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413, 1},
    {"GET / HTTP/1.1\r\nHost: t\r\n", 408, 0}, /* never finished */
};
#define NREP (sizeof(rep_cases) / sizeof(rep_cases[0]))
static size_t rep_seen[NREP]; /* response bytes the client received */

static void c_reports(struct fx *f)
{
    char big[2200];
    struct resp r;
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %02000d\r\n\r\n", 0);
    for (size_t i = 0; i < NREP; i++) {
        int fd = cli_connect(f->port);
        cli_send(fd, rep_cases[i].req ? rep_cases[i].req : big);
        ck_assert_int_eq(cli_read_response(fd, &r, 0), 0);
        ck_assert_int_eq(r.status, rep_cases[i].status);
        rep_seen[i] = strlen(r.head) + r.body_len;
        resp_free(&r);
        close(fd);
        usleep(20000); /* reports in order */
    }
}

static void release_on_error(struct grace_request *req, int err, void *arg)
{
    if (err)
        grace_reply(req, 500, NULL, 0); /* -ENOTCONN: releases it */
}

static void h_wait(struct grace_request *req, void *arg)
{
    grace_request_on_finish(req, release_on_error, arg);
}

START_TEST(test_report_every_response)
{
    struct fx *f = fx_new();
    nreports = 0;
    grace_config_set(f->cfg, GRACE_OPT_HEADER_TIMEOUT, 300);
    grace_config_set(f->cfg, GRACE_OPT_MAX_HEADER_BYTES, 1024);
    grace_config_set(f->cfg, GRACE_OPT_MAX_BODY_SIZE, 1000);
    fx_start(f, NULL); /* no catch-all: the server's own 404 */
    ck_assert_int_eq(grace_server_route(f->srv, NULL, "/ok", GRACE_ROUTE_EXACT, h_hello, f), 0);
    ck_assert_int_eq(grace_server_route(f->srv, NULL, "/wait", GRACE_ROUTE_EXACT, h_wait, f), 0);
    grace_server_on_response(f->srv, on_report, f);
    fx_run(f, c_reports, 8000);
    fx_spin(f, 100);
    ck_assert_int_eq(nreports, (int)NREP);
    for (size_t i = 0; i < NREP; i++) {
        const struct report *r = &reports[i];
        ck_assert_msg(r->status == rep_cases[i].status && r->has_req == rep_cases[i].has_req,
                      "report %zu: status %d, request %d", i, r->status, r->has_req);
        ck_assert_int_eq(r->err, 0);
        ck_assert_msg(r->bytes > 0 && r->bytes == rep_seen[i], "report %zu: %llu bytes, sent %zu",
                      i, (unsigned long long)r->bytes, rep_seen[i]);
        ck_assert_int_gt(r->us, 0);
    }
    ck_assert_uint_eq(reports[0].body_bytes, 5);
    ck_assert_int_ge(reports[NREP - 1].us, 250000); /* the 408 waited header-timeout */
    fx_free(f);
}
END_TEST

/* A response cut by the client's reset is reported with an error. */
static void h_big(struct grace_request *req, void *arg)
{
    grace_reply(req, 200, pat, PAT_LEN);
}

static void c_reset_mid_response(struct fx *f)
{
    struct linger lg = {1, 0};
    int fd = cli_connect(f->port);
    set_rcvbuf(fd, 4096);
    cli_send(fd, GET("/big"));
    usleep(200000); /* read nothing */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    usleep(100000);
}

START_TEST(test_report_reset)
{
    struct fx *f = fx_new();
    nreports = 0;
    fx_start_sndbuf(f, h_big, 64 * 1024);
    grace_server_on_response(f->srv, on_report, f);
    fx_run(f, c_reset_mid_response, 8000);
    /* the reset is seen at the next write attempt: on a loaded machine
     * that can take longer than one short spin */
    for (int i = 0; i < 30 && nreports == 0; i++)
        fx_spin(f, 100);
    ck_assert_int_eq(nreports, 1);
    ck_assert_int_eq(reports[0].status, 200);
    ck_assert_int_lt(reports[0].err, 0);
    ck_assert_uint_gt(reports[0].bytes, 0);
    ck_assert_uint_lt(reports[0].body_bytes, PAT_LEN);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* ================================================================ new options */

START_TEST(test_new_options)
{
    static const struct {
        enum grace_opt opt;
        const char *name;
        int64_t def;
    } t[] = {
        {GRACE_OPT_DRAIN_TIME, "drain-time", 5000},
        {GRACE_OPT_LINGER_MIN_RATE, "linger-min-rate", 262144},
        {GRACE_OPT_LINGER_MAX_TIME, "linger-max-time", 300000},
        {GRACE_OPT_ACCEPT_RETRY, "accept-retry", 500},
    };
    struct grace_config *c = grace_config_new();
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ck_assert_int_eq(grace_config_get(c, t[i].opt), t[i].def);
        ck_assert_ptr_nonnull(grace_opt_name(t[i].opt));
        ck_assert_str_eq(grace_opt_name(t[i].opt), t[i].name);
        ck_assert_int_eq(grace_opt_by_name(t[i].name), t[i].opt);
        ck_assert_int_eq(grace_config_set(c, t[i].opt, t[i].def * 2), 0);
        ck_assert_int_eq(grace_config_get(c, t[i].opt), t[i].def * 2);
    }
    for (int i = GRACE_CNT_TIMEOUT_DRAIN; i < GRACE_CNT__COUNT; i++)
        ck_assert_ptr_nonnull(grace_counter_name(i));
    grace_config_free(c);
}
END_TEST


/* ================================================================ review */

/* Two pipelined requests, then FIN; the handler answers 100 ms later: both
 * are answered (the second used to be dropped with the buffered input). */
static void later_ok(evutil_socket_t fd, short w, void *arg)
{
    grace_reply(arg, 200, "ok", 2);
}

static void h_async_ok(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct timeval tv = {0, 100000};
    event_base_once(f->base, -1, EV_TIMEOUT, later_ok, req, &tv);
}

static void c_pipelined_fin(struct fx *f)
{
    struct resp r;
    int fd = cli_connect(f->port), got;
    cli_send(fd, GET("/1") GET("/2"));
    usleep(20000);
    shutdown(fd, SHUT_WR);
    for (got = 0; got < 2 && cli_read_response(fd, &r, 0) == 0; got++)
        resp_free(&r);
    f->handler_calls = got;
    ck_assert_int_eq(cli_wait_eof(fd, 2000), 1);
    close(fd);
}

START_TEST(test_half_close_pipelined_async)
{
    struct fx *f = fx_new();
    fx_start(f, h_async_ok);
    fx_run(f, c_pipelined_fin, 8000);
    ck_assert_msg(f->handler_calls == 2, "answered %d of 2 requests sent before the FIN",
                  f->handler_calls);
    fx_free(f);
}
END_TEST

/* A response report whose callback stops the server, which evicts (frees)
 * the very connection being reported: the report must run while the
 * connection is still held (ASan: heap-use-after-free before the fix). */
static struct grace_server *stop_srv;

static void no_data(struct grace_request *req, const char *d, size_t n, void *arg)
{
}

static void h_cut_stream(struct grace_request *req, void *arg)
{
    if (!strcmp(grace_request_path(req), "/drain")) {
        grace_reply(req, 200, "early", 5); /* a small remainder: CS_DRAIN */
        return;
    }
    grace_reply_start(req, 200);                        /* the response starts... */
    grace_request_read_body(req, no_data, NULL, NULL); /* ...then a bad chunk cuts it */
}

static void stop_on_error(const struct grace_response_info *ri, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    if (grace_response_info_error(ri))
        grace_server_stop(stop_srv, 3000, NULL, NULL);
}

static void c_cut_stream(struct fx *f)
{
    int d = cli_connect(f->port), c;
    cli_send(d, "POST /drain HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    usleep(100000);
    c = cli_connect(f->port);
    cli_send(c, "POST /s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\nZZZ\r\n");
    usleep(300000);
    close(c);
    close(d);
}

START_TEST(test_report_stops_server)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_MAX_LINGERING, 1);
    fx_start(f, h_cut_stream);
    stop_srv = f->srv;
    grace_server_on_response(f->srv, stop_on_error, f);
    fx_run(f, c_cut_stream, 8000);
    fx_spin(f, 200);
    ck_assert_int_ge(f->finish_calls, 2);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_CONN_ACTIVE), 0);
    fx_free(f);
}
END_TEST

/* keep-alive with a client that never reads its last response: another
 * period only if the kernel's send queue shrinks; a short probe tells. */
static char ka_big[200000];

static void h_ka_big(struct grace_request *req, void *arg)
{
    grace_reply(req, 200, ka_big, sizeof(ka_big));
}

static void c_ka_noread(struct fx *f)
{
    int fd = cli_connect(f->port), rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    cli_send(fd, GET("/"));
    int64_t t0 = now_ms();
    while (now_ms() - t0 < 3000 && !fx_cnt(f, GRACE_CNT_TIMEOUT_KEEPALIVE) &&
           !fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE))
        usleep(5000);
    f->later_ms = (int)(now_ms() - t0);
    close(fd);
}

START_TEST(test_keepalive_no_progress_not_extended)
{
    struct fx *f = fx_new();
    grace_config_set(f->cfg, GRACE_OPT_KEEPALIVE_TIMEOUT, 400);
    grace_config_set(f->cfg, GRACE_OPT_WRITE_TIMEOUT, 400);
    fx_start(f, h_ka_big);
    fx_run(f, c_ka_noread, 8000);
    ck_assert_uint_eq(fx_cnt(f, GRACE_CNT_TIMEOUT_KEEPALIVE) + fx_cnt(f, GRACE_CNT_TIMEOUT_WRITE), 1);
    ck_assert_msg(f->later_ms < 700, "closed after %d ms: a full extra period", f->later_ms);
    fx_free(f);
}
END_TEST

static Suite *progress_suite(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("keepalive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_keepalive_slow_download);
    tcase_add_test(tc, test_keepalive_slow_download_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("deferred");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_stop_destroys_queued_conn);
    tcase_add_test(tc, test_eviction_destroys_queued_conn);
    tcase_add_test(tc, test_reply_in_data_keeps_piece);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_file_past_eof);
    tcase_add_test(tc, test_file_past_eof_closes);
    tcase_add_test(tc, test_small_file_past_eof);
    tcase_add_test(tc, test_write_timeout_stalled_stream);
    tcase_add_test(tc, test_write_timeout_steady_reader);
    tcase_add_test(tc, test_framing_headers_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("input");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_body_timeout_paused);
    tcase_add_test(tc, test_body_timeout_idle_not_total);
    tcase_add_test(tc, test_body_min_rate_trickle);
    tcase_add_test(tc, test_body_min_rate_steady);
    tcase_add_test(tc, test_body_min_rate_paused);
    tcase_add_test(tc, test_body_timeout_stalled_client);
    tcase_add_test(tc, test_half_close_get_answered);
    tcase_add_test(tc, test_half_close_post_answered);
    tcase_add_test(tc, test_half_close_mid_body);
    tcase_add_test(tc, test_drain_time);
    tcase_add_test(tc, test_drain_time_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("review");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_half_close_pipelined_async);
    tcase_add_test(tc, test_report_stops_server);
    tcase_add_test(tc, test_keepalive_no_progress_not_extended);
    suite_add_tcase(s, tc);

    tc = tcase_create("server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_emfile_accept_retry);
    tcase_add_test(tc, test_emfile_accepts_again);
    tcase_add_test(tc, test_report_every_response);
    tcase_add_test(tc, test_report_reset);
    tcase_add_test(tc, test_new_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(progress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
