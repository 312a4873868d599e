/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lossy_link.c - a lossy, slow path between two network namespaces, for
 * tests on kernels without sch_netem.
 *
 * One TUN device ("lossy0") is created in each namespace; every IP packet
 * one side sends is read here, dropped with probability --loss, or held
 * for --delay ms and written to the other side. A constant delay keeps the
 * order, so each direction is a FIFO ring. The random numbers come from a
 * seeded xorshift generator (--seed), so the drop pattern is the same from
 * run to run (which packets meet it still depends on timing).
 *
 *   lossy_link --ns-a /run/netns/A --ns-b /run/netns/B [--delay MS]
 *              [--loss PERCENT] [--seed N] [--queue PACKETS]
 *
 * Prints "ready" once both devices exist (the caller then gives them
 * addresses), runs until SIGTERM/SIGINT or its parent's death, and prints
 * one line of counts per direction on stderr at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define PKT_MAX 2048 /* above the devices' MTU (1500) */

struct pkt {
    int64_t due_ns;
    uint16_t len;
    unsigned char data[PKT_MAX];
};

/* One direction: packets read from `from`, written to `to` when due. */
struct dir {
    int from, to;
    struct pkt *ring;
    size_t cap, head, n;
    uint64_t in, out, lost, full, werr;
};

static volatile sig_atomic_t done;
static uint64_t rng;
static uint32_t loss_ppm;

static void on_signal(int sig)
{
    (void)sig;
    done = 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A TUN device named "lossy0" inside the namespace at path; -1 on error. */
static int tun_in(const char *ns_path)
{
    struct ifreq ifr;
    int ns = open(ns_path, O_RDONLY | O_CLOEXEC), fd;

    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
        fprintf(stderr, "lossy_link: %s: %s\n", ns_path, strerror(errno));
        return -1;
    }
    close(ns);
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "lossy_link: /dev/net/tun: %s\n", strerror(errno));
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lossy0");
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "lossy_link: TUNSETIFF in %s: %s\n", ns_path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Read every packet waiting on d->from: drop or queue it. */
static void take(struct dir *d, int64_t delay_ns)
{
    for (;;) {
        struct pkt *p = &d->ring[(d->head + d->n) % d->cap];
        unsigned char scratch[PKT_MAX];
        int room = d->n < d->cap;
        ssize_t r = read(d->from, room ? p->data : scratch, PKT_MAX);
        if (r <= 0)
            return; /* EAGAIN, or the device is gone (done follows) */
        d->in++;
        if ((uint32_t)(xorshift() % 1000000) < loss_ppm) {
            d->lost++;
            continue;
        }
        if (!room) { /* a router's full queue: tail drop */
            d->full++;
            continue;
        }
        p->len = (uint16_t)r;
        p->due_ns = now_ns() + delay_ns;
        d->n++;
    }
}

/* Write the packets that are due; the time until the next one (ns), or -1. */
static int64_t give(struct dir *d, int64_t now)
{
    while (d->n) {
        struct pkt *p = &d->ring[d->head];
        if (p->due_ns > now)
            return p->due_ns - now;
        if (write(d->to, p->data, p->len) != (ssize_t)p->len)
            d->werr++;
        else
            d->out++;
        d->head = (d->head + 1) % d->cap;
        d->n--;
    }
    return -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: lossy_link --ns-a PATH --ns-b PATH [--delay MS] [--loss PERCENT]"
                    " [--seed N] [--queue PACKETS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ns_a = NULL, *ns_b = NULL;
    double delay_ms = 25, loss = 1;
    size_t queue = 4096;
    struct dir d[2];
    struct sigaction sa;
    sigset_t block, open_mask;
    int a, b;

    rng = 0x9e3779b97f4a7c15u;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(argv[i], "--ns-a"))
            ns_a = v;
        else if (!strcmp(argv[i], "--ns-b"))
            ns_b = v;
        else if (!strcmp(argv[i], "--delay"))
            delay_ms = atof(v);
        else if (!strcmp(argv[i], "--loss"))
            loss = atof(v);
        else if (!strcmp(argv[i], "--seed"))
            rng = strtoull(v, NULL, 0) * 2654435761u + 1; /* never 0 */
        else if (!strcmp(argv[i], "--queue"))
            queue = strtoul(v, NULL, 0);
        else
            usage();
        i++;
    }
    if (!ns_a || !ns_b || delay_ms < 0 || loss < 0 || loss > 100 || queue < 1)
        usage();
    loss_ppm = (uint32_t)(loss * 10000 + 0.5);

    /* never outlive the test that started us */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        return 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* the signals are taken only inside ppoll(): none is lost before it */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &open_mask);

    if ((a = tun_in(ns_a)) < 0 || (b = tun_in(ns_b)) < 0)
        return 1;
    memset(d, 0, sizeof(d));
    d[0].from = a, d[0].to = b;
    d[1].from = b, d[1].to = a;
    for (int i = 0; i < 2; i++) {
        d[i].cap = queue;
        d[i].ring = malloc(queue * sizeof(struct pkt));
        if (!d[i].ring) {
            fprintf(stderr, "lossy_link: out of memory\n");
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);

    while (!done) {
        struct pollfd pf[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        int64_t now = now_ns(), wait = -1;
        for (int i = 0; i < 2; i++) {
            int64_t w = give(&d[i], now);
            if (w >= 0 && (wait < 0 || w < wait))
                wait = w;
        }
        struct timespec ts = {wait / 1000000000, wait % 1000000000};
        if (ppoll(pf, 2, wait < 0 ? NULL : &ts, &open_mask) < 0 && errno != EINTR)
            break;
        if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL) ||
            pf[1].revents & (POLLERR | POLLHUP | POLLNVAL))
            break;
        if (pf[0].revents & POLLIN)
            take(&d[0], (int64_t)(delay_ms * 1e6));
        if (pf[1].revents & POLLIN)
            take(&d[1], (int64_t)(delay_ms * 1e6));
    }
    for (int i = 0; i < 2; i++)
        fprintf(stderr, "lossy_link: %s: %llu in, %llu out, %llu lost, %llu queue full, "
                        "%llu write errors\n", i ? "b->a" : "a->b",
                (unsigned long long)d[i].in, (unsigned long long)d[i].out,
                (unsigned long long)d[i].lost, (unsigned long long)d[i].full,
                (unsigned long long)d[i].werr);
    free(d[0].ring);
    free(d[1].ring);
    close(a);
    close(b);
    return 0;
}
