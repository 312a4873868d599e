/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * guard.c - refusals that come before any method's handler, login or file
 * (route.c runs them first): each is answered when the headers arrive,
 * before a body byte is read, so the client gets the answer (the library's
 * graceful close).
 *
 *  - two Origin headers: which one a check reads decides whether a page of
 *    another site may write; a browser never sends two (400);
 *  - a control byte in the decoded path (%09, %0A, %0D, %7F...): the library
 *    hands them to the application, and graced serves and stores no such
 *    name (400, saying so);
 *  - Content-Range on a body that becomes one file (PUT, a raw POST):
 *    graced stores whole bodies only, and a fragment stored as the whole
 *    file destroys it (RFC 9110 14.5: 400).
 * (A write onto graced's own paths, --health and --metrics, is route.c's
 * to refuse: it knows the route.)
 */
#include "graced.h"

#include <string.h>

/* Any byte below 0x20, or DEL. */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int graced_guard(struct grace_request *req, int whole)
{
    const char *path = grace_request_path_decoded(req);
    size_t pos = 0;

    if (grace_request_header_next(req, "Origin", &pos) &&
        grace_request_header_next(req, "Origin", &pos)) {
        graced_reply(req, 400, "two Origin headers\n");
        return 1;
    }
    if (has_control(path)) {
        graced_reply(req, 400, "the path holds a control character (%00-%1F or %7F): "
                               "graced serves and stores no such name\n");
        return 1;
    }
    if (whole && grace_request_header(req, "Content-Range")) {
        graced_reply(req, 400, "Content-Range: graced stores whole files only "
                               "(no partial PUT); send the whole body\n");
        return 1;
    }
    return 0;
}
