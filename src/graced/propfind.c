/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * propfind.c - WebDAV PROPFIND: the properties of a file or folder below
 * --root (what GET serves), and with Depth: 1 those of each entry of a
 * folder.
 *
 * Depth: infinity (also when no Depth is given, as RFC 4918 says) is
 * refused, 403 with DAV:propfind-finite-depth: a whole tree in one answer
 * is a bomb. Depth 1 lists a folder only with --list-dirs, as GET does,
 * and the same entries a listing shows: no dot-names (unless
 * --show-hidden), no temporary files, no symbolic link that leads out of
 * the root; at most --list-max of them, after which the folder's own
 * response says 507 with DAV:number-of-matches-within-limits: a client
 * sees that the listing was cut. The multistatus is streamed
 * (grace_reply_start/chunk): a batch of entries, then the drain callback
 * when the client has read most of it, so a folder of a million entries
 * or a client that reads slowly holds a directory handle and one batch of
 * memory, never the whole answer.
 *
 * Live properties: resourcetype, getcontentlength, getcontenttype,
 * getetag (GET's ETag), getlastmodified, displayname, supportedlock,
 * lockdiscovery, and on request quota-available-bytes and quota-used-bytes
 * (RFC 4331: the filesystem's). Dead properties come from props.c.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define PF_BATCH 1024         /* entries per turn of the loop */
#define PF_CHUNK (128 * 1024) /* bytes per turn */
#define PF_MAX_PROPS 256      /* names in one <prop> */

enum { ALLPROP, PROPNAME, PROP };

/* The live properties, in the order allprop writes them; quota ones only
 * when named (RFC 4331). */
enum {
    L_RESOURCETYPE, L_DISPLAYNAME, L_GETCONTENTLENGTH, L_GETCONTENTTYPE, L_GETETAG,
    L_GETLASTMODIFIED, L_SUPPORTEDLOCK, L_LOCKDISCOVERY, L_QUOTA_AVAIL, L_QUOTA_USED, L__N
};
static const char *const live_names[L__N] = {
    "resourcetype",   "displayname",    "getcontentlength",      "getcontenttype",
    "getetag",        "getlastmodified", "supportedlock",        "lockdiscovery",
    "quota-available-bytes", "quota-used-bytes"};

struct pf {
    struct graced *g;
    struct grace_request *req;
    struct graced_xml_doc *doc;
    struct graced_xml *prop; /* PROP: the names asked for */
    int mode, depth;
    int fd;                  /* the target, below the root */
    DIR *dir;                /* Depth 1: its entries, read a batch at a time */
    size_t n;
    struct evbuffer *out;
    struct evbuffer *ok, *missing; /* one response's propstats, reused */
    int live[PF_MAX_PROPS];  /* PROP: each name's live property, or -1 */
    time_t date_t;           /* the last getlastmodified written, */
    char date[40];           /* as text: folders share their seconds */
    char *props;             /* a buffer for dead properties */
    size_t props_max;
    int running, finished, err, started, ended;
    char rel[4096];
};

static void pf_free(struct pf *p)
{
    if (p->dir)
        closedir(p->dir);
    if (p->fd >= 0)
        close(p->fd);
    if (p->out)
        evbuffer_free(p->out);
    if (p->ok)
        evbuffer_free(p->ok);
    if (p->missing)
        evbuffer_free(p->missing);
    graced_xml_free(p->doc);
    free(p->props);
    free(p);
}

/* The request ended; if that was not our reply's end, complete our side so
 * that the library lets it go. */
static void pf_end(struct pf *p)
{
    if (!p->ended) {
        p->ended = 1;
        if (p->started)
            grace_reply_end(p->req);
        else
            grace_reply(p->req, 500, NULL, 0);
    }
    pf_free(p);
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct pf *p = arg;
    (void)req;
    p->finished = 1;
    p->err = err;
    if (!err)
        p->ended = 1; /* our reply was completed */
    if (!p->running)
        pf_end(p);
}

/* Our code runs with the request held: a finish reported meanwhile (inside
 * a reply call) frees p only once the outermost holder lets go. 1 if p is
 * gone. */
static void hold(struct pf *p)
{
    p->running++;
}

static int release(struct pf *p)
{
    if (--p->running == 0 && p->finished) {
        pf_end(p);
        return 1;
    }
    return 0;
}

#define ADD(o, lit) evbuffer_add((o), lit, sizeof(lit) - 1)

static const char *http_date(struct pf *p, time_t t)
{
    struct tm tm;
    if (p->date[0] && t == p->date_t)
        return p->date;
    gmtime_r(&t, &tm);
    strftime(p->date, sizeof(p->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    p->date_t = t;
    return p->date;
}

static int live_index(const struct graced_xml *x)
{
    if (strcmp(x->ns, "DAV:"))
        return -1;
    for (int i = 0; i < L__N; i++)
        if (!strcmp(x->name, live_names[i]))
            return i;
    return -1;
}

struct res {
    const char *rel;  /* its path below the tree */
    const char *leaf; /* its name ("" for the top) */
    const struct stat *st;
    int dirfd;        /* its folder (dead properties), or -1: use fd */
    int fd;
};

static int lock_cb(const struct graced_lock *l, void *arg)
{
    graced_lock_xml(arg, l);
    return 0;
}

/* The value of live property i (the element and its value); 0 if this
 * resource has none. */
static int live_value(struct pf *p, const struct res *r, int i, struct evbuffer *o)
{
    const struct stat *st = r->st;
    int dir = S_ISDIR(st->st_mode);
    char buf[64];
    struct statvfs vfs;
    switch (i) {
    case L_RESOURCETYPE:
        if (dir)
            ADD(o, "<D:resourcetype><D:collection/></D:resourcetype>");
        else
            ADD(o, "<D:resourcetype/>");
        return 1;
    case L_DISPLAYNAME:
        ADD(o, "<D:displayname>");
        graced_xml_esc(o, r->leaf, strlen(r->leaf));
        ADD(o, "</D:displayname>");
        return 1;
    case L_GETCONTENTLENGTH:
        if (dir)
            return 0;
        {
            char num[24], *e = num + sizeof(num), *q = e;
            unsigned long long v = (unsigned long long)st->st_size;
            do
                *--q = (char)('0' + v % 10);
            while (v /= 10);
            ADD(o, "<D:getcontentlength>");
            evbuffer_add(o, q, (size_t)(e - q));
            ADD(o, "</D:getcontentlength>");
        }
        return 1;
    case L_GETCONTENTTYPE:
        if (dir)
            return 0;
        evbuffer_add_printf(o, "<D:getcontenttype>%s</D:getcontenttype>",
                            graced_content_type(r->leaf));
        return 1;
    case L_GETETAG:
        if (dir)
            return 0;
        graced_etag(st, buf, sizeof(buf));
        evbuffer_add_printf(o, "<D:getetag>%s</D:getetag>", buf);
        return 1;
    case L_GETLASTMODIFIED:
        ADD(o, "<D:getlastmodified>");
        evbuffer_add(o, http_date(p, st->st_mtime), 29);
        ADD(o, "</D:getlastmodified>");
        return 1;
    case L_SUPPORTEDLOCK:
        ADD(o, "<D:supportedlock>"
                               "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>"
                               "<D:locktype><D:write/></D:locktype></D:lockentry>"
                               "<D:lockentry><D:lockscope><D:shared/></D:lockscope>"
                               "<D:locktype><D:write/></D:locktype></D:lockentry>"
                               "</D:supportedlock>");
        return 1;
    case L_LOCKDISCOVERY:
        ADD(o, "<D:lockdiscovery>");
        graced_locktab_find(p->g, r->rel, GRACED_LOCK_SELF, lock_cb, o);
        ADD(o, "</D:lockdiscovery>");
        return 1;
    case L_QUOTA_AVAIL:
    case L_QUOTA_USED:
        if (fstatvfs(r->dirfd >= 0 ? r->dirfd : r->fd, &vfs) < 0)
            return 0;
        evbuffer_add_printf(o, "<D:%s>%llu</D:%s>", live_names[i],
                            (unsigned long long)(i == L_QUOTA_AVAIL
                                                     ? vfs.f_bavail
                                                     : vfs.f_blocks - vfs.f_bfree) *
                                (unsigned long long)vfs.f_frsize,
                            live_names[i]);
        return 1;
    }
    return 0;
}

static ssize_t dead_props(struct pf *p, const struct res *r)
{
    ssize_t n = r->dirfd >= 0 ? graced_props_get_at(r->dirfd, r->leaf, p->props, p->props_max)
                              : graced_props_get(r->fd, p->props, p->props_max);
    return n < 0 ? 0 : n;
}

/* An element's name as an empty element: <D:name/> or <name xmlns="ns"/> */
static void empty_el(struct evbuffer *o, const char *ns, const char *name)
{
    if (!strcmp(ns, "DAV:")) {
        evbuffer_add_printf(o, "<D:%s/>", name);
        return;
    }
    evbuffer_add_printf(o, "<%s xmlns=\"", name);
    graced_xml_esc(o, ns, strlen(ns));
    evbuffer_add_printf(o, "\"/>");
}

static void propstat(struct evbuffer *o, struct evbuffer *props, int found)
{
    ADD(o, "<D:propstat><D:prop>");
    evbuffer_add_buffer(o, props);
    if (found)
        ADD(o, "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    else
        ADD(o, "</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>");
}

static void href(struct evbuffer *o, const char *rel, int dir)
{
    char enc[3 * 4096 + 4];
    enc[0] = '/';
    size_t n = graced_path_encode(rel, enc + 1, sizeof(enc) - 2) + 1;
    if (dir && rel[0])
        enc[n++] = '/';
    ADD(o, "<D:href>");
    evbuffer_add(o, enc, n);
    ADD(o, "</D:href>");
}

/* One <D:response> for a resource. */
static void respond(struct pf *p, const struct res *r)
{
    struct evbuffer *o = p->out, *ok = p->ok, *missing = p->missing;
    ssize_t dn;
    size_t pos = 0;
    const char *ns, *name, *xml;
    int k = 0;
    ADD(o, "<D:response>");
    href(o, r->rel, S_ISDIR(r->st->st_mode));
    if (p->mode == PROP) {
        dn = -1; /* read once, if a dead one is asked for */
        for (struct graced_xml *x = p->prop->child; x; x = x->next) {
            int i, found = 0;
            if (!x->name)
                continue;
            if ((i = p->live[k++]) >= 0) {
                found = live_value(p, r, i, ok);
            } else {
                if (dn < 0)
                    dn = dead_props(p, r);
                for (pos = 0; graced_props_next(p->props, (size_t)dn, &pos, &ns, &name, &xml);)
                    if (!strcmp(ns, x->ns) && !strcmp(name, x->name)) {
                        evbuffer_add(ok, xml, strlen(xml));
                        found = 1;
                        break;
                    }
            }
            if (!found)
                empty_el(missing, x->ns, x->name);
        }
    } else {
        for (int i = 0; i < L_QUOTA_AVAIL; i++) {
            if (p->mode == ALLPROP)
                live_value(p, r, i, ok);
            else if (!S_ISDIR(r->st->st_mode) || (i != L_GETCONTENTLENGTH &&
                                                   i != L_GETCONTENTTYPE && i != L_GETETAG))
                empty_el(ok, "DAV:", live_names[i]);
        }
        dn = dead_props(p, r);
        while (graced_props_next(p->props, (size_t)dn, &pos, &ns, &name, &xml)) {
            if (p->mode == ALLPROP)
                evbuffer_add(ok, xml, strlen(xml));
            else
                empty_el(ok, ns, name);
        }
    }
    if (evbuffer_get_length(ok) || !evbuffer_get_length(missing))
        propstat(o, ok, 1);
    if (evbuffer_get_length(missing))
        propstat(o, missing, 0);
    ADD(o, "</D:response>");
}

/* Send what is buffered. */
static void flush(struct pf *p)
{
    size_t n = evbuffer_get_length(p->out);
    /* one chunk, one write: a piece per evbuffer chain would be a
     * system call (and a wake-up of the client) each */
    if (n)
        grace_reply_chunk(p->req, (const char *)evbuffer_pullup(p->out, -1), n);
    evbuffer_drain(p->out, n);
}

static void finish(struct pf *p)
{
    evbuffer_add_printf(p->out, "</D:multistatus>\n");
    flush(p);
    p->ended = 1;
    grace_reply_end(p->req);
}

/* One entry of the folder: shown as a listing shows it? */
static int entry(struct pf *p, const char *nm, struct stat *st)
{
    char path[4096 + 256 + 2];
    int fd;
    if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
        return 0;
    if (graced_name_check(nm, strlen(nm), graced_path_flags(p->g, 0)))
        return 0; /* dot-names, temporary files, control bytes: not served */
    if (fstatat(dirfd(p->dir), nm, st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (S_ISLNK(st->st_mode)) { /* followed where GET follows it: inside the root */
        snprintf(path, sizeof(path), "%s%s%s", p->rel, p->rel[0] ? "/" : "", nm);
        if ((fd = graced_open_beneath(p->g, path)) < 0)
            return 0;
        if (fstat(fd, st) < 0) {
            close(fd);
            return 0;
        }
        close(fd);
    }
    return S_ISDIR(st->st_mode) || S_ISREG(st->st_mode);
}

static void more(struct grace_request *req, void *arg);

/* A batch of entries, then wait for the client to read it. */
static void produce(struct pf *p)
{
    struct dirent *e;
    int batch = 0;
    char path[4096 + 256 + 2];
    hold(p);
    while (!p->finished && batch < PF_BATCH && evbuffer_get_length(p->out) < PF_CHUNK) {
        struct stat st;
        struct res r;
        errno = 0;
        if (!(e = readdir(p->dir))) {
            finish(p);
            break;
        }
        if (!entry(p, e->d_name, &st))
            continue;
        if (p->n++ == (size_t)p->g->o.list_max) {
            /* cut: the folder's own answer says so (RFC 5323's
             * precondition, which clients of RFC 4918 also know) */
            evbuffer_add_printf(p->out, "<D:response>");
            href(p->out, p->rel, 1);
            evbuffer_add_printf(p->out, "<D:status>HTTP/1.1 507 Insufficient Storage</D:status>"
                                        "<D:error><D:number-of-matches-within-limits/></D:error>"
                                        "<D:responsedescription>the listing was cut at %lld "
                                        "entries (--list-max)</D:responsedescription>"
                                        "</D:response>",
                                (long long)p->g->o.list_max);
            finish(p);
            break;
        }
        snprintf(path, sizeof(path), "%s%s%s", p->rel, p->rel[0] ? "/" : "", e->d_name);
        r.rel = path;
        r.leaf = e->d_name;
        r.st = &st;
        r.dirfd = dirfd(p->dir);
        r.fd = -1;
        respond(p, &r);
        batch++;
    }
    if (!p->ended && !p->finished) {
        flush(p);
        if (!p->finished)
            grace_reply_on_drain(p->req, more, p);
    }
    release(p);
}

static void more(struct grace_request *req, void *arg)
{
    (void)req;
    produce(arg);
}

static void start(struct pf *p)
{
    struct stat st;
    struct res r;
    const char *leaf = strrchr(p->rel, '/');
    int fd;

    if (fstat(p->fd, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
        graced_reply(p->req, 404, "not found\n");
        return;
    }
    if (S_ISDIR(st.st_mode) && p->depth == 1 && !p->g->o.list_dirs) {
        graced_reply(p->req, 403, "listing folders is off here (--list-dirs); ask with "
                                  "Depth: 0\n");
        return;
    }
    if (!(p->out = evbuffer_new()) || !(p->ok = evbuffer_new()) ||
        !(p->missing = evbuffer_new()) || !(p->props = malloc(p->props_max + 1))) {
        graced_reply(p->req, 500, "out of memory\n");
        return;
    }
    if (S_ISDIR(st.st_mode) && p->depth == 1) {
        if ((fd = openat(p->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            !(p->dir = fdopendir(fd))) {
            if (fd >= 0)
                close(fd);
            graced_reply(p->req, 500, "cannot list this folder\n");
            return;
        }
    }
    grace_response_add_header(p->req, "Content-Type", "application/xml; charset=utf-8");
    grace_response_add_header(p->req, "Cache-Control", "no-cache");
    p->started = 1;
    grace_reply_start(p->req, 207);
    evbuffer_add_printf(p->out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                                "<D:multistatus xmlns:D=\"DAV:\">");
    r.rel = p->rel;
    r.leaf = leaf ? leaf + 1 : p->rel;
    r.st = &st;
    r.dirfd = -1;
    r.fd = p->fd;
    respond(p, &r);
    if (!p->dir) {
        finish(p);
        return;
    }
    produce(p);
}

/* The body: which properties. 0, or 400. */
static int read_request(struct pf *p, struct evbuffer *body)
{
    size_t len = body ? evbuffer_get_length(body) : 0;
    struct graced_xml *root, *x;
    int n = 0;
    if (len == 0) {
        p->mode = ALLPROP; /* RFC 4918 9.1: no body is allprop */
        return 0;
    }
    if (graced_xml_parse((const char *)evbuffer_pullup(body, -1), len, &p->doc, &root) < 0 ||
        !graced_xml_is(root, "DAV:", "propfind"))
        return 400;
    if (graced_xml_child(root, "DAV:", "propname")) {
        p->mode = PROPNAME;
    } else if ((x = graced_xml_child(root, "DAV:", "prop"))) {
        p->mode = PROP;
        p->prop = x;
        for (x = x->child; x; x = x->next) {
            if (!x->name)
                continue;
            if (n == PF_MAX_PROPS)
                return 400;
            p->live[n++] = live_index(x);
        }
    } else if (graced_xml_child(root, "DAV:", "allprop")) {
        p->mode = ALLPROP;
    } else {
        return 400;
    }
    return 0;
}

static void on_body(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct pf *p = arg;
    (void)req;
    hold(p);
    if (read_request(p, body))
        graced_reply(p->req, 400, "the PROPFIND body is not a DAV:propfind this server "
                                  "reads (well-formed XML, no DOCTYPE)\n");
    else
        start(p);
    release(p);
}

void graced_propfind(struct grace_request *req, struct graced *g)
{
    const char *depth = grace_request_header(req, "Depth");
    struct pf *p;
    int st, trailing, d;

    if (!depth || !strcasecmp(depth, "infinity")) {
        graced_dav_error(req, 403, "propfind-finite-depth", NULL);
        return;
    }
    if (!strcmp(depth, "0"))
        d = 0;
    else if (!strcmp(depth, "1"))
        d = 1;
    else {
        graced_reply(req, 400, "Depth: 0 or 1\n");
        return;
    }
    if (!(p = calloc(1, sizeof(*p)))) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    p->g = g;
    p->req = req;
    p->fd = -1;
    p->depth = d;
    p->props_max = (size_t)g->o.dav_props_max;
    if ((st = graced_path_of(req, p->rel, sizeof(p->rel), graced_path_flags(g, 0), &trailing))) {
        graced_reply(req, st, st == 404 ? "not found\n" : "bad path\n");
        pf_free(p);
        return;
    }
    p->fd = graced_open_beneath(g, p->rel[0] ? p->rel : ".");
    if (p->fd < 0) {
        st = errno == ENOENT || errno == ENOTDIR ? 404 : 403;
        graced_reply(req, st, st == 404 ? "not found\n" : "forbidden\n");
        pf_free(p);
        return;
    }
    grace_request_on_finish(req, on_finish, p);
    if (grace_request_content_length(req) == 0 && !grace_request_is_chunked(req)) {
        on_body(req, NULL, p);
        return;
    }
    hold(p);
    if (grace_request_collect_body(req, GRACED_OTHER_BODY, on_body, p) < 0)
        graced_reply(req, 413, "a PROPFIND body takes 64 KiB at most\n");
    release(p);
}
