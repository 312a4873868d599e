/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * parser.c - incremental HTTP/1.1 request parser (RFC 9112).
 *
 * Lines are found with memchr() for LF and then validated left to right, so
 * every decision depends only on bytes up to the line end or the limit
 * position, never on how the bytes were split. Ordinary bytes in targets and
 * field values are checked 16 (SSE2) or 8 (SWAR) at a time.
 */
#include "parser.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum {
    S_START = 0,  /* before a request line; leading CRLFs are skipped */
    S_REQLINE,    /* request line incomplete */
    S_FIELDS,     /* header field lines */
    S_MSG_DONE,   /* headers or body finished: report DONE next */
    S_BODY_LENGTH,
    S_CHUNK_SIZE,
    S_CHUNK_DATA,
    S_CHUNK_CRLF,
    S_TRAILER,
    S_ERROR
};

/* tchar per RFC 9110 5.6.2 */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

#if defined(__GNUC__)
/* authority_check() runs for every Host: inlined, the call costs more than a
 * short host name (callgrind: 815 vs 855 instructions per small request) */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

#define IS_TOKEN(c) (tchar[(unsigned char)(c)])
#define IS_OWS(c) ((c) == ' ' || (c) == '\t')

/*
 * First byte in [p, end) that is below lt or is DEL, else end. Bytes >= 0x80
 * (obs-text) pass. lt = 0x20 finds controls, lt = 0x21 also stops at SP.
 */
static const char *scan_ctl(const char *p, const char *end, unsigned char lt)
{
#if defined(__SSE2__)
    const __m128i vmax = _mm_set1_epi8((char)(lt - 1));
    const __m128i vdel = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(x, vmax), x);
        int m = _mm_movemask_epi8(_mm_or_si128(low, _mm_cmpeq_epi8(x, vdel)));
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    /* SWAR: existence tests are exact, so a hit always finds its byte below */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t x, d;
        memcpy(&x, p, 8);
        d = x ^ (ones * 0x7f);
        if (((x - ones * lt) & ~x & highs) | ((d - ones) & ~d & highs))
            break;
        p += 8;
    }
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < lt || c == 0x7f)
            return p;
    }
    return end;
}

/*
 * First byte in [p, end) that may not appear raw in a request-target, else
 * end: the bytes a WHATWG URL serializer (every browser) always
 * percent-encodes: controls, SP, '"', '#', '<', '>', DEL and bytes >= 0x80
 * (raw or overlong UTF-8). '#' also because a fragment is never sent: a
 * proxy that cuts there and a server that does not would see two paths.
 * Other visible ASCII outside RFC 3986 ('\', '^', '`', '{', '|', '}') is
 * sent raw by browsers in queries, so it passes.
 */
static const char *scan_target(const char *p, const char *end)
{
#if defined(__SSE2__)
    /* signed compare: 0x80..0xff are negative, so "< 0x21" also finds them;
     * x|1 == '#' is '"' or '#', x|2 == '>' is '<' or '>' */
    const __m128i v21 = _mm_set1_epi8(0x21), v1 = _mm_set1_epi8(1), v2 = _mm_set1_epi8(2);
    const __m128i vdel = _mm_set1_epi8(0x7f), vhash = _mm_set1_epi8('#');
    const __m128i vgt = _mm_set1_epi8('>');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i bad = _mm_or_si128(
            _mm_or_si128(_mm_cmplt_epi8(x, v21), _mm_cmpeq_epi8(x, vdel)),
            _mm_or_si128(_mm_cmpeq_epi8(_mm_or_si128(x, v1), vhash),
                         _mm_cmpeq_epi8(_mm_or_si128(x, v2), vgt)));
        int m = _mm_movemask_epi8(bad);
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    /* SWAR: existence tests are exact, so a hit always finds its byte below */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t x, d, h, a;
        memcpy(&x, p, 8);
        d = x ^ (ones * 0x7f);
        h = (x | ones) ^ (ones * '#');
        a = (x | (ones * 2)) ^ (ones * '>');
        if ((x & highs) | ((x - ones * 0x21) & ~x & highs) | ((d - ones) & ~d & highs) |
            ((h - ones) & ~h & highs) | ((a - ones) & ~a & highs))
            break;
        p += 8;
    }
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x21 || c >= 0x7f || c == '"' || c == '#' || c == '<' || c == '>')
            return p;
    }
    return end;
}

/* unreserved / sub-delims of RFC 3986, without ',' (a Host is not a list) */
static const unsigned char regname_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1,
    ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [';'] = 1, ['='] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* dec-octet "." dec-octet "." dec-octet "." dec-octet, no leading zeros */
static int ipv4_valid(const char *s, size_t n)
{
    size_t i = 0;
    for (int k = 0; k < 4; k++) {
        size_t d = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - d < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == d || v > 255 || (i - d > 1 && s[d] == '0'))
            return 0;
        if (k < 3) {
            if (i == n || s[i] != '.')
                return 0;
            i++;
        }
    }
    return i == n;
}

/* IPv6address of RFC 3986 3.2.2: up to 8 h16, one "::", an IPv4 tail. */
static int ipv6_valid(const char *s, size_t n)
{
    size_t i = 0;
    int groups = 0, gap = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 1;
        i = 2;
    } else if (n == 0 || s[0] == ':') {
        return 0;
    }
    while (i < n) {
        size_t d = i;
        while (i < n && i - d < 5 && grace__hexval(s[i]) >= 0)
            i++;
        if (i < n && s[i] == '.') { /* ls32 as an IPv4 address: the end */
            if (!ipv4_valid(s + d, n - d))
                return 0;
            groups += 2;
            i = n;
            break;
        }
        if (i == d || i - d > 4)
            return 0;
        groups++;
        if (i == n)
            break;
        if (s[i++] != ':' || i == n)
            return 0;
        if (s[i] == ':') {
            if (gap)
                return 0;
            gap = 1;
            i++;
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static int ipvfuture_valid(const char *s, size_t n)
{
    size_t i = 1;
    if (n < 4 || (s[0] | 0x20) != 'v')
        return 0;
    while (i < n && grace__hexval(s[i]) >= 0)
        i++;
    if (i == 1 || i + 1 >= n || s[i] != '.')
        return 0;
    for (i++; i < n; i++)
        if (!regname_char[(unsigned char)s[i]] && s[i] != ':' && s[i] != ',')
            return 0;
    return 1;
}

/*
 * uri-host [ ":" port ] (RFC 3986 3.2.2, 3.2.3): a reg-name (no ','), an
 * IPv4 address (a reg-name too) or an IP-literal; port digits, at most 65535.
 * No userinfo, path, whitespace or list. Returns -1 if invalid, 0 if the
 * host is empty, 1 otherwise. need_port: the ":" port part is required.
 */
static ALWAYS_INLINE int authority_check(const char *s, size_t n, int need_port)
{
    size_t i = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return -1;
        size_t ln = (size_t)(close - s) - 1;
        if (!ipv6_valid(s + 1, ln) && !ipvfuture_valid(s + 1, ln))
            return -1;
        i = ln + 2;
    } else {
        const unsigned char *u = (const unsigned char *)s;
        for (;;) { /* Host is in every request: 4 ordinary bytes per step */
            while (n - i >= 4 && (regname_char[u[i]] & regname_char[u[i + 1]] &
                                  regname_char[u[i + 2]] & regname_char[u[i + 3]]))
                i += 4;
            while (i < n && regname_char[u[i]])
                i++;
            if (i == n || s[i] != '%')
                break;
            if (n - i < 3 || grace__hexval(s[i + 1]) < 0 || grace__hexval(s[i + 2]) < 0)
                return -1;
            i += 3;
        }
        if (i < n && s[i] != ':')
            return -1;
    }
    size_t host_len = i;
    if (i < n) {
        unsigned port = 0;
        if (s[i++] != ':' || n - i > 5)
            return -1;
        for (size_t d = i; d < n; d++) {
            if (s[d] < '0' || s[d] > '9')
                return -1;
            port = port * 10 + (unsigned)(s[d] - '0');
        }
        if (port > 65535 || (need_port && i == n))
            return -1;
    } else if (need_port) {
        return -1;
    }
    return host_len > 0;
}

/* Case-insensitive compare of a token against a lowercase literal. */
static int token_eq(const char *s, size_t n, const char *lower, size_t ln)
{
    if (n != ln)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lower[i])
            return 0;
    return 1;
}
#define TOKEN_EQ(s, n, lit) token_eq((s), (n), lit, sizeof(lit) - 1)

void grace_parser_limits_default(struct grace_parser_limits *lim)
{
    if (!lim->max_request_line)
        lim->max_request_line = GRACE_PARSER_DEFAULT_REQUEST_LINE;
    if (!lim->max_header_bytes)
        lim->max_header_bytes = GRACE_PARSER_DEFAULT_HEADER_BYTES;
    if (!lim->max_fields)
        lim->max_fields = GRACE_PARSER_DEFAULT_FIELDS;
    if (!lim->max_trailer_bytes)
        lim->max_trailer_bytes = GRACE_PARSER_DEFAULT_TRAILER_BYTES;
}

void grace_parser_init(struct grace_parser *p, const struct grace_parser_limits *lim,
                       struct grace_hfield *fields)
{
    memset(p, 0, sizeof(*p));
    if (lim)
        p->lim = *lim;
    grace_parser_limits_default(&p->lim);
    p->fields = fields;
    grace_parser_reset(p);
}

/* Forget the current message (not its req results) and await a request line. */
static void message_reset(struct grace_parser *p)
{
    p->state = S_START;
    p->line_start = p->hsec_start = p->scan = p->window = 0;
    p->remaining = 0;
    p->trailer_bytes = 0;
    p->seen_cl = p->seen_te = p->te_chunked_last = p->te_unknown = 0;
    p->te_chunked_count = p->conn_close = p->conn_keep_alive = p->host_empty = 0;
    p->host_count = 0;
}

void grace_parser_reset(struct grace_parser *p)
{
    message_reset(p);
    memset(&p->req, 0, sizeof(p->req));
    p->req.host_index = -1;
    p->err = GRACE_PERR_NONE;
    p->err_offset = 0;
}

int grace_parser_idle(const struct grace_parser *p)
{
    return p->state == S_START;
}

int grace_parser_body_done(const struct grace_parser *p)
{
    return p->state == S_MSG_DONE || p->state == S_START;
}

uint64_t grace_parser_body_left(const struct grace_parser *p)
{
    return p->state == S_BODY_LENGTH ? p->remaining : 0;
}

void grace_parser_body_skip(struct grace_parser *p, uint64_t n)
{
    if (p->state != S_BODY_LENGTH || n > p->remaining)
        return;
    p->remaining -= n;
    if (p->remaining == 0)
        p->state = S_MSG_DONE;
}

static enum grace_pev fail(struct grace_parser *p, enum grace_perr e, size_t off)
{
    p->state = S_ERROR;
    p->err = e;
    p->err_offset = off;
    return GRACE_PEV_ERROR;
}

/*
 * Find the first LF in data[from, min(len, limit)). Callers remember how far
 * they looked, so a line arriving byte by byte is not rescanned.
 * Returns the LF offset, or (size_t)-1 if there is none yet.
 */
static size_t find_lf(const char *data, size_t start, size_t len, size_t limit)
{
    size_t end = len < limit ? len : limit;
    if (end <= start)
        return (size_t)-1;
    const char *lf = memchr(data + start, '\n', end - start);
    return lf ? (size_t)(lf - data) : (size_t)-1;
}

static enum grace_pmethod method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (!memcmp(m, "GET", 3)) return GRACE_PM_GET;
        if (!memcmp(m, "PUT", 3)) return GRACE_PM_PUT;
        break;
    case 4:
        if (!memcmp(m, "HEAD", 4)) return GRACE_PM_HEAD;
        if (!memcmp(m, "POST", 4)) return GRACE_PM_POST;
        break;
    case 5:
        if (!memcmp(m, "PATCH", 5)) return GRACE_PM_PATCH;
        if (!memcmp(m, "TRACE", 5)) return GRACE_PM_TRACE;
        break;
    case 6:
        if (!memcmp(m, "DELETE", 6)) return GRACE_PM_DELETE;
        break;
    case 7:
        if (!memcmp(m, "OPTIONS", 7)) return GRACE_PM_OPTIONS;
        if (!memcmp(m, "CONNECT", 7)) return GRACE_PM_CONNECT;
        break;
    }
    return GRACE_PM_OTHER;
}

/* absolute-form: scheme "://" ... (RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )) */
static int is_absolute_form(const char *t, size_t n)
{
    size_t i = 0;
    if (n == 0 || !((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
        return 0;
    for (i = 1; i < n; i++) {
        char c = t[i];
        if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            break;
    }
    return n - i > 3 && t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/';
}

/* Validate the request line data[0..n) (CR excluded). Returns an error or NONE. */
static enum grace_perr parse_reqline(struct grace_parser *p, const char *data, size_t n,
                                     size_t *at)
{
    const char *s = data, *e = data + n, *c = s;
    struct grace_preq *r = &p->req;

    while (c < e && IS_TOKEN(*c))
        c++;
    *at = (size_t)(c - s);
    if (c == e)
        return c == s ? GRACE_PERR_METHOD : GRACE_PERR_REQLINE;
    if (*c != ' ')
        return *c == '\r' ? GRACE_PERR_BARE_CR : GRACE_PERR_METHOD;
    if (c == s)
        return GRACE_PERR_METHOD;
    r->method.off = 0;
    r->method.len = (uint32_t)(c - s);
    r->method_id = method_id(s, r->method.len);

    const char *t = ++c;
    c = scan_target(c, e);
    *at = (size_t)(c - s);
    if (c == t)
        return c == e || *c == ' ' ? GRACE_PERR_REQLINE : GRACE_PERR_TARGET_BYTE;
    if (c == e)
        return GRACE_PERR_VERSION_UNSUP; /* "GET /path": HTTP/0.9 style */
    if (*c != ' ')
        return *c == '\r' ? GRACE_PERR_BARE_CR : GRACE_PERR_TARGET_BYTE;
    r->target.off = (uint32_t)(t - s);
    r->target.len = (uint32_t)(c - t);

    const char *v = ++c;
    size_t vn = (size_t)(e - v);
    *at = (size_t)(v - s);
    if (memchr(v, '\r', vn))
        return GRACE_PERR_BARE_CR;
    if (vn == 8 && !memcmp(v, "HTTP/1.", 7) && (v[7] == '0' || v[7] == '1')) {
        r->version_minor = v[7] - '0';
    } else if (vn >= 6 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' &&
               (vn == 6 || (vn == 8 && v[6] == '.' && v[7] >= '0' && v[7] <= '9'))) {
        /* well-formed but not 1.0/1.1: HTTP/2.0, HTTP/3, HTTP/1.2 ... */
        return GRACE_PERR_VERSION_UNSUP;
    } else {
        return v == e ? GRACE_PERR_REQLINE : GRACE_PERR_VERSION;
    }

    /* request-target form (RFC 9112 3.2) */
    const char *tg = s + r->target.off;
    size_t tn = r->target.len;
    if (r->method_id == GRACE_PM_CONNECT) {
        /* authority-form = uri-host ":" port */
        if (authority_check(tg, tn, 1) <= 0)
            return GRACE_PERR_TARGET;
        r->form = GRACE_FORM_AUTHORITY;
    } else if (tg[0] == '/') {
        r->form = GRACE_FORM_ORIGIN;
    } else if (tn == 1 && tg[0] == '*') {
        if (r->method_id != GRACE_PM_OPTIONS)
            return GRACE_PERR_TARGET;
        r->form = GRACE_FORM_ASTERISK;
    } else if (is_absolute_form(tg, tn)) {
        /* its authority names the host (RFC 9112 3.2.2): a non-empty one,
         * without userinfo (RFC 9110 4.2.1, 4.2.4) */
        const char *a = (const char *)memchr(tg, ':', tn) + 3, *ae = a;
        while (ae < tg + tn && *ae != '/' && *ae != '?')
            ae++;
        if (authority_check(a, (size_t)(ae - a), 0) <= 0)
            return GRACE_PERR_TARGET;
        r->form = GRACE_FORM_ABSOLUTE;
    } else {
        return GRACE_PERR_TARGET;
    }
    return GRACE_PERR_NONE;
}

/*
 * Validate one field line s[0..n) (CR excluded): name ":" OWS value OWS.
 * Fills *f with offsets relative to base.
 */
static enum grace_perr parse_field(const char *s, size_t n, size_t base, struct grace_hfield *f,
                                   size_t *at)
{
    const char *e = s + n, *c = s;

    if (IS_OWS(*c))
        return GRACE_PERR_OBS_FOLD;
    while (c < e && IS_TOKEN(*c))
        c++;
    *at = (size_t)(c - s);
    if (c == e)
        return GRACE_PERR_FIELD_NAME;
    if (*c != ':') {
        if (c > s && IS_OWS(*c))
            return GRACE_PERR_FIELD_WS;
        return *c == '\r' ? GRACE_PERR_BARE_CR : GRACE_PERR_FIELD_NAME;
    }
    if (c == s)
        return GRACE_PERR_FIELD_NAME;
    f->name.off = (uint32_t)base;
    f->name.len = (uint32_t)(c - s);

    c++;
    while (c < e && IS_OWS(*c))
        c++;
    const char *v = c;
    for (;;) {
        c = scan_ctl(c, e, 0x20);
        if (c == e)
            break;
        if (*c != '\t') {
            *at = (size_t)(c - s);
            return *c == '\r' ? GRACE_PERR_BARE_CR : GRACE_PERR_FIELD_VALUE;
        }
        c++;
    }
    while (e > v && IS_OWS(e[-1]))
        e--;
    f->value.off = (uint32_t)(base + (size_t)(v - s));
    f->value.len = (uint32_t)(e - v);
    return GRACE_PERR_NONE;
}

/* Content-Length: 1*DIGIT, no sign, no spaces, no list; fits in int64. */
static enum grace_perr parse_content_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return GRACE_PERR_CL_INVALID;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9 || x > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return GRACE_PERR_CL_INVALID;
        x = x * 10 + d;
    }
    *out = x;
    return GRACE_PERR_NONE;
}

/* Transfer-Encoding list: remember whether chunked is last and how often. */
static enum grace_perr parse_te(struct grace_parser *p, const char *v, size_t n)
{
    const char *e = v + n;
    int any = 0;
    while (v < e) {
        while (v < e && (IS_OWS(*v) || *v == ','))
            v++;
        const char *t = v;
        while (v < e && *v != ',')
            v++;
        const char *te = v;
        while (te > t && IS_OWS(te[-1]))
            te--;
        if (te == t)
            continue;
        any = 1;
        if (TOKEN_EQ(t, (size_t)(te - t), "chunked")) {
            if (p->te_chunked_count < 3)
                p->te_chunked_count++;
            p->te_chunked_last = 1;
        } else {
            p->te_unknown = 1; /* gzip, identity, parameters... */
            p->te_chunked_last = 0;
        }
    }
    return any ? GRACE_PERR_NONE : GRACE_PERR_TE_NOT_CHUNKED;
}

/* Connection: comma-separated tokens. */
static void parse_connection(struct grace_parser *p, const char *v, size_t n)
{
    const char *e = v + n;
    while (v < e) {
        while (v < e && (IS_OWS(*v) || *v == ','))
            v++;
        const char *t = v;
        while (v < e && *v != ',' && !IS_OWS(*v))
            v++;
        size_t tn = (size_t)(v - t);
        if (TOKEN_EQ(t, tn, "close"))
            p->conn_close = 1;
        else if (TOKEN_EQ(t, tn, "keep-alive"))
            p->conn_keep_alive = 1;
        else if (TOKEN_EQ(t, tn, "upgrade"))
            p->req.upgrade = 1;
    }
}

/* Apply the meaning of the framing/connection fields. */
static enum grace_perr field_semantics(struct grace_parser *p, const char *blk, size_t idx)
{
    const struct grace_hfield *f = &p->fields[idx];
    const char *name = blk + f->name.off, *val = blk + f->value.off;
    size_t nl = f->name.len, vl = f->value.len;
    enum grace_perr e;

    switch (nl) {
    case 4:
        if (TOKEN_EQ(name, nl, "host")) {
            int ok = authority_check(val, vl, 0);
            if (ok < 0)
                return GRACE_PERR_HOST_INVALID;
            p->host_empty = ok == 0;
            p->host_count++;
            p->req.host_index = (int)idx;
        }
        break;
    case 6:
        if (TOKEN_EQ(name, nl, "expect")) {
            if (!TOKEN_EQ(val, vl, "100-continue"))
                return p->req.version_minor ? GRACE_PERR_EXPECT : GRACE_PERR_NONE;
            p->req.expect_continue = p->req.version_minor == 1;
        }
        break;
    case 10:
        if (TOKEN_EQ(name, nl, "connection"))
            parse_connection(p, val, vl);
        break;
    case 14:
        if (TOKEN_EQ(name, nl, "content-length")) {
            uint64_t cl;
            if ((e = parse_content_length(val, vl, &cl)) != GRACE_PERR_NONE)
                return e;
            if (p->seen_cl && cl != p->req.content_length)
                return GRACE_PERR_CL_MULTIPLE;
            p->seen_cl = 1;
            p->req.content_length = cl;
        }
        break;
    case 17:
        if (TOKEN_EQ(name, nl, "transfer-encoding")) {
            p->seen_te = 1;
            return parse_te(p, val, vl);
        }
        break;
    }
    return GRACE_PERR_NONE;
}

/* All fields are in: decide framing and persistence (RFC 9112 6.1-6.3, 9.3). */
static enum grace_perr headers_complete(struct grace_parser *p)
{
    struct grace_preq *r = &p->req;

    if (r->version_minor == 1 ? p->host_count != 1 : p->host_count > 1)
        return GRACE_PERR_HOST;
    /* an empty Host only where the target carries the authority (RFC 9112
     * 3.2); origin-, asterisk- and authority-form take the host from it */
    if (p->host_count && p->host_empty && r->form != GRACE_FORM_ABSOLUTE)
        return GRACE_PERR_HOST_EMPTY;
    if (p->seen_te) {
        if (r->version_minor == 0)
            return GRACE_PERR_TE_HTTP10;
        if (p->seen_cl)
            return GRACE_PERR_CL_AND_TE;
        if (p->te_chunked_count > 1)
            return GRACE_PERR_TE_TWICE;
        if (!p->te_chunked_last)
            return GRACE_PERR_TE_NOT_CHUNKED;
        if (p->te_unknown)
            return GRACE_PERR_TE_UNKNOWN;
        r->framing = GRACE_FRAMING_CHUNKED;
    } else if (p->seen_cl) {
        r->framing = GRACE_FRAMING_LENGTH;
    } else {
        r->framing = GRACE_FRAMING_NONE;
        r->content_length = 0;
    }
    r->keep_alive = r->version_minor == 1 ? !p->conn_close : (p->conn_keep_alive && !p->conn_close);
    return GRACE_PERR_NONE;
}

/* Header phase: nothing is consumed until the whole block is there. */
static enum grace_pev parse_head(struct grace_parser *p, const char *data, size_t len,
                                 size_t *consumed)
{
    size_t at = 0, lf;
    enum grace_perr e;

    if (p->state == S_START) {
        /* RFC 9112 2.2: ignore empty lines before the request line. */
        size_t i = 0;
        while (len - i >= 2 && data[i] == '\r' && data[i + 1] == '\n')
            i += 2;
        if (i < len && data[i] == '\n')
            return fail(p, GRACE_PERR_BARE_LF, i);
        if (len - i == 1 && data[i] == '\r') {
            *consumed = i;
            return GRACE_PEV_AGAIN;
        }
        if (i < len && data[i] == '\r')
            return fail(p, GRACE_PERR_BARE_CR, i);
        /* consumed blank lines are not part of the block: offsets start after them */
        *consumed = i;
        data += i;
        len -= i;
        if (len == 0)
            return GRACE_PEV_AGAIN;
        memset(&p->req, 0, sizeof(p->req));
        p->req.host_index = -1;
        p->line_start = p->scan = 0;
        p->state = S_REQLINE;
    }

    if (p->state == S_REQLINE) {
        size_t n = p->lim.max_request_line;
        lf = find_lf(data, p->scan, len, n + 2);
        if (lf == (size_t)-1) {
            if (len >= n + 2)
                return fail(p, GRACE_PERR_URI_TOO_LONG, n);
            p->scan = len; /* no LF before here: resume the search there */
            p->window = n + 2;
            return GRACE_PEV_AGAIN;
        }
        if (lf == 0 || data[lf - 1] != '\r')
            return fail(p, GRACE_PERR_BARE_LF, lf);
        if (lf - 1 > n)
            return fail(p, GRACE_PERR_URI_TOO_LONG, n);
        if ((e = parse_reqline(p, data, lf - 1, &at)) != GRACE_PERR_NONE)
            return fail(p, e, at);
        p->line_start = p->hsec_start = p->scan = lf + 1;
        p->state = S_FIELDS;
    }

    /* S_FIELDS; line_start is the start of an unparsed line. */
    for (;;) {
        size_t ls = p->line_start;
        size_t allow = p->hsec_start + p->lim.max_header_bytes;
        size_t window = allow > ls + 2 ? allow : ls + 2;
        lf = find_lf(data, p->scan > ls ? p->scan : ls, len, window);
        if (lf == (size_t)-1) {
            if (len >= window)
                return fail(p, GRACE_PERR_HEADERS_TOO_BIG, window);
            p->scan = len;
            p->window = window;
            return GRACE_PEV_AGAIN;
        }
        if (lf == ls || data[lf - 1] != '\r')
            return fail(p, GRACE_PERR_BARE_LF, lf);
        if (lf == ls + 1) /* empty line: end of the header section */
            break;
        if (lf + 1 > allow)
            return fail(p, GRACE_PERR_HEADERS_TOO_BIG, allow);
        if (p->req.nfields == p->lim.max_fields)
            return fail(p, GRACE_PERR_TOO_MANY_FIELDS, ls);
        size_t idx = p->req.nfields;
        if ((e = parse_field(data + ls, lf - 1 - ls, ls, &p->fields[idx], &at)) !=
            GRACE_PERR_NONE)
            return fail(p, e, ls + at);
        p->req.nfields++;
        if ((e = field_semantics(p, data, idx)) != GRACE_PERR_NONE)
            return fail(p, e, ls);
        p->line_start = lf + 1;
    }

    if ((e = headers_complete(p)) != GRACE_PERR_NONE)
        return fail(p, e, lf);
    p->req.header_bytes = lf + 1;
    *consumed += lf + 1;
    switch (p->req.framing) {
    case GRACE_FRAMING_CHUNKED:
        p->state = S_CHUNK_SIZE;
        break;
    case GRACE_FRAMING_LENGTH:
        p->remaining = p->req.content_length;
        p->state = p->remaining ? S_BODY_LENGTH : S_MSG_DONE;
        break;
    default:
        p->state = S_MSG_DONE;
    }
    return GRACE_PEV_HEADERS;
}

int grace__token_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS_TOKEN(s[i]))
            return 0;
    return n > 0;
}

int grace__hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* quoted-string (RFC 9110 5.6.4) at *pc; advances past the closing quote. */
static int skip_quoted(const char **pc, const char *e)
{
    const char *c = *pc + 1;
    while (c < e) {
        unsigned char ch = (unsigned char)*c;
        if (ch == '"') {
            *pc = c + 1;
            return 0;
        }
        if (ch == '\\') {
            if (++c == e)
                return -1;
            ch = (unsigned char)*c;
            if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
                return -1;
        } else if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
            return -1;
        }
        c++;
    }
    return -1;
}

/* chunk-size [ chunk-ext ] in s[0..n) (CR excluded). */
static enum grace_perr parse_chunk_line(const char *s, size_t n, uint64_t *size)
{
    const char *c = s, *e = s + n;
    uint64_t x = 0;
    int h;

    if (memchr(s, '\r', n))
        return GRACE_PERR_BARE_CR;
    if (c == e || grace__hexval(*c) < 0)
        return GRACE_PERR_CHUNK_SIZE;
    for (; c < e && (h = grace__hexval(*c)) >= 0; c++) {
        if (x > (UINT64_C(0x7fffffffffffffff) >> 4))
            return GRACE_PERR_CHUNK_SIZE;
        x = (x << 4) | (uint64_t)h;
    }
    *size = x;
    if (c < e && !IS_OWS(*c) && *c != ';')
        return GRACE_PERR_CHUNK_SIZE; /* 0x10, 5g, 1 2 ... */
    /* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) */
    while (c < e) {
        while (c < e && IS_OWS(*c))
            c++;
        if (c == e || *c != ';')
            return GRACE_PERR_CHUNK_EXT;
        c++;
        while (c < e && IS_OWS(*c))
            c++;
        const char *nm = c;
        while (c < e && IS_TOKEN(*c))
            c++;
        if (c == nm)
            return GRACE_PERR_CHUNK_EXT;
        const char *save = c;
        while (c < e && IS_OWS(*c))
            c++;
        if (c < e && *c == '=') {
            c++;
            while (c < e && IS_OWS(*c))
                c++;
            if (c < e && *c == '"') {
                if (skip_quoted(&c, e) < 0)
                    return GRACE_PERR_CHUNK_EXT;
            } else {
                const char *v = c;
                while (c < e && IS_TOKEN(*c))
                    c++;
                if (c == v)
                    return GRACE_PERR_CHUNK_EXT;
            }
        } else {
            c = save;
        }
    }
    return GRACE_PERR_NONE;
}

enum grace_pev grace_parser_execute(struct grace_parser *p, const char *data, size_t len,
                                    size_t *consumed, const char **body, size_t *body_len)
{
    size_t lf, at = 0;
    enum grace_perr e;

    *consumed = 0;
    switch (p->state) {
    case S_START:
    case S_REQLINE:
    case S_FIELDS:
        return parse_head(p, data, len, consumed);

    case S_MSG_DONE:
        message_reset(p);
        return GRACE_PEV_DONE;

    case S_BODY_LENGTH:
    case S_CHUNK_DATA: {
        if (len == 0)
            return GRACE_PEV_AGAIN;
        size_t n = len < p->remaining ? len : (size_t)p->remaining;
        *body = data;
        *body_len = n;
        *consumed = n;
        p->remaining -= n;
        if (p->remaining == 0)
            p->state = p->state == S_BODY_LENGTH ? S_MSG_DONE : S_CHUNK_CRLF;
        return GRACE_PEV_BODY;
    }

    case S_CHUNK_CRLF:
        if (len >= 1 && data[0] != '\r')
            return fail(p, GRACE_PERR_CHUNK_CRLF, 0);
        if (len < 2)
            return GRACE_PEV_AGAIN;
        if (data[1] != '\n')
            return fail(p, GRACE_PERR_CHUNK_CRLF, 1);
        *consumed = 2;
        p->state = S_CHUNK_SIZE;
        return GRACE_PEV_AGAIN;

    case S_CHUNK_SIZE: {
        uint64_t size = 0;
        size_t window = GRACE_PARSER_CHUNK_LINE_MAX + 2;
        lf = find_lf(data, 0, len, window);
        if (lf == (size_t)-1)
            return len >= window ? fail(p, GRACE_PERR_CHUNK_LINE, window) : GRACE_PEV_AGAIN;
        if (lf == 0 || data[lf - 1] != '\r')
            return fail(p, GRACE_PERR_BARE_LF, lf);
        if ((e = parse_chunk_line(data, lf - 1, &size)) != GRACE_PERR_NONE)
            return fail(p, e, 0);
        *consumed = lf + 1;
        p->remaining = size;
        p->state = size ? S_CHUNK_DATA : S_TRAILER;
        return GRACE_PEV_AGAIN;
    }

    case S_TRAILER: {
        size_t allow = p->lim.max_trailer_bytes - p->trailer_bytes;
        size_t window = allow > 2 ? allow : 2;
        lf = find_lf(data, 0, len, window);
        if (lf == (size_t)-1)
            return len >= window ? fail(p, GRACE_PERR_TRAILER_TOO_BIG, window)
                                 : GRACE_PEV_AGAIN;
        if (lf == 0 || data[lf - 1] != '\r')
            return fail(p, GRACE_PERR_BARE_LF, lf);
        *consumed = lf + 1;
        if (lf == 1) {
            message_reset(p);
            return GRACE_PEV_DONE;
        }
        if (lf + 1 > allow)
            return fail(p, GRACE_PERR_TRAILER_TOO_BIG, allow);
        if ((e = parse_field(data, lf - 1, 0, &p->trailer, &at)) != GRACE_PERR_NONE)
            return fail(p, e == GRACE_PERR_BARE_CR ? e : GRACE_PERR_TRAILER, at);
        p->trailer_bytes += lf + 1;
        *body = data;
        *body_len = lf - 1;
        return GRACE_PEV_TRAILER;
    }

    default:
        return GRACE_PEV_ERROR;
    }
}

static const struct {
    short status;
    const char *str;
} perr_info[GRACE_PERR__COUNT] = {
    [GRACE_PERR_NONE] = {0, "no error"},
    [GRACE_PERR_METHOD] = {400, "invalid method"},
    [GRACE_PERR_TARGET] = {400, "invalid request target"},
    [GRACE_PERR_TARGET_BYTE] = {400, "invalid byte in request target "
                                      "(8-bit, control, space, \", #, <, >)"},
    [GRACE_PERR_VERSION] = {400, "malformed HTTP version"},
    [GRACE_PERR_VERSION_UNSUP] = {505, "HTTP version not supported"},
    [GRACE_PERR_REQLINE] = {400, "malformed request line"},
    [GRACE_PERR_URI_TOO_LONG] = {414, "request line too long"},
    [GRACE_PERR_BARE_CR] = {400, "bare CR in request"},
    [GRACE_PERR_BARE_LF] = {400, "bare LF as line ending"},
    [GRACE_PERR_FIELD_NAME] = {400, "invalid header field name"},
    [GRACE_PERR_FIELD_WS] = {400, "whitespace before colon in header field"},
    [GRACE_PERR_FIELD_VALUE] = {400, "invalid character in header field value"},
    [GRACE_PERR_OBS_FOLD] = {400, "obsolete line folding"},
    [GRACE_PERR_HEADERS_TOO_BIG] = {431, "request header section too large"},
    [GRACE_PERR_TOO_MANY_FIELDS] = {431, "too many header fields"},
    [GRACE_PERR_HOST] = {400, "missing or duplicate Host header"},
    [GRACE_PERR_HOST_INVALID] = {400, "invalid Host header value"},
    [GRACE_PERR_HOST_EMPTY] = {400, "empty Host header"},
    [GRACE_PERR_CL_INVALID] = {400, "invalid Content-Length"},
    [GRACE_PERR_CL_MULTIPLE] = {400, "conflicting Content-Length values"},
    [GRACE_PERR_CL_AND_TE] = {400, "both Content-Length and Transfer-Encoding"},
    [GRACE_PERR_TE_NOT_CHUNKED] = {400, "final transfer coding is not chunked"},
    [GRACE_PERR_TE_TWICE] = {400, "chunked applied more than once"},
    [GRACE_PERR_TE_UNKNOWN] = {501, "transfer coding not implemented"},
    [GRACE_PERR_TE_HTTP10] = {400, "Transfer-Encoding in an HTTP/1.0 request"},
    [GRACE_PERR_EXPECT] = {417, "unsupported expectation"},
    [GRACE_PERR_CHUNK_SIZE] = {400, "invalid chunk size"},
    [GRACE_PERR_CHUNK_EXT] = {400, "invalid chunk extension"},
    [GRACE_PERR_CHUNK_LINE] = {400, "chunk size line too long"},
    [GRACE_PERR_CHUNK_CRLF] = {400, "missing CRLF after chunk data"},
    [GRACE_PERR_TRAILER] = {400, "invalid trailer field"},
    [GRACE_PERR_TRAILER_TOO_BIG] = {431, "trailer section too large"},
};

int grace_perr_status(enum grace_perr e)
{
    return (unsigned)e < GRACE_PERR__COUNT ? perr_info[e].status : 500;
}

const char *grace_perr_str(enum grace_perr e)
{
    return (unsigned)e < GRACE_PERR__COUNT ? perr_info[e].str : "unknown error";
}
