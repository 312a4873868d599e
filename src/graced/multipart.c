/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * multipart.c - the streaming multipart/form-data parser (multipart.h).
 *
 * The body is read as if "\r\n" came before it, so the first delimiter
 * ("--boundary" at the very start) and every later one ("\r\n--boundary")
 * are the same pattern. While scanning data, match counts how many bytes of
 * that pattern the input has matched so far; they are held back and, on a
 * mismatch, handed on from the pattern itself. Since a boundary may not
 * contain CR, a mismatch can never hide the start of another match (the
 * pattern's only CR is its first byte), so no search table is needed.
 */
#define _GNU_SOURCE
#include "multipart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum state {
    S_PREAMBLE,  /* before the first delimiter: discarded */
    S_DATA,      /* a part's content */
    S_DELIM,     /* right after a delimiter: "--", padding or CRLF */
    S_PAD,       /* transport padding (spaces, tabs) before the CRLF */
    S_DASH,      /* one '-' of the closing "--" seen */
    S_LF,        /* CR seen, LF expected: the part's headers follow */
    S_HEADER,    /* a part's header section */
    S_DONE,      /* after the closing delimiter: the epilogue, discarded */
};

struct graced_mp {
    const struct graced_mp_cb *cb;
    void *arg;
    enum state st;
    int err;
    int in_part;
    size_t match;        /* bytes of delim matched and held back */
    size_t dlen;
    char delim[4 + 70 + 1];
    size_t hlen, hmax;   /* the header section being collected */
    char *hdr;
};

int graced_mp_boundary(const char *ct, char *out, size_t outlen)
{
    const char *p;
    size_t n;
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) || (ct[19] && ct[19] != ';' &&
                                                             ct[19] != ' '))
        return -EINVAL;
    for (p = ct + 19; (p = strcasestr(p, "boundary=")); p += 9)
        if (p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t')
            break;
    if (!p)
        return -EINVAL;
    p += 9;
    if (*p == '"') {
        const char *q = strchr(++p, '"');
        if (!q)
            return -EINVAL;
        n = (size_t)(q - p);
    } else {
        n = strcspn(p, "; \t");
    }
    /* RFC 2046: 1 to 70 characters, no CR or LF (we rely on that) */
    if (n == 0 || n > 70 || n >= outlen)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return -EINVAL;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

struct graced_mp *graced_mp_new(const char *boundary, size_t max_header,
                                const struct graced_mp_cb *cb, void *arg)
{
    struct graced_mp *mp;
    size_t bl = strlen(boundary);
    if (bl == 0 || bl > 70 || strpbrk(boundary, "\r\n")) {
        errno = EINVAL;
        return NULL;
    }
    if (!(mp = calloc(1, sizeof(*mp))) || !(mp->hdr = malloc(max_header + 1))) {
        free(mp);
        errno = ENOMEM;
        return NULL;
    }
    mp->cb = cb;
    mp->arg = arg;
    mp->hmax = max_header;
    mp->dlen = (size_t)snprintf(mp->delim, sizeof(mp->delim), "\r\n--%s", boundary);
    mp->st = S_PREAMBLE;
    mp->match = 2; /* the imagined "\r\n" before the body */
    return mp;
}

void graced_mp_free(struct graced_mp *mp)
{
    if (mp) {
        free(mp->hdr);
        free(mp);
    }
}

/* Copy a parameter value (quoted or a token) of at most outlen-1 bytes;
 * browsers send '"' as %22 (the HTML standard), which is decoded here. */
static void param_value(const char *v, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    if (n && v[0] == '"') {
        const char *q = memchr(v + 1, '"', n - 1);
        n = q ? (size_t)(q - v - 1) : n - 1;
        v++;
    }
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        if (v[i] == '%' && i + 2 < n && v[i + 1] == '2' && v[i + 2] == '2') {
            out[o++] = '"';
            i += 2;
        } else {
            out[o++] = v[i];
        }
    }
    out[o] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* filename*=UTF-8''percent%20encoded (RFC 8187); 0 if understood */
static int ext_value(const char *v, size_t n, char *out, size_t outlen)
{
    const char *q = n > 7 && !strncasecmp(v, "UTF-8'", 6) ? memchr(v + 6, '\'', n - 6) : NULL;
    size_t o = 0;
    if (!q)
        return -1;
    for (const char *p = q + 1; p < v + n && o + 1 < outlen; p++) {
        int h, l;
        if (*p == '%' && p + 2 < v + n && (h = hexval(p[1])) >= 0 && (l = hexval(p[2])) >= 0) {
            out[o++] = (char)(h * 16 + l);
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return 0;
}

/* The header section is complete (hdr, hlen, ending in CRLF CRLF or just
 * CRLF): find Content-Disposition and begin the part. */
static int begin_part(struct graced_mp *mp)
{
    char name[256] = "", fname[1024] = "", ext[1024];
    int have_name = 0, have_fname = 0, have_ext = 0;
    char *line = mp->hdr, *end = mp->hdr + mp->hlen;
    mp->hdr[mp->hlen] = '\0';
    while (line < end) {
        char *eol = strstr(line, "\r\n");
        if (!eol || eol == line)
            break;
        *eol = '\0';
        if (!strncasecmp(line, "Content-Disposition:", 20)) {
            char *p = line + 20;
            while (*p) {
                char *semi, *eq;
                size_t klen;
                p += strspn(p, " \t;");
                if (!*p)
                    break;
                eq = strchr(p, '=');
                semi = strchr(p, ';');
                if (!eq || (semi && semi < eq)) { /* a bare token: "form-data" */
                    p = semi ? semi + 1 : p + strlen(p);
                    continue;
                }
                klen = (size_t)(eq - p);
                while (klen && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
                    klen--;
                char *v = eq + 1 + strspn(eq + 1, " \t");
                size_t vlen;
                if (*v == '"') {
                    char *q = strchr(v + 1, '"');
                    vlen = q ? (size_t)(q - v + 1) : strlen(v);
                } else {
                    vlen = strcspn(v, ";");
                    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                        vlen--;
                }
                if (klen == 4 && !strncasecmp(p, "name", 4)) {
                    param_value(v, vlen, name, sizeof(name));
                    have_name = 1;
                } else if (klen == 8 && !strncasecmp(p, "filename", 8)) {
                    param_value(v, vlen, fname, sizeof(fname));
                    have_fname = 1;
                } else if (klen == 9 && !strncasecmp(p, "filename*", 9)) {
                    have_ext = ext_value(v, vlen, ext, sizeof(ext)) == 0;
                }
                p = v + vlen;
            }
        }
        line = eol + 2;
    }
    if (have_ext) {
        strcpy(fname, ext);
        have_fname = 1;
    }
    if (have_fname) { /* a client's path: keep its last element only */
        char *slash = strrchr(fname, '/'), *bs = strrchr(fname, '\\');
        char *base = slash > bs ? slash : bs;
        if (base)
            memmove(fname, base + 1, strlen(base + 1) + 1);
    }
    mp->in_part = 1;
    return mp->cb->part_begin(have_name ? name : NULL, have_fname ? fname : NULL, mp->arg);
}

static int data(struct graced_mp *mp, const char *p, size_t n)
{
    return mp->st == S_DATA && n ? mp->cb->part_data(p, n, mp->arg) : 0;
}

int graced_mp_feed(struct graced_mp *mp, const char *buf, size_t len)
{
    size_t i = 0;
    int rc = 0;
    if (mp->err)
        return mp->err;
    while (i < len && rc == 0) {
        char c = buf[i];
        switch (mp->st) {
        case S_PREAMBLE:
        case S_DATA:
            if (mp->match == 0) {
                const char *cr = memchr(buf + i, '\r', len - i);
                size_t end = cr ? (size_t)(cr - buf) : len;
                rc = data(mp, buf + i, end - i);
                i = end;
                if (cr) {
                    mp->match = 1;
                    i++;
                }
            } else if (c == mp->delim[mp->match]) {
                i++;
                if (++mp->match == mp->dlen) {
                    mp->match = 0;
                    if (mp->in_part) {
                        mp->in_part = 0;
                        rc = mp->cb->part_end(mp->arg);
                    }
                    mp->st = S_DELIM;
                }
            } else {
                /* not a delimiter after all: what was held back is data;
                 * c is looked at again from the start of the pattern */
                rc = data(mp, mp->delim, mp->match);
                mp->match = 0;
            }
            continue;
        case S_DELIM:
            if (c == '-')
                mp->st = S_DASH;
            else if (c == ' ' || c == '\t')
                mp->st = S_PAD;
            else if (c == '\r')
                mp->st = S_LF;
            else
                rc = -EPROTO;
            break;
        case S_PAD:
            if (c == '\r')
                mp->st = S_LF;
            else if (c != ' ' && c != '\t')
                rc = -EPROTO;
            break;
        case S_DASH:
            if (c == '-')
                mp->st = S_DONE;
            else
                rc = -EPROTO;
            break;
        case S_LF:
            if (c == '\n') {
                mp->st = S_HEADER;
                mp->hlen = 0;
            } else {
                rc = -EPROTO;
            }
            break;
        case S_HEADER:
            if (mp->hlen == mp->hmax) {
                rc = -EMSGSIZE;
                break;
            }
            mp->hdr[mp->hlen++] = c;
            if (c == '\n' && ((mp->hlen == 2 && mp->hdr[0] == '\r') ||
                              (mp->hlen >= 4 && !memcmp(mp->hdr + mp->hlen - 4, "\r\n\r\n", 4)))) {
                mp->st = S_DATA;
                rc = begin_part(mp);
            }
            break;
        case S_DONE:
            return 0; /* the epilogue is ignored */
        }
        i++;
    }
    if (rc)
        mp->err = rc;
    return rc;
}

int graced_mp_end(struct graced_mp *mp)
{
    if (mp->err)
        return mp->err;
    return mp->st == S_DONE ? 0 : -EPROTO;
}
