/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * copymove.c - WebDAV COPY and MOVE within the upload tree.
 *
 * The Destination must be this server (an absolute URI whose authority is
 * the request's Host, else 502) and a name graced takes for writing (path.c:
 * no "..", no dot-names unless --show-hidden, no temporary names, not
 * --metrics); neither the top folder, nor the source itself, nor a place
 * inside the source, nor a folder above it (403). Overwrite: F and a taken
 * Destination is 412; Overwrite: T (the default) replaces it: a file over a
 * file at once, anything else after the old one is removed.
 *
 * MOVE is a rename: atomic, RENAME_NOREPLACE when nothing may be replaced
 * (a name taken meanwhile is 412, never overwritten); a folder or file
 * replacing a folder is exchanged with it (RENAME_EXCHANGE) and the old
 * one then removed, so the Destination never goes missing in between.
 * Both folders are fsync'ed, and those above the destination's (one may
 * be new: an upload on its way made it). Dead properties are the file's own and go
 * along; locks on the source go away (RFC 4918 7: they are not moved).
 *
 * COPY writes each file as an upload is written (store.c): a locked
 * temporary file, the bytes (copy_file_range: the filesystem may share
 * the blocks), the dead properties, fsync, rename, and the folder's fsync:
 * a file is never visible half-copied. A folder is copied with Depth:
 * infinity (the default) or alone with Depth: 0. Temporary upload files
 * are not copied, nor symbolic links (each a 403 in the 207). A folder
 * copied, or replaced, counts its entries first: over --dav-tree-max is
 * 403 before anything is touched. The work runs on the pool (davjob.c).
 *
 * A folder fsync that fails is a 500 (done, but not durable; never tried
 * again), a folder copied inside whose fsync fails a 500 in the 207. What
 * moved or was replaced is forgotten (locks, cache) once the work is done,
 * also when the client left before its answer.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CM_MAX_FAILS 100 /* members listed in a 207 */
#define CM_DEPTH 64

struct cm {
    struct graced *g;
    int move, overwrite, infinite;
    int sdir, ddir;      /* the folders of source and destination */
    int existed;         /* the destination was there */
    int err;             /* the request's failure (an errno), or 0 */
    int sync_err;        /* done, but a folder's fsync failed (an errno) */
    int changed;         /* done: the destination written (a MOVE: the source gone) */
    int cleared;         /* what was at the destination removed */
    int nfails;
    struct evbuffer *fails; /* <D:response>s of members that failed */
    long max;
    char sleaf[256], dleaf[256];
    char srel[4096], drel[4096];
};

static int status_of(int err)
{
    switch (err) {
    case EEXIST: return 412;
    case E2BIG: return 403;
    case EBUSY: return 423; /* an upload in flight there */
    case ELOOP: return 403;
    default: return graced_errno_status(err);
    }
}

/* A member (rel below the top of the tree) that could not be done. */
static void fail(struct cm *c, const char *rel, int err)
{
    char enc[3 * 4096 + 2];
    int st = status_of(err);
    if (c->nfails++ >= CM_MAX_FAILS)
        return;
    enc[0] = '/';
    graced_path_encode(rel, enc + 1, sizeof(enc) - 1);
    evbuffer_add_printf(c->fails, "<D:response><D:href>%s</D:href><D:status>HTTP/1.1 %d %s"
                                  "</D:status></D:response>",
                        enc, st, grace_status_reason(st));
}

struct rmfail {
    struct cm *c;
    const char *base;
};

static void rm_fail(const char *rel, int err, void *arg)
{
    struct rmfail *f = arg;
    char path[4096 + 4096 + 2];
    snprintf(path, sizeof(path), "%s%s%s", f->base, rel[0] ? "/" : "", rel);
    fail(f->c, path, err);
}

/* One file: bytes, dead properties, then it gets its name. 0 or -errno. */
static int copy_file(int sdir, const char *sname, int ddir, const char *dname, int noreplace)
{
    char tmp[NAME_MAX + 1];
    /* O_NONBLOCK: a FIFO put there since the stat must not hold the thread */
    int in = openat(sdir, sname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), out, rc = 0;
    struct stat st;
    if (in < 0)
        return -errno;
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(in);
        return -EPERM;
    }
    if ((out = graced_store_tmp_open(ddir, dname, tmp, sizeof(tmp))) < 0) {
        close(in);
        return out;
    }
    for (off_t left = st.st_size; left > 0 && !rc;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
            char buf[65536]; /* no copy_file_range here: by hand */
            n = read(in, buf, sizeof(buf));
            if (n > 0 && write(out, buf, (size_t)n) != n)
                n = -1;
        }
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break; /* the source shrank meanwhile: what there was */
        else
            left -= n;
    }
    if (!rc)
        rc = graced_props_copy(in, out);
    close(in);
    if (!rc)
        rc = graced_store_tmp_commit(ddir, out, tmp, dname, noreplace);
    else
        unlinkat(ddir, tmp, 0);
    close(out);
    return rc;
}

/* Everything in folder sfd into folder dfd; rel: dfd's path (for the 207). */
static void copy_dir(struct cm *c, int sfd, int dfd, const char *rel, int depth)
{
    int own = openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = own >= 0 ? fdopendir(own) : NULL;
    struct dirent *e;
    char path[4096 + 256 + 2];
    if (!d) {
        if (own >= 0)
            close(own);
        fail(c, rel, errno);
        return;
    }
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        struct stat st;
        int rc = 0;
        if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
            continue;
        if (!strncmp(n, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1))
            continue; /* an upload not yet stored (or a stale one): not a file yet */
        snprintf(path, sizeof(path), "%s/%s", rel, n);
        if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            fail(c, path, errno);
            continue;
        }
        if (S_ISREG(st.st_mode)) {
            rc = copy_file(sfd, n, dfd, n, 1);
        } else if (S_ISDIR(st.st_mode) && depth < CM_DEPTH) {
            int s2, d2 = -1;
            if (mkdirat(dfd, n, 0755) < 0 ||
                (s2 = openat(sfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                fail(c, path, errno);
                continue;
            }
            if ((d2 = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                rc = -errno;
            } else {
                graced_props_copy(s2, d2);
                copy_dir(c, s2, d2, path, depth + 1);
                close(d2);
            }
            close(s2);
        } else {
            rc = -(S_ISDIR(st.st_mode) ? ELOOP : EPERM); /* too deep; a link, a device */
        }
        if (rc < 0)
            fail(c, path, -rc);
    }
    if (fsync(dfd) < 0)
        fail(c, rel, errno); /* what it holds may not survive a crash */
    closedir(d);
}

/* After a rename or a write: the folders made durable (errors noted, never
 * retried): the destination's and those above it (one may be new), and
 * the source's for a MOVE. */
static void sync_folders(struct cm *c)
{
    const char *leaf = strrchr(c->drel, '/');
    int rc;
    c->changed = 1;
    if (fsync(c->ddir) < 0 || (c->move && c->ddir != c->sdir && fsync(c->sdir) < 0))
        c->sync_err = errno;
    else if ((rc = graced_path_sync_dirs(c->g->upload_fd, c->drel,
                                         leaf ? (size_t)(leaf - c->drel) : 0)) < 0)
        c->sync_err = -rc;
}

/* What is at the destination goes (Overwrite: T over a folder, or with a
 * folder). 0, or -1 with failures recorded. */
static int clear_dest(struct cm *c)
{
    struct rmfail f = {c, c->drel};
    c->cleared = 1;
    return graced_tree_remove(c->ddir, c->dleaf, rm_fail, &f);
}

/* Is a folder at dirfd/name within --dav-tree-max? (files: yes) */
static int small_enough(struct cm *c, int dirfd, const char *name, const struct stat *st)
{
    int fd;
    long n;
    if (!S_ISDIR(st->st_mode))
        return 1;
    if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return 1; /* the step itself will say why */
    n = graced_tree_count(fd, c->max);
    close(fd);
    return n <= c->max;
}

static void do_move(struct cm *c, const struct stat *sst, const struct stat *dst)
{
    struct rmfail f = {c, c->srel};
    if (!c->existed) {
        if (renameat2(c->sdir, c->sleaf, c->ddir, c->dleaf, RENAME_NOREPLACE) < 0) {
            if (errno != EINVAL) {
                c->err = errno;
                return;
            }
            /* no RENAME_NOREPLACE here (NFS): a plain rename, checked just before */
            if (faccessat(c->ddir, c->dleaf, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                c->err = EEXIST;
                return;
            }
            if (renameat(c->sdir, c->sleaf, c->ddir, c->dleaf) < 0) {
                c->err = errno;
                return;
            }
        }
    } else if (!S_ISDIR(sst->st_mode) && !S_ISDIR(dst->st_mode)) {
        if (renameat(c->sdir, c->sleaf, c->ddir, c->dleaf) < 0) { /* atomic replace */
            c->err = errno;
            return;
        }
    } else if (renameat2(c->sdir, c->sleaf, c->ddir, c->dleaf, RENAME_EXCHANGE) == 0) {
        /* the new one is in place; the old one now has the source's name */
        graced_tree_remove(c->sdir, c->sleaf, rm_fail, &f);
    } else {
        if (clear_dest(c) < 0)
            return;
        if (renameat(c->sdir, c->sleaf, c->ddir, c->dleaf) < 0) {
            c->err = errno;
            return;
        }
    }
    sync_folders(c);
}

static void do_copy(struct cm *c, const struct stat *sst, const struct stat *dst)
{
    int rc;
    if (c->existed && (S_ISDIR(sst->st_mode) || S_ISDIR(dst->st_mode))) {
        if (clear_dest(c) < 0)
            return;
        c->existed = 2; /* still 204, and the name is free again */
    }
    if (S_ISREG(sst->st_mode)) {
        if ((rc = copy_file(c->sdir, c->sleaf, c->ddir, c->dleaf, c->existed != 1)) < 0)
            c->err = -rc;
    } else {
        int s2, d2;
        if (mkdirat(c->ddir, c->dleaf, 0755) < 0) {
            c->err = errno;
            return;
        }
        s2 = openat(c->sdir, c->sleaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        d2 = openat(c->ddir, c->dleaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s2 >= 0 && d2 >= 0) {
            graced_props_copy(s2, d2);
            if (c->infinite)
                copy_dir(c, s2, d2, c->drel, 0);
        } else {
            c->err = errno;
        }
        if (s2 >= 0)
            close(s2);
        if (d2 >= 0)
            close(d2);
    }
    if (!c->err)
        sync_folders(c);
}

static void cm_work(void *arg)
{
    struct cm *c = arg;
    struct stat sst, dst;
    if (fstatat(c->sdir, c->sleaf, &sst, AT_SYMLINK_NOFOLLOW) < 0) {
        c->err = errno;
        return;
    }
    if (!S_ISREG(sst.st_mode) && !S_ISDIR(sst.st_mode)) {
        c->err = EPERM; /* a symbolic link: never followed, never moved */
        return;
    }
    c->existed = fstatat(c->ddir, c->dleaf, &dst, AT_SYMLINK_NOFOLLOW) == 0;
    if (c->existed && !c->overwrite) {
        c->err = EEXIST;
        return;
    }
    if ((!c->move && c->infinite && !small_enough(c, c->sdir, c->sleaf, &sst)) ||
        (c->existed && (S_ISDIR(sst.st_mode) || S_ISDIR(dst.st_mode)) &&
         !small_enough(c, c->ddir, c->dleaf, &dst))) {
        c->err = E2BIG;
        return;
    }
    if (c->move)
        do_move(c, &sst, &dst);
    else
        do_copy(c, &sst, &dst);
}

static void cm_done(struct grace_request *req, struct graced *g, void *arg)
{
    struct cm *c = arg;
    struct evbuffer *b;
    if (c->err) {
        int st = status_of(c->err);
        graced_reply(req, st, c->err == EEXIST ? "the destination exists (Overwrite: F)\n"
                              : c->err == E2BIG ? "the folder holds more than --dav-tree-max "
                                                  "entries\n"
                              : st == 404 ? "not found\n"
                              : st == 409 ? "the destination's folder does not exist\n"
                              : st == 507 ? "not enough space\n"
                                          : "could not do it\n");
        return;
    }
    if (c->sync_err) {
        graced_log(LOG_ERR, "%s %s to %s: done, but a folder's fsync failed (%s): not durable",
                   c->move ? "MOVE" : "COPY", c->srel, c->drel, strerror(c->sync_err));
        graced_reply(req, 500, "done, but a folder could not be synced to disk: not durable "
                               "(a crash may undo it)\n");
        return;
    }
    if (!c->nfails) {
        graced_reply(req, c->existed ? 204 : 201, c->existed ? NULL : "created\n");
        return;
    }
    if (!(b = evbuffer_new())) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                           "<D:multistatus xmlns:D=\"DAV:\">");
    evbuffer_add_buffer(b, c->fails);
    evbuffer_add_printf(b, "</D:multistatus>\n");
    grace_response_add_header(req, "Content-Type", "application/xml; charset=utf-8");
    grace_reply_buffer(req, 207, b);
    evbuffer_free(b);
}

/* after cm_done, or without it (the client left) */
static void cm_free(void *arg)
{
    struct cm *c = arg;
    if (c->changed && c->move) {
        graced_locktab_drop(c->g, c->srel);
        graced_files_forget(c->g, c->srel);
    }
    if (c->changed || c->cleared)
        graced_files_forget(c->g, c->drel);
    if (c->sdir >= 0)
        close(c->sdir);
    if (c->ddir >= 0)
        close(c->ddir);
    if (c->fails)
        evbuffer_free(c->fails);
    free(c);
}

/* Is a below b (or b itself)? */
static int within(const char *a, const char *b)
{
    size_t n = strlen(b);
    return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

static int open_parent(struct graced *g, const char *rel, char *leaf)
{
    const char *s = strrchr(rel, '/');
    snprintf(leaf, 256, "%s", s ? s + 1 : rel);
    return graced_path_open_dir(g->upload_fd, rel, s ? (size_t)(s - rel) : 0, 0);
}

void graced_copymove(struct grace_request *req, struct graced *g)
{
    const char *dest = grace_request_header(req, "Destination");
    const char *ow = grace_request_header(req, "Overwrite");
    const char *depth = grace_request_header(req, "Depth");
    struct cm *c;
    int st, trailing, move = !strcmp(grace_request_method(req), "MOVE");

    if (!(c = calloc(1, sizeof(*c))) || !(c->fails = evbuffer_new())) {
        free(c);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    c->g = g;
    c->move = move;
    c->sdir = c->ddir = -1;
    c->max = (long)g->o.dav_tree_max;
    c->overwrite = !ow || !strcasecmp(ow, "T");
    c->infinite = !depth || !strcasecmp(depth, "infinity");
    if ((ow && strcasecmp(ow, "T") && strcasecmp(ow, "F")) ||
        (depth && !c->infinite && (move || strcmp(depth, "0")))) {
        graced_reply(req, 400, move ? "MOVE: Depth infinity; Overwrite: T or F\n"
                                    : "COPY: Depth 0 or infinity; Overwrite: T or F\n");
        goto out;
    }
    if (!dest) {
        graced_reply(req, 400, "no Destination header\n");
        goto out;
    }
    if ((st = graced_path_of(req, c->srel, sizeof(c->srel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, "bad path\n");
        goto out;
    }
    if ((st = graced_path_uri(req, dest, strlen(dest), c->drel, sizeof(c->drel),
                              graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, st == 502 ? "the Destination is another server\n"
                                        : "the Destination is not a name this server takes "
                                          "(a dot-name, a temporary name, a control "
                                          "character, not UTF-8?)\n");
        goto out;
    }
    if (graced_path_reserved(g, c->drel)) {
        graced_reply(req, 409, "the Destination is graced's --metrics\n");
        goto out;
    }
    if (!c->srel[0] || !c->drel[0] || within(c->drel, c->srel) || within(c->srel, c->drel)) {
        graced_reply(req, 403, !c->srel[0] || !c->drel[0]
                                   ? "not the top folder\n"
                                   : !strcmp(c->srel, c->drel)
                                         ? "the source and the Destination are the same\n"
                                         : "the Destination is inside the source, or holds "
                                           "it\n");
        goto out;
    }
    if (graced_dav_check(req, g, c->srel,
                         move ? GRACED_LOCK_SELF | GRACED_LOCK_PARENT | GRACED_LOCK_BELOW : 0,
                         c->drel, GRACED_LOCK_SELF | GRACED_LOCK_PARENT | GRACED_LOCK_BELOW))
        goto out;
    if ((c->sdir = open_parent(g, c->srel, c->sleaf)) < 0) {
        st = graced_errno_status(c->sdir);
        graced_reply(req, st == 409 ? 404 : st, "not found\n");
        goto out;
    }
    if ((c->ddir = open_parent(g, c->drel, c->dleaf)) < 0) {
        st = graced_errno_status(c->ddir);
        graced_reply(req, st == 404 ? 409 : st, "the Destination's folder does not exist\n");
        goto out;
    }
    graced_dav_run(g, req, cm_work, cm_done, cm_free, c);
    return;
out:
    cm_free(c);
}
