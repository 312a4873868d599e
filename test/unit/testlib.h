/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * testlib.h - loopback test harness for the server tests.
 *
 * The server runs on an event_base in the test's main thread; the client
 * side runs in a second thread with plain blocking sockets, so the code
 * under test stays single-threaded. When the client function returns, the
 * loop is stopped through a pipe and the test inspects counters.
 */
#ifndef GRACE_TESTLIB_H
#define GRACE_TESTLIB_H

#include <gracehttp.h>

#include <stddef.h>
#include <stdint.h>

struct event_base;

struct fx {
    struct event_base *base;
    struct grace_server *srv;
    struct grace_config *cfg;
    int port;
    void (*client)(struct fx *);
    /* free-form state for handlers and clients */
    int finish_calls, finish_err, handler_calls, data_calls, end_calls;
    int later_ms;         /* h_later: delay before replying */
    size_t bytes;         /* body bytes seen by a handler */
    int reply_rc;         /* return code of a late reply */
    int stopped;          /* stop callback ran */
    void *user;
};

/* Create a fixture; adjust f->cfg, then call fx_start(). */
struct fx *fx_new(void);
/* Create the server from f->cfg and listen on 127.0.0.1:0. */
void fx_start(struct fx *f, grace_handler_cb h);
/* Run the loop until client(f) returns in its thread (at most limit_ms). */
void fx_run(struct fx *f, void (*client)(struct fx *), int limit_ms);
/* Keep running the loop for ms milliseconds (lingering, timers). */
void fx_spin(struct fx *f, int ms);
/* Free server and base; asserts the base has no events left. */
void fx_free(struct fx *f);
uint64_t fx_cnt(struct fx *f, enum grace_counter c);

/* ---- client side (blocking, 10 s receive timeout) ---- */
int cli_connect(int port);
int cli_connect6(int port);
/* Like cli_connect, without asserting: the fd, or -errno (-ECONNREFUSED). */
int cli_try_connect(int port);
/* A client thread of the test's own (not fx_run's) ends: its readers go. */
void cli_thread_end(void);
void cli_send(int fd, const char *s);
/* Send all of buf; returns 0 or -errno (EPIPE/ECONNRESET on a reset). */
int cli_send_all(int fd, const char *buf, size_t n);

struct resp {
    int status;
    char head[8192];  /* status line + headers, NUL-terminated */
    char *body;       /* malloc'd, NUL-terminated */
    size_t body_len;
    int closed;       /* the server closed after it */
    int err;          /* nonzero: could not read a complete response */
};
/* Read one response (Content-Length, chunked, or until close). For HEAD
 * requests pass head_only = 1. Returns 0 or -1 (r->err set). */
int cli_read_response(int fd, struct resp *r, int head_only);
void resp_free(struct resp *r);
/* A header value from r->head (case-insensitive), copied to out. */
int resp_header(const struct resp *r, const char *name, char *out, size_t n);
/* 1 if the peer closed (EOF) within ms, 0 on timeout, -errno on reset. */
int cli_wait_eof(int fd, int ms);
int64_t now_ms(void);
int count_fds(void);

/* ---- handlers ---- */
void h_hello(struct grace_request *req, void *arg);   /* 200 "hello" */
void h_401(struct grace_request *req, void *arg);     /* 401 at once */
void h_collect(struct grace_request *req, void *arg); /* 200 "<len>" */
void h_later(struct grace_request *req, void *arg);   /* 200 after later_ms */

#endif
