/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * web.c - the web's conventions around graced's answers: the Server header
 * (--no-server-header), CORS (--cors ORIGIN: Access-Control-Allow-Origin on
 * answers, preflight OPTIONS), and precompressed siblings (--precompressed:
 * "a.js.br" or "a.js.gz" for "a.js" when the client accepts that encoding).
 * --cache-control is added by files.c to static files.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The configured origin that matches the request's Origin, or NULL. */
static const char *cors_origin(struct grace_request *req, const struct graced *g)
{
    const char *origin = grace_request_header(req, "Origin");
    if (!g->o.ncors || !origin)
        return NULL;
    for (int i = 0; i < g->o.ncors; i++) {
        if (!strcmp(g->o.cors[i], "*"))
            return "*";
        if (!strcasecmp(g->o.cors[i], origin))
            return origin;
    }
    return NULL;
}

/*
 * May this request change files, as far as its Origin says? A browser sends
 * Origin with every POST, PUT and DELETE; a page of another site must not
 * write here on the user's behalf (a POST with a text/plain body needs no
 * preflight, so CORS alone does not stop it). Without Origin (curl, scripts)
 * yes; "null" (sandboxed frames, file: pages) no; else the same origin as
 * the Host the request was sent to, or one named with --cors.
 */
int graced_web_write_origin_ok(struct grace_request *req, const struct graced *g)
{
    const char *o = grace_request_header(req, "Origin"), *h = grace_request_header(req, "Host");
    if (!o)
        return 1;
    if (!strcmp(o, "null"))
        return 0;
    if (cors_origin(req, g))
        return 1;
    o = !strncmp(o, "http://", 7) ? o + 7 : !strncmp(o, "https://", 8) ? o + 8 : NULL;
    return o && h && !strcasecmp(o, h);
}

static int uploads_on(const struct graced *g)
{
    return g->o.upload_dir != NULL;
}

void graced_web_headers(struct grace_request *req, const struct graced *g)
{
    const char *origin;
    if (!g->o.no_server_header)
        grace_response_add_header(req, "Server", "graced");
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
                              "Accept-Ranges");
}

/*
 * OPTIONS: a CORS preflight (Origin and Access-Control-Request-Method) gets
 * the methods and headers graced supports; any other OPTIONS the Allow list.
 * Preflights carry no credentials, so this comes before any login check.
 */
int graced_web_options(struct grace_request *req, const struct graced *g)
{
    const char *methods = uploads_on(g) ? "GET, HEAD, PUT, POST, OPTIONS" : "GET, HEAD, OPTIONS";
    if (strcmp(grace_request_method(req), "OPTIONS"))
        return 0;
    if (cors_origin(req, g) && grace_request_header(req, "Access-Control-Request-Method")) {
        grace_response_add_header(req, "Access-Control-Allow-Methods", methods);
        grace_response_add_header(req, "Access-Control-Allow-Headers",
                                  "Authorization, Content-Type, Range, If-Range, If-None-Match, "
                                  "If-Modified-Since, If-Match, If-Unmodified-Since");
        grace_response_add_header(req, "Access-Control-Max-Age", "600");
    }
    grace_response_add_header(req, "Allow", methods);
    graced_reply(req, 204, NULL);
    return 1;
}

/*
 * q-value of coding in an Accept-Encoding value: 1000 for "q=1", 0 if
 * absent or refused. "*" stands for codings not named.
 */
static int accept_q(const char *ae, const char *coding, const char *alias)
{
    int star = 0, found = -1;
    const char *p = ae;
    while (*p) {
        size_t n;
        int q = 1000;
        const char *semi, *end;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        end = p + strcspn(p, ",");
        n = strcspn(p, ";, \t");
        semi = memchr(p, ';', (size_t)(end - p));
        if (semi) { /* ;q=0.5 */
            const char *qp = semi + 1;
            while (*qp == ' ')
                qp++;
            if ((*qp == 'q' || *qp == 'Q') && qp[1] == '=') {
                double v = strtod(qp + 2, NULL);
                q = v <= 0 ? 0 : v >= 1 ? 1000 : (int)(v * 1000 + 0.5);
                if (q == 0 && v > 0)
                    q = 1;
            }
        }
        if ((n == strlen(coding) && !strncasecmp(p, coding, n)) ||
            (alias && n == strlen(alias) && !strncasecmp(p, alias, n)))
            found = q;
        else if (n == 1 && *p == '*')
            star = q;
        p = end;
    }
    return found >= 0 ? found : star;
}

int graced_web_precompressed(struct grace_request *req, struct graced *g, const char *rel,
                             const char **enc)
{
    static const struct {
        const char *coding, *alias, *ext;
    } codings[] = {{"br", NULL, ".br"}, {"gzip", "x-gzip", ".gz"}};
    const char *ae = grace_request_header(req, "Accept-Encoding");
    char alt[4200];
    if (!g->o.precompressed || !ae || !rel[0])
        return -1;
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        struct stat sb;
        int fd;
        if (!accept_q(ae, codings[i].coding, codings[i].alias))
            continue;
        if ((size_t)snprintf(alt, sizeof(alt), "%s%s", rel, codings[i].ext) >= sizeof(alt))
            return -1;
        /* confined below the root like the file itself */
        if ((fd = graced_open_beneath(g, alt)) < 0)
            continue;
        if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
            close(fd);
            continue;
        }
        *enc = codings[i].coding;
        return fd;
    }
    return -1;
}
