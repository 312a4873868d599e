/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * delete.c - DELETE of a file, or of a folder and everything in it, in the
 * upload tree.
 *
 * The same checks as an upload (uploads on, the token), the same decoding
 * and confinement (path.c: no "..", no dot-names unless --show-hidden, no
 * symlink on the way). If-Match deletes only that version of a file. A
 * WebDAV lock on the file, its folder or (for a folder) anything in it
 * holds unless its token is submitted (davcond.c: 423).
 *
 * A folder goes with all it holds (RFC 4918 9.6.1), walked on the pool
 * (tree.c, never following a symbolic link) after counting its entries:
 * more than --dav-tree-max is 403 before anything is removed. What cannot
 * be removed (an upload still being stored there: 423, a permission) is
 * listed in a 207, and the folders holding it stay.
 *
 * A file's unlink and the fsync of its folder run on the pool too (an
 * fsync can wait for the disk for seconds, and every other connection of
 * the worker with it). The answer waits for the fsync: a name that a
 * crash could bring back is not a 204 (a failed fsync is a 500, never
 * tried again: a second one can report success for what the first lost).
 * The file's locks and cache entry go once the work is done, whether or
 * not the client is still there to be answered.
 */
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEL_MAX_FAILS 100

struct del {
    struct graced *g;
    int dirfd;
    long max, count;
    int file;             /* a file (not a folder) */
    int err, sync_err;    /* the unlink's, the folder fsync's (errno) */
    int removed;          /* something went: its locks and cache entries too */
    int nfails;
    struct evbuffer *fails;
    char leaf[256];
    char rel[4096];
};

static void del_fail(const char *rel, int err, void *arg)
{
    struct del *d = arg;
    char enc[3 * 8192 + 2], path[8192 + 2];
    int st = err == EBUSY ? 423 : graced_errno_status(err);
    if (d->nfails++ >= DEL_MAX_FAILS)
        return;
    snprintf(path, sizeof(path), "%s%s%s", d->rel, rel[0] ? "/" : "", rel);
    enc[0] = '/';
    graced_path_encode(path, enc + 1, sizeof(enc) - 1);
    evbuffer_add_printf(d->fails, "<D:response><D:href>%s</D:href><D:status>HTTP/1.1 %d %s"
                                  "</D:status></D:response>",
                        enc, st, grace_status_reason(st));
}

static void del_work(void *arg)
{
    struct del *d = arg;
    int fd;
    if (d->file) {
        if (unlinkat(d->dirfd, d->leaf, 0) < 0) {
            d->err = errno;
            return;
        }
        d->removed = 1;
        if (fsync(d->dirfd) < 0)
            d->sync_err = errno;
        return;
    }
    fd = openat(d->dirfd, d->leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        d->count = graced_tree_count(fd, d->max);
        close(fd);
        if (d->count > d->max)
            return;
    }
    d->removed = 1; /* some of it, at least, may have gone */
    if (graced_tree_remove(d->dirfd, d->leaf, del_fail, d) == 0 && fsync(d->dirfd) < 0)
        d->sync_err = errno;
}

static void del_done(struct grace_request *req, struct graced *g, void *arg)
{
    struct del *d = arg;
    struct evbuffer *b;
    int st;
    (void)g;
    if (d->err) {
        st = d->err == ENOTEMPTY || d->err == EEXIST ? 409 : graced_errno_status(d->err);
        graced_reply(req, st, st == 409 ? "the folder is not empty\n" : "could not delete\n");
        return;
    }
    if (d->count > d->max) {
        graced_reply(req, 403, "the folder holds more than --dav-tree-max entries: delete "
                               "what it holds first\n");
        return;
    }
    /* the name is gone, but a crash may bring it back: no 2xx */
    if (d->sync_err) {
        graced_log(LOG_ERR, "deleted %s, but the folder's fsync failed (%s): not durable",
                   d->rel, strerror(d->sync_err));
        graced_reply(req, 500, "deleted, but the folder could not be synced to disk: not "
                               "durable (a crash may bring it back)\n");
        return;
    }
    if (d->file) {
        graced_log(LOG_DEBUG, "deleted %s", d->rel);
        graced_reply(req, 204, NULL);
        return;
    }
    if (!d->nfails) {
        graced_log(LOG_DEBUG, "deleted %s and all it held", d->rel);
        graced_reply(req, 204, NULL);
        return;
    }
    if (!(b = evbuffer_new())) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                           "<D:multistatus xmlns:D=\"DAV:\">");
    evbuffer_add_buffer(b, d->fails);
    evbuffer_add_printf(b, "</D:multistatus>\n");
    grace_response_add_header(req, "Content-Type", "application/xml; charset=utf-8");
    grace_reply_buffer(req, 207, b);
    evbuffer_free(b);
}

/* after del_done, or without it (the client left): what went is forgotten */
static void del_free(void *arg)
{
    struct del *d = arg;
    if (d->removed) {
        graced_locktab_drop(d->g, d->rel);
        graced_files_forget(d->g, d->rel);
    }
    close(d->dirfd);
    evbuffer_free(d->fails);
    free(d);
}

/* On the pool: a file's unlink and fsync, or a folder's walk; dirfd is taken. */
static void delete_on_pool(struct grace_request *req, struct graced *g, int dirfd,
                           const char *leaf, const char *rel, int file)
{
    struct del *d = calloc(1, sizeof(*d));
    if (!d || !(d->fails = evbuffer_new())) {
        free(d);
        close(dirfd);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    d->g = g;
    d->dirfd = dirfd;
    d->file = file;
    d->max = (long)g->o.dav_tree_max;
    snprintf(d->leaf, sizeof(d->leaf), "%.255s", leaf);
    snprintf(d->rel, sizeof(d->rel), "%s", rel);
    graced_dav_run(g, req, del_work, del_done, del_free, d);
}

void graced_delete(struct grace_request *req, struct graced *g)
{
    char rel[4096], etag[64];
    const char *leaf, *im = grace_request_header(req, "If-Match");
    int st, trailing, dirfd;
    struct stat sb;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, st == 403 ? "forbidden name\n" : "bad path\n");
        return;
    }
    if (!rel[0]) {
        graced_reply(req, 403, "the top folder is not deleted\n");
        return;
    }
    leaf = strrchr(rel, '/');
    dirfd = graced_path_open_dir(g->upload_fd, rel, leaf ? (size_t)(leaf - rel) : 0, 0);
    leaf = leaf ? leaf + 1 : rel;
    if (dirfd < 0) {
        st = graced_errno_status(dirfd);
        graced_reply(req, st, st == 404 ? "not found\n" : "cannot reach that path\n");
        return;
    }
    if (fstatat(dirfd, leaf, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        st = graced_errno_status(errno);
        close(dirfd);
        graced_reply(req, st, st == 404 ? "not found\n" : "cannot reach that path\n");
        return;
    }
    if (graced_dav_check(req, g, rel, GRACED_LOCK_SELF | GRACED_LOCK_PARENT |
                                          (S_ISDIR(sb.st_mode) ? GRACED_LOCK_BELOW : 0),
                         NULL, 0)) {
        close(dirfd);
        return;
    }
    if (im) {
        graced_etag(&sb, etag, sizeof(etag));
        if (S_ISDIR(sb.st_mode) || !graced_etag_match(im, etag, 0)) {
            close(dirfd);
            graced_reply(req, 412, "precondition failed: another version\n");
            return;
        }
    }
    delete_on_pool(req, g, dirfd, leaf, rel, !S_ISDIR(sb.st_mode));
}
