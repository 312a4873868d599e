/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sock.c - where graced listens: each --listen and --tls-listen address, or
 * the sockets systemd passed (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES,
 * sd_listen_fds(3) protocol, implemented here so no libsystemd is needed).
 * A socket from systemd is known by its name (FileDescriptorName= in the
 * .socket unit): "https" or "tls" speaks TLS; "proxy" expects a PROXY
 * protocol header, then plain HTTP, and "proxy-https" (or "proxy-tls") a
 * PROXY header, then TLS; any other name, or none, plain HTTP. Under
 * activation the listener options are not used, and a warning says so.
 */
#include "graced.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>

#define SD_LISTEN_FDS_START 3

static int name_is(const char *name, size_t len, const char *what)
{
    return len == strlen(what) && !strncmp(name, what, len);
}

/* What a socket named name (len bytes, from LISTEN_FDNAMES) speaks. */
static void sock_kind(const char *name, size_t len, int *tls, int *proxy)
{
    *proxy = name_is(name, len, "proxy") || name_is(name, len, "proxy-https") ||
             name_is(name, len, "proxy-tls");
    *tls = name_is(name, len, "https") || name_is(name, len, "tls") ||
           name_is(name, len, "proxy-https") || name_is(name, len, "proxy-tls");
}

/* Sockets from systemd, or 0 if not socket-activated; tls[i] and proxy[i]
 * set by their names (LISTEN_FDNAMES: names separated by ':'). */
static int systemd_fds(int *tls, int *proxy, int max)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *end;
    long n;
    if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    n = strtol(fds, &end, 10);
    if (*end || n < 1 || n > 64)
        return 0;
    for (int i = 0; names && *names && i < max; i++) {
        size_t len = strcspn(names, ":");
        sock_kind(names, len, &tls[i], &proxy[i]);
        names += len;
        if (*names == ':')
            names++;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return (int)n;
}

/* A listening socket on sa; SO_REUSEPORT when several workers share it. */
static int open_listener(const struct sockaddr *sa, socklen_t len, int reuseport, int backlog,
                         const char *what)
{
    int one = 1, fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "graced: cannot listen on %s: %s\n", what, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        fprintf(stderr, "graced: cannot listen on %s: %s\n", what, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void print_addr(int fd, int tls)
{
    const char *scheme = tls ? "https" : "http";
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        printf("graced: listening on %s://%s:%d/\n", scheme, host, port);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        printf("graced: listening on %s://[%s]:%d/\n", scheme, host, port);
    }
}

/* Open the sockets of one ADDR:PORT for every worker; tls and proxy mark
 * them. */
static int listen_on(const struct graced_opts *o, struct graced_socks *s, const char *addr,
                     int tls, int proxy)
{
    struct addrinfo hints = {0}, *res, *ai;
    char host[256], port[16];
    int p, rc;
    graced_parse_hostport(addr, host, sizeof(host), &p);
    snprintf(port, sizeof(port), "%d", p);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "graced: cannot listen on %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        /* worker 0's socket fixes the port (also for port 0); the
         * others bind the same address with SO_REUSEPORT */
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd;
        if (s->per_worker == GRACED_MAX_SOCKS) { /* a row of fd[][] is full */
            fprintf(stderr, "graced: cannot listen on %s: more than %d addresses in all\n", addr,
                    GRACED_MAX_SOCKS);
            freeaddrinfo(res);
            return -1;
        }
        fd = open_listener(ai->ai_addr, ai->ai_addrlen, o->workers > 1, o->backlog, addr);
        if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
            freeaddrinfo(res);
            return -1;
        }
        s->fd[0][s->per_worker] = fd;
        for (int w = 1; w < o->workers; w++) {
            int wfd = open_listener((struct sockaddr *)&ss, len, 1, o->backlog, addr);
            if (wfd < 0) {
                freeaddrinfo(res);
                return -1;
            }
            s->fd[w][s->per_worker] = wfd;
        }
        s->proxy[s->per_worker] = proxy;
        s->tls[s->per_worker++] = tls;
        s->ntls += tls;
        if (p == 0)
            break; /* an ephemeral port differs per address: take one */
    }
    freeaddrinfo(res);
    return 0;
}

/* Under socket activation: one line naming the listener options given
 * (not the default 127.0.0.1:8080), which are not used. */
static void warn_ignored(const struct graced_opts *o, int n)
{
    static const char *const names[4] = {"--listen", "--tls-listen", "--proxy-listen",
                                         "--proxy-tls-listen"};
    const char *const *lists[4] = {o->listen, o->tls_listen, o->proxy_listen, o->proxy_tls_listen};
    const int counts[4] = {o->listen_default ? 0 : o->nlisten, o->ntls_listen, o->nproxy_listen,
                           o->nproxy_tls_listen};
    char line[768];
    size_t len = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < counts[k] && len < sizeof(line); i++)
            len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s %s", len ? ", " : "",
                                    names[k], lists[k][i]);
    if (len)
        graced_log(LOG_WARN, "socket activation: systemd passed %d socket(s); ignored: %s", n,
                   line);
}

int graced_open_listeners(const struct graced_opts *o, struct graced_socks *s)
{
    int n, nproxy = 0;

    memset(s, 0, sizeof(*s));
    n = systemd_fds(s->tls, s->proxy, GRACED_MAX_SOCKS);
    if (n > 0) { /* every worker accepts on systemd's sockets */
        if (n > GRACED_MAX_SOCKS) {
            fprintf(stderr, "graced: systemd passed %d sockets, at most %d are taken\n", n,
                    GRACED_MAX_SOCKS);
            return -1;
        }
        s->per_worker = n;
        for (int i = 0; i < n; i++) {
            s->ntls += s->tls[i];
            nproxy += s->proxy[i];
        }
        if (s->ntls && !o->ncert) {
            fprintf(stderr, "graced: systemd passed a TLS socket (named https, tls or "
                            "proxy-https): --tls-cert FILE and --tls-key FILE needed\n");
            return -1;
        }
        if (nproxy && !o->nproxy_from) {
            fprintf(stderr, "graced: systemd passed a PROXY socket (named proxy or proxy-https): "
                            "--proxy-from CIDR needed, the load balancers whose PROXY header "
                            "is believed\n");
            return -1;
        }
        warn_ignored(o, n);
        for (int w = 0; w < o->workers; w++)
            for (int i = 0; i < n; i++)
                s->fd[w][i] = w ? dup(SD_LISTEN_FDS_START + i) : SD_LISTEN_FDS_START + i;
        s->systemd = 1;
        return 0;
    }
    for (int i = 0; i < o->nlisten; i++)
        if (listen_on(o, s, o->listen[i], 0, 0) < 0)
            return -1;
    for (int i = 0; i < o->ntls_listen; i++)
        if (listen_on(o, s, o->tls_listen[i], 1, 0) < 0)
            return -1;
    for (int i = 0; i < o->nproxy_listen; i++)
        if (listen_on(o, s, o->proxy_listen[i], 0, 1) < 0)
            return -1;
    for (int i = 0; i < o->nproxy_tls_listen; i++)
        if (listen_on(o, s, o->proxy_tls_listen[i], 1, 1) < 0)
            return -1;
    return 0;
}

/* Announce the addresses; done once signals are handled, as a readiness
 * line that scripts can wait for. */
void graced_announce(const struct graced_socks *s)
{
    int nproxy = 0;
    for (int i = 0; i < s->per_worker; i++)
        nproxy += s->proxy[i];
    if (s->systemd && (s->ntls || nproxy))
        printf("graced: listening on %d socket(s) from systemd, %d of them TLS, %d PROXY\n",
               s->per_worker, s->ntls, nproxy);
    else if (s->systemd)
        printf("graced: listening on %d socket(s) from systemd\n", s->per_worker);
    else
        for (int i = 0; i < s->per_worker; i++)
            print_addr(s->fd[0][i], s->tls[i]);
    fflush(stdout);
}
