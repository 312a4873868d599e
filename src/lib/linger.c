/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * linger.c - the graceful close.
 *
 * A connection that must close after a response never close()s with
 * unread data in the socket: the kernel would answer the client's next
 * segment with a reset and the client could lose the response. Instead:
 *   1. CS_CLOSING: keep reading (and discarding) while the output drains;
 *   2. once it is empty: shut down writing (FIN after the response);
 *   3. CS_LINGER: the connection gives its slot back (conn.c) and its read
 *      event discards what the client still sends (raw, no copy), until
 *      the client closes, goes quiet for linger-timeout, linger-time has
 *      passed, or linger-bytes (if set) were discarded. The read event's
 *      timeout is the timer. Only timers and events: never a sleep.
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
#include "internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* How much one read event may discard before yielding to the loop. */
#define LINGER_BUDGET (1u << 20)
/* How often, at most, a linger past linger-time checks the client's rate. */
#define RATE_PERIOD 1000

/* Body bytes the client still owes, as far as we know (UINT64_MAX:
 * unknown); *upload: a request body is still arriving (known or chunked). */
static uint64_t body_left(const struct grace_conn *c, unsigned char *upload)
{
    const struct grace_parser *p;
    uint64_t buffered;

    *upload = 0;
    if (c->state == CS_IDLE || !c->slot)
        return 0;
    p = &c->slot->parser;
    buffered = evbuffer_get_length(c->slot->in);
    if (grace_parser_body_done(p))
        return 0;
    if (c->state != CS_ACTIVE && c->state != CS_DRAIN)
        return UINT64_MAX;
    if (p->req.framing == GRACE_FRAMING_CHUNKED) {
        *upload = 1;
        return UINT64_MAX;
    }
    if (p->req.framing != GRACE_FRAMING_LENGTH)
        return UINT64_MAX;
    *upload = p->remaining > buffered;
    return p->remaining > buffered ? p->remaining - buffered : 0;
}

void grace__conn_close_graceful(struct grace_conn *c)
{
    if (c->state >= CS_CLOSING)
        return;
    c->st.linger.left = body_left(c, &c->st.linger.upload);
    c->state = CS_CLOSING;
    grace__conn_discard_input(c);
    /* keep reading: a client blocked in send() must not stall our writes */
    c->read_paused = 0;
    grace__conn_watch_input(c);
    grace__conn_flush(c); /* calls grace__conn_output_drained() once empty */
}

/* The read event's timeout: the first of idle (linger-timeout from the
 * last bytes) and the current deadline. */
static void linger_arm(struct grace_conn *c, int64_t now)
{
    int64_t idle = c->st.linger.last_ms + OPT(c->srv, LINGER_TIMEOUT);
    int64_t until = idle < c->st.linger.deadline ? idle : c->st.linger.deadline;
    struct timeval tv = grace__ms_tv(until - now);
    event_add(c->rd, &tv);
}

static void linger_end(struct grace_conn *c, enum grace_counter how)
{
    c->srv->cnt[how]++;
    if (how == GRACE_CNT_LINGER_ERROR)
        grace__conn_reason(c, -ECONNRESET);
    grace__conn_destroy(c);
}

/*
 * The rate window: GRACE_LINGER_SLOTS slots of linger-rate-window /
 * GRACE_LINGER_SLOTS ms each, counted from the linger's start, each holding
 * the bytes discarded in it (saturating: 4 GiB in one slot is plenty).
 */
static int64_t slot_ms(const struct grace_server *srv)
{
    int64_t ms = OPT(srv, LINGER_RATE_WINDOW) / GRACE_LINGER_SLOTS;
    return ms > 0 ? ms : 1;
}

/* Move the window on to now: the slots passed meanwhile received nothing. */
static void window_move(struct grace_conn *c, int64_t now)
{
    uint32_t at = (uint32_t)((now - c->st.linger.start) / slot_ms(c->srv));

    for (uint32_t i = 1; i <= GRACE_LINGER_SLOTS && c->st.linger.at + i <= at; i++)
        c->st.linger.win[(c->st.linger.at + i) % GRACE_LINGER_SLOTS] = 0;
    if (at > c->st.linger.at)
        c->st.linger.at = at;
}

static void window_add(struct grace_conn *c, int64_t now, uint64_t n)
{
    uint32_t *w;

    window_move(c, now);
    w = &c->st.linger.win[c->st.linger.at % GRACE_LINGER_SLOTS];
    *w = n < (uint64_t)(UINT32_MAX - *w) ? *w + (uint32_t)n : UINT32_MAX;
}

/*
 * 1 if the upload keeps up: what arrived in the window (the current slot
 * and the ones before it, about linger-rate-window, or the whole linger if
 * shorter) came at linger-min-rate or faster, or, its remainder known, fast
 * enough to end it before `hard` (linger-max-time): its client reads the
 * answer then, however slow its link.
 */
static int keeps_up(struct grace_conn *c, int64_t now, int64_t hard)
{
    uint32_t at, first;
    uint64_t sum = 0, left = c->st.linger.left;
    int64_t ms;

    window_move(c, now);
    at = c->st.linger.at;
    first = at >= GRACE_LINGER_SLOTS - 1 ? at - (GRACE_LINGER_SLOTS - 1) : 0;
    for (uint32_t i = first; i <= at; i++)
        sum += c->st.linger.win[i % GRACE_LINGER_SLOTS];
    ms = now - (c->st.linger.start + (int64_t)first * slot_ms(c->srv));
    if (ms < 1)
        ms = 1;
    if (sum >= UINT32_MAX) /* 4 GiB in the window (a slot may have saturated) */
        return 1;
    if (sum * 1000 / (uint64_t)ms >= (uint64_t)OPT(c->srv, LINGER_MIN_RATE))
        return 1;
    /* left / (sum / ms) <= hard - now, in doubles: left may be near 2^64 */
    return left != UINT64_MAX && sum > 0 &&
           (double)left * (double)ms <= (double)sum * (double)(hard - now);
}

/*
 * The read event of a closing connection: discard. In CS_CLOSING the
 * client's EOF ends the connection once the output is out; in CS_LINGER
 * every ending is counted.
 */
void grace__linger_read(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    size_t budget = LINGER_BUDGET;
    int lingering = c->state == CS_LINGER;
    uint64_t got = 0, cap = (uint64_t)OPT(srv, LINGER_BYTES);

    while (budget > 0) {
        ssize_t n = c->tp->discard(&c->sock, budget);
        if (n > 0) {
            budget -= (size_t)n < budget ? (size_t)n : budget;
            srv->cnt[GRACE_CNT_BYTES_DISCARDED] += (uint64_t)n;
            if (c->st.linger.left != UINT64_MAX)
                c->st.linger.left -= (uint64_t)n < c->st.linger.left ? (uint64_t)n
                                                                       : c->st.linger.left;
            if (!lingering)
                continue;
            got += (uint64_t)n;
            c->st.linger.bytes += (uint64_t)n;
            if (cap && c->st.linger.bytes >= cap) {
                linger_end(c, GRACE_CNT_LINGER_BYTE_CAP);
                return;
            }
        } else if (n == 0) {
            if (lingering) {
                linger_end(c, GRACE_CNT_LINGER_CLIENT_EOF);
            } else {
                c->peer_eof = 1; /* grace__conn_output_drained() closes */
                grace__conn_watch_input(c);
            }
            return;
        } else if (n == -EAGAIN) {
            break;
        } else if (lingering) { /* ECONNRESET and friends end it, nothing more */
            linger_end(c, GRACE_CNT_LINGER_ERROR);
            return;
        } else { /* the response cannot arrive any more */
            grace__conn_abort(c, -ECONNRESET);
            return;
        }
    }
    if (got) {
        c->st.linger.last_ms = grace__now_ms();
        window_add(c, c->st.linger.last_ms, got);
        linger_arm(c, c->st.linger.last_ms);
    }
}

void grace__conn_output_drained(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    int64_t now;

    if (c->peer_eof || !OPT(srv, LINGER)) {
        /* the client already closed; or linger=off, the naive close */
        grace__conn_destroy(c);
        return;
    }
    if (c->tp->shutdown(&c->sock) < 0) {
        grace__conn_destroy(c);
        return;
    }
    grace__conn_discard_input(c);
    /* from here on a lingering socket costs its read event and struct
     * grace_conn: the slot goes back when the callbacks return */
    now = grace__now_ms();
    c->state = CS_LINGER;
    c->st.linger.bytes = 0;
    c->st.linger.start = now;
    c->st.linger.at = 0;
    memset(c->st.linger.win, 0, sizeof(c->st.linger.win));
    c->st.linger.last_ms = now;
    c->st.linger.deadline = now + OPT(srv, LINGER_TIME);
    if (srv->stopping) {
        int64_t cut = now + OPT(srv, STOP_LINGER_TIME);
        if (cut < c->st.linger.deadline)
            c->st.linger.deadline = cut;
    }
    TAILQ_REMOVE(&srv->conns, c, link);
    TAILQ_INSERT_TAIL(&srv->lingering, c, link);
    srv->nlingering++;
    srv->cnt[GRACE_CNT_LINGERING]++;
    CNT(srv, LINGER_STARTED);
    linger_arm(c, now);
    if (srv->nlingering > (size_t)OPT(srv, MAX_LINGERING)) {
        struct grace_conn *old = TAILQ_FIRST(&srv->lingering);
        grace__conn_enter(old);
        linger_end(old, GRACE_CNT_LINGER_EVICTED);
        grace__conn_leave(old);
    }
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
static enum grace_counter linger_extend(struct grace_conn *c, int64_t now)
{
    struct grace_server *srv = c->srv;
    int64_t hard = c->st.linger.start + OPT(srv, LINGER_MAX_TIME);
    int64_t next = slot_ms(srv) < RATE_PERIOD ? slot_ms(srv) : RATE_PERIOD;

    if (srv->stopping || now >= hard || !c->st.linger.upload)
        return GRACE_CNT_LINGER_TOTAL_TIME;
    /* all of a known body is here: the client reads now; linger-timeout ends it */
    if (c->st.linger.left > 0 && !keeps_up(c, now, hard))
        return GRACE_CNT_LINGER_TOO_SLOW;
    if (!c->linger_extended) {
        c->linger_extended = 1;
        CNT(srv, LINGER_EXTENDED);
    }
    c->st.linger.deadline = now + next < hard ? now + next : hard;
    return GRACE_CNT__COUNT;
}

void grace__linger_timer(struct grace_conn *c)
{
    int64_t now = grace__now_ms();
    enum grace_counter how;

    if (now >= c->st.linger.last_ms + OPT(c->srv, LINGER_TIMEOUT)) {
        linger_end(c, GRACE_CNT_LINGER_IDLE_TIMEOUT);
        return;
    }
    if (now < c->st.linger.deadline) { /* early: the idle bound moved on */
        linger_arm(c, now);
        return;
    }
    how = linger_extend(c, now);
    if (how != GRACE_CNT__COUNT)
        linger_end(c, how);
    else
        linger_arm(c, now);
}

/* A graceful stop: cut the remaining linger time short. */
void grace__linger_stop(struct grace_conn *c)
{
    int64_t cut = grace__now_ms() + OPT(c->srv, STOP_LINGER_TIME);
    if (cut < c->st.linger.deadline)
        c->st.linger.deadline = cut;
    linger_arm(c, grace__now_ms());
}
