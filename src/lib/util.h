/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * util.h - the small helpers every layer uses, one of each: the monotonic
 * clock, ms -> timeval, the Date header (formatted once a second), the
 * reason phrases and which statuses carry no body. No state of its own but
 * the Date cache its caller keeps.
 */
#ifndef GRACE_UTIL_H
#define GRACE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                  \
    for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1); \
         (var) = (tvar))
#endif

/* Monotonic time: deadlines that survive clock changes. */
int64_t grace__now_ms(void);
int64_t grace__now_us(void);
/* ms as a timeval (negative: 0). */
struct timeval grace__ms_tv(int64_t ms);

/* The Date header of the current second, kept by the server. */
struct grace_date {
    char line[40]; /* "Date: <IMF-fixdate>\r\n" */
    time_t sec;
};
/* "Date: <IMF-fixdate>\r\n" into out (40 bytes at least; NUL-terminated), its
 * length in *len. */
void grace__date_header(struct grace_date *d, char *out, size_t *len);

/* 1xx, 204 and 304 never carry a body (RFC 9110 6.4.1). */
static inline int grace__no_body_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

#endif
