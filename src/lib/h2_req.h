/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * h2_req.h - HTTP/2 (RFC 9113) on the engine, with libnghttp2's session as the
 * framing, HPACK and flow-control state machine (bytes in with mem_recv,
 * frames out with mem_send: it does no I/O). h2.c is the connection (the
 * protocol table the engine calls, the session's callbacks, SETTINGS,
 * GOAWAY, floods, its deadlines); h2_req.c the streams as requests (the
 * request ops: head, body with the window following what the application
 * consumes, response frames, data providers, early answers). The layouts
 * live here so that h2.c uses them and calls down, never the other way.
 */
#ifndef GRACE_H2_REQ_H
#define GRACE_H2_REQ_H

#include "conn.h"
#include "linger.h"
#include "report.h"
#include "request.h"

#include <nghttp2/nghttp2.h>

/* nghttp2 1.61 renamed the ssize_t API (the old names stay, deprecated). */
#if NGHTTP2_VERSION_NUM >= 0x013d00
typedef nghttp2_ssize h2_ssize;
#define h2_mem_recv nghttp2_session_mem_recv2
#define h2_mem_send nghttp2_session_mem_send2
typedef nghttp2_data_provider2 h2_provider;
#define h2_submit_response nghttp2_submit_response2
#else
typedef ssize_t h2_ssize;
#define h2_mem_recv nghttp2_session_mem_recv
#define h2_mem_send nghttp2_session_mem_send
typedef nghttp2_data_provider h2_provider;
#define h2_submit_response nghttp2_submit_response
#endif

struct h2;

/* One stream: nghttp2's stream user data. It and its request are separate
 * allocations with separate lives (docs/design.md): the links are cleared
 * both ways at the first end. */
struct h2s {
    struct h2 *h;
    int32_t id;
    struct grace_request *req; /* in flight: the reply not yet complete */
    /* the request head while it arrives */
    char *head;                /* "METHOD SP target SP HTTP/2.0\r\n" then fields */
    size_t head_len, head_cap;
    struct grace_hfield *fields;
    size_t nfields;
    char *method, *path, *authority; /* pseudo-header values (malloc'd) */
    char *cookie;              /* the Cookie crumbs, joined */
    size_t cookie_len, cookie_cap;
    int head_error;            /* a status to answer instead (414, 431, 400) */
    unsigned char has_host, has_cl, expect_continue;
    uint64_t content_length;
    int64_t start_us, begin_ms;
    /* the request body */
    struct evbuffer *in;       /* DATA received, not yet handed over or consumed */
    uint64_t received;         /* DATA bytes received */
    int64_t body_since;        /* the last DATA, or when the application began to wait */
    struct grace_trailers trailers; /* the client's, to its request at the body's end */
    size_t trailer_bytes;      /* their size as HTTP/1.1 counts it (max-trailer-bytes) */
    /* the response */
    struct evbuffer *out;      /* body queued, not yet taken by nghttp2 */
    int file_fd;               /* a file body, read as nghttp2 asks */
    off_t file_off;
    uint64_t file_left;
    int64_t out_since;         /* nghttp2 last took body bytes, or they were queued */
    int64_t write_timeout;     /* the request's, for a reply's tail */
    struct grace_trailers out_trailers; /* ours, names lowercased: after the last DATA */
    uint64_t sent;             /* this stream's bytes in frames (reports) */
    uint64_t last_off;         /* the connection's output offset past our last frame: a
                                  complete answer's reports wait until the socket took it */
    struct grace_reports reports;
    struct grace_linger lg;    /* an early answer's discard */
    unsigned char ready;       /* head complete, not yet dispatched */
    unsigned char end_in;      /* the client's END_STREAM */
    unsigned char submitted;   /* our HEADERS are submitted */
    unsigned char deferred;    /* the data provider waits for bytes */
    unsigned char out_end;     /* the application completed its reply */
    unsigned char end_sent;    /* our END_STREAM is out (or the stream reset) */
    unsigned char end_framed;  /* our END_STREAM frame is in the output (not a reset) */
    unsigned char discarding;  /* answered early: DATA is consumed unread */
    unsigned char closed;      /* nghttp2 closed it: freed at the next reap */
    unsigned char rst_sent;
    unsigned char lingering;   /* discarding after our END_STREAM: lg's clocks run */
    unsigned char delivering;  /* a body piece is with the application */
    unsigned char file_err;    /* the file ended early: reported -EPIPE */
    unsigned char trailers_big; /* the client's trailers broke max-trailer-bytes: 431 */
    unsigned char trailers_lost; /* ours could not be kept (memory): reset, never a clean end */
    TAILQ_ENTRY(h2s) link;     /* h->streams */
};
TAILQ_HEAD(h2s_list, h2s);

/* The connection's HTTP/2 state: c->ps. */
struct h2 {
    struct grace_conn *c;
    nghttp2_session *s;
    struct h2s_list streams;   /* every stream we hold, oldest first */
    size_t nstreams;
    int64_t idle_since;        /* no stream since (keep-alive) */
    unsigned char stopping;    /* a stop or drop: GOAWAY once no stream is in flight */
    unsigned char stop_new;    /* ...and the client opened a stream since */
    int64_t stop_ms;           /* when the stop or drop reached us */
    int64_t rst_window;        /* rapid reset: this second's start */
    unsigned rst_count;        /* streams the client reset in it */
    unsigned empty_frames;     /* DATA without payload nor END_STREAM, HEADERS/CONTINUATION */
    unsigned cont_frames;      /* CONTINUATION frames of the header block in progress */
    uint8_t scan_hd[9], scan_have, scan_preface; /* h2.c's frame scan */
    uint32_t scan_skip;
    unsigned char running, again, sending, send_more;
    unsigned char paused_out;  /* our output is above output-high-water: not read */
    int64_t tail_wt;           /* write-timeout of closed streams whose frames may be queued */
    unsigned char goaway;      /* our final GOAWAY is submitted: no new streams */
    unsigned char closing;     /* close once no stream is left */
    unsigned char calmed;      /* a flood: GOAWAY(ENHANCE_YOUR_CALM), nothing more read */
    unsigned char dead;        /* the engine took it away: free at the defer */
    struct event *kick_ev;     /* a run for the loop to do (RUN_ROUNDS spent) */
    struct grace_defer defer;
    struct h2s *framed;         /* the stream of the frame mem_send is handing us */
    int64_t out_ms;             /* our last frame (idle_release counts from it too) */
    /* nghttp2's frame buffer, page-aligned (h2.c: idle_release) */
    void *framebuf;
    size_t framebuf_len;        /* its whole pages */
    unsigned char new_session;  /* nghttp2_session_server_new3 is running */
    unsigned char released;     /* idle, the pages given back */
};

/* h2_req.c: what h2.c and the streams share (h2.c calls down into it) */
/* Work for the connection's next run (delivery, drains, frames to send). */
void grace__h2_kick(struct h2 *h);
/* A stream's server-made answer or reset was submitted. */
void grace__h2_reset(struct h2s *st, uint32_t code);

struct h2s *grace__h2s_new(struct h2 *h, int32_t id);
void grace__h2s_free(struct h2s *st);
/* A header field of the stream's head; 0 or an nghttp2 callback error. */
int grace__h2s_header(struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value,
                      size_t vl);
/* A field of the client's trailers; 0 or an nghttp2 callback error. */
int grace__h2s_trailer(struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value,
                       size_t vl);
/* The head is complete: the request, then the application's handler. */
void grace__h2s_dispatch(struct h2s *st);
/* len DATA bytes for the stream. */
void grace__h2s_data(struct h2s *st, const uint8_t *data, size_t len);
/* Hand buffered body bytes (and the end) to the application. */
void grace__h2s_deliver(struct h2s *st);
/* Our END_STREAM went out on st (frame sent). */
void grace__h2s_sent_end(struct h2s *st);
/* nghttp2 closed the stream (error_code from the reset, or NO_ERROR). */
void grace__h2s_closed(struct h2s *st, uint32_t error_code);
/* The server answers the stream itself (status, text) and lets go of its
 * request with err; or resets a reply that has begun. */
void grace__h2s_fail(struct h2s *st, int status, const char *msg, int err);
/* The stream's earliest deadline (0: none) and why; and its verdict. */
int64_t grace__h2s_deadline(const struct h2s *st, enum grace_counter *why);
void grace__h2s_timeout(struct h2s *st, int64_t now);
/* A drain callback due on the stream: run it. */
void grace__h2s_drain(struct h2s *st);
/* Has the socket taken the stream's last frame, so its reports can go? */
int grace__h2s_report_due(const struct h2s *st);
/* Report what the stream's records can say now (from the run, never under
 * nghttp2's callbacks); force (too many answers wait) reports a complete
 * one as written once framed. */
void grace__h2s_report_now(struct h2s *st, int force);
/* The stream's bytes the socket has taken (a lower bound before its end). */
uint64_t grace__h2s_written(const struct h2s *st);

#endif
