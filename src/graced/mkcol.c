/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mkcol.c - WebDAV MKCOL: a new folder in the upload tree. RFC 4918 9.3:
 * 201 made, 405 the name exists, 409 its folder does not (nothing is made
 * on the way, unlike PUT), 415 a body (none is defined), 423 locked. The
 * new folder, its parent and every folder above up to the upload tree (one
 * may be new: an upload on its way made it) are fsync'ed, on the pool,
 * before the answer; a sync that fails is a 500 (the folder is there, but
 * a crash may take it).
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mk {
    int dirfd, top;
    int err, sync_err;
    char leaf[256];
    char rel[4096];
};

static void mk_work(void *arg)
{
    struct mk *m = arg;
    const char *leaf = strrchr(m->rel, '/');
    int fd, rc;
    if (mkdirat(m->dirfd, m->leaf, 0755) < 0) {
        m->err = errno;
        return;
    }
    fd = openat(m->dirfd, m->leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0 || fsync(m->dirfd) < 0)
        m->sync_err = errno;
    else if ((rc = graced_path_sync_dirs(m->top, m->rel, leaf ? (size_t)(leaf - m->rel) : 0)) < 0)
        m->sync_err = -rc;
    if (fd >= 0)
        close(fd);
}

static void mk_done(struct grace_request *req, struct graced *g, void *arg)
{
    struct mk *m = arg;
    char loc[3 * sizeof(m->rel) + 3];
    (void)g;
    if (m->sync_err) { /* never a second fsync: it may report success for what the first lost */
        graced_log(LOG_ERR, "MKCOL %s: made, but not synced to disk (%s): not durable", m->rel,
                   strerror(m->sync_err));
        graced_reply(req, 500, "the folder was made, but could not be synced to disk: not "
                               "durable (a crash may lose it)\n");
    } else if (m->err == EEXIST) {
        graced_reply(req, 405, "that name exists\n");
    } else if (m->err) {
        int st = graced_errno_status(m->err);
        graced_reply(req, st == 404 ? 409 : st, "could not make the folder\n");
    } else {
        loc[0] = '/';
        graced_path_encode(m->rel, loc + 1, sizeof(loc) - 2);
        strcat(loc, "/");
        grace_response_add_header(req, "Location", loc);
        graced_reply(req, 201, "created\n");
    }
}

static void mk_release(void *arg)
{
    struct mk *m = arg;
    close(m->dirfd);
    free(m);
}

void graced_mkcol(struct grace_request *req, struct graced *g)
{
    struct mk *m;
    const char *leaf;
    struct stat st;
    int rc, trailing, dirfd;
    char rel[4096];

    if ((rc = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, rc, rc == 414 ? "name too long\n" : "bad folder name\n");
        return;
    }
    if (grace_request_content_length(req) != 0 || grace_request_is_chunked(req)) {
        graced_reply(req, 415, "MKCOL takes no body\n");
        return;
    }
    if (!rel[0]) {
        graced_reply(req, 405, "the top folder exists\n");
        return;
    }
    if (graced_path_reserved(g, rel)) {
        graced_reply(req, 409, "this path is graced's --metrics\n");
        return;
    }
    leaf = strrchr(rel, '/');
    dirfd = graced_path_open_dir(g->upload_fd, rel, leaf ? (size_t)(leaf - rel) : 0, 0);
    leaf = leaf ? leaf + 1 : rel;
    if (dirfd < 0) {
        rc = graced_errno_status(dirfd);
        graced_reply(req, rc == 404 ? 409 : rc, rc == 404 || rc == 409
                                                    ? "the folder above does not exist\n"
                                                    : "cannot reach that path\n");
        return;
    }
    if (fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        close(dirfd);
        graced_reply(req, 405, "that name exists\n");
        return;
    }
    if (graced_dav_check(req, g, rel, GRACED_LOCK_SELF | GRACED_LOCK_PARENT, NULL, 0)) {
        close(dirfd);
        return;
    }
    if (!(m = calloc(1, sizeof(*m)))) {
        close(dirfd);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    m->dirfd = dirfd;
    m->top = g->upload_fd;
    snprintf(m->leaf, sizeof(m->leaf), "%.255s", leaf);
    snprintf(m->rel, sizeof(m->rel), "%s", rel);
    graced_dav_run(g, req, mk_work, mk_done, mk_release, m);
}
