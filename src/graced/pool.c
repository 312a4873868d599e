/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pool.c - a small pool of threads per worker for work that blocks on the
 * disk (an upload's fsync and rename, write-back, the sweep of stale
 * temporary files), so that the event loop, and every other connection of
 * the worker, never waits for it.
 *
 * A job's work runs on a pool thread; its done callback then runs on the
 * event loop, woken through an eventfd (libevent is not built with thread
 * support here: nothing but the loop thread touches the event_base). The
 * threads start at the first job, at most --sync-threads of them. Jobs
 * touch nothing of the loop's: what the work needs is copied into the job
 * before it is queued, its results are read in done.
 *
 * At the end of a worker, graced_pool_free() waits for every job queued
 * (the work of each runs, then its done callback, from that call): a
 * worker never exits with a file half committed.
 */
#include "graced.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The threads' nice value above the loop's: their work is throughput (the
 * CPU of a flush: block allocation, submitting the pages), the loop's is
 * latency; on a busy core the loop must win. */
#define POOL_NICE 10

/* said once per process: a seccomp filter that denies setpriority (systemd's
 * SystemCallFilter=~@resources) denies it to every thread alike */
static atomic_int nice_warned;

struct graced_pool {
    struct event_base *base;
    int max_threads;
    int nthreads, idle;        /* under mu */
    int queued;                /* under mu: jobs in todo */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct graced_job *todo, *todo_tail; /* under mu, in order */
    struct graced_job *done, *done_tail; /* under mu, in order */
    int quit;                  /* under mu: finish what is queued, then end */
    int efd;                   /* done -> the loop */
    struct event *wake;
    int pending;               /* loop side: queued, done not yet run */
};

static void push(struct graced_job **head, struct graced_job **tail, struct graced_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Under mu: a finished job for the loop. One wake-up per empty->non-empty:
 * the loop takes the whole list each time. */
static void finished(struct graced_pool *p, struct graced_job *j)
{
    int was_empty = !p->done;
    push(&p->done, &p->done_tail, j);
    if (was_empty) {
        uint64_t one = 1;
        (void)!write(p->efd, &one, sizeof(one));
    }
}

static void *worker(void *arg)
{
    struct graced_pool *p = arg;
    /* Linux: a nice value is per thread; raising it needs no privilege */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                    getpriority(PRIO_PROCESS, 0) + POOL_NICE) < 0 &&
        !atomic_exchange(&nice_warned, 1))
        graced_log(LOG_WARN, "helper threads (--sync-threads, password checks) run at the event "
                             "loop's priority: setpriority: %s (under systemd: "
                             "SystemCallFilter=setpriority, see docs/graced.service)",
                   strerror(errno));
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct graced_job *j;
        while (!p->todo && !p->quit) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (!(j = p->todo))
            break; /* quit, and nothing left to do */
        if (!(p->todo = j->next))
            p->todo_tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        j->work(j);
        pthread_mutex_lock(&p->mu);
        finished(p, j);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Run the done callbacks of finished jobs, in the order they finished. */
static void run_done(struct graced_pool *p)
{
    struct graced_job *list, *j;
    uint64_t n;
    (void)!read(p->efd, &n, sizeof(n)); /* first: a job finishing now wakes us again */
    pthread_mutex_lock(&p->mu);
    list = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while ((j = list)) {
        list = j->next;
        p->pending--;
        j->done(j); /* may free j, may queue new jobs */
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    run_done(arg);
}

struct graced_pool *graced_pool_new(struct event_base *base, int threads)
{
    struct graced_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->base = base;
    p->max_threads = threads > 0 ? threads : 1;
    p->threads = calloc((size_t)p->max_threads, sizeof(*p->threads));
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->wake = p->efd >= 0 ? event_new(base, p->efd, EV_READ | EV_PERSIST, wake_cb, p) : NULL;
    if (!p->threads || !p->wake || event_add(p->wake, NULL) < 0) {
        if (p->wake)
            event_free(p->wake);
        if (p->efd >= 0)
            close(p->efd);
        free(p->threads);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

/* Under mu: one more thread if the jobs waiting outnumber the idle threads
 * and there may be more. Signals are blocked there: they are the loop's
 * (libevent's handlers). */
static void grow(struct graced_pool *p)
{
    sigset_t all, old;
    if (p->queued <= p->idle || p->nthreads >= p->max_threads || p->quit)
        return;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
        p->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int graced_pool_run(struct graced_pool *p, struct graced_job *j)
{
    pthread_mutex_lock(&p->mu);
    p->pending++;
    p->queued++;
    grow(p);
    if (p->nthreads == 0) {
        p->queued--;
        /* no thread could be started (or we are ending): the work runs
         * here, its done callback from the loop as always */
        pthread_mutex_unlock(&p->mu);
        j->work(j);
        pthread_mutex_lock(&p->mu);
        finished(p, j);
    } else {
        push(&p->todo, &p->todo_tail, j);
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int graced_pool_pending(const struct graced_pool *p)
{
    return p ? p->pending : 0;
}

void graced_pool_free(struct graced_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0; /* a done callback that queues more: runs it inline */
    while (p->pending > 0)
        run_done(p);
    event_free(p->wake);
    close(p->efd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
