/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * reply.c - the small answers every handler gives: a short text (an error,
 * "created"), and whether the client asked for JSON rather than HTML.
 */
#define _GNU_SOURCE /* strcasestr */
#include "graced.h"

#include <string.h>

int graced_reply(struct grace_request *req, int status, const char *body)
{
    size_t n = body ? strlen(body) : 0;
    if (n)
        grace_response_add_header(req, "Content-Type", "text/plain; charset=utf-8");
    return grace_reply(req, status, body, n);
}

int graced_wants_json(struct grace_request *req)
{
    const char *a = grace_request_header(req, "Accept");
    return a && strcasestr(a, "application/json") != NULL;
}
