/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * echo.c - an embedding example: the program owns its event_base, runs a
 * timer of its own on it, and serves every request with a JSON echo:
 *   {"method":..,"target":..,"path":..,"version":..,"headers":[[name,value],...],
 *    "values":[..],"body":..}
 * "path" is the decoded, normalized path routes see; "values" (with the
 * query "?values=NAME") lists every value of header NAME, in order.
 * Bytes outside printable ASCII are written \u00XX (the byte as a Latin-1
 * code point), so any body round-trips.
 *
 *   echo [--host H] [--port P] [--max-body N] [--upload-max N] [--allow ADDR]
 *        [--token T] [--linger on|off] [--tick-ms MS]
 * --max-body N  bodies over N bytes are answered 413 before they are read
 * --upload-max N  the route /upload (a prefix) takes bodies up to N bytes
 *               instead (a per-route limit, set before the body is read)
 * --allow ADDR  connections from any other address are closed before a byte
 *               is read (the accept hook)
 * Each response carries X-Conn-Requests: the requests seen on its
 * connection so far (per-connection data, freed by the close hook).
 * --token T     requests without "Authorization: Bearer T" get 401 at once
 * --linger off  the naive close, for comparison only
 * SIGINT/SIGTERM stop gracefully.
 */
#include <gracehttp.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct app {
    struct grace_server *srv;
    struct event_base *base;
    int64_t max_body, upload_max;
    const char *token, *allow;
    unsigned long ticks;
};

/* What the example keeps per connection: its own data, the hooks' use. */
struct conn_info {
    unsigned long requests;
};

static int on_accept(struct grace_conn *conn, void *arg)
{
    struct app *app = arg;
    char addr[INET6_ADDRSTRLEN] = "";
    socklen_t len;
    const struct sockaddr *sa = grace_conn_peer(conn, &len);
    struct conn_info *ci;

    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof(addr));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof(addr));
    if (app->allow && strcmp(addr, app->allow))
        return -1; /* refused: closed at once, no close hook */
    if (!(ci = calloc(1, sizeof(*ci))))
        return -1;
    grace_conn_set_data(conn, ci);
    return 0;
}

static void on_close(struct grace_conn *conn, int reason, void *arg)
{
    free(grace_conn_data(conn)); /* once per connection the accept hook kept */
}

static void json_string(struct evbuffer *out, const char *s, size_t n)
{
    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            evbuffer_add_printf(out, "\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            evbuffer_add_printf(out, "\\u%04x", c);
        else
            evbuffer_add(out, &s[i], 1);
    }
    evbuffer_add(out, "\"", 1);
}

static void json_cstr(struct evbuffer *out, const char *s)
{
    json_string(out, s, strlen(s));
}

static void on_body(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct evbuffer *out = evbuffer_new();
    (void)arg;
    if (!out) {
        grace_reply(req, 500, "out of memory\n", 14);
        return;
    }
    evbuffer_add_printf(out, "{\"method\":");
    json_cstr(out, grace_request_method(req));
    evbuffer_add_printf(out, ",\"target\":");
    json_cstr(out, grace_request_target(req));
    evbuffer_add_printf(out, ",\"path\":");
    json_cstr(out, grace_request_path_decoded(req));
    evbuffer_add_printf(out, ",\"version\":\"HTTP/1.%d\",\"headers\":[",
                        grace_request_version_minor(req));
    for (size_t i = 0; i < grace_request_header_count(req); i++) {
        const char *name, *value;
        grace_request_header_at(req, i, &name, &value);
        evbuffer_add_printf(out, "%s[", i ? "," : "");
        json_cstr(out, name);
        evbuffer_add(out, ",", 1);
        json_cstr(out, value);
        evbuffer_add(out, "]", 1);
    }
    evbuffer_add(out, "]", 1);
    const char *q = grace_request_query(req);
    if (q && !strncmp(q, "values=", 7)) {
        size_t pos = 0, k = 0;
        const char *v;
        evbuffer_add_printf(out, ",\"values\":[");
        while ((v = grace_request_header_next(req, q + 7, &pos))) {
            evbuffer_add_printf(out, "%s", k++ ? "," : "");
            json_cstr(out, v);
        }
        evbuffer_add(out, "]", 1);
    }
    evbuffer_add_printf(out, ",\"body\":");
    size_t n = evbuffer_get_length(body);
    json_string(out, n ? (const char *)evbuffer_pullup(body, -1) : "", n);
    evbuffer_add(out, "}\n", 2);
    grace_response_add_header(req, "Content-Type", "application/json");
    grace_reply_buffer(req, 200, out);
    evbuffer_free(out);
}

/* The client went away, or the body broke a limit: complete our side. */
static void on_finish(struct grace_request *req, int err, void *arg)
{
    (void)arg;
    if (err)
        grace_reply(req, 500, NULL, 0); /* returns -ENOTCONN and releases req */
}

/* Serve with a body limit of max (-1: the server's). */
static void serve(struct grace_request *req, struct app *app, int64_t max)
{
    const char *auth = grace_request_header(req, "Authorization");
    struct conn_info *ci = grace_conn_data(grace_request_conn(req));
    char n[24];

    if (ci) {
        snprintf(n, sizeof(n), "%lu", ++ci->requests);
        grace_response_add_header(req, "X-Conn-Requests", n);
    }

    if (app->token && (!auth || strncmp(auth, "Bearer ", 7) || strcmp(auth + 7, app->token))) {
        grace_response_add_header(req, "WWW-Authenticate", "Bearer");
        grace_reply(req, 401, "missing or wrong token\n", 23);
        return;
    }
    if (max >= 0 && grace_request_content_length(req) > max) {
        grace_reply(req, 413, "body too large\n", 15);
        return;
    }
    grace_request_on_finish(req, on_finish, app);
    if (grace_request_collect_body(req, max >= 0 ? (size_t)max : 0, on_body, app) < 0)
        grace_reply(req, 413, "body too large\n", 15);
}

static void handle(struct grace_request *req, void *arg)
{
    struct app *app = arg;
    serve(req, app, app->max_body);
}

/* /upload: its own limit, set before any body byte is read */
static void handle_upload(struct grace_request *req, void *arg)
{
    struct app *app = arg;
    grace_request_set_max_body(req, (uint64_t)app->upload_max);
    serve(req, app, app->upload_max);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    app->ticks++; /* the application's own work on the shared loop */
}

static void stopped(struct grace_server *srv, void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    grace_server_stop(app->srv, 10000, stopped, app);
}

int main(int argc, char **argv)
{
    struct app app = {.max_body = -1, .upload_max = -1};
    const char *host = "127.0.0.1";
    int port = 8080, linger = 1, tick_ms = 1000, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "echo: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--max-body"))
            app.max_body = atoll(v);
        else if (!strcmp(a, "--upload-max"))
            app.upload_max = atoll(v);
        else if (!strcmp(a, "--allow"))
            app.allow = v;
        else if (!strcmp(a, "--token"))
            app.token = v;
        else if (!strcmp(a, "--linger"))
            linger = strcmp(v, "off") != 0;
        else if (!strcmp(a, "--tick-ms"))
            tick_ms = atoi(v);
        else {
            fprintf(stderr, "echo: unknown option %s\n", a);
            return 2;
        }
        i++;
    }

    app.base = event_base_new();
    struct grace_config *cfg = grace_config_new();
    if (!app.base || !cfg)
        return 1;
    grace_config_set(cfg, GRACE_OPT_LINGER, linger);
    if (app.max_body >= 0)
        grace_config_set(cfg, GRACE_OPT_MAX_BODY_SIZE, app.max_body);
    else
        grace_config_set(cfg, GRACE_OPT_MAX_BODY_SIZE, INT64_C(1) << 30);
    app.srv = grace_server_new(app.base, cfg);
    grace_config_free(cfg);
    if (!app.srv)
        return 1;
    grace_server_set_handler(app.srv, handle, &app);
    if (app.upload_max >= 0)
        grace_server_route(app.srv, NULL, "/upload", GRACE_ROUTE_PREFIX, handle_upload, &app);
    grace_server_on_accept(app.srv, on_accept, &app);
    grace_server_on_close(app.srv, on_close, &app);
    if ((rc = grace_server_listen(app.srv, host, port, NULL)) < 0) {
        fprintf(stderr, "echo: listen %s:%d: %s\n", host, port, grace_strerror(rc));
        return 2;
    }

    struct timeval tv = {tick_ms / 1000, (tick_ms % 1000) * 1000};
    struct event *timer = event_new(app.base, -1, EV_PERSIST, tick, &app);
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
    struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
    if (!timer || !sigint || !sigterm)
        return 1;
    event_add(timer, &tv);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("echo: listening on %s:%d\n", host, grace_server_port(app.srv, 0));
    fflush(stdout);
    event_base_dispatch(app.base);

    event_free(timer);
    event_free(sigint);
    event_free(sigterm);
    grace_server_free(app.srv);
    event_base_free(app.base);
    return 0;
}
