/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * trailer.c - trailer fields: the one list of fields a trailer may not
 * carry, the check of the application's trailer fields, and the store of a
 * request's received ones (bounded by the protocol: max-trailer-bytes).
 */
#include "trailer.h"

#include "parser.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * RFC 9110 6.5.1: a sender must not put these in a trailer, and a recipient
 * must not act on them there. Short on purpose: the fields whose meaning is
 * fixed before the content is read (the message's framing and connection,
 * its routing, what modifies the request, credentials and cookies, how the
 * content is processed, what controls the response), where a late value
 * would either be ignored or let a trailer override what the head said.
 */
static const char *const forbidden[] = {
    /* framing and the connection (RFC 9112 6, 9110 7.6.1, RFC 9113 8.2.2) */
    "content-length", "transfer-encoding", "trailer", "connection", "keep-alive",
    "proxy-connection", "upgrade", "te",
    /* routing and request modifiers (controls, conditionals, range) */
    "host", "expect", "max-forwards", "cache-control", "range", "if-match", "if-none-match",
    "if-modified-since", "if-unmodified-since", "if-range",
    /* authentication and cookies */
    "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate", "cookie",
    "set-cookie",
    /* content processing and response control data */
    "content-type", "content-encoding", "content-range", "date", "location", "retry-after",
    "vary",
};

int grace__trailer_allowed(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
        if (strlen(forbidden[i]) == n && !strncasecmp(name, forbidden[i], n))
            return 0;
    return 1;
}

int grace__trailer_field_ok(const char *name, const char *value)
{
    size_t nl, vl;

    if (!name || !value)
        return 0;
    nl = strlen(name);
    vl = strlen(value);
    if (!grace__token_valid(name, nl) || !grace__trailer_allowed(name, nl))
        return 0;
    /* HTTP/2 calls a value with whitespace at either end malformed (RFC 9113 8.2.1) */
    if (vl && (value[0] == ' ' || value[0] == '\t' || value[vl - 1] == ' ' ||
               value[vl - 1] == '\t'))
        return 0;
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

int grace__trailers_add(struct grace_trailers *t, const char *name, size_t nl, const char *value,
                        size_t vl)
{
    size_t need = t->len + nl + vl + 2;

    if (!grace__trailer_allowed(name, nl))
        return 1;
    if (need > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        char *b;
        while (cap < need)
            cap *= 2;
        if (!(b = realloc(t->blk, cap)))
            return -ENOMEM;
        t->blk = b;
        t->cap = cap;
    }
    if (t->n == t->ncap) {
        size_t ncap = t->ncap ? 2 * t->ncap : 8;
        size_t *o = realloc(t->off, ncap * sizeof(*o));
        if (!o)
            return -ENOMEM;
        t->off = o;
        t->ncap = ncap;
    }
    t->off[t->n++] = t->len;
    memcpy(t->blk + t->len, name, nl);
    t->blk[t->len + nl] = '\0';
    memcpy(t->blk + t->len + nl + 1, value, vl);
    t->blk[need - 1] = '\0';
    t->len = need;
    return 0;
}

int grace__trailers_at(const struct grace_trailers *t, size_t i, const char **name,
                       const char **value)
{
    if (i >= t->n)
        return -ERANGE;
    *name = t->blk + t->off[i];
    *value = *name + strlen(*name) + 1;
    return 0;
}

const char *grace__trailers_next(const struct grace_trailers *t, const char *name, size_t *pos)
{
    for (size_t i = *pos; i < t->n; i++) {
        const char *n = t->blk + t->off[i];
        if (!strcasecmp(n, name)) {
            *pos = i + 1;
            return n + strlen(n) + 1;
        }
    }
    *pos = t->n;
    return NULL;
}

void grace__trailers_free(struct grace_trailers *t)
{
    free(t->blk);
    free(t->off);
    memset(t, 0, sizeof(*t));
}
