/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lock.c - WebDAV LOCK and UNLOCK in the upload tree (the table is
 * locktab.c's, shared by every worker).
 *
 * LOCK with a DAV:lockinfo body takes an exclusive or shared write lock,
 * Depth 0 or infinity (the default), for the Timeout asked ("Second-N",
 * "Infinite") up to --dav-lock-timeout; a lock that conflicts is 423. A
 * LOCK of a name that does not exist yet creates an empty file there (RFC
 * 4918 7.3), through store.c like any upload: 201. LOCK without a body
 * refreshes the lock whose token the If header names (412 if none of
 * them is a lock here). UNLOCK removes the lock named in Lock-Token, if it
 * is one on this path (else 409, DAV:lock-token-matches-request-uri).
 *
 * Locks belong to their token, not to a login: whoever holds the token may
 * use it (as with most servers; the login still decides who may write).
 */
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct lk {
    struct graced *g;
    struct grace_request *req;
    struct graced_store *store; /* a lock on a new name: its empty file */
    int running, finished, ended;
    int shared, infinite;
    int64_t timeout_s;
    char token[GRACED_LOCK_TOKEN];
    char owner[GRACED_LOCK_OWNER];
    char rel[4096];
};

void graced_lock_xml(struct evbuffer *o, const struct graced_lock *l)
{
    char enc[3 * GRACED_LOCK_PATH + 2];
    enc[0] = '/';
    graced_path_encode(l->root, enc + 1, sizeof(enc) - 1);
    evbuffer_add_printf(o, "<D:activelock><D:locktype><D:write/></D:locktype>"
                           "<D:lockscope><D:%s/></D:lockscope><D:depth>%s</D:depth>",
                        l->shared ? "shared" : "exclusive", l->infinite ? "infinity" : "0");
    if (l->owner[0])
        evbuffer_add_printf(o, "<D:owner>%s</D:owner>", l->owner);
    evbuffer_add_printf(o, "<D:timeout>Second-%lld</D:timeout>"
                           "<D:locktoken><D:href>%s</D:href></D:locktoken>"
                           "<D:lockroot><D:href>%s</D:href></D:lockroot></D:activelock>",
                        (long long)(l->left_s > 0 ? l->left_s : 0), l->token, enc);
}

/* Timeout: "Second-N" or "Infinite", the first this server takes, capped. */
static int64_t timeout_of(const struct graced *g, const char *h)
{
    int64_t cap = g->o.dav_lock_timeout_ms / 1000;
    if (cap < 1)
        cap = 1;
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!strncasecmp(p, "Infinite", 8))
            return cap;
        if (!strncasecmp(p, "Second-", 7)) {
            char *end;
            long long v = strtoll(p + 7, &end, 10);
            if (end > p + 7 && v > 0)
                return v < cap ? v : cap;
        }
        p = strchr(p, ',');
    }
    return cap;
}

static int answer_cb(const struct graced_lock *l, void *arg)
{
    graced_lock_xml(arg, l);
    return 1;
}

/* 200 or 201 with the lock's discovery (and its token, for a new one). */
static void answer(struct lk *k, int status)
{
    struct evbuffer *b = evbuffer_new();
    char hdr[GRACED_LOCK_TOKEN + 2];
    if (!b) {
        graced_reply(k->req, 500, "out of memory\n");
        return;
    }
    evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                           "<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>");
    graced_locktab_refresh(k->g, k->rel, k->token, strlen(k->token), k->timeout_s, answer_cb, b);
    evbuffer_add_printf(b, "</D:lockdiscovery></D:prop>\n");
    snprintf(hdr, sizeof(hdr), "<%s>", k->token);
    grace_response_add_header(k->req, "Lock-Token", hdr);
    grace_response_add_header(k->req, "Content-Type", "application/xml; charset=utf-8");
    grace_reply_buffer(k->req, status, b);
    evbuffer_free(b);
}

static void lk_free(struct lk *k)
{
    graced_store_abandon(k->store);
    free(k);
}

static void lk_end(struct lk *k)
{
    if (!k->ended) { /* the client left first: complete our side */
        k->ended = 1;
        if (k->store && k->token[0]) /* the new file will not be: nor its lock */
            graced_locktab_remove(k->g, k->rel, k->token, strlen(k->token));
        grace_reply(k->req, 500, NULL, 0);
    }
    lk_free(k);
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct lk *k = arg;
    (void)req;
    k->finished = 1;
    if (!err)
        k->ended = 1;
    if (!k->running)
        lk_end(k);
}

static void hold(struct lk *k)
{
    k->running++;
}

static void release(struct lk *k)
{
    if (--k->running == 0 && k->finished)
        lk_end(k);
}

/* The empty file of a lock on a new name is in place (or not). */
static void created(const struct graced_store_result *r, void *arg)
{
    struct lk *k = arg;
    k->store = NULL;
    hold(k);
    if (r->err && r->err != EEXIST) {
        graced_locktab_remove(k->g, k->rel, k->token, strlen(k->token));
        graced_reply(k->req, r->err == EISDIR ? 409 : graced_errno_status(r->err),
                     "could not create the locked file\n");
    } else {
        graced_files_forget(k->g, k->rel);
        answer(k, r->err == EEXIST ? 200 : 201);
    }
    release(k);
}

static int read_lockinfo(struct lk *k, struct evbuffer *body)
{
    struct graced_xml_doc *doc;
    struct graced_xml *root, *scope, *owner;
    struct evbuffer *o;
    size_t len = evbuffer_get_length(body);
    int st = 0;
    if (graced_xml_parse((const char *)evbuffer_pullup(body, -1), len, &doc, &root) < 0)
        return 400;
    scope = graced_xml_child(root, "DAV:", "lockscope");
    if (!graced_xml_is(root, "DAV:", "lockinfo") || !scope ||
        !graced_xml_child(graced_xml_child(root, "DAV:", "locktype"), "DAV:", "write"))
        st = 400;
    else if (graced_xml_child(scope, "DAV:", "shared"))
        k->shared = 1;
    else if (!graced_xml_child(scope, "DAV:", "exclusive"))
        st = 400;
    if (!st && (owner = graced_xml_child(root, "DAV:", "owner")) && (o = evbuffer_new())) {
        for (struct graced_xml *c = owner->child; c; c = c->next)
            if (c->name)
                graced_xml_write(o, c);
            else
                graced_xml_esc(o, c->text, strlen(c->text));
        if (evbuffer_get_length(o) >= sizeof(k->owner))
            st = 400;
        else
            evbuffer_remove(o, k->owner, evbuffer_get_length(o));
        evbuffer_free(o);
    }
    graced_xml_free(doc);
    return st;
}

/* LOCK with no body: refresh the lock the If header names. */
static void refresh(struct lk *k)
{
    const char *h = grace_request_header(k->req, "If");
    struct graced_if ifh;
    if (!h || graced_if_parse(h, &ifh) < 0) {
        graced_reply(k->req, 400, "a LOCK without a body refreshes the lock named in If\n");
        return;
    }
    for (int i = 0; i < ifh.n; i++) {
        const struct graced_if_cond *c = &ifh.c[i];
        if (c->etag || c->not || c->len >= sizeof(k->token))
            continue;
        memcpy(k->token, c->s, c->len);
        k->token[c->len] = '\0';
        if (graced_locktab_holds(k->g, k->rel, k->token, c->len)) {
            answer(k, 200);
            return;
        }
    }
    graced_dav_error(k->req, 412, "lock-token-matches-request-uri", NULL);
}

static void on_body(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct lk *k = arg;
    const char *leaf = strrchr(k->rel, '/');
    struct stat st;
    int dirfd, rc, exists;
    (void)req;
    hold(k);
    if (!body || !evbuffer_get_length(body)) {
        refresh(k);
        goto out;
    }
    if ((rc = read_lockinfo(k, body))) {
        graced_reply(k->req, rc, "the LOCK body is not a DAV:lockinfo for a write lock "
                                 "(or its owner is over 511 bytes)\n");
        goto out;
    }
    if (graced_dav_check(k->req, k->g, k->rel, GRACED_LOCK_PARENT, NULL, 0))
        goto out;
    dirfd = graced_path_open_dir(k->g->upload_fd, k->rel, leaf ? (size_t)(leaf - k->rel) : 0, 0);
    if (dirfd < 0) {
        rc = graced_errno_status(dirfd);
        graced_reply(k->req, rc == 404 ? 409 : rc, rc == 404 ? "the folder does not exist\n"
                                                             : "cannot reach that path\n");
        goto out;
    }
    exists = !k->rel[0] || fstatat(dirfd, leaf ? leaf + 1 : k->rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
    rc = graced_locktab_add(k->g, k->rel, k->shared, k->infinite, k->timeout_s, k->owner,
                            k->token);
    if (rc < 0) {
        close(dirfd);
        if (rc == -EBUSY)
            graced_dav_error(k->req, 423, "no-conflicting-lock", k->rel);
        else if (rc == -ENOSPC)
            graced_reply(k->req, 503, "too many locks held (--dav-locks)\n");
        else
            graced_reply(k->req, 400, "path too long to lock\n");
        goto out;
    }
    if (exists) {
        close(dirfd);
        answer(k, 200);
        goto out;
    }
    /* an unmapped name: an empty file, stored as any upload is */
    rc = graced_store_open(k->g, dirfd, leaf ? leaf + 1 : k->rel, &k->store);
    close(dirfd);
    if (rc == 0 && leaf) { /* its folder may be new too (an upload on its way) */
        char dir[sizeof(k->rel)];
        snprintf(dir, sizeof(dir), "%.*s", (int)(leaf - k->rel), k->rel);
        rc = graced_store_path(k->store, dir);
    }
    if (rc >= 0)
        grace_request_hold_stop(k->req); /* no 503 at a stop's deadline for a stored file */
    if (rc < 0 || graced_store_commit(k->store, 1, NULL, created, k) < 0) {
        graced_store_abandon(k->store);
        k->store = NULL;
        graced_locktab_remove(k->g, k->rel, k->token, strlen(k->token));
        graced_reply(k->req, 500, "could not create the locked file\n");
    }
out:
    release(k);
}

void graced_lock(struct grace_request *req, struct graced *g)
{
    const char *depth = grace_request_header(req, "Depth");
    struct lk *k;
    int st, trailing;

    if (!(k = calloc(1, sizeof(*k)))) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    k->g = g;
    k->req = req;
    k->infinite = !depth || !strcasecmp(depth, "infinity");
    k->timeout_s = timeout_of(g, grace_request_header(req, "Timeout"));
    if ((st = graced_path_of(req, k->rel, sizeof(k->rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, "bad path\n");
        free(k);
        return;
    }
    if (depth && !k->infinite && strcmp(depth, "0")) {
        graced_reply(req, 400, "Depth: 0 or infinity\n");
        free(k);
        return;
    }
    if (graced_path_reserved(g, k->rel)) {
        graced_reply(req, 409, "this path is graced's --metrics\n");
        free(k);
        return;
    }
    grace_request_on_finish(req, on_finish, k);
    hold(k);
    if (grace_request_content_length(req) == 0 && !grace_request_is_chunked(req))
        on_body(req, NULL, k);
    else if (grace_request_collect_body(req, GRACED_OTHER_BODY, on_body, k) < 0)
        graced_reply(req, 413, "a LOCK body takes 64 KiB at most\n");
    release(k);
}

void graced_unlock(struct grace_request *req, struct graced *g)
{
    const char *h = grace_request_header(req, "Lock-Token");
    char rel[4096];
    size_t n;
    int st, trailing;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, "bad path\n");
        return;
    }
    while (h && (*h == ' ' || *h == '\t'))
        h++;
    if (!h || *h != '<' || !strchr(h, '>')) {
        graced_reply(req, 400, "UNLOCK needs Lock-Token: <token>\n");
        return;
    }
    n = (size_t)(strchr(h, '>') - h - 1);
    if (graced_locktab_remove(g, rel, h + 1, n) < 0) {
        graced_dav_error(req, 409, "lock-token-matches-request-uri", NULL);
        return;
    }
    graced_reply(req, 204, NULL);
}
