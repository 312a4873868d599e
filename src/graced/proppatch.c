/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proppatch.c - WebDAV PROPPATCH: set and remove dead properties of a file
 * or folder in the upload tree (kept by props.c).
 *
 * All or nothing (RFC 4918 9.2): the instructions are taken in document
 * order, and either every one is done or none is. A property in the DAV:
 * namespace is live, this server's: 403 (cannot-modify-protected-property)
 * and the others 424. Past --dav-props-max bytes (or on a filesystem
 * without user attributes) the properties set are 507 and the others 424.
 * The new set of properties replaces the old in one attribute write, under
 * an flock of the file (two PROPPATCHes from two workers do not lose one
 * another's), then the file is fsync'ed: all of it on the pool.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PP_MAX_OPS 256

struct op {
    const char *ns, *name;
    char *xml;   /* set: the element, standing alone; NULL: remove */
    int last;    /* the last instruction for this name: the one that counts */
};

struct pp {
    struct graced *g;
    int fd;
    struct graced_xml_doc *doc;
    struct op ops[PP_MAX_OPS];
    int nops;
    size_t max;
    int protected_; /* a DAV: property was named: nothing is done */
    int err;        /* the job's: 0, E2BIG (over the bound), ENOTSUP, ... */
    char rel[4096];
};

static int same(const struct op *a, const char *ns, const char *name)
{
    return !strcmp(a->ns, ns) && !strcmp(a->name, name);
}

static void pp_work(void *arg)
{
    struct pp *p = arg;
    size_t max = p->max, len = 0, pos = 0;
    char *old = malloc(max + 1), *nw = malloc(max + 1);
    const char *ns, *name, *xml;
    ssize_t n;
    if (!old || !nw) {
        p->err = ENOMEM;
        goto out;
    }
    flock(p->fd, LOCK_EX); /* against another worker's PROPPATCH of this file */
    n = graced_props_get(p->fd, old, max + 1);
    if (n < 0) { /* -ERANGE: more than the bound already (it was lowered) */
        p->err = n == -ERANGE ? E2BIG : (int)-n;
        goto unlock;
    }
    /* what stays, then the sets in order */
    while (graced_props_next(old, (size_t)n, &pos, &ns, &name, &xml)) {
        int touched = 0;
        size_t rec = strlen(ns) + strlen(name) + strlen(xml) + 3;
        for (int i = 0; i < p->nops && !touched; i++)
            touched = same(&p->ops[i], ns, name);
        if (touched)
            continue;
        if (len + rec > max) {
            p->err = E2BIG;
            goto unlock;
        }
        memcpy(nw + len, ns, rec); /* the three fields lie one after another */
        len += rec;
    }
    for (int i = 0; i < p->nops; i++) {
        const struct op *o = &p->ops[i];
        size_t rec;
        if (!o->last || !o->xml)
            continue;
        rec = strlen(o->ns) + strlen(o->name) + strlen(o->xml) + 3;
        if (len + rec > max) {
            p->err = E2BIG;
            goto unlock;
        }
        len += (size_t)sprintf(nw + len, "%s%c%s%c%s", o->ns, 0, o->name, 0, o->xml) + 1;
    }
    if ((p->err = -graced_props_set(p->fd, nw, len)) == 0 && fsync(p->fd) < 0)
        p->err = errno;
unlock:
    flock(p->fd, LOCK_UN);
out:
    free(old);
    free(nw);
}

static void prop_name(struct evbuffer *o, const char *ns, const char *name)
{
    if (!ns[0]) {
        evbuffer_add_printf(o, "<%s/>", name);
        return;
    }
    evbuffer_add_printf(o, "<%s xmlns=\"", name);
    graced_xml_esc(o, ns, strlen(ns));
    evbuffer_add_printf(o, "\"/>");
}

/* The 207: one propstat per property, each with its status. */
static void pp_answer(struct grace_request *req, struct pp *p, const char *href_rel)
{
    struct evbuffer *b = evbuffer_new();
    char enc[3 * 4096 + 2];
    if (!b) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    enc[0] = '/';
    graced_path_encode(href_rel, enc + 1, sizeof(enc) - 1);
    evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                           "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>%s</D:href>",
                        enc);
    for (int i = 0; i < p->nops; i++) {
        const struct op *o = &p->ops[i];
        const char *st = "200 OK";
        if (!o->last)
            continue;
        if (p->protected_)
            st = !strcmp(o->ns, "DAV:") ? "403 Forbidden" : "424 Failed Dependency";
        else if (p->err)
            st = o->xml && (p->err == E2BIG || p->err == ENOTSUP || p->err == ENOSPC)
                     ? "507 Insufficient Storage"
                     : "424 Failed Dependency";
        evbuffer_add_printf(b, "<D:propstat><D:prop>");
        prop_name(b, o->ns, o->name);
        evbuffer_add_printf(b, "</D:prop><D:status>HTTP/1.1 %s</D:status>", st);
        if (p->protected_ && !strcmp(o->ns, "DAV:"))
            evbuffer_add_printf(b, "<D:error><D:cannot-modify-protected-property/></D:error>");
        evbuffer_add_printf(b, "</D:propstat>");
    }
    if (p->err && !p->protected_)
        evbuffer_add_printf(b, "<D:responsedescription>%s</D:responsedescription>",
                            p->err == E2BIG ? "over --dav-props-max bytes of dead properties"
                            : p->err == ENOTSUP ? "this filesystem keeps no user attributes"
                                                : "could not store the properties");
    evbuffer_add_printf(b, "</D:response></D:multistatus>\n");
    grace_response_add_header(req, "Content-Type", "application/xml; charset=utf-8");
    grace_reply_buffer(req, 207, b);
    evbuffer_free(b);
}

static void pp_done(struct grace_request *req, struct graced *g, void *arg)
{
    struct pp *p = arg;
    (void)g;
    if (p->err && p->err != E2BIG && p->err != ENOTSUP && p->err != ENOSPC)
        graced_log(LOG_WARN, "PROPPATCH: %s", strerror(p->err));
    pp_answer(req, p, p->rel);
}

static void pp_free(void *arg)
{
    struct pp *p = arg;
    if (p->fd >= 0)
        close(p->fd);
    for (int i = 0; i < p->nops; i++)
        free(p->ops[i].xml);
    graced_xml_free(p->doc);
    free(p);
}

/* The instructions of a DAV:propertyupdate, in order. 0 or 400. */
static int read_update(struct pp *p, struct graced_xml *root)
{
    if (!graced_xml_is(root, "DAV:", "propertyupdate"))
        return 400;
    for (struct graced_xml *op = root->child; op; op = op->next) {
        int set = graced_xml_is(op, "DAV:", "set");
        if (!set && !graced_xml_is(op, "DAV:", "remove"))
            continue;
        for (struct graced_xml *pr = op->child; pr; pr = pr->next) {
            if (!graced_xml_is(pr, "DAV:", "prop"))
                continue;
            for (struct graced_xml *x = pr->child; x; x = x->next) {
                struct op *o;
                struct evbuffer *b;
                if (!x->name)
                    continue;
                if (p->nops == PP_MAX_OPS)
                    return 400;
                o = &p->ops[p->nops++];
                o->ns = x->ns;
                o->name = x->name;
                o->last = 1;
                for (int i = 0; i < p->nops - 1; i++)
                    if (same(&p->ops[i], x->ns, x->name))
                        p->ops[i].last = 0;
                if (!strcmp(x->ns, "DAV:"))
                    p->protected_ = 1;
                if (set) {
                    if (!(b = evbuffer_new()))
                        return 500;
                    graced_xml_write(b, x);
                    o->xml = calloc(1, evbuffer_get_length(b) + 1);
                    if (o->xml)
                        evbuffer_remove(b, o->xml, evbuffer_get_length(b));
                    evbuffer_free(b);
                    if (!o->xml)
                        return 500;
                }
            }
        }
    }
    return p->nops ? 0 : 400;
}

static void on_body(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct pp *p = arg;
    struct graced_xml *root;
    size_t len = evbuffer_get_length(body);
    int st;
    grace_request_on_finish(req, NULL, NULL);
    if (!len || graced_xml_parse((const char *)evbuffer_pullup(body, -1), len, &p->doc, &root) < 0 ||
        (st = read_update(p, root)) == 400) {
        graced_reply(req, 400, "the PROPPATCH body is not a DAV:propertyupdate this server "
                               "reads (well-formed XML, no DOCTYPE, 256 properties at most)\n");
        pp_free(p);
        return;
    }
    if (st) {
        graced_reply(req, 500, "out of memory\n");
        pp_free(p);
        return;
    }
    if (p->protected_) { /* nothing to do: say which and why */
        pp_answer(req, p, p->rel);
        pp_free(p);
        return;
    }
    graced_dav_run(p->g, req, pp_work, pp_done, pp_free, p);
}

static void on_gone(struct grace_request *req, int err, void *arg)
{
    if (err)
        grace_reply(req, 500, NULL, 0);
    pp_free(arg);
}

void graced_proppatch(struct grace_request *req, struct graced *g)
{
    char rel[4096];
    const char *leaf;
    int st, trailing, dirfd;
    struct pp *p;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, "bad path\n");
        return;
    }
    if (graced_dav_check(req, g, rel, GRACED_LOCK_SELF, NULL, 0))
        return;
    if (!(p = calloc(1, sizeof(*p)))) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    p->g = g;
    p->max = (size_t)g->o.dav_props_max;
    snprintf(p->rel, sizeof(p->rel), "%s", rel);
    leaf = strrchr(rel, '/');
    dirfd = graced_path_open_dir(g->upload_fd, rel, leaf ? (size_t)(leaf - rel) : 0, 0);
    leaf = leaf ? leaf + 1 : ".";
    p->fd = dirfd < 0 ? dirfd
                      : openat(dirfd, rel[0] ? leaf : ".",
                               O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (p->fd < 0) {
        st = graced_errno_status(p->fd == dirfd ? dirfd : -errno);
        graced_reply(req, st, st == 404 ? "not found\n" : "cannot reach that path\n");
        if (dirfd >= 0)
            close(dirfd);
        p->fd = -1;
        pp_free(p);
        return;
    }
    close(dirfd);
    grace_request_on_finish(req, on_gone, p);
    if (grace_request_collect_body(req, GRACED_OTHER_BODY, on_body, p) < 0) {
        grace_request_on_finish(req, NULL, NULL);
        graced_reply(req, 413, "a PROPPATCH body takes 64 KiB at most\n");
        pp_free(p);
    }
}
