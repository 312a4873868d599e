/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * davcond.c - what a WebDAV write must satisfy before it touches a file:
 * the If header (RFC 4918 10.4: lock tokens and ETags, 412 when it does not
 * hold) and the locks on what it changes (423 Locked, with the lock's root
 * in DAV:lock-token-submitted, unless the request names one of its tokens).
 *
 * Every write calls graced_dav_check() with the paths it changes and how:
 * the file itself (a lock on it or, depth infinity, on a folder above), its
 * folder (a new or removed member changes the folder: a depth-0 lock there
 * counts), what a folder holds (DELETE, MOVE, a replaced folder). PUT, the
 * form upload and DELETE call it as PROPPATCH, MKCOL, COPY and MOVE do, so
 * a lock holds against every way of writing. Without an If header and
 * without a lock in the table it costs nothing.
 */
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ctx {
    struct graced *g;
    struct grace_request *req;
    const struct graced_if *ifh; /* NULL: no If header */
    const char *missing;         /* a lock's root whose token was not submitted */
    char missing_buf[GRACED_LOCK_PATH];
    int any, ok;
};

/* The ETag of rel in the upload tree, or 0 (none: missing, a folder). */
static int etag_of(struct graced *g, const char *rel, char *etag, size_t n)
{
    const char *leaf = strrchr(rel, '/');
    struct stat st;
    int dirfd, rc;
    if (!rel[0])
        return 0;
    dirfd = graced_path_open_dir(g->upload_fd, rel, leaf ? (size_t)(leaf - rel) : 0, 0);
    if (dirfd < 0)
        return 0;
    rc = fstatat(dirfd, leaf ? leaf + 1 : rel, &st, AT_SYMLINK_NOFOLLOW);
    close(dirfd);
    if (rc < 0 || !S_ISREG(st.st_mode))
        return 0;
    graced_etag(&st, etag, n);
    return 1;
}

/* Does one condition hold for the resource it applies to? */
static int cond_holds(struct ctx *x, const char *rel, const struct graced_if_cond *c)
{
    char path[4096], etag[64];
    int trailing, v;
    if (c->tag) { /* a tagged list: its resource, if it is one of ours */
        if (graced_path_uri(x->req, c->tag, c->taglen, path, sizeof(path),
                            graced_path_flags(x->g, 1), &trailing))
            return c->not;
        rel = path;
    }
    if (c->etag)
        v = etag_of(x->g, rel, etag, sizeof(etag)) && strlen(etag) == c->len &&
            !memcmp(etag, c->s, c->len);
    else
        v = graced_locktab_holds(x->g, rel, c->s, c->len);
    return c->not ? !v : v;
}

/* Was this lock's token submitted (named anywhere in the If header)? */
static int submitted(const struct ctx *x, const char *token)
{
    size_t n = strlen(token);
    for (int i = 0; x->ifh && i < x->ifh->n; i++) {
        const struct graced_if_cond *c = &x->ifh->c[i];
        if (!c->etag && c->len == n && !memcmp(c->s, token, n))
            return 1;
    }
    return 0;
}

/* One lock on the resource: any one of them, submitted, is enough. */
static int on_cover(const struct graced_lock *l, void *arg)
{
    struct ctx *x = arg;
    x->any = 1;
    if (submitted(x, l->token))
        x->ok = 1;
    else if (!x->missing_buf[0])
        snprintf(x->missing_buf, sizeof(x->missing_buf), "%s", l->root);
    return 0;
}

/* A lock below a folder that goes: each must be submitted. */
static int on_below(const struct graced_lock *l, void *arg)
{
    struct ctx *x = arg;
    if (submitted(x, l->token))
        return 0;
    snprintf(x->missing_buf, sizeof(x->missing_buf), "%s", l->root);
    x->missing = x->missing_buf;
    return 1;
}

/* 0, or 1 with x->missing set: a lock on path whose token is missing. */
static int locked(struct ctx *x, const char *path, unsigned what)
{
    char parent[4096];
    const char *slash;
    if (what & GRACED_LOCK_SELF) {
        x->any = x->ok = 0;
        x->missing_buf[0] = '\0';
        graced_locktab_find(x->g, path, GRACED_LOCK_SELF, on_cover, x);
        if (x->any && !x->ok)
            return (x->missing = x->missing_buf), 1;
    }
    if ((what & GRACED_LOCK_PARENT) && path[0]) {
        slash = strrchr(path, '/');
        snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 0, path);
        x->any = x->ok = 0;
        x->missing_buf[0] = '\0';
        graced_locktab_find(x->g, parent, GRACED_LOCK_SELF, on_cover, x);
        if (x->any && !x->ok)
            return (x->missing = x->missing_buf), 1;
    }
    if (what & GRACED_LOCK_BELOW) {
        graced_locktab_find(x->g, path, GRACED_LOCK_BELOW, on_below, x);
        if (x->missing)
            return 1;
    }
    return 0;
}

void graced_dav_error(struct grace_request *req, int status, const char *cond, const char *href)
{
    struct evbuffer *b = evbuffer_new();
    char enc[3 * 4096 + 2];
    if (!b) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                           "<D:error xmlns:D=\"DAV:\"><D:%s", cond);
    if (href) {
        enc[0] = '/';
        graced_path_encode(href, enc + 1, sizeof(enc) - 1);
        evbuffer_add_printf(b, "><D:href>%s</D:href></D:%s>", enc, cond);
    } else {
        evbuffer_add(b, "/>", 2);
    }
    evbuffer_add_printf(b, "</D:error>\n");
    grace_response_add_header(req, "Content-Type", "application/xml; charset=utf-8");
    grace_reply_buffer(req, status, b);
    evbuffer_free(b);
}

int graced_dav_test(struct grace_request *req, struct graced *g, const char *rel,
                    unsigned what, const char *dest, unsigned dest_what, char *root, size_t n)
{
    const char *h = grace_request_header(req, "If");
    struct graced_if ifh;
    struct ctx x;
    int holds = 0;

    if (!h && !graced_locktab_active(g))
        return 0;
    memset(&x, 0, sizeof(x));
    x.g = g;
    x.req = req;
    if (h) {
        if (graced_if_parse(h, &ifh) < 0)
            return 400;
        x.ifh = &ifh;
        for (int l = 0; l < ifh.nlists && !holds; l++) {
            holds = 1;
            for (int i = 0; i < ifh.n; i++)
                if (ifh.c[i].list == l && !cond_holds(&x, rel, &ifh.c[i]))
                    holds = 0;
        }
        if (!holds)
            return 412;
    }
    if (locked(&x, rel, what) || (dest && locked(&x, dest, dest_what))) {
        if (root && n)
            snprintf(root, n, "%s", x.missing);
        return 423;
    }
    return 0;
}

int graced_dav_check(struct grace_request *req, struct graced *g, const char *rel,
                     unsigned what, const char *dest, unsigned dest_what)
{
    char root[GRACED_LOCK_PATH];
    int st = graced_dav_test(req, g, rel, what, dest, dest_what, root, sizeof(root));
    if (st == 400)
        graced_reply(req, 400, "malformed If header\n");
    else if (st == 412)
        graced_reply(req, 412, "precondition failed: the If header does not hold\n");
    else if (st == 423)
        graced_dav_error(req, 423, "lock-token-submitted", root);
    return st != 0;
}
