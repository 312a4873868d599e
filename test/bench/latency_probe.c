/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * latency_probe.c - open-loop GET latency, for upload_latency.sh.
 *
 *   latency_probe PORT PATH RATE CONNS DIR
 *
 * A GET of PATH is due every 1/RATE s; it goes out on the first of CONNS
 * keep-alive connections that is free, and its latency counts from when it
 * was due, not from when it could be sent: a server that stalls for 200 ms
 * is charged for every request due meanwhile (as wrk2 does; a closed loop
 * would count one slow request and wait). The phase is "idle" until the
 * file DIR/loaded exists, "loaded" until DIR/stop exists; then one line per
 * phase: "PHASE p50-ms p99-ms max-ms count late-max-ms", where late-max
 * is the longest the probe itself overslept a wait (it was not scheduled:
 * a loaded machine delays the prober too, and its delay is charged to the
 * server; a late-max near max-ms says the stall was the probe's). Every
 * answer must be a 200 with a Content-Length body; anything else ends the
 * probe (exit 1). With
 * PROBE_SLOW_MS=N, each request slower than N ms is also written to stderr
 * ("slow DUE-MONOTONIC-S MS"), to line up stalls with other traces.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define QUEUE 65536

struct conn {
    int fd;
    int busy, loaded; /* a request out; due in the loaded phase */
    double due;
    char buf[65536];
    size_t len;
};

struct series {
    double *v;
    size_t n, cap;
    double late_max; /* ms the probe overslept a wait, at most */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add(struct series *s, double ms)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        if (!(s->v = realloc(s->v, s->cap * sizeof(*s->v)))) {
            perror("probe");
            exit(1);
        }
    }
    s->v[s->n++] = ms;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, struct series *s)
{
    if (!s->n) {
        printf("%s nan nan nan 0 %.3f\n", name, s->late_max);
        return;
    }
    qsort(s->v, s->n, sizeof(*s->v), cmp);
    printf("%s %.3f %.3f %.3f %zu %.3f\n", name, s->v[s->n / 2],
           s->v[(size_t)(0.99 * (double)s->n) < s->n ? (size_t)(0.99 * (double)s->n) : s->n - 1],
           s->v[s->n - 1], s->n, s->late_max);
}

static int dial(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("probe: connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* A complete response in c->buf? Its length, 0 if not yet; exits on a bad one. */
static size_t complete(struct conn *c)
{
    char *end, *cl;
    size_t head;
    c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = '\0';
    if (!(end = strstr(c->buf, "\r\n\r\n")))
        return 0;
    head = (size_t)(end - c->buf) + 4;
    if (strncmp(c->buf, "HTTP/1.1 200", 12) || !(cl = strcasestr(c->buf, "\r\nContent-Length:"))) {
        fprintf(stderr, "probe: unexpected answer: %.60s\n", c->buf);
        exit(1);
    }
    head += (size_t)strtoul(cl + 17, NULL, 10);
    return c->len >= head ? head : 0;
}

static int exists(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

int main(int argc, char **argv)
{
    static struct conn cs[MAX_CONNS];
    static double queue[QUEUE];
    static char queue_loaded[QUEUE];
    struct series idle = {0}, loaded = {0};
    struct pollfd pfd[MAX_CONNS];
    char req[512];
    size_t qhead = 0, qtail = 0;
    int port, nconn, loaded_phase = 0, reqlen;
    double rate, next, last_check = 0;
    const char *dir, *slow_env = getenv("PROBE_SLOW_MS");
    double slow_ms = slow_env ? atof(slow_env) : 0;

    if (argc != 6) {
        fprintf(stderr, "usage: latency_probe PORT PATH RATE CONNS DIR\n");
        return 2;
    }
    port = atoi(argv[1]);
    rate = atof(argv[3]);
    nconn = atoi(argv[4]);
    dir = argv[5];
    if (nconn < 1 || nconn > MAX_CONNS || rate <= 0)
        return 2;
    reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    for (int i = 0; i < nconn; i++)
        cs[i].fd = dial(port);
    next = now_s();
    for (;;) {
        double t = now_s(), wait;
        if (t - last_check > 0.005) {
            last_check = t;
            if (exists(dir, "stop"))
                break;
            loaded_phase = loaded_phase || exists(dir, "loaded");
        }
        while (next <= t) { /* what is due now joins the queue */
            if ((qtail + 1) % QUEUE == qhead) {
                fprintf(stderr, "probe: %d requests waiting: the server stopped answering\n",
                        QUEUE);
                return 1;
            }
            queue[qtail] = next;
            queue_loaded[qtail] = (char)loaded_phase;
            qtail = (qtail + 1) % QUEUE;
            next += 1.0 / rate;
        }
        for (int i = 0; i < nconn && qhead != qtail; i++) {
            if (cs[i].busy)
                continue;
            if (send(cs[i].fd, req, (size_t)reqlen, MSG_NOSIGNAL) != reqlen) {
                perror("probe: send");
                return 1;
            }
            cs[i].busy = 1;
            cs[i].due = queue[qhead];
            cs[i].loaded = queue_loaded[qhead];
            cs[i].len = 0;
            qhead = (qhead + 1) % QUEUE;
        }
        for (int i = 0; i < nconn; i++) {
            pfd[i].fd = cs[i].busy ? cs[i].fd : -1;
            pfd[i].events = POLLIN;
        }
        wait = next - now_s();
        if (wait < 0)
            wait = 0;
        if (wait > 0.005)
            wait = 0.005;
        {
            struct timespec ts = {0, (long)(wait * 1e9)};
            double before = now_s(), late;
            struct series *ph = loaded_phase ? &loaded : &idle;
            if (ppoll(pfd, (nfds_t)nconn, &ts, NULL) < 0 && errno != EINTR) {
                perror("probe: poll");
                return 1;
            }
            /* returned (by an answer or the timeout) later than the wait:
             * the probe was not running */
            late = (now_s() - before - wait) * 1000;
            if (late > ph->late_max)
                ph->late_max = late;
        }
        for (int i = 0; i < nconn; i++) {
            struct conn *c = &cs[i];
            ssize_t got;
            size_t done;
            if (!c->busy || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
            if (got <= 0) {
                fprintf(stderr, "probe: connection closed\n");
                return 1;
            }
            c->len += (size_t)got;
            if ((done = complete(c))) {
                double ms = (now_s() - c->due) * 1000;
                add(c->loaded ? &loaded : &idle, ms);
                if (slow_ms > 0 && ms > slow_ms)
                    fprintf(stderr, "slow %.4f %.3f\n", c->due, ms);
                c->busy = 0;
                memmove(c->buf, c->buf + done, c->len - done);
                c->len -= done;
            }
        }
    }
    report("idle", &idle);
    report("loaded", &loaded);
    return 0;
}
