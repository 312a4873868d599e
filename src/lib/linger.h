/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * linger.h - the policy of the lingering close, pure: what the client still
 * owes, bytes discarded, the timers' verdicts, the rate window. It reads
 * the settings and a clock the caller passes; it touches no socket and no
 * connection (the engine, conn.c, acts on its verdicts). docs/design.md
 * "The graceful close".
 */
#ifndef GRACE_LINGER_H
#define GRACE_LINGER_H

#include "core.h"

#include <stdint.h>

/* The rate window (linger-rate-window) in this many slots: its memory stays
 * constant whatever the window's length. */
#define GRACE_LINGER_SLOTS 8

struct grace_linger {
    int64_t start, deadline, last_ms; /* last_ms: the last bytes */
    uint64_t bytes;                   /* discarded since our FIN */
    uint64_t left;                    /* body still due, or UINT64_MAX: unknown */
    uint32_t at;                      /* the current slot of the rate window */
    uint32_t win[GRACE_LINGER_SLOTS]; /* bytes per slot */
    unsigned char upload;             /* a body was still arriving at the close */
    unsigned char extended;           /* went past linger-time (counted once) */
};

/* The close begins: the client still owes left bytes of a body (UINT64_MAX:
 * unknown); upload: a body was still arriving. */
void grace__linger_owed(struct grace_linger *l, uint64_t left, unsigned char upload);

/* Our FIN is sent at now: the linger's clocks start. bound: when a
 * graceful stop ends every linger (its deadline + stop-linger-time;
 * INT64_MAX when not stopping). */
void grace__linger_begin(struct grace_linger *l, const struct grace_config *cfg, int64_t now,
                         int64_t bound);

/* n bytes the client sent were discarded, carrying plain bytes of its body
 * (TLS: the plaintext, which pays off what is still owed); lingering: after
 * our FIN (n counts towards linger-bytes). GRACE_CNT_LINGER_BYTE_CAP when
 * linger-bytes is reached, else GRACE_CNT__COUNT: go on. */
enum grace_counter grace__linger_bytes(struct grace_linger *l, const struct grace_config *cfg,
                                       uint64_t n, uint64_t plain, int lingering);

/* A read event after our FIN discarded got > 0 bytes, at now: the client is
 * not idle, and the rate window hears of them. */
void grace__linger_heard(struct grace_linger *l, const struct grace_config *cfg, uint64_t got,
                         int64_t now);

/* When the linger's timer is due next: the first of linger-timeout from the
 * last bytes and the current deadline (monotonic ms). */
int64_t grace__linger_due(const struct grace_linger *l, const struct grace_config *cfg);

/* The timer fired at now: GRACE_CNT__COUNT to go on (arm again at
 * grace__linger_due()), else the counter that ends the linger (idle, total
 * time, too slow). Past linger-time an upload that keeps up goes on
 * (l->extended is set the first time). */
enum grace_counter grace__linger_timer(struct grace_linger *l, const struct grace_config *cfg,
                                       int64_t now, int64_t bound);

/* A graceful stop began: the linger ends by bound (its deadline +
 * stop-linger-time), not before: until then an early answer lingers as
 * without a stop (an upload still arriving reads its answer once sent). */
void grace__linger_stop(struct grace_linger *l, int64_t bound);

#endif
