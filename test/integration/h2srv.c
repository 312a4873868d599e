/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * h2srv.c - a server on the public API for test_h2_lib.py: the request and
 * response API over HTTP/2 (and HTTP/1.1 on the same port), one route per
 * behaviour under test.
 *
 *   h2srv --port P [--tls-port P2 --cert CHAIN --key KEY] [--opt NAME=VALUE]...
 *   (any library option by name; the TLS listener offers h2 by ALPN)
 * Prints "ready PORT" once listening. SIGTERM: grace_server_stop(5 s).
 *   /version     the request's version ("HTTP/2.0")
 *   /early       401 at once, the body unread (an early answer)
 *   /collect     collects the body: "<bytes>"
 *   /pause       reads the body, pauses after the first piece, resumes 1.5 s
 *                later (the window follows what was taken): "<bytes>"
 *   /never       reads a body that never comes (body-timeout)
 *   /hints       103 Early Hints (link), then 200
 *   /stream?N    a streamed reply of N bytes ('x'), 16 KiB at a time on drain
 *   /patient     16 MiB with a write-timeout of its own, 5 s
 *   /late?MS     200 after MS (600) ms (a stop lets it finish)
 *   /deadline    a 300 ms request deadline, no reply (503)
 *   /counters    every library counter, "name value" lines
 *   /blob?N      N bytes ('b') in one reply
 *   /block?MS    an application that blocks the loop for MS ms, then 200
 *   /reports     every response reported so far (grace_server_on_response),
 *                "path status bytes err" lines, oldest first
 *   /trailers?N  /stream?N ended with trailers (grpc-status 0, grpc-message,
 *                x-bytes N), announced by a Trailer header
 *   /trailers-bad  a refused trailer (Content-Length: -EINVAL), then the
 *                reply goes on: "hello", trailers x-first-rc (that return
 *                code) and grpc-status
 *   /echo-trailers  reads the body; streams "<bytes>|name=value;..." of the
 *                client's trailers, and ends with the same fields as its own
 *                trailers (unannounced)
 */
#include <gracehttp.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct srv {
    struct event_base *base;
    struct grace_server *srv;
    struct evbuffer *reports; /* for /reports */
};

static void on_response(const struct grace_response_info *ri, void *arg)
{
    struct srv *s = arg;
    const struct grace_request *req = grace_response_info_request(ri);
    evbuffer_add_printf(s->reports, "%s %d %llu %d\n", req ? grace_request_path(req) : "-",
                        grace_response_info_status(ri),
                        (unsigned long long)grace_response_info_body_bytes(ri),
                        grace_response_info_error(ri));
}

struct body {
    uint64_t n;
    struct event *ev;
    struct grace_request *req;
    int resumed;
};

static void body_finish(struct grace_request *req, int err, void *arg)
{
    struct body *b = arg;
    if (b->ev)
        event_free(b->ev);
    free(b);
}

static void body_data(struct grace_request *req, const char *d, size_t len, void *arg)
{
    struct body *b = arg;
    b->n += len;
    if (b->ev && !b->resumed) {
        struct timeval tv = {1, 500000};
        grace_request_pause(req);
        evtimer_add(b->ev, &tv);
        b->resumed = 1;
    }
}

static void body_end(struct grace_request *req, void *arg)
{
    struct body *b = arg;
    char out[32];
    int n = snprintf(out, sizeof(out), "%llu", (unsigned long long)b->n);
    grace_reply(req, 200, out, (size_t)n);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct body *b = arg;
    grace_request_resume(b->req);
}

static void collected(struct grace_request *req, struct evbuffer *body, void *arg)
{
    char out[32];
    int n = snprintf(out, sizeof(out), "%zu", evbuffer_get_length(body));
    grace_reply(req, 200, out, (size_t)n);
}

struct stream {
    uint64_t left, total;
    int trailers;
};

/* /trailers: the end of a streamed reply, with its trailers */
static void stream_end(struct grace_request *req, struct stream *s)
{
    char n[24];
    const char *const f[] = {"grpc-status", "0", "Grpc-Message", "all sent", "x-bytes", n};
    snprintf(n, sizeof(n), "%llu", (unsigned long long)s->total);
    if (!s->trailers)
        grace_reply_end(req);
    else if (grace_reply_end_trailers(req, f, 3) < 0)
        fprintf(stderr, "h2srv: grace_reply_end_trailers failed\n");
}

static void stream_more(struct grace_request *req, void *arg)
{
    struct stream *s = arg;
    static char chunk[16384];
    memset(chunk, 'x', sizeof(chunk));
    while (s->left && grace_reply_pending(req) < 131072) { /* above output-low-water */
        size_t n = s->left < sizeof(chunk) ? (size_t)s->left : sizeof(chunk);
        if (grace_reply_chunk(req, chunk, n) < 0)
            break;
        s->left -= n;
    }
    if (!s->left) {
        stream_end(req, s); /* s goes with the finish callback */
        return;
    }
    grace_reply_on_drain(req, stream_more, s);
}

static void stream_finish(struct grace_request *req, int err, void *arg)
{
    free(arg);
}

/* /echo-trailers: the client's trailers in the body and as ours */
static void echo_end(struct grace_request *req, void *arg)
{
    struct body *b = arg;
    size_t n = grace_request_trailer_count(req);
    const char **f = calloc(2 * n + 1, sizeof(*f));
    struct evbuffer *out = evbuffer_new();

    evbuffer_add_printf(out, "%llu|", (unsigned long long)b->n);
    for (size_t i = 0; i < n; i++) {
        grace_request_trailer_at(req, i, &f[2 * i], &f[2 * i + 1]);
        evbuffer_add_printf(out, "%s=%s;", f[2 * i], f[2 * i + 1]);
    }
    grace_reply_start(req, 200);
    grace_reply_chunk(req, (const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out));
    if (grace_reply_end_trailers(req, f, n) < 0)
        fprintf(stderr, "h2srv: echo: grace_reply_end_trailers failed\n");
    evbuffer_free(out);
    free(f);
}

struct late {
    struct event *ev;
    struct grace_request *req;
};

static void late_cb(evutil_socket_t fd, short what, void *arg)
{
    struct late *l = arg;
    grace_reply(l->req, 200, "late\n", 5);
    event_free(l->ev);
    free(l);
}

static void handler(struct grace_request *req, void *arg)
{
    struct srv *s = arg;
    const char *p = grace_request_path(req);

    if (!strcmp(p, "/version")) {
        const char *v = grace_request_version(req);
        grace_reply(req, 200, v, strlen(v));
    } else if (!strcmp(p, "/early")) {
        grace_response_add_header(req, "WWW-Authenticate", "Bearer");
        grace_reply(req, 401, "no\n", 3);
    } else if (!strcmp(p, "/collect")) {
        if (grace_request_collect_body(req, 64 << 20, collected, NULL) < 0)
            grace_reply(req, 500, "collect\n", 8);
    } else if (!strcmp(p, "/pause") || !strcmp(p, "/never")) {
        struct body *b = calloc(1, sizeof(*b));
        b->req = req;
        if (!strcmp(p, "/pause"))
            b->ev = evtimer_new(s->base, resume_cb, b);
        grace_request_on_finish(req, body_finish, b);
        grace_request_set_max_body(req, 64 << 20);
        if (grace_request_read_body(req, body_data, body_end, b) < 0)
            grace_reply(req, 500, "read\n", 5);
    } else if (!strcmp(p, "/hints")) {
        const char *f[] = {"Link", "</style.css>; rel=preload; as=style"};
        grace_reply_informational(req, 103, f, 1);
        grace_reply(req, 200, "hinted\n", 7);
    } else if (!strcmp(p, "/patient")) { /* 16 MiB, its own write-timeout of 5 s */
        struct evbuffer *out = evbuffer_new();
        static char mib[1 << 20];
        memset(mib, 'p', sizeof(mib));
        for (int i = 0; i < 16; i++)
            evbuffer_add(out, mib, sizeof(mib));
        grace_request_set_write_timeout(req, 5000);
        grace_reply_buffer(req, 200, out);
        evbuffer_free(out);
    } else if (!strcmp(p, "/stream")) {
        struct stream *st = calloc(1, sizeof(*st));
        const char *q = grace_request_query(req);
        st->left = q ? strtoull(q, NULL, 10) : 100000;
        grace_request_on_finish(req, stream_finish, st);
        grace_reply_start(req, 200);
        stream_more(req, st);
    } else if (!strcmp(p, "/trailers")) {
        struct stream *st = calloc(1, sizeof(*st));
        const char *q = grace_request_query(req);
        st->left = st->total = q ? strtoull(q, NULL, 10) : 100000;
        st->trailers = 1;
        grace_request_on_finish(req, stream_finish, st);
        grace_response_add_header(req, "Trailer", "grpc-status, grpc-message, x-bytes");
        grace_reply_start(req, 200);
        stream_more(req, st);
    } else if (!strcmp(p, "/trailers-bad")) {
        const char *const bad[] = {"grpc-status", "0", "Content-Length", "5"};
        char rc[16];
        const char *const good[] = {"x-first-rc", rc, "grpc-status", "0"};
        grace_reply_start(req, 200);
        snprintf(rc, sizeof(rc), "%d", grace_reply_end_trailers(req, bad, 2));
        grace_reply_chunk(req, "hello", 5);
        grace_reply_end_trailers(req, good, 2);
    } else if (!strcmp(p, "/echo-trailers")) {
        struct body *b = calloc(1, sizeof(*b));
        b->req = req;
        grace_request_on_finish(req, body_finish, b);
        if (grace_request_read_body(req, body_data, echo_end, b) < 0)
            grace_reply(req, 500, "read\n", 5);
    } else if (!strcmp(p, "/late")) {
        struct late *l = calloc(1, sizeof(*l));
        const char *q = grace_request_query(req);
        long ms = q ? atol(q) : 600;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        l->req = req;
        l->ev = evtimer_new(s->base, late_cb, l);
        evtimer_add(l->ev, &tv);
    } else if (!strcmp(p, "/deadline")) {
        grace_request_set_deadline(req, 300);
    } else if (!strcmp(p, "/block")) {
        const char *q = grace_request_query(req);
        long ms = q ? atol(q) : 100;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        grace_reply(req, 200, "blocked\n", 8);
    } else if (!strcmp(p, "/blob")) {
        const char *q = grace_request_query(req);
        size_t n = q ? strtoull(q, NULL, 10) : 1000;
        char *b = malloc(n ? n : 1);
        memset(b, 'b', n);
        grace_reply(req, 200, b, n);
        free(b);
    } else if (!strcmp(p, "/reports")) {
        grace_reply(req, 200, (const char *)evbuffer_pullup(s->reports, -1),
                    evbuffer_get_length(s->reports));
    } else if (!strcmp(p, "/counters")) {
        struct evbuffer *out = evbuffer_new();
        for (int c = 0; c < GRACE_CNT__COUNT; c++)
            evbuffer_add_printf(out, "%s %llu\n", grace_counter_name(c),
                                (unsigned long long)grace_server_counter(s->srv, c));
        grace_reply_buffer(req, 200, out);
        evbuffer_free(out);
    } else {
        grace_reply(req, 200, "hello\n", 6);
    }
}

static void stopped(struct grace_server *srv, void *arg)
{
    event_base_loopbreak(arg);
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    grace_server_stop(s->srv, 5000, stopped, s->base);
}

int main(int argc, char **argv)
{
    struct srv s;
    struct grace_config *cfg = grace_config_new();
    struct event *term;
    struct grace_tls *tls = NULL;
    const char *cert = NULL, *key = NULL;
    int port = 0, tls_port = -1, sndbuf = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sndbuf") && i + 1 < argc) {
            sndbuf = atoi(argv[++i]); /* the plain port's sockets: a small kernel send queue */
        } else if (!strcmp(argv[i], "--tls-port") && i + 1 < argc) {
            tls_port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--cert") && i + 1 < argc) {
            cert = argv[++i];
        } else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
            key = argv[++i];
        } else if (!strcmp(argv[i], "--opt") && i + 1 < argc) {
            char name[64];
            const char *eq = strchr(argv[++i], '=');
            int o;
            if (!eq || (size_t)(eq - argv[i]) >= sizeof(name))
                return 2;
            memcpy(name, argv[i], (size_t)(eq - argv[i]));
            name[eq - argv[i]] = '\0';
            if ((o = grace_opt_by_name(name)) < 0 || grace_config_set(cfg, o, atoll(eq + 1)) < 0) {
                fprintf(stderr, "h2srv: bad option %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: h2srv --port P [--sndbuf BYTES] [--opt NAME=VALUE]...\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    s.base = event_base_new();
    s.srv = grace_server_new(s.base, cfg);
    grace_config_free(cfg);
    grace_server_set_handler(s.srv, handler, &s);
    s.reports = evbuffer_new();
    grace_server_on_response(s.srv, on_response, &s);
    if (sndbuf) { /* accepted sockets inherit the listener's SO_SNDBUF */
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 128) < 0 ||
            grace_server_listen_fd(s.srv, fd, NULL) < 0) {
            fprintf(stderr, "h2srv: cannot listen on %d\n", port);
            return 1;
        }
    } else if (grace_server_listen(s.srv, "127.0.0.1", port, NULL) < 0) {
        fprintf(stderr, "h2srv: cannot listen on %d\n", port);
        return 1;
    }
    if (tls_port >= 0 && (!cert || !key || !(tls = grace_tls_new()) ||
                          grace_tls_add_cert(tls, cert, key) < 0 ||
                          grace_server_listen(s.srv, "127.0.0.1", tls_port, tls) < 0)) {
        fprintf(stderr, "h2srv: cannot listen with TLS on %d\n", tls_port);
        return 1;
    }
    term = evsignal_new(s.base, SIGTERM, on_term, &s);
    event_add(term, NULL);
    printf("ready %d\n", port);
    fflush(stdout);
    event_base_dispatch(s.base);
    event_free(term);
    grace_server_free(s.srv);
    evbuffer_free(s.reports);
    if (tls)
        grace_tls_free(tls);
    event_base_free(s.base);
    return 0;
}
