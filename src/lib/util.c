/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * util.c - small helpers every module uses: one of each.
 */
#include "internal.h"

#include <time.h>

/* Monotonic time: deadlines that survive clock changes. */
int64_t grace__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t grace__now_ms(void)
{
    return grace__now_us() / 1000;
}

struct timeval grace__ms_tv(int64_t ms)
{
    struct timeval tv;
    if (ms < 0)
        ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}
