/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * route.c - which handler answers a request: graced's routes on the
 * library's router (grace_server_route, which matches the decoded path),
 * each with a table of methods.
 *
 *   --health PATH   exact    GET, HEAD: 200 serving, 503 stopping; no login,
 *                            none of graced's headers but Cache-Control: no-store;
 *                            the tree's writes 409, other methods 405
 *   --metrics PATH  exact    GET, HEAD: the counters (no login: --metrics-allow);
 *                            the tree's writes 409, other methods as on the tree
 *   /               prefix   the tree: files, listings, uploads, deletes,
 *                            WebDAV (its OPTIONS says DAV: 1, 2)
 *   /.graced-tmp.uploads/  prefix  resumable uploads (resumable.c): HEAD,
 *                            PATCH, DELETE of one; they are made on the tree
 *   (no route)               "*" of "OPTIONS *", a CONNECT's host:port: the tree's
 *
 * A row is a method, maybe a condition on the request's headers (POST of a
 * form or of a raw body), flags, and a handler (a graced_cont_cb in the
 * file named for what it does); the first row of the method whose
 * condition holds is the one. Its flags say what comes before the
 * handler, in this order:
 *   - graced's headers (web.c) and the refusals of guard.c (two Origins,
 *     control bytes; for ROUTE_WHOLE Content-Range);
 *   - on graced's own paths (--health, --metrics: the route's "own"), a
 *     ROUTE_WRITE row of the tree is 409, whether the route falls back to
 *     the tree or not: no upload takes the path, no DELETE removes what it
 *     shadows (form parts named like it: form.c, graced_path_reserved);
 *   - ROUTE_WRITE: the row changes files: without --upload-dir it is off
 *     (405 "uploads are not enabled"); a page of another site may not use
 *     it (403); the login must be allowed to write;
 *   - ROUTE_UPLOAD: the body is an upload: the body limit is raised to
 *     --max-body-size before the login check, which may wait for a helper
 *     thread, so a Content-Length over it gets the library's 413 at once;
 *   - ROUTE_PUBLIC: no login (the monitors' routes, OPTIONS: a preflight
 *     carries no credentials); otherwise graced_authorize() first.
 * A method no row has (or only rows that are off) is 405. Allow, OPTIONS
 * and the CORS preflight's methods are the rows' methods, in their order:
 * a method is added by adding rows, and nothing else lists methods (the
 * preflight's Access-Control-Allow-Headers is web.c's list).
 */
#include "graced.h"

#include <stdio.h>
#include <string.h>

#define ROUTE_WRITE 1   /* changes files: --upload-dir, an Origin that may write, a write login */
#define ROUTE_UPLOAD 2  /* takes an upload's body: --max-body-size, before the login */
#define ROUTE_WHOLE 4   /* the body becomes one file whole: no Content-Range */
#define ROUTE_PUBLIC 8  /* no login */
#define ROUTE_OPTIONS 16 /* the answer is the route's methods: Allow, the preflight's */

struct row {
    const char *method;
    int (*when)(struct grace_request *req); /* NULL: always */
    unsigned flags;
    graced_cont_cb handler; /* NULL for ROUTE_OPTIONS */
};

struct route {
    const struct row *rows;
    size_t nrows;
    const struct route *next; /* methods it has no row for: the rows there */
    int bare;                 /* none of graced's headers or refusals (--health) */
    const char *own;          /* graced's own path: the option; the tree's writes 409 */
    /* OPTIONS: what else it tells (resumable uploads' limits) */
    void (*options)(struct grace_request *req, const struct graced *g);
};

#define ROWS(r) (r), sizeof(r) / sizeof((r)[0])

static const struct row tree_rows[] = {
    {"GET", NULL, 0, graced_serve_file},
    {"HEAD", NULL, 0, graced_serve_file},
    {"PUT", graced_is_ietf_create, ROUTE_WRITE | ROUTE_UPLOAD | ROUTE_WHOLE,
     graced_resumable_create},
    {"PUT", NULL, ROUTE_WRITE | ROUTE_UPLOAD | ROUTE_WHOLE, graced_upload},
    {"POST", graced_is_tus_create, ROUTE_WRITE | ROUTE_UPLOAD, graced_resumable_create},
    {"POST", graced_is_ietf_create, ROUTE_WRITE | ROUTE_UPLOAD | ROUTE_WHOLE,
     graced_resumable_create},
    {"POST", graced_is_multipart, ROUTE_WRITE | ROUTE_UPLOAD, graced_form_upload},
    {"POST", NULL, ROUTE_WRITE | ROUTE_UPLOAD | ROUTE_WHOLE, graced_upload},
    {"DELETE", NULL, ROUTE_WRITE, graced_delete},
    {"OPTIONS", NULL, ROUTE_PUBLIC | ROUTE_OPTIONS, NULL},
    /* WebDAV (RFC 4918 class 1 and 2) */
    {"PROPFIND", NULL, 0, graced_propfind},
    {"PROPPATCH", NULL, ROUTE_WRITE, graced_proppatch},
    {"MKCOL", NULL, ROUTE_WRITE, graced_mkcol},
    {"COPY", NULL, ROUTE_WRITE, graced_copymove},
    {"MOVE", NULL, ROUTE_WRITE, graced_copymove},
    {"LOCK", NULL, ROUTE_WRITE, graced_lock},
    {"UNLOCK", NULL, ROUTE_WRITE, graced_unlock},
};
static const struct route tree = {ROWS(tree_rows), NULL, 0, NULL, graced_resumable_options};

#define URL_UPLOADS "/" GRACED_PARTIAL_DIR "/"

/* One resumable upload (its URL: URL_UPLOADS and its id). HEAD is a
 * write: only the login that may go on with it learns its offset. */
static const struct row uploads_rows[] = {
    {"HEAD", NULL, ROUTE_WRITE, graced_resumable_head},
    {"PATCH", NULL, ROUTE_WRITE | ROUTE_UPLOAD, graced_resumable_patch},
    {"POST", graced_is_patch_override, ROUTE_WRITE | ROUTE_UPLOAD, graced_resumable_patch},
    {"DELETE", NULL, ROUTE_WRITE, graced_resumable_delete},
    {"OPTIONS", NULL, ROUTE_PUBLIC | ROUTE_OPTIONS, NULL},
};
static const struct route uploads = {ROWS(uploads_rows), NULL, 0, NULL, graced_resumable_options};

static const struct row metrics_rows[] = {
    {"GET", NULL, ROUTE_PUBLIC, graced_metrics_serve},
    {"HEAD", NULL, ROUTE_PUBLIC, graced_metrics_serve},
};
static const struct route metrics = {ROWS(metrics_rows), &tree, 0, "--metrics", NULL};

static const struct row health_rows[] = {
    {"GET", NULL, ROUTE_PUBLIC, graced_health_serve},
    {"HEAD", NULL, ROUTE_PUBLIC, graced_health_serve},
};
static const struct route health = {ROWS(health_rows), NULL, 1, "--health", NULL};

/* A row that exists but is off here: writes without --upload-dir. */
static int row_off(const struct row *w, const struct graced *g)
{
    return (w->flags & ROUTE_WRITE) && !g->o.upload_dir;
}

/* The row for this request, or NULL: the first of its method whose
 * condition holds, on this route or the ones it falls back to. */
static const struct row *find(const struct route *rt, struct grace_request *req)
{
    const char *m = grace_request_method(req);
    for (; rt; rt = rt->next) {
        int has = 0;
        for (size_t i = 0; i < rt->nrows; i++) {
            const struct row *w = &rt->rows[i];
            if (strcmp(w->method, m))
                continue;
            has = 1;
            if (!w->when || w->when(req))
                return w;
        }
        if (has)
            return NULL; /* the method is this route's: never the next one's */
    }
    return NULL;
}

/* Is method one of the list ("GET, HEAD")? */
static int listed(const char *list, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = list; (p = strstr(p, method)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The methods of the rows that are on, in order, each once, ", "
 * between: all of them, or (reads) only those that change no file. */
static void methods(const struct route *rt, const struct graced *g, int reads, char *out,
                    size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (; rt; rt = rt->next)
        for (size_t i = 0; i < rt->nrows; i++) {
            const struct row *w = &rt->rows[i];
            size_t add = strlen(w->method) + 2;
            if (row_off(w, g) || (reads && (w->flags & ROUTE_WRITE)) || listed(out, w->method) ||
                len + add >= n)
                continue;
            len += (size_t)snprintf(out + len, n - len, "%s%s", len ? ", " : "", w->method);
        }
}

/* OPTIONS: Allow, and for a CORS preflight the methods that origin may
 * use (web.c: writes only for --cors-write). */
static void options(struct grace_request *req, struct graced *g, const struct route *rt)
{
    char all[256], reads[256];
    methods(rt, g, 0, all, sizeof(all));
    methods(rt, g, 1, reads, sizeof(reads));
    graced_web_preflight(req, g, all, reads);
    grace_response_add_header(req, "Allow", all);
    if (listed(all, "PROPFIND")) { /* WebDAV: class 2 when LOCK is on */
        grace_response_add_header(req, "DAV", listed(all, "LOCK") ? "1, 2" : "1");
        grace_response_add_header(req, "MS-Author-Via", "DAV");
    }
    if (rt->options)
        rt->options(req, g);
    graced_reply(req, 204, NULL);
}

static void not_allowed(struct grace_request *req, struct graced *g, const struct route *rt,
                        const char *why)
{
    char all[256];
    methods(rt, g, 0, all, sizeof(all));
    grace_response_add_header(req, "Allow", all);
    graced_reply(req, 405, why);
}

/* On graced's own path, the row of the tree this method would have if it
 * writes (and uploads are on): it is refused there. */
static const struct row *own_write(const struct route *rt, const struct row *w,
                                   struct grace_request *req, const struct graced *g)
{
    if (!rt->own || (w && !(w->flags & ROUTE_WRITE)))
        return NULL;
    if (!w)
        w = find(&tree, req);
    return w && (w->flags & ROUTE_WRITE) && !row_off(w, g) ? w : NULL;
}

static void dispatch(struct grace_request *req, struct graced *g, const struct route *rt)
{
    const struct row *w = find(rt, req);
    int off = w && row_off(w, g);

    if (!rt->bare) {
        graced_web_headers(req, g); /* HSTS, Server, nosniff, framing, CORS */
        if (graced_guard(req, w && !off && (w->flags & ROUTE_WHOLE)))
            return;
    }
    if (own_write(rt, w, req, g)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "this path is graced's %s: no file may take it\n", rt->own);
        graced_reply(req, 409, msg);
        return;
    }
    if (!w || off) {
        not_allowed(req, g, rt, off ? "uploads are not enabled\n" : "method not allowed\n");
        return;
    }
    if (w->flags & ROUTE_OPTIONS) {
        options(req, g, rt);
        return;
    }
    if ((w->flags & ROUTE_WRITE) && !graced_web_write_origin_ok(req, g)) {
        graced_reply(req, 403, "a page from another site may not write here\n");
        return;
    }
    if (w->flags & ROUTE_UPLOAD) {
        /* uploads raise the small server-wide body limit for themselves,
         * before the (possibly asynchronous) login check: a handler that
         * returns unanswered gets the library's 413 over its limit */
        grace_request_set_max_body(req, (uint64_t)g->o.max_body);
        if (grace_request_content_length(req) > g->o.max_body)
            return; /* that 413, before any login check */
    }
    if (w->flags & ROUTE_PUBLIC)
        w->handler(req, g);
    else /* --private: reads too; writes: the token or a user who may write */
        graced_authorize(req, g, (w->flags & ROUTE_WRITE) != 0, w->handler);
}

static void on_tree(struct grace_request *req, void *arg)
{
    dispatch(req, arg, &tree);
}

static void on_uploads(struct grace_request *req, void *arg)
{
    dispatch(req, arg, &uploads);
}

static void on_metrics(struct grace_request *req, void *arg)
{
    dispatch(req, arg, &metrics);
}

/* Before anything that could refuse (a login, the Origin check): a probe
 * never needs credentials, and it reveals nothing but "up". */
static void on_health(struct grace_request *req, void *arg)
{
    grace_response_add_header(req, "Cache-Control", "no-store");
    dispatch(req, arg, &health);
}

int graced_routes_add(struct graced *g)
{
    int rc = 0;
    /* exact routes first: a --health that is also --metrics is --health */
    if (g->o.health_path)
        rc = grace_server_route(g->srv, NULL, g->o.health_path, GRACE_ROUTE_EXACT, on_health, g);
    if (!rc && g->o.metrics_path)
        rc = grace_server_route(g->srv, NULL, g->o.metrics_path, GRACE_ROUTE_EXACT, on_metrics, g);
    if (!rc)
        rc = grace_server_route(g->srv, NULL, URL_UPLOADS, GRACE_ROUTE_PREFIX, on_uploads, g);
    if (!rc)
        rc = grace_server_route(g->srv, NULL, "/", GRACE_ROUTE_PREFIX, on_tree, g);
    if (!rc)
        grace_server_set_handler(g->srv, on_tree, g);
    return rc;
}
