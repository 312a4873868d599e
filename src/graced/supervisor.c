/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * supervisor.c - the parent of --workers N: it forks the workers on their
 * rows of listening sockets, forwards SIGHUP, turns stop signals into a
 * graceful stop and then a stop now, restarts a worker that ends early
 * (with a back-off), and tells systemd how many serve.
 */
#include "graced.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A worker that ends before a stop is started again after a delay that
 * doubles, up to --restart-delay-max, while it keeps ending within
 * RESTART_STABLE_MS of its start: a worker that fails at once does not spin. */
#define RESTART_MIN_MS 100
#define RESTART_STABLE_MS 10000

struct slot {
    pid_t pid;          /* 0: not running */
    int up;             /* said it serves (GRACED_SIG_UP), since its start or SIGHUP */
    int64_t started_ms;
    int64_t restart_ms; /* when to start it again; 0: not waiting */
    int64_t delay_ms;   /* the next back-off */
};

/* Fork worker w (0-based) on its row of sockets; -1 if fork failed. The
 * worker starts with the signals it handles still blocked (the
 * supervisor's SIGHUP or SIGTERM, or the death signal, arriving before its
 * handlers exist would kill it: their default action); graced_worker_run
 * lets them in once its handlers are set. */
static pid_t spawn(struct graced *g, struct graced_socks *s, int w, const sigset_t *old)
{
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t mask = *old;
        graced_worker_signals(&mask);
        sigprocmask(SIG_SETMASK, &mask, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the parent */
        graced_notify_forget(); /* the supervisor talks to systemd */
        for (int o = 0; o < g->o.workers; o++)
            if (o != w)
                for (int i = 0; i < s->per_worker; i++)
                    close(s->fd[o][i]);
        g->worker = w + 1;
        g->supervised = 1;
        _exit(graced_worker_run(g, s, w));
    }
    if (pid < 0)
        graced_log(LOG_ERR, "worker %d: fork: %s", w + 1, strerror(errno));
    return pid;
}

static void close_listeners(struct graced *g, struct graced_socks *s)
{
    for (int o = 0; o < g->o.workers; o++)
        for (int i = 0; i < s->per_worker; i++)
            if (s->fd[o][i] >= 0) {
                close(s->fd[o][i]);
                s->fd[o][i] = -1;
            }
}

/* systemd: how many workers serve (READY=1, STATUS=) */
static void notify_workers(const struct graced *g, const struct slot *slot)
{
    int up = 0, running = 0;
    for (int w = 0; w < g->o.workers; w++) {
        running += slot[w].pid > 0;
        up += slot[w].pid > 0 && slot[w].up;
    }
    graced_notify_workers(up, running, g->o.workers);
}

/*
 * The parent of --workers N: starts the workers, forwards SIGHUP (after
 * reopening its own copy of the access log; then it reloads its own copies
 * of --users-file and the certificates: restarted workers inherit all
 * three), turns the first SIGTERM/SIGINT into a graceful stop of every
 * worker and a second into SIGUSR2 ("now"), and restarts a worker that
 * ends while no stop was asked for. It keeps the listening sockets for
 * such restarts until the stop. It tells systemd READY=1 once every worker
 * has said it serves (GRACED_SIG_UP), and keeps the counters of workers
 * that die in /metrics.
 */
int graced_supervise(struct graced *g, struct graced_socks *s)
{
    struct slot slot[GRACED_MAX_WORKERS];
    sigset_t set, old;
    siginfo_t si;
    int alive = 0, status = 0, stops = 0, rc;

    memset(slot, 0, sizeof(slot));
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, GRACED_SIG_UP); /* queued: one per worker, none lost */
    sigprocmask(SIG_BLOCK, &set, &old);
    for (int w = 0; w < g->o.workers; w++) {
        slot[w].delay_ms = RESTART_MIN_MS < g->o.restart_delay_max_ms ? RESTART_MIN_MS
                                                                      : g->o.restart_delay_max_ms;
        if ((slot[w].pid = spawn(g, s, w, &old)) < 0) {
            slot[w].pid = 0;
            stops = 1; /* a start-up failure: stop the ones started */
            break;
        }
        slot[w].started_ms = graced_mono_ms();
        alive++;
    }
    if (stops) {
        close_listeners(g, s);
        for (int w = 0; w < g->o.workers; w++)
            if (slot[w].pid > 0)
                kill(slot[w].pid, SIGTERM);
        status = 1;
    } else {
        graced_announce(s);
    }
    while (alive > 0 || !stops) {
        int64_t next = -1, now = graced_mono_ms();
        struct timespec ts, *tsp = NULL;
        int sig;
        for (int w = 0; w < g->o.workers; w++)
            if (slot[w].restart_ms && (next < 0 || slot[w].restart_ms < next))
                next = slot[w].restart_ms;
        if (next >= 0) {
            int64_t wait = next > now ? next - now : 0;
            ts.tv_sec = wait / 1000;
            ts.tv_nsec = (wait % 1000) * 1000000;
            tsp = &ts;
        }
        sig = tsp ? sigtimedwait(&set, &si, tsp) : sigwaitinfo(&set, &si);
        now = graced_mono_ms();
        if (sig == SIGCHLD) {
            int st;
            pid_t pid;
            while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                int w = 0;
                while (w < g->o.workers && slot[w].pid != pid)
                    w++;
                if (w == g->o.workers)
                    continue; /* not one of ours */
                slot[w].pid = 0;
                slot[w].up = 0;
                alive--;
                graced_metrics_worker_ended(g, w); /* its counters stay in the sums */
                if (stops) {
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        graced_log(LOG_ERR, "worker %d (pid %d) ended abnormally", w + 1,
                                   (int)pid);
                        status = 1;
                    }
                    continue;
                }
                if (now - slot[w].started_ms >= RESTART_STABLE_MS &&
                    slot[w].delay_ms > RESTART_MIN_MS)
                    slot[w].delay_ms = RESTART_MIN_MS;
                slot[w].restart_ms = now + slot[w].delay_ms;
                if (WIFSIGNALED(st))
                    graced_log(LOG_ERR, "worker %d (pid %d) killed by signal %d; restart in %lld ms",
                               w + 1, (int)pid, WTERMSIG(st), (long long)slot[w].delay_ms);
                else
                    graced_log(LOG_ERR, "worker %d (pid %d) exited with status %d; restart in %lld ms",
                               w + 1, (int)pid, WEXITSTATUS(st), (long long)slot[w].delay_ms);
            }
        } else if (sig == GRACED_SIG_UP) {
            /* a word of an earlier generation (a start said before the
             * SIGHUP reached that worker) is not about the last reload */
            for (int w = 0; w < g->o.workers; w++)
                if (slot[w].pid > 0 && slot[w].pid == si.si_pid &&
                    graced_notify_current(si.si_value.sival_int))
                    slot[w].up = 1;
        } else if (sig == SIGHUP) {
            graced_notify_reloading(); /* READY=1 again once all have reloaded */
            if (graced_access_log_reopen() < 0)
                graced_log(LOG_ERR, "cannot reopen %s: %s", g->o.access_log, strerror(errno));
            for (int w = 0; w < g->o.workers; w++)
                if (slot[w].pid > 0) {
                    slot[w].up = 0;
                    kill(slot[w].pid, SIGHUP);
                }
            /* then our copies of the users and the certificates: a worker
             * restarted later (never before this is done: it is forked from
             * this loop) starts from them, and must neither serve the list
             * of the start nor fail on files the others refused. After the
             * signals, so that the workers' reloads are not delayed behind
             * ours (notify.c's generation is already the new one). */
            graced_auth_reload(g);
            if (g->tls && (rc = grace_tls_reload(g->tls)) < 0)
                graced_log(LOG_WARN, "main process: keeping the previous certificates for "
                           "workers restarted later: %s", grace_tls_last_error(g->tls)
                           ? grace_tls_last_error(g->tls) : grace_strerror(rc));
        } else if (sig == SIGTERM || sig == SIGINT) {
            /* the first: graceful, no more restarts, the sockets closed so
             * that new connections are refused, not left waiting; then now */
            int fwd = stops++ ? SIGUSR2 : sig;
            if (stops == 1) {
                graced_notify_stopping();
                close_listeners(g, s);
                for (int w = 0; w < g->o.workers; w++)
                    slot[w].restart_ms = 0;
            }
            for (int w = 0; w < g->o.workers; w++)
                if (slot[w].pid > 0)
                    kill(slot[w].pid, fwd);
        }
        for (int w = 0; w < g->o.workers && !stops; w++) { /* restarts due */
            if (!slot[w].restart_ms || slot[w].restart_ms > now)
                continue;
            slot[w].restart_ms = 0;
            if ((slot[w].pid = spawn(g, s, w, &old)) < 0) {
                slot[w].pid = 0;
                slot[w].restart_ms = now + slot[w].delay_ms;
            } else {
                slot[w].started_ms = now;
                alive++;
                graced_metrics_worker_restarted(g, w);
                graced_log(LOG_INFO, "worker %d restarted (pid %d)", w + 1, (int)slot[w].pid);
            }
            slot[w].delay_ms *= 2;
            if (slot[w].delay_ms > g->o.restart_delay_max_ms)
                slot[w].delay_ms = g->o.restart_delay_max_ms;
        }
        notify_workers(g, slot);
    }
    return status;
}
