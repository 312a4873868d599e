/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proxy.c - listeners behind a load balancer that speaks the PROXY protocol
 * (HAProxy's proxy-protocol.txt, v1 text and v2 binary).
 *
 * graced accepts on a --proxy-listen socket itself, closes connections from
 * addresses not in --proxy-from at once, reads the PROXY header (bounded in
 * size, within --proxy-timeout; anything malformed closes the connection),
 * and hands the connection to the library with the client's address from
 * the header (grace_server_adopt_conn), so the access log, the login
 * failure bound and --metrics-allow see the real client. The header is read
 * without reading past it: the HTTP bytes behind it stay in the socket.
 *
 * A refused peer is logged at warn, but a flood of them must not flood the
 * log: the first is logged, the others are counted and summed up in one
 * line at the end of each --warn-interval (per worker).
 */
#define _GNU_SOURCE /* accept4 */
#include "graced.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#define PROXY_V1_MAX 107 /* the protocol's own bound, CRLF included */
#define PROXY_V2_MAX 536 /* 16 + the largest address block we accept */

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

struct pending {
    struct graced_proxy *p;
    int fd;
    struct event *ev;
    struct grace_tls *tls;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned char buf[PROXY_V2_MAX];
    size_t have;
    TAILQ_ENTRY(pending) link;
};

struct plistener {
    struct graced_proxy *p;
    struct evconnlistener *lev;
    struct grace_tls *tls;
};

struct graced_proxy {
    struct graced *g;
    struct plistener l[GRACED_MAX_SOCKS];
    int nl;
    struct graced_cidr from[GRACED_MAX_LISTEN];
    int nfrom;
    TAILQ_HEAD(, pending) pending;
    int npending;
    /* refused peers (not in --proxy-from) not yet logged one by one */
    struct event *warn_ev;  /* the end of the interval: the summary line */
    int64_t warn_next_ms;   /* before this, a refusal is only counted */
    int64_t warn_since_ms;  /* the last line logged */
    uint64_t warn_quiet;    /* refusals counted since */
    char warn_last[64];     /* the last of them */
    void (*settled)(struct graced *g); /* graced_proxy_stop(): no header left to read */
};

/* ---------------------------------------------------------------- header */

static void pending_free(struct pending *pd, int close_fd)
{
    TAILQ_REMOVE(&pd->p->pending, pd, link);
    pd->p->npending--;
    if (pd->ev)
        event_free(pd->ev);
    if (close_fd)
        close(pd->fd);
    free(pd);
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
    snprintf(out, n, "?");
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)n);
}

/* After a stop began, the last header read (or dropped) lets it go on. */
static void check_settled(struct graced_proxy *p)
{
    void (*cb)(struct graced *) = p->settled;
    if (cb && !p->npending) {
        p->settled = NULL;
        cb(p->g);
    }
}

static void drop(struct pending *pd, const char *why)
{
    struct graced_proxy *p = pd->p;
    char a[64];
    peer_text(&pd->peer, a, sizeof(a));
    graced_log(LOG_INFO, "PROXY header from %s: %s; connection closed", a, why);
    pending_free(pd, 1);
    check_settled(p);
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n"; 0, or -1 if malformed */
static int parse_v1(struct pending *pd, char *line)
{
    char *tok[6], *save = NULL, *t;
    int n = 0;
    long port;
    char *end;
    for (t = strtok_r(line, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
        tok[n++] = t;
    if (n < 2 || strcmp(tok[0], "PROXY"))
        return -1;
    if (!strcmp(tok[1], "UNKNOWN"))
        return 0; /* the balancer's own connection: keep its address */
    if (n != 6 || strtok_r(NULL, " ", &save))
        return -1;
    errno = 0;
    port = strtol(tok[4], &end, 10);
    if (errno || *end || end == tok[4] || port < 0 || port > 65535 ||
        (tok[4][0] == '0' && tok[4][1]))
        return -1;
    if (!strcmp(tok[1], "TCP4")) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&pd->peer;
        struct in_addr dst;
        memset(&pd->peer, 0, sizeof(pd->peer));
        if (inet_pton(AF_INET, tok[2], &sin->sin_addr) != 1 || inet_pton(AF_INET, tok[3], &dst) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        pd->peer_len = sizeof(*sin);
    } else if (!strcmp(tok[1], "TCP6")) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pd->peer;
        struct in6_addr dst;
        memset(&pd->peer, 0, sizeof(pd->peer));
        if (inet_pton(AF_INET6, tok[2], &sin6->sin6_addr) != 1 ||
            inet_pton(AF_INET6, tok[3], &dst) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        pd->peer_len = sizeof(*sin6);
    } else {
        return -1;
    }
    port = strtol(tok[5], &end, 10);
    return *end || end == tok[5] || port < 0 || port > 65535 ? -1 : 0;
}

/* The complete v2 header in pd->buf; 0, or -1 if malformed. */
static int parse_v2(struct pending *pd, size_t len)
{
    const unsigned char *b = pd->buf, *a = b + 16;
    int cmd = b[12] & 0x0f;
    if ((b[12] >> 4) != 2 || cmd > 1)
        return -1;
    if (cmd == 0) /* LOCAL: the balancer's own health check */
        return 0;
    if (b[13] == 0x11) { /* TCP over IPv4 */
        struct sockaddr_in *sin = (struct sockaddr_in *)&pd->peer;
        if (len < 12)
            return -1;
        memset(&pd->peer, 0, sizeof(pd->peer));
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        memcpy(&sin->sin_port, a + 8, 2);
        pd->peer_len = sizeof(*sin);
    } else if (b[13] == 0x21) { /* TCP over IPv6 */
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pd->peer;
        if (len < 36)
            return -1;
        memset(&pd->peer, 0, sizeof(pd->peer));
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
        memcpy(&sin6->sin6_port, a + 32, 2);
        pd->peer_len = sizeof(*sin6);
    }
    /* UNSPEC, UDP or unix sockets: keep the balancer's address */
    return 0;
}

static void handed(struct pending *pd)
{
    struct graced *g = pd->p->g;
    int fd = pd->fd;
    struct sockaddr_storage peer = pd->peer;
    socklen_t len = pd->peer_len;
    struct grace_tls *tls = pd->tls;
    struct graced_proxy *p = pd->p;
    char a[64];
    pending_free(pd, 0);
    /* during a stop the server still adopts it (its answer says
     * Connection: close); once the server is done, it closes it */
    if (grace_server_adopt_conn(g->srv, fd, (struct sockaddr *)&peer, len, tls) == -ESHUTDOWN) {
        peer_text(&peer, a, sizeof(a));
        graced_log(LOG_INFO, "PROXY connection from %s: header complete after the server had "
                             "stopped; closed", a);
    }
    check_settled(p);
}

/* recv into the header buffer; 0, or -1 after dropping the connection */
static int take(struct pending *pd, size_t n)
{
    ssize_t r = recv(pd->fd, pd->buf + pd->have, n, 0);
    if (r > 0) {
        pd->have += (size_t)r;
        return 0;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    drop(pd, r ? strerror(errno) : "connection closed");
    return -1;
}

static size_t v2_len(const struct pending *pd)
{
    return 16 + (((size_t)pd->buf[14] << 8) | pd->buf[15]);
}

/*
 * Read what is surely header, never more: the first 5 bytes tell v1
 * ("PROXY") from v2; a v2 header says its length after 16 bytes; a v1
 * header ends at the first LF, peeked for first. Bytes are consumed as they
 * come, so a header sent in pieces does not spin the loop.
 */
static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pending *pd = arg;
    unsigned char *b = pd->buf;

    if (what & EV_TIMEOUT) {
        drop(pd, "not complete within --proxy-timeout");
        return;
    }
    if (pd->have < 5) {
        if (take(pd, 5 - pd->have) < 0)
            return;
        if (memcmp(b, "PROXY", pd->have) && memcmp(b, v2sig, pd->have)) {
            drop(pd, "not a PROXY protocol header");
            return;
        }
        if (pd->have < 5)
            return;
    }
    if (!memcmp(b, "PROXY", 5)) {
        unsigned char peek[PROXY_V1_MAX], *lf;
        ssize_t n = recv(fd, peek, PROXY_V1_MAX - pd->have, MSG_PEEK);
        size_t upto;
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            drop(pd, n ? strerror(errno) : "connection closed");
            return;
        }
        lf = memchr(peek, '\n', (size_t)n);
        upto = lf ? (size_t)(lf - peek) + 1 : (size_t)n;
        if (recv(fd, b + pd->have, upto, 0) != (ssize_t)upto) {
            drop(pd, "read failed");
            return;
        }
        pd->have += upto;
        if (!lf) {
            if (pd->have >= PROXY_V1_MAX)
                drop(pd, "v1 header longer than 107 bytes");
            return;
        }
        if (b[pd->have - 2] != '\r' || memchr(b, '\0', pd->have)) {
            drop(pd, "malformed v1 header");
            return;
        }
        b[pd->have - 2] = '\0';
        if (parse_v1(pd, (char *)b) < 0)
            drop(pd, "malformed v1 header");
        else
            handed(pd);
        return;
    }
    /* v2 */
    if (pd->have >= 16 && v2_len(pd) > sizeof(pd->buf)) {
        drop(pd, "v2 address block too large");
        return;
    }
    if (take(pd, (pd->have < 16 ? 16 : v2_len(pd)) - pd->have) < 0)
        return;
    if (memcmp(b, v2sig, pd->have < 12 ? pd->have : 12)) {
        drop(pd, "not a PROXY protocol header");
        return;
    }
    if (pd->have < 16)
        return;
    if (v2_len(pd) > sizeof(pd->buf)) {
        drop(pd, "v2 address block too large");
        return;
    }
    if (pd->have < v2_len(pd))
        return;
    if (parse_v2(pd, pd->have - 16) < 0)
        drop(pd, "malformed v2 header");
    else
        handed(pd);
}

/* ---------------------------------------------------------------- refused peers */

static void warn_summary(struct graced_proxy *p, int64_t now)
{
    if (!p->warn_quiet)
        return;
    graced_log(LOG_WARN, "PROXY listener: %llu more connection(s) from addresses not in "
                         "--proxy-from closed in the last %lld s, the last from %s",
               (unsigned long long)p->warn_quiet, (long long)((now - p->warn_since_ms + 999) / 1000),
               p->warn_last);
    p->warn_quiet = 0;
    p->warn_since_ms = now;
}

/* The end of an interval with refusals counted: one line for them, and a
 * flood that goes on gets one per interval. */
static void warn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct graced_proxy *p = arg;
    int64_t now = graced_mono_ms(), iv = p->g->o.warn_interval_ms;
    struct timeval tv = {iv / 1000, (iv % 1000) * 1000};
    if (!p->warn_quiet)
        return;
    warn_summary(p, now);
    p->warn_next_ms = now + iv;
    event_add(p->warn_ev, &tv);
}

static void warn_refused(struct graced_proxy *p, const char *addr)
{
    int64_t now = graced_mono_ms(), iv = p->g->o.warn_interval_ms;
    if (now >= p->warn_next_ms || !iv) {
        graced_log(LOG_WARN, "PROXY listener: %s is not in --proxy-from; connection closed%s",
                   addr, iv ? " (more: counted, one line per --warn-interval)" : "");
        p->warn_next_ms = now + iv;
        p->warn_since_ms = now;
        return;
    }
    p->warn_quiet++;
    snprintf(p->warn_last, sizeof(p->warn_last), "%s", addr);
    if (!p->warn_ev && !(p->warn_ev = evtimer_new(p->g->base, warn_cb, p)))
        return; /* counted; said at the next line or at the stop */
    if (!evtimer_pending(p->warn_ev, NULL)) {
        int64_t left = p->warn_next_ms - now;
        struct timeval tv = {left / 1000, (left % 1000) * 1000};
        evtimer_add(p->warn_ev, &tv);
    }
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct plistener *l = arg;
    struct graced_proxy *p = l->p;
    struct pending *pd;
    struct timeval tv = {p->g->o.proxy_timeout_ms / 1000, (p->g->o.proxy_timeout_ms % 1000) * 1000};

    if (!graced_cidr_match(p->from, p->nfrom, sa)) {
        struct sockaddr_storage ss = {0};
        char a[64];
        memcpy(&ss, sa, (size_t)salen < sizeof(ss) ? (size_t)salen : sizeof(ss));
        peer_text(&ss, a, sizeof(a));
        warn_refused(p, a);
        close(fd);
        return;
    }
    /* connections still sending their header count against max-connections
     * too: each holds an fd and a timer */
    if ((int64_t)p->npending + (int64_t)grace_server_counter(p->g->srv, GRACE_CNT_CONN_ACTIVE) >=
            grace_config_get(p->g->o.cfg, GRACE_OPT_MAX_CONNECTIONS) ||
        !(pd = calloc(1, sizeof(*pd)))) {
        close(fd);
        return;
    }
    pd->p = p;
    pd->fd = fd;
    pd->tls = l->tls;
    memcpy(&pd->peer, sa, (size_t)salen < sizeof(pd->peer) ? (size_t)salen : sizeof(pd->peer));
    pd->peer_len = (socklen_t)salen;
    TAILQ_INSERT_TAIL(&p->pending, pd, link);
    p->npending++;
    pd->ev = event_new(evconnlistener_get_base(lev), fd, EV_READ | EV_PERSIST, read_cb, pd);
    if (!pd->ev || event_add(pd->ev, &tv) < 0)
        pending_free(pd, 1);
}

/* ---------------------------------------------------------------- set-up */

int graced_proxy_init(struct graced *g)
{
    struct graced_cidr c;
    if (!g->o.nproxy_listen && !g->o.nproxy_tls_listen)
        return 0;
    if (!g->o.nproxy_from) {
        fprintf(stderr, "graced: --proxy-listen/--proxy-tls-listen needs --proxy-from CIDR: the addresses of the "
                        "load balancers whose PROXY header is believed\n");
        return -1;
    }
    for (int i = 0; i < g->o.nproxy_from; i++)
        if (graced_cidr_parse(g->o.proxy_from[i], &c) < 0) {
            fprintf(stderr, "graced: --proxy-from %s: expected ADDR or ADDR/BITS\n",
                    g->o.proxy_from[i]);
            return -1;
        }
    return 0;
}

int graced_proxy_listen(struct graced *g, int fd, struct grace_tls *tls)
{
    struct graced_proxy *p = g->proxy;
    struct plistener *l;
    if (!p) {
        if (!(p = g->proxy = calloc(1, sizeof(*p))))
            return -ENOMEM;
        p->g = g;
        TAILQ_INIT(&p->pending);
        for (int i = 0; i < g->o.nproxy_from; i++)
            graced_cidr_parse(g->o.proxy_from[i], &p->from[p->nfrom++]);
    }
    if (p->nl == GRACED_MAX_SOCKS)
        return -EMFILE;
    /* systemd passes sockets blocking (NonBlocking=no): libevent accepts
     * until EAGAIN, and would wait in accept() for the next client */
    if (evutil_make_socket_nonblocking(fd) < 0)
        return -errno;
    l = &p->l[p->nl];
    l->p = p;
    l->tls = tls;
    l->lev = evconnlistener_new(g->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                0 /* listening already: keep --backlog */, fd);
    if (!l->lev)
        return -errno ? -errno : -ENOMEM;
    p->nl++;
    return 0;
}

/*
 * A graceful stop: what the listen queues hold has completed its handshake
 * with the balancer and may carry a request (HAProxy sends the PROXY header
 * and the client's first bytes at once): closing the listeners would reset
 * it, and a balancer in TCP mode cannot retry what it already forwarded.
 * So the queues are accepted first, then the listeners close (new
 * connections are refused: the balancer retries elsewhere). Every header
 * already in its socket is read now, so that its connection is the
 * server's before the server's stop begins (worker.c calls that next: it
 * does not wait for the headers still to come). Returns how many are;
 * settled(g) runs once none is left (each is bounded by --proxy-timeout),
 * from the event loop.
 */
int graced_proxy_stop(struct graced *g, void (*settled)(struct graced *g))
{
    struct graced_proxy *p = g->proxy;
    if (!p)
        return 0;
    for (int i = 0; i < p->nl; i++) {
        int lfd = evconnlistener_get_fd(p->l[i].lev);
        for (int n = 0; n < 65536; n++) { /* a flood does not hold the stop */
            struct pollfd pf = {.fd = lfd, .events = POLLIN};
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            int fd;
            if (poll(&pf, 1, 0) <= 0)
                break;
            fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
                continue;
            if (fd < 0)
                break;
            accept_cb(p->l[i].lev, fd, (struct sockaddr *)&ss, (int)len, &p->l[i]);
        }
        evconnlistener_free(p->l[i].lev);
    }
    p->nl = 0;
    /* the headers there: handed over (or dropped) now; read_cb may free pd */
    for (struct pending *pd = TAILQ_FIRST(&p->pending), *next; pd; pd = next) {
        next = TAILQ_NEXT(pd, link);
        read_cb(pd->fd, EV_READ, pd);
    }
    if (p->npending)
        p->settled = settled;
    return p->npending;
}

int graced_proxy_pending(const struct graced *g)
{
    return g->proxy ? g->proxy->npending : 0;
}

/* Stop accepting and close the connections still sending their header. */
void graced_proxy_free(struct graced *g)
{
    struct graced_proxy *p = g->proxy;
    if (!p)
        return;
    for (int i = 0; i < p->nl; i++)
        evconnlistener_free(p->l[i].lev);
    while (!TAILQ_EMPTY(&p->pending))
        pending_free(TAILQ_FIRST(&p->pending), 1);
    warn_summary(p, graced_mono_ms()); /* the count not said yet */
    if (p->warn_ev)
        event_free(p->warn_ev);
    free(p);
    g->proxy = NULL;
}
