/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * escape.c - names as text where they land: HTML text and attributes, and
 * JSON strings. A name on disk need not be UTF-8 and may hold control
 * bytes or bidi controls (U+202E...): bytes that are not UTF-8 become
 * U+FFFD, control bytes show as \xNN (HTML) or \u00NN (JSON), bidi and C1
 * controls as \uNNNN escapes, so a name is seen as it is, never obeyed
 * ("rtl\u202Egnp.exe" cannot pass for "rtlexe.png").
 */
#include "graced.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

/* A character that reorders the text around it (Unicode's bidi embedding,
 * override, isolate and mark controls) or a C1 control: shown, not obeyed. */
static int bidi_or_c1(unsigned cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The length of the valid UTF-8 sequence at s (which starts with a byte
 * >= 0x80) and its code point, or 0 if none starts there. */
static size_t utf8_seq(const char *s, unsigned *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : 2;
    if (strnlen(s, n) != n || !graced_utf8_valid(s, n))
        return 0;
    *cp = n == 2 ? u[0] & 0x1f : n == 3 ? u[0] & 0x0f : u[0] & 0x07;
    for (size_t i = 1; i < n; i++)
        *cp = *cp << 6 | (u[i] & 0x3f);
    return n;
}

/* One character from s, which starts with a byte >= 0x80: the UTF-8
 * sequence as it is, a bidi or C1 control as the escape esc ("\\u%04X":
 * text that shows it; "\\u%04x": JSON's own escape), or U+FFFD for a byte
 * that starts none. Returns the bytes taken. */
static size_t add_utf8(struct evbuffer *out, const char *s, const char *esc)
{
    unsigned cp;
    size_t n = utf8_seq(s, &cp);
    if (n && bidi_or_c1(cp)) {
        evbuffer_add_printf(out, esc, cp);
        return n;
    }
    if (n) {
        evbuffer_add(out, s, n);
        return n;
    }
    evbuffer_add(out, "\xef\xbf\xbd", 3);
    return 1;
}

int graced_name_odd(const char *s)
{
    int odd = 0;
    while (*s) {
        unsigned char c = (unsigned char)*s;
        unsigned cp;
        size_t n;
        if (c < 0x20 || c == 0x7f)
            odd |= 1;
        if (c < 0x80 || !(n = utf8_seq(s, &cp))) {
            s++;
            continue;
        }
        if (bidi_or_c1(cp))
            odd |= 2;
        s += n;
    }
    return odd;
}

/* HTML text or attribute; bytes that are not UTF-8 become U+FFFD, as the
 * page says it is UTF-8; control bytes show as \xNN and bidi or C1 controls
 * as \uNNNN: a name is seen as it is, not as it would like to look */
void graced_html_esc(struct evbuffer *out, const char *s)
{
    while (*s) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x80) {
            s += add_utf8(out, s, "\\u%04X");
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            evbuffer_add_printf(out, "\\x%02X", c);
            s++;
            continue;
        }
        switch (*s++) {
        case '&': evbuffer_add(out, "&amp;", 5); break;
        case '<': evbuffer_add(out, "&lt;", 4); break;
        case '>': evbuffer_add(out, "&gt;", 4); break;
        case '"': evbuffer_add(out, "&quot;", 6); break;
        case '\'': evbuffer_add(out, "&#39;", 5); break;
        default: evbuffer_add(out, s - 1, 1);
        }
    }
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD (names on disk
 * need not be UTF-8, JSON must be); controls, bidi and C1 controls are \u
 * escapes (the same string once parsed, but never raw in a viewer). */
void graced_json_str(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, "\"", 1);
    while (*s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            evbuffer_add_printf(out, "\\%c", c);
            s++;
        } else if (c < 0x20 || c == 0x7f) {
            evbuffer_add_printf(out, "\\u%04x", c);
            s++;
        } else if (c < 0x80) {
            evbuffer_add(out, s++, 1);
        } else {
            s += add_utf8(out, s, "\\u%04x");
        }
    }
    evbuffer_add(out, "\"", 1);
}

void graced_human_size(int64_t n, char *out, size_t len)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%lld B", (long long)n);
    else
        snprintf(out, len, "%.1f %s", v, unit[u]);
}
