/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * linger.c - the policy of the graceful close.
 *
 * A connection that must close after a response never close()s with
 * unread data in the socket: the kernel would answer the client's next
 * segment with a reset and the client could lose the response. Instead
 * (the engine, conn.c, does the acts):
 *   1. CS_CLOSING: keep reading (and discarding) while the output drains;
 *   2. once it is empty: shut down writing (FIN after the response);
 *   3. CS_LINGER: the connection gives its slot back and its read event
 *      discards what the client still sends (raw, no copy), until the
 *      client closes, goes quiet for linger-timeout, linger-time has
 *      passed, or linger-bytes (if set) were discarded. The read event's
 *      timeout is the timer. Only timers and events: never a sleep.
 * This file decides when each of those ends; it reads the settings and the
 * clock it is given, and nothing else.
 *
 * Past linger-time, a client that was still sending a request body when the
 * close began (Content-Length or chunked) and keeps it arriving at
 * linger-min-rate or faster — or, its remainder known, fast enough to end
 * before linger-max-time — is discarded until it is done, re-checked every
 * second, up to linger-max-time: a slow honest upload still reads its
 * answer. The rate is judged over linger-rate-window (or the whole linger
 * if shorter), not the last second: TCP on a lossy path stalls for whole
 * retransmission timeouts (1-3 s) and catches up afterwards.
 */
#include "linger.h"

#include <string.h>

/* How often, at most, a linger past linger-time checks the client's rate. */
#define RATE_PERIOD 1000

#define CFG(cfg, o) ((cfg)->v[GRACE_OPT_##o])

void grace__linger_owed(struct grace_linger *l, uint64_t left, unsigned char upload)
{
    l->left = left;
    l->upload = upload;
}

void grace__linger_begin(struct grace_linger *l, const struct grace_config *cfg, int64_t now,
                         int64_t bound)
{
    l->bytes = 0;
    l->extended = 0;
    l->start = now;
    l->at = 0;
    memset(l->win, 0, sizeof(l->win));
    l->last_ms = now;
    l->deadline = now + CFG(cfg, LINGER_TIME);
    if (l->deadline > bound)
        l->deadline = bound;
}

enum grace_counter grace__linger_bytes(struct grace_linger *l, const struct grace_config *cfg,
                                       uint64_t n, uint64_t plain, int lingering)
{
    uint64_t cap = (uint64_t)CFG(cfg, LINGER_BYTES);

    if (l->left != UINT64_MAX)
        l->left -= plain < l->left ? plain : l->left;
    if (!lingering)
        return GRACE_CNT__COUNT;
    l->bytes += n;
    return cap && l->bytes >= cap ? GRACE_CNT_LINGER_BYTE_CAP : GRACE_CNT__COUNT;
}

int64_t grace__linger_due(const struct grace_linger *l, const struct grace_config *cfg)
{
    int64_t idle = l->last_ms + CFG(cfg, LINGER_TIMEOUT);
    return idle < l->deadline ? idle : l->deadline;
}

/*
 * The rate window: GRACE_LINGER_SLOTS slots of linger-rate-window /
 * GRACE_LINGER_SLOTS ms each, counted from the linger's start, each holding
 * the bytes discarded in it (saturating: 4 GiB in one slot is plenty).
 */
static int64_t slot_ms(const struct grace_config *cfg)
{
    int64_t ms = CFG(cfg, LINGER_RATE_WINDOW) / GRACE_LINGER_SLOTS;
    return ms > 0 ? ms : 1;
}

/* Move the window on to now: the slots passed meanwhile received nothing. */
static void window_move(struct grace_linger *l, const struct grace_config *cfg, int64_t now)
{
    uint32_t at = (uint32_t)((now - l->start) / slot_ms(cfg));

    for (uint32_t i = 1; i <= GRACE_LINGER_SLOTS && l->at + i <= at; i++)
        l->win[(l->at + i) % GRACE_LINGER_SLOTS] = 0;
    if (at > l->at)
        l->at = at;
}

void grace__linger_heard(struct grace_linger *l, const struct grace_config *cfg, uint64_t got,
                         int64_t now)
{
    uint32_t *w;

    l->last_ms = now;
    window_move(l, cfg, now);
    w = &l->win[l->at % GRACE_LINGER_SLOTS];
    *w = got < (uint64_t)(UINT32_MAX - *w) ? *w + (uint32_t)got : UINT32_MAX;
}

/*
 * 1 if the upload keeps up: what arrived in the window (the current slot
 * and the ones before it, about linger-rate-window, or the whole linger if
 * shorter) came at linger-min-rate or faster, or, its remainder known, fast
 * enough to end it before `hard` (linger-max-time): its client reads the
 * answer then, however slow its link.
 */
static int keeps_up(struct grace_linger *l, const struct grace_config *cfg, int64_t now,
                    int64_t hard)
{
    uint32_t at, first;
    uint64_t sum = 0, left = l->left;
    int64_t ms;

    window_move(l, cfg, now);
    at = l->at;
    first = at >= GRACE_LINGER_SLOTS - 1 ? at - (GRACE_LINGER_SLOTS - 1) : 0;
    for (uint32_t i = first; i <= at; i++)
        sum += l->win[i % GRACE_LINGER_SLOTS];
    ms = now - (l->start + (int64_t)first * slot_ms(cfg));
    if (ms < 1)
        ms = 1;
    if (sum >= UINT32_MAX) /* 4 GiB in the window (a slot may have saturated) */
        return 1;
    if (sum * 1000 / (uint64_t)ms >= (uint64_t)CFG(cfg, LINGER_MIN_RATE))
        return 1;
    /* left / (sum / ms) <= hard - now, in doubles: left may be near 2^64 */
    return left != UINT64_MAX && sum > 0 &&
           (double)left * (double)ms <= (double)sum * (double)(hard - now);
}

/*
 * linger-time has passed: go on only while a body still arriving at the
 * close keeps up (keeps_up()). Returns the counter that ends the linger, or
 * GRACE_CNT__COUNT to go on (the deadline moved).
 *
 * Bytes bound nothing here: discarding costs ~0.05 CPU s per GiB, so a
 * fast sender is cheap; what it holds is a socket, bounded by time
 * (linger-max-time), silence (linger-timeout) and max-lingering.
 */
static enum grace_counter linger_extend(struct grace_linger *l, const struct grace_config *cfg,
                                        int64_t now, int64_t bound)
{
    int64_t hard = l->start + CFG(cfg, LINGER_MAX_TIME);
    int64_t next = slot_ms(cfg) < RATE_PERIOD ? slot_ms(cfg) : RATE_PERIOD;

    if (hard > bound) /* a stop ends every linger by its bound */
        hard = bound;
    if (now >= hard || !l->upload)
        return GRACE_CNT_LINGER_TOTAL_TIME;
    /* all of a known body is here: the client reads now; linger-timeout ends it */
    if (l->left > 0 && !keeps_up(l, cfg, now, hard))
        return GRACE_CNT_LINGER_TOO_SLOW;
    l->extended = 1;
    l->deadline = now + next < hard ? now + next : hard;
    return GRACE_CNT__COUNT;
}

enum grace_counter grace__linger_timer(struct grace_linger *l, const struct grace_config *cfg,
                                       int64_t now, int64_t bound)
{
    if (now >= l->last_ms + CFG(cfg, LINGER_TIMEOUT))
        return GRACE_CNT_LINGER_IDLE_TIMEOUT;
    if (now < l->deadline) /* early: the idle bound moved on */
        return GRACE_CNT__COUNT;
    return linger_extend(l, cfg, now, bound);
}

void grace__linger_stop(struct grace_linger *l, int64_t bound)
{
    if (l->deadline > bound)
        l->deadline = bound;
}
