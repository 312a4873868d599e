/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * upload.c - PUT /path (or POST of a raw body) into --upload-dir.
 *
 * Everything that can refuse an upload is checked when the headers arrive,
 * before any body byte is read: the library then closes gracefully and the
 * client receives the answer. Accepted bodies stream into a store (store.c:
 * a locked temporary file in the same directory; reading pauses while the
 * disk lags behind), which is fsync'ed and renamed into place off the event
 * loop only when the body is complete, and answered when that is done: the
 * target name never holds a partial file. Anything else removes the
 * temporary file; a crash leaves only a temporary name nobody holds, which
 * the sweep removes once older than --stale-upload-age.
 *
 * Folders on the way are created (path.c: each segment O_NOFOLLOW, so no
 * symlink leads out of the tree), and every folder from the upload tree
 * down to the file's is synced before the answer (store.c). Safe create and replace: If-None-Match: *
 * (and --no-overwrite) never replaces a file, checked when the headers come
 * and again by the rename itself (RENAME_NOREPLACE); If-Match replaces only
 * the version whose ETag it names.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct upload {
    struct graced *g;
    struct grace_request *req;
    struct graced_store *store; /* the file in the making; NULL once committed */
    int fd;               /* the store's */
    char name[256];
    char path[4096];      /* relative to the upload tree, for Location and logs */
    const char *if_match; /* the request's If-Match: checked again before the rename */
    int noreplace;        /* If-None-Match: * or --no-overwrite */
    struct graced_sink *sink; /* the body into fd */
    int64_t bytes;            /* the body's, once all on disk */
    int replied, committing;
};

/* Failing to store: 507 when the disk (or a quota or size limit) is full. */
static int store_status(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? 507 : 500;
}

static void upload_free(struct upload *u)
{
    graced_store_abandon(u->store); /* a commit running: its result is dropped */
    graced_sink_free(u->sink);
    free(u);
}

/* The request ended: freed here, whatever the outcome. */
static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct upload *u = arg;
    if (err) {
        graced_log(LOG_INFO, "upload %s abandoned after %lld bytes: %s", u->name,
                   (long long)graced_sink_received(u->sink), grace_strerror(err));
        if (!u->replied)
            grace_reply(req, 500, NULL, 0); /* completes our side; -ENOTCONN */
    }
    upload_free(u);
}

static void fail(struct upload *u, int status, const char *msg)
{
    u->replied = 1;
    graced_sink_cancel(u->sink); /* what else comes is dropped */
    graced_reply(u->req, status, msg);
}

/* The commit is done (on the loop again): answer. */
static void committed(const struct graced_store_result *r, void *arg)
{
    struct upload *u = arg;
    char etag[64], loc[3 * sizeof(u->path) + 2];
    u->store = NULL; /* gone with this call */
    u->fd = -1;
    if (r->changed) {
        fail(u, 412, "the file changed meanwhile (If-Match)\n");
        return;
    }
    if (r->err == EEXIST) {
        fail(u, 412, "the file exists and is not replaced\n");
        return;
    }
    if (r->renamed) { /* under its name, not durably: no 2xx */
        graced_files_forget(u->g, u->path);
        fail(u, 500, "the file is under its name, but the folder could not be synced to disk: "
                     "not durable (a crash may lose it); upload it again\n");
        return;
    }
    if (r->err) {
        graced_log(LOG_ERR, "upload %s: %s", u->path, strerror(r->err));
        fail(u, r->err == EISDIR || r->err == ENOTDIR ? 409 : store_status(r->err),
             r->err == EISDIR ? "a folder has that name\n" : "could not store the upload\n");
        return;
    }
    graced_files_forget(u->g, u->path);
    graced_metrics_upload(u->g, u->bytes);
    graced_log(LOG_DEBUG, "stored %s (%lld bytes)", u->path, (long long)u->bytes);
    u->replied = 1;
    graced_etag(&r->st, etag, sizeof(etag));
    grace_response_add_header(u->req, "ETag", etag);
    if (r->existed) {
        graced_reply(u->req, 204, NULL);
    } else {
        loc[0] = '/';
        graced_path_encode(u->path, loc + 1, sizeof(loc) - 1);
        grace_response_add_header(u->req, "Location", loc);
        graced_reply(u->req, 201, "created\n");
    }
}

/* Everything is on disk: make it durable and give it its name, off the
 * loop; the answer comes with the result. The request stays unanswered
 * meanwhile (if it ends first, upload_free drops the result). */
static void commit(struct upload *u)
{
    if (u->committing)
        return;
    u->committing = 1;
    /* from the rename on, a 503 at the stop's deadline would say "not
     * stored" about a stored file: the stop waits for our answer */
    grace_request_hold_stop(u->req);
    if (graced_store_commit(u->store, u->noreplace, u->if_match, committed, u) < 0)
        fail(u, 500, "out of memory\n");
}

/* The body is all in the file, or could not be: err. */
static void body_stored(int err, void *arg)
{
    struct upload *u = arg;
    if (err) {
        graced_log(LOG_ERR, "upload %s: %s", u->path, strerror(err));
        fail(u, store_status(err), err == ENOMEM ? "out of memory\n" : "could not store the upload\n");
        return;
    }
    u->bytes = graced_sink_received(u->sink);
    commit(u);
}

static void read_body(struct upload *u)
{
    if (graced_sink_start(u->sink, u->req, u->fd, 1) < 0)
        fail(u, 500, "could not read the body\n");
}

/* The blocks are reserved (on the loop again): now the body. A disk that
 * cannot take it is answered before the client sends a byte of it. */
static void reserved(int err, void *arg)
{
    struct upload *u = arg;
    if (err) {
        graced_log(LOG_WARN, "upload %s (%lld bytes): %s", u->path,
                   (long long)grace_request_content_length(u->req), strerror(err));
        fail(u, store_status(err), "not enough space for the upload\n");
        return;
    }
    read_body(u);
}

void graced_upload(struct grace_request *req, struct graced *g)
{
    struct upload *u;
    char rel[4096];
    const char *leaf;
    int st, trailing, dirfd, noreplace;
    size_t dirlen;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing)) ||
        (st = !rel[0] || trailing ? 400 : 0)) {
        graced_reply(req, st, st == 403 ? "forbidden name\n" : st == 414 ? "name too long\n"
                                                                          : "bad upload name\n");
        return;
    }
    leaf = strrchr(rel, '/');
    dirlen = leaf ? (size_t)(leaf - rel) : 0;
    leaf = leaf ? leaf + 1 : rel;
    if (strlen(leaf) > 255) {
        graced_reply(req, 414, "name too long\n");
        return;
    }
    /* the preconditions before anything is created */
    dirfd = graced_path_open_dir(g->upload_fd, rel, dirlen, 0);
    if (dirfd < 0 && dirfd != -ENOENT) {
        st = graced_errno_status(dirfd);
        graced_reply(req, st, st == 409 ? "a file is in the way of a folder\n"
                              : st == 403 ? "forbidden path (a symbolic link?)\n"
                                          : "could not store the upload\n");
        return;
    }
    /* WebDAV: the If header, and the locks on the file and its folder */
    if (graced_dav_check(req, g, rel, GRACED_LOCK_SELF | GRACED_LOCK_PARENT, NULL, 0)) {
        if (dirfd >= 0)
            close(dirfd);
        return;
    }
    st = graced_write_conditions(req, g->o.no_overwrite, dirfd, leaf, &noreplace);
    if (st) {
        if (dirfd >= 0)
            close(dirfd);
        graced_reply(req, st, st == 409 ? "a folder has that name\n"
                              : "precondition failed: the file exists or is another version\n");
        return;
    }
    if (dirfd < 0 && (dirfd = graced_path_open_dir(g->upload_fd, rel, dirlen, 1)) < 0) {
        st = graced_errno_status(dirfd);
        graced_reply(req, st, st == 409 ? "a file is in the way of a folder\n"
                                        : "could not create the folder\n");
        return;
    }
    if (!(u = calloc(1, sizeof(*u)))) {
        close(dirfd);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    u->g = g;
    u->req = req;
    u->fd = -1;
    u->noreplace = noreplace;
    u->if_match = grace_request_header(req, "If-Match");
    memcpy(u->name, leaf, strlen(leaf) + 1); /* <= 255 bytes: graced_path_of */
    snprintf(u->path, sizeof(u->path), "%s", rel);
    st = graced_store_open(g, dirfd, leaf, &u->store);
    close(dirfd); /* the store has its own */
    /* the folders on the way synced too: any of them may be new (made
     * here, or by an upload still on its way) */
    rel[dirlen] = '\0';
    if (st == 0 && (st = graced_store_path(u->store, rel)) == 0)
        u->fd = graced_store_fd(u->store);
    u->sink = graced_sink_new(g->base, body_stored, u);
    if (st < 0 || !u->sink) {
        int e = st < 0 ? -st : ENOMEM;
        graced_log(LOG_ERR, "upload %s: %s", u->path, strerror(e));
        graced_reply(req, store_status(e), "could not store the upload\n");
        upload_free(u);
        return;
    }
    grace_request_on_finish(req, on_finish, u);
    /* a known size: its blocks first (store.c says why), then the body */
    if (grace_request_content_length(req) > 0 &&
        graced_store_reserve(u->store, grace_request_content_length(req), reserved, u) == 0)
        return;
    read_body(u);
}
