/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ifheader.c - WebDAV's If header (RFC 4918 10.4) read into its lists of
 * conditions; no I/O: what a condition means (a lock's token, a file's
 * ETag) is the caller's to say (davcond.c).
 *
 *   If = 1*No-tag-list | 1*Tagged-list
 *   Tagged-list = "<" resource ">" 1*List
 *   List = "(" 1*(["Not"] ("<" state-token ">" | "[" entity-tag "]")) ")"
 *
 * The header holds if one of its lists does; a list holds if each of its
 * conditions does. Bounded: GRACED_IF_MAX conditions, more is malformed.
 */
#include "graced.h"

#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int graced_if_parse(const char *h, struct graced_if *out)
{
    const char *p = skip_ws(h), *tag = NULL, *end;
    size_t taglen = 0;
    int tagged = -1; /* unknown until the first list or tag */

    memset(out, 0, sizeof(*out));
    while (*p) {
        if (*p == '<') { /* a resource tag: the lists after it are its */
            if (tagged == 0 || !(end = strchr(p, '>')))
                return -1;
            tagged = 1;
            tag = p + 1;
            taglen = (size_t)(end - tag);
            if (!taglen)
                return -1;
            p = skip_ws(end + 1);
            if (*p != '(')
                return -1;
            continue;
        }
        if (*p != '(')
            return -1;
        if (tagged < 0)
            tagged = 0;
        p = skip_ws(p + 1);
        if (*p == ')')
            return -1; /* a list holds one condition at least */
        while (*p != ')') {
            struct graced_if_cond *c;
            if (out->n >= GRACED_IF_MAX)
                return -1;
            c = &out->c[out->n];
            c->list = out->nlists;
            c->tag = tag;
            c->taglen = taglen;
            if (!strncasecmp(p, "Not", 3) && (p[3] == ' ' || p[3] == '\t' || p[3] == '<' ||
                                               p[3] == '[')) {
                c->not = 1;
                p = skip_ws(p + 3);
            }
            if (*p == '<') {
                if (!(end = strchr(p, '>')) || end == p + 1)
                    return -1;
                c->s = p + 1;
                c->len = (size_t)(end - p - 1);
            } else if (*p == '[') {
                if (!(end = strchr(p, ']')) || end == p + 1)
                    return -1;
                c->etag = 1;
                c->s = p + 1;
                c->len = (size_t)(end - p - 1);
            } else {
                return -1;
            }
            out->n++;
            p = skip_ws(end + 1);
            if (!*p)
                return -1;
        }
        out->nlists++;
        p = skip_ws(p + 1);
    }
    return out->nlists ? 0 : -1;
}
