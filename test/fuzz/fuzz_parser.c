/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_parser.c - libFuzzer target for the request parser.
 *
 * Input: 2 bytes of split seed + limits selector, then the HTTP byte stream.
 * The stream is parsed whole and again split at seeded random points; the
 * event traces must be identical (split-feed invariance), and every result
 * must stay inside the bytes it was given.
 */
#include "parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXIN (1 << 16)

struct run {
    char trace[1 << 17];
    size_t tn;
    char pending[MAXIN];
    size_t np;
    struct grace_parser p;
    struct grace_hfield f[128];
    int failed, in_body;
};

static void put(struct run *r, const void *s, size_t n)
{
    if (n > sizeof(r->trace) - r->tn)
        n = sizeof(r->trace) - r->tn;
    memcpy(r->trace + r->tn, s, n);
    r->tn += n;
}

static void feed(struct run *r, const char *s, size_t n)
{
    if (r->failed)
        return;
    memcpy(r->pending + r->np, s, n);
    r->np += n;
    for (;;) {
        size_t used = 0, bl = 0;
        const char *b = NULL;
        /* a private copy of exactly np bytes so ASan catches over-reads */
        char *buf = malloc(r->np ? r->np : 1);
        if (!buf)
            abort();
        memcpy(buf, r->pending, r->np);
        enum grace_pev ev = grace_parser_execute(&r->p, buf, r->np, &used, &b, &bl);
        if (used > r->np)
            abort();
        if (ev != GRACE_PEV_BODY && ev != GRACE_PEV_AGAIN && r->in_body) {
            put(r, "|", 1);
            r->in_body = 0;
        }
        if (ev == GRACE_PEV_HEADERS) {
            const struct grace_preq *q = &r->p.req;
            if (q->header_bytes > used)
                abort();
            const char *blk = buf + used - q->header_bytes;
            if (q->method.off + q->method.len > q->header_bytes ||
                q->target.off + q->target.len > q->header_bytes || q->nfields > 128)
                abort();
            char h[128];
            int k = snprintf(h, sizeof(h), "H%d.%d.%d.%llu.%d.%d.%zu|", q->version_minor,
                             q->framing, q->form, (unsigned long long)q->content_length,
                             q->keep_alive, q->expect_continue, q->header_bytes);
            put(r, h, (size_t)k);
            put(r, blk + q->target.off, q->target.len);
            for (size_t i = 0; i < q->nfields; i++) {
                const struct grace_hfield *f = &r->f[i];
                if (f->name.off + f->name.len > q->header_bytes ||
                    f->value.off + f->value.len > q->header_bytes)
                    abort();
                put(r, blk + f->name.off, f->name.len);
                put(r, ":", 1);
                put(r, blk + f->value.off, f->value.len);
            }
        } else if (ev == GRACE_PEV_BODY) {
            if (b != buf || bl != used || bl == 0)
                abort();
            if (!r->in_body)
                put(r, "B", 1);
            put(r, b, bl);
            r->in_body = 1;
        } else if (ev == GRACE_PEV_TRAILER) {
            const struct grace_hfield *f = &r->p.trailer;
            if (b != buf || bl + 2 != used || f->name.off + f->name.len > bl ||
                f->value.off + f->value.len > bl)
                abort();
            put(r, "T", 1);
            put(r, b + f->name.off, f->name.len);
            put(r, ":", 1);
            put(r, b + f->value.off, f->value.len);
            put(r, "|", 1);
        } else if (ev == GRACE_PEV_DONE) {
            put(r, "D|", 2);
        } else if (ev == GRACE_PEV_ERROR) {
            char e[16];
            int k = snprintf(e, sizeof(e), "E%d|", (int)r->p.err);
            put(r, e, (size_t)k);
            r->failed = 1;
        }
        free(buf);
        memmove(r->pending, r->pending + used, r->np - used);
        r->np -= used;
        if (r->failed || (ev == GRACE_PEV_AGAIN && used == 0))
            return;
    }
}

static struct run whole, split;

static void start(struct run *r, const struct grace_parser_limits *lim)
{
    r->tn = r->np = 0;
    r->failed = r->in_body = 0;
    grace_parser_init(&r->p, lim, r->f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > MAXIN)
        return 0;
    unsigned seed = data[0];
    struct grace_parser_limits lim = {0};
    if (data[1] & 1) { /* small limits, so they are reached */
        lim.max_request_line = 32 + (data[1] >> 2);
        lim.max_header_bytes = 64 + data[1];
        lim.max_fields = 4 + (data[1] >> 4);
        lim.max_trailer_bytes = 16 + (data[1] >> 3);
    }
    const char *s = (const char *)data + 2;
    size_t n = size - 2;

    start(&whole, &lim);
    feed(&whole, s, n);

    start(&split, &lim);
    size_t at = 0;
    while (at < n) {
        seed = seed * 1103515245u + 12345u;
        size_t step = 1 + (seed >> 16) % (seed & 0x100 ? 3 : 97);
        if (step > n - at)
            step = n - at;
        feed(&split, s + at, step);
        at += step;
    }
    if (whole.tn != split.tn || memcmp(whole.trace, split.trace, whole.tn)) {
        fprintf(stderr, "split-feed results differ:\n%.*s\n---\n%.*s\n", (int)whole.tn,
                whole.trace, (int)split.tn, split.trace);
        abort();
    }
    return 0;
}
