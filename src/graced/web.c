/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * web.c - the web's conventions around graced's answers: the Server header
 * (--no-server-header), nosniff and framing on every answer, graced's own
 * pages' Content-Security-Policy, CORS (--cors ORIGIN shares reads:
 * Access-Control-Allow-Origin on answers, preflight OPTIONS; --cors-write
 * ORIGIN lets that origin write too), --hsts, and who may write from which
 * Origin. Static files' own headers (--cache-control, and --precompressed
 * siblings) are files.c's.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* The entry of list (n origins, "*" for any) that matches origin, or NULL. */
static const char *origin_in(const char *const *list, int n, const char *origin)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(list[i], "*"))
            return "*";
        if (!strcasecmp(list[i], origin))
            return origin;
    }
    return NULL;
}

/* The value of Access-Control-Allow-Origin for this request: its Origin if
 * --cors or --cors-write names it, "*" for a wildcard, else NULL. */
static const char *cors_origin(struct grace_request *req, const struct graced *g)
{
    const char *origin = grace_request_header(req, "Origin"), *r;
    if (!origin)
        return NULL;
    r = origin_in(g->o.cors_write, g->o.ncors_write, origin);
    return r ? r : origin_in(g->o.cors, g->o.ncors, origin);
}

/* May this origin write? Only --cors-write says so: --cors shares reads. */
static int cors_may_write(struct grace_request *req, const struct graced *g)
{
    const char *origin = grace_request_header(req, "Origin");
    return origin && origin_in(g->o.cors_write, g->o.ncors_write, origin) != NULL;
}

/*
 * "host[:port]" with the scheme's default port dropped, lowercased, into
 * out; 0 if it does not fit or is empty.
 */
static int authority(const char *a, size_t n, int https, char *out, size_t outlen)
{
    const char *def = https ? ":443" : ":80";
    size_t dl = strlen(def);
    if (n >= dl && !memcmp(a + n - dl, def, dl))
        n -= dl;
    if (n == 0 || n >= outlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((a[i] >= 'A' && a[i] <= 'Z') ? a[i] | 0x20 : a[i]);
    out[n] = '\0';
    return 1;
}

/*
 * Is Origin this very origin: the scheme the request came by (https over
 * TLS, else http), and the host and port it was sent to (Host)? An origin
 * is "scheme://host[:port]" and nothing else (RFC 6454): no path, no user.
 */
static int same_origin(struct grace_request *req, const char *o)
{
    const char *h = grace_request_header(req, "Host");
    int https = grace_request_tls_version(req) != NULL;
    const char *scheme = https ? "https://" : "http://";
    char oa[300], ha[300];

    if (!h || strncasecmp(o, scheme, strlen(scheme)))
        return 0;
    o += strlen(scheme);
    if (strpbrk(o, "/?#@ "))
        return 0;
    return authority(o, strlen(o), https, oa, sizeof(oa)) &&
           authority(h, strlen(h), https, ha, sizeof(ha)) && !strcmp(oa, ha);
}

/*
 * May this request change files, as far as its Origin says? A browser sends
 * Origin with every POST, PUT and DELETE; a page of another site must not
 * write here on the user's behalf (a POST with a text/plain body needs no
 * preflight, so CORS alone does not stop it). Without Origin (curl, scripts)
 * yes; "null" (sandboxed frames and documents, file: pages) no; else the
 * same origin, exactly, or one named with --cors-write. --cors, even "*",
 * shares reads only: it never lets another site write.
 */
int graced_web_write_origin_ok(struct grace_request *req, const struct graced *g)
{
    const char *o = grace_request_header(req, "Origin");
    if (!o)
        return 1;
    if (!strcmp(o, "null"))
        return 0;
    return same_origin(req, o) || cors_may_write(req, g);
}

void graced_web_check_options(const struct graced_opts *o)
{
    for (int i = 0; i < o->ncors_write; i++)
        if (!strcmp(o->cors_write[i], "*"))
            graced_log(LOG_WARN, "--cors-write *: a page of any site a visitor opens can "
                                 "write and delete here with the visitor's login");
    if (o->ncors_write && !o->upload_dir)
        graced_log(LOG_WARN, "--cors-write without --upload-dir: nothing can be written");
}

/* --hsts: on our own responses to requests that came over TLS. */
static void hsts(struct grace_request *req, const struct graced *g)
{
    char v[48];
    if (g->o.hsts < 0 || !grace_request_tls_version(req))
        return;
    snprintf(v, sizeof(v), "max-age=%lld", (long long)g->o.hsts);
    grace_response_add_header(req, "Strict-Transport-Security", v);
}

void graced_web_headers(struct grace_request *req, const struct graced *g)
{
    const char *origin;
    hsts(req, g);
    if (!g->o.no_server_header)
        grace_response_add_header(req, "Server", "graced");
    /* a browser takes every answer for the type it says it is, and only a
     * page of this site may frame one (graced's own pages: none at all, by
     * their CSP's frame-ancestors, which browsers put before this) */
    grace_response_add_header(req, "X-Content-Type-Options", "nosniff");
    grace_response_add_header(req, "X-Frame-Options", "SAMEORIGIN");
    if (!(origin = cors_origin(req, g)))
        return;
    grace_response_add_header(req, "Access-Control-Allow-Origin", origin);
    if (strcmp(origin, "*")) {
        /* a named origin: caches must keep answers per Origin; and it may
         * send credentials (a wildcard never may) */
        grace_response_add_header(req, "Vary", "Origin");
        if (g->o.users_file || g->o.token_file)
            grace_response_add_header(req, "Access-Control-Allow-Credentials", "true");
    }
    grace_response_add_header(req, "Access-Control-Expose-Headers",
                              "ETag, Last-Modified, Content-Range, Content-Encoding, Location, "
                              "Accept-Ranges, Content-Location, "
                              /* resumable uploads: tus, then the IETF draft's */
                              "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, "
                              "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, "
                              "Upload-Defer-Length, Upload-Complete, Upload-Limit, "
                              "Upload-Draft-Interop-Version");
}

void graced_web_nonce(char out[24])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof(r)) { /* getrandom(2) never blocks once the pool is ready */
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    for (int i = 0; i < 22; i++) { /* 128 bits, 6 a character */
        int bit = i * 6, byte = bit / 8, sh = bit % 8;
        unsigned v = (unsigned)r[byte] << 8 | (byte + 1 < 16 ? r[byte + 1] : 0);
        out[i] = b64[(v >> (10 - sh)) & 63];
    }
    out[22] = '\0';
}

void graced_web_page_csp(struct grace_request *req, const char *nonce)
{
    char v[400];
    /* nothing but what the page itself is and does: its own script and
     * style (by nonce), posting its form and XHR to this site; no frames */
    if (nonce)
        snprintf(v, sizeof(v),
                 "default-src 'none'; script-src 'nonce-%s'; style-src 'nonce-%s'; "
                 "connect-src 'self'; form-action 'self'; img-src 'self'; base-uri 'none'; "
                 "frame-ancestors 'none'", nonce, nonce);
    else
        snprintf(v, sizeof(v), "default-src 'none'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'");
    grace_response_add_header(req, "Content-Security-Policy", v);
}

/*
 * A CORS preflight (Origin and Access-Control-Request-Method) gets the
 * methods and headers graced supports for that origin: all of them for
 * --cors-write, the reads (those that change no file) for --cors. Any
 * other request: nothing. Preflights carry no credentials: this comes
 * before any login check.
 */
void graced_web_preflight(struct grace_request *req, const struct graced *g, const char *all,
                          const char *reads)
{
    if (!cors_origin(req, g) || !grace_request_header(req, "Access-Control-Request-Method"))
        return;
    grace_response_add_header(req, "Access-Control-Allow-Methods",
                              cors_may_write(req, g) ? all : reads);
    grace_response_add_header(req, "Access-Control-Allow-Headers",
                              "Authorization, Content-Type, Range, If-Range, If-None-Match, "
                              "If-Modified-Since, If-Match, If-Unmodified-Since, "
                              /* resumable uploads: tus, then the IETF draft's */
                              "Tus-Resumable, Upload-Length, Upload-Defer-Length, "
                              "Upload-Metadata, Upload-Offset, X-HTTP-Method-Override, "
                              "X-Requested-With, Upload-Complete, Upload-Draft-Interop-Version, "
                              "Content-Disposition");
    grace_response_add_header(req, "Access-Control-Max-Age", "600");
}
