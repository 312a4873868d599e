/*
 * fuzz_conn.c - libFuzzer target for the whole connection pipeline.
 *
 * A real server on its own event_base gets one end of a socketpair; the
 * fuzzer's bytes drive the other end. Input layout: a 4-byte header
 * (handler behaviour, body mode, drain limit, linger on/off), then a
 * sequence of slices: [len byte][action byte][len bytes of HTTP]. The
 * action says whether to run the loop, to shut down our write side, or to
 * vanish (close) mid-stream. Invariants checked:
 *  - no crash, leak or undefined behaviour (ASan/UBSan/LSan);
 *  - the connection always ends: after we close, the loop empties;
 *  - what the server sent is a sequence of well-formed responses whose
 *    X-Seq numbers (set by the handler) increase: answered in order.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct app {
    struct event_base *base;
    struct grace_server *srv;
    uint8_t mode, body;
    int seq;
    struct grace_request *held; /* replied to later, from a timer */
    struct event *later;
};

static void reply_seq(struct grace_request *req, struct app *a, int status)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", ++a->seq);
    grace_response_add_header(req, "X-Seq", v);
    if (!strcmp(grace_request_method(req), "HEAD")) /* Content-Length, no body */
        grace_response_add_header(req, "X-Head", "1");
    grace_reply(req, status, "body", 4);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;
    struct grace_request *req = a->held;
    a->held = NULL;
    if (req)
        reply_seq(req, a, 200); /* -ENOTCONN and released if detached */
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct app *a = arg;
    if (err && a->held != req) {
        if (grace_reply(req, 500, NULL, 0) != -ENOTCONN)
            abort(); /* a finish error must leave the request detached */
    }
}

static void on_data(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct app *a = arg;
    if (a->mode & 4)
        grace_request_pause(req), grace_request_resume(req);
    if ((a->mode & 8) && n > 3)
        reply_seq(req, a, 202); /* reply from inside a data callback */
}

static void on_end(struct grace_request *req, void *arg)
{
    reply_seq(req, arg, 200);
}

static void on_body(struct grace_request *req, struct evbuffer *b, void *arg)
{
    reply_seq(req, arg, 201);
}

static void handler(struct grace_request *req, void *arg)
{
    struct app *a = arg;
    grace_request_on_finish(req, on_finish, a);
    switch ((a->mode + a->seq) % 4) {
    case 0: /* early reply, body unread */
        reply_seq(req, a, 401);
        break;
    case 1:
        if (grace_request_read_body(req, on_data, on_end, a) < 0)
            abort();
        break;
    case 2:
        if (grace_request_collect_body(req, a->body * 64u, on_body, a) < 0)
            reply_seq(req, a, 413);
        break;
    default: /* answered later from a timer; one at a time */
        if (a->held) {
            reply_seq(req, a, 503);
        } else {
            struct timeval tv = {0, 1000};
            a->held = req;
            evtimer_add(a->later, &tv);
        }
    }
}

/* Check the bytes the server sent: well-formed responses, in order. */
static void check_responses(const char *s, size_t n)
{
    int last = 0;
    while (n) {
        const char *end = memmem(s, n, "\r\n\r\n", 4);
        if (!end) /* cut short by a close: only a head prefix may remain */
            return;
        if (n < 12 || memcmp(s, "HTTP/1.1 ", 9))
            abort();
        size_t hl = (size_t)(end - s) + 4, body = 0;
        int chunked = 0, head = 0, status = atoi(s + 9);
        if (status < 100 || status > 599)
            abort();
        for (const char *p = s; p < end;) {
            if (!strncasecmp(p, "Content-Length: ", 16))
                body = strtoul(p + 16, NULL, 10);
            if (!strncasecmp(p, "Transfer-Encoding: chunked", 26))
                chunked = 1;
            if (!strncasecmp(p, "X-Head: 1", 9))
                head = 1;
            if (!strncasecmp(p, "X-Seq: ", 7)) {
                int seq = atoi(p + 7);
                if (seq <= last)
                    abort(); /* out of order */
                last = seq;
            }
            const char *lf = memchr(p, '\n', (size_t)(end - p));
            if (!lf)
                break;
            p = lf + 1;
        }
        if (chunked || status == 100) {
            if (status == 100) {
                s += hl;
                n -= hl;
                continue;
            }
            return; /* not produced by this handler */
        }
        if (head)
            body = 0;
        if (hl + body > n)
            return; /* truncated by a close */
        s += hl + body;
        n -= hl + body;
    }
}

static void drain_socket(int fd, struct evbuffer *got)
{
    char buf[65536];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        evbuffer_add(got, buf, (size_t)k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct app a = {0};
    struct grace_config *cfg;
    int sv[2];

    if (size < 4)
        return 0;
    a.mode = data[0];
    a.body = data[1];
    signal(SIGPIPE, SIG_IGN);
    a.base = event_base_new();
    cfg = grace_config_new();
    grace_config_set(cfg, GRACE_OPT_DRAIN_LIMIT, data[2] * 16);
    grace_config_set(cfg, GRACE_OPT_LINGER, !(data[3] & 1));
    grace_config_set(cfg, GRACE_OPT_MAX_BODY_SIZE, 4096);
    grace_config_set(cfg, GRACE_OPT_MAX_HEADER_BYTES, 512 + data[3]);
    grace_config_set(cfg, GRACE_OPT_HEADER_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_BODY_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_KEEPALIVE_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_WRITE_TIMEOUT, 50);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIME, 20);
    a.srv = grace_server_new(a.base, cfg);
    grace_config_free(cfg);
    a.later = evtimer_new(a.base, later_cb, &a);
    grace_server_set_handler(a.srv, handler, &a);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct sockaddr_un { sa_family_t f; } peer = {AF_UNIX};
    grace__conn_accept(a.srv, sv[0], (struct sockaddr *)&peer, sizeof(peer));

    struct evbuffer *got = evbuffer_new();
    size_t at = 4;
    int open = 1;
    while (at + 2 <= size && open) {
        size_t len = data[at], act = data[at + 1];
        at += 2;
        if (len > size - at)
            len = size - at;
        if (len && send(sv[1], data + at, len, MSG_DONTWAIT) < 0)
            open = 0;
        at += len;
        event_base_loop(a.base, EVLOOP_NONBLOCK);
        if (act % 16 == 1) { /* half-close, then let the server finish */
            shutdown(sv[1], SHUT_WR);
        } else if (act % 16 == 2) { /* vanish */
            open = 0;
        } else if (act % 16 == 3) { /* let timers run */
            struct timeval tv = {0, 2000};
            event_base_loopexit(a.base, &tv);
            event_base_dispatch(a.base);
        }
        drain_socket(sv[1], got);
    }
    shutdown(sv[1], SHUT_WR);
    /* every connection must end: run until the loop is empty */
    for (int i = 0; i < 200 && grace_server_counter(a.srv, GRACE_CNT_CONN_ACTIVE); i++) {
        struct timeval tv = {0, 1000};
        drain_socket(sv[1], got);
        event_base_loopexit(a.base, &tv);
        event_base_dispatch(a.base);
    }
    drain_socket(sv[1], got);
    if (grace_server_counter(a.srv, GRACE_CNT_CONN_ACTIVE) && !a.held)
        abort(); /* a connection that never ends */
    size_t n = evbuffer_get_length(got);
    check_responses((const char *)evbuffer_pullup(got, -1), n);

    if (a.held) /* the application completes its reply, as it must */
        later_cb(-1, 0, &a);
    evbuffer_free(got);
    close(sv[1]);
    event_free(a.later);
    grace_server_free(a.srv);
    if (event_base_loop(a.base, EVLOOP_NONBLOCK) != 1)
        abort(); /* something of the server was left on the loop */
    event_base_free(a.base);
    return 0;
}
