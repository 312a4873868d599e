/*
 * linger.c - the graceful close.
 *
 * A connection that must close after a response never close()s with
 * unread data in the socket: the kernel would answer the client's next
 * segment with a reset and the client could lose the response. Instead:
 *   1. CS_CLOSE_WAIT: keep reading (and discarding) while the output drains;
 *   2. once it is empty: shutdown(SHUT_WR) sends our FIN after the response;
 *   3. CS_LINGER: the connection gives its slot back (conn.c) and its read
 *      event discards what the client still sends (MSG_TRUNC: no copy),
 *      until the client closes, goes quiet for linger-timeout, linger-time
 *      has passed, or linger-bytes were discarded. The read event's timeout
 *      is the timer. Only timers and events: never a sleep.
 */
#include "internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How much one read event may discard before yielding to the loop. */
#define LINGER_BUDGET (1u << 20)
/* The most one recv() discards. */
#define DISCARD_CHUNK (256u << 10)

/* Monotonic milliseconds: deadlines that survive clock changes. */
int64_t grace__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void grace__conn_close_graceful(struct grace_conn *c)
{
    if (c->state >= CS_CLOSE_WAIT)
        return;
    c->state = CS_CLOSE_WAIT;
    event_del(c->slot->timer);
    grace__conn_discard_input(c);
    /* keep reading: a client blocked in send() must not stall our writes */
    c->read_paused = 0;
    grace__conn_watch_input(c);
    grace__conn_flush(c); /* calls grace__conn_output_drained() once empty */
}

static void linger_arm(struct grace_conn *c)
{
    int64_t now = grace__now_ms(), idle = now + OPT(c->srv, LINGER_TIMEOUT);
    int64_t until = idle < c->linger_deadline ? idle : c->linger_deadline;
    int64_t ms = until > now ? until - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(c->rd, &tv);
}

static void linger_end(struct grace_conn *c, enum grace_counter how)
{
    c->srv->cnt[how]++;
    grace__conn_destroy(c);
}

/*
 * Drop up to n bytes of what the client sent. On Linux, TCP + MSG_TRUNC
 * discards in the kernel without copying; the buffer is never written but
 * must exist (and tools like valgrind check that it does). Elsewhere the
 * bytes are copied into it and forgotten.
 */
static ssize_t discard(struct grace_server *srv, evutil_socket_t fd, size_t n)
{
    if (!srv->discard_buf && !(srv->discard_buf = malloc(DISCARD_CHUNK)))
        return -1;
    if (n > DISCARD_CHUNK)
        n = DISCARD_CHUNK;
#if defined(__linux__)
    return recv(fd, srv->discard_buf, n, MSG_TRUNC | MSG_DONTWAIT);
#else
    return recv(fd, srv->discard_buf, n, MSG_DONTWAIT);
#endif
}

/*
 * The read event of a closing connection: discard. In CS_CLOSE_WAIT the
 * client's EOF ends the connection once the output is out; in CS_LINGER
 * every ending is counted.
 */
void grace__linger_read(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;
    size_t budget = LINGER_BUDGET;
    int lingering = c->state == CS_LINGER, got = 0;

    while (budget > 0) {
        ssize_t n = discard(srv, c->fd, budget);
        if (n > 0) {
            got = 1;
            budget -= (size_t)n < budget ? (size_t)n : budget;
            srv->cnt[GRACE_CNT_BYTES_DISCARDED] += (uint64_t)n;
            if (!lingering)
                continue;
            c->linger_bytes += (uint64_t)n;
            if (c->linger_bytes >= (uint64_t)OPT(srv, LINGER_BYTES)) {
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
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (lingering) { /* ECONNRESET and friends end it, nothing more */
            linger_end(c, GRACE_CNT_LINGER_ERROR);
            return;
        } else { /* the response cannot arrive any more */
            grace__conn_abort(c, -ECONNRESET);
            return;
        }
    }
    if (got && lingering)
        linger_arm(c);
}

void grace__conn_output_drained(struct grace_conn *c)
{
    struct grace_server *srv = c->srv;

    if (c->peer_eof || !OPT(srv, LINGER)) {
        /* the client already closed; or linger=off, the naive close */
        grace__conn_destroy(c);
        return;
    }
    if (shutdown(c->fd, SHUT_WR) < 0) {
        grace__conn_destroy(c);
        return;
    }
    grace__conn_discard_input(c);
    /* from here on a lingering socket costs its read event and struct
     * grace_conn: the slot goes back when the callbacks return */
    c->state = CS_LINGER;
    c->linger_bytes = 0;
    c->linger_deadline = grace__now_ms() + OPT(srv, LINGER_TIME);
    if (srv->stopping) {
        int64_t cut = grace__now_ms() + OPT(srv, STOP_LINGER_TIME);
        if (cut < c->linger_deadline)
            c->linger_deadline = cut;
    }
    TAILQ_REMOVE(&srv->conns, c, link);
    TAILQ_INSERT_TAIL(&srv->lingering, c, link);
    srv->nlingering++;
    srv->cnt[GRACE_CNT_LINGERING]++;
    CNT(srv, LINGER_STARTED);
    linger_arm(c);
    if (srv->nlingering > (size_t)OPT(srv, MAX_LINGERING)) {
        struct grace_conn *old = TAILQ_FIRST(&srv->lingering);
        grace__conn_enter(old);
        linger_end(old, GRACE_CNT_LINGER_EVICTED);
        grace__conn_leave(old);
    }
}

void grace__linger_timer(struct grace_conn *c)
{
    linger_end(c, grace__now_ms() >= c->linger_deadline ? GRACE_CNT_LINGER_TOTAL_TIME
                                                 : GRACE_CNT_LINGER_IDLE_TIMEOUT);
}

/* A graceful stop: cut the remaining linger time short. */
void grace__linger_stop(struct grace_conn *c)
{
    int64_t cut = grace__now_ms() + OPT(c->srv, STOP_LINGER_TIME);
    if (cut < c->linger_deadline)
        c->linger_deadline = cut;
    linger_arm(c);
}
