/* SPDX-License-Identifier: BSD-3-Clause */
/* testlib.c - see testlib.h */
#include "testlib.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    signal(SIGPIPE, SIG_IGN);
    f->base = event_base_new();
    f->cfg = grace_config_new();
    ck_assert_ptr_nonnull(f->base);
    ck_assert_ptr_nonnull(f->cfg);
    return f;
}

void fx_start(struct fx *f, grace_handler_cb h)
{
    f->srv = grace_server_new(f->base, f->cfg);
    ck_assert_ptr_nonnull(f->srv);
    if (h)
        grace_server_set_handler(f->srv, h, f);
    ck_assert_int_eq(grace_server_listen(f->srv, "127.0.0.1", 0, NULL), 0);
    f->port = grace_server_port(f->srv, 0);
    ck_assert_int_gt(f->port, 0);
}

/* buffered reader over a blocking socket */
struct rd {
    int fd;
    char buf[65536];
    size_t a, b;
    int eof, err;
};
static __thread struct rd *rds[64];

/* A new connection may reuse an fd number: start with a fresh reader. */
static void rd_forget(int fd)
{
    for (int i = 0; i < 64; i++)
        if (rds[i] && (fd < 0 || rds[i]->fd == fd)) {
            free(rds[i]);
            rds[i] = NULL;
        }
}

void cli_thread_end(void)
{
    rd_forget(-1);
}

struct run {
    struct fx *f;
    void (*client)(struct fx *);
    int pipefd[2];
};

static void *client_main(void *arg)
{
    struct run *r = arg;
    r->client(r->f);
    rd_forget(-1);
    if (write(r->pipefd[1], "x", 1) != 1)
        abort();
    return NULL;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fx *f = arg;
    event_base_loopbreak(f->base);
}

void fx_run(struct fx *f, void (*client)(struct fx *), int limit_ms)
{
    struct run r = {f, client, {-1, -1}};
    pthread_t th;
    struct timeval tv = {limit_ms / 1000, (limit_ms % 1000) * 1000};
    ck_assert_int_eq(pipe(r.pipefd), 0);
    struct event *done = event_new(f->base, r.pipefd[0], EV_READ, done_cb, f);
    event_add(done, &tv);
    ck_assert_int_eq(pthread_create(&th, NULL, client_main, &r), 0);
    event_base_dispatch(f->base);
    /* done by the pipe, not the time limit */
    char c;
    ck_assert_msg(read(r.pipefd[0], &c, 1) == 1, "client did not finish within %d ms", limit_ms);
    pthread_join(th, NULL);
    event_free(done);
    close(r.pipefd[0]);
    close(r.pipefd[1]);
}

static void spin_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

void fx_spin(struct fx *f, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(f->base, spin_cb, f->base);
    evtimer_add(t, &tv);
    event_base_dispatch(f->base);
    event_free(t);
}

void fx_free(struct fx *f)
{
    grace_server_free(f->srv);
    grace_config_free(f->cfg);
    /* nothing of the server may be left on the loop */
    ck_assert_int_eq(event_base_loop(f->base, EVLOOP_NONBLOCK), 1);
    event_base_free(f->base);
    free(f);
}

uint64_t fx_cnt(struct fx *f, enum grace_counter c)
{
    return grace_server_counter(f->srv, c);
}

/* ---------------------------------------------------------------- client */

static int set_timeouts(int fd)
{
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

int cli_connect(int port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    rd_forget(fd);
    return set_timeouts(fd);
}

int cli_try_connect(int port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    rd_forget(fd);
    return set_timeouts(fd);
}

int cli_connect6(int port)
{
    struct sockaddr_in6 sa = {0};
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons((uint16_t)port);
    sa.sin6_addr = in6addr_loopback;
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    rd_forget(fd);
    return set_timeouts(fd);
}

int cli_send_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

void cli_send(int fd, const char *s)
{
    ck_assert_int_eq(cli_send_all(fd, s, strlen(s)), 0);
}

static struct rd *rd_for(int fd)
{
    for (int i = 0; i < 64; i++)
        if (rds[i] && rds[i]->fd == fd)
            return rds[i];
    for (int i = 0; i < 64; i++)
        if (!rds[i]) {
            rds[i] = calloc(1, sizeof(struct rd));
            rds[i]->fd = fd;
            return rds[i];
        }
    abort();
}

static int rd_fill(struct rd *r)
{
    if (r->a == r->b)
        r->a = r->b = 0;
    if (r->b == sizeof(r->buf)) {
        memmove(r->buf, r->buf + r->a, r->b - r->a);
        r->b -= r->a;
        r->a = 0;
    }
    ssize_t k = recv(r->fd, r->buf + r->b, sizeof(r->buf) - r->b, 0);
    if (k == 0)
        r->eof = 1;
    else if (k < 0)
        r->err = errno;
    else
        r->b += (size_t)k;
    return (int)k;
}

static int rd_line(struct rd *r, char *out, size_t n)
{
    for (;;) {
        char *lf = memchr(r->buf + r->a, '\n', r->b - r->a);
        if (lf) {
            size_t len = (size_t)(lf - (r->buf + r->a)) + 1;
            if (len >= n)
                return -1;
            memcpy(out, r->buf + r->a, len);
            out[len] = 0;
            r->a += len;
            return (int)len;
        }
        if (rd_fill(r) <= 0)
            return -1;
    }
}

static int rd_bytes(struct rd *r, char *out, size_t n)
{
    while (n) {
        if (r->a == r->b && rd_fill(r) <= 0)
            return -1;
        size_t k = r->b - r->a < n ? r->b - r->a : n;
        memcpy(out, r->buf + r->a, k);
        r->a += k;
        out += k;
        n -= k;
    }
    return 0;
}

int resp_header(const struct resp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = strchr(r->head, '\n');
    while (p && *++p) {
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1, *e = strchr(v, '\r');
            while (*v == ' ')
                v++;
            size_t k = e ? (size_t)(e - v) : strlen(v);
            if (k >= n)
                k = n - 1;
            memcpy(out, v, k);
            out[k] = 0;
            return 1;
        }
        p = strchr(p, '\n');
    }
    return 0;
}

int cli_read_response(int fd, struct resp *r, int head_only)
{
    struct rd *rd = rd_for(fd);
    char line[8192], v[64];
    size_t hl = 0;
    memset(r, 0, sizeof(*r));
    for (;;) {
        int n = rd_line(rd, line, sizeof(line));
        if (n < 0) {
            r->err = rd->err ? rd->err : -1;
            return -1;
        }
        if (hl + (size_t)n >= sizeof(r->head))
            return r->err = -2, -1;
        memcpy(r->head + hl, line, (size_t)n + 1);
        hl += (size_t)n;
        if (!strcmp(line, "\r\n")) {
            if (!strncmp(r->head, "HTTP/1.1 1", 10)) { /* 1xx: keep it, read on */
                r->status = atoi(r->head + 9);
                return 0;
            }
            break;
        }
    }
    r->status = atoi(r->head + 9);
    r->body = malloc(1);
    r->body[0] = 0;
    if (head_only || r->status == 204 || r->status == 304)
        goto done;
    if (resp_header(r, "Content-Length", v, sizeof(v))) {
        r->body_len = strtoull(v, NULL, 10);
        r->body = realloc(r->body, r->body_len + 1);
        if (rd_bytes(rd, r->body, r->body_len) < 0)
            return r->err = -3, -1;
        r->body[r->body_len] = 0;
    } else if (resp_header(r, "Transfer-Encoding", v, sizeof(v))) {
        for (;;) {
            if (rd_line(rd, line, sizeof(line)) < 0)
                return r->err = -4, -1;
            size_t k = strtoul(line, NULL, 16);
            if (k == 0) {
                if (rd_line(rd, line, sizeof(line)) < 0)
                    return r->err = -5, -1;
                break;
            }
            r->body = realloc(r->body, r->body_len + k + 1);
            if (rd_bytes(rd, r->body + r->body_len, k) < 0 || rd_line(rd, line, sizeof(line)) < 0)
                return r->err = -6, -1;
            r->body_len += k;
            r->body[r->body_len] = 0;
        }
    } else { /* close-delimited */
        for (;;) {
            size_t k = rd->b - rd->a;
            r->body = realloc(r->body, r->body_len + k + 1);
            memcpy(r->body + r->body_len, rd->buf + rd->a, k);
            r->body_len += k;
            r->body[r->body_len] = 0;
            rd->a = rd->b;
            if (rd_fill(rd) <= 0)
                break;
        }
        if (!rd->eof)
            return r->err = -7, -1;
        r->closed = 1;
    }
done:
    if (resp_header(r, "Connection", v, sizeof(v)) && !strcasecmp(v, "close"))
        r->closed = 1;
    return 0;
}

void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

int cli_wait_eof(int fd, int ms)
{
    struct rd *rd = rd_for(fd);
    int64_t end = now_ms() + ms;
    rd->a = rd->b; /* anything buffered is not EOF */
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = end - now_ms();
        if (left <= 0)
            return 0;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (k == 0)
            return 1;
        if (k < 0 && errno != EAGAIN)
            return -errno;
    }
}

/* ---------------------------------------------------------------- handlers */

void h_hello(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_reply(req, 200, "hello", 5);
}

void h_401(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_reply(req, 401, "no token\n", 9);
}

static void collected(struct grace_request *req, struct evbuffer *body, void *arg)
{
    char out[32];
    int n = snprintf(out, sizeof(out), "%zu", evbuffer_get_length(body));
    grace_reply(req, 200, out, (size_t)n);
}

static void finish_note(struct grace_request *req, int err, void *arg)
{
    struct fx *f = arg;
    f->finish_calls++;
    f->finish_err = err;
    if (err)
        f->reply_rc = grace_reply(req, 500, NULL, 0); /* complete our side */
}

void h_collect(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    f->handler_calls++;
    grace_request_on_finish(req, finish_note, f);
    if (grace_request_collect_body(req, 0, collected, f) < 0)
        grace_reply(req, 413, "too big\n", 8);
}

struct later {
    struct grace_request *req;
    struct event *ev;
    struct fx *f;
};

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct later *l = arg;
    char body[64];
    int n = snprintf(body, sizeof(body), "later %s", grace_request_path(l->req));
    l->f->reply_rc = grace_reply(l->req, 200, body, (size_t)n);
    event_free(l->ev);
    free(l);
}

void h_later(struct grace_request *req, void *arg)
{
    struct fx *f = arg;
    struct later *l = calloc(1, sizeof(*l));
    struct timeval tv = {f->later_ms / 1000, (f->later_ms % 1000) * 1000};
    f->handler_calls++;
    l->req = req;
    l->f = f;
    l->ev = evtimer_new(f->base, later_cb, l);
    evtimer_add(l->ev, &tv);
}
