/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * addr.c - addresses as the options write them: "ADDR:PORT" for listeners
 * ("127.0.0.1:8080", "[::1]:8080", "localhost:80"), and address lists in
 * CIDR notation ("10.0.0.0/8", "::1") for --proxy-from and --metrics-allow,
 * matched against a peer's address (an IPv4-mapped IPv6 address is its
 * IPv4 address). Text in, numbers out: no I/O.
 */
#include "graced.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* "127.0.0.1:8080", "[::1]:8080", "localhost:80" */
int graced_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t n;
    char *end;
    long p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        n = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* bare IPv6 needs brackets */
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* ---------------------------------------------------------------- CIDR */

int graced_cidr_parse(const char *s, struct graced_cidr *c)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    char *end;
    long bits;
    if (n == 0 || n >= sizeof(addr))
        return -1;
    memcpy(addr, s, n);
    addr[n] = '\0';
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, addr, c->addr) == 1)
        c->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, c->addr) == 1)
        c->family = AF_INET6;
    else
        return -1;
    c->bits = c->family == AF_INET ? 32 : 128;
    if (slash) {
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno || *end || end == slash + 1 || bits < 0 || bits > c->bits)
            return -1;
        c->bits = (int)bits;
    }
    return 0;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole))
        return 0;
    return !rest || !((a[whole] ^ b[whole]) & (0xff << (8 - rest)));
}

int graced_cidr_match(const struct graced_cidr *list, int n, const struct sockaddr *sa)
{
    unsigned char a[16];
    int family;
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) { /* ::ffff:10.1.2.3 is 10.1.2.3 */
            memcpy(a, a6->s6_addr + 12, 4);
            family = AF_INET;
        } else {
            memcpy(a, a6->s6_addr, 16);
            family = AF_INET6;
        }
    } else {
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (list[i].family == family && prefix_equal(list[i].addr, a, list[i].bits))
            return 1;
    return 0;
}
