/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * metrics.c - what monitors read: /metrics in the Prometheus text format
 * (version 0.0.4), counting every worker, whichever one answers the
 * scrape; and --health, 200 while serving, 503 once a stop began.
 *
 * An anonymous MAP_SHARED mapping is made before the workers are forked, so
 * they all see it: graced's own counters (responses by method and status,
 * uploads) are added to it with atomic operations, and each worker copies
 * its library counters (grace_server_counter) into its own slot after each
 * response and once a second, which the scrape then sums. Only addresses in
 * --metrics-allow (default: loopback) may read it; others get 403.
 *
 * The mapping lives as long as the supervisor, so a worker that dies takes
 * no count with it: Prometheus counters must never go down. A worker
 * started again in the same slot adds its library counters to what the
 * slot held when it started (each slot only ever grows), and the
 * supervisor zeroes the dead worker's gauges (connections open, lingering)
 * at once. Published values lag the worker by up to a second, so a kill -9
 * loses at most that second of its library counts, never what was shown.
 */
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define M_STATUS 600
enum { M_GET, M_HEAD, M_PUT, M_POST, M_OPTIONS, M_DELETE, M_OTHER, M_NONE, M__METHODS };
static const char *const method_names[M__METHODS] = {"GET",    "HEAD",  "PUT",  "POST",
                                                     "OPTIONS", "DELETE", "other", "none"};

struct graced_metrics {
    uint64_t responses[M__METHODS][M_STATUS];
    uint64_t upload_files, upload_bytes;
    uint64_t resumable[GRACED_RES__COUNT];
    uint64_t worker_responses[GRACED_MAX_WORKERS];
    uint64_t worker_restarts[GRACED_MAX_WORKERS];
    uint64_t lib[GRACED_MAX_WORKERS][GRACE_CNT__COUNT];
    int64_t start_time; /* the main process's, in seconds since the epoch */
};

static struct event *publish_ev; /* this worker's once-a-second copy */
/* what this worker's slot held when it started: the counters of the
 * workers that ran in the slot before, which this one adds to */
static uint64_t base[GRACE_CNT__COUNT];
static int based;
static struct graced_cidr allow[GRACED_MAX_LISTEN];
static int nallow;

static void add(uint64_t *c, uint64_t v)
{
    __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

int graced_metrics_init(struct graced *g)
{
    void *m;
    if (!g->o.metrics_path)
        return 0;
    nallow = 0;
    if (!g->o.nmetrics_allow) {
        graced_cidr_parse("127.0.0.0/8", &allow[nallow++]);
        graced_cidr_parse("::1", &allow[nallow++]);
    }
    for (int i = 0; i < g->o.nmetrics_allow; i++)
        if (graced_cidr_parse(g->o.metrics_allow[i], &allow[nallow++]) < 0) {
            fprintf(stderr, "graced: --metrics-allow %s: expected ADDR or ADDR/BITS\n",
                    g->o.metrics_allow[i]);
            return -1;
        }
    m = mmap(NULL, sizeof(struct graced_metrics), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "graced: --metrics: shared memory: %s\n", strerror(errno));
        return -1;
    }
    g->metrics = m; /* zeroed by the kernel */
    g->metrics->start_time = (int64_t)time(NULL);
    return 0;
}

static int is_gauge(int c)
{
    return c == GRACE_CNT_CONN_ACTIVE || c == GRACE_CNT_LINGERING;
}

void graced_metrics_publish(struct graced *g)
{
    uint64_t *slot;
    if (!g->metrics || !g->srv || g->worker < 1 || !based)
        return;
    slot = g->metrics->lib[g->worker - 1];
    for (int i = 0; i < GRACE_CNT__COUNT; i++)
        __atomic_store_n(&slot[i], (is_gauge(i) ? 0 : base[i]) + grace_server_counter(g->srv, i),
                         __ATOMIC_RELAXED);
}

static void publish_cb(evutil_socket_t fd, short what, void *arg)
{
    graced_metrics_publish(arg);
}

void graced_metrics_start(struct graced *g)
{
    struct timeval tv = {1, 0};
    if (!g->metrics || publish_ev)
        return;
    for (int i = 0; i < GRACE_CNT__COUNT && g->worker >= 1; i++)
        base[i] = get(&g->metrics->lib[g->worker - 1][i]);
    based = 1;
    publish_ev = event_new(g->base, -1, EV_PERSIST, publish_cb, g);
    if (publish_ev)
        event_add(publish_ev, &tv);
}

void graced_metrics_stop(struct graced *g)
{
    if (publish_ev)
        event_free(publish_ev);
    publish_ev = NULL;
}

static int method_index(const char *m)
{
    for (int i = 0; i < M_OTHER; i++)
        if (!strcmp(m, method_names[i]))
            return i;
    return M_OTHER;
}

/* Every response, the library's own too; then the access log. */
void graced_metrics_response(const struct grace_response_info *ri, void *arg)
{
    struct graced *g = arg;
    if (g->metrics) {
        const struct grace_request *req = grace_response_info_request(ri);
        int st = grace_response_info_status(ri);
        int m = req ? method_index(grace_request_method(req)) : M_NONE;
        if (st >= 100 && st < M_STATUS)
            add(&g->metrics->responses[m][st], 1);
        if (g->worker >= 1)
            add(&g->metrics->worker_responses[g->worker - 1], 1);
        graced_metrics_publish(g);
    }
    graced_access(ri, NULL);
}

void graced_metrics_worker_ended(struct graced *g, int w)
{
    if (!g->metrics)
        return;
    for (int i = 0; i < GRACE_CNT__COUNT; i++)
        if (is_gauge(i)) /* its connections are gone with it */
            __atomic_store_n(&g->metrics->lib[w][i], 0, __ATOMIC_RELAXED);
}

void graced_metrics_worker_restarted(struct graced *g, int w)
{
    if (g->metrics)
        add(&g->metrics->worker_restarts[w], 1);
}

void graced_metrics_upload(struct graced *g, int64_t bytes)
{
    if (!g->metrics)
        return;
    add(&g->metrics->upload_files, 1);
    add(&g->metrics->upload_bytes, (uint64_t)bytes);
}

void graced_metrics_resumable(struct graced *g, enum graced_res_metric m, int64_t n)
{
    if (!g->metrics || m < 0 || m >= GRACED_RES__COUNT || n < 0)
        return;
    if (m == GRACED_RES_UNFINISHED || m == GRACED_RES_HELD)
        __atomic_store_n(&g->metrics->resumable[m], (uint64_t)n, __ATOMIC_RELAXED);
    else if (n)
        add(&g->metrics->resumable[m], (uint64_t)n);
}

/* resumable uploads: the name, the type and the help of each */
static const struct {
    const char *name, *type, *help;
} res_names[GRACED_RES__COUNT] = {
    {"graced_resumable_created_total", "counter", "Resumable uploads (tus, IETF) created."},
    {"graced_resumable_completed_total", "counter",
     "Resumable uploads completed (stored under their name)."},
    {"graced_resumable_terminated_total", "counter",
     "Unfinished resumable uploads cancelled by their client (DELETE)."},
    {"graced_resumable_expired_total", "counter",
     "Unfinished resumable uploads removed by the sweep after --upload-expiry."},
    {"graced_resumable_bytes_total", "counter", "Bytes appended to resumable uploads."},
    {"graced_resumable_unfinished", "gauge",
     "Unfinished resumable uploads on disk, as of the last sweep (worker 1, every tenth of "
     "--upload-expiry, at most a minute)."},
    {"graced_resumable_held_bytes", "gauge",
     "Disk held by unfinished resumable uploads, as of the last sweep."},
};


void graced_metrics_serve(struct grace_request *req, struct graced *g)
{
    struct graced_metrics *m = g->metrics;
    struct evbuffer *out;

    if (!m || !graced_cidr_match(allow, nallow, grace_request_peer(req, NULL))) {
        graced_reply(req, 403, "forbidden\n");
        return;
    }
    if (!(out = evbuffer_new())) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    graced_metrics_publish(g);
    evbuffer_add_printf(out, "# HELP graced_http_responses_total HTTP responses sent, by request "
                             "method (none: no request could be parsed) and status code.\n"
                             "# TYPE graced_http_responses_total counter\n");
    for (int i = 0; i < M__METHODS; i++)
        for (int s = 100; s < M_STATUS; s++) {
            uint64_t v = get(&m->responses[i][s]);
            if (v)
                evbuffer_add_printf(out, "graced_http_responses_total{method=\"%s\",code=\"%d\"} "
                                         "%llu\n", method_names[i], s, (unsigned long long)v);
        }
    evbuffer_add_printf(out, "# HELP graced_worker_responses_total HTTP responses sent by each "
                             "worker process.\n"
                             "# TYPE graced_worker_responses_total counter\n");
    for (int w = 0; w < g->o.workers; w++)
        evbuffer_add_printf(out, "graced_worker_responses_total{worker=\"%d\"} %llu\n", w + 1,
                            (unsigned long long)get(&m->worker_responses[w]));
    evbuffer_add_printf(out, "# HELP graced_worker_restarts_total Times a worker process was "
                             "started again after it ended without a stop.\n"
                             "# TYPE graced_worker_restarts_total counter\n");
    for (int w = 0; w < g->o.workers; w++)
        evbuffer_add_printf(out, "graced_worker_restarts_total{worker=\"%d\"} %llu\n", w + 1,
                            (unsigned long long)get(&m->worker_restarts[w]));
    evbuffer_add_printf(out, "# HELP process_start_time_seconds Start time of graced's main "
                             "process since the epoch in seconds.\n"
                             "# TYPE process_start_time_seconds gauge\n"
                             "process_start_time_seconds %lld\n", (long long)m->start_time);
    evbuffer_add_printf(out, "# HELP graced_upload_files_total Uploads stored.\n"
                             "# TYPE graced_upload_files_total counter\n"
                             "graced_upload_files_total %llu\n"
                             "# HELP graced_upload_bytes_total Bytes of uploads stored.\n"
                             "# TYPE graced_upload_bytes_total counter\n"
                             "graced_upload_bytes_total %llu\n"
                             "# HELP graced_workers Worker processes.\n"
                             "# TYPE graced_workers gauge\n"
                             "graced_workers %d\n",
                        (unsigned long long)get(&m->upload_files),
                        (unsigned long long)get(&m->upload_bytes), g->o.workers);
    for (int i = 0; i < GRACED_RES__COUNT; i++)
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", res_names[i].name,
                            res_names[i].help, res_names[i].name, res_names[i].type,
                            res_names[i].name, (unsigned long long)get(&m->resumable[i]));
    for (int c = 0; c < GRACE_CNT__COUNT; c++) {
        const char *n = grace_counter_name(c);
        uint64_t sum = 0;
        for (int w = 0; w < g->o.workers; w++)
            sum += get(&m->lib[w][c]);
        evbuffer_add_printf(out,
                            "# HELP graced_%s%s libgracehttp counter %s, summed over workers "
                            "(docs/api.md).\n# TYPE graced_%s%s %s\ngraced_%s%s %llu\n",
                            n, is_gauge(c) ? "" : "_total", n, n, is_gauge(c) ? "" : "_total",
                            is_gauge(c) ? "gauge" : "counter", n, is_gauge(c) ? "" : "_total",
                            (unsigned long long)sum);
    }
    grace_response_add_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    grace_response_add_header(req, "Cache-Control", "no-store");
    grace_reply_buffer(req, 200, out);
    evbuffer_free(out);
}

/* --health, for a load balancer's checks: "stopping" as soon as a stop
 * began, while the requests in flight are still being served. */
void graced_health_serve(struct grace_request *req, struct graced *g)
{
    graced_reply(req, g->stopping ? 503 : 200, g->stopping ? "stopping\n" : "ok\n");
}
