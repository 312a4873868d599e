/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_parser.c - unit tests for the incremental request parser.
 *
 * Every input runs through a driver that records the parser's events as a
 * trace string ("H GET / 1.1 none ka|D|"). Each input is checked against its
 * expected trace, and then fed again split at every point, one byte at a
 * time and at random points: the verbose trace must not change. The bytes
 * handed to the parser always end at a PROT_NONE page, so an over-read
 * crashes.
 */
#include "parser.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------ guarded buffer */

#define GUARD_MAX (1u << 20)
static char *guard_base; /* GUARD_MAX readable bytes, then a PROT_NONE page */

static void guard_setup(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, GUARD_MAX + (size_t)pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    ck_assert_int_eq(mprotect(m + GUARD_MAX, (size_t)pg, PROT_NONE), 0);
    guard_base = m;
}

/* Place n bytes so that the last one is right before the guard page. */
static const char *guarded(const char *s, size_t n)
{
    ck_assert_uint_le(n, GUARD_MAX);
    char *d = guard_base + GUARD_MAX - n;
    memmove(d, s, n);
    return d;
}

/* ------------------------------------------------------------ trace driver */

struct trace {
    char s[16384];
    size_t n;
};

static void tput(struct trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tput(struct trace *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        t->n += (size_t)k < sizeof(t->s) - t->n ? (size_t)k : sizeof(t->s) - t->n - 1;
}

static const char *perr_name(enum grace_perr e)
{
    static const char *names[] = {
        "NONE", "METHOD", "TARGET", "TARGET_BYTE", "VERSION", "VERSION_UNSUP", "REQLINE",
        "URI_TOO_LONG", "BARE_CR", "BARE_LF", "FIELD_NAME", "FIELD_WS",
        "FIELD_VALUE", "OBS_FOLD", "HEADERS_TOO_BIG", "TOO_MANY_FIELDS", "HOST",
        "HOST_INVALID", "HOST_EMPTY",
        "CL_INVALID", "CL_MULTIPLE", "CL_AND_TE", "TE_NOT_CHUNKED", "TE_TWICE",
        "TE_UNKNOWN", "TE_HTTP10", "EXPECT", "CHUNK_SIZE", "CHUNK_EXT",
        "CHUNK_LINE", "CHUNK_CRLF", "TRAILER", "TRAILER_TOO_BIG"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == GRACE_PERR__COUNT, "names");
    return names[e];
}

static void trace_headers(struct trace *t, const struct grace_parser *p, const char *blk,
                          int verbose)
{
    static const char *framing[] = {"none", "len", "chunked"};
    static const char form[] = "oaA*";
    const struct grace_preq *r = &p->req;

    tput(t, "H %.*s %.*s 1.%d %s", (int)r->method.len, blk + r->method.off,
         (int)r->target.len, blk + r->target.off, r->version_minor, framing[r->framing]);
    if (r->framing == GRACE_FRAMING_LENGTH)
        tput(t, "%llu", (unsigned long long)r->content_length);
    tput(t, " %s", r->keep_alive ? "ka" : "close");
    if (r->expect_continue)
        tput(t, " exp");
    if (r->upgrade)
        tput(t, " up");
    if (r->form != GRACE_FORM_ORIGIN)
        tput(t, " form=%c", form[r->form]);
    if (verbose) {
        tput(t, " m=%d hb=%zu host=%d [", r->method_id, r->header_bytes, r->host_index);
        for (size_t i = 0; i < r->nfields; i++)
            tput(t, "%.*s=%.*s;", (int)p->fields[i].name.len, blk + p->fields[i].name.off,
                 (int)p->fields[i].value.len, blk + p->fields[i].value.off);
        tput(t, "]");
    }
    tput(t, "|");
}

struct driver {
    struct grace_parser p;
    struct grace_hfield fields[256];
    char pending[GUARD_MAX]; /* bytes fed but not consumed */
    size_t npending;
    int in_body; /* last event was BODY: merge adjacent pieces */
    int failed;
    struct trace t;
    int verbose;
};

static void drv_init(struct driver *d, const struct grace_parser_limits *lim, int verbose)
{
    memset(d, 0, sizeof(*d));
    ck_assert_uint_le(lim && lim->max_fields ? lim->max_fields : GRACE_PARSER_DEFAULT_FIELDS,
                      256);
    grace_parser_init(&d->p, lim, d->fields);
    d->verbose = verbose;
}

static void drv_feed(struct driver *d, const char *s, size_t n)
{
    if (d->failed)
        return;
    memcpy(d->pending + d->npending, s, n);
    d->npending += n;
    for (;;) {
        size_t consumed = 0, blen = 0;
        const char *body = NULL;
        const char *buf = guarded(d->pending, d->npending);
        enum grace_pev ev = grace_parser_execute(&d->p, buf, d->npending, &consumed, &body,
                                                 &blen);
        ck_assert_uint_le(consumed, d->npending);
        switch (ev) {
        case GRACE_PEV_HEADERS:
            ck_assert_uint_ge(consumed, d->p.req.header_bytes);
            trace_headers(&d->t, &d->p, buf + consumed - d->p.req.header_bytes, d->verbose);
            d->in_body = 0;
            break;
        case GRACE_PEV_BODY:
            ck_assert_ptr_eq(body, buf);
            ck_assert_uint_eq(blen, consumed);
            if (!d->in_body)
                tput(&d->t, "B");
            tput(&d->t, "%.*s", (int)blen, body);
            d->in_body = 1;
            break;
        case GRACE_PEV_TRAILER: {
            const struct grace_hfield *f = &d->p.trailer;
            ck_assert_ptr_eq(body, buf);
            ck_assert_uint_eq(blen + 2, consumed); /* the line, then its CRLF */
            ck_assert_uint_le(f->value.off + f->value.len, blen);
            if (d->in_body)
                tput(&d->t, "|");
            d->in_body = 0;
            tput(&d->t, "T%.*s=%.*s|", (int)f->name.len, body + f->name.off, (int)f->value.len,
                 body + f->value.off);
            break;
        }
        case GRACE_PEV_DONE:
            if (d->in_body)
                tput(&d->t, "|");
            d->in_body = 0;
            tput(&d->t, "D|");
            break;
        case GRACE_PEV_ERROR:
            if (d->in_body)
                tput(&d->t, "|");
            tput(&d->t, "E%d %s|", grace_perr_status(d->p.err), perr_name(d->p.err));
            d->in_body = 0;
            d->failed = 1;
            return;
        case GRACE_PEV_AGAIN:
            break;
        }
        memmove(d->pending, d->pending + consumed, d->npending - consumed);
        d->npending -= consumed;
        if (ev == GRACE_PEV_AGAIN && consumed == 0)
            return;
    }
}

static void drv_finish(struct driver *d)
{
    if (d->in_body)
        tput(&d->t, "|");
    if (!d->failed && (!grace_parser_idle(&d->p) || d->npending))
        tput(&d->t, "P%zu|", d->npending); /* ended inside a message */
}

/* Feed s split at the given cut points (sorted, within (0, n)). */
static void run_split(struct driver *d, const struct grace_parser_limits *lim, const char *s,
                      size_t n, const size_t *cuts, size_t ncuts, int verbose)
{
    size_t at = 0;
    drv_init(d, lim, verbose);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        drv_feed(d, s + at, end - at);
        at = end;
    }
    drv_finish(d);
}

static struct driver drv_a, drv_b; /* large: keep off the stack */

/* The invariance: whole, byte by byte, every 2-way split, random splits. */
static void check_split_invariance(const struct grace_parser_limits *lim, const char *s,
                                   size_t n)
{
    static size_t cuts[GUARD_MAX];
    run_split(&drv_a, lim, s, n, NULL, 0, 1);

    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    run_split(&drv_b, lim, s, n, cuts, n ? n - 1 : 0, 1);
    ck_assert_msg(!strcmp(drv_a.t.s, drv_b.t.s), "byte-by-byte differs:\n%s\n%s", drv_a.t.s,
                  drv_b.t.s);

    size_t step = n > 2000 ? n / 500 : 1; /* every point for small inputs */
    for (size_t c = 1; c < n; c += step) {
        run_split(&drv_b, lim, s, n, &c, 1, 1);
        ck_assert_msg(!strcmp(drv_a.t.s, drv_b.t.s), "split at %zu differs:\n%s\n%s", c,
                      drv_a.t.s, drv_b.t.s);
    }

    unsigned seed = (unsigned)n * 2654435761u;
    for (int r = 0; r < 50 && n > 1; r++) {
        size_t k = 0;
        for (size_t i = 1; i < n; i++)
            if (rand_r(&seed) % 7 == 0)
                cuts[k++] = i;
        run_split(&drv_b, lim, s, n, cuts, k, 1);
        ck_assert_msg(!strcmp(drv_a.t.s, drv_b.t.s), "random split %d differs:\n%s\n%s", r,
                      drv_a.t.s, drv_b.t.s);
    }
}

/* ------------------------------------------------------------ the corpus */

struct pcase {
    const char *name;
    const char *in;
    const char *want; /* with the default limits */
};

#define H11 "Host: example.com\r\n"

static const struct pcase cases[] = {
    /* request line, versions, persistence */
    {"get11", "GET / HTTP/1.1\r\n" H11 "\r\n", "H GET / 1.1 none ka|D|"},
    {"get10", "GET / HTTP/1.0\r\n\r\n", "H GET / 1.0 none close|D|"},
    {"get10_ka", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "H GET / 1.0 none ka|D|"},
    {"get10_ka_close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
     "H GET / 1.0 none close|D|"},
    {"get11_close", "GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\n",
     "H GET / 1.1 none close|D|"},
    {"conn_tokens", "GET / HTTP/1.1\r\n" H11 "Connection: Upgrade ,\tCLOSE\r\n\r\n",
     "H GET / 1.1 none close up|D|"},
    {"conn_two_lines", "GET / HTTP/1.1\r\n" H11 "Connection: foo\r\nConnection: close\r\n\r\n",
     "H GET / 1.1 none close|D|"},
    {"leading_crlf", "\r\n\r\nGET /x HTTP/1.1\r\n" H11 "\r\n", "H GET /x 1.1 none ka|D|"},
    {"query", "GET /a/b?c=d&e HTTP/1.1\r\n" H11 "\r\n", "H GET /a/b?c=d&e 1.1 none ka|D|"},
    {"utf8_target", "GET /\xc3\xa9t\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET_BYTE|"},
    {"utf8_target_encoded", "GET /%C3%A9t%C3%A9 HTTP/1.1\r\n" H11 "\r\n",
     "H GET /%C3%A9t%C3%A9 1.1 none ka|D|"},
    {"ext_method", "PURGE /x HTTP/1.1\r\n" H11 "\r\n", "H PURGE /x 1.1 none ka|D|"},
    {"absolute", "GET http://example.com/p?q HTTP/1.1\r\n" H11 "\r\n",
     "H GET http://example.com/p?q 1.1 none ka form=a|D|"},
    {"asterisk", "OPTIONS * HTTP/1.1\r\n" H11 "\r\n", "H OPTIONS * 1.1 none ka form=*|D|"},
    {"connect", "CONNECT example.com:443 HTTP/1.1\r\n" H11 "\r\n",
     "H CONNECT example.com:443 1.1 none ka form=A|D|"},
    {"host10_none", "GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n", "H GET / 1.0 none close|D|"},
    {"empty_value", "GET / HTTP/1.1\r\n" H11 "X-Empty:\r\nX-Ws: \t \r\n\r\n",
     "H GET / 1.1 none ka|D|"},
    {"value_obs_text_tab", "GET / HTTP/1.1\r\n" H11 "X-V:  a\tb \xff\xfe c \t\r\n\r\n",
     "H GET / 1.1 none ka|D|"},
    {"expect", "PUT /f HTTP/1.1\r\n" H11 "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc",
     "H PUT /f 1.1 len3 ka exp|Babc|D|"},
    {"expect10_ignored", "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
     "H PUT /f 1.0 len1 close|Bx|D|"},
    {"expect_other", "GET / HTTP/1.1\r\n" H11 "Expect: 200-ok\r\n\r\n", "E417 EXPECT|"},

    /* Content-Length */
    {"cl", "POST /u HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\nhello",
     "H POST /u 1.1 len5 ka|Bhello|D|"},
    {"cl0", "POST /u HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", "H POST /u 1.1 len0 ka|D|"},
    {"cl_leading_zero", "POST /u HTTP/1.1\r\n" H11 "Content-Length: 007\r\n\r\n1234567",
     "H POST /u 1.1 len7 ka|B1234567|D|"},
    {"cl_dup_same", "POST / HTTP/1.1\r\n" H11 "Content-Length: 2\r\ncontent-length: 2\r\n\r\nok",
     "H POST / 1.1 len2 ka|Bok|D|"},
    {"cl_dup_differ", "POST / HTTP/1.1\r\n" H11 "Content-Length: 2\r\nContent-Length: 3\r\n\r\n",
     "E400 CL_MULTIPLE|"},
    {"cl_list", "POST / HTTP/1.1\r\n" H11 "Content-Length: 2, 2\r\n\r\nok", "E400 CL_INVALID|"},
    {"cl_plus", "POST / HTTP/1.1\r\n" H11 "Content-Length: +5\r\n\r\n", "E400 CL_INVALID|"},
    {"cl_minus", "POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n", "E400 CL_INVALID|"},
    {"cl_space_inside", "POST / HTTP/1.1\r\n" H11 "Content-Length: 1 2\r\n\r\n",
     "E400 CL_INVALID|"},
    {"cl_hex", "POST / HTTP/1.1\r\n" H11 "Content-Length: 0x10\r\n\r\n", "E400 CL_INVALID|"},
    {"cl_empty", "POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n", "E400 CL_INVALID|"},
    {"cl_max", "POST / HTTP/1.1\r\n" H11 "Content-Length: 9223372036854775807\r\n\r\n",
     "H POST / 1.1 len9223372036854775807 ka|P0|"},
    {"cl_overflow", "POST / HTTP/1.1\r\n" H11 "Content-Length: 9223372036854775808\r\n\r\n",
     "E400 CL_INVALID|"},
    {"cl_overflow_big", "POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999999\r\n\r\n",
     "E400 CL_INVALID|"},

    /* Transfer-Encoding and chunked bodies */
    {"chunked", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     "H POST / 1.1 chunked ka|Bhello world|D|"},
    {"chunked_case_hex", "POST / HTTP/1.1\r\n" H11 "transfer-encoding: CHUNKED\r\n\r\n"
                         "000A\r\n0123456789\r\na\r\nabcdefghij\r\n0000\r\n\r\n",
     "H POST / 1.1 chunked ka|B0123456789abcdefghij|D|"},
    {"chunked_ext", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                    "5;a=b;c ; d = \"q \\\" x\"\r\nhello\r\n0;last\r\n\r\n",
     "H POST / 1.1 chunked ka|Bhello|D|"},
    {"chunked_trailers", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other:  two \r\n\r\n",
     "H POST / 1.1 chunked ka|Babc|TX-Sum=1|TX-Other=two|D|"},
    /* trailers kept as sent, one event a field, in order; repeated names
     * too; what may not be a trailer is the caller's to drop (trailer.c) */
    {"trailer_repeat", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                       "0\r\ngrpc-status: 0\r\nA: 1\r\na: 2\r\nEmpty:\r\n\r\n",
     "H POST / 1.1 chunked ka|Tgrpc-status=0|TA=1|Ta=2|TEmpty=|D|"},
    {"trailer_forbidden_kept", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                               "1\r\nz\r\n0\r\nContent-Length: 99\r\nHost: evil\r\n\r\n",
     "H POST / 1.1 chunked ka|Bz|TContent-Length=99|THost=evil|D|"},
    {"trailer_tab_value", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                          "0\r\nX: a\tb\t\r\n\r\n",
     "H POST / 1.1 chunked ka|TX=a\tb|D|"},
    {"trailer_ws_colon", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                         "0\r\nX : a\r\n\r\n",
     "H POST / 1.1 chunked ka|E400 TRAILER|"},
    {"trailer_ctl", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                    "0\r\nX: a\x01\r\n\r\n",
     "H POST / 1.1 chunked ka|E400 TRAILER|"},
    {"trailer_bare_lf", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                        "0\r\nX: a\n\r\n",
     "H POST / 1.1 chunked ka|E400 BARE_LF|"},
    {"trailer_bare_cr", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                        "0\r\nX: a\rb\r\n\r\n",
     "H POST / 1.1 chunked ka|E400 BARE_CR|"},
    {"trailer_pipeline", "POST /1 HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                         "0\r\nT: 1\r\n\r\nGET /2 HTTP/1.1\r\n" H11 "\r\n",
     "H POST /1 1.1 chunked ka|TT=1|D|H GET /2 1.1 none ka|D|"},
    {"te_list_ok", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: ,chunked,\r\n\r\n0\r\n\r\n",
     "H POST / 1.1 chunked ka|D|"},
    {"cl_and_te", "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     "E400 CL_AND_TE|"},
    {"te_and_cl", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     "E400 CL_AND_TE|"},
    {"te_gzip_only", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n",
     "E400 TE_NOT_CHUNKED|"},
    {"te_chunked_gzip", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n",
     "E400 TE_NOT_CHUNKED|"},
    {"te_gzip_chunked", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n",
     "E501 TE_UNKNOWN|"},
    {"te_twice", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n",
     "E400 TE_TWICE|"},
    {"te_twice_lines", "POST / HTTP/1.1\r\n" H11
                       "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     "E400 TE_TWICE|"},
    {"te_empty", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \r\n\r\n", "E400 TE_NOT_CHUNKED|"},
    {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "E400 TE_HTTP10|"},
    {"chunk_plus", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_SIZE|"},
    {"chunk_minus", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n-5\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_SIZE|"},
    {"chunk_0x", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_SIZE|"},
    {"chunk_nonhex", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5g\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_SIZE|"},
    {"chunk_empty", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_SIZE|"},
    {"chunk_overflow", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                       "10000000000000000\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_SIZE|"},
    {"chunk_max", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                  "7fffffffffffffff\r\nab",
     "H POST / 1.1 chunked ka|Bab|P0|"},
    {"chunk_space_size", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5 \r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_EXT|"},
    {"chunk_ext_empty", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5;\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_EXT|"},
    {"chunk_ext_noval", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5;a=\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_EXT|"},
    {"chunk_ext_badquote", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                           "5;a=\"x\r\n",
     "H POST / 1.1 chunked ka|E400 CHUNK_EXT|"},
    {"chunk_no_crlf", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhelloX\r\n0\r\n\r\n",
     "H POST / 1.1 chunked ka|Bhello|E400 CHUNK_CRLF|"},
    {"chunk_cr_only", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\rX0\r\n\r\n",
     "H POST / 1.1 chunked ka|Bhello|E400 CHUNK_CRLF|"},
    {"chunk_bare_lf", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5\nhello",
     "H POST / 1.1 chunked ka|E400 BARE_LF|"},
    {"trailer_bad", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                    "0\r\nBad Name: x\r\n\r\n",
     "H POST / 1.1 chunked ka|E400 TRAILER|"},
    {"trailer_fold", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
                     "0\r\nA: b\r\n c\r\n\r\n",
     "H POST / 1.1 chunked ka|TA=b|E400 TRAILER|"},

    /* pipelining */
    {"pipeline", "GET /1 HTTP/1.1\r\n" H11 "\r\n"
                 "POST /2 HTTP/1.1\r\n" H11 "Content-Length: 3\r\n\r\nabc"
                 "POST /3 HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
                 "\r\nHEAD /4 HTTP/1.0\r\n\r\n",
     "H GET /1 1.1 none ka|D|H POST /2 1.1 len3 ka|Babc|D|H POST /3 1.1 chunked ka|Bxy|D|"
     "H HEAD /4 1.0 none close|D|"},
    {"pipeline_partial", "GET /1 HTTP/1.1\r\n" H11 "\r\nGET /2 HTTP/1.1\r\nHo",
     "H GET /1 1.1 none ka|D|P19|"},
    {"pipeline_then_error", "GET /1 HTTP/1.1\r\n" H11 "\r\nGET /2 HTTP/1.1\r\n\r\n",
     "H GET /1 1.1 none ka|D|E400 HOST|"},

    /* smuggling-relevant syntax */
    {"obs_fold", "GET / HTTP/1.1\r\n" H11 "X-A: b\r\n c\r\n\r\n", "E400 OBS_FOLD|"},
    {"obs_fold_tab", "GET / HTTP/1.1\r\n" H11 "X-A: b\r\n\tc\r\n\r\n", "E400 OBS_FOLD|"},
    {"first_line_ws", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", "E400 OBS_FOLD|"},
    {"ws_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "E400 FIELD_WS|"},
    {"tab_before_colon", "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", "E400 FIELD_WS|"},
    {"name_not_token", "GET / HTTP/1.1\r\n" H11 "X(a): b\r\n\r\n", "E400 FIELD_NAME|"},
    {"name_empty", "GET / HTTP/1.1\r\n" H11 ": b\r\n\r\n", "E400 FIELD_NAME|"},
    {"name_no_colon", "GET / HTTP/1.1\r\n" H11 "Xyz\r\n\r\n", "E400 FIELD_NAME|"},
    {"value_nul", "GET / HTTP/1.1\r\n" H11 "X: a\0b\r\n\r\n", "E400 FIELD_VALUE|"},
    {"value_del", "GET / HTTP/1.1\r\n" H11 "X: a\x7f\r\n\r\n", "E400 FIELD_VALUE|"},
    {"value_bare_cr", "GET / HTTP/1.1\r\n" H11 "X: a\rb\r\n\r\n", "E400 BARE_CR|"},
    {"value_ctl", "GET / HTTP/1.1\r\n" H11 "X: a\x01\r\n\r\n", "E400 FIELD_VALUE|"},
    {"header_bare_lf", "GET / HTTP/1.1\r\n" H11 "X: a\n\r\n", "E400 BARE_LF|"},
    {"end_bare_lf", "GET / HTTP/1.1\r\n" H11 "\n", "E400 BARE_LF|"},
    {"reqline_bare_lf", "GET / HTTP/1.1\n" H11 "\r\n", "E400 BARE_LF|"},
    {"reqline_bare_cr", "GET / HTTP/1.1\rHost: x\r\n\r\n", "E400 BARE_CR|"},
    {"leading_bare_lf", "\nGET / HTTP/1.1\r\n" H11 "\r\n", "E400 BARE_LF|"},
    {"leading_bare_cr", "\rGET / HTTP/1.1\r\n" H11 "\r\n", "E400 BARE_CR|"},
    {"target_nul", "GET /a\0b HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET_BYTE|"},
    {"target_cr", "GET /a\rb HTTP/1.1\r\n" H11 "\r\n", "E400 BARE_CR|"},
    {"target_tab", "GET /a\tb HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET_BYTE|"},
    {"target_del", "GET /a\x7f HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET_BYTE|"},
    {"target_relative", "GET a/b HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"target_asterisk_get", "GET * HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"connect_origin", "CONNECT /x HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"method_not_token", "G(T / HTTP/1.1\r\n" H11 "\r\n", "E400 METHOD|"},
    {"method_empty", " / HTTP/1.1\r\n" H11 "\r\n", "E400 METHOD|"},
    {"double_space", "GET  / HTTP/1.1\r\n" H11 "\r\n", "E400 REQLINE|"},
    {"space_after_version", "GET / HTTP/1.1 \r\n" H11 "\r\n", "E400 VERSION|"},
    {"method_only", "GET\r\n\r\n", "E400 REQLINE|"},
    {"no_version", "GET / \r\n\r\n", "E400 REQLINE|"},
    {"http09", "GET /index.html\r\n", "E505 VERSION_UNSUP|"},
    {"http2", "GET / HTTP/2.0\r\n" H11 "\r\n", "E505 VERSION_UNSUP|"},
    {"http3", "GET / HTTP/3\r\n" H11 "\r\n", "E505 VERSION_UNSUP|"},
    {"http12", "GET / HTTP/1.2\r\n" H11 "\r\n", "E505 VERSION_UNSUP|"},
    {"http_lower", "GET / http/1.1\r\n" H11 "\r\n", "E400 VERSION|"},
    {"http_junk", "GET / HTTP/1.1x\r\n" H11 "\r\n", "E400 VERSION|"},
    {"http_short", "GET / HTTP/1.\r\n" H11 "\r\n", "E400 VERSION|"},
    {"host_missing", "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", "E400 HOST|"},
    {"host_twice", "GET / HTTP/1.1\r\n" H11 "host: b\r\n\r\n", "E400 HOST|"},
    {"host_twice10", "GET / HTTP/1.0\r\n" H11 H11 "\r\n", "E400 HOST|"},
    {"host_empty_origin", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "E400 HOST_EMPTY|"},
    {"host_empty_absolute", "GET http://example.com/ HTTP/1.1\r\nHost:\r\n\r\n",
     "H GET http://example.com/ 1.1 none ka form=a|D|"},
};

static const char *run_whole(const struct grace_parser_limits *lim, const char *s, size_t n);

/* Host values (RFC 9112 3.2, RFC 3986 3.2.2): NULL want = accepted */
static const struct {
    const char *value;
    const char *err;
} host_cases[] = {
    {"example.com", NULL},
    {"EXAMPLE.Com", NULL},
    {"example.com:8080", NULL},
    {"example.com:", NULL}, /* port = *DIGIT */
    {"example.com:0", NULL},
    {"example.com:65535", NULL},
    {"localhost", NULL},
    {"127.0.0.1", NULL},
    {"127.0.0.1:80", NULL},
    {"999.1.1.1", NULL}, /* not an IPv4 address, but a reg-name */
    {"xn--bcher-kva.example", NULL},
    {"under_score-and~tilde.example", NULL},
    {"%65xample.com", NULL},
    {"a!$&'()*+;=b", NULL}, /* sub-delims other than ',' */
    {"example.com \t", NULL}, /* OWS is not part of the value */
    {"[::1]", NULL},
    {"[::1]:8080", NULL},
    {"[::]", NULL},
    {"[2001:db8::7]", NULL},
    {"[2001:DB8:0:0:8:800:200C:417A]", NULL},
    {"[1:2:3:4:5:6:7::]", NULL},
    {"[::2:3:4:5:6:7:8]", NULL},
    {"[::ffff:192.0.2.1]", NULL},
    {"[1:2:3:4:5:6:1.2.3.4]", NULL},
    {"[v1.fe80::a+en1]", NULL},
    {"user@example.com", "HOST_INVALID"},
    {"user:pw@example.com:80", "HOST_INVALID"},
    {"@example.com", "HOST_INVALID"},
    {"example.com/path", "HOST_INVALID"},
    {"example.com/", "HOST_INVALID"},
    {"example.com?q", "HOST_INVALID"},
    {"example.com#f", "HOST_INVALID"},
    {"a.example,b.example", "HOST_INVALID"},
    {"a.example, b.example", "HOST_INVALID"},
    {"exa mple.com", "HOST_INVALID"},
    {"example.com :80", "HOST_INVALID"},
    {"example.com\t:80", "HOST_INVALID"},
    {"example.com:80a", "HOST_INVALID"},
    {"example.com:-1", "HOST_INVALID"},
    {"example.com:+80", "HOST_INVALID"},
    {"example.com:65536", "HOST_INVALID"},
    {"example.com:000080", "HOST_INVALID"},
    {"example.com:80:90", "HOST_INVALID"},
    {"::1", "HOST_INVALID"},
    {"[::1", "HOST_INVALID"},
    {"[::1]x", "HOST_INVALID"},
    {"[::1]:8o", "HOST_INVALID"},
    {"[]", "HOST_INVALID"},
    {"[1:2:3:4:5:6:7:8:9]", "HOST_INVALID"},
    {"[1:2:3:4:5:6:7]", "HOST_INVALID"},
    {"[1::2::3]", "HOST_INVALID"},
    {"[:1]", "HOST_INVALID"},
    {"[1:]", "HOST_INVALID"},
    {"[:::]", "HOST_INVALID"},
    {"[12345::]", "HOST_INVALID"},
    {"[::1%25eth0]", "HOST_INVALID"},
    {"[::1.2.3]", "HOST_INVALID"},
    {"[::256.1.1.1]", "HOST_INVALID"},
    {"[::01.1.1.1]", "HOST_INVALID"},
    {"[1.2.3.4]", "HOST_INVALID"},
    {"[example.com]", "HOST_INVALID"},
    {"[v.x]", "HOST_INVALID"},
    {"[v1.]", "HOST_INVALID"},
    {"%zz.example", "HOST_INVALID"},
    {"example%4", "HOST_INVALID"},
    {"\"example.com\"", "HOST_INVALID"},
    {"exa\\mple.com", "HOST_INVALID"},
    {"<script>", "HOST_INVALID"},
    {"\xc3\xa9.example", "HOST_INVALID"},
    {"\xff", "HOST_INVALID"},
    {"", "HOST_EMPTY"},
    {" ", "HOST_EMPTY"},
    {":80", "HOST_EMPTY"},
    {":", "HOST_EMPTY"},
};

START_TEST(test_host_values)
{
    char in[256], want[128];
    snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host_cases[_i].value);
    if (host_cases[_i].err)
        snprintf(want, sizeof(want), "E400 %s|", host_cases[_i].err);
    else
        snprintf(want, sizeof(want), "H GET / 1.1 none ka|D|");
    const char *got = run_whole(NULL, in, strlen(in));
    ck_assert_msg(!strcmp(got, want), "Host: %s: got\n  %s\nwant\n  %s", host_cases[_i].value,
                  got, want);
    check_split_invariance(NULL, in, strlen(in));
    /* HTTP/1.0 checks a Host it gets the same way */
    snprintf(in, sizeof(in), "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host_cases[_i].value);
    if (!host_cases[_i].err)
        snprintf(want, sizeof(want), "H GET / 1.0 none close|D|");
    got = run_whole(NULL, in, strlen(in));
    ck_assert_msg(!strcmp(got, want), "1.0 Host: %s: got\n  %s\nwant\n  %s",
                  host_cases[_i].value, got, want);
}
END_TEST

/* The Host rules by request form, and the authority inside the target. */
static const struct pcase host_form_cases[] = {
    {"abs_host_empty", "GET http://example.com/ HTTP/1.1\r\nHost:\r\n\r\n",
     "H GET http://example.com/ 1.1 none ka form=a|D|"},
    {"abs_host_other", "GET http://example.com/ HTTP/1.1\r\nHost: other.example\r\n\r\n",
     "H GET http://example.com/ 1.1 none ka form=a|D|"},
    {"abs_host_invalid", "GET http://example.com/ HTTP/1.1\r\nHost: a@b\r\n\r\n",
     "E400 HOST_INVALID|"},
    {"abs_host_missing", "GET http://example.com/ HTTP/1.1\r\n\r\n", "E400 HOST|"},
    {"abs_ipv6_port", "GET http://[::1]:8080/p?q HTTP/1.1\r\n" H11 "\r\n",
     "H GET http://[::1]:8080/p?q 1.1 none ka form=a|D|"},
    {"abs_no_path", "GET https://example.com HTTP/1.1\r\n" H11 "\r\n",
     "H GET https://example.com 1.1 none ka form=a|D|"},
    {"abs_query_only", "GET http://example.com?x=1 HTTP/1.1\r\n" H11 "\r\n",
     "H GET http://example.com?x=1 1.1 none ka form=a|D|"},
    {"abs_userinfo", "GET http://user@example.com/ HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"abs_userinfo_pw", "GET http://u:p@example.com/ HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"abs_empty_authority", "GET http:///x HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"abs_port_only", "GET http://:80/x HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"abs_bad_port", "GET http://example.com:99999/ HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"abs_comma", "GET http://a,b/ HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"abs10_no_host", "GET http://example.com/ HTTP/1.0\r\n\r\n",
     "H GET http://example.com/ 1.0 none close form=a|D|"},
    {"connect_ok", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     "H CONNECT example.com:443 1.1 none ka form=A|D|"},
    {"connect_ipv6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n" H11 "\r\n",
     "H CONNECT [2001:db8::1]:443 1.1 none ka form=A|D|"},
    {"connect_no_port", "CONNECT example.com HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"connect_empty_port", "CONNECT example.com: HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"connect_userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"connect_no_host", "CONNECT :443 HTTP/1.1\r\n" H11 "\r\n", "E400 TARGET|"},
    {"connect_absolute", "CONNECT http://example.com:443 HTTP/1.1\r\n" H11 "\r\n",
     "E400 TARGET|"},
    {"connect_host_empty", "CONNECT example.com:443 HTTP/1.1\r\nHost:\r\n\r\n",
     "E400 HOST_EMPTY|"},
    {"asterisk_host_empty", "OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", "E400 HOST_EMPTY|"},
    {"origin10_host_empty", "GET / HTTP/1.0\r\nHost:\r\n\r\n", "E400 HOST_EMPTY|"},
    {"host_second_invalid", "GET / HTTP/1.1\r\n" H11 "Host: a b\r\n\r\n", "E400 HOST_INVALID|"},
    {"host_two_valid", "GET / HTTP/1.1\r\n" H11 H11 "\r\n", "E400 HOST|"},
    {"host_case", "GET / HTTP/1.1\r\nhOsT: a@b\r\n\r\n", "E400 HOST_INVALID|"},
};

START_TEST(test_host_forms)
{
    const struct pcase *c = &host_form_cases[_i];
    const char *got = run_whole(NULL, c->in, strlen(c->in));
    ck_assert_msg(!strcmp(got, c->want), "%s: got\n  %s\nwant\n  %s", c->name, got, c->want);
    check_split_invariance(NULL, c->in, strlen(c->in));
}
END_TEST

/* Request-target bytes: percent-encoded anything is fine; raw 8-bit bytes,
 * controls, SP, DEL and '"', '#', '<', '>' are 400. */
static const struct {
    const char *target;
    const char *err;
} target_cases[] = {
    {"/", NULL},
    {"/a%20b", NULL},
    {"/%C3%A9t%C3%A9", NULL},
    {"/%c0%af", NULL}, /* encoded overlong: the parser passes it, the path helper decides */
    {"/%00", NULL},
    /* encoded controls: the application's business (the router may refuse
     * them, the parser may not; a public desync corpus holds these as legal) */
    {"/a%09b", NULL},
    {"/a%0Db", NULL},
    {"/a%0Ab", NULL},
    {"/a%0d%0aSet-Cookie:%20x", NULL},
    {"/?q=%09%0D%0A", NULL},
    {"/%zz", NULL},
    {"/a?b=c&d=%FF", NULL},
    {"/!$&'()*+,;=:@-._~", NULL},
    {"/a[b]c|d^e{f}g`h\\i", NULL}, /* outside RFC 3986, but browsers send them raw */
    {"/?q={\"a\"}", "TARGET_BYTE"},
    {"/<script>", "TARGET_BYTE"},
    {"/a>b", "TARGET_BYTE"},
    {"/a\"b", "TARGET_BYTE"},
    {"/?", NULL},
    {"/\xc3\xa9", "TARGET_BYTE"},         /* raw UTF-8 */
    {"/\xc0\xaf", "TARGET_BYTE"},         /* overlong "/" */
    {"/\xe0\x80\xaf", "TARGET_BYTE"},     /* overlong "/", 3 bytes */
    {"/\xf0\x80\x80\xaf", "TARGET_BYTE"}, /* overlong "/", 4 bytes */
    {"/\xc0\xae\xc0\xae/etc", "TARGET_BYTE"}, /* overlong ".." */
    {"/\xef\xbb\xbf", "TARGET_BYTE"},     /* BOM */
    {"/\xed\xa0\x80", "TARGET_BYTE"},     /* surrogate */
    {"/\x80", "TARGET_BYTE"},
    {"/\xff", "TARGET_BYTE"},
    {"\xff/", "TARGET_BYTE"},
    {"/a?q=\xc3\xa9", "TARGET_BYTE"},     /* also in the query */
    {"/a#frag", "TARGET_BYTE"},
    {"/#", "TARGET_BYTE"},
    {"#", "TARGET_BYTE"},
    {"/a\x01", "TARGET_BYTE"},
    {"/a\x1b[0m", "TARGET_BYTE"},
    {"/a\x7f", "TARGET_BYTE"},
    {"/a\x0b", "TARGET_BYTE"},
    {"/a\x0c", "TARGET_BYTE"},
    {"http://example.com/\xc3\xa9", "TARGET_BYTE"},
    {"http://ex\xc3\xa1mple.com/", "TARGET_BYTE"},
};

START_TEST(test_target_bytes)
{
    char in[256], want[256];
    snprintf(in, sizeof(in), "GET %s HTTP/1.1\r\n" H11 "\r\n", target_cases[_i].target);
    if (target_cases[_i].err)
        snprintf(want, sizeof(want), "E400 %s|", target_cases[_i].err);
    else
        snprintf(want, sizeof(want), "H GET %s 1.1 none ka|D|", target_cases[_i].target);
    const char *got = run_whole(NULL, in, strlen(in));
    ck_assert_msg(!strcmp(got, want), "%s: got\n  %s\nwant\n  %s", target_cases[_i].target, got,
                  want);
    check_split_invariance(NULL, in, strlen(in));
}
END_TEST

/* Every byte value in a target, at every offset of the 16- and 8-byte
 * scanning steps: visible ASCII but '"', '#', '<', '>' passes, the rest is 400. */
START_TEST(test_target_byte_sweep)
{
    char in[256], target[80];
    for (int b = 0; b < 256; b++) {
        const char *want;
        if (b == '\r')
            want = "E400 BARE_CR|";
        else if (b == '\n')
            want = "E400 BARE_LF|";
        else if (b == ' ')
            want = "E400 VERSION|"; /* "GET /aa b... HTTP/1.1": a third space */
        else if (b > 0x20 && b < 0x7f && !strchr("\"#<>", b))
            want = NULL;
        else
            want = "E400 TARGET_BYTE|";
        for (size_t pos = 1; pos < 40; pos++) {
            static const char tail[] = " HTTP/1.1\r\n" H11 "\r\n";
            memset(target, 'a', 48);
            target[0] = '/';
            target[pos] = (char)b;
            memcpy(in, "GET ", 4);
            memcpy(in + 4, target, 48);
            memcpy(in + 52, tail, sizeof(tail) - 1);
            size_t n = 52 + sizeof(tail) - 1;
            const char *got = run_whole(NULL, in, n);
            if (!want)
                ck_assert_msg(!strncmp(got, "H GET /", 7) && strstr(got, "|D|"),
                              "byte 0x%02x at %zu: %s", b, pos, got);
            else
                ck_assert_msg(!strcmp(got, want), "byte 0x%02x at %zu: got %s want %s", b, pos,
                              got, want);
            if (pos == 1 || pos == 17)
                check_split_invariance(NULL, in, n);
        }
    }
}
END_TEST

/* limits at N and N+1, with small limits so the inputs stay readable */
/* The same rule at every position of targets of every length up to 64, so a
 * bad byte falls in the SSE2 blocks, the 8-byte SWAR step and the byte loop
 * (parsed directly: the byte-by-byte driver would be too slow here). */
START_TEST(test_target_byte_lengths)
{
    static const unsigned char bad[] = {0x00, 0x01, 0x09, 0x1f, 0x7f, 0x80, 0xaf, 0xc3, 0xff,
                                        '"', '#', '<', '>'};
    static const unsigned char good[] = {'!', '$', '%', '/', '=', '?', '[', '\\', '^', '`', '{',
                                         '|', '}', '~', 0x7e, 0x21};
    struct grace_parser p;
    struct grace_hfield f[GRACE_PARSER_DEFAULT_FIELDS];
    char in[256];
    size_t used, bl;
    const char *b;
    for (size_t len = 2; len <= 64; len++) {
        for (size_t pos = 1; pos < len; pos++) {
            for (size_t k = 0; k < sizeof(bad) + sizeof(good); k++) {
                int is_bad = k < sizeof(bad);
                unsigned char c = is_bad ? bad[k] : good[k - sizeof(bad)];
                memcpy(in, "GET /", 5);
                memset(in + 5, 'a', len - 1);
                in[4 + pos] = (char)c;
                int n = 4 + (int)len;
                n += snprintf(in + n, sizeof(in) - (size_t)n, " HTTP/1.1\r\n" H11 "\r\n");
                grace_parser_init(&p, NULL, f);
                const char *g = guarded(in, (size_t)n);
                enum grace_pev ev = grace_parser_execute(&p, g, (size_t)n, &used, &b, &bl);
                if (is_bad)
                    ck_assert_msg(ev == GRACE_PEV_ERROR && p.err == GRACE_PERR_TARGET_BYTE &&
                                      p.err_offset == 4 + pos,
                                  "0x%02x at %zu of %zu: ev %d err %d at %zu", c, pos, len, ev,
                                  p.err, p.err_offset);
                else
                    ck_assert_msg(ev == GRACE_PEV_HEADERS, "0x%02x at %zu of %zu: ev %d err %d",
                                  c, pos, len, ev, p.err);
            }
        }
    }
}
END_TEST

static char *make_reqline(size_t n) /* request line of exactly n bytes */
{
    char *s = malloc(n + 64);
    ck_assert_ptr_nonnull(s);
    size_t path = n - strlen("GET / HTTP/1.1") + 1; /* "/" + x...x */
    strcpy(s, "GET /");
    memset(s + 5, 'x', path - 1);
    strcpy(s + 5 + path - 1, " HTTP/1.1\r\n" H11 "\r\n");
    ck_assert_uint_eq(strchr(s, '\r') - s, n);
    return s;
}

static const char *run_whole(const struct grace_parser_limits *lim, const char *s, size_t n)
{
    run_split(&drv_a, lim, s, n, NULL, 0, 0);
    return drv_a.t.s;
}

START_TEST(test_corpus)
{
    const struct pcase *c = &cases[_i];
    size_t n = strlen(c->in);
    /* inputs with an embedded NUL: length up to the end of the literal */
    if (strstr(c->name, "nul"))
        n += strlen(c->in + n + 1) + 1;
    const char *got = run_whole(NULL, c->in, n);
    ck_assert_msg(!strcmp(got, c->want), "%s: got\n  %s\nwant\n  %s", c->name, got, c->want);
    check_split_invariance(NULL, c->in, n);
}
END_TEST

START_TEST(test_fields_content)
{
    const char *in = "GET /p?q=1 HTTP/1.1\r\nHost:  example.com \r\nX-A:a\r\nx-b: \t1 2\t\r\n"
                     "X-Empty:\r\n\r\n";
    run_split(&drv_a, NULL, in, strlen(in), NULL, 0, 1);
    ck_assert_str_eq(drv_a.t.s, "H GET /p?q=1 1.1 none ka m=1 hb=73 host=0 "
                                "[Host=example.com;X-A=a;x-b=1 2;X-Empty=;]|D|");
}
END_TEST

START_TEST(test_method_ids)
{
    static const struct {
        const char *m;
        enum grace_pmethod id;
    } t[] = {{"GET", GRACE_PM_GET},         {"HEAD", GRACE_PM_HEAD},
             {"POST", GRACE_PM_POST},       {"PUT", GRACE_PM_PUT},
             {"DELETE", GRACE_PM_DELETE},   {"OPTIONS", GRACE_PM_OPTIONS},
             {"PATCH", GRACE_PM_PATCH},     {"TRACE", GRACE_PM_TRACE},
             {"get", GRACE_PM_OTHER},       {"GETX", GRACE_PM_OTHER}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char in[128];
        snprintf(in, sizeof(in), "%s / HTTP/1.1\r\n" H11 "\r\n", t[i].m);
        run_split(&drv_a, NULL, in, strlen(in), NULL, 0, 0);
        ck_assert_int_eq(drv_a.p.req.method_id, t[i].id);
    }
}
END_TEST

START_TEST(test_limit_request_line)
{
    struct grace_parser_limits lim = {.max_request_line = 64};
    char *ok = make_reqline(64), *bad = make_reqline(65);
    ck_assert_str_eq(strstr(run_whole(&lim, ok, strlen(ok)), "|D|") ? "ok" : "no", "ok");
    ck_assert_str_eq(run_whole(&lim, bad, strlen(bad)), "E414 URI_TOO_LONG|");
    check_split_invariance(&lim, ok, strlen(ok));
    check_split_invariance(&lim, bad, strlen(bad));
    /* an endless line is refused as soon as it passes the limit */
    ck_assert_str_eq(run_whole(&lim, bad, 66), "E414 URI_TOO_LONG|");
    ck_assert_str_eq(run_whole(&lim, bad, 65), "P65|");
    free(ok);
    free(bad);

    /* and the default: 8192 */
    ok = make_reqline(GRACE_PARSER_DEFAULT_REQUEST_LINE);
    bad = make_reqline(GRACE_PARSER_DEFAULT_REQUEST_LINE + 1);
    ck_assert_ptr_nonnull(strstr(run_whole(NULL, ok, strlen(ok)), "|D|"));
    ck_assert_str_eq(run_whole(NULL, bad, strlen(bad)), "E414 URI_TOO_LONG|");
    free(ok);
    free(bad);
}
END_TEST

/* header section of exactly n bytes: Host line plus one filler field */
static char *make_headers(size_t n, size_t *len)
{
    const char *head = "GET / HTTP/1.1\r\n" H11;
    size_t fill = n - strlen(H11) - strlen("X: \r\n");
    char *s = malloc(n + 64);
    ck_assert_ptr_nonnull(s);
    strcpy(s, head);
    strcat(s, "X: ");
    memset(s + strlen(s), 'v', fill);
    strcpy(s + strlen(head) + 3 + fill, "\r\n\r\n");
    *len = strlen(s);
    ck_assert_uint_eq(*len, strlen("GET / HTTP/1.1\r\n") + n + 2);
    return s;
}

START_TEST(test_limit_header_bytes)
{
    struct grace_parser_limits lim = {.max_header_bytes = 200};
    size_t n;
    char *ok = make_headers(200, &n);
    ck_assert_str_eq(run_whole(&lim, ok, n), "H GET / 1.1 none ka|D|");
    check_split_invariance(&lim, ok, n);
    free(ok);
    char *bad = make_headers(201, &n);
    ck_assert_str_eq(run_whole(&lim, bad, n), "E431 HEADERS_TOO_BIG|");
    check_split_invariance(&lim, bad, n);
    /* cut while incomplete: once the limit is passed without an LF, refuse */
    ck_assert_str_eq(run_whole(&lim, bad, n - 3), "E431 HEADERS_TOO_BIG|");
    ck_assert_str_eq(run_whole(&lim, bad, n - 4), "P215|");
    free(bad);

    /* default: 32 KiB */
    ok = make_headers(GRACE_PARSER_DEFAULT_HEADER_BYTES, &n);
    ck_assert_str_eq(run_whole(NULL, ok, n), "H GET / 1.1 none ka|D|");
    free(ok);
    bad = make_headers(GRACE_PARSER_DEFAULT_HEADER_BYTES + 1, &n);
    ck_assert_str_eq(run_whole(NULL, bad, n), "E431 HEADERS_TOO_BIG|");
    free(bad);
}
END_TEST

static char *make_fields(size_t count, size_t *len)
{
    char *s = malloc(64 + count * 16);
    ck_assert_ptr_nonnull(s);
    strcpy(s, "GET / HTTP/1.1\r\n" H11);
    for (size_t i = 1; i < count; i++)
        sprintf(s + strlen(s), "X-%zu: v\r\n", i);
    strcat(s, "\r\n");
    *len = strlen(s);
    return s;
}

START_TEST(test_limit_fields)
{
    struct grace_parser_limits lim = {.max_fields = 10};
    size_t n;
    char *ok = make_fields(10, &n);
    ck_assert_str_eq(run_whole(&lim, ok, n), "H GET / 1.1 none ka|D|");
    check_split_invariance(&lim, ok, n);
    free(ok);
    char *bad = make_fields(11, &n);
    ck_assert_str_eq(run_whole(&lim, bad, n), "E431 TOO_MANY_FIELDS|");
    check_split_invariance(&lim, bad, n);
    free(bad);
    ok = make_fields(GRACE_PARSER_DEFAULT_FIELDS, &n);
    ck_assert_str_eq(run_whole(NULL, ok, n), "H GET / 1.1 none ka|D|");
    free(ok);
    bad = make_fields(GRACE_PARSER_DEFAULT_FIELDS + 1, &n);
    ck_assert_str_eq(run_whole(NULL, bad, n), "E431 TOO_MANY_FIELDS|");
    free(bad);
}
END_TEST

/* chunked message whose trailer section is exactly n bytes */
static char *make_trailers(size_t n, size_t *len)
{
    const char *head = "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n";
    char *s = malloc(strlen(head) + n + 16);
    ck_assert_ptr_nonnull(s);
    strcpy(s, head);
    strcat(s, "T: ");
    size_t fill = n - strlen("T: \r\n");
    memset(s + strlen(s), 't', fill);
    strcpy(s + strlen(head) + 3 + fill, "\r\n\r\n");
    *len = strlen(s);
    return s;
}

/* The trace of make_trailers(n): its one field, whole. */
static const char *trailers_kept(size_t n)
{
    static char want[GRACE_PARSER_DEFAULT_TRAILER_BYTES + 64];
    size_t fill = n - strlen("T: \r\n"), k;
    k = (size_t)snprintf(want, sizeof(want), "H POST / 1.1 chunked ka|Bz|TT=");
    memset(want + k, 't', fill);
    strcpy(want + k + fill, "|D|");
    return want;
}

START_TEST(test_limit_trailers)
{
    struct grace_parser_limits lim = {.max_trailer_bytes = 100};
    size_t n;
    char *ok = make_trailers(100, &n);
    ck_assert_str_eq(run_whole(&lim, ok, n), trailers_kept(100));
    check_split_invariance(&lim, ok, n);
    free(ok);
    char *bad = make_trailers(101, &n);
    ck_assert_str_eq(run_whole(&lim, bad, n), "H POST / 1.1 chunked ka|Bz|E431 TRAILER_TOO_BIG|");
    check_split_invariance(&lim, bad, n);
    free(bad);
    ok = make_trailers(GRACE_PARSER_DEFAULT_TRAILER_BYTES, &n);
    ck_assert_str_eq(run_whole(NULL, ok, n), trailers_kept(GRACE_PARSER_DEFAULT_TRAILER_BYTES));
    free(ok);
    bad = make_trailers(GRACE_PARSER_DEFAULT_TRAILER_BYTES + 1, &n);
    ck_assert_str_eq(run_whole(NULL, bad, n), "H POST / 1.1 chunked ka|Bz|E431 TRAILER_TOO_BIG|");
    free(bad);
}
END_TEST

START_TEST(test_limit_chunk_line)
{
    /* size + extensions up to 4096 bytes, then 400 */
    const char *head = "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n";
    size_t hl = strlen(head);
    char *s = malloc(hl + GRACE_PARSER_CHUNK_LINE_MAX + 64);
    ck_assert_ptr_nonnull(s);
    for (int extra = 0; extra <= 1; extra++) {
        size_t line = GRACE_PARSER_CHUNK_LINE_MAX + (size_t)extra;
        strcpy(s, head);
        strcat(s, "1;e=");
        memset(s + hl + 4, 'v', line - 4);
        strcpy(s + hl + line, "\r\nz\r\n0\r\n\r\n");
        const char *got = run_whole(NULL, s, strlen(s));
        ck_assert_str_eq(got, extra ? "H POST / 1.1 chunked ka|E400 CHUNK_LINE|"
                                    : "H POST / 1.1 chunked ka|Bz|D|");
        check_split_invariance(NULL, s, strlen(s));
    }
    free(s);
}
END_TEST

START_TEST(test_error_strings)
{
    for (int e = 1; e < GRACE_PERR__COUNT; e++) {
        int st = grace_perr_status((enum grace_perr)e);
        ck_assert_msg(st == 400 || st == 414 || st == 417 || st == 431 || st == 501 ||
                          st == 505, "code %d status %d", e, st);
        ck_assert_uint_gt(strlen(grace_perr_str((enum grace_perr)e)), 5);
    }
    ck_assert_int_eq(grace_perr_status(GRACE_PERR__COUNT), 500);
}
END_TEST

START_TEST(test_error_sticky_and_reset)
{
    const char *bad = "GET / HTTP/1.1\n";
    const char *good = "GET / HTTP/1.1\r\n" H11 "\r\n";
    struct grace_parser p;
    struct grace_hfield f[GRACE_PARSER_DEFAULT_FIELDS];
    size_t used;
    const char *b;
    size_t bl;
    grace_parser_init(&p, NULL, f);
    ck_assert_int_eq(grace_parser_execute(&p, bad, strlen(bad), &used, &b, &bl), GRACE_PEV_ERROR);
    ck_assert_int_eq(grace_parser_execute(&p, good, strlen(good), &used, &b, &bl),
                     GRACE_PEV_ERROR);
    grace_parser_reset(&p);
    ck_assert_int_eq(grace_parser_execute(&p, good, strlen(good), &used, &b, &bl),
                     GRACE_PEV_HEADERS);
    ck_assert_uint_eq(used, strlen(good));
    ck_assert(grace_parser_body_done(&p));
    ck_assert_int_eq(grace_parser_execute(&p, "", 0, &used, &b, &bl), GRACE_PEV_DONE);
    ck_assert(grace_parser_idle(&p));
}
END_TEST

START_TEST(test_large_body_zero_copy)
{
    /* a 1 MiB Content-Length body in 64 KiB reads: every piece points into
     * the read buffer, nothing is copied */
    const char *head = "PUT /big HTTP/1.1\r\n" H11 "Content-Length: 1048576\r\n\r\n";
    struct grace_parser p;
    struct grace_hfield f[GRACE_PARSER_DEFAULT_FIELDS];
    static char chunk[65536];
    size_t used, bl, total = 0;
    const char *b;
    grace_parser_init(&p, NULL, f);
    ck_assert_int_eq(grace_parser_execute(&p, head, strlen(head), &used, &b, &bl),
                     GRACE_PEV_HEADERS);
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(grace_parser_execute(&p, chunk, sizeof(chunk), &used, &b, &bl),
                         GRACE_PEV_BODY);
        ck_assert_ptr_eq(b, chunk);
        ck_assert_uint_eq(bl, sizeof(chunk));
        total += bl;
    }
    ck_assert_uint_eq(total, 1048576);
    ck_assert_int_eq(grace_parser_execute(&p, chunk, 0, &used, &b, &bl), GRACE_PEV_DONE);
}
END_TEST

static Suite *parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *tc = tcase_create("corpus");
    tcase_add_unchecked_fixture(tc, guard_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_corpus, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_fields_content);
    tcase_add_test(tc, test_method_ids);
    suite_add_tcase(s, tc);

    tc = tcase_create("host");
    tcase_add_unchecked_fixture(tc, guard_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_host_values, 0, (int)(sizeof(host_cases) / sizeof(host_cases[0])));
    tcase_add_loop_test(tc, test_host_forms, 0,
                        (int)(sizeof(host_form_cases) / sizeof(host_form_cases[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("target_bytes");
    tcase_add_unchecked_fixture(tc, guard_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_target_bytes, 0,
                        (int)(sizeof(target_cases) / sizeof(target_cases[0])));
    tcase_add_test(tc, test_target_byte_sweep);
    tcase_add_test(tc, test_target_byte_lengths);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_unchecked_fixture(tc, guard_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_limit_request_line);
    tcase_add_test(tc, test_limit_header_bytes);
    tcase_add_test(tc, test_limit_fields);
    tcase_add_test(tc, test_limit_trailers);
    tcase_add_test(tc, test_limit_chunk_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, test_error_strings);
    tcase_add_test(tc, test_error_sticky_and_reset);
    tcase_add_test(tc, test_large_body_zero_copy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(parser_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
