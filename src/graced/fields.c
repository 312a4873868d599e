/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fields.c - the values of a few header fields, parsed without I/O: whole
 * numbers (Upload-Offset, Upload-Length), structured-field Booleans
 * (Upload-Complete), base64 (Basic auth, tus metadata), tus's
 * Upload-Metadata and Content-Disposition's file name. Each refuses what
 * it does not understand rather than guess: the caller answers 400.
 */
#define _GNU_SOURCE /* strcasestr */
#include "graced.h"

#include <string.h>
#include <strings.h>

int64_t graced_field_uint(const char *v)
{
    int64_t x = 0;
    if (!v || !*v || strlen(v) > 18)
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        x = x * 10 + (*v - '0');
    }
    return x;
}

int graced_field_bool(const char *v)
{
    return !v ? -1 : !strcmp(v, "?1") ? 1 : !strcmp(v, "?0") ? 0 : -1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int graced_b64decode(const char *in, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    unsigned v = 0;
    int bits = 0;
    while (n && in[n - 1] == '=')
        n--;
    for (size_t i = 0; i < n; i++) {
        int d = b64val((unsigned char)in[i]);
        if (d < 0)
            return -1;
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    if (!outlen)
        return -1;
    out[o] = '\0';
    return (int)o;
}

/* A NUL in a decoded name would cut it: it becomes a control byte, which
 * the name's sanitiser turns into '_' like any other. */
static void no_nul(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i])
            s[i] = 1;
}

int graced_tus_metadata(const char *md, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = md; p && *p;) {
        const char *end = strchr(p, ','), *sp;
        size_t len;
        while (*p == ' ')
            p++;
        len = end ? (size_t)(end - p) : strlen(p);
        sp = memchr(p, ' ', len);
        if ((sp ? (size_t)(sp - p) : len) == kl && !strncmp(p, key, kl)) {
            int got;
            if (!sp || (got = graced_b64decode(sp + 1, len - (size_t)(sp + 1 - p), out, n)) < 0)
                return -1;
            no_nul(out, (size_t)got);
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int graced_disposition_filename(const char *cd, char *out, size_t n)
{
    const char *p;
    size_t o = 0;
    if (!cd || !n)
        return 0;
    if ((p = strcasestr(cd, "filename*=")) && !strncasecmp(p + 10, "UTF-8''", 7)) {
        for (p += 17; *p && *p != ';' && *p != ' '; p++) {
            int h = 0, l = 0;
            if (o + 1 >= n)
                return -1;
            if (*p == '%' && ((h = hexval(p[1])) < 0 || (l = hexval(p[2])) < 0))
                return -1;
            out[o++] = *p == '%' ? (char)(h << 4 | l) : *p;
            if (*p == '%')
                p += 2;
        }
    } else if ((p = strcasestr(cd, "filename="))) {
        p += 9;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (o + 1 >= n)
                    return -1;
                out[o++] = *p == '\\' && p[1] ? *++p : *p;
            }
            if (*p != '"')
                return -1;
        } else {
            for (; *p && *p != ';' && *p != ' '; p++) {
                if (o + 1 >= n)
                    return -1;
                out[o++] = *p;
            }
        }
    } else {
        return 0;
    }
    no_nul(out, o);
    out[o] = '\0';
    return o ? 1 : -1;
}

int graced_form_field(const char *form, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name), o = 0;
    const char *p = form;
    while (p && (strncmp(p, name, nl) || p[nl] != '='))
        p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL;
    if (!p)
        return -1;
    for (p += nl + 1; *p && *p != '&'; p++) {
        int c = (unsigned char)*p;
        if (c == '+')
            c = ' ';
        else if (c == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            c = hexval(p[1]) << 4 | hexval(p[2]);
            p += 2;
        }
        if (c == 0 || o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}
