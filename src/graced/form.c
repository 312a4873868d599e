/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * form.c - POST of multipart/form-data to a folder's URL: the upload form
 * of a listing, or curl -F. Each file part is stored under its (sanitised)
 * filename in that folder; other fields are ignored.
 *
 * Nothing is held in memory: the body goes through the streaming parser
 * (multipart.c) straight into a store per part (store.c: a locked
 * temporary file), committed - fsync'ed and renamed into place, off the
 * event loop - when the part's delimiter arrives: the same atomic store as
 * PUT. The next parts are read meanwhile; a form's parts commit one after
 * the other, in order (a failed one stops those after it), at most
 * MAX_COMMITTING of them wait (then reading pauses), and the answer waits
 * for them. A part that fails (bad name, disk full, client gone,
 * body over --max-body-size) leaves no file under its name; parts stored
 * before it stay, and the answer says which. Refusals that need no body
 * (uploads off, token, a foreign Origin, no boundary) are answered when the
 * headers arrive, and a Content-Length over --max-body-size is answered 413
 * by the library before any byte is read: that is what the browser shows.
 */
#define _GNU_SOURCE
#include "graced.h"
#include "multipart.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_REPORTED 1000 /* files in one form: each name is kept for the answer */
#define WBUF (64 * 1024)  /* part data is written in pieces of this much: the parser
                             hands on runs between CRs, ~256 bytes in binary data */
#define MAX_COMMITTING 4  /* parts of one form waiting for their commit */
/* the body is parsed this much at a time, so that the parts waiting can
 * be counted between pieces: a part takes 60 bytes or more (delimiter,
 * Content-Disposition with a filename), so one piece ends at most ~70 */
#define FEED_STEP 4096

/* A part whose content is complete: waiting for its commit, or committing
 * (the first of the queue) on the pool. */
struct part {
    struct form *f;
    struct graced_store *store;
    struct part *next;
    int started;          /* its commit runs */
    int64_t bytes;
    char name[256];
};

struct form {
    struct graced *g;
    struct grace_request *req;
    struct graced_mp *mp;
    int dirfd;
    char dir[4096];       /* the folder, relative to the upload tree */
    struct graced_store *cur; /* the current part's file, or NULL */
    int fd;               /* its fd, or -1 */
    int skip;             /* the current part is not a file */
    char name[256];
    int64_t bytes;
    struct part *queue, *queue_tail; /* parts to commit, in order; the first commits */
    int ncommitting;      /* how many (started or not) */
    struct evbuffer *held; /* body received while MAX_COMMITTING parts commit */
    int paused, ended;
    int fail_status;      /* a failure to answer once no commit runs */
    char fail_msg[1200];
    char *wbuf;           /* data not yet written, wlen bytes */
    size_t wlen;
    struct evbuffer *done; /* stored names, each NUL-terminated, then its size */
    int nstored;
    int replied;
    /* a callback's refusal, answered once the parser has returned: the
     * answer can finish the request and free this, parser included */
    int pend_status;
    char pend_msg[1200];
};

int graced_is_multipart(struct grace_request *req)
{
    const char *ct = grace_request_header(req, "Content-Type");
    return ct && !strncasecmp(ct, "multipart/form-data", 19);
}

static void part_abandon(struct form *f)
{
    f->wlen = 0;
    graced_store_abandon(f->cur);
    f->cur = NULL;
    f->fd = -1;
}

/* The first part of the queue leaves it. */
static struct part *part_shift(struct form *f)
{
    struct part *p = f->queue;
    if (!(f->queue = p->next))
        f->queue_tail = NULL;
    f->ncommitting--;
    return p;
}

/* Parts not committing yet are not stored: an earlier one failed, or the
 * form ends. A commit running goes on; with drop_all its result too is
 * dropped (the form is freed). */
static void parts_drop(struct form *f, int drop_all)
{
    struct part **pp = &f->queue, *p;
    while ((p = *pp)) {
        if (p->started && !drop_all) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        f->ncommitting--;
        graced_store_abandon(p->store);
        free(p);
    }
    f->queue_tail = NULL;
    for (p = f->queue; p; p = p->next)
        f->queue_tail = p;
}

static void form_free(struct form *f)
{
    part_abandon(f);
    parts_drop(f, 1);
    if (f->dirfd >= 0)
        close(f->dirfd);
    graced_mp_free(f->mp);
    free(f->wbuf);
    if (f->done)
        evbuffer_free(f->done);
    if (f->held)
        evbuffer_free(f->held);
    free(f);
}

/* The answer now waits only for the commits (the body has ended, or a
 * failure waits for them to name what was stored): a 503 at the stop's
 * deadline would say "not stored" about parts that are, so the stop waits
 * for our answer. */
static void hold_stop(struct form *f)
{
    if (f->ncommitting)
        grace_request_hold_stop(f->req);
}

/* An error answer, naming what was stored before it; once no part is
 * committing, so that the list is the truth. May free f. */
static void fail(struct form *f, int status, const char *msg)
{
    struct evbuffer *out;
    size_t len;
    char *p;
    if (f->replied || f->fail_status)
        return;
    part_abandon(f);
    parts_drop(f, 0);
    if (f->ncommitting) { /* one commit runs: its outcome belongs in the answer */
        f->fail_status = status;
        snprintf(f->fail_msg, sizeof(f->fail_msg), "%s", msg);
        hold_stop(f);
        if (!f->paused) {
            f->paused = 1;
            grace_request_pause(f->req);
        }
        return; /* part_committed answers */
    }
    f->replied = 1;
    out = evbuffer_new();
    if (!out) {
        graced_reply(f->req, status, "upload failed\n");
        return;
    }
    evbuffer_add_printf(out, "%s\n", msg);
    len = evbuffer_get_length(f->done);
    p = len ? (char *)evbuffer_pullup(f->done, -1) : NULL;
    for (size_t o = 0; p && o < len;) {
        evbuffer_add_printf(out, "stored before: %s\n", p + o);
        o += strlen(p + o) + 1 + sizeof(int64_t);
    }
    grace_response_add_header(f->req, "Content-Type", "text/plain; charset=utf-8");
    grace_reply_buffer(f->req, status, out);
    evbuffer_free(out);
}

/* From inside the parser's callbacks: remember the answer (a printf
 * format), stop parsing. */
static void refusef(struct form *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refusef(struct form *f, int status, const char *fmt, ...)
{
    va_list ap;
    f->pend_status = status;
    va_start(ap, fmt);
    vsnprintf(f->pend_msg, sizeof(f->pend_msg), fmt, ap);
    va_end(ap);
}

/*
 * May this part take its name? Not a name an earlier part of this form
 * stored (it would replace that file while the answer listed both: the
 * second is refused, the first stays and is listed), not graced's own path
 * (--health, --metrics: never readable back), and not past MAX_REPORTED files (every stored name
 * is kept, so the first check is exact). 0, or -EEXIST after refusef().
 */
static int name_taken(struct form *f)
{
    char rel[4096 + 256 + 2];
    size_t len = evbuffer_get_length(f->done);
    const char *p = len ? (const char *)evbuffer_pullup(f->done, -1) : NULL, *own;
    snprintf(rel, sizeof(rel), "%s%s%s", f->dir, f->dir[0] ? "/" : "", f->name);
    if ((own = graced_path_reserved(f->g, rel))) {
        refusef(f, 409, "%s is graced's %s path: no file may take it", f->name, own);
        return -EEXIST;
    }
    int taken = 0;
    for (size_t o = 0; p && o < len && !taken; o += strlen(p + o) + 1 + sizeof(int64_t))
        taken = !strcmp(p + o, f->name);
    /* and the parts still waiting for their commit */
    for (const struct part *q = f->queue; q && !taken; q = q->next)
        taken = !strcmp(q->name, f->name);
    if (taken) {
        refusef(f, 409, "two parts named %s: the second is refused", f->name);
        return -EEXIST;
    }
    if (f->nstored + f->ncommitting >= MAX_REPORTED) {
        refusef(f, 413, "more than %d files in one form", MAX_REPORTED);
        return -EEXIST;
    }
    return 0;
}

static int on_part_begin(const char *field, const char *filename, void *arg)
{
    struct form *f = arg;
    struct stat st;
    int rc;
    (void)field;
    f->bytes = 0;
    f->skip = !filename || !filename[0]; /* a text field, or no file chosen */
    if (f->skip)
        return 0;
    if ((rc = graced_name_sanitise(filename, f->name, sizeof(f->name), graced_path_flags(f->g, 1)))) {
        refusef(f, rc, "refused file name: %s", filename);
        return -EINVAL;
    }
    if ((rc = name_taken(f)))
        return rc;
    if (graced_locktab_active(f->g)) { /* WebDAV: and one on the file itself */
        char path[4096 + 256 + 2];
        snprintf(path, sizeof(path), "%s%s%s", f->dir, f->dir[0] ? "/" : "", f->name);
        if ((rc = graced_dav_test(f->req, f->g, path, GRACED_LOCK_SELF, NULL, 0, NULL, 0))) {
            refusef(f, rc, "%s is locked (WebDAV)", f->name);
            return -EBUSY;
        }
    }
    if (fstatat(f->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode)) {
            refusef(f, 409, "a folder is named %s", f->name);
            return -EISDIR;
        }
        if (f->g->o.no_overwrite) {
            refusef(f, 412, "%s exists and is not replaced (--no-overwrite)", f->name);
            return -EEXIST;
        }
    }
    /* graced_store_path: the folders on the way synced too (made for this
     * form, or by an upload still on its way) */
    if ((rc = graced_store_open(f->g, f->dirfd, f->name, &f->cur)) < 0 ||
        (rc = graced_store_path(f->cur, f->dir)) < 0) {
        graced_log(LOG_ERR, "form upload %s: %s", f->name, strerror(-rc));
        refusef(f, graced_errno_status(rc), "could not store %s", f->name);
        return rc;
    }
    f->fd = graced_store_fd(f->cur);
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write what is buffered; 0 or the status already refused with. */
static int flush_part(struct form *f)
{
    int rc = f->wlen ? write_all(f->fd, f->wbuf, f->wlen) : 0;
    f->wlen = 0;
    if (rc < 0)
        refusef(f, graced_errno_status(rc), "could not store %s", f->name);
    return rc;
}

static int on_part_data(const char *data, size_t len, void *arg)
{
    struct form *f = arg;
    int rc;
    if (f->skip)
        return 0;
    f->bytes += (int64_t)len;
    if (f->wlen + len > WBUF && (rc = flush_part(f)))
        return rc;
    if (len >= WBUF) {
        if ((rc = write_all(f->fd, data, len)) < 0)
            refusef(f, graced_errno_status(rc), "could not store %s", f->name);
        return rc;
    }
    memcpy(f->wbuf + f->wlen, data, len);
    f->wlen += len;
    return 0;
}

static void progress(struct form *f);
static void part_committed(const struct graced_store_result *r, void *arg);

/* The first part of the queue commits, if it is not already. */
static int commit_next(struct form *f)
{
    struct part *p = f->queue;
    if (!p || p->started)
        return 0;
    p->started = 1;
    if (graced_store_commit(p->store, f->g->o.no_overwrite, NULL, part_committed, p) < 0) {
        p->started = 0; /* not running: dropped with the others */
        return -ENOMEM;
    }
    return 0;
}

/* A part's commit is done (on the loop): note it, then go on. */
static void part_committed(const struct graced_store_result *r, void *arg)
{
    struct part *p = arg;
    struct form *f = p->f;
    char key[4096 + 256], msg[400];
    part_shift(f); /* p: the first */
    snprintf(key, sizeof(key), "%s%s%s", f->dir, f->dir[0] ? "/" : "", p->name);
    if (r->err || r->changed) {
        int status = r->err == EEXIST ? 412 : graced_errno_status(-r->err);
        if (r->err == EEXIST) {
            snprintf(msg, sizeof(msg), "%s exists and is not replaced (--no-overwrite)", p->name);
        } else if (r->renamed) { /* under its name, not durably: no 2xx */
            graced_files_forget(f->g, key);
            snprintf(msg, sizeof(msg), "%s is under its name, but the folder could not be synced "
                     "to disk: not durable (a crash may lose it)", p->name);
            status = 500;
        } else {
            snprintf(msg, sizeof(msg), "could not store %s", p->name);
            graced_log(LOG_ERR, "form upload %s: %s", key, strerror(r->err));
        }
        free(p);
        if (f->fail_status) { /* already failing: answer with what is known */
            progress(f); /* may free f */
            return;
        }
        fail(f, status, msg); /* may free f */
        return;
    }
    graced_files_forget(f->g, key);
    graced_log(LOG_DEBUG, "stored %s (%lld bytes, form)", key, (long long)p->bytes);
    graced_metrics_upload(f->g, p->bytes); /* counted as a PUT's file is */
    f->nstored++; /* at most MAX_REPORTED: name_taken() */
    evbuffer_add(f->done, p->name, strlen(p->name) + 1);
    evbuffer_add(f->done, &p->bytes, sizeof(p->bytes));
    free(p);
    if (!f->fail_status && commit_next(f) < 0) {
        fail(f, 500, "out of memory"); /* may free f */
        return;
    }
    progress(f); /* may free f */
}

/* The part's content is complete: queued for its commit, off the loop;
 * the next parts are read meanwhile. */
static int on_part_end(void *arg)
{
    struct form *f = arg;
    struct part *p;
    int rc;
    if (f->skip)
        return 0;
    if ((rc = flush_part(f)))
        return rc;
    if (!(p = calloc(1, sizeof(*p)))) {
        refusef(f, 500, "out of memory");
        return -ENOMEM;
    }
    p->f = f;
    p->store = f->cur;
    p->bytes = f->bytes;
    memcpy(p->name, f->name, sizeof(p->name));
    f->cur = NULL; /* the part's now */
    f->fd = -1;
    if (f->queue_tail)
        f->queue_tail->next = p;
    else
        f->queue = p;
    f->queue_tail = p;
    f->ncommitting++;
    if (commit_next(f) < 0) {
        refusef(f, 500, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static const struct graced_mp_cb mp_cb = {on_part_begin, on_part_data, on_part_end};

/* 201 with what was stored: JSON on request, else a small HTML page. */
static void answer(struct form *f)
{
    struct evbuffer *out = evbuffer_new();
    int json = graced_wants_json(f->req);
    size_t len = evbuffer_get_length(f->done);
    char *p = len ? (char *)evbuffer_pullup(f->done, -1) : NULL;
    char folder[3 * 4096 + 3], href[3 * 256 + 1];
    f->replied = 1;
    if (!out) {
        graced_reply(f->req, 500, "out of memory\n");
        return;
    }
    folder[0] = '/';
    graced_path_encode(f->dir, folder + 1, sizeof(folder) - 2);
    if (f->dir[0])
        strcat(folder, "/");
    evbuffer_add_printf(out, json ? "{\"stored\":[" : "<!doctype html>\n<html><head>"
                        "<meta charset=\"utf-8\"><title>Stored</title></head><body>"
                        "<h1>Stored</h1><ul>\n");
    for (size_t o = 0, i = 0; p && o < len; i++) {
        const char *name = p + o;
        int64_t size;
        memcpy(&size, p + o + strlen(name) + 1, sizeof(size));
        o += strlen(name) + 1 + sizeof(size);
        graced_path_encode(name, href, sizeof(href));
        if (json) {
            char url[sizeof(folder) + sizeof(href)];
            snprintf(url, sizeof(url), "%s%s", folder, href);
            evbuffer_add_printf(out, "%s{\"name\":", i ? "," : "");
            graced_json_str(out, name);
            evbuffer_add_printf(out, ",\"size\":%lld,\"url\":", (long long)size);
            graced_json_str(out, url);
            evbuffer_add(out, "}", 1);
        } else {
            evbuffer_add_printf(out, "<li><a href=\"./%s\">", href);
            graced_html_esc(out, name);
            evbuffer_add_printf(out, "</a> (%lld bytes)</li>\n", (long long)size);
        }
    }
    if (json)
        evbuffer_add_printf(out, "],\"count\":%d}\n", f->nstored);
    else
        evbuffer_add_printf(out, "</ul><p>%d file%s. <a href=\"./\">Back to the folder</a></p>"
                            "</body></html>\n", f->nstored, f->nstored == 1 ? "" : "s");
    grace_response_add_header(f->req, "Content-Type",
                              json ? "application/json" : "text/html; charset=utf-8");
    graced_web_page_csp(f->req, NULL); /* graced's page: no script, no framing */
    grace_response_add_header(f->req, "Location", folder);
    grace_reply_buffer(f->req, 201, out);
    evbuffer_free(out);
}

/* Parse body bytes while fewer than MAX_COMMITTING parts commit. How many
 * were taken; -1 after an answer (f may be gone). */
static ssize_t feed(struct form *f, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && f->ncommitting < MAX_COMMITTING) {
        size_t n = len - off < FEED_STEP ? len - off : FEED_STEP;
        int rc = graced_mp_feed(f->mp, data + off, n);
        if (rc < 0) {
            if (f->pend_status)
                fail(f, f->pend_status, f->pend_msg);
            else if (rc == -EPROTO)
                fail(f, 400, "malformed multipart body");
            else if (rc == -EMSGSIZE)
                fail(f, 400, "a part's headers are over --max-header-bytes");
            else
                fail(f, 500, "upload failed");
            return -1; /* nothing after it: fail may free f */
        }
        off += n;
    }
    return (ssize_t)off;
}

/* Something changed (a commit ended, the body ended): read on from what is
 * held, answer when all is done. May free f. */
static void progress(struct form *f)
{
    if (f->replied)
        return;
    if (f->fail_status) {
        if (!f->ncommitting) {
            int st = f->fail_status;
            f->fail_status = 0;
            fail(f, st, f->fail_msg);
        }
        return;
    }
    while (evbuffer_get_length(f->held) && f->ncommitting < MAX_COMMITTING) {
        size_t n = evbuffer_get_contiguous_space(f->held);
        ssize_t took = feed(f, (const char *)evbuffer_pullup(f->held, (ssize_t)n), n);
        if (took < 0)
            return;
        evbuffer_drain(f->held, (size_t)took);
    }
    if (evbuffer_get_length(f->held))
        return; /* still behind: the next commit to end comes back here */
    if (f->paused) {
        f->paused = 0;
        grace_request_resume(f->req);
    }
    if (!f->ended || f->ncommitting)
        return;
    if (graced_mp_end(f->mp) < 0)
        fail(f, 400, "the multipart body ended before its closing delimiter");
    else if (f->nstored == 0)
        fail(f, 400, "no file in the form");
    else
        answer(f);
}

static void on_data(struct grace_request *req, const char *data, size_t len, void *arg)
{
    struct form *f = arg;
    ssize_t took = 0;
    (void)req;
    if (f->replied || f->fail_status)
        return;
    if (!evbuffer_get_length(f->held) && (took = feed(f, data, len)) < 0)
        return; /* answered */
    if ((size_t)took < len) { /* too many parts committing: hold the rest */
        if (evbuffer_add(f->held, data + took, len - (size_t)took) < 0) {
            fail(f, 500, "out of memory");
            return;
        }
        if (!f->paused) {
            f->paused = 1;
            grace_request_pause(req);
        }
    }
}

static void on_end(struct grace_request *req, void *arg)
{
    struct form *f = arg;
    (void)req;
    f->ended = 1;
    hold_stop(f);
    progress(f);
}

static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct form *f = arg;
    if (err) {
        graced_log(LOG_INFO, "form upload to /%s abandoned (%d stored): %s", f->dir, f->nstored,
                   grace_strerror(err));
        if (!f->replied)
            grace_reply(req, 500, NULL, 0); /* completes our side; -ENOTCONN */
    }
    form_free(f);
}

void graced_form_upload(struct grace_request *req, struct graced *g)
{
    struct form *f;
    char rel[4096], boundary[80];
    int st, trailing, dirfd;

    if (graced_mp_boundary(grace_request_header(req, "Content-Type"), boundary,
                           sizeof(boundary)) < 0) {
        graced_reply(req, 400, "multipart/form-data without a valid boundary\n");
        return;
    }
    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, st == 403 ? "forbidden path\n" : "bad path\n");
        return;
    }
    /* WebDAV: a lock on the folder (or above it) holds against new files */
    if (graced_dav_check(req, g, rel, GRACED_LOCK_SELF, NULL, 0))
        return;
    if ((dirfd = graced_path_open_dir(g->upload_fd, rel, strlen(rel), 1)) < 0) {
        st = graced_errno_status(dirfd);
        graced_reply(req, st, st == 409 ? "a file is in the way of the folder\n"
                              : st == 403 ? "forbidden path (a symbolic link?)\n"
                                          : "could not open the folder\n");
        return;
    }
    if (!(f = calloc(1, sizeof(*f)))) {
        close(dirfd);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    f->g = g;
    f->req = req;
    f->dirfd = dirfd;
    f->fd = -1;
    snprintf(f->dir, sizeof(f->dir), "%s", rel);
    f->done = evbuffer_new();
    f->held = evbuffer_new();
    f->wbuf = malloc(WBUF);
    /* a part's headers get the same bound as the request's */
    f->mp = graced_mp_new(boundary, (size_t)grace_config_get(g->o.cfg,
                                                              GRACE_OPT_MAX_HEADER_BYTES),
                          &mp_cb, f);
    if (!f->done || !f->held || !f->mp || !f->wbuf) {
        form_free(f);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    grace_request_on_finish(req, on_finish, f);
    if (grace_request_read_body(req, on_data, on_end, f) < 0)
        fail(f, 500, "could not read the body");
}
