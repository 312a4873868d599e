/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * h2.c - an HTTP/2 connection: the protocol table the engine calls
 * (grace__h2_proto), nghttp2's server session and its callbacks, SETTINGS,
 * the GOAWAY phases of a stop, the floods, and the connection's deadlines.
 *
 * The session does no I/O: the engine's input buffer is fed to
 * nghttp2_session_mem_recv piece by piece, and frames nghttp2_session_mem_send
 * produces go into the engine's output while it is below output-high-water.
 * nghttp2's callbacks only record (a head complete, DATA, a close); after
 * each feed the run acts: dispatch the heads, hand bodies over, fire drains,
 * send, free closed streams. Application calls on a stream (h2_req.c) only
 * submit and ask for a run (grace__h2_kick): nghttp2 is never re-entered
 * from under its own callbacks, and nothing is freed under a walk.
 */
#include "h2.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Empty frames (DATA without payload nor END_STREAM, CONTINUATION without
 * a byte) a connection may send in its life, and CONTINUATION frames per
 * header block: a legitimate client needs a handful of either. */
#define EMPTY_FRAMES_MAX 1000
#define CONTINUATIONS_MAX 32

static void h2_send(struct h2 *h);
/* Runs in a row for work the run itself made (a reply from a handler, a
 * drain callback that asks again); more waits for the event loop. */
#define RUN_ROUNDS 4
static void goaway(struct h2 *h);

/* ---------------------------------------------------------------- choosing */

/* Prior-knowledge h2c: the client's first bytes are the connection preface. */
static int h2_sniff(const char *b, size_t n)
{
    size_t m = n < sizeof(preface) - 1 ? n : sizeof(preface) - 1;
    if (memcmp(b, preface, m))
        return 0;
    return m < sizeof(preface) - 1 ? -1 : 1;
}

/* ---------------------------------------------------------------- helpers */

/* Too much of something cheap (resets, empty frames, CONTINUATIONs): the
 * connection ends with GOAWAY(ENHANCE_YOUR_CALM); nothing more is read. */
static void calm(struct h2 *h)
{
    if (h->calmed)
        return;
    h->calmed = 1;
    CNT(h->c->srv, H2_CALM);
    nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
    h->goaway = h->closing = 1;
}

static struct h2s *stream_of(struct h2 *h, int32_t id)
{
    return id ? nghttp2_session_get_stream_user_data(h->s, id) : NULL;
}

/* ---------------------------------------------------------------- callbacks */

/*
 * The frame headers as they pass, before nghttp2 sees the bytes: what costs
 * us little per frame but a client nothing to send, counted here whatever
 * nghttp2's version checks (1.52 has no CONTINUATION bound of its own).
 * A header block goes on for at most CONTINUATIONS_MAX frames; frames
 * without payload that do nothing (DATA without END_STREAM, CONTINUATION,
 * HEADERS) at most EMPTY_FRAMES_MAX in a connection's life.
 */
static void scan_frames(struct h2 *h, const uint8_t *p, size_t n)
{
    while (n && !h->calmed) {
        size_t k;
        if (h->scan_preface) { /* the client's 24-byte preface first */
            k = n < h->scan_preface ? n : h->scan_preface;
            h->scan_preface -= (uint8_t)k;
        } else if (h->scan_skip) {
            k = n < h->scan_skip ? n : (size_t)h->scan_skip;
            h->scan_skip -= k;
        } else {
            size_t want = 9u - h->scan_have;
            k = want < n ? want : n;
            memcpy(h->scan_hd + h->scan_have, p, k);
            h->scan_have += (uint8_t)k;
            if (h->scan_have == 9) {
                uint32_t len = (uint32_t)h->scan_hd[0] << 16 | (uint32_t)h->scan_hd[1] << 8 |
                               h->scan_hd[2];
                uint8_t type = h->scan_hd[3], flags = h->scan_hd[4];
                h->scan_have = 0;
                h->scan_skip = len;
                if (type == NGHTTP2_HEADERS)
                    h->cont_frames = 0;
                if (type == NGHTTP2_CONTINUATION && ++h->cont_frames > CONTINUATIONS_MAX)
                    calm(h);
                if (!len && !(flags & NGHTTP2_FLAG_END_STREAM) &&
                    (type == NGHTTP2_DATA || type == NGHTTP2_HEADERS ||
                     type == NGHTTP2_CONTINUATION) &&
                    ++h->empty_frames > EMPTY_FRAMES_MAX)
                    calm(h);
            }
        }
        p += k;
        n -= k;
    }
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct h2 *h = arg;
    struct h2s *st;

    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (h->goaway) /* past our GOAWAY: never served */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (!(st = grace__h2s_new(h, f->hd.stream_id)))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
    h->stop_new |= h->stopping;
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
    struct h2s *st = stream_of(arg, f->hd.stream_id);

    if (!st || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
        return grace__h2s_header(st, name, nl, value, vl);
    return grace__h2s_trailer(st, name, nl, value, vl); /* nghttp2 checked their form */
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct h2 *h = arg;
    struct h2s *st = stream_of(h, f->hd.stream_id);

    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (!st)
            break;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
            st->ready = 1;
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
            st->end_in = 1;
        break;
    case NGHTTP2_DATA:
        if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            st->end_in = 1;
        break;
    case NGHTTP2_RST_STREAM: {
        /* rapid reset (CVE-2023-44487): streams opened and cancelled
         * before their answer cost a frame each, and at most
         * h2-reset-rate of them a second */
        int64_t now = grace__now_ms();
        if (st && st->end_sent)
            break;
        if (now - h->rst_window >= 1000) {
            h->rst_window = now;
            h->rst_count = 0;
        }
        if (++h->rst_count > (unsigned)OPT(h->c->srv, H2_RESET_RATE))
            calm(h);
        break;
    }
    default:
        break;
    }
    grace__h2_kick(h);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *arg)
{
    struct h2s *st = stream_of(arg, id);

    if (!st) { /* a stream we let go of: the window stays open */
        nghttp2_session_consume(s, id, len);
        return 0;
    }
    grace__h2s_data(st, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *arg)
{
    struct h2s *st = stream_of(arg, id);

    if (st)
        grace__h2s_closed(st, code);
    return 0;
}

/* Our final response's HEADERS: a :status, not 1xx (trailers have none). */
static int final_head(const nghttp2_frame *f)
{
    const nghttp2_nv *nv = f->headers.nva;
    return f->headers.nvlen && nv[0].namelen == 7 && !memcmp(nv[0].name, ":status", 7) &&
           nv[0].valuelen && nv[0].value[0] != '1';
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct h2s *st = stream_of(arg, f->hd.stream_id);

    if (f->hd.type == NGHTTP2_RST_STREAM)
        CNT(((struct h2 *)arg)->c->srv, H2_RESETS);
    if (!st)
        return 0;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    /* a response's bytes as HTTP/1.1 would count them: its HEADERS frames
     * whole, its DATA frames' payload (the frame header is framing) */
    st->sent += f->hd.length + (f->hd.type == NGHTTP2_DATA ? 0 : 9);
    if (f->hd.type == NGHTTP2_HEADERS && final_head(f))
        grace__report_head(&st->reports, st->sent);
    /* nghttp2 tells of a frame as mem_send hands over its last piece:
     * h2_send notes where it ends in the output once it is there */
    ((struct h2 *)arg)->framed = st;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        st->end_framed = 1;
        grace__h2s_sent_end(st);
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int err, void *arg)
{
    struct h2s *st = stream_of(arg, f->hd.stream_id);

    if (st && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA))
        grace__h2s_sent_end(st); /* the stream is gone: nothing more will go */
    return 0;
}

/* ---------------------------------------------------------------- the run */

/* Feed the buffered input to the session. A client that does not read our
 * output (above output-high-water) is not read either: SETTINGS and PING
 * floods end there, with nghttp2's max-outbound-ack behind. */
static void recv_input(struct h2 *h)
{
    struct grace_conn *c = h->c;
    struct evbuffer *in = c->slot->in;
    size_t len;

    if (grace__buffered_out(c) > (size_t)OPT(c->srv, OUTPUT_HIGH_WATER)) {
        h->paused_out = 1; /* h2_room() says 0; FLUSHED takes input again */
        return;
    }
    while (!h->dead && (len = evbuffer_get_length(in)) > 0) {
        struct evbuffer_iovec v;
        h2_ssize n;

        if (h->closing && h->goaway && !nghttp2_session_want_read(h->s)) {
            grace__conn_discard_input(c);
            return;
        }
        evbuffer_peek(in, -1, NULL, &v, 1);
        scan_frames(h, v.iov_base, v.iov_len);
        if (h->calmed) { /* a flood: nghttp2 is not fed any more */
            grace__conn_discard_input(c);
            return;
        }
        n = h2_mem_recv(h->s, v.iov_base, v.iov_len);
        if (n < 0) {
            /* a bad preface, a flood nghttp2 saw, out of memory: GOAWAY if
             * it queued one, then the graceful close */
            if (n == NGHTTP2_ERR_FLOODED)
                CNT(c->srv, H2_CALM);
            grace__conn_discard_input(c);
            h->goaway = h->closing = 1;
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
}

/* The client's EOF: no frame will come. Requests whose body is not
 * complete never will be; the others are still answered, then the close. */
static void peer_gone(struct h2 *h)
{
    struct h2s *st;

    if (!h->goaway)
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR,
                              NULL, 0);
    h->goaway = h->closing = 1;
    TAILQ_FOREACH(st, &h->streams, link) {
        if (h->dead)
            return;
        if (!st->end_in && !st->closed) {
            st->end_in = 1;
            st->ready = 0;
            grace__h2s_fail(st, 400, "request body incomplete", -ECONNRESET);
        }
    }
}

/* Free the streams nghttp2 has closed (never under a walk). */
static void reap(struct h2 *h)
{
    struct h2s *st, *next;
    size_t waiting = 0, cap = (size_t)OPT(h->c->srv, H2_MAX_STREAMS);

    /* answers whose reports wait for the socket hold their streams: at most
     * h2-max-streams of them, the oldest beyond are reported once framed */
    TAILQ_FOREACH(st, &h->streams, link)
        waiting += st->closed && st->reports.head;
    for (st = TAILQ_FIRST(&h->streams); st; st = next) {
        int was = st->closed && st->reports.head;
        next = TAILQ_NEXT(st, link);
        grace__h2s_report_now(st, waiting > cap);
        if (h->dead)
            return;
        waiting -= was && !st->reports.head;
        if (!st->closed || st->req || st->reports.head)
            continue;
        if (st->write_timeout > h->tail_wt) /* its last frames may still be queued */
            h->tail_wt = st->write_timeout;
        TAILQ_REMOVE(&h->streams, st, link);
        h->nstreams--;
        grace__h2s_free(st);
    }
    if (!h->nstreams && !h->idle_since)
        h->idle_since = grace__now_ms();
    if (!h->nstreams && h->stopping)
        goaway(h);
}

/* Streams a close must wait for: any, while the client may still send;
 * after its EOF only those with a request or an answer still going out. */
static int streams_busy(const struct h2 *h)
{
    const struct h2s *st;

    if (!h->c->peer_eof)
        return h->nstreams > 0;
    TAILQ_FOREACH(st, &h->streams, link)
        if (!st->closed && (st->req || (st->submitted && !st->end_sent)))
            return 1;
    return 0;
}

/* Once closing with no stream left and every frame out of nghttp2: our
 * GOAWAY, then the engine's graceful close (close_notify, FIN, linger). */
static void check_close(struct h2 *h)
{
    struct grace_conn *c = h->c;

    if (h->dead || c->state >= CS_CLOSING)
        return;
    if (!h->closing && (nghttp2_session_want_read(h->s) || nghttp2_session_want_write(h->s)))
        return;
    if (h->closing && streams_busy(h) &&
        (nghttp2_session_want_read(h->s) || nghttp2_session_want_write(h->s)))
        return;
    if (!h->goaway) {
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR,
                              NULL, 0);
        h->goaway = 1;
    }
    h2_send(h);
    if (h->dead || c->state >= CS_CLOSING || nghttp2_session_want_write(h->s))
        return; /* more once the output drains */
    grace__conn_close_graceful(c);
}

/* Frames out of nghttp2 into the engine's output, up to output-high-water;
 * the rest when it has drained (h2_output). */
static void h2_send(struct h2 *h)
{
    struct grace_conn *c = h->c;
    size_t hw = (size_t)OPT(c->srv, OUTPUT_HIGH_WATER);

    if (h->sending) {
        h->send_more = 1;
        return;
    }
    h->sending = 1;
    do {
        int got = 0;
        h->send_more = 0;
        while (!h->dead && c->slot && grace__buffered_out(c) < hw) {
            const uint8_t *p;
            h2_ssize n = h2_mem_send(h->s, &p);
            if (n <= 0) {
                if (n < 0) { /* out of memory: nothing sensible can go out */
                    h->sending = 0;
                    grace__conn_abort(c, -ENOMEM);
                    return;
                }
                break;
            }
            evbuffer_add(c->slot->out, p, (size_t)n);
            got = 1;
            h->released = 0;
            h->out_ms = grace__now_ms();
            if (h->framed) {
                h->framed->last_off = grace__conn_out_offset(c);
                h->framed = NULL;
            }
        }
        if (h->dead || !got)
            break;
        grace__conn_flush(c); /* an emptied output asks again: send_more */
    } while (h->send_more && !h->dead && c->state < CS_CLOSING);
    h->sending = 0;
}

/* HTTP/2's input (grace__h2_proto), and every run a kick asks for: feed the
 * session, then act on what it recorded. */
static void h2_input(struct grace_conn *c)
{
    struct h2 *h = c->ps;
    struct h2s *st;
    int rounds = 0;

    if (h->running) {
        h->again = 1;
        return;
    }
    h->running = 1;
    do {
        if (++rounds > RUN_ROUNDS) { /* the rest from the loop: never spin here */
            event_active(h->kick_ev, EV_TIMEOUT, 1);
            break;
        }
        h->again = 0;
        recv_input(h);
        if (c->peer_eof && !h->dead && !(h->goaway && h->closing))
            peer_gone(h);
        TAILQ_FOREACH(st, &h->streams, link) { /* heads, in the order they came */
            if (h->dead || c->state >= CS_CLOSING)
                break;
            if (st->ready) {
                st->ready = 0;
                grace__h2s_dispatch(st);
            }
        }
        TAILQ_FOREACH(st, &h->streams, link) { /* bodies, ends and drains */
            if (h->dead || c->state >= CS_CLOSING)
                break;
            grace__h2s_deliver(st);
        }
        if (h->dead || c->state >= CS_CLOSING)
            break;
        h2_send(h);
        if (h->dead)
            break;
        reap(h);
    } while (h->again && c->state < CS_CLOSING);
    h->running = 0;
    check_close(h);
}

/* ---------------------------------------------------------------- the table */

static void h2_free(struct grace_defer *d)
{
    struct h2 *h = (struct h2 *)((char *)d - offsetof(struct h2, defer));
    struct h2s *st;

    while ((st = TAILQ_FIRST(&h->streams))) {
        TAILQ_REMOVE(&h->streams, st, link);
        grace__h2s_free(st);
    }
    nghttp2_session_del(h->s);
    event_free(h->kick_ev);
    free(h);
}

/* ---------------------------------------------------------------- memory */

/*
 * nghttp2 allocates through us for one reason: an idle connection's memory.
 * From its creation a session holds a 16 KiB frame buffer (nghttp2 1.52),
 * two thirds of its size, where its outbound frames are serialized: scratch
 * once they are out. That one block is made page-aligned, and a connection
 * idle for IDLE_RELEASE_MS gives its pages back to the kernel
 * (idle_release); the next frame faults them in again, zeroed. Everything
 * else goes to malloc.
 */
#define IDLE_RELEASE_MS 1000
#define FRAMEBUF_LEN (9 + 1 + 16384) /* nghttp2's NGHTTP2_FRAMEBUF_CHUNKLEN */

static void *mem_malloc(size_t size, void *arg)
{
    struct h2 *h = arg;
    size_t page;
    void *p;

    if (!h->new_session || h->framebuf || size != FRAMEBUF_LEN)
        return malloc(size);
    page = (size_t)sysconf(_SC_PAGESIZE);
    if (page > 4096 || posix_memalign(&p, page, size)) /* larger pages: nothing to gain */
        return malloc(size);
    h->framebuf = p;
    h->framebuf_len = size & ~(page - 1);
    return p;
}

static void mem_free(void *p, void *arg)
{
    struct h2 *h = arg;
    if (p && p == h->framebuf) /* no longer the one we know */
        h->framebuf = NULL;
    free(p);
}

static void *mem_calloc(size_t n, size_t size, void *arg)
{
    void *p;
    if (size && n > SIZE_MAX / size)
        return NULL;
    if ((p = mem_malloc(n * size, arg)))
        memset(p, 0, n * size);
    return p;
}

static void *mem_realloc(void *p, size_t size, void *arg)
{
    struct h2 *h = arg;
    if (!p) /* how nghttp2 allocates its buffers */
        return mem_malloc(size, arg);
    if (p == h->framebuf)
        h->framebuf = NULL;
    return realloc(p, size);
}

/* When the frame buffer's pages go back: a second after the last stream
 * and the last frame (a PING's answer too), once per idle spell; 0: not
 * now (a stream, a frame to send, closing, given back already). */
static int64_t release_at(const struct h2 *h)
{
    if (h->nstreams || h->closing || h->released || nghttp2_session_want_write(h->s))
        return 0;
    return (h->idle_since > h->out_ms ? h->idle_since : h->out_ms) + IDLE_RELEASE_MS;
}

/* Nothing in the buffer is read before the next frame is written there. */
static void idle_release(struct h2 *h)
{
    h->released = 1;
    if (h->framebuf)
        madvise(h->framebuf, h->framebuf_len, MADV_DONTNEED);
}

/* ---------------------------------------------------------------- the protocol */

/* Work left by a run that used its rounds: from the loop, as any kick. */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct h2 *h = arg;
    if (!h->dead)
        grace__conn_schedule(h->c);
}

static int h2_start(struct grace_conn *c, void *arg)
{
    struct grace_server *srv = c->srv;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    struct h2 *h = calloc(1, sizeof(*h));
    int rc;

    if (!h)
        return -ENOMEM;
    if (nghttp2_session_callbacks_new(&cb)) {
        free(h);
        return -ENOMEM;
    }
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        free(h);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_frame_not_send);
    /* the window follows what the application consumes */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    {
        nghttp2_mem mem = {h, mem_malloc, mem_free, mem_calloc, mem_realloc};
        h->new_session = 1;
        rc = nghttp2_session_server_new3(&h->s, cb, h, opt, &mem);
        h->new_session = 0;
    }
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc) {
        free(h);
        return -ENOMEM;
    }
    h->c = c;
    if (!(h->kick_ev = event_new(srv->base, -1, 0, kick_cb, h))) {
        nghttp2_session_del(h->s);
        free(h);
        return -ENOMEM;
    }
    TAILQ_INIT(&h->streams);
    h->idle_since = grace__now_ms();
    h->scan_preface = 24;
    h->defer.run = h2_free;
    {
        /* the largest head HTTP/1.1 takes, counted as RFC 9113 counts
         * (32 bytes a field) */
        uint32_t list = (uint32_t)(OPT(srv, MAX_REQUEST_LINE) + OPT(srv, MAX_HEADER_BYTES) +
                                   32 * (OPT(srv, MAX_HEADER_FIELDS) + 4));
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)OPT(srv, H2_MAX_STREAMS)},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)OPT(srv, H2_STREAM_WINDOW)},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, list},
            {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, (uint32_t)OPT(srv, H2_HPACK_TABLE)},
        };
        if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ||
            (OPT(srv, H2_CONN_WINDOW) > 65535 &&
             nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)OPT(srv, H2_CONN_WINDOW)))) {
            nghttp2_session_del(h->s);
            event_free(h->kick_ev);
            free(h);
            return -ENOMEM;
        }
    }
    c->ps = h;
    grace__conn_active(c);
    CNT(srv, H2_CONNS);
    return 0;
}

/* Responses the socket has taken whole are reported by the next run. */
static void reports_due(struct h2 *h)
{
    const struct h2s *st;

    if (!h->c->srv->on_response)
        return;
    TAILQ_FOREACH(st, &h->streams, link) {
        if (st->closed && grace__h2s_report_due(st)) {
            grace__h2_kick(h);
            return;
        }
    }
}

/* Output events: bytes left (frames to follow while there is room), the
 * output drained (more frames; a client paused for not reading is read
 * again), a pump's output flushed. */
static int h2_output(struct grace_conn *c, enum grace_out what)
{
    struct h2 *h = c->ps;

    if (!h || h->dead)
        return 0;
    switch (what) {
    case GRACE_OUT_FLUSHED:
        if (h->paused_out && grace__buffered_out(c) <= (size_t)OPT(c->srv, OUTPUT_HIGH_WATER)) {
            h->paused_out = 0;
            return 1; /* another round of input */
        }
        return 0;
    case GRACE_OUT_ROOM:
        return 0;
    case GRACE_OUT_SENT:
        reports_due(h);
        return 0;
    case GRACE_OUT_EMPTY:
        h->tail_wt = 0; /* the closed streams' frames are all out */
        reports_due(h);
        break;
    }
    if (h->sending) {
        h->send_more = 1;
        return 0;
    }
    if (h->paused_out) {
        h->paused_out = 0;
        grace__h2_kick(h);
    }
    h2_send(h);
    if (h->dead)
        return 0;
    if (!h->running)
        check_close(h);
    return 0;
}

/* write-timeout for a full socket: its streams share it, so the most
 * patient of theirs (a request's own, grace_request_set_write_timeout; a
 * reply's tail keeps its request's) bounds the stall. */
static int64_t h2_write_timeout(const struct grace_conn *c)
{
    const struct h2 *h = c->ps;
    const struct h2s *st;
    int64_t wt = h ? h->tail_wt : 0;

    if (h)
        TAILQ_FOREACH(st, &h->streams, link) {
            int64_t t = st->req && st->req->write_timeout ? st->req->write_timeout
                                                          : st->write_timeout;
            if (t > wt)
                wt = t;
        }
    return wt > OPT(c->srv, WRITE_TIMEOUT) ? wt : OPT(c->srv, WRITE_TIMEOUT);
}

/* No input while paused for a client that does not read its output. */
static size_t h2_room(const struct grace_conn *c)
{
    const struct h2 *h = c->ps;
    return h && h->paused_out ? 0 : grace__input_max(c->srv);
}

/* When a stop's GOAWAY goes to a client still opening streams (h2_stop
 * says why not at once); 0: not such a client, or sent. */
static int64_t busy_goaway_at(const struct h2 *h)
{
    if (!h->stopping || !h->stop_new || h->goaway)
        return 0;
    return h->stop_ms + OPT(h->c->srv, STOP_IDLE_GRACE);
}

static int64_t h2_deadline(const struct grace_conn *c, enum grace_counter *why)
{
    const struct h2 *h = c->ps;
    const struct h2s *st;
    int64_t d = 0, t;

    if (!h->nstreams && !h->closing)
        grace__earlier(&d, why, h->idle_since + OPT(c->srv, KEEPALIVE_TIMEOUT),
                       GRACE_CNT_TIMEOUT_KEEPALIVE);
    if ((t = release_at(h)))
        grace__earlier(&d, why, t, GRACE_CNT__COUNT);
    if ((t = busy_goaway_at(h)))
        grace__earlier(&d, why, t, GRACE_CNT__COUNT);
    TAILQ_FOREACH(st, &h->streams, link) {
        enum grace_counter w = GRACE_CNT__COUNT;
        if ((t = grace__h2s_deadline(st, &w)))
            grace__earlier(&d, why, t, w);
    }
    return d;
}

/* Our final GOAWAY: the streams it names finish, no new one starts. */
static void goaway(struct h2 *h)
{
    if (!h->goaway)
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR,
                              NULL, 0);
    h->goaway = h->closing = 1;
}

static void h2_timeout(struct grace_conn *c, enum grace_counter why)
{
    struct h2 *h = c->ps;
    int64_t now = grace__now_ms(), t;
    struct h2s *st;

    if ((t = release_at(h)) && now >= t)
        idle_release(h);
    if (!h->nstreams && !h->closing && now >= h->idle_since + OPT(c->srv, KEEPALIVE_TIMEOUT)) {
        if (c->srv->stopping)
            CNT(c->srv, STOP_IDLE_CLOSED);
        else
            CNT(c->srv, TIMEOUT_KEEPALIVE);
        goaway(h);
    }
    if ((t = busy_goaway_at(h)) && now >= t) /* the streams it names finish */
        goaway(h);
    TAILQ_FOREACH(st, &h->streams, link) {
        if (h->dead || c->state >= CS_CLOSING)
            return;
        grace__h2s_timeout(st, now);
    }
    if (h->dead || c->state >= CS_CLOSING)
        return;
    h2_send(h);
    if (h->dead)
        return;
    reap(h);
    check_close(h);
}

static void h2_stop(struct grace_conn *c, enum grace_stop how)
{
    struct h2 *h = c->ps;
    struct h2s *st;

    if (how == GRACE_STOP_CUT) {
        TAILQ_FOREACH(st, &h->streams, link) {
            if (h->dead || c->state >= CS_CLOSING)
                return;
            if (st->req && st->req->resp == RESP_NONE) {
                CNT(c->srv, STOP_DEADLINE);
                grace__h2s_fail(st, 503, "server shutting down", -ESHUTDOWN);
            } else if (st->req || st->discarding) {
                if (st->req)
                    CNT(c->srv, STOP_DEADLINE);
                grace__h2_reset(st, st->req ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_NO_ERROR);
            }
        }
        goaway(h);
        grace__h2_kick(h);
        return;
    }
    /*
     * A drop or a stop's start: the GOAWAY goes once no stream is in flight
     * (now, if none is): streams that arrive meanwhile are served, as
     * HTTP/1.1 serves requests with Connection: close. Not earlier: clients
     * such as Python's h2 (httpx) treat any GOAWAY, even the shutdown notice
     * (2^31-1), as the end of the connection and lose the answers in flight.
     * A client that keeps opening streams is never without one: once
     * stop-idle-grace has passed since the stop, and it has opened one since,
     * it gets the GOAWAY with streams in flight (h2_timeout). A long request
     * alone (an upload) still finishes first. The stop's deadline
     * (GRACE_STOP_CUT) bounds every wait.
     */
    if (!h->stopping)
        h->stop_ms = grace__now_ms();
    h->stopping = 1;
    TAILQ_FOREACH(st, &h->streams, link)
        if (st->lingering) /* an early answer's discard ends by the stop's bound */
            grace__linger_stop(&st->lg, c->srv->stop_linger_bound);
    if (!h->nstreams)
        goaway(h);
    grace__h2_kick(h);
}

/* HTTP/2 leaves the connection: every request still in flight is cut off,
 * every record reported; the memory goes at the outermost leave. */
static void h2_end(struct grace_conn *c, int err)
{
    struct h2 *h = c->ps;
    struct h2s *st;

    if (!h || h->dead)
        return;
    h->dead = 1;
    TAILQ_FOREACH(st, &h->streams, link) {
        struct grace_request *req = st->req;
        if (req) {
            st->req = NULL;
            req->ps = NULL;
            grace__conn_reason(c, err ? err : -ECONNRESET);
            grace__request_detach(req, err ? err : -ECONNRESET);
        }
        /* err 0: the output is all written */
        grace__report_all(&st->reports, err ? grace__h2s_written(st) : st->sent,
                          err ? err : -ECONNRESET);
    }
    c->ps = NULL;
    grace__conn_defer(c, &h->defer);
}

static uint64_t h2_owed(const struct grace_conn *c, unsigned char *upload)
{
    const struct h2 *h = c->ps;
    const struct h2s *st;

    *upload = 0;
    if (!h)
        return 0;
    TAILQ_FOREACH(st, &h->streams, link)
        if (!st->end_in && !st->closed) {
            *upload = 1;
            return UINT64_MAX;
        }
    return 0;
}

const struct grace_proto grace__h2_proto = {
    .name = "h2",
    .alpn = "h2",
    .sniff = h2_sniff,
    .start = h2_start,
    .input = h2_input,
    .output = h2_output,
    .timeout = h2_timeout,
    .stop = h2_stop,
    .end = h2_end,
    .deadline = h2_deadline,
    .room = h2_room,
    .write_timeout = h2_write_timeout,
    .owed = h2_owed,
};
