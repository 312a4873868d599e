/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tree.c - a folder and everything in it, for the jobs of WebDAV's DELETE,
 * MOVE and COPY of folders (on the pool's threads: each step can wait for
 * the disk). Symbolic links are entries like any other, never followed:
 * every folder is opened with O_NOFOLLOW below the one before, so nothing
 * outside the tree is counted or removed.
 *
 * A temporary file that an upload still holds (its OFD lock, store.c) is
 * left in place, and so is its folder: removing a folder never loses a
 * file being stored there; the caller reports it (423).
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TREE_DEPTH 64

static DIR *open_sub(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    return d;
}

static int dots(const char *n)
{
    return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]));
}

static long count(int fd, long max, long n, int depth)
{
    int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = own >= 0 ? fdopendir(own) : NULL;
    struct dirent *e;
    if (!d) {
        if (own >= 0)
            close(own);
        return n;
    }
    while (n <= max && (e = readdir(d))) {
        if (dots(e->d_name))
            continue;
        n++;
        if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                n = depth >= TREE_DEPTH ? max + 1 : count(sub, max, n, depth + 1);
                close(sub);
            }
        }
    }
    closedir(d);
    return n;
}

long graced_tree_count(int fd, long max)
{
    return count(fd, max, 0, 0);
}

/* A temporary upload file that its writer still holds? */
static int in_flight(int dirfd, const char *name)
{
    struct flock lk;
    int fd, busy;
    if (strncmp(name, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1))
        return 0;
    if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
        return 0;
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_RDLCK;
    lk.l_whence = SEEK_SET;
    busy = fcntl(fd, F_OFD_GETLK, &lk) == 0 && lk.l_type != F_UNLCK;
    close(fd);
    return busy;
}

struct rm {
    void (*fail)(const char *rel, int err, void *arg);
    void *arg;
    char rel[4096];
};

/* Remove what folder d holds; rel[0..len) is its path below the top. 0 if
 * all went. */
static int empty(struct rm *r, DIR *d, size_t len, int depth)
{
    struct dirent *e;
    int left = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        int rc;
        if (dots(e->d_name))
            continue;
        if (len + n + 2 > sizeof(r->rel)) {
            left = 1;
            continue;
        }
        snprintf(r->rel + len, sizeof(r->rel) - len, "%s%s", len ? "/" : "", e->d_name);
        if (in_flight(dirfd(d), e->d_name)) {
            r->fail(r->rel, EBUSY, r->arg);
            left = 1;
            r->rel[len] = '\0';
            continue;
        }
        rc = unlinkat(dirfd(d), e->d_name, 0);
        if (rc < 0 && errno == EISDIR) {
            DIR *sub = depth < TREE_DEPTH ? open_sub(dirfd(d), e->d_name) : NULL;
            size_t sl = strlen(r->rel);
            int err = errno, sub_left = sub ? empty(r, sub, sl, depth + 1) : 1;
            if (sub)
                closedir(sub);
            r->rel[sl] = '\0';
            if (!sub)
                r->fail(r->rel, depth >= TREE_DEPTH ? ELOOP : err, r->arg);
            rc = sub_left ? -1 : unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
            if (rc < 0 && !sub_left)
                r->fail(r->rel, errno, r->arg);
        } else if (rc < 0) {
            r->fail(r->rel, errno, r->arg);
        }
        if (rc < 0)
            left = 1;
        r->rel[len] = '\0';
    }
    if (!left)
        fsync(dirfd(d));
    return left;
}

int graced_tree_remove(int dirfd, const char *name,
                       void (*fail)(const char *rel, int err, void *arg), void *arg)
{
    struct rm r;
    DIR *d;
    int left;
    r.fail = fail;
    r.arg = arg;
    r.rel[0] = '\0';
    if (unlinkat(dirfd, name, 0) == 0)
        return 0;
    if (errno != EISDIR) {
        fail("", errno, arg);
        return -1;
    }
    if (!(d = open_sub(dirfd, name))) {
        fail("", errno, arg);
        return -1;
    }
    left = empty(&r, d, 0, 0);
    closedir(d);
    if (left)
        return -1;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) {
        fail("", errno, arg);
        return -1;
    }
    return 0;
}
