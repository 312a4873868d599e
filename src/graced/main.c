/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main.c - graced: start-up checks, workers, signals and the event loop.
 *
 * Every start-up problem (bad option, unreadable directory, port in use,
 * a certificate that does not load) is one line on stderr and exit status 2.
 * With --workers N the listening sockets are opened first, then N processes
 * each run their own event_base and their own TLS context; the parent
 * forwards SIGTERM/SIGINT/SIGHUP and restarts a worker that ends early.
 */
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int graced_reply(struct grace_request *req, int status, const char *body)
{
    size_t n = body ? strlen(body) : 0;
    if (n)
        grace_response_add_header(req, "Content-Type", "text/plain; charset=utf-8");
    return grace_reply(req, status, body, n);
}

/* ---------------------------------------------------------------- TLS */

/* Every --tls-cert/--tls-key pair, in order, into a new context (the first
 * is the default, the others are chosen by SNI). NULL after one line on
 * stderr naming the file. */
static struct grace_tls *tls_load(const struct graced_opts *o)
{
    struct grace_tls *tls = grace_tls_new();
    if (!tls && errno == ENOTSUP) {
        fprintf(stderr, "graced: --tls-cert: this libgracehttp was built without TLS "
                        "(configure found no OpenSSL 3)\n");
        return NULL;
    }
    if (!tls) {
        fprintf(stderr, "graced: TLS: %s\n", strerror(errno));
        return NULL;
    }
    for (int i = 0; i < o->ncert; i++) {
        const char *files[2] = {o->tls_cert[i], o->tls_key[i]};
        int rc;
        for (int f = 0; f < 2; f++) { /* an unreadable file: say which */
            int fd = open(files[f], O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                fprintf(stderr, "graced: %s %s: %s\n", f ? "--tls-key" : "--tls-cert", files[f],
                        strerror(errno));
                grace_tls_free(tls);
                return NULL;
            }
            close(fd);
        }
        if ((rc = grace_tls_add_cert(tls, files[0], files[1])) < 0) {
            const char *why = grace_tls_last_error(tls);
            fprintf(stderr, "graced: --tls-cert %s --tls-key %s: %s\n", files[0], files[1],
                    why && *why ? why : grace_strerror(rc));
            grace_tls_free(tls);
            return NULL;
        }
    }
    return tls;
}

/* SIGHUP: read the certificates again; on failure the old ones stay. */
static void tls_reload(struct graced *g)
{
    int rc = grace_tls_reload(g->tls);
    if (rc < 0) {
        const char *why = grace_tls_last_error(g->tls);
        graced_log(LOG_ERR, "worker %d: certificates not reloaded, keeping the old ones: %s",
                   g->worker, why && *why ? why : grace_strerror(rc));
    } else {
        graced_log(LOG_INFO, "worker %d: certificates reloaded", g->worker);
    }
}

/* --hsts: on our own responses to requests that came over TLS. */
static void add_hsts(struct grace_request *req, const struct graced *g)
{
    char v[48];
    if (g->o.hsts < 0 || !grace_request_tls_version(req))
        return;
    snprintf(v, sizeof(v), "max-age=%lld", (long long)g->o.hsts);
    grace_response_add_header(req, "Strict-Transport-Security", v);
}

/*
 * --health: 200 while serving, 503 once a stop began, for a load balancer's
 * checks. Before anything that could refuse (a login, the Origin check): a
 * probe never needs credentials, and it reveals nothing but "up". Matched
 * on the decoded path, so no file can shadow it or be uploaded onto it.
 */
static int health(struct grace_request *req, struct graced *g)
{
    const char *m = grace_request_method(req);
    if (!g->o.health_path || strcmp(grace_request_path_decoded(req), g->o.health_path))
        return 0;
    grace_response_add_header(req, "Cache-Control", "no-store");
    if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
        grace_response_add_header(req, "Allow", "GET, HEAD");
        graced_reply(req, 405, "method not allowed\n");
    } else {
        graced_reply(req, g->stopping ? 503 : 200, g->stopping ? "stopping\n" : "ok\n");
    }
    return 1;
}

static void handle(struct grace_request *req, void *arg)
{
    struct graced *g = arg;
    const char *m = grace_request_method(req);
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");

    if (health(req, g))
        return;
    add_hsts(req, g);
    graced_web_headers(req, g); /* Server, nosniff, framing, CORS */

    if (graced_guard(req, g) || graced_web_options(req, g))
        return;
    if (get && g->o.metrics_path && !strcmp(grace_request_path_decoded(req), g->o.metrics_path))
        graced_metrics_serve(req, g);
    else if (get) /* --private: after a login */
        graced_authorize(req, g, 0, graced_serve_file);
    else if ((!strcmp(m, "PUT") || !strcmp(m, "POST") || !strcmp(m, "DELETE")) &&
             g->o.upload_dir && !graced_web_write_origin_ok(req, g))
        graced_reply(req, 403, "a page from another site may not write here\n");
    else if ((!strcmp(m, "PUT") || !strcmp(m, "POST")) && g->o.upload_dir) {
        /* uploads raise the small server-wide body limit for themselves,
         * before the (possibly asynchronous) login check: a handler that
         * returns unanswered gets the library's 413 over its limit */
        grace_request_set_max_body(req, (uint64_t)g->o.max_body);
        if (grace_request_content_length(req) > g->o.max_body)
            return; /* that 413, before any login check, as before */
        if (!strcmp(m, "POST") && graced_is_multipart(req))
            graced_authorize(req, g, 1, graced_form_upload); /* token or user */
        else
            graced_authorize(req, g, 1, graced_upload);
    }
    else if (!strcmp(m, "PUT") || !strcmp(m, "POST"))
        graced_upload(req, g); /* 405: uploads are off */
    else if (!strcmp(m, "DELETE") && g->o.upload_dir)
        graced_authorize(req, g, 1, graced_delete);
    else {
        grace_response_add_header(req, "Allow", g->o.upload_dir
                                                    ? "GET, HEAD, PUT, POST, DELETE, OPTIONS"
                                                    : "GET, HEAD, OPTIONS");
        graced_reply(req, 405, "method not allowed\n");
    }
}

/* ---------------------------------------------------------------- worker */

static void stopped(struct grace_server *srv, void *arg)
{
    struct graced *g = arg;
    event_base_loopexit(g->base, NULL);
}

/* The library's stop: the listen queues served, the listeners closed,
 * idle connections given stop-idle-grace, requests in flight
 * --shutdown-timeout (then 503 to those not yet answered). */
static void begin_stop(struct graced *g)
{
    if (grace_server_stop(g->srv, g->o.shutdown_timeout_ms, stopped, g) == 0)
        graced_log(LOG_INFO, "stopping: finishing requests in flight");
}

/*
 * SIGTERM/SIGINT: a graceful stop; a second one: stop now. A worker of
 * several hears from the supervisor instead: SIGTERM or SIGINT there only
 * ever means graceful, since a signal sent to the whole process group
 * (Ctrl-C) or control group (systemd) reaches it twice, directly and
 * forwarded; "now" comes as SIGUSR2, sent by the supervisor only on a
 * second stop signal of its own. The PROXY listeners' queues are taken
 * first; the server stops once their headers are read (bounded by
 * --proxy-timeout), so that it can still adopt those connections.
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct graced *g = arg;
    if (sig == SIGHUP) {
        graced_notify_reloading(); /* systemd: RELOADING=1, then READY=1 */
        if (graced_access_log_reopen() < 0)
            graced_log(LOG_ERR, "cannot reopen %s: %s", g->o.access_log, strerror(errno));
        if (g->tls)
            tls_reload(g);
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
    graced_notify_stopping(); /* systemd: STOPPING=1 */
    if (!graced_proxy_stop(g, begin_stop))
        begin_stop(g);
}

/* fds[i] speaks TLS if tls[i], and expects a PROXY header if proxy[i] */
static int run_worker(struct graced *g, const int *fds, const int *tls, const int *proxy, int nfds,
                      const struct graced_socks *announce)
{
    struct event *sig[4];
    static const int signals[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2};
    int rc, nsig = g->supervised ? 4 : 3;

    g->base = event_base_new();
    g->srv = g->base ? grace_server_new(g->base, g->o.cfg) : NULL;
    if (!g->srv) {
        fprintf(stderr, "graced: out of memory\n");
        return 1;
    }
    grace_server_set_handler(g->srv, handle, g);
    /* every response, also the library's own 400/408/413/..., once written */
    grace_server_on_response(g->srv, graced_metrics_response, g); /* counts, then logs */
    /* one context per worker: workers > 1 read the certificates here */
    if (g->o.ncert && !g->tls && !(g->tls = tls_load(&g->o)))
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
    if (announce)
        graced_announce(announce);
    graced_metrics_start(g);
    graced_notify_up(g); /* listeners and signal handlers in place */
    graced_log(LOG_DEBUG, "worker %d running", g->worker);
    event_base_dispatch(g->base);
    graced_metrics_stop(g);
    graced_proxy_free(g);
    /* stopped: a stop signal still on its way (the supervisor's copy of
     * one we had directly) must not kill us once the handlers are gone */
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < nsig; i++)
        sigaddset(&set, signals[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < nsig; i++)
        event_free(sig[i]);
    grace_server_free(g->srv);
    graced_auth_stop(g); /* after the server: checks waiting were cancelled with it */
    if (g->tls)
        grace_tls_free(g->tls);
    g->tls = NULL;
    event_base_free(g->base);
    graced_files_cache_free(g);
    return 0;
}

/* ---------------------------------------------------------------- parent */

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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fork worker w (0-based) on its row of sockets; -1 if fork failed. */
static pid_t spawn(struct graced *g, struct graced_socks *s, int w, const sigset_t *old)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the parent */
        graced_notify_forget(); /* the supervisor talks to systemd */
        sigprocmask(SIG_SETMASK, old, NULL);
        for (int o = 0; o < g->o.workers; o++)
            if (o != w)
                for (int i = 0; i < s->per_worker; i++)
                    close(s->fd[o][i]);
        g->worker = w + 1;
        g->supervised = 1;
        _exit(run_worker(g, s->fd[w], s->tls, s->proxy, s->per_worker, NULL));
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
 * reopening its own copy of the access log, which restarted workers
 * inherit), turns the first SIGTERM/SIGINT into a graceful stop of every
 * worker and a second into SIGUSR2 ("now"), and restarts a worker that
 * ends while no stop was asked for. It keeps the listening sockets for
 * such restarts until the stop. It tells systemd READY=1 once every worker
 * has said it serves (GRACED_SIG_UP), and keeps the counters of workers
 * that die in /metrics.
 */
static int supervise(struct graced *g, struct graced_socks *s)
{
    struct slot slot[GRACED_MAX_WORKERS];
    sigset_t set, old;
    siginfo_t si;
    int alive = 0, status = 0, stops = 0;

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
        slot[w].started_ms = now_ms();
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
        int64_t next = -1, now = now_ms();
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
        now = now_ms();
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
            for (int w = 0; w < g->o.workers; w++)
                if (slot[w].pid > 0 && slot[w].pid == si.si_pid)
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

/* ---------------------------------------------------------------- start */

static int open_dir(const char *opt, const char *path, int need_write)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || faccessat(fd, ".", need_write ? R_OK | W_OK | X_OK : R_OK | X_OK, 0) < 0) {
        fprintf(stderr, "graced: %s %s: %s\n", opt, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    static struct graced g;
    static struct graced_socks socks;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (507) */
    /* an upload's buffer (up to 1 MiB) is freed as it reaches the disk;
     * glibc would give that memory back to the kernel each time (trim at
     * 128 KiB) and fault it in again: 2.7x the CPU of a streamed upload */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    rc = graced_parse_options(&g.o, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    graced_log_set_level(g.o.log_level);
    graced_notify_init();
    g.upload_fd = -1;
    if ((g.root_fd = open_dir("--root", g.o.root, 0)) < 0)
        return 2;
    if (!(g.root_real = realpath(g.o.root, NULL))) {
        fprintf(stderr, "graced: --root %s: %s\n", g.o.root, strerror(errno));
        return 2;
    }
    if (g.o.upload_dir && (g.upload_fd = open_dir("--upload-dir", g.o.upload_dir, 1)) < 0)
        return 2;
    if (g.o.token_file && graced_load_token(&g) < 0) {
        fprintf(stderr, "graced: --auth-token-file %s: %s\n", g.o.token_file,
                errno == EINVAL  ? "no token on the first line"
                : errno == EILSEQ ? "the token has a space, control or non-ASCII byte"
                                  : strerror(errno));
        return 2;
    }
    /* the certificates are checked here, once, so that a bad one is a
     * start-up error; with several workers each then loads its own */
    if (g.o.ncert && !(g.tls = tls_load(&g.o)))
        return 2;
    if (graced_auth_load(&g) < 0 || graced_proxy_init(&g) < 0 || graced_metrics_init(&g) < 0)
        return 2;
    graced_web_check_options(&g.o);
    graced_access_log_skip(g.o.health_path);
    if (g.o.access_log && graced_access_log_open(g.o.access_log) < 0) {
        fprintf(stderr, "graced: --access-log %s: %s\n", g.o.access_log, strerror(errno));
        return 2;
    }
    if (g.upload_fd >= 0)
        graced_clean_stale(&g);
    if (graced_open_listeners(&g.o, &socks) < 0)
        return 2;
    if (g.tls && !socks.ntls) {
        graced_log(LOG_WARN, "--tls-cert given, but no TLS listener (--tls-listen)");
        grace_tls_free(g.tls);
        g.tls = NULL;
        g.o.ncert = 0;
    }
    if (g.o.pid_file) {
        FILE *fp = fopen(g.o.pid_file, "we");
        if (!fp || fprintf(fp, "%d\n", (int)getpid()) < 0 || fclose(fp) != 0) {
            fprintf(stderr, "graced: --pid-file %s: %s\n", g.o.pid_file, strerror(errno));
            return 2;
        }
    }
    if (g.o.upload_dir)
        graced_log(LOG_INFO, "uploads into %s%s", g.o.upload_dir,
                   g.token_len ? " (token required)" : "");
    if (g.tls)
        graced_log(LOG_INFO, "TLS with %d certificate(s), default %s", g.o.ncert, g.o.tls_cert[0]);

    if (g.o.workers == 1) {
        g.worker = 1;
        rc = run_worker(&g, socks.fd[0], socks.tls, socks.proxy, socks.per_worker, &socks);
    } else {
        if (g.tls) /* each worker makes its own */
            grace_tls_free(g.tls);
        g.tls = NULL;
        rc = supervise(&g, &socks);
    }
    if (g.o.pid_file)
        unlink(g.o.pid_file);
    graced_access_log_close();
    grace_config_free(g.o.cfg);
    graced_auth_free(&g);
    free(g.root_real);
    free(g.token);
    close(g.root_fd);
    if (g.upload_fd >= 0)
        close(g.upload_fd);
    graced_log(LOG_INFO, "stopped");
    return rc;
}
