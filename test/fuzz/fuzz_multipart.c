/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_multipart.c - libFuzzer target for graced's streaming multipart
 * parser (src/graced/multipart.c). The first byte picks a boundary length
 * (taken from the next bytes), the second a piece size; the rest is the
 * body. The body is parsed whole and again in pieces: both runs must see
 * the same parts, names and bytes and end the same way (a difference is a
 * bug in carrying state across reads), and neither may read out of bounds.
 */
#include "multipart.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct log {
    unsigned char *buf;
    size_t len, cap;
};

static void add(struct log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        l->cap = (l->len + n) * 2 + 64;
        l->buf = realloc(l->buf, l->cap);
        if (!l->buf)
            abort();
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

static int on_begin(const char *name, const char *filename, void *arg)
{
    add(arg, "\0B", 2);
    if (name)
        add(arg, name, strlen(name) + 1);
    add(arg, "\0F", 2);
    if (filename)
        add(arg, filename, strlen(filename) + 1);
    return 0;
}

static int on_data(const char *data, size_t len, void *arg)
{
    if (len == 0)
        abort(); /* the contract: pieces are never empty */
    add(arg, data, len);
    return 0;
}

static int on_end(void *arg)
{
    add(arg, "\0E", 2);
    return 0;
}

static const struct graced_mp_cb cbs = {on_begin, on_data, on_end};

static int run(const char *boundary, const uint8_t *body, size_t len, size_t piece,
               struct log *l)
{
    struct graced_mp *mp = graced_mp_new(boundary, 256, &cbs, l);
    int rc = 0;
    if (!mp)
        return -1;
    for (size_t at = 0; at < len && rc == 0; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        uint8_t *copy = malloc(n ? n : 1); /* its own allocation: over-reads show */
        memcpy(copy, body + at, n);
        rc = graced_mp_feed(mp, (const char *)copy, n);
        free(copy);
    }
    if (rc == 0)
        rc = graced_mp_end(mp);
    graced_mp_free(mp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char boundary[71];
    size_t bl, piece;
    struct log whole = {0}, cut = {0};
    int a, b;
    if (size < 2)
        return 0;
    bl = 1 + data[0] % 70;
    piece = 1 + data[1] % 17;
    data += 2;
    size -= 2;
    if (size < bl)
        return 0;
    for (size_t i = 0; i < bl; i++) /* bchars only: no CR or LF */
        boundary[i] = data[i] == '\r' || data[i] == '\n' || data[i] == 0 ? 'x' : (char)data[i];
    boundary[bl] = '\0';
    data += bl;
    size -= bl;
    a = run(boundary, data, size, size ? size : 1, &whole);
    b = run(boundary, data, size, piece, &cut);
    if (a != b || whole.len != cut.len || (whole.len && memcmp(whole.buf, cut.buf, whole.len))) {
        fprintf(stderr, "whole and in pieces of %zu differ: rc %d vs %d, %zu vs %zu bytes\n",
                piece, a, b, whole.len, cut.len);
        abort();
    }
    free(whole.buf);
    free(cut.buf);
    return 0;
}
