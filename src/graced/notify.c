/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * notify.c - tell systemd how graced is doing (Type=notify): the sd_notify(3)
 * protocol, implemented here so no libsystemd is needed. A message is a few
 * "KEY=value" lines in one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or '@' for an abstract name).
 *
 * Only the main process talks to systemd (NotifyAccess=main, the default):
 * the variable is read and removed from the environment at start, and a
 * forked worker forgets the address. With --workers N a worker tells the
 * supervisor instead, with a queued real-time signal (GRACED_SIG_UP): "my
 * listeners are in my loop and my signal handlers are set" after its
 * start, and "done" after a SIGHUP's reload. The supervisor says READY=1
 * once every worker has said so (supervisor.c).
 *
 * Which reload a worker's word is about: the signal carries a generation,
 * which the supervisor counts up at each SIGHUP and keeps in a page shared
 * with its workers (made before they are forked). A worker's start says
 * the generation it was forked in; a reload says the one it read when the
 * SIGHUP came (SIGHUPs sent in a row may reach it as one: it reads the
 * latest). The supervisor counts only words of the current generation: a
 * fresh worker's start, said just before it gets to a SIGHUP that waited
 * for its handlers, does not make READY=1 come before its reload.
 */
#include "graced.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un addr;
static socklen_t addr_len; /* 0: not under systemd, or a worker */
static int ready, reloading, stopping, last_up = -1;
static pid_t main_pid; /* the supervisor, for its workers */
static unsigned gen;   /* the supervisor's reloads; a worker's: the one it serves in */
static _Atomic unsigned *shared_gen; /* the supervisor's, for its workers; NULL: none */

int graced_notify_init(void)
{
    const char *e = getenv("NOTIFY_SOCKET");
    size_t n;
    void *m;
    main_pid = getpid();
    m = mmap(NULL, sizeof(*shared_gen), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared_gen = m == MAP_FAILED ? NULL : m; /* without: every word counts, as before */
    if (!e)
        return 0;
    n = strlen(e);
    /* "vsock:" addresses (systemd 254, VMs) are not handled: said once */
    if (n < 2 || n >= sizeof(addr.sun_path) || (e[0] != '/' && e[0] != '@')) {
        graced_log(LOG_WARN, "NOTIFY_SOCKET=%s: not an absolute path or an @name; "
                             "systemd is not told when graced is ready", e);
        unsetenv("NOTIFY_SOCKET");
        return -1;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, e, n);
    if (e[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract: the length says where it ends */
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));
    unsetenv("NOTIFY_SOCKET"); /* nothing we start should talk for us */
    return 1;
}

void graced_notify_forget(void)
{
    addr_len = 0;
}

int graced_notify(const char *fmt, ...)
{
    char msg[512];
    struct timeval tv = {1, 0};
    va_list ap;
    int n, fd, err = 0;
    if (!addr_len)
        return 0;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return -EMSGSIZE;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        err = errno;
    /* systemd reads at once; the bound only keeps a wedged manager from
     * stalling the event loop that sends this */
    else if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
             sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len) != n)
        err = errno;
    if (fd >= 0)
        close(fd);
    if (err) {
        graced_log(LOG_WARN, "cannot notify systemd (NOTIFY_SOCKET): %s", strerror(err));
        return -err;
    }
    return 1;
}

void graced_notify_up(const struct graced *g)
{
    if (g->supervised) {
        union sigval v = {.sival_int = (int)gen};
        /* never to whoever adopted us (PID 1 takes SIGRTMIN as a command) */
        if (getppid() == main_pid)
            sigqueue(main_pid, GRACED_SIG_UP, v);
    } else if (!stopping) {
        graced_notify("READY=1\nSTATUS=serving\n");
        ready = 1;
        reloading = 0;
    }
}

void graced_notify_workers(int up, int running, int total)
{
    if (stopping)
        return;
    if (!ready) { /* a connection may land on any worker's socket: all of them */
        if (up < total)
            return;
        graced_notify("READY=1\nMAINPID=%d\nSTATUS=%d of %d workers serving\n", (int)getpid(),
                      up, total);
        ready = 1;
    } else if (reloading) { /* every worker running has reloaded */
        if (up < running)
            return;
        graced_notify("READY=1\nSTATUS=%d of %d workers serving\n", up, total);
        reloading = 0;
    } else if (up != last_up) { /* a worker died, or is back */
        graced_notify("STATUS=%d of %d workers serving%s\n", up, total,
                      up < total ? "; restarting the others" : "");
    }
    last_up = up;
}

int graced_notify_current(int value)
{
    return !shared_gen || value == (int)gen;
}

void graced_notify_reloading(void)
{
    if (getpid() == main_pid) { /* the supervisor (or a single process) */
        gen++;
        if (shared_gen)
            atomic_store(shared_gen, gen);
    } else if (shared_gen) { /* a worker: the reload it is about to do */
        gen = atomic_load(shared_gen);
    }
    if (!ready || stopping)
        return; /* the READY=1 still to come covers a reload before it */
    /* MONOTONIC_USEC: when the reload began, as Type=notify-reload asks */
    graced_notify("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu\n",
                  (unsigned long long)graced_mono_us());
    reloading = 1;
}

void graced_notify_stopping(void)
{
    if (stopping)
        return;
    stopping = 1;
    graced_notify("STOPPING=1\nSTATUS=stopping: finishing requests in flight\n");
}
