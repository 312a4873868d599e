/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_conn.c - libFuzzer target for the whole connection layer.
 *
 * A real server on its own event_base gets 1 to 4 connections, each one end
 * of its own AF_UNIX socketpair handed over with grace_server_adopt_conn(); the
 * fuzzer's bytes drive the other ends ("our side") and choose what the
 * application does with each request.
 *
 * Input: a 4-byte header, then slices.
 *   h0  bits 0-1  connections - 1
 *       bit  2    linger off (naive close)
 *       bits 3-4  max-lingering: 1024, 1, 2, 3
 *       bit  5    a stop (from a handler) has a 3 ms deadline, not 10 s
 *       bit  6    output-high-water at its minimum (1 KiB)
 *   h1  drain-limit / 16 (0 disables draining)
 *   h2  body limit of grace_request_collect_body() / 64 (0: max-body-size)
 *   h3  max-header-bytes - 512
 *   slice: [ctl][len][len bytes sent on connection ctl & 3 (mod count)]
 *       then action (ctl >> 2) & 15 on that connection:
 *       0 run the loop once          4 stop reading it, run once
 *       1 half-close, run once       5 read it again, run once
 *       2 run once, vanish, run once 6 run past write-timeout (1 ms steps)
 *       3 let timers run (2 ms)      7 nothing: several connections' bytes
 *                                      are then handled in one iteration
 *       8 nap 2 ms without the loop, then run once: the timers that expired
 *         meanwhile fire in one iteration        9-15 as 0
 * What the application does with a request is chosen by its path, "/BP":
 * B is the behaviour (beh_letter[], else B % count; no letter: rotate
 * through the first four, as the old harness did), P a parameter byte (a
 * target allows 0x21-0xff but DEL, '?' and '#'): bit 0 do it later, from a
 * timer; for body readers bit 1 pause+resume inline, bit 2 answer later,
 * bit 3 pause and resume from a timer, bit 4 start reading from a timer
 * (after 1 + 3 * bits 5-6 ms); sizes and offsets derive from all of P.
 *
 * Invariants (abort() on violation, with a line on stderr saying which):
 *  - no crash, leak or undefined behaviour (ASan, LSan, UBSan);
 *  - once the input is done and our side has half-closed, every connection
 *    ends within END_BOUND_MS; after grace_server_free() the loop is empty;
 *    a stop's callback has run exactly once;
 *  - per connection, what the server sent is a sequence of well-formed
 *    HTTP/1.1 responses (1xx allowed) answering the requests in the order
 *    they were dispatched (X-Seq), on the connection they came from, with
 *    nothing after a "Connection: close"; file bodies carry the file's bytes
 *    at the right offset and never bytes past its end;
 *  - no truncation: a response whose head began to arrive arrives whole
 *    (Content-Length complete, chunked ended by 0 CRLF CRLF), and every
 *    request the application answered, or that was complete when the client
 *    half-closed, gets its answer - unless excused (see may_cut()): our side
 *    vanished; a write-timeout ended the connection; a stop deadline cut it;
 *    the request failed on its own (body limit, malformed body, body timeout,
 *    client gone mid-body); or it is a file reply past the end of the file
 *    (marked X-Past), which must end the connection;
 *  - a stream kept stuck on output (we do not read) is ended by
 *    write-timeout: no progress for that long closes the connection.
 *
 * FUZZ_CONN_DEBUG=1 prints what happened when a check fails (2: always).
 * FUZZ_CONN_KNOWN=halfclose,hang,keepalive tolerates bug classes already
 * found in the library under test, so that a campaign can look past them:
 * a complete request lost to a half-close; a connection that never ends
 * (it is then freed with the server); a response cut by the keep-alive
 * timeout. Leave it unset otherwise.
 */
#define _GNU_SOURCE
#include "gracehttp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The pump-list bug class leaves pointers into a dead stack frame: ASan
 * sees that only with its fake stacks. */
const char *__asan_default_options(void)
{
    return "detect_stack_use_after_return=1";
}

/* Timeouts in ms: tiny, so one run stays fast. */
#define T_SHORT 5          /* header, body, keep-alive, linger-timeout */
#define T_WRITE 20         /* write-timeout */
#define T_LINGER 20        /* linger-time */
#define STOP_SHORT 3       /* a stop's deadline, short variant */
#define STOP_LONG 10000    /* ... long: never reached, the stop must finish */
#define END_BOUND_MS 1000  /* after the input, every connection must end */
#define STALL_SLACK_MS 20  /* timer granularity around write-timeout */
#define SLEEP_BUDGET_MS 150 /* total waiting one input may ask for */
#define MAX_CONNS 4
#define FILE_SIZE 40000    /* larger than the 32 KiB sendfile threshold */
#define SMALL_FILE 32768   /* grace_reply_file reads up to this into memory */

static struct app *current; /* for debug_dump() */
static void debug_dump(const struct app *a);

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_conn: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (current && getenv("FUZZ_CONN_DEBUG"))
        debug_dump(current);
    abort();
}

static struct {
    int halfclose, hang, keepalive;
} known;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ================================================================ files */

/* Two copies of the same content: a memfd and an unlinked temp file. The
 * bytes are lowercase letters, so a response head ("HTTP/...") that the
 * server wrongly puts inside a file body can never match them. */
static int file_fd[2] = {-1, -1};

static char file_byte(uint64_t i)
{
    uint32_t h = (uint32_t)i * 2654435761u;
    return (char)('a' + (h >> 24) % 26);
}

static int file_make(int fd)
{
    char buf[FILE_SIZE];
    for (size_t i = 0; i < FILE_SIZE; i++)
        buf[i] = file_byte(i);
    if (fd < 0 || pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
        fail("cannot create the reply file");
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char tmpl[] = "/tmp/fuzz_conn.XXXXXX";
    int fd;
    const char *k = getenv("FUZZ_CONN_KNOWN");
    signal(SIGPIPE, SIG_IGN);
    known.halfclose = k && strstr(k, "halfclose");
    known.hang = k && strstr(k, "hang");
    known.keepalive = k && strstr(k, "keepalive");
    file_fd[0] = file_make(memfd_create("fuzz_conn", 0));
    if ((fd = open("/tmp", O_TMPFILE | O_RDWR, 0600)) < 0 && (fd = mkstemp(tmpl)) >= 0)
        unlink(tmpl);
    file_fd[1] = file_make(fd);
    return 0;
}

/* ================================================================ state */

/* Our side of one connection. */
struct fconn {
    int fd;               /* -1 once vanished */
    int wr_shut;          /* we half-closed */
    int reading;          /* we read what the server sends */
    int vanished;
    int wt_cut;           /* a write-timeout may have cut its output */
    int hup;              /* the server shut down or closed its side */
    struct evbuffer *got; /* everything the server sent */
    /* output stuck while we do not read (see stall_check) */
    int inq;              /* bytes waiting in our socket when last looked */
    int64_t quiet_since;  /* no sign of write progress since */
    struct rec *streamer; /* a streamed reply in progress, with... */
    size_t pending;       /* ...this much output queued at its last chunk */
};

enum beh {
    B_EARLY,       /* reply at once, body unread */
    B_STREAM_BODY, /* read the body piecewise, reply at its end */
    B_COLLECT,     /* collect the body, reply with it collected */
    B_LATE,        /* reply from a timer */
    B_CHUNKED,     /* streamed reply, all at once */
    B_TICKER,      /* streamed reply, one chunk per timer tick */
    B_ENDLESS,     /* streamed reply until the input is done and we read */
    B_FILE,        /* file reply, small (read into memory) */
    B_FILE_LARGE,  /* file reply, sendfile */
    B_FILE_PAST,   /* small file reply running past the end of the file */
    B_FILE_LARGE_PAST,
    B_STOP,        /* grace_server_stop, then reply */
    B_STOP_IN_BODY,/* grace_server_stop from a body callback */
    B_REPLY_IN_DATA, /* reply from inside a body-data callback */
    B_BUFFER,      /* large reply from an evbuffer: backpressure */
    B_NO_CONTENT,  /* 204 / 304: no body */
    B__COUNT
};
/* The path letter for each behaviour. */
static const char beh_letter[B__COUNT + 1] = "escltTEfFpPxXdbn";

/* What a request's timer does when it fires. */
enum next { N_REPLY, N_STREAM, N_READ_BODY, N_RESUME };

/* One request the handler got: what was done, what the server said. */
struct rec {
    struct app *a;
    struct grace_request *req; /* NULL once our reply is complete or released */
    struct event *timer;       /* late replies, stream ticks, late body reads */
    enum next next;
    int paused;                /* we paused the body */
    int conn, seq;
    enum beh beh;
    uint8_t p;
    int head;                  /* HEAD: no body in the response */
    int complete;              /* the whole request arrived (no body, or its end) */
    int busy;                  /* inside our own call on req: on_finish defers */
    int streaming, ticks;
    int is_file, past;
    int64_t file_off;
    int finished, err;         /* the finish callback's report */
};

struct app {
    struct event_base *base;
    struct grace_server *srv;
    int nconns;
    struct fconn conn[MAX_CONNS];
    struct rec **recs; /* in dispatch order: seq = index + 1 */
    size_t nrecs, cap;
    size_t collect_limit;
    int64_t stop_timeout;
    int stop_asked, stop_cut, stopped;
    int final;         /* the input is done */
    int hung;          /* FUZZ_CONN_KNOWN=hang: connections left open */
    int slept_ms;
};

/* ================================================================ the application */

static void tick_cb(evutil_socket_t fd, short what, void *arg);

static int timer_pending(const struct rec *r)
{
    return r->timer && evtimer_pending(r->timer, NULL);
}

/* Do next in ms, from the loop: outside any of the server's callbacks. */
static void later(struct rec *r, int ms, enum next next)
{
    struct timeval tv = {0, ms * 1000};
    if (!r->timer && !(r->timer = evtimer_new(r->a->base, tick_cb, r)))
        fail("out of memory");
    r->next = next;
    evtimer_add(r->timer, &tv);
}

static void on_stopped(struct grace_server *srv, void *arg)
{
    struct app *a = arg;
    if (a->stopped++)
        fail("the stop callback ran twice");
}

static void stop_server(struct app *a)
{
    int rc = grace_server_stop(a->srv, a->stop_timeout, on_stopped, a);
    if (rc != 0 && rc != -EALREADY)
        fail("grace_server_stop: %d", rc);
    a->stop_asked = 1;
    /* a short deadline closes what is left, cut or not: nothing to check */
    if (a->stop_timeout == STOP_SHORT)
        a->stop_cut = 1;
}

/* A call that completes the reply (or releases a detached request) was
 * made: the request is no longer ours to touch. */
static void completed(struct rec *r, int rc, const char *what)
{
    r->req = NULL;
    r->streaming = 0;
    if (r->a->conn[r->conn].streamer == r)
        r->a->conn[r->conn].streamer = NULL;
    if (rc != 0 && rc != -ENOTCONN)
        fail("%s: %d on request %d", what, rc, r->seq);
    if (rc == 0 && r->finished && r->err)
        fail("%s succeeded on request %d after it finished with %d", what, r->seq, r->err);
}

static void reply_plain(struct rec *r, int status)
{
    completed(r, grace_reply(r->req, status, "body", 4), "grace_reply");
}

static void reply_file(struct rec *r)
{
    int large = r->beh == B_FILE_LARGE || r->beh == B_FILE_LARGE_PAST;
    int past = r->beh == B_FILE_PAST || r->beh == B_FILE_LARGE_PAST;
    uint32_t p = r->p;
    off_t len, off;
    char v[24];

    if (large)
        len = SMALL_FILE + 1 + (off_t)(p * 37u % (FILE_SIZE - SMALL_FILE - 1));
    else
        len = (off_t)(p * 131u % 6000u); /* 0 too */
    if (!past)
        off = (off_t)(p * 7919u % (uint32_t)(FILE_SIZE - len + 1));
    else if (p & 0x80) /* starts past the end */
        off = FILE_SIZE + (off_t)(p % 8u);
    else               /* ends 1 to a few thousand bytes past it */
        off = FILE_SIZE - len + 1 + (off_t)(p % 64u) * 50;
    if (past && len == 0)
        len = 1;
    r->is_file = 1;
    r->file_off = off;
    r->past = past;
    snprintf(v, sizeof(v), "%lld", (long long)off);
    grace_response_add_header(r->req, "X-File", v);
    if (past) /* the checker expects this one cut short, then EOF */
        grace_response_add_header(r->req, "X-Past", "1");
    int fd = dup(file_fd[(p >> 1) & 1]);
    if (fd < 0)
        fail("dup: %s", strerror(errno));
    int rc = grace_reply_file(r->req, 200, fd, off, len);
    if (rc == -EINVAL && past) { /* refusing the range up front is fine too */
        r->is_file = 0;
        completed(r, grace_reply(r->req, 500, NULL, 0), "grace_reply");
        return;
    }
    completed(r, rc, "grace_reply_file");
}

static void reply_buffer(struct rec *r)
{
    struct evbuffer *b = evbuffer_new();
    size_t n = 1 + r->p * 151u % 20000u;
    char blk[256];
    memset(blk, 'B', sizeof(blk));
    for (size_t i = 0; i < n; i += sizeof(blk))
        evbuffer_add(b, blk, n - i < sizeof(blk) ? n - i : sizeof(blk));
    completed(r, grace_reply_buffer(r->req, 200, b), "grace_reply_buffer");
    evbuffer_free(b);
}

static void stream_start(struct rec *r)
{
    int rc = grace_reply_start(r->req, 200);
    if (rc == -ENOTCONN)
        return; /* settle() releases it */
    if (rc)
        fail("grace_reply_start: %d", rc);
    r->streaming = 1;
}

static void stream_end(struct rec *r)
{
    completed(r, grace_reply_end(r->req), "grace_reply_end");
}

/* One chunk; returns 0 if the stream is still open. */
static int stream_chunk(struct rec *r)
{
    static const char data[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    size_t n = 1 + (r->p + r->ticks) % (sizeof(data) - 1);
    int rc = grace_reply_chunk(r->req, data, n);
    if (rc == -ENOTCONN) {
        stream_end(r); /* releases the detached request */
        return -1;
    }
    if (rc)
        fail("grace_reply_chunk: %d", rc);
    return 0;
}

/* The reply the behaviour calls for, now. */
static void reply_now(struct rec *r, int status)
{
    switch (r->beh) {
    case B_FILE:
    case B_FILE_LARGE:
    case B_FILE_PAST:
    case B_FILE_LARGE_PAST:
        reply_file(r);
        break;
    case B_BUFFER:
        reply_buffer(r);
        break;
    case B_NO_CONTENT: /* no body to give: whether one would be dropped or
                        * refused is the library's choice */
        completed(r, grace_reply(r->req, r->p & 4 ? 304 : 204, NULL, 0), "grace_reply");
        break;
    case B_CHUNKED:
        stream_start(r);
        for (int i = 0; r->streaming && i < 1 + r->p % 4; i++)
            if (stream_chunk(r) < 0)
                return;
        if (r->req)
            stream_end(r);
        break;
    case B_STOP:
        stop_server(r->a);
        reply_plain(r, status);
        break;
    default:
        reply_plain(r, status);
    }
}

/* Nothing of ours will complete a detached request any more: release it.
 * A request that finished with an error must be detached. */
static void settle(struct rec *r)
{
    if (!r->req || !r->finished || !r->err || r->busy || timer_pending(r))
        return;
    int rc = r->streaming ? grace_reply_end(r->req) : grace_reply(r->req, 500, NULL, 0);
    if (rc != -ENOTCONN)
        fail("request %d finished with %d but a reply returned %d", r->seq, r->err, rc);
    completed(r, rc, "release");
}

/* A timed reply stream saw how much output is queued: see stall_check(). */
static void stream_watch(struct rec *r, size_t before)
{
    struct fconn *k = &r->a->conn[r->conn];
    if (before == 0) /* the output was empty: a new write-timeout epoch */
        k->quiet_since = now_ms();
    k->streamer = r;
    k->pending = grace_reply_pending(r->req);
}

static void stream_tick(struct rec *r)
{
    struct fconn *k = &r->a->conn[r->conn];
    int done;

    if (r->finished && r->err) { /* detached: the end releases it */
        stream_end(r);
        return;
    }
    if (r->beh == B_ENDLESS) /* until nobody could mistake it for a hang */
        done = r->a->final && (k->reading || k->vanished);
    else
        done = r->ticks >= 1 + r->p % 8;
    if (done) {
        stream_end(r);
        return;
    }
    size_t before = grace_reply_pending(r->req);
    r->ticks++;
    if (stream_chunk(r) < 0)
        return;
    stream_watch(r, before);
    later(r, 1, N_STREAM);
}

static void start_body(struct rec *r);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rec *r = arg;
    if (!r->req)
        return;
    r->busy++;
    switch (r->next) {
    case N_STREAM:
        if (r->streaming) {
            stream_tick(r);
        } else { /* a late start */
            stream_start(r);
            if (r->streaming)
                later(r, 1, N_STREAM);
        }
        break;
    case N_READ_BODY: /* schedules the connection from outside its pump */
        start_body(r);
        break;
    case N_RESUME:
        r->paused = 0;
        grace_request_resume(r->req);
        break;
    default:
        reply_now(r, 200);
    }
    r->busy--;
    settle(r);
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct rec *r = arg;
    if (r->finished)
        fail("request %d finished twice", r->seq);
    r->finished = 1;
    r->err = err;
    if (err && r->a->conn[r->conn].streamer == r)
        r->a->conn[r->conn].streamer = NULL;
    settle(r);
}

static void on_data(struct grace_request *req, const char *d, size_t n, void *arg)
{
    struct rec *r = arg;
    if (!r->req)
        return;
    if (r->paused)
        fail("request %d: body data while paused", r->seq);
    r->busy++;
    if (r->beh == B_STREAM_BODY && (r->p & 2))
        grace_request_pause(req), grace_request_resume(req);
    if (r->beh == B_STREAM_BODY && (r->p & 8)) { /* backpressure: resume later */
        grace_request_pause(req);
        r->paused = 1;
        later(r, 1, N_RESUME);
    }
    if (r->beh == B_STOP_IN_BODY)
        stop_server(r->a);
    if (r->beh == B_REPLY_IN_DATA && n > 3)
        reply_now(r, 202);
    r->busy--;
    settle(r);
}

/* The body is complete: answer, now or (stream-body with P bit 2) later. */
static void body_done(struct rec *r, int status)
{
    r->complete = 1;
    if (!r->req)
        return;
    r->busy++;
    if (r->beh == B_STOP_IN_BODY)
        stop_server(r->a);
    if (r->beh == B_STREAM_BODY && (r->p & 4))
        later(r, 1, N_REPLY);
    else
        reply_now(r, status);
    r->busy--;
    settle(r);
}

static void on_end(struct grace_request *req, void *arg)
{
    body_done(arg, 200);
}

static void on_body(struct grace_request *req, struct evbuffer *b, void *arg)
{
    body_done(arg, 201);
}

/* The request's behaviour and parameter, from its path "/BP". */
static void pick_behaviour(struct rec *r)
{
    const char *path = grace_request_path(r->req);
    const char *l;
    if (path[0] != '/' || !path[1]) { /* the old harness's rotation */
        r->beh = (enum beh)(r->seq % 4);
        return;
    }
    l = strchr(beh_letter, path[1]);
    r->beh = l ? (enum beh)(l - beh_letter) : (enum beh)((uint8_t)path[1] % B__COUNT);
    r->p = (uint8_t)path[2];
}

/* A new request: record it, tag its response with its sequence number. */
static struct rec *rec_new(struct app *a, struct grace_request *req)
{
    struct rec *r = calloc(1, sizeof(*r));
    socklen_t len = 0;
    const struct sockaddr_un *peer = (const void *)grace_request_peer(req, &len);
    char v[16];

    if (!r)
        fail("out of memory");
    if (a->nrecs == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        if (!(a->recs = realloc(a->recs, a->cap * sizeof(*a->recs))))
            fail("out of memory");
    }
    a->recs[a->nrecs++] = r;
    r->a = a;
    r->req = req;
    r->seq = (int)a->nrecs;
    /* the peer address we gave grace_server_adopt_conn names the connection */
    if (len < 3 || peer->sun_family != AF_UNIX || peer->sun_path[0] < '0' ||
        peer->sun_path[0] >= '0' + a->nconns)
        fail("request %d: peer address not ours", r->seq);
    r->conn = peer->sun_path[0] - '0';
    r->head = !strcmp(grace_request_method(req), "HEAD");
    r->complete = grace_request_content_length(req) == 0; /* no body */
    pick_behaviour(r);
    grace_request_on_finish(req, on_finish, r);
    snprintf(v, sizeof(v), "%d", r->seq);
    grace_response_add_header(req, "X-Seq", v);
    if (r->head) /* Content-Length without a body */
        grace_response_add_header(req, "X-Head", "1");
    return r;
}

/* Read the body as the behaviour wants: piecewise, or collected. */
static void start_body(struct rec *r)
{
    int collect = r->beh == B_COLLECT || (r->beh == B_STOP_IN_BODY && (r->p & 1));
    int rc = collect ? grace_request_collect_body(r->req, r->a->collect_limit, on_body, r)
                     : grace_request_read_body(r->req, on_data, on_end, r);
    if (rc == -EMSGSIZE) /* Content-Length over the limit: nothing was sent */
        reply_now(r, 413);
    else if (rc < 0 && rc != -ENOTCONN) /* detached meanwhile: settle() */
        fail("reading the body of request %d: %d", r->seq, rc);
}

static void handler(struct grace_request *req, void *arg)
{
    struct app *a = arg;
    struct rec *r = rec_new(a, req);

    r->busy++;
    switch (r->beh) {
    case B_STREAM_BODY:
    case B_REPLY_IN_DATA:
    case B_STOP_IN_BODY:
    case B_COLLECT:
        if (r->p & 16) /* the body is left waiting a while */
            later(r, 1 + ((r->p >> 5) & 3) * 3, N_READ_BODY);
        else
            start_body(r);
        break;
    case B_LATE:
        later(r, 1 + r->p % 3, N_REPLY);
        break;
    case B_TICKER:
    case B_ENDLESS:
        if (!(r->p & 1))
            stream_start(r);
        later(r, 1, N_STREAM);
        break;
    default: /* early, chunked, files, buffer, no content, stop */
        if (r->p & 1)
            later(r, 1 + (r->p >> 4) % 3, N_REPLY);
        else
            reply_now(r, r->beh == B_EARLY ? 401 : 200);
    }
    r->busy--;
    settle(r);
}

/* ================================================================ our side */

static void conn_open(struct app *a, int k)
{
    struct fconn *c = &a->conn[k];
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    int sv[2], small = 1;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        fail("socketpair: %s", strerror(errno));
    /* Small buffers make backpressure reachable: the kernel raises 1 to
     * its minimum, 4.5 KiB, charged per queued skb (a few small writes
     * fill it). On AF_UNIX stream sockets only the sender's SO_SNDBUF
     * counts; SO_RCVBUF is set for good measure. */
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    /* both ends non-blocking: the listener hands the server such sockets */
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    c->fd = sv[1];
    c->reading = 1;
    c->got = evbuffer_new();
    peer.sun_path[0] = (char)('0' + k); /* tells the handler the connection */
    /* only at set-up, far below max-connections: it cannot refuse */
    if (grace_server_adopt_conn(a->srv, sv[0], (struct sockaddr *)&peer,
                                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 2), NULL) < 0)
        fail("grace_server_adopt_conn refused connection %d", k);
}

/* Take what the server sent. A reset after a naive close comes only
 * after all the data queued to us (AF_UNIX keeps it): it is an end. */
static void conn_read(struct fconn *c)
{
    char buf[16384];
    ssize_t n;
    if (c->fd < 0)
        return;
    while ((n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        evbuffer_add(c->got, buf, (size_t)n);
    c->quiet_since = now_ms(); /* room made: the server can progress */
    c->inq = 0;
}

static void conn_send(struct fconn *c, const uint8_t *d, size_t n)
{
    if (c->fd >= 0 && !c->wr_shut && n) /* a short or failed send is fine */
        (void)send(c->fd, d, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void conn_half_close(struct fconn *c)
{
    if (c->fd >= 0 && !c->wr_shut)
        shutdown(c->fd, SHUT_WR);
    c->wr_shut = 1;
}

static void conn_vanish(struct fconn *c)
{
    conn_read(c); /* what arrived so far is still checked */
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->vanished = 1;
}

/* Has the server shut down or closed its side? */
static int conn_hup(const struct fconn *c)
{
    struct pollfd p = {c->fd, POLLRDHUP, 0};
    return c->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* ================================================================ running the loop */

/* Which connections a write-timeout may have cut. The counter is
 * server-wide; the connection it ended is one whose server side closed in
 * the same step. If fewer closed than timed out, blame every open one. */
static void blame_write_timeouts(struct app *a, uint64_t timeouts, const int *hup_before)
{
    int closed = 0;
    for (int k = 0; k < a->nconns; k++)
        if (!hup_before[k] && a->conn[k].hup)
            closed++;
    for (int k = 0; k < a->nconns; k++) {
        struct fconn *c = &a->conn[k];
        if (!hup_before[k] && (c->hup || (uint64_t)closed < timeouts || !c->reading))
            c->wt_cut = 1;
    }
}

/*
 * A stream that keeps adding output we never read must be ended by
 * write-timeout: it measures time without write progress, not time since
 * the last byte was queued. quiet_since is the latest moment progress may
 * have happened or a new wait began: we read, bytes appeared in our
 * socket, or the stream found the output empty. Output has been pending
 * since then without progress (it only shrinks by being written), so if
 * that was more than write-timeout before this step began, the deadline
 * had passed and the step must have run the timeout.
 */
static void stall_check(struct app *a, int64_t step_start)
{
    for (int k = 0; k < a->nconns; k++) {
        struct fconn *c = &a->conn[k];
        struct rec *r = c->streamer;
        if (c->reading || c->fd < 0)
            continue;
        int inq = 0;
        if (ioctl(c->fd, FIONREAD, &inq) == 0 && inq != c->inq) {
            c->inq = inq;
            c->quiet_since = now_ms();
        }
        if (r && r->req && !r->finished && c->pending > 0 &&
            step_start - c->quiet_since > T_WRITE + STALL_SLACK_MS)
            fail("conn %d: output stuck for %lld ms, write-timeout is %d ms (request %d)", k,
                 (long long)(step_start - c->quiet_since), T_WRITE, r->seq);
    }
}

/* Run the loop once (ms 0) or for ms, then look at what happened. */
static void step(struct app *a, int ms)
{
    uint64_t wt = grace_server_counter(a->srv, GRACE_CNT_TIMEOUT_WRITE);
    uint64_t ka = grace_server_counter(a->srv, GRACE_CNT_TIMEOUT_KEEPALIVE);
    int hup_before[MAX_CONNS];
    int64_t start = now_ms();

    for (int k = 0; k < a->nconns; k++)
        hup_before[k] = a->conn[k].hup;
    if (ms) {
        struct timeval tv = {0, ms * 1000};
        event_base_loopexit(a->base, &tv);
        event_base_dispatch(a->base);
    } else {
        event_base_loop(a->base, EVLOOP_NONBLOCK);
    }
    for (int k = 0; k < a->nconns; k++)
        a->conn[k].hup = a->conn[k].hup || conn_hup(&a->conn[k]);
    wt = grace_server_counter(a->srv, GRACE_CNT_TIMEOUT_WRITE) - wt;
    if (wt)
        blame_write_timeouts(a, wt, hup_before);
    ka = grace_server_counter(a->srv, GRACE_CNT_TIMEOUT_KEEPALIVE) - ka;
    if (ka && known.keepalive) /* same blame: the output it may have cut */
        blame_write_timeouts(a, ka, hup_before);
    stall_check(a, start);
    for (int k = 0; k < a->nconns; k++)
        if (a->conn[k].reading)
            conn_read(&a->conn[k]);
}

/* Let ms of loop time pass in 1 ms steps (reading between them), within
 * the input's sleep budget. */
static void wait_ms(struct app *a, int ms)
{
    if (a->slept_ms + ms > SLEEP_BUDGET_MS) {
        step(a, 0);
        return;
    }
    a->slept_ms += ms;
    for (int64_t until = now_ms() + ms; now_ms() < until;)
        step(a, 1);
}

/* Sleep with the loop idle, then run it once: timers due meanwhile (ours
 * and the server's) fire together, in deadline order, in one iteration. */
static void nap(struct app *a, int ms)
{
    if (a->slept_ms + ms <= SLEEP_BUDGET_MS) {
        a->slept_ms += ms;
        usleep((useconds_t)ms * 1000);
    }
    step(a, 0);
}

/* ================================================================ checking what was sent */

struct resp {
    int status, seq, head, past, close, chunked;
    int64_t length; /* Content-Length, or -1 */
};

/* Parse a response head at s. Returns its length, or 0 if incomplete. */
static size_t parse_head(int k, const char *s, size_t n, struct resp *r)
{
    const char *end = memmem(s, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    memset(r, 0, sizeof(*r));
    r->length = -1;
    if (end - s < 13 || memcmp(s, "HTTP/1.1 ", 9) || s[12] != ' ' || s[9] < '1' ||
        s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
        fail("conn %d: bad status line", k);
    r->status = atoi(s + 9);
    /* lines end with CRLF; the last one's CRLF is the first half of end */
    const char *p = (const char *)memchr(s, '\n', (size_t)(end + 2 - s)) + 1;
    if (p[-2] != '\r')
        fail("conn %d: bad status line end", k);
    while (p < end + 2) {
        const char *lf = memchr(p, '\n', (size_t)(end + 2 - p));
        const char *colon = memchr(p, ':', (size_t)(lf - p));
        if (lf[-1] != '\r' || !colon || colon == p)
            fail("conn %d: bad header line", k);
        if (!strncasecmp(p, "Content-Length:", 15))
            r->length = strtoll(p + 15, NULL, 10);
        else if (!strncasecmp(p, "Transfer-Encoding: chunked\r", 27))
            r->chunked = 1;
        else if (!strncasecmp(p, "Connection: close\r", 18))
            r->close = 1;
        else if (!strncasecmp(p, "X-Seq:", 6))
            r->seq = atoi(p + 6);
        else if (!strncasecmp(p, "X-Head: 1\r", 10))
            r->head = 1;
        else if (!strncasecmp(p, "X-Past: 1\r", 10))
            r->past = 1;
        p = lf + 1;
    }
    if (r->chunked && r->length >= 0)
        fail("conn %d: both Content-Length and chunked", k);
    return (size_t)(end - s) + 4;
}

/* Length of a chunked body at s, or 0 if it is not complete. */
static size_t chunked_span(int k, const char *s, size_t n)
{
    size_t at = 0;
    for (;;) {
        char *e;
        const char *crlf = memmem(s + at, n - at, "\r\n", 2);
        if (!crlf)
            return 0;
        unsigned long len = strtoul(s + at, &e, 16);
        if (e != crlf || e == s + at)
            fail("conn %d: bad chunk size line", k);
        at = (size_t)(crlf - s) + 2;
        if (n - at < len + 2)
            return 0;
        if (memcmp(s + at + len, "\r\n", 2))
            fail("conn %d: chunk not followed by CRLF", k);
        at += len + 2;
        if (len == 0)
            return at;
    }
}

/*
 * May the response to r (NULL: one the server made itself) on connection k
 * be cut short, or missing? Not for a naive close (linger off): on AF_UNIX
 * the data already queued to the peer survives the close (the reset comes
 * after it), unlike TCP where the reset discards it; and the server closes
 * only once its output is in the kernel.
 */
static int may_cut(const struct app *a, int k, const struct rec *r, int past_seq)
{
    const struct fconn *c = &a->conn[k];
    if (c->vanished || c->wt_cut || a->stop_cut)
        return 1;
    if (!r)
        return 0;
    if (past_seq && r->seq >= past_seq) /* a short file ends the connection */
        return 1;
    if (!r->finished)
        fail("request %d never finished", r->seq);
    /* It failed on its own (body limit, malformed body, body timeout,
     * client gone mid-body). Failing with ECONNRESET although the whole
     * request had arrived means a half-close lost its answer. */
    return r->err && !(r->err == -ECONNRESET && r->complete && !known.halfclose);
}

static void require_cut_ok(const struct app *a, int k, const struct rec *r, int past_seq,
                           const char *what)
{
    if (may_cut(a, k, r, past_seq))
        return;
    if (!r)
        fail("conn %d: the server's own response: %s", k, what);
    fail("conn %d: request %d (behaviour '%c', finish %d, %s): %s", k, r->seq,
         beh_letter[r->beh], r->err, r->complete ? "complete" : "body incomplete", what);
}

/* The first file reply past the end on connection k, or 0. */
static int first_past(const struct app *a, int k)
{
    for (size_t i = 0; i < a->nrecs; i++)
        if (a->recs[i]->conn == k && a->recs[i]->past)
            return a->recs[i]->seq;
    return 0;
}

/* The next request of connection k from index *i on, or NULL. */
static struct rec *next_rec(const struct app *a, int k, size_t *i)
{
    for (; *i < a->nrecs; ++*i)
        if (a->recs[*i]->conn == k)
            return a->recs[(*i)++];
    return NULL;
}

/* A file body must be the file's bytes at the offset, and none past its end. */
static void check_file_body(int k, const struct rec *r, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t at = (uint64_t)r->file_off + i;
        if (at >= FILE_SIZE)
            fail("conn %d: request %d: bytes past the end of the file", k, r->seq);
        if (b[i] != file_byte(at))
            fail("conn %d: request %d: file body byte %zu wrong", k, r->seq, i);
    }
}

static void check_conn(const struct app *a, int k)
{
    struct evbuffer *got = a->conn[k].got;
    size_t n = evbuffer_get_length(got), at = 0, ri = 0;
    const char *s = (const char *)evbuffer_pullup(got, -1);
    int past_seq = first_past(a, k);
    struct rec *r;

    while (at < n) {
        struct resp h;
        size_t hl = parse_head(k, s + at, n - at, &h), bl;
        int whole = 1;

        if (!hl) { /* a head cut short: the next request's, or the server's */
            size_t j = ri;
            require_cut_ok(a, k, next_rec(a, k, &j), past_seq, "response head cut short");
            break;
        }
        if (h.status < 200) {
            if (h.status != 100 || h.seq)
                fail("conn %d: unexpected interim response %d", k, h.status);
            at += hl;
            continue;
        }
        r = NULL;
        if (h.seq) { /* the application's: answers in dispatch order */
            if (h.seq < 1 || (size_t)h.seq > a->nrecs || a->recs[h.seq - 1]->conn != k)
                fail("conn %d: response X-Seq %d is not a request of this connection", k, h.seq);
            while ((r = next_rec(a, k, &ri)) && r->seq != h.seq)
                require_cut_ok(a, k, r, past_seq, "no answer, but a later one came");
            if (!r)
                fail("conn %d: response %d out of order or twice", k, h.seq);
            if (h.past != r->past)
                fail("conn %d: X-Past mismatch on %d", k, h.seq);
        } else if (h.status < 400) {
            fail("conn %d: a %d the application never sent", k, h.status);
        }

        at += hl;
        if (h.head || h.status == 204 || h.status == 304) {
            bl = 0;
        } else if (h.chunked) {
            bl = chunked_span(k, s + at, n - at);
            whole = bl > 0;
            bl = whole ? bl : n - at;
        } else if (h.length >= 0) {
            whole = (uint64_t)h.length <= n - at;
            bl = whole ? (size_t)h.length : n - at;
        } else { /* close-delimited (HTTP/1.0 stream): all the rest */
            bl = n - at;
        }
        if (r && r->is_file && !h.head)
            check_file_body(k, r, s + at, bl);
        if (!whole) {
            require_cut_ok(a, k, r, past_seq, "response cut short");
            break;
        }
        at += bl;
        if (h.close && at < n)
            fail("conn %d: bytes after a Connection: close response", k);
    }
    while ((r = next_rec(a, k, &ri)))
        require_cut_ok(a, k, r, past_seq, "never answered");
}

/* FUZZ_CONN_DEBUG=1: what happened, for triage. */
static void debug_dump(const struct app *a)
{
    for (int i = 0; i < GRACE_CNT__COUNT; i++)
        if (grace_server_counter(a->srv, (enum grace_counter)i))
            fprintf(stderr, "  %s=%llu", grace_counter_name((enum grace_counter)i),
                    (unsigned long long)grace_server_counter(a->srv, (enum grace_counter)i));
    fprintf(stderr, "\n  stop asked %d cut %d stopped %d\n", a->stop_asked, a->stop_cut,
            a->stopped);
    for (size_t i = 0; i < a->nrecs; i++) {
        const struct rec *r = a->recs[i];
        fprintf(stderr, "  request %d conn %d '%c' p=%u finished %d err %d complete %d%s\n",
                r->seq, r->conn, beh_letter[r->beh], r->p, r->finished, r->err, r->complete,
                r->past ? " past" : "");
    }
    for (int k = 0; k < a->nconns; k++) {
        const struct fconn *c = &a->conn[k];
        size_t n = evbuffer_get_length(c->got);
        const unsigned char *b = evbuffer_pullup(c->got, -1);
        fprintf(stderr, "  conn %d: reading %d vanished %d wt_cut %d hup %d, got %zu:\n    ", k,
                c->reading, c->vanished, c->wt_cut, c->hup, n);
        for (size_t i = 0; i < n && i < 2000; i++)
            fprintf(stderr, b[i] == '\n' ? "\\n\n    " : b[i] >= 32 && b[i] < 127 ? "%c" : "\\x%02x",
                    b[i]);
        fputc('\n', stderr);
    }
}

/* ================================================================ the run */

static void setup(struct app *a, const uint8_t *h)
{
    static const int max_lingering[4] = {1024, 1, 2, 3};
    struct grace_config *cfg = grace_config_new();

    a->base = event_base_new();
    a->nconns = 1 + (h[0] & 3);
    a->stop_timeout = h[0] & 32 ? STOP_SHORT : STOP_LONG;
    a->collect_limit = h[2] * 64u;
    grace_config_set(cfg, GRACE_OPT_LINGER, !(h[0] & 4));
    grace_config_set(cfg, GRACE_OPT_MAX_LINGERING, max_lingering[(h[0] >> 3) & 3]);
    if (h[0] & 64)
        grace_config_set(cfg, GRACE_OPT_OUTPUT_HIGH_WATER, 1024);
    grace_config_set(cfg, GRACE_OPT_DRAIN_LIMIT, h[1] * 16);
    grace_config_set(cfg, GRACE_OPT_MAX_HEADER_BYTES, 512 + h[3]);
    grace_config_set(cfg, GRACE_OPT_MAX_BODY_SIZE, 4096);
    grace_config_set(cfg, GRACE_OPT_HEADER_TIMEOUT, T_SHORT);
    grace_config_set(cfg, GRACE_OPT_BODY_TIMEOUT, T_SHORT);
    grace_config_set(cfg, GRACE_OPT_KEEPALIVE_TIMEOUT, T_SHORT);
    grace_config_set(cfg, GRACE_OPT_WRITE_TIMEOUT, T_WRITE);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIMEOUT, T_SHORT);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIME, T_LINGER);
    grace_config_set(cfg, GRACE_OPT_STOP_LINGER_TIME, STOP_SHORT);
    a->srv = grace_server_new(a->base, cfg);
    grace_config_free(cfg);
    if (!a->srv)
        fail("grace_server_new");
    grace_server_set_handler(a->srv, handler, a);
    for (int k = 0; k < a->nconns; k++)
        conn_open(a, k);
}

/* One slice: bytes for a connection, then an action on it. */
static void slice(struct app *a, int ctl, const uint8_t *d, size_t n)
{
    struct fconn *c = &a->conn[(ctl & 3) % a->nconns];

    conn_send(c, d, n);
    switch ((ctl >> 2) & 15) {
    case 1:
        conn_half_close(c);
        step(a, 0);
        break;
    case 2:
        step(a, 0);
        conn_vanish(c);
        step(a, 0);
        break;
    case 3:
        wait_ms(a, 2);
        break;
    case 4:
        c->reading = 0;
        c->quiet_since = now_ms();
        step(a, 0);
        break;
    case 5:
        c->reading = 1;
        step(a, 0);
        break;
    case 6:
        wait_ms(a, T_WRITE + 5);
        break;
    case 7:
        break;
    case 8:
        nap(a, 2);
        break;
    default:
        step(a, 0);
    }
}

/* The input is done: half-close every connection and let them all end.
 * Connections we do not read stay unread: the server must still end them. */
static void finish(struct app *a)
{
    int64_t deadline;

    a->final = 1;
    for (int k = 0; k < a->nconns; k++)
        conn_half_close(&a->conn[k]);
    deadline = now_ms() + END_BOUND_MS;
    while (grace_server_counter(a->srv, GRACE_CNT_CONN_ACTIVE)) {
        if (now_ms() > deadline && known.hang) { /* excuse all, free them */
            a->hung = 1;
            a->stop_cut = 1;
            break;
        }
        if (now_ms() > deadline)
            fail("%llu connection(s) still open %d ms after the input ended",
                 (unsigned long long)grace_server_counter(a->srv, GRACE_CNT_CONN_ACTIVE),
                 END_BOUND_MS);
        step(a, 1);
    }
    step(a, 0); /* a stop's callback runs from the loop */
    for (int k = 0; k < a->nconns; k++)
        conn_read(&a->conn[k]); /* everything, read or not before */
}

/* Complete what the application still holds (only detached requests are
 * left), free our timers, then the server: the loop must be empty. */
static void teardown(struct app *a)
{
    for (size_t i = 0; i < a->nrecs; i++) {
        struct rec *r = a->recs[i];
        if (r->timer)
            event_free(r->timer);
        r->timer = NULL;
        settle(r);
        if (r->req && !a->hung)
            fail("request %d still held with finish %d", r->seq, r->err);
        r->busy = a->hung; /* nothing of ours touches it from now on */
    }
    grace_server_free(a->srv);
    if (event_base_loop(a->base, EVLOOP_NONBLOCK) != 1)
        fail("something of the server was left on the loop");
    event_base_free(a->base);
    for (int k = 0; k < a->nconns; k++) {
        if (a->conn[k].fd >= 0)
            close(a->conn[k].fd);
        evbuffer_free(a->conn[k].got);
    }
    for (size_t i = 0; i < a->nrecs; i++)
        free(a->recs[i]);
    free(a->recs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct app a = {0};
    size_t at = 4;

    if (size < 4)
        return 0;
    current = &a;
    setup(&a, data);
    while (at + 2 <= size) {
        int ctl = data[at];
        size_t len = data[at + 1];
        at += 2;
        if (len > size - at)
            len = size - at;
        slice(&a, ctl, data + at, len);
        at += len;
    }
    finish(&a);
    if (a.stop_asked && a.stopped != 1 && !a.hung)
        fail("a stop finished but its callback ran %d times", a.stopped);
    if (getenv("FUZZ_CONN_DEBUG") && atoi(getenv("FUZZ_CONN_DEBUG")) > 1)
        debug_dump(&a);
    for (int k = 0; k < a.nconns; k++)
        check_conn(&a, k);
    teardown(&a);
    current = NULL;
    return 0;
}
