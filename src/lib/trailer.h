/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * trailer.h - trailer fields (RFC 9110 6.5), for every protocol: which
 * fields a trailer section may carry (one rule for what the application
 * sends and what a client's trailers may show), and a request's kept
 * trailer fields. It knows no protocol and no request.
 */
#ifndef GRACE_TRAILER_H
#define GRACE_TRAILER_H

#include <stddef.h>

/* A request's trailer fields as received: "name\0value\0" pairs in blk,
 * field i's name at blk + off[i]. */
struct grace_trailers {
    char *blk;
    size_t len, cap;
    size_t *off;
    size_t n, ncap;
};

/* May a trailer section carry a field named name[0..n)? 0 for the fields
 * RFC 9110 6.5.1 keeps out of trailers (framing, routing, request
 * modifiers, authentication, content processing, response control). */
int grace__trailer_allowed(const char *name, size_t n);

/* A field the application sends in a trailer: a token name that
 * grace__trailer_allowed(), a value without control bytes (HTAB aside)
 * nor leading or trailing whitespace. */
int grace__trailer_field_ok(const char *name, const char *value);

/* Keep a received trailer field (name, value already checked by the
 * protocol). One that may not be a trailer is dropped (1). 0: kept;
 * -ENOMEM. */
int grace__trailers_add(struct grace_trailers *t, const char *name, size_t nl, const char *value,
                        size_t vl);

/* Field i: 0 and its name and value, or -ERANGE. */
int grace__trailers_at(const struct grace_trailers *t, size_t i, const char **name,
                       const char **value);

/* The value of the next field from index *pos on whose name is name
 * (case-insensitive); *pos becomes its index + 1. NULL: none left (*pos
 * is then t->n). */
const char *grace__trailers_next(const struct grace_trailers *t, const char *name, size_t *pos);

/* Give t's memory back; t is empty afterwards. */
void grace__trailers_free(struct grace_trailers *t);

#endif
