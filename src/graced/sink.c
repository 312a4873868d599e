/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sink.c - a request's body into an open file, for PUT and a resumable
 * upload's PATCH. Spliced by the library when it can (plain, a known
 * length); otherwise through memory, written a step per loop iteration so
 * one upload never holds the loop, with the client paused while the disk
 * is behind (memory stays near DISK_HIGH whatever the client sends).
 */
#include "graced.h"

#include <errno.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#define DISK_HIGH (1u << 20) /* pause the client above this much unwritten */
#define DISK_STEP (1u << 20) /* written per loop iteration */

struct graced_sink {
    struct grace_request *req;
    int fd;
    struct evbuffer *buf; /* received, not yet on disk */
    struct event *flush_ev;
    int64_t received;
    int ended, paused, over; /* over: done was called, or cancelled */
    graced_sink_done_cb done;
    void *arg;
};

static void finish(struct graced_sink *s, int err)
{
    s->over = 1;
    s->done(err, s->arg); /* may free s */
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct graced_sink *s = arg;
    (void)fd;
    (void)what;
    if (s->over)
        return;
    while (evbuffer_get_length(s->buf)) {
        if (evbuffer_write_atmost(s->buf, s->fd, DISK_STEP) < 0) {
            finish(s, errno);
            return;
        }
        if (!s->ended)
            break; /* yield to the network; come back if still behind */
    }
    if (s->ended && !evbuffer_get_length(s->buf)) {
        finish(s, 0);
        return;
    }
    if (evbuffer_get_length(s->buf) >= DISK_HIGH) {
        event_active(s->flush_ev, EV_TIMEOUT, 1);
    } else if (s->paused) {
        s->paused = 0;
        grace_request_resume(s->req);
    }
}

static void on_data(struct grace_request *req, const char *data, size_t len, void *arg)
{
    struct graced_sink *s = arg;
    if (s->over)
        return;
    if (evbuffer_add(s->buf, data, len) < 0) {
        finish(s, ENOMEM);
        return;
    }
    s->received += (int64_t)len;
    if (evbuffer_get_length(s->buf) >= DISK_HIGH) {
        if (!s->paused) {
            s->paused = 1;
            grace_request_pause(req);
        }
        event_active(s->flush_ev, EV_TIMEOUT, 1);
    }
}

static void on_end(struct grace_request *req, void *arg)
{
    struct graced_sink *s = arg;
    (void)req;
    s->ended = 1;
    if (!s->over)
        event_active(s->flush_ev, EV_TIMEOUT, 1);
}

/* The library moved the whole body into the file (splice, no copy). */
static void on_spliced(struct grace_request *req, void *arg)
{
    struct graced_sink *s = arg;
    s->received = grace_request_content_length(req);
    on_end(req, arg);
}

struct graced_sink *graced_sink_new(struct event_base *base, graced_sink_done_cb done, void *arg)
{
    struct graced_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fd = -1;
    s->done = done;
    s->arg = arg;
    s->buf = evbuffer_new();
    s->flush_ev = event_new(base, -1, 0, flush_cb, s);
    if (!s->buf || !s->flush_ev) {
        graced_sink_free(s);
        return NULL;
    }
    return s;
}

int graced_sink_start(struct graced_sink *s, struct grace_request *req, int fd, int splice)
{
    int st = -ENOTSUP;
    s->req = req;
    s->fd = fd;
    if (splice)
        st = grace_request_body_to_fd(req, fd, on_spliced, s);
    if (st == -ENOTSUP) /* TLS, chunked, none: through memory */
        st = grace_request_read_body(req, on_data, on_end, s);
    return st < 0 ? st : 0;
}

int64_t graced_sink_received(const struct graced_sink *s)
{
    return s ? s->received : 0;
}

int64_t graced_sink_buffered(const struct graced_sink *s)
{
    return s ? (int64_t)evbuffer_get_length(s->buf) : 0;
}

int graced_sink_write_out(struct graced_sink *s)
{
    while (s && evbuffer_get_length(s->buf))
        if (evbuffer_write_atmost(s->buf, s->fd, -1) < 0)
            return -errno;
    return 0;
}

void graced_sink_cancel(struct graced_sink *s)
{
    if (s)
        s->over = 1;
}

void graced_sink_free(struct graced_sink *s)
{
    if (!s)
        return;
    if (s->flush_ev)
        event_free(s->flush_ev);
    if (s->buf)
        evbuffer_free(s->buf);
    free(s);
}
