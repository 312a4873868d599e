/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stream.c - upgrades (101 Switching Protocols) and CONNECT tunnels: the
 * connection as a raw bidirectional stream.
 *
 * An accepted upgrade hands the connection to this file's protocol table
 * (grace__stream_proto, through grace__conn_switch) and keeps everything
 * else of the engine: the same slot, read event, write path, transport
 * (plain or TLS) and write-timeout, plus stream-idle-timeout from the last
 * byte either way (the engine's progress stamps) on the slot's timer. The
 * engine hands the input buffer to stream_input() instead of the parser,
 * and an empty output buffer to stream_output(). So the bytes pipelined
 * after the request's headers, already in the input buffer, are simply the
 * stream's first input, and input is bounded like any other (the read
 * event stops at the input limit while the application pauses).
 *
 * Lifetime: the stream is the application's handle on the connection.
 * It is released after its close callback, by grace_stream_close() or by
 * grace_stream_take_fd(); while one of its callbacks runs it stays valid
 * (busy count), whatever the callback calls.
 */
#include "stream.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct grace_stream {
    struct grace_conn *conn; /* NULL once ended, closed or taken */
    grace_stream_read_cb on_read;
    grace_stream_drain_cb on_drain;
    grace_stream_close_cb on_close;
    void *arg;
    size_t inflight;         /* input bytes being shown to on_read */
    int64_t since;           /* the upgrade (progress before it does not count) */
    int64_t timeout;         /* stream-idle-timeout, or the stream's own */
    int busy;                /* callbacks on the stack */
    unsigned paused : 1, eof_delivered : 1, want_drain : 1, stop_pending : 1, dead : 1,
        taken : 1;
};

static void st_hold(struct grace_stream *st)
{
    st->busy++;
}

static void st_release(struct grace_stream *st)
{
    if (--st->busy == 0 && st->dead)
        free(st);
}

/* The application is done with st: free it now or after its callbacks. */
static void st_drop(struct grace_stream *st)
{
    st->dead = 1;
    if (!st->busy)
        free(st);
}

/* The stream's state in the slot (its protocol area): the records of the
 * responses still on their way, the 101's. The connection keeps them while
 * the application is gone (closed, taken). */
struct stream_slot {
    struct grace_reports reports;
};

static struct grace_reports *stream_reports(const struct grace_conn *c)
{
    struct stream_slot *ss = (void *)c->slot->area;
    return &ss->reports;
}

/* Unlink stream and connection; the connection goes on without it. */
static void st_unlink(struct grace_stream *st)
{
    if (st->conn)
        st->conn->ps = NULL;
    st->conn = NULL;
}

/* ---------------------------------------------------------------- accept */

struct grace_stream *grace__stream_new(void)
{
    return calloc(1, sizeof(struct grace_stream));
}

void grace__stream_attach(struct grace_conn *c, struct grace_stream *st,
                          struct grace_reports *reports)
{
    struct grace_reports l;

    grace__report_move(&l, reports); /* reports may lie in the slot area it takes */
    grace__conn_switch(c, &grace__stream_proto, st);
    grace__report_move(stream_reports(c), &l);
}

/* ---------------------------------------------------------------- the protocol */

/* The connection is the stream's now (grace__conn_switch). */
static int stream_start(struct grace_conn *c, void *arg)
{
    struct grace_stream *st = arg;

    st->conn = c;
    c->ps = st;
    st->since = grace__now_ms();
    st->timeout = OPT(c->srv, STREAM_IDLE_TIMEOUT);
    return 0;
}

/* A graceful stop or the idle timeout reached the stream (from the loop):
 * the application may write a last message or take the socket, then it is
 * closed gracefully. */
static void end_graceful(struct grace_conn *c, struct grace_stream *st, int err)
{
    st_hold(st);
    if (st->on_close)
        st->on_close(st, err, st->arg);
    if (st->conn == c) { /* neither closed nor taken in the callback */
        st_unlink(st);
        grace__conn_close_graceful(c);
    }
    st->dead = 1;
    st_release(st);
}

/*
 * Hand buffered input to on_read, one contiguous piece per call, then the
 * end of stream once. Returns 1 if it should be called again.
 */
static int input_piece(struct grace_conn *c)
{
    struct grace_stream *st = c->ps;
    struct evbuffer *in = c->slot->in;
    struct evbuffer_iovec v;

    if (!st)
        return 0;
    if (st->stop_pending) {
        st->stop_pending = 0;
        end_graceful(c, st, -ESHUTDOWN);
        return 0;
    }
    if (st->paused || !st->on_read)
        return 0;
    if (evbuffer_get_length(in)) {
        evbuffer_peek(in, -1, NULL, &v, 1);
        st->inflight = v.iov_len;
        st_hold(st);
        c->delivering = 1; /* a close inside only marks the input for discarding */
        st->on_read(st, v.iov_base, v.iov_len, st->arg);
        c->delivering = 0;
        if (!st->taken)
            evbuffer_drain(in, st->inflight);
        st->inflight = 0;
        if (c->discard_after) {
            c->discard_after = 0;
            grace__conn_discard_input(c);
        }
        int more = c->ps == st;
        st_release(st);
        return more;
    }
    if (c->peer_eof && !st->eof_delivered) {
        st->eof_delivered = 1;
        st_hold(st);
        st->on_read(st, NULL, 0, st->arg);
        st_release(st);
    }
    return 0;
}

static void stream_input(struct grace_conn *c)
{
    while (input_piece(c))
        ;
}

/* Bytes were written (the 101's record), or the output became empty. */
static int stream_output(struct grace_conn *c, enum grace_out what)
{
    struct grace_stream *st = c->ps;

    if (what == GRACE_OUT_SENT && stream_reports(c)->head)
        grace__report_written(stream_reports(c), c->slot->written);
    if (what != GRACE_OUT_EMPTY || !st || !st->want_drain)
        return 0;
    st->want_drain = 0;
    if (st->on_drain) {
        st_hold(st);
        st->on_drain(st, st->arg);
        st_release(st);
    }
    return 0;
}

/* The connection ends under the stream (reset, timeout, TLS error, server
 * freed): tell the application once; then the records left are reported
 * (err; 0, all written: the never completed ones -ECONNRESET). */
static void stream_end(struct grace_conn *c, int err)
{
    struct grace_stream *st = c->ps;

    if (st) {
        grace__conn_reason(c, err);
        st_unlink(st);
        st_hold(st);
        if (st->on_close)
            st->on_close(st, err, st->arg);
        st->dead = 1;
        st_release(st);
    }
    if (c->slot)
        grace__report_all(stream_reports(c), c->slot->written, err ? err : -ECONNRESET);
}

/* stream-idle-timeout from the last byte either way, or the upgrade. */
static int64_t stream_deadline(const struct grace_conn *c, enum grace_counter *why)
{
    const struct grace_stream *st = c->ps;
    int64_t since;

    if (!st)
        return 0;
    since = c->slot->read_ms > c->slot->wrote_ms ? c->slot->read_ms : c->slot->wrote_ms;
    if (st->since > since)
        since = st->since;
    *why = GRACE_CNT_TIMEOUT_STREAM;
    return since + st->timeout;
}

/* stream-idle-timeout passed (the slot's timer). */
static void stream_timeout(struct grace_conn *c, enum grace_counter why)
{
    grace__conn_timed_out(c, why);
    if (c->ps)
        end_graceful(c, c->ps, -ETIMEDOUT);
    else
        grace__conn_close_graceful(c);
}

/* A drop or grace_server_stop(): the close callback runs from the loop, not
 * from inside the stop call. The stop's deadline cuts the stream. */
static void stream_stop(struct grace_conn *c, enum grace_stop how)
{
    struct grace_stream *st = c->ps;

    if (how == GRACE_STOP_CUT) {
        grace__conn_abort(c, -ECANCELED);
        return;
    }
    if (!st)
        return;
    st->stop_pending = 1;
    grace__conn_schedule(c);
}

const struct grace_proto grace__stream_proto = {
    .name = "stream",
    .slot_size = sizeof(struct stream_slot),
    .start = stream_start,
    .input = stream_input,
    .output = stream_output,
    .timeout = stream_timeout,
    .stop = stream_stop,
    .end = stream_end,
    .deadline = stream_deadline,
};

/* ---------------------------------------------------------------- API */

void grace_stream_set_callbacks(struct grace_stream *st, grace_stream_read_cb on_read,
                                grace_stream_drain_cb on_drain, grace_stream_close_cb on_close,
                                void *arg)
{
    if (!st)
        return;
    st->on_read = on_read;
    st->on_drain = on_drain;
    st->on_close = on_close;
    st->arg = arg;
    if (st->conn)
        grace__conn_schedule(st->conn); /* input may be waiting */
}

int grace_stream_write(struct grace_stream *st, const void *data, size_t len)
{
    struct grace_conn *c;
    size_t pending;
    int rc = 0;

    if (!st || (len && !data))
        return -EINVAL;
    c = st->conn;
    if (!c || c->state != CS_ACTIVE || c->slot->write_err)
        return -ENOTCONN;
    pending = grace__buffered_out(c);
    if (pending && pending + len > (size_t)OPT(c->srv, OUTPUT_HIGH_WATER)) {
        st->want_drain = 1;
        return -ENOBUFS;
    }
    if (!len)
        return 0;
    grace__conn_enter(c);
    if (evbuffer_add(c->slot->out, data, len) < 0) {
        rc = -ENOMEM;
    } else {
        grace__conn_flush(c);
        if (c->state == CS_ACTIVE && grace__buffered_out(c))
            st->want_drain = 1;
    }
    grace__conn_leave(c);
    return rc;
}

size_t grace_stream_pending(const struct grace_stream *st)
{
    return st && st->conn ? grace__buffered_out(st->conn) : 0;
}

void grace_stream_pause(struct grace_stream *st)
{
    if (st)
        st->paused = 1;
}

void grace_stream_resume(struct grace_stream *st)
{
    if (!st || !st->paused)
        return;
    st->paused = 0;
    if (st->conn)
        grace__conn_schedule(st->conn);
}

void grace_stream_close(struct grace_stream *st)
{
    struct grace_conn *c;

    if (!st || st->dead)
        return;
    c = st->conn;
    st_unlink(st);
    if (c) {
        grace__conn_enter(c);
        grace__conn_close_graceful(c);
        grace__conn_leave(c);
    }
    st_drop(st);
}

int grace_stream_take_fd(struct grace_stream *st, struct evbuffer *unread)
{
    struct grace_conn *c;
    struct evbuffer *in;
    int fd;

    if (!st || !unread)
        return -EINVAL;
    c = st->conn;
    if (!c || c->state != CS_ACTIVE)
        return -ENOTCONN;
    if (!c->tp->raw) /* a TLS session's state cannot be handed out */
        return -ENOTSUP;
    if (grace__buffered_out(c)) /* e.g. the 101, queued in this same pump */
        grace__conn_write_now(c);
    if (c->state != CS_ACTIVE)
        return -ENOTCONN;
    if (grace__buffered_out(c))
        return -EBUSY;
    in = c->slot->in;
    if (!st->inflight) {
        if (evbuffer_add_buffer(unread, in) < 0)
            return -ENOMEM;
    } else {
        /* inside on_read: its piece is delivered, and its memory must stay
         * valid until the callback returns; the rest is copied */
        size_t n = evbuffer_get_length(in) - st->inflight;
        struct evbuffer_ptr pos;
        char *tmp = n ? malloc(n) : NULL;
        if (n && !tmp)
            return -ENOMEM;
        if (n) {
            evbuffer_ptr_set(in, &pos, st->inflight, EVBUFFER_PTR_SET);
            evbuffer_copyout_from(in, &pos, tmp, n);
            if (evbuffer_add(unread, tmp, n) < 0) {
                free(tmp);
                return -ENOMEM;
            }
        }
        free(tmp);
    }
    st->taken = 1;
    fd = c->sock.fd;
    st_unlink(st);
    grace__conn_enter(c);
    c->sock.fd = -1; /* forgotten, not closed */
    grace__conn_destroy(c);
    grace__conn_leave(c);
    st_drop(st);
    return fd;
}

int grace_stream_set_idle_timeout(struct grace_stream *st, int64_t ms)
{
    struct grace_conn *c;

    if (!st || ms < 0 || ms > 86400000)
        return -EINVAL;
    c = st->conn;
    if (!c || c->state != CS_ACTIVE)
        return -ENOTCONN;
    grace__conn_enter(c); /* leaving arms the timer if the deadline is earlier */
    st->timeout = ms ? ms : OPT(c->srv, STREAM_IDLE_TIMEOUT);
    grace__conn_leave(c);
    return 0;
}

const char *grace_stream_tls_version(const struct grace_stream *st)
{
    return st && st->conn ? grace__conn_tls_version(st->conn) : NULL;
}

struct grace_server *grace_stream_server(const struct grace_stream *st)
{
    return st && st->conn ? st->conn->srv : NULL;
}
