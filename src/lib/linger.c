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
 *      passed, or linger-bytes were discarded. The read event's timeout is
 *      the timer. Only timers and events: never a sleep.
 *
 * Past linger-time, a client whose remaining body is known (Content-Length),
 * fits within linger-bytes and keeps arriving at linger-min-rate or faster
 * is discarded until it is done, re-checked every second, up to
 * linger-max-time: a slow honest upload still reads its answer.
 */
#include "internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>

/* How much one read event may discard before yielding to the loop. */
#define LINGER_BUDGET (1u << 20)
/* How often a linger past linger-time checks the client's rate. */
#define RATE_PERIOD 1000

/* Body bytes the client still owes, as far as we know (UINT64_MAX: unknown). */
static uint64_t body_left(const struct grace_conn *c)
{
    const struct grace_parser *p;
    uint64_t buffered;

    if (c->state == CS_IDLE || !c->slot)
        return 0;
    p = &c->slot->parser;
    buffered = evbuffer_get_length(c->slot->in);
    if (grace_parser_body_done(p))
        return 0;
    if ((c->state != CS_ACTIVE && c->state != CS_DRAIN) ||
        p->req.framing != GRACE_FRAMING_LENGTH)
        return UINT64_MAX;
    return p->remaining > buffered ? p->remaining - buffered : 0;
}

void grace__conn_close_graceful(struct grace_conn *c)
{
    if (c->state >= CS_CLOSING)
        return;
    c->st.linger.left = body_left(c);
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
 * The read event of a closing connection: discard. In CS_CLOSING the
 * client's EOF ends the connection once the output is out; in CS_LINGER
 * every ending is counted.
 */
void grace__linger_read(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    size_t budget = LINGER_BUDGET;
    int lingering = c->state == CS_LINGER, got = 0;

    while (budget > 0) {
        ssize_t n = c->tp->discard(c, budget);
        if (n > 0) {
            got = 1;
            budget -= (size_t)n < budget ? (size_t)n : budget;
            srv->cnt[GRACE_CNT_BYTES_DISCARDED] += (uint64_t)n;
            if (c->st.linger.left != UINT64_MAX)
                c->st.linger.left -= (uint64_t)n < c->st.linger.left ? (uint64_t)n
                                                                       : c->st.linger.left;
            if (!lingering)
                continue;
            c->st.linger.bytes += (uint64_t)n;
            if (c->st.linger.bytes >= (uint64_t)OPT(srv, LINGER_BYTES)) {
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
    if (got && lingering) {
        c->st.linger.last_ms = grace__now_ms();
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
    if (c->tp->shutdown(c) < 0) {
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
    c->st.linger.mark_ms = now;
    c->st.linger.mark_bytes = 0;
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
 * linger-time has passed: go on only for a steady sender of a known
 * remainder. Returns the counter that ends the linger, or GRACE_CNT__COUNT
 * to go on (the deadline moved).
 */
static enum grace_counter linger_extend(struct grace_conn *c, int64_t now)
{
    struct grace_server *srv = c->srv;
    int64_t hard = c->st.linger.start + OPT(srv, LINGER_MAX_TIME);
    uint64_t since = c->st.linger.bytes - c->st.linger.mark_bytes;
    int64_t ms = now - c->st.linger.mark_ms;

    /* the byte cap ends a linger at linger-bytes: only a remainder that ends
     * before it is worth waiting for */
    if (srv->stopping || now >= hard || c->st.linger.left == UINT64_MAX ||
        c->st.linger.left + c->st.linger.bytes >= (uint64_t)OPT(srv, LINGER_BYTES))
        return GRACE_CNT_LINGER_TOTAL_TIME;
    /* all of the body is here: the client reads now; linger-timeout ends it */
    if (c->st.linger.left > 0 &&
        since * 1000 < (uint64_t)OPT(srv, LINGER_MIN_RATE) * (uint64_t)(ms > 0 ? ms : 1))
        return GRACE_CNT_LINGER_TOO_SLOW;
    if (!c->linger_extended) {
        c->linger_extended = 1;
        CNT(srv, LINGER_EXTENDED);
    }
    c->st.linger.mark_ms = now;
    c->st.linger.mark_bytes = c->st.linger.bytes;
    c->st.linger.deadline = now + RATE_PERIOD < hard ? now + RATE_PERIOD : hard;
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
