/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tunnel.c - a tiny CONNECT proxy for test_tunnel.py, on the library's
 * upgrade API: a CONNECT to 127.0.0.1:port (the only place it goes) is
 * answered 200 once the upstream connection is made, and the client's
 * connection becomes a stream relayed to it both ways, with backpressure
 * each way and half-closes passed on. It serves two routes of its own, so
 * that it can be its own upstream: GET /hello and GET /big (8 MiB).
 *
 *   tunnel [--port P] [--tls CERT KEY]   (--tls adds a second, TLS listener)
 */
#include <gracehttp.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define UP_HIGH (256 * 1024) /* upstream output above this: stop reading the client */

struct tunnel {
    struct event_base *base;
    struct grace_request *req;  /* until the 200 */
    struct grace_stream *st;
    struct bufferevent *up;
    int client_eof, up_eof;
};

static void tunnel_free(struct tunnel *t)
{
    if (t->up)
        bufferevent_free(t->up);
    free(t);
}

/* Upstream bytes to the client; refused ones wait for on_drain. */
static void up_to_client(struct tunnel *t)
{
    struct evbuffer *in = bufferevent_get_input(t->up);
    size_t n = evbuffer_get_length(in);
    if (n) {
        int rc = grace_stream_write(t->st, evbuffer_pullup(in, -1), n);
        if (rc == -ENOBUFS) {
            bufferevent_disable(t->up, EV_READ);
            return;
        }
        evbuffer_drain(in, n);
        bufferevent_enable(t->up, EV_READ);
    }
    if (t->up_eof) { /* all of it is queued: the stream sends it, then FIN */
        grace_stream_close(t->st);
        tunnel_free(t);
    }
}

static void up_read(struct bufferevent *bev, void *arg)
{
    up_to_client(arg);
}

static void up_write(struct bufferevent *bev, void *arg)
{
    struct tunnel *t = arg;
    grace_stream_resume(t->st); /* upstream took our output */
    if (t->client_eof)
        shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
    struct tunnel *t = arg;
    if (what & BEV_EVENT_EOF) {
        t->up_eof = 1;
        up_to_client(t);
    } else if (what & BEV_EVENT_ERROR) {
        grace_stream_close(t->st);
        tunnel_free(t);
    }
}

static void st_read(struct grace_stream *st, const char *data, size_t len, void *arg)
{
    struct tunnel *t = arg;
    if (!len) { /* the client is done sending: pass the half-close on */
        t->client_eof = 1;
        if (!evbuffer_get_length(bufferevent_get_output(t->up)))
            shutdown(bufferevent_getfd(t->up), SHUT_WR);
        return;
    }
    bufferevent_write(t->up, data, len);
    if (evbuffer_get_length(bufferevent_get_output(t->up)) > UP_HIGH)
        grace_stream_pause(st);
}

static void st_drain(struct grace_stream *st, void *arg)
{
    up_to_client(arg);
}

static void st_close(struct grace_stream *st, int err, void *arg)
{
    tunnel_free(arg); /* reset, timeout, or the server stops */
}

/* The upstream connection is made (or failed): answer the CONNECT. */
static void connecting(struct bufferevent *bev, short what, void *arg)
{
    struct tunnel *t = arg;
    struct grace_request *req = t->req;
    t->req = NULL;
    if (!(what & BEV_EVENT_CONNECTED)) {
        grace_reply(req, 502, "upstream refused\n", 17);
        tunnel_free(t);
        return;
    }
    int rc = grace_reply_upgrade(req, 200, &t->st);
    if (rc < 0) {
        if (rc != -ENOTCONN)
            grace_reply(req, 503, "not now\n", 8);
        tunnel_free(t);
        return;
    }
    bufferevent_setcb(bev, up_read, up_write, up_event, t);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    grace_stream_set_callbacks(t->st, st_read, st_drain, st_close, t);
}

/* The client went away while we were connecting. */
static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct tunnel *t = arg;
    if (err && t->req) {
        grace_reply(req, 500, NULL, 0); /* -ENOTCONN: releases req */
        tunnel_free(t);
    }
}

static void handle(struct grace_request *req, void *arg)
{
    struct event_base *base = arg;
    const char *path = grace_request_path(req);

    if (strcmp(grace_request_method(req), "CONNECT")) {
        if (!strcmp(path, "/hello")) {
            grace_reply(req, 200, "hello through the tunnel\n", 25);
        } else if (!strcmp(path, "/big")) {
            struct evbuffer *b = evbuffer_new();
            char chunk[65536];
            memset(chunk, 'b', sizeof(chunk));
            for (int i = 0; i < 128; i++)
                evbuffer_add(b, chunk, sizeof(chunk));
            grace_reply_buffer(req, 200, b);
            evbuffer_free(b);
        } else {
            grace_reply(req, 404, "not found\n", 10);
        }
        return;
    }
    /* authority-form: host:port; only loopback */
    const char *target = grace_request_target(req), *colon = strrchr(target, ':');
    size_t hl = colon ? (size_t)(colon - target) : 0;
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || port <= 0 || port > 65535 ||
        !((hl == 9 && !strncmp(target, "127.0.0.1", 9)) ||
          (hl == 9 && !strncmp(target, "localhost", 9)))) {
        grace_reply(req, 403, "only 127.0.0.1 here\n", 20);
        return;
    }
    struct tunnel *t = calloc(1, sizeof(*t));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!t || !(t->up = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE))) {
        free(t);
        grace_reply(req, 503, "out of memory\n", 14);
        return;
    }
    t->base = base;
    t->req = req;
    grace_request_on_finish(req, on_finish, t);
    bufferevent_setcb(t->up, NULL, NULL, connecting, t);
    if (bufferevent_socket_connect(t->up, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        t->req = NULL;
        grace_reply(req, 502, "upstream refused\n", 17);
        tunnel_free(t);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    int port = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--tls") && i + 2 < argc) {
            cert = argv[++i];
            key = argv[++i];
        } else {
            fprintf(stderr, "usage: tunnel [--port P] [--tls CERT KEY]\n");
            return 2;
        }
    }
    struct event_base *base = event_base_new();
    struct grace_server *srv = base ? grace_server_new(base, NULL) : NULL;
    if (!srv)
        return 1;
    grace_server_set_handler(srv, handle, base);
    if ((rc = grace_server_listen(srv, "127.0.0.1", port, NULL)) < 0) {
        fprintf(stderr, "tunnel: listen: %s\n", grace_strerror(rc));
        return 2;
    }
    if (cert) {
        struct grace_tls *tls = grace_tls_new();
        if (!tls || grace_tls_add_cert(tls, cert, key) < 0 ||
            grace_server_listen(srv, "127.0.0.1", 0, tls) < 0) {
            fprintf(stderr, "tunnel: TLS: %s\n", tls ? grace_tls_last_error(tls) : "unsupported");
            return 3;
        }
        grace_tls_free(tls);
    }
    struct event *sig = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sig, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("tunnel: listening on %d %d\n", grace_server_port(srv, 0),
           cert ? grace_server_port(srv, 1) : 0);
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sig);
    grace_server_free(srv); /* open tunnels get their close callback */
    event_base_free(base);
    return 0;
}
