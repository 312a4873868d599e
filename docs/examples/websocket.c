/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * websocket.c - an embedding example: a WebSocket echo (RFC 6455) at /ws
 * on top of grace_reply_upgrade() and the stream API.
 *
 *   websocket [--host H] [--port P] [--max-message N]
 * --max-message N  a message (all its fragments) over N bytes is refused
 *                  with close code 1009 (default 1 MiB)
 * SIGINT/SIGTERM stop gracefully: open sockets get a close frame (1001).
 *
 * What it shows: the handshake (Sec-WebSocket-Accept, with a small SHA-1
 * of its own so the example needs nothing but the library), a refused
 * handshake answered with an ordinary reply (426 with the version we
 * speak), framing with the client's mask required (an unmasked frame is
 * closed with 1002), fragmented text and binary messages, UTF-8 checked
 * (1007), ping/pong, the close handshake, and backpressure: when the
 * stream refuses a write, reading pauses until on_drain.
 */
#include <gracehttp.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct app {
    struct grace_server *srv;
    struct event_base *base;
    size_t max_message;
};

/* One WebSocket connection. */
struct ws {
    struct app *app;
    struct grace_stream *st;
    struct evbuffer *in;      /* frames not yet complete */
    struct evbuffer *msg;     /* fragments of the message being received */
    struct evbuffer *out;     /* frames the stream refused for now */
    int msg_op;               /* 1 text, 2 binary; 0 none in progress */
    int close_sent, closing;
};

/* ---------------------------------------------------------------- SHA-1, base64 */

struct sha1 {
    uint32_t h[5];
    uint64_t len;
    unsigned char blk[64];
    size_t n;
};

#define ROL(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

static void sha1_block(struct sha1 *s, const unsigned char *p)
{
    uint32_t w[80], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        else
            f = b ^ c ^ d, k = 0xca62c1d6;
        uint32_t t = ROL(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL(b, 30), b = a, a = t;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e;
}

static void sha1_add(struct sha1 *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->len += n;
    while (n--) {
        s->blk[s->n++] = *p++;
        if (s->n == 64) {
            sha1_block(s, s->blk);
            s->n = 0;
        }
    }
}

static void sha1(const void *data, size_t n, unsigned char out[20])
{
    struct sha1 s = {{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0}, 0, {0}, 0};
    uint64_t bits = (uint64_t)n * 8;
    unsigned char pad = 0x80, zero = 0, len[8];
    sha1_add(&s, data, n);
    sha1_add(&s, &pad, 1);
    while (s.n != 56)
        sha1_add(&s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_add(&s, len, 8);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(s.h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* ---------------------------------------------------------------- frames out */

/* Send whatever the stream takes; the rest waits in ws->out, and reading
 * pauses until on_drain (the stream accepts any size once it is empty). */
static void ws_flush(struct ws *ws)
{
    size_t n = evbuffer_get_length(ws->out);
    if (!n)
        return;
    int rc = grace_stream_write(ws->st, evbuffer_pullup(ws->out, -1), n);
    if (rc == 0) {
        evbuffer_drain(ws->out, n);
        if (!ws->closing)
            grace_stream_resume(ws->st);
    } else if (rc == -ENOBUFS) {
        grace_stream_pause(ws->st);
    }
}

static void ws_frame(struct ws *ws, int op, const void *data, size_t n)
{
    unsigned char h[10];
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | op); /* FIN: we never fragment */
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8), h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    evbuffer_add(ws->out, h, hl);
    evbuffer_add(ws->out, data, n);
    ws_flush(ws);
}

static void ws_free(struct ws *ws)
{
    evbuffer_free(ws->in);
    evbuffer_free(ws->msg);
    evbuffer_free(ws->out);
    free(ws);
}

/* Close our side: the library sends the FIN after the queued output and
 * reads (and drops) what the client still sends. ws is freed. */
static void ws_finish(struct ws *ws)
{
    grace_stream_close(ws->st);
    ws_free(ws);
}

/* Send a close frame (once), then finish as soon as our frames are out:
 * now, or from on_drain. Nothing more is read. */
static void ws_close(struct ws *ws, int code, const char *why)
{
    if (!ws->close_sent) {
        unsigned char p[125];
        size_t wl = strlen(why);
        p[0] = (unsigned char)(code >> 8), p[1] = (unsigned char)code;
        memcpy(p + 2, why, wl);
        ws->close_sent = 1;
        ws_frame(ws, 8, p, 2 + wl);
    }
    ws->closing = 1;
    grace_stream_pause(ws->st);
    if (!evbuffer_get_length(ws->out))
        ws_finish(ws);
}

/* ---------------------------------------------------------------- frames in */

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k >= n) /* cut short */
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static int close_code_ok(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/*
 * One complete frame from the front of ws->in: 1 handled, 0 more bytes
 * needed, -1 closing (ws may be freed already).
 */
static int ws_frame_in(struct ws *ws)
{
    size_t have = evbuffer_get_length(ws->in), hl = 2;
    unsigned char h[14];
    uint64_t len;

    if (have < 2)
        return 0;
    evbuffer_copyout(ws->in, h, have < 14 ? have : 14);
    int fin = h[0] & 0x80, op = h[0] & 0x0f;
    if (h[0] & 0x70) {
        ws_close(ws, 1002, "reserved bits set");
        return -1;
    }
    if (!(h[1] & 0x80)) { /* RFC 6455 5.1: a server must refuse unmasked frames */
        ws_close(ws, 1002, "client frames must be masked");
        return -1;
    }
    len = h[1] & 0x7f;
    if (len == 126) {
        if (have < 4)
            return 0;
        len = (uint64_t)h[2] << 8 | h[3];
        hl = 4;
    } else if (len == 127) {
        if (have < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        hl = 10;
    }
    if (op >= 8 && (!fin || len > 125)) {
        ws_close(ws, 1002, "bad control frame");
        return -1;
    }
    if ((op != 0 && op != 1 && op != 2 && op < 8) || op > 10) {
        ws_close(ws, 1002, "unknown opcode");
        return -1;
    }
    if (op < 8 && len + evbuffer_get_length(ws->msg) > ws->app->max_message) {
        ws_close(ws, 1009, "message too big");
        return -1;
    }
    if (have < hl + 4 + len)
        return 0;
    unsigned char mask[4];
    memcpy(mask, h + hl, 4);
    evbuffer_drain(ws->in, hl + 4);
    unsigned char *p = malloc(len ? (size_t)len : 1);
    if (!p) {
        ws_close(ws, 1011, "out of memory");
        return -1;
    }
    evbuffer_remove(ws->in, p, (size_t)len);
    for (uint64_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];

    int rc = 1;
    switch (op) {
    case 9: /* ping: pong with the same data */
        ws_frame(ws, 10, p, (size_t)len);
        break;
    case 10: /* an unsolicited pong is allowed */
        break;
    case 8: {
        int code = len >= 2 ? p[0] << 8 | p[1] : 1000;
        if (len == 1 || (len >= 2 && !close_code_ok(code)))
            ws_close(ws, 1002, "bad close frame");
        else if (len > 2 && !utf8_valid(p + 2, (size_t)len - 2))
            ws_close(ws, 1007, "close reason not UTF-8");
        else
            ws_close(ws, code, ""); /* echo the code: the handshake ends */
        rc = -1;
        break;
    }
    default: /* 0 continuation, 1 text, 2 binary */
        if ((op == 0) != (ws->msg_op != 0)) {
            ws_close(ws, 1002, op ? "expected a continuation" : "nothing to continue");
            rc = -1;
            break;
        }
        if (op)
            ws->msg_op = op;
        evbuffer_add(ws->msg, p, (size_t)len);
        if (!fin)
            break;
        size_t ml = evbuffer_get_length(ws->msg);
        unsigned char *m = evbuffer_pullup(ws->msg, -1);
        if (ws->msg_op == 1 && !utf8_valid(m, ml)) {
            ws_close(ws, 1007, "text is not UTF-8");
            rc = -1;
            break;
        }
        ws_frame(ws, ws->msg_op, m, ml); /* the echo */
        evbuffer_drain(ws->msg, ml);
        ws->msg_op = 0;
    }
    free(p);
    return rc;
}

/* ---------------------------------------------------------------- stream callbacks */

static void on_read(struct grace_stream *st, const char *data, size_t len, void *arg)
{
    struct ws *ws = arg;
    if (!len) { /* the client's TCP end without a close frame */
        grace_stream_close(st);
        ws_free(ws);
        return;
    }
    evbuffer_add(ws->in, data, len);
    for (;;) {
        int rc = ws_frame_in(ws);
        if (rc < 0)
            return; /* closed and freed */
        if (rc == 0)
            break;
    }
}

static void on_drain(struct grace_stream *st, void *arg)
{
    struct ws *ws = arg;
    ws_flush(ws);
    if (ws->closing && !evbuffer_get_length(ws->out))
        ws_finish(ws);
}

static void on_close(struct grace_stream *st, int err, void *arg)
{
    struct ws *ws = arg;
    if (err == -ESHUTDOWN && !ws->close_sent) { /* the server stops: say goodbye */
        ws->close_sent = 1;
        ws_frame(ws, 8, "\x03\xe9going away", 12);
        grace_stream_write(st, evbuffer_pullup(ws->out, -1), evbuffer_get_length(ws->out));
    }
    ws_free(ws); /* the stream is released when this returns */
}

/* ---------------------------------------------------------------- handshake */

static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (v && *v) {
        while (*v == ' ' || *v == ',' || *v == '\t')
            v++;
        size_t n = strcspn(v, ", \t");
        if (n == tl && !strncasecmp(v, tok, tl))
            return 1;
        v += n;
    }
    return 0;
}

static void handle_ws(struct grace_request *req, void *arg)
{
    struct app *app = arg;
    const char *key = grace_request_header(req, "Sec-WebSocket-Key");
    const char *ver = grace_request_header(req, "Sec-WebSocket-Version");
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct grace_stream *st;
    struct ws *ws;

    if (!grace_request_is_upgrade(req) ||
        !has_token(grace_request_header(req, "Upgrade"), "websocket")) {
        grace_response_add_header(req, "Upgrade", "websocket");
        grace_reply(req, 426, "a WebSocket endpoint: upgrade to websocket\n", 43);
        return;
    }
    if (!ver || strcmp(ver, "13")) { /* RFC 6455 4.4: say which version we speak */
        grace_response_add_header(req, "Sec-WebSocket-Version", "13");
        grace_reply(req, 426, "unsupported Sec-WebSocket-Version\n", 34);
        return;
    }
    if (!key || strlen(key) != 24) {
        grace_reply(req, 400, "bad Sec-WebSocket-Key\n", 22);
        return;
    }
    char cat[24 + sizeof(guid)], accept[29];
    unsigned char dig[20];
    memcpy(cat, key, 24);
    memcpy(cat + 24, guid, sizeof(guid));
    sha1(cat, 24 + sizeof(guid) - 1, dig);
    base64(dig, 20, accept);

    if (!(ws = calloc(1, sizeof(*ws))) || !(ws->in = evbuffer_new()) ||
        !(ws->msg = evbuffer_new()) || !(ws->out = evbuffer_new())) {
        if (ws) {
            if (ws->in)
                evbuffer_free(ws->in);
            if (ws->msg)
                evbuffer_free(ws->msg);
            free(ws);
        }
        grace_reply(req, 503, "out of memory\n", 14);
        return;
    }
    ws->app = app;
    grace_response_add_header(req, "Upgrade", "websocket");
    grace_response_add_header(req, "Sec-WebSocket-Accept", accept);
    int rc = grace_reply_upgrade(req, 101, &st);
    if (rc < 0) {
        ws_free(ws);
        if (rc != -ENOTCONN) /* -ESHUTDOWN: stopping; answer normally */
            grace_reply(req, 503, "not now\n", 8);
        return;
    }
    ws->st = st;
    grace_stream_set_callbacks(st, on_read, on_drain, on_close, ws);
}

static void handle(struct grace_request *req, void *arg)
{
    grace_reply(req, 200, "WebSocket echo at /ws\n", 22);
}

static void stopped(struct grace_server *srv, void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    grace_server_stop(app->srv, 10000, stopped, app);
}

int main(int argc, char **argv)
{
    struct app app = {.max_message = 1 << 20};
    const char *host = "127.0.0.1";
    int port = 8080, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "websocket: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--max-message"))
            app.max_message = (size_t)atoll(v);
        else {
            fprintf(stderr, "websocket: unknown option %s\n", a);
            return 2;
        }
        i++;
    }

    app.base = event_base_new();
    if (!app.base || !(app.srv = grace_server_new(app.base, NULL)))
        return 1;
    grace_server_set_handler(app.srv, handle, &app);
    if (grace_server_route(app.srv, "GET", "/ws", GRACE_ROUTE_EXACT, handle_ws, &app) < 0)
        return 1;
    if ((rc = grace_server_listen(app.srv, host, port, NULL)) < 0) {
        fprintf(stderr, "websocket: listen %s:%d: %s\n", host, port, grace_strerror(rc));
        return 2;
    }
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
    struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
    if (!sigint || !sigterm)
        return 1;
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("websocket: listening on %s:%d\n", host, grace_server_port(app.srv, 0));
    fflush(stdout);
    event_base_dispatch(app.base);

    event_free(sigint);
    event_free(sigterm);
    grace_server_free(app.srv);
    event_base_free(app.base);
    return 0;
}
