/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * threads.c - one server per thread. Each thread owns an event_base and a
 * grace_server on it, listening on the same host:port with SO_REUSEPORT
 * (GRACE_OPT_REUSEPORT): the kernel spreads new connections over the
 * threads' listen sockets, and the threads share nothing, so no lock is
 * taken anywhere. Every answer says which thread made it ("X-Thread").
 *
 *   threads [--threads N] [--host H] [--port P]
 * With --port 0 the first thread's port is used by all. SIGINT/SIGTERM stop
 * every server gracefully.
 */
#include <gracehttp.h>

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker {
    int index;
    char name[16];
    struct event_base *base;
    struct grace_server *srv;
    struct event *wake;   /* the main thread asks us to stop through a pipe */
    int pipe[2];
    pthread_t thread;
};

static void hello(struct grace_request *req, void *arg)
{
    static const char body[] = "hello world\n";
    struct worker *w = arg;
    grace_response_add_header(req, "X-Thread", w->name);
    grace_reply(req, 200, body, sizeof(body) - 1);
}

static void stopped(struct grace_server *srv, void *arg)
{
    struct worker *w = arg;
    (void)srv;
    event_base_loopexit(w->base, NULL);
}

/* Runs in the worker's own thread, like every call on its server. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    char b;
    (void)what;
    if (read(fd, &b, 1) == 1)
        grace_server_stop(w->srv, 5000, stopped, w);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* The worker's base and server, made in the main thread before its thread
 * starts (pthread_create orders these writes before the thread's reads). */
static int worker_init(struct worker *w, int index, const char *host, int port)
{
    struct grace_config *cfg = grace_config_new();
    int rc;

    w->index = index;
    snprintf(w->name, sizeof(w->name), "%d", index);
    if (!cfg || !(w->base = event_base_new()) || pipe(w->pipe) < 0) {
        grace_config_free(cfg);
        return -ENOMEM;
    }
    grace_config_set(cfg, GRACE_OPT_REUSEPORT, 1);
    grace_config_set(cfg, GRACE_OPT_MAX_CONNECTIONS, 100000);
    w->srv = grace_server_new(w->base, cfg);
    grace_config_free(cfg);
    if (!w->srv)
        return -ENOMEM;
    grace_server_set_handler(w->srv, hello, w);
    if ((rc = grace_server_listen(w->srv, host, port, NULL)) < 0)
        return rc;
    w->wake = event_new(w->base, w->pipe[0], EV_READ, on_wake, w);
    if (!w->wake || event_add(w->wake, NULL) < 0)
        return -ENOMEM;
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080, n = 2, rc, sig;
    sigset_t stop_sigs;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "threads: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--threads"))
            n = atoi(v);
        else {
            fprintf(stderr, "threads: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (n < 1 || n > 256) {
        fprintf(stderr, "threads: --threads must be 1 to 256\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* the workers inherit this mask: only the main thread takes the signals */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

    struct worker *w = calloc((size_t)n, sizeof(*w));
    if (!w)
        return 1;
    for (int i = 0; i < n; i++) {
        if ((rc = worker_init(&w[i], i, host, port)) < 0) {
            fprintf(stderr, "threads: listen %s:%d: %s\n", host, port, grace_strerror(rc));
            return 2;
        }
        if (i == 0)
            port = grace_server_port(w[0].srv, 0); /* port 0: the others join it */
    }
    for (int i = 0; i < n; i++)
        if (pthread_create(&w[i].thread, NULL, run, &w[i]) != 0) {
            fprintf(stderr, "threads: cannot start thread %d\n", i);
            return 1;
        }
    printf("threads: %d threads listening on %s:%d\n", n, host, port);
    fflush(stdout);

    sigwait(&stop_sigs, &sig);
    for (int i = 0; i < n; i++)
        if (write(w[i].pipe[1], "s", 1) != 1)
            return 1;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].thread, NULL);
        event_free(w[i].wake);
        grace_server_free(w[i].srv);
        event_base_free(w[i].base);
        close(w[i].pipe[0]);
        close(w[i].pipe[1]);
    }
    free(w);
    return 0;
}
