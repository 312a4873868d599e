/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * path.c - the decoded, normalized form of a request path, so that routes
 * and file lookups compare one spelling of each path: "/%61dmin", "//admin",
 * "/./admin" and "/x/../admin" are all "/admin". It refuses only what a
 * route cannot represent: an encoded '/', a NUL, a bad escape and ".."
 * above the root; any other byte, control bytes included, is decoded.
 */
#include "gracehttp.h"
#include "parser.h"

#include <errno.h>
#include <limits.h>

ssize_t grace_path_normalize(const char *path, size_t len, char *out, size_t size)
{
    size_t i = 1, o = 1;

    if (!path || !out || len == 0 || path[0] != '/')
        return -EINVAL;
    if (size <= len || len > (size_t)SSIZE_MAX)
        return -ENOSPC;
    /* out is "/" followed by decoded segments each ended by "/", except
     * maybe the last; it never holds an encoded slash, so the segment
     * before a ".." is found by looking back for "/" */
    out[0] = '/';
    while (i < len) {
        if (path[i] == '/') { /* empty segment: "//" is "/" */
            i++;
            continue;
        }
        size_t seg = o;
        while (i < len && path[i] != '/') {
            unsigned char c = (unsigned char)path[i];
            if (c == '%') {
                int h = i + 2 < len ? grace__hexval(path[i + 1]) : -1;
                int l = h < 0 ? -1 : grace__hexval(path[i + 2]);
                if (l < 0)
                    return -EINVAL; /* '%' without two hex digits */
                c = (unsigned char)(h << 4 | l);
                /* %2F would join or split segments behind a route's back */
                if (c == '/')
                    return -EINVAL;
                i += 3;
            } else {
                i++;
            }
            /* a NUL cannot be carried by the NUL-terminated result; other
             * control bytes are the application's to judge (a file server
             * refuses them in names, another application may route them) */
            if (c == '\0')
                return -EINVAL;
            out[o++] = (char)c;
        }
        size_t sl = o - seg;
        if (sl == 1 && out[seg] == '.') {
            o = seg;
        } else if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (seg == 1)
                return -EINVAL; /* above the root */
            o = seg - 1;
            while (out[o - 1] != '/')
                o--;
        } else if (i < len) {
            out[o++] = '/';
        }
        if (i < len) /* skip the '/' that ended the segment */
            i++;
    }
    out[o] = '\0';
    return (ssize_t)o;
}
