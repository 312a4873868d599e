/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_h2.c - libFuzzer target for HTTP/2 (h2.c, h2_req.c over nghttp2).
 *
 * A plain server (h2c by its preface) on its own event_base gets one end of
 * a socketpair. The first input byte picks the start: odd, the client
 * preface and an empty SETTINGS frame are sent first (so the fuzzer's bytes
 * are frames); even, its bytes are all there is (preface paths). Then the
 * input is slices (length, action, bytes): sent, the loop run, and an
 * action between: half-close, vanish, let timers run, read nothing for a
 * while (our output backs up). The handler's behaviour follows the path's
 * first byte: answer at once (early), collect, stream the body with pauses
 * and resumes, a streamed reply, 103 then an answer. Small windows and
 * timeouts make flow control, the early-answer discard and every timer
 * run. Invariants: no crash, leak or undefined behaviour; every connection
 * ends once the client has closed (the loop empties); nothing of the
 * server is left on the loop after grace_server_free.
 */
#define _GNU_SOURCE
#include "gracehttp.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void collected(struct grace_request *req, struct evbuffer *body, void *arg)
{
    grace_reply(req, 201, "collected", 9);
}

static void on_data(struct grace_request *req, const char *d, size_t len, void *arg)
{
    if (len & 1)
        grace_request_pause(req); /* resumed by the next drain or request */
    else if (len % 7 == 0)
        grace_reply(req, 413, "enough", 6); /* an answer from inside the body */
}

static void on_end(struct grace_request *req, void *arg)
{
    grace_reply(req, 200, "read", 4);
}

static void more(struct grace_request *req, void *arg)
{
    static const char chunk[3000];
    uintptr_t left = (uintptr_t)arg;
    if (left == 0) {
        grace_reply_end(req);
        return;
    }
    grace_reply_chunk(req, chunk, sizeof(chunk));
    grace_reply_on_drain(req, more, (void *)(left - 1));
}

static struct grace_request *paused; /* one request to resume later */

static void handler(struct grace_request *req, void *arg)
{
    const char *p = grace_request_path(req);
    switch (p[1] % 6) {
    case 0:
        grace_reply(req, 401, "early", 5);
        break;
    case 1:
        if (grace_request_collect_body(req, 0, collected, NULL) < 0)
            grace_reply(req, 400, "no", 2);
        break;
    case 2:
        if (grace_request_read_body(req, on_data, on_end, NULL) < 0)
            grace_reply(req, 400, "no", 2);
        paused = req;
        break;
    case 3:
        grace_reply_start(req, 200);
        more(req, (void *)(uintptr_t)(p[2] % 8));
        break;
    case 4: {
        const char *f[] = {"Link", "</a>; rel=preload"};
        grace_reply_informational(req, 103, f, 1);
        grace_reply(req, 200, "hinted", 6);
        break;
    }
    default:
        grace_request_set_deadline(req, 5); /* the server answers 503 */
    }
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    if (req == paused)
        paused = NULL;
}

static void handler_outer(struct grace_request *req, void *arg)
{
    grace_request_on_finish(req, on_finish, NULL);
    if (paused && paused != req)
        grace_request_resume(paused);
    handler(req, arg);
}

static void drain(int fd)
{
    char buf[65536];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

static void run_loop(struct event_base *base, int ms)
{
    struct timeval tv = {0, ms * 1000};
    if (ms) {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    } else {
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
}

static void stopped(struct grace_server *srv, void *arg)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char start[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                "\0\0\0\4\0\0\0\0\0"; /* an empty SETTINGS */
    struct event_base *base;
    struct grace_config *cfg;
    struct grace_server *srv;
    int sv[2], open = 1, reading = 1;
    size_t at = 2;

    if (size < 2)
        return 0;
    paused = NULL;
    base = event_base_new();
    cfg = grace_config_new();
    grace_config_set(cfg, GRACE_OPT_HEADER_TIMEOUT, 10);
    grace_config_set(cfg, GRACE_OPT_BODY_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_KEEPALIVE_TIMEOUT, 8);
    grace_config_set(cfg, GRACE_OPT_WRITE_TIMEOUT, 20);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIME, 10);
    grace_config_set(cfg, GRACE_OPT_MAX_BODY_SIZE, 4096 + data[1] * 64);
    grace_config_set(cfg, GRACE_OPT_MAX_HEADER_BYTES, 512);
    grace_config_set(cfg, GRACE_OPT_MAX_HEADER_FIELDS, 8);
    grace_config_set(cfg, GRACE_OPT_OUTPUT_HIGH_WATER, 4096);
    grace_config_set(cfg, GRACE_OPT_H2_STREAM_WINDOW, 1024 + data[1] * 16);
    grace_config_set(cfg, GRACE_OPT_H2_CONN_WINDOW, 65535);
    grace_config_set(cfg, GRACE_OPT_H2_MAX_STREAMS, 4);
    grace_config_set(cfg, GRACE_OPT_H2_RESET_RATE, 8);
    srv = grace_server_new(base, cfg);
    grace_config_free(cfg);
    grace_server_set_handler(srv, handler_outer, NULL);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    if (grace_server_adopt_conn(srv, sv[0], (struct sockaddr *)&peer,
                                offsetof(struct sockaddr_un, sun_path), NULL) < 0)
        abort();
    if (data[0] & 1)
        (void)!send(sv[1], start, sizeof(start) - 1, MSG_DONTWAIT);

    while (at + 2 <= size && open) {
        size_t len = data[at] | (size_t)(data[at + 1] & 0xf0) << 4, act = data[at + 1] & 0xf;
        at += 2;
        if (len > size - at)
            len = size - at;
        if (len && send(sv[1], data + at, len, MSG_DONTWAIT) < 0)
            open = 0;
        at += len;
        run_loop(base, 0);
        switch (act) {
        case 1: /* half-close */
            shutdown(sv[1], SHUT_WR);
            break;
        case 2: /* vanish */
            open = 0;
            break;
        case 3: /* let timers run */
            run_loop(base, 3);
            break;
        case 4: /* stop reading: our output backs up */
            reading = 0;
            break;
        case 5:
            reading = 1;
            break;
        case 6: /* a graceful stop */
            grace_server_stop(srv, 5, stopped, NULL);
            break;
        }
        if (reading)
            drain(sv[1]);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 100 && grace_server_counter(srv, GRACE_CNT_CONN_ACTIVE); i++) {
        if (paused) /* the application's pause ends: it answers */
            grace_request_resume(paused);
        drain(sv[1]);
        run_loop(base, 1);
    }
    if (grace_server_counter(srv, GRACE_CNT_CONN_ACTIVE))
        abort(); /* a connection that never ends */
    close(sv[1]);
    grace_server_free(srv);
    if (event_base_loop(base, EVLOOP_NONBLOCK) != 1)
        abort(); /* something of the server was left on the loop */
    event_base_free(base);
    return 0;
}
