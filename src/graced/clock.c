/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * clock.c - the one monotonic clock of graced: timeouts, rates, back-offs
 * and measured costs never follow the wall clock (NTP steps, an admin's
 * date -s). File times are wall-clock times and stay with the code that
 * compares them (store.c's sweep).
 */
#include "graced.h"

#include <time.h>

int64_t graced_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t graced_mono_ms(void)
{
    return graced_mono_us() / 1000;
}
