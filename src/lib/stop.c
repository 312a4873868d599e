/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stop.c - a graceful stop (docs/design.md "Stop"): its phases, their
 * timers and what each does to the connections.
 *
 *   lame duck  the listeners took their queued connections and closed
 *              (server.c); responses say Connection: close; a connection
 *              without a request gets stop-idle-grace for one
 *              (grace__stop_due, which the engine asks through
 *              srv->up.stop_due); lingering ones are cut short
 *   deadline   requests still without a reply are answered 503, started
 *              replies cut, idle connections closed (the protocol's cut)
 *   last bound stop-linger-time later whatever is left is closed
 *   report     once no connection is left, from the loop
 *
 * The policy is here; the acts are the engine's own entries (conn.c) and
 * the protocol's stop (c->proto, through grace__conn_proto_stop).
 */
#include "stop.h"

#include "conn.h"

#include <errno.h>

static void stopped_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_server *srv = arg;
    grace_stopped_cb cb = srv->on_stopped;
    srv->on_stopped = NULL;
    if (cb)
        cb(srv, srv->stopped_arg);
}

void grace__stop_check(struct grace_server *srv)
{
    if (srv->stopping == STOP_NONE || srv->stopping == STOP_DONE || srv->nconns ||
        !TAILQ_EMPTY(&srv->lingering) || srv->queue_pending)
        return;
    srv->stopping = STOP_DONE; /* report once, from the loop */
    event_del(srv->stop_timer);
    event_assign(srv->stop_timer, srv->base, -1, 0, stopped_cb, srv);
    event_active(srv->stop_timer, EV_TIMEOUT, 1);
}

int64_t grace__stop_due(const struct grace_server *srv, int64_t since)
{
    if (!srv->stopping)
        return INT64_MAX;
    return (since > srv->stop_at ? since : srv->stop_at) + OPT(srv, STOP_IDLE_GRACE);
}

/* ---------------------------------------------------------------- the deadline */

/*
 * A connection at the deadline: a closing one's output still waiting for a
 * slow reader is cut, a new or idle one without a slot closes, and the
 * protocol cuts the rest its way (HTTP/1.1: 503 before a reply).
 */
static void stop_cut(struct grace_conn *c)
{
    if (grace__conn_held(c)) /* its reply says how the commit ended: it comes */
        return;
    grace__conn_enter(c);
    if (c->state >= CS_CLOSING) {
        grace__conn_abort(c, -ECANCELED); /* output still waiting for a slow reader */
    } else if (!c->slot) { /* new or idle, nothing buffered */
        CNT(c->srv, STOP_IDLE_CLOSED);
        grace__conn_destroy(c);
    } else if (grace__conn_proto_stop(c, GRACE_STOP_CUT) < 0) {
        grace__conn_abort(c, -ECANCELED);
    }
    grace__conn_leave(c);
}

/*
 * Each connection once (marked), while the callbacks each cut runs may
 * close others: the next one is held (busy) across the cut, and a walk
 * that lost its place (the next one closed, or moved to the lingering
 * list) starts again from the head, skipping the marked.
 */
static void cut_all(struct grace_server *srv)
{
    struct grace_conn *c = TAILQ_FIRST(&srv->conns), *n;

    while (c) {
        if (c->stop_cut) {
            c = TAILQ_NEXT(c, link);
            continue;
        }
        c->stop_cut = 1;
        if ((n = TAILQ_NEXT(c, link)))
            grace__conn_enter(n);
        stop_cut(c);
        if (!n)
            break;
        c = n->state == CS_DEAD || n->state == CS_LINGER ? TAILQ_FIRST(&srv->conns) : n;
        grace__conn_leave(n); /* frees n if it closed */
    }
}

/* The first connection no request holds (grace_request_hold_stop). */
static struct grace_conn *first_unheld(struct grace_server *srv)
{
    struct grace_conn *c;
    TAILQ_FOREACH(c, &srv->conns, link)
        if (!grace__conn_held(c))
            return c;
    return NULL;
}

/* The last bound (stop-linger-time after the deadline): close what is
 * left, but for connections whose request holds the stop (they close
 * after their reply), then report once none is left. Each close may close
 * others (callbacks): the search starts from the head each time. */
static void stop_final_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_server *srv = arg;
    struct grace_conn *c;
    while ((c = first_unheld(srv)))
        grace__conn_abort(c, -ECANCELED);
    while ((c = TAILQ_FIRST(&srv->lingering))) {
        grace__conn_reason(c, -ECANCELED);
        grace__conn_destroy(c);
    }
    grace__stop_check(srv);
}

/* The deadline: requests still in flight are answered 503 or cut, idle
 * connections closed; lingering ones go on, up to stop-linger-time. */
static void stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grace_server *srv = arg;
    struct timeval tv = grace__ms_tv(OPT(srv, STOP_LINGER_TIME));

    srv->stopping = STOP_CUTTING;
    event_assign(srv->stop_timer, srv->base, -1, 0, stop_final_cb, srv);
    event_add(srv->stop_timer, &tv);
    cut_all(srv);
    grace__stop_check(srv);
}

/* ---------------------------------------------------------------- the lame duck */

int grace__stop_begin(struct grace_server *srv, grace_stopped_cb cb, void *arg)
{
    srv->stop_timer = event_new(srv->base, -1, 0, stop_timeout_cb, srv);
    if (!srv->stop_timer)
        return -ENOMEM;
    srv->stopping = STOP_LAME_DUCK;
    srv->stop_at = grace__now_ms();
    srv->on_stopped = cb;
    srv->stopped_arg = arg;
    return 0;
}

/*
 * Nothing closes here, and no callback runs: a connection without a
 * request gets the lame duck's timer (stop-idle-grace); one with a request
 * hears of it through its protocol (responses say Connection: close; a
 * draining one goes on, its response promised keep-alive; streams hear of
 * it from the loop); lingering ones are cut short.
 */
void grace__stop_lame_duck(struct grace_server *srv, int64_t timeout_ms)
{
    struct timeval tv = grace__ms_tv(timeout_ms);
    struct grace_conn *c, *next;

    /* every linger ends by then: until the deadline an early answer
     * lingers as without a stop (its upload reads the answer once sent) */
    srv->stop_deadline = srv->stop_at + timeout_ms;
    srv->stop_linger_bound = srv->stop_deadline + OPT(srv, STOP_LINGER_TIME);
    event_add(srv->stop_timer, &tv);
    TAILQ_FOREACH_SAFE(c, &srv->conns, link, next) {
        if (!c->slot && c->state <= CS_IDLE)
            grace__conn_rearm(c);
        else if (c->state < CS_CLOSING)
            grace__conn_proto_stop(c, GRACE_STOP_LAME_DUCK);
    }
    TAILQ_FOREACH_SAFE(c, &srv->lingering, link, next)
        grace__conn_linger_stop(c);
    grace__stop_check(srv);
}
