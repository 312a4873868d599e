/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sse.c - server-sent events with backpressure. GET /events streams
 * text/event-stream, one event per interval; while the client does not
 * read, the stream pauses: after each event, if more than the low-water
 * mark is queued, the producer's timer stops and grace_reply_on_drain()
 * restarts it once the output has drained. GET /stats tells how it went
 * (a JSON object; peak_pending is the most output ever queued for one
 * client, in bytes). GET / is a page that follows the stream; it is
 * preceded by a 103 Early Hints response naming /events, so a browser can
 * start that request while the page is on its way.
 *
 *   sse [--host H] [--port P] [--interval-ms MS] [--event-bytes N]
 *       [--low-water N] [--no-backpressure]
 * --event-bytes N     the data line of each event carries N bytes (32)
 * --no-backpressure   keep producing whatever the client does (to show
 *                     what backpressure prevents: the queue then grows)
 * SIGINT/SIGTERM end every stream and stop gracefully.
 */
#include <gracehttp.h>

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

struct client;
LIST_HEAD(client_list, client);

struct app {
    struct event_base *base;
    struct grace_server *srv;
    struct client_list clients;
    struct timeval interval;
    size_t event_bytes, low_water;
    int backpressure;
    char *pad;
    uint64_t events, pauses, resumes, peak_pending, streams;
};

struct client {
    struct app *app;
    struct grace_request *req;
    struct event *tick;
    uint64_t next_id;
    LIST_ENTRY(client) link;
};

static void client_free(struct client *cl)
{
    LIST_REMOVE(cl, link);
    event_free(cl->tick);
    free(cl);
}

/* Output has fallen to the low-water mark: produce again. */
static void drained(struct grace_request *req, void *arg)
{
    struct client *cl = arg;
    (void)req;
    cl->app->resumes++;
    event_add(cl->tick, &cl->app->interval);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    struct app *app = cl->app;
    char head[48];
    int n = snprintf(head, sizeof(head), "id: %llu\ndata: ", (unsigned long long)cl->next_id++);
    size_t pending;
    (void)fd;
    (void)what;

    /* one chunk per event: a client sees whole events */
    char *ev = malloc((size_t)n + app->event_bytes + 2);
    if (!ev)
        return;
    memcpy(ev, head, (size_t)n);
    memcpy(ev + n, app->pad, app->event_bytes);
    memcpy(ev + n + app->event_bytes, "\n\n", 2);
    grace_reply_chunk(cl->req, ev, (size_t)n + app->event_bytes + 2);
    free(ev);
    app->events++;
    pending = grace_reply_pending(cl->req);
    if (pending > app->peak_pending)
        app->peak_pending = pending;
    if (app->backpressure && pending > app->low_water) {
        /* the client is behind: stop until the output has drained */
        event_del(cl->tick);
        app->pauses++;
        grace_reply_on_drain(cl->req, drained, cl);
    }
}

/* The stream ended: by us (err 0) or because the client went away. */
static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct client *cl = arg;
    client_free(cl);
    if (err)
        grace_reply_end(req); /* -ENOTCONN: releases the request */
}

static void events(struct grace_request *req, void *arg)
{
    struct app *app = arg;
    struct client *cl = calloc(1, sizeof(*cl));

    if (!cl || !(cl->tick = event_new(app->base, -1, EV_PERSIST, tick, cl))) {
        free(cl);
        grace_reply(req, 503, "out of memory\n", 14);
        return;
    }
    cl->app = app;
    cl->req = req;
    LIST_INSERT_HEAD(&app->clients, cl, link);
    app->streams++;
    grace_request_on_finish(req, on_finish, cl);
    grace_response_add_header(req, "Content-Type", "text/event-stream");
    grace_response_add_header(req, "Cache-Control", "no-cache");
    grace_reply_start(req, 200);
    event_add(cl->tick, &app->interval);
}

static void stats(struct grace_request *req, void *arg)
{
    struct app *app = arg;
    char body[320];
    size_t clients = 0, pending = 0;
    struct client *cl;

    LIST_FOREACH(cl, &app->clients, link) {
        clients++;
        pending += grace_reply_pending(cl->req);
    }
    int n = snprintf(body, sizeof(body),
                     "{\"clients\":%zu,\"streams\":%llu,\"events\":%llu,\"pauses\":%llu,"
                     "\"resumes\":%llu,\"pending\":%zu,\"peak_pending\":%llu,"
                     "\"low_water\":%zu}\n",
                     clients, (unsigned long long)app->streams, (unsigned long long)app->events,
                     (unsigned long long)app->pauses, (unsigned long long)app->resumes, pending,
                     (unsigned long long)app->peak_pending, app->low_water);
    grace_response_add_header(req, "Content-Type", "application/json");
    grace_reply(req, 200, body, (size_t)n);
}

static void page(struct grace_request *req, void *arg)
{
    static const char html[] =
        "<!doctype html><title>events</title><pre id=log></pre>\n"
        "<script>new EventSource('/events').onmessage = e =>\n"
        "  document.getElementById('log').textContent = e.lastEventId;</script>\n";
    static const char *const hints[] = {"Link", "</events>; rel=preload; as=fetch"};
    (void)arg;
    /* refused for an HTTP/1.0 client (-EPROTONOSUPPORT): the page follows anyway */
    grace_reply_informational(req, 103, hints, 1);
    grace_response_add_header(req, "Link", hints[1]);
    grace_response_add_header(req, "Content-Type", "text/html; charset=utf-8");
    grace_reply(req, 200, html, sizeof(html) - 1);
}

static void stopped(struct grace_server *srv, void *arg)
{
    struct app *app = arg;
    (void)srv;
    event_base_loopexit(app->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    (void)sig;
    (void)what;
    /* end every stream (on_finish frees each client), then stop */
    while (!LIST_EMPTY(&app->clients)) {
        struct client *cl = LIST_FIRST(&app->clients);
        struct grace_request *req = cl->req;
        event_del(cl->tick);
        grace_reply_on_drain(req, NULL, NULL);
        grace_reply_end(req);
    }
    grace_server_stop(app->srv, 5000, stopped, app);
}

int main(int argc, char **argv)
{
    struct app app = {.backpressure = 1, .event_bytes = 32};
    const char *host = "127.0.0.1";
    int port = 8080, interval_ms = 10, rc;
    long long low_water = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-backpressure")) {
            app.backpressure = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "sse: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--interval-ms"))
            interval_ms = atoi(v);
        else if (!strcmp(a, "--event-bytes"))
            app.event_bytes = (size_t)atol(v);
        else if (!strcmp(a, "--low-water"))
            low_water = atoll(v);
        else {
            fprintf(stderr, "sse: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (interval_ms < 1 || app.event_bytes > (16u << 20)) {
        fprintf(stderr, "sse: --interval-ms >= 1 and --event-bytes <= 16 MiB\n");
        return 2;
    }
    app.interval.tv_sec = interval_ms / 1000;
    app.interval.tv_usec = (interval_ms % 1000) * 1000;
    LIST_INIT(&app.clients);
    if (!(app.pad = malloc(app.event_bytes + 1)))
        return 1;
    memset(app.pad, 'x', app.event_bytes);

    app.base = event_base_new();
    struct grace_config *cfg = grace_config_new();
    if (!app.base || !cfg)
        return 1;
    if (low_water >= 0 && grace_config_set(cfg, GRACE_OPT_OUTPUT_LOW_WATER, low_water) < 0) {
        fprintf(stderr, "sse: bad --low-water\n");
        return 2;
    }
    app.low_water = (size_t)grace_config_get(cfg, GRACE_OPT_OUTPUT_LOW_WATER);
    app.srv = grace_server_new(app.base, cfg);
    grace_config_free(cfg);
    if (!app.srv)
        return 1;
    grace_server_route(app.srv, "GET", "/events", GRACE_ROUTE_EXACT, events, &app);
    grace_server_route(app.srv, "GET", "/stats", GRACE_ROUTE_EXACT, stats, &app);
    grace_server_route(app.srv, "GET", "/", GRACE_ROUTE_EXACT, page, &app);
    if ((rc = grace_server_listen(app.srv, host, port, NULL)) < 0) {
        fprintf(stderr, "sse: listen %s:%d: %s\n", host, port, grace_strerror(rc));
        return 2;
    }
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
    struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
    if (!sigint || !sigterm)
        return 1;
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("sse: listening on %s:%d\n", host, grace_server_port(app.srv, 0));
    fflush(stdout);
    event_base_dispatch(app.base);

    event_free(sigint);
    event_free(sigterm);
    grace_server_free(app.srv); /* streams still open finish with -ECANCELED */
    event_base_free(app.base);
    free(app.pad);
    return 0;
}
