/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * worker.c - one worker process: its event loop, its server (its routes:
 * route.c) on the listening sockets of its row, its signals (SIGHUP reloads, SIGTERM and
 * SIGINT stop gracefully, a second one or the supervisor's SIGUSR2 stops
 * now), and the order in which it all ends.
 */
#include "graced.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <string.h>

static void stop_wait_over(evutil_socket_t fd, short what, void *arg)
{
    struct graced *g = arg;
    event_base_loopexit(g->base, NULL);
}

/* The library's stop is done. PROXY headers still on their way may be
 * waited for, but not past the stop's deadline (a connection adopted
 * after it would be cut at once): the server adopts while its stop runs
 * (and, by its documented contract, until the deadline). */
static void stopped(struct grace_server *srv, void *arg)
{
    struct graced *g = arg;
    int64_t left = g->stop_at_ms + g->o.shutdown_timeout_ms - graced_mono_ms();
    struct timeval tv = {left > 0 ? left / 1000 : 0, left > 0 ? (left % 1000) * 1000 : 0};
    g->served = 1;
    if (!graced_proxy_pending(g) || left <= 0 ||
        event_base_once(g->base, -1, EV_TIMEOUT, stop_wait_over, g, &tv) < 0)
        event_base_loopexit(g->base, NULL);
}

/* The last PROXY header of the stop came (or was dropped). */
static void proxy_settled(struct graced *g)
{
    if (g->served)
        event_base_loopexit(g->base, NULL);
}

/*
 * SIGTERM/SIGINT: a graceful stop; a second one: stop now. A worker of
 * several hears from the supervisor instead: SIGTERM or SIGINT there only
 * ever means graceful, since a signal sent to the whole process group
 * (Ctrl-C) or control group (systemd) reaches it twice, directly and
 * forwarded; "now" comes as SIGUSR2, sent by the supervisor only on a
 * second stop signal of its own. The PROXY listeners' queues are taken
 * first, with the headers already there; then the library's stop begins
 * at once: the listen queues served, the listeners closed, idle
 * connections given stop-idle-grace, requests in flight --shutdown-timeout
 * (then 503 to those not yet answered). A PROXY header that comes during
 * it is still served; the worker's loop ends once the server and the
 * headers are done.
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct graced *g = arg;
    if (sig == SIGHUP) {
        graced_notify_reloading(); /* systemd: RELOADING=1, then READY=1 */
        if (graced_access_log_reopen() < 0)
            graced_log(LOG_ERR, "cannot reopen %s: %s", g->o.access_log, strerror(errno));
        if (g->tls)
            graced_certs_reload(g);
        graced_auth_reload(g);
        graced_notify_up(g);
        return;
    }
    if (sig == SIGUSR2) {
        graced_log(LOG_INFO, "worker %d: stopping now", g->worker);
        event_base_loopexit(g->base, NULL);
        return;
    }
    if (g->stopping) {
        if (!g->supervised)
            event_base_loopexit(g->base, NULL); /* a second signal: now */
        return;
    }
    g->stopping = 1; /* --health answers 503 from now on */
    g->stop_at_ms = graced_mono_ms();
    graced_notify_stopping(); /* systemd: STOPPING=1 */
    graced_proxy_stop(g, proxy_settled);
    if (grace_server_stop(g->srv, g->o.shutdown_timeout_ms, stopped, g) == 0)
        graced_log(LOG_INFO, "stopping: finishing requests in flight");
}

static const int signals[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2};

void graced_worker_signals(sigset_t *set)
{
    for (int i = 0; i < 4; i++)
        sigaddset(set, signals[i]);
}

int graced_worker_run(struct graced *g, const struct graced_socks *s, int w)
{
    const int *fds = s->fd[w], *tls = s->tls, *proxy = s->proxy;
    int nfds = s->per_worker;
    struct event *sig[4];
    int rc, nsig = g->supervised ? 4 : 3;
    sigset_t handled;

    /* until the handlers below exist, a stop or reload signal waits (a
     * forked worker starts with them blocked already: spawn()) */
    sigemptyset(&handled);
    graced_worker_signals(&handled);
    sigprocmask(SIG_BLOCK, &handled, NULL);

    g->base = event_base_new();
    g->srv = g->base ? grace_server_new(g->base, g->o.cfg) : NULL;
    if (!g->srv || graced_store_init(g) < 0 || graced_partial_init(g) < 0) {
        fprintf(stderr, "graced: out of memory\n");
        return 1;
    }
    if (graced_routes_add(g) < 0) {
        fprintf(stderr, "graced: out of memory\n");
        return 1;
    }
    /* every response, also the library's own 400/408/413/..., once written */
    grace_server_on_response(g->srv, graced_metrics_response, g); /* counts, then logs */
    /* a forked worker has its copy of the supervisor's context (a copy:
     * each reloads its own on SIGHUP) */
    if (g->o.ncert && !g->tls && !(g->tls = graced_certs_load(&g->o)))
        return 1;
    for (int i = 0; i < nfds; i++) {
        rc = proxy[i] ? graced_proxy_listen(g, fds[i], tls[i] ? g->tls : NULL)
                     : grace_server_listen_fd(g->srv, fds[i], tls[i] ? g->tls : NULL);
        if (rc < 0) {
            fprintf(stderr, "graced: listening socket%s: %s\n", tls[i] ? " (TLS)" : "",
                    grace_strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < nsig; i++) {
        sig[i] = evsignal_new(g->base, signals[i], on_signal, g);
        if (!sig[i] || event_add(sig[i], NULL) < 0)
            return 1;
    }
    /* now they may come: one that waited is handled from the loop (a
     * SIGHUP's reload after the start's "up" below: notify.c's generation
     * tells the supervisor which one that is) */
    sigprocmask(SIG_UNBLOCK, &handled, NULL);
    if (!g->supervised) /* else the supervisor does, once every worker runs */
        graced_announce(s);
    graced_metrics_start(g);
    graced_notify_up(g); /* listeners and signal handlers in place */
    graced_log(LOG_DEBUG, "worker %d running", g->worker);
    event_base_dispatch(g->base);
    graced_metrics_stop(g);
    graced_proxy_free(g);
    /* stopped: a stop signal still on its way (the supervisor's copy of
     * one we had directly) must not kill us once the handlers are gone */
    sigprocmask(SIG_BLOCK, &handled, NULL);
    for (int i = 0; i < nsig; i++)
        event_free(sig[i]);
    grace_server_free(g->srv);
    graced_auth_stop(g); /* after the server: checks waiting were cancelled with it */
    graced_store_end(g); /* after the server too: waits for the uploads' fsyncs running */
    graced_partial_end(g); /* after the pool: its jobs have run */
    if (g->tls)
        grace_tls_free(g->tls);
    g->tls = NULL;
    event_base_free(g->base);
    graced_files_cache_free(g);
    return 0;
}
