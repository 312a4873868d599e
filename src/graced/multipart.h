/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * multipart.h - a streaming multipart/form-data parser (RFC 7578, RFC 2046).
 *
 * Bytes in, callbacks out; no I/O and no allocation per byte. The body can
 * arrive in pieces of any size: a delimiter split across pieces is found,
 * and part data is handed on as it comes (only the few bytes that might
 * begin a delimiter are held back, and those are known bytes, not copied).
 */
#ifndef GRACED_MULTIPART_H
#define GRACED_MULTIPART_H

#include <stddef.h>

struct graced_mp;

/* Each returns 0 to go on, or a negative errno that stops the parser and
 * is returned by graced_mp_feed(). */
struct graced_mp_cb {
    /* a part's headers are complete: the name and filename parameters of its
     * Content-Disposition (NULL when absent; filename* preferred, browsers'
     * %22 decoded, a path reduced to its last element); valid during the call */
    int (*part_begin)(const char *name, const char *filename, void *arg);
    /* a piece of the part's content, valid during the call */
    int (*part_data)(const char *data, size_t len, void *arg);
    /* the part's content is complete (its delimiter was seen) */
    int (*part_end)(void *arg);
};

/* The boundary parameter of a multipart/form-data Content-Type value into
 * out. 0, or -EINVAL (not multipart/form-data, no or bad boundary). */
int graced_mp_boundary(const char *content_type, char *out, size_t outlen);

/* A parser for one body. max_header bounds each part's header section.
 * NULL if out of memory or the boundary is invalid (errno set). */
struct graced_mp *graced_mp_new(const char *boundary, size_t max_header,
                                const struct graced_mp_cb *cb, void *arg);
void graced_mp_free(struct graced_mp *mp);

/* Feed the next piece. 0; -EPROTO for a malformed body; -EMSGSIZE for a
 * part header section over max_header; or a callback's error. After an
 * error every further call returns it again. */
int graced_mp_feed(struct graced_mp *mp, const char *data, size_t len);

/* The body ended: 0 if the closing delimiter was seen, else -EPROTO. */
int graced_mp_end(struct graced_mp *mp);

#endif
