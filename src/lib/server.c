/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * server.c - listeners, accepting, routing, graceful stop.
 */
#define _GNU_SOURCE /* accept4 */
#include "conn.h"
#ifdef GRACE_HAVE_H2
#include "h2.h"
#endif
#include "http1.h"
#include "request.h"
#include "stop.h"
#include "stream.h"
#include "transport.h"

#include <errno.h>
#include <event2/listener.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct grace_route {
    char *method; /* NULL: any */
    char *path;
    size_t path_len;
    int flags;
    grace_handler_cb cb;
    void *arg;
};

struct grace_listener {
    struct evconnlistener *lev;
    struct grace_server *srv;
    const struct grace_transport *tp; /* what its connections speak */
    struct grace_tls *tls;    /* a reference; NULL: plain */
};

/* ---------------------------------------------------------------- server */

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg);
static void free_listeners(struct grace_server *srv);
static void dispatch(struct grace_request *req);
static void conns_changed(struct grace_server *srv, int closed);

/* ---------------------------------------------------------------- protocols */

/* The slot's protocol area holds the largest protocol's state. */
static void proto_room(struct grace_server *srv, const struct grace_proto *p)
{
    if (p->slot_size > srv->slot_extra)
        srv->slot_extra = p->slot_size;
}

/* A protocol a new connection may choose besides the default: by ALPN on a
 * TLS listener (by_alpn), by its first bytes on a plain one (by_sniff);
 * earlier offers are preferred. -ENOSPC past GRACE_PROTOS_MAX. HTTP/2
 * offers itself here (h2 by ALPN, h2c by its preface), each by its own
 * switch (http2, h2c). */
#ifdef GRACE_HAVE_H2
static int offer_proto(struct grace_server *srv, const struct grace_proto *p, int by_alpn,
                       int by_sniff)
{
    int i;

    if (by_alpn && p->alpn) {
        for (i = 0; srv->by_alpn[i]; i++)
            ;
        if (i == GRACE_PROTOS_MAX)
            return -ENOSPC;
        srv->by_alpn[i] = p;
    }
    if (by_sniff && p->sniff) {
        for (i = 0; srv->by_sniff[i]; i++)
            ;
        if (i == GRACE_PROTOS_MAX)
            return -ENOSPC;
        srv->by_sniff[i] = p;
    }
    proto_room(srv, p);
    return 0;
}
#endif

/* What TLS listeners offer (ALPN wire format): the chosen-by-ALPN ones in
 * order, then the default. A client that offers none of them gets the
 * no_application_protocol alert; one that sends no ALPN gets the default. */
static int offer_protos(struct grace_server *srv)
{
    size_t n = 0;

    proto_room(srv, srv->proto_default);
    for (int i = 0; i <= GRACE_PROTOS_MAX; i++) {
        const struct grace_proto *p = i < GRACE_PROTOS_MAX ? srv->by_alpn[i] : srv->proto_default;
        size_t l;
        if (!p)
            continue;
        l = strlen(p->alpn);
        if (l == 0 || l > 255 || n + 1 + l > sizeof(srv->alpn_offer))
            return -EINVAL;
        srv->alpn_offer[n++] = (unsigned char)l;
        memcpy(srv->alpn_offer + n, p->alpn, l);
        n += l;
    }
    srv->alpn = srv->alpn_offer;
    srv->alpn_len = n;
    return 0;
}

struct grace_server *grace_server_new(struct event_base *base, const struct grace_config *cfg)
{
    struct grace_server *srv;

    if (!base) {
        errno = EINVAL;
        return NULL;
    }
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->base = base;
    srv->stop_linger_bound = INT64_MAX; /* no stop */
    if (cfg)
        srv->cfg = *cfg;
    else
        grace__config_defaults(&srv->cfg);
    srv->plim.max_request_line = (size_t)OPT(srv, MAX_REQUEST_LINE);
    srv->plim.max_header_bytes = (size_t)OPT(srv, MAX_HEADER_BYTES);
    srv->plim.max_fields = (size_t)OPT(srv, MAX_HEADER_FIELDS);
    srv->plim.max_trailer_bytes = (size_t)OPT(srv, MAX_TRAILER_BYTES);
    TAILQ_INIT(&srv->detached);
    /* the engine calls up through these two, never by name */
    srv->up.dispatch = dispatch;
    srv->up.conns_changed = conns_changed;
    srv->up.stop_due = grace__stop_due;
    /* what connections speak: HTTP/1.1 unless chosen otherwise; a stream
     * after an upgrade. TLS listeners offer them by ALPN */
    srv->proto_default = &grace__http1;
    proto_room(srv, &grace__stream_proto);
#ifdef GRACE_HAVE_H2
    /* HTTP/2: h2 by ALPN, preferred to http/1.1; h2c by its preface */
    offer_proto(srv, &grace__h2_proto, OPT(srv, HTTP2) != 0, OPT(srv, H2C) != 0);
#endif
    if (offer_protos(srv) < 0) {
        grace_server_free(srv);
        errno = EINVAL;
        return NULL;
    }
    srv->accept_timer = evtimer_new(base, accept_retry_cb, srv);
    if (grace__engine_init(srv) < 0 || !srv->accept_timer) {
        grace_server_free(srv);
        errno = ENOMEM;
        return NULL;
    }
    return srv;
}

void grace_server_free(struct grace_server *srv)
{
    if (!srv)
        return;
    free_listeners(srv);
    free(srv->listeners);
    grace__engine_free(srv);
    while (!TAILQ_EMPTY(&srv->detached))
        grace__request_free(TAILQ_FIRST(&srv->detached));
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].method);
        free(srv->routes[i].path);
    }
    free(srv->routes);
    if (srv->stop_timer)
        event_free(srv->stop_timer);
    if (srv->accept_timer)
        event_free(srv->accept_timer);
    free(srv->discard_buf);
    free(srv);
}

/* ---------------------------------------------------------------- listeners */

#ifdef GRACE_HAVE_TLS
static const int have_tls = 1;
#else
static const int have_tls = 0;
#endif

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct grace_listener *l = arg;
    grace__conn_accept(l->srv, fd, sa, salen, l->tp, l->tls);
}

/*
 * Stop accepting: at the connection cap (err 0), until a connection closes;
 * or out of fds or memory (err 1), until a connection closes or
 * accept-retry has passed, whichever comes first. A listener left enabled
 * would spin: it stays readable while accept() fails.
 */
static void pause_accept(struct grace_server *srv, int err)
{
    if (err) {
        struct timeval tv = grace__ms_tv(OPT(srv, ACCEPT_RETRY));
        CNT(srv, ACCEPT_ERRORS);
        event_add(srv->accept_timer, &tv);
    }
    if (srv->listeners_paused)
        return;
    for (int i = 0; i < srv->nlisteners; i++)
        evconnlistener_disable(srv->listeners[i]->lev);
    srv->listeners_paused = 1;
    if (!err)
        CNT(srv, CONN_CAPPED);
}

static void resume_accept(struct grace_server *srv)
{
    if (!srv->listeners_paused || srv->stopping ||
        srv->nconns >= (size_t)OPT(srv, MAX_CONNECTIONS))
        return;
    for (int i = 0; i < srv->nlisteners; i++)
        evconnlistener_enable(srv->listeners[i]->lev);
    srv->listeners_paused = 0;
    event_del(srv->accept_timer);
}

static void take_queue(struct grace_server *srv);

/* accept-retry has passed; or, in a stop begun inside the accept hook,
 * the listen queue is to be taken (grace_server_stop()) */
static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_server *srv = arg;
    if (srv->stopping) {
        take_queue(srv);
        grace__stop_check(srv);
        return;
    }
    resume_accept(srv);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct grace_server *srv = ((struct grace_listener *)arg)->srv;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        pause_accept(srv, 1);
}

/* Take lev over (callbacks, ownership) and accept on it, with TLS if tls. */
static int add_listener(struct grace_server *srv, struct evconnlistener *lev,
                        struct grace_tls *tls)
{
    struct grace_listener **ls, *l;

    ls = realloc(srv->listeners, sizeof(*ls) * (size_t)(srv->nlisteners + 1));
    if (!ls)
        return -ENOMEM;
    srv->listeners = ls;
    if (!(l = calloc(1, sizeof(*l))))
        return -ENOMEM;
    l->lev = lev;
    l->srv = srv;
    l->tp = tls ? &grace__tls : &grace__plain;
    l->tls = tls;
    if (tls)
        grace__tls_ref(tls);
    ls[srv->nlisteners++] = l;
    evconnlistener_set_cb(lev, accept_cb, l);
    evconnlistener_set_error_cb(lev, accept_error_cb);
    if (srv->listeners_paused || srv->stopping)
        evconnlistener_disable(lev);
    return 0;
}

static void free_listeners(struct grace_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        evconnlistener_free(srv->listeners[i]->lev);
        grace_tls_free(srv->listeners[i]->tls);
        free(srv->listeners[i]);
    }
    srv->nlisteners = 0;
}

static int listen_on(struct grace_server *srv, const char *host, int port,
                     struct grace_tls *tls)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    char portstr[16];
    int rc, added = 0, err = -EADDRNOTAVAIL;

    if (!srv || port < 0 || port > 65535)
        return -EINVAL;
    if (tls && !have_tls)
        return -ENOTSUP;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    for (ai = res; ai; ai = ai->ai_next) {
        unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
        if (OPT(srv, REUSEPORT))
            flags |= LEV_OPT_REUSEABLE_PORT;
        if (ai->ai_family == AF_INET6)
            flags |= LEV_OPT_BIND_IPV6ONLY;
        errno = 0;
        struct evconnlistener *lev = evconnlistener_new_bind(srv->base, NULL, NULL, flags, 511,
                                                             ai->ai_addr, (int)ai->ai_addrlen);
        if (!lev) {
            err = errno ? -errno : -EADDRNOTAVAIL;
            continue;
        }
        if ((rc = add_listener(srv, lev, tls)) < 0) {
            evconnlistener_free(lev);
            err = rc;
            continue;
        }
        added++;
        if (port == 0)
            break; /* an ephemeral port differs per address: take one */
    }
    freeaddrinfo(res);
    return added ? 0 : err;
}

int grace_server_listen(struct grace_server *srv, const char *host, int port,
                        struct grace_tls *tls)
{
    return listen_on(srv, host, port, tls);
}

static int listen_fd(struct grace_server *srv, int fd, struct grace_tls *tls)
{
    int rc;
    if (!srv || fd < 0)
        return -EINVAL;
    if (tls && !have_tls) {
        close(fd);
        return -ENOTSUP;
    }
    if (evutil_make_socket_nonblocking(fd) < 0) {
        close(fd);
        return -errno;
    }
    /* a socket already listening keeps its backlog (graced --backlog,
     * systemd's Backlog=): libevent's -1 would listen() again with 128 */
    int listening = 0;
    socklen_t llen = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &llen) < 0)
        listening = 0;
    struct evconnlistener *lev = evconnlistener_new(
        srv->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, listening ? 0 : -1, fd);
    if (!lev) {
        close(fd);
        return -ENOMEM;
    }
    if ((rc = add_listener(srv, lev, tls)) < 0)
        evconnlistener_free(lev);
    return rc;
}

int grace_server_listen_fd(struct grace_server *srv, int fd, struct grace_tls *tls)
{
    return listen_fd(srv, fd, tls);
}

int grace_server_adopt_listener(struct grace_server *srv, struct evconnlistener *lev)
{
    if (!srv || !lev)
        return -EINVAL;
    return add_listener(srv, lev, NULL);
}

/* The names of 0.1, for one release: the TLS argument was their reason. */
int grace_server_listen_tls(struct grace_server *srv, const char *host, int port,
                            struct grace_tls *tls)
{
    return tls ? listen_on(srv, host, port, tls) : -EINVAL;
}

int grace_server_listen_fd_tls(struct grace_server *srv, int fd, struct grace_tls *tls)
{
    if (!tls) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    return listen_fd(srv, fd, tls);
}

int grace_server_port(const struct grace_server *srv, int i)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (!srv || i < 0 || i >= srv->nlisteners)
        return -EINVAL;
    if (getsockname(evconnlistener_get_fd(srv->listeners[i]->lev), (struct sockaddr *)&ss,
                    &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

int grace_server_adopt_conn(struct grace_server *srv, int fd, const struct sockaddr *peer,
                            socklen_t peer_len, struct grace_tls *tls)
{
    if (!srv || fd < 0) {
        if (fd >= 0)
            evutil_closesocket(fd);
        return -EINVAL;
    }
    /* during the lame duck a connection the application accepted before
     * the stop (graced: still reading its PROXY header) is served */
    if (srv->stopping >= STOP_CUTTING || srv->nconns >= (size_t)OPT(srv, MAX_CONNECTIONS)) {
        evutil_closesocket(fd);
        return srv->stopping >= STOP_CUTTING ? -ESHUTDOWN : -EBUSY;
    }
    grace__conn_accept(srv, fd, peer, peer ? (int)peer_len : 0, tls ? &grace__tls : &grace__plain,
                       tls);
    return 0;
}

/* The engine's connection count changed (srv->up.conns_changed): after an
 * accept, pause at the cap; after a close, accept again below it; and a
 * stop may be done. */
static void conns_changed(struct grace_server *srv, int closed)
{
    if (closed)
        resume_accept(srv);
    else if (srv->nconns >= (size_t)OPT(srv, MAX_CONNECTIONS))
        pause_accept(srv, 0);
    grace__stop_check(srv);
}

/* ---------------------------------------------------------------- routing */

void grace_server_set_handler(struct grace_server *srv, grace_handler_cb cb, void *arg)
{
    srv->handler = cb;
    srv->handler_arg = arg;
}

int grace_server_route(struct grace_server *srv, const char *method, const char *path,
                       int flags, grace_handler_cb cb, void *arg)
{
    struct grace_route *r;
    if (!srv || !path || !cb || (flags & ~GRACE_ROUTE_PREFIX))
        return -EINVAL;
    r = realloc(srv->routes, sizeof(*r) * (srv->nroutes + 1));
    if (!r)
        return -ENOMEM;
    srv->routes = r;
    r = &srv->routes[srv->nroutes];
    r->method = method ? strdup(method) : NULL;
    r->path = strdup(path);
    if ((method && !r->method) || !r->path) {
        free(r->method);
        free(r->path);
        return -ENOMEM;
    }
    r->path_len = strlen(path);
    r->flags = flags;
    r->cb = cb;
    r->arg = arg;
    srv->nroutes++;
    return 0;
}

/* How well route r matches path: 0 not at all, else higher is better
 * (exact beats prefix, a longer prefix beats a shorter one). */
static int route_rank(const struct grace_route *r, const char *path, size_t plen)
{
    if (r->flags & GRACE_ROUTE_PREFIX)
        return plen >= r->path_len && !memcmp(path, r->path, r->path_len)
                   ? (int)r->path_len + 1 : 0;
    return plen == r->path_len && !memcmp(path, r->path, plen) ? 1 << 30 : 0;
}

/* Best route for the path; *path_only is set when some route matches the
 * path with another method. */
static const struct grace_route *find_route(const struct grace_server *srv, const char *method,
                                            const char *path, int *path_only)
{
    const struct grace_route *best = NULL;
    size_t plen = strlen(path);
    int best_rank = 0;

    *path_only = 0;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct grace_route *r = &srv->routes[i];
        int rank = route_rank(r, path, plen);
        if (!rank)
            continue;
        if (r->method && strcmp(r->method, method)) {
            *path_only = 1;
            continue;
        }
        if (rank > best_rank) {
            best = r;
            best_rank = rank;
        }
    }
    return best;
}

static void reply_405(struct grace_request *req)
{
    const struct grace_server *srv = req->srv;
    char allow[256] = "";
    size_t n = 0, plen = strlen(req->npath);
    for (size_t i = 0; i < srv->nroutes && n < sizeof(allow); i++) {
        const struct grace_route *r = &srv->routes[i];
        if (route_rank(r, req->npath, plen) && r->method && !strstr(allow, r->method))
            n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "",
                                  r->method);
    }
    grace_response_add_header(req, "Allow", allow);
    grace_reply(req, 405, "method not allowed\n", 19);
}

/* Headers are complete: run the route's handler (or the server's 404/405).
 * The engine's srv->up.dispatch. */
static void dispatch(struct grace_request *req)
{
    struct grace_server *srv = req->srv;
    const struct grace_route *r;
    int path_only;

    if (!req->npath) {
        /* routes compare normalized paths: one that has none (%2F, %00, bad
         * escape, ".." above the root) would slip past them */
        static const char msg[] = "invalid path: bad %-escape, encoded / or NUL, "
                                  "or .. above the root\n";
        grace__count_status(srv, 400);
        grace_response_add_header(req, "Connection", "close");
        grace_response_add_header(req, "X-Content-Type-Options", "nosniff");
        grace_reply(req, 400, msg, sizeof(msg) - 1);
        return;
    }
    /* held: a handler that drops the connection and completes its reply
     * frees req only when this function is done with it */
    grace__request_hold(req);
    r = find_route(srv, grace_request_method(req), req->npath, &path_only);
    if (r)
        r->cb(req, r->arg);
    else if (path_only)
        reply_405(req);
    else if (srv->handler)
        srv->handler(req, srv->handler_arg);
    else
        grace_reply(req, 404, "not found\n", 10);
    /* The body limit is the handler's to set (grace_request_set_max_body),
     * so a Content-Length over it is refused only now, before any body byte
     * is read: unless the handler replied or began reading (which checks). */
    if (!req->detached && req->resp == RESP_NONE && req->body_mode == BODY_NONE &&
        req->p.framing == GRACE_FRAMING_LENGTH && req->p.content_length > req->body_limit)
        req->ops->fail(req, 413, "request body too large", -EMSGSIZE);
    grace__request_unhold(req);
}

/* ---------------------------------------------------------------- stop */

/* A listen queue refilled as fast as it is emptied (a flood) must not hold
 * the stop: at most this many are taken from each listener. */
#define ACCEPT_QUEUED_MAX 65536

/*
 * The connections a listener's queue holds have completed their handshake
 * and may have sent a request: closing the listener would reset them (a
 * request lost, and behind a balancer in TCP mode one it cannot retry).
 * Take them, as a stop's last accepts; they are served like the others.
 * max-connections holds here too (it bounds fds and memory): the rest of
 * the queue is reset by the listener's close, as the kernel would reset it
 * anyway once nobody reads the queue. poll() first: an adopted listening
 * socket need not be non-blocking.
 */
static void accept_queued(struct grace_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        struct grace_listener *l = srv->listeners[i];
        evutil_socket_t lfd = evconnlistener_get_fd(l->lev);
        for (int n = 0; n < ACCEPT_QUEUED_MAX; n++) {
            struct pollfd p = {.fd = lfd, .events = POLLIN};
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            if (srv->nconns >= (size_t)OPT(srv, MAX_CONNECTIONS))
                return;
            if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
                break;
            int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
                continue;
            if (fd < 0) /* EAGAIN: empty; EMFILE: the rest cannot be taken */
                break;
            grace__conn_accept(srv, fd, (struct sockaddr *)&ss, (int)len, l->tp, l->tls);
        }
    }
}

/* The stop's last accepts, then the listening sockets close: new
 * connections are refused (a balancer retries elsewhere), not left waiting
 * in a queue nobody reads. */
static void take_queue(struct grace_server *srv)
{
    accept_queued(srv);
    free_listeners(srv);
    srv->queue_pending = 0;
}

/* The stop's phases, timers and what it does to each connection are
 * stop.c's; the listeners are this file's. */
int grace_server_stop(struct grace_server *srv, int64_t timeout_ms, grace_stopped_cb cb,
                      void *arg)
{
    int rc;

    if (!srv || timeout_ms < 0)
        return -EINVAL;
    if (srv->stopping)
        return -EALREADY;
    if ((rc = grace__stop_begin(srv, cb, arg)) < 0)
        return rc;
    event_del(srv->accept_timer);
    if (srv->in_accept_hook) {
        /* each of the queue's accepts runs the hook: not inside itself, so
         * from the loop (accept_retry_cb); no accept before that */
        for (int i = 0; i < srv->nlisteners; i++)
            evconnlistener_disable(srv->listeners[i]->lev);
        srv->listeners_paused = 1;
        srv->queue_pending = 1;
        event_active(srv->accept_timer, EV_TIMEOUT, 1);
    } else {
        take_queue(srv);
    }
    /* no callback runs in here: connections only get new timers */
    grace__stop_lame_duck(srv, timeout_ms);
    return 0;
}
