/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * partial.c - resumable uploads on disk (the protocols are resumable.c's):
 * each unfinished upload is two files in one folder of the upload tree,
 * GRACED_PARTIAL_DIR, named by its id (128 random bits in hex, which is
 * also its URL, so it cannot be guessed):
 *
 *   ID        the bytes received so far; its size is the upload's offset
 *   ID.info   what the upload is: its target (folder and name), its length
 *             if known, its owner (the login that made it), If-None-Match
 *             and If-Match, its expiry, the client's tus metadata, and
 *             whether it is complete
 *
 * State on disk, not in a process: any worker, any instance on the same
 * --upload-dir, and graced after a restart take the next request of an
 * upload. The lock rules are store.c's: a request writing an upload holds
 * an OFD lock on its data file (graced_store_adopt) for its time, and
 * nothing is removed while someone holds one, by the sweep or a DELETE
 * (both take the lock first). Between requests nobody holds it: then the
 * upload lives by its expiry, not by a lock.
 *
 * The info is made with the data file (an empty one) and rewritten as a
 * whole (a new file, fsync'ed, renamed over it) when the length becomes
 * known and when the upload completes. A complete upload's data file has
 * been renamed to its target; its info stays until it expires, so that a
 * client whose last answer was lost learns that it is complete.
 *
 * Durability: an offset is told (HEAD, an append's answer) only once it is
 * on the disk (fsync first), so that it never goes back after a crash.
 *
 * Expiry: an upload nobody has written to for its expiry (--upload-expiry
 * when it was made; the data file's mtime, or the info's once complete)
 * is removed by the sweep: worker 1, on the pool, at its start and then
 * every tenth of the expiry (1 s to 1 min). The sweep also counts what
 * unfinished uploads hold (/metrics), and removes the leftovers of a crash
 * (a data file without an info, a half-written info) once older than
 * --stale-upload-age.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define INFO_MAX 8192   /* bytes of an info file */
#define INFO_SUFFIX ".info"
#define NEW_SUFFIX ".new"

struct graced_partials {
    struct graced *g;
    int dirfd;              /* GRACED_PARTIAL_DIR, or -1: resumable uploads off */
    dev_t dev;              /* its filesystem: targets must be on it (rename) */
    struct event *sweep_ev; /* worker 1 */
    struct graced_job sweep;
    int sweep_busy;
    int warned;
    /* the sweep's results */
    int64_t expired, count, bytes, removed;
};

#define OP_OF(j) ((struct graced_partial_op *)((char *)(j) - offsetof(struct graced_partial_op, job)))

static int ofd_lock(int fd, short type)
{
    struct flock lk;
    memset(&lk, 0, sizeof(lk));
    lk.l_type = type;
    lk.l_whence = SEEK_SET;
    return fcntl(fd, F_OFD_SETLK, &lk);
}

/* Someone holds the lock (not: the filesystem has none). */
static int locked_out(int err)
{
    return err == EAGAIN || err == EACCES;
}

int graced_partial_id_ok(const char *s, size_t n)
{
    if (n != GRACED_PARTIAL_ID)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* The folder, opened once it exists (made by the first upload, so that a
 * tree that never gets one is left as it was). -1 if not there (or
 * unusable: logged once). */
static int open_dir(struct graced_partials *ps, int create)
{
    struct graced *g = ps->g;
    struct stat st;
    if (ps->dirfd >= 0 || g->upload_fd < 0)
        return ps->dirfd;
    if (create && mkdirat(g->upload_fd, GRACED_PARTIAL_DIR, 0700) < 0 && errno != EEXIST)
        goto fail;
    /* O_NOFOLLOW: a symbolic link there would take uploads elsewhere (no
     * client can make one: the name is refused to all) */
    ps->dirfd = openat(g->upload_fd, GRACED_PARTIAL_DIR,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ps->dirfd < 0 || fstat(ps->dirfd, &st) < 0)
        goto fail;
    ps->dev = st.st_dev;
    return ps->dirfd;
fail:
    if (errno != ENOENT && !ps->warned) {
        ps->warned = 1;
        graced_log(LOG_ERR, "resumable uploads: %s/%s: %s", g->o.upload_dir, GRACED_PARTIAL_DIR,
                   strerror(errno));
    }
    if (ps->dirfd >= 0)
        close(ps->dirfd);
    ps->dirfd = -1;
    return -1;
}

int graced_partial_dirfd(const struct graced *g)
{
    return g->partials ? open_dir(g->partials, 0) : -1;
}

int graced_partial_prepare(struct graced *g)
{
    return g->partials && open_dir(g->partials, 1) >= 0 ? 0 : -1;
}

int graced_partial_same_fs(const struct graced *g, int dirfd)
{
    struct stat st;
    return graced_partial_dirfd(g) >= 0 && fstat(dirfd, &st) == 0 &&
           st.st_dev == g->partials->dev;
}

int64_t graced_partial_space(const struct graced *g)
{
    struct statvfs vs;
    int fd = graced_partial_dirfd(g);
    if (fd < 0 || fstatvfs(fd, &vs) < 0)
        return -1;
    return (int64_t)vs.f_bavail * (int64_t)vs.f_frsize;
}

static int64_t ms_of(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

int64_t graced_partial_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t); /* file times are wall-clock times */
    return ms_of(&t);
}

int64_t graced_partial_expires(const struct graced_partial *p)
{
    return p->touched_ms + p->expiry_ms;
}

/* ---------------------------------------------------------------- the info */

static int format_info(const struct graced_partial *p, char *buf, size_t n)
{
    int len = snprintf(buf, n,
                       "graced-partial 1\nproto %s\nowner %s\ndir %s\nname %s\nlength %lld\n"
                       "noreplace %d\nif-match %s\nexpiry %lld\nmetadata %s\ncomplete %d\n",
                       p->proto == GRACED_PROTO_IETF ? "ietf" : "tus", p->owner, p->dir, p->name,
                       (long long)p->length, p->noreplace, p->if_match,
                       (long long)p->expiry_ms, p->metadata, p->complete);
    if (len < 0 || (size_t)len >= n)
        return -ENAMETOOLONG;
    /* one line per field: a value with a line end would forge the next */
    for (int i = 0, lines = 0; i < len; i++)
        if (buf[i] == '\n' && ++lines > 11)
            return -EINVAL;
    return len;
}

static int64_t number(const char *v)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    return end == v || *end ? INT64_MIN : x;
}

static int parse_info(char *buf, struct graced_partial *p)
{
    char *line = buf, *nl;
    int seen = 0;
    if (strncmp(buf, "graced-partial 1\n", 17))
        return -EINVAL;
    for (line = buf + 17; (nl = strchr(line, '\n')); line = nl + 1) {
        char *v = strchr(line, ' ');
        *nl = '\0';
        if (!v)
            return -EINVAL;
        *v++ = '\0';
#define FIELD(k) (!strcmp(line, k) && ++seen)
#define COPY(dst) snprintf(dst, sizeof(dst), "%s", v) >= (int)sizeof(dst)
        if (FIELD("proto"))
            p->proto = !strcmp(v, "ietf") ? GRACED_PROTO_IETF : GRACED_PROTO_TUS;
        else if (FIELD("owner")) {
            if (COPY(p->owner))
                return -EINVAL;
        } else if (FIELD("dir")) {
            if (COPY(p->dir))
                return -EINVAL;
        } else if (FIELD("name")) {
            if (COPY(p->name))
                return -EINVAL;
        } else if (FIELD("length"))
            p->length = number(v);
        else if (FIELD("noreplace"))
            p->noreplace = number(v) == 1;
        else if (FIELD("if-match")) {
            if (COPY(p->if_match))
                return -EINVAL;
        } else if (FIELD("expiry"))
            p->expiry_ms = number(v);
        else if (FIELD("metadata")) {
            if (COPY(p->metadata))
                return -EINVAL;
        } else if (FIELD("complete"))
            p->complete = number(v) == 1;
#undef FIELD
#undef COPY
    }
    if (seen != 10 || p->length < -1 || p->expiry_ms < 0 || !p->name[0])
        return -EINVAL;
    return 0;
}

/* Read ID.info below dirfd into p (and its mtime); 0, -ENOENT, -EINVAL. */
static int read_info(int dirfd, const char *id, struct graced_partial *p, struct stat *st)
{
    char name[GRACED_PARTIAL_ID + sizeof(INFO_SUFFIX)], buf[INFO_MAX + 1];
    ssize_t n;
    size_t got = 0;
    int fd, rc;
    snprintf(name, sizeof(name), "%s%s", id, INFO_SUFFIX);
    if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return errno == ENOENT ? -ENOENT : -errno;
    while (got < INFO_MAX && (n = read(fd, buf + got, INFO_MAX - got)) > 0)
        got += (size_t)n;
    rc = fstat(fd, st) < 0 ? -errno : 0;
    close(fd);
    if (rc)
        return rc;
    buf[got] = '\0';
    memset(p, 0, sizeof(*p));
    memcpy(p->id, id, GRACED_PARTIAL_ID);
    return parse_info(buf, p);
}

/* On a pool thread: ID.info (re)written as a whole: a new file, synced,
 * renamed over the old one, and the folder synced. 0 or a negative errno. */
static int write_info(int dirfd, const struct graced_partial *p)
{
    char buf[INFO_MAX], tmp[GRACED_PARTIAL_ID + 32], name[GRACED_PARTIAL_ID + 8];
    uint32_t r = 0;
    int len = format_info(p, buf, sizeof(buf)), fd, err = 0;
    if (len < 0)
        return len;
    (void)!getrandom(&r, sizeof(r), GRND_NONBLOCK);
    snprintf(tmp, sizeof(tmp), "%s.%08x%s", p->id, r, NEW_SUFFIX);
    snprintf(name, sizeof(name), "%s%s", p->id, INFO_SUFFIX);
    if ((fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return -errno;
    if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0)
        err = errno ? errno : EIO;
    close(fd);
    if (!err && renameat(dirfd, tmp, dirfd, name) < 0)
        err = errno;
    if (err) {
        unlinkat(dirfd, tmp, 0);
        return -err;
    }
    return fsync(dirfd) < 0 ? -errno : 0;
}

int graced_partial_load(struct graced *g, const char *id, struct graced_partial *p)
{
    int dirfd = graced_partial_dirfd(g), rc;
    struct stat ist, dst;
    if (dirfd < 0)
        return -ENOENT;
    if ((rc = read_info(dirfd, id, p, &ist)) < 0)
        return rc;
    p->has_data = fstatat(dirfd, id, &dst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(dst.st_mode);
    p->size = p->has_data ? dst.st_size : p->complete && p->length >= 0 ? p->length : 0;
    p->touched_ms = ms_of(p->has_data ? &dst.st_mtim : &ist.st_mtim);
    return 0;
}

/* ---------------------------------------------------------------- operations */

enum { OP_CREATE, OP_SAVE, OP_REMOVE, OP_PROBE };

/* Our new file still has its name (no sweep took it before our lock). */
static int still_named(int dirfd, const char *name, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && a.st_nlink > 0 &&
           fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
}

/* A new id, its empty data file and its info, all on the disk. The data
 * file is locked until its info is there: until then a sweep (another
 * instance's, with --stale-upload-age 0) would take it for a leftover. */
static int create(int dirfd, struct graced_partial *p)
{
    int fd = -1, err;
    for (int i = 0; i < 8 && fd < 0; i++) {
        unsigned char r[GRACED_PARTIAL_ID / 2];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return -EAGAIN;
        for (size_t k = 0; k < sizeof(r); k++)
            snprintf(p->id + 2 * k, 3, "%02x", r[k]);
        fd = openat(dirfd, p->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return -errno;
        if (fd >= 0 && ((ofd_lock(fd, F_WRLCK) < 0 && locked_out(errno)) ||
                        !still_named(dirfd, p->id, fd))) {
            close(fd); /* a sweep got there first: it is theirs, a new id for us */
            fd = -1;
        }
    }
    if (fd < 0)
        return -EEXIST;
    err = fsync(fd) < 0 ? -errno : 0;
    if (!err)
        err = write_info(dirfd, p); /* syncs the folder too */
    if (err)
        unlinkat(dirfd, p->id, 0);
    close(fd); /* and the lock: the upload is whole */
    return err;
}

/* Remove an upload: its info, then its data, under the data's lock (a
 * read lock, as the sweep's: it conflicts with a writer's). */
static int remove_upload(int dirfd, const char *id)
{
    char name[GRACED_PARTIAL_ID + 8];
    struct stat a, b;
    int fd = openat(dirfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), err = 0;
    if (fd >= 0 && ofd_lock(fd, F_RDLCK) < 0 && locked_out(errno)) {
        close(fd);
        return -EAGAIN;
    }
    snprintf(name, sizeof(name), "%s%s", id, INFO_SUFFIX);
    if (unlinkat(dirfd, name, 0) < 0)
        err = -errno;
    if (fd >= 0 && fstat(fd, &a) == 0 && fstatat(dirfd, id, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        unlinkat(dirfd, id, 0);
    if (fd >= 0)
        close(fd); /* a big file's blocks are freed here: on the pool */
    /* gone for good before it is told (a crash must not bring a cancelled
     * upload back); a failed sync is an error, never retried */
    if (!err && fsync(dirfd) < 0)
        err = -errno;
    return err;
}

/* The data's durable size: fstat, then fsync (what is told is on disk). */
static int probe(int dirfd, struct graced_partial *p)
{
    struct stat st;
    int fd = openat(dirfd, p->id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), err = 0;
    if (fd < 0) {
        p->has_data = 0;
        return errno == ENOENT ? 0 : -errno;
    }
    if (fstat(fd, &st) < 0 || fsync(fd) < 0)
        err = -errno;
    close(fd);
    if (!err) {
        p->has_data = 1;
        p->size = st.st_size;
        p->touched_ms = ms_of(&st.st_mtim);
    }
    return err;
}

static void op_work(struct graced_job *j)
{
    struct graced_partial_op *op = OP_OF(j);
    int dirfd = op->dirfd;
    switch (op->what) {
    case OP_CREATE:
        op->err = create(dirfd, op->p);
        /* the folder may be new (made on the loop for this upload): its
         * entry in the upload tree synced before the upload is told */
        if (!op->err)
            op->err = graced_path_sync_dirs(op->top, GRACED_PARTIAL_DIR,
                                            sizeof(GRACED_PARTIAL_DIR) - 1);
        break;
    case OP_SAVE: op->err = write_info(dirfd, op->p); break;
    case OP_REMOVE: op->err = remove_upload(dirfd, op->p->id); break;
    case OP_PROBE: op->err = probe(dirfd, op->p); break;
    }
}

static void op_done(struct graced_job *j)
{
    struct graced_partial_op *op = OP_OF(j);
    op->done(op);
}

static int run(struct graced *g, struct graced_partial_op *op, int what,
               struct graced_partial *p, void (*done)(struct graced_partial_op *op))
{
    if ((op->dirfd = graced_partial_dirfd(g)) < 0)
        return -ENOTSUP;
    op->what = what;
    op->top = g->upload_fd;
    op->p = p;
    op->err = 0;
    op->done = done;
    op->job.work = op_work;
    op->job.done = op_done;
    graced_pool_run(g->pool, &op->job);
    return 0;
}

int graced_partial_create(struct graced *g, struct graced_partial_op *op, struct graced_partial *p,
                          void (*done)(struct graced_partial_op *op))
{
    char buf[INFO_MAX];
    memcpy(p->id, "00000000000000000000000000000000", GRACED_PARTIAL_ID + 1);
    if (format_info(p, buf, sizeof(buf)) < 0) /* refused here, not on the pool */
        return -EINVAL;
    return run(g, op, OP_CREATE, p, done);
}

int graced_partial_save(struct graced *g, struct graced_partial_op *op, struct graced_partial *p,
                        void (*done)(struct graced_partial_op *op))
{
    return run(g, op, OP_SAVE, p, done);
}

int graced_partial_remove(struct graced *g, struct graced_partial_op *op,
                          struct graced_partial *p, void (*done)(struct graced_partial_op *op))
{
    return run(g, op, OP_REMOVE, p, done);
}

int graced_partial_probe(struct graced *g, struct graced_partial_op *op, struct graced_partial *p,
                         void (*done)(struct graced_partial_op *op))
{
    return run(g, op, OP_PROBE, p, done);
}

/* ---------------------------------------------------------------- the sweep */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* One upload (its info is there): expired and nobody writing? Removed.
 * Else counted, if unfinished. */
static void sweep_one(struct graced_partials *ps, const char *id, int64_t now)
{
    struct graced_partial p;
    struct stat ist, st;
    int fd, rc = read_info(ps->dirfd, id, &p, &ist);
    int64_t touched;
    if (rc == -EINVAL && now - ms_of(&ist.st_mtim) > ps->g->o.stale_upload_age_ms) {
        ps->removed += remove_upload(ps->dirfd, id) == 0; /* garbage, and old */
        return;
    }
    if (rc < 0)
        return;
    fd = openat(ps->dirfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && ofd_lock(fd, F_RDLCK) < 0 && locked_out(errno)) {
        ps->count++; /* someone is writing it */
        ps->bytes += st.st_size;
        close(fd);
        return;
    }
    touched = ms_of(fd >= 0 ? &st.st_mtim : &ist.st_mtim);
    if (fd >= 0)
        close(fd); /* our read lock with it: remove_upload takes its own */
    if (now - touched <= p.expiry_ms) {
        if (fd >= 0 && !p.complete) {
            ps->count++;
            ps->bytes += st.st_size;
        }
        return;
    }
    if (remove_upload(ps->dirfd, id) == 0 && fd >= 0 && !p.complete)
        ps->expired++;
}

/* A data file without an info (a creation cut short), or a new info that
 * was never renamed: once old enough and nobody's. */
static void sweep_leftover(struct graced_partials *ps, const char *name, int64_t now)
{
    struct stat st;
    char info[GRACED_PARTIAL_ID + 8];
    int fd;
    if (graced_partial_id_ok(name, strlen(name))) {
        snprintf(info, sizeof(info), "%s%s", name, INFO_SUFFIX);
        if (fstatat(ps->dirfd, info, &st, AT_SYMLINK_NOFOLLOW) == 0)
            return; /* an upload: sweep_one's */
    } else if (!ends_with(name, NEW_SUFFIX)) {
        return; /* not ours */
    }
    fd = openat(ps->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        now - ms_of(&st.st_mtim) > ps->g->o.stale_upload_age_ms &&
        !(ofd_lock(fd, F_RDLCK) < 0 && locked_out(errno)))
        ps->removed += unlinkat(ps->dirfd, name, 0) == 0;
    close(fd);
}

static void sweep_work(struct graced_job *j)
{
    struct graced_partials *ps =
        (struct graced_partials *)((char *)j - offsetof(struct graced_partials, sweep));
    int fd = openat(ps->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    int64_t now = graced_partial_now();
    ps->expired = ps->count = ps->bytes = ps->removed = 0;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n == GRACED_PARTIAL_ID + sizeof(INFO_SUFFIX) - 1 && ends_with(e->d_name, INFO_SUFFIX) &&
            graced_partial_id_ok(e->d_name, GRACED_PARTIAL_ID)) {
            char id[GRACED_PARTIAL_ID + 1];
            memcpy(id, e->d_name, GRACED_PARTIAL_ID);
            id[GRACED_PARTIAL_ID] = '\0';
            sweep_one(ps, id, now);
        } else if (e->d_name[0] != '.') {
            sweep_leftover(ps, e->d_name, now);
        }
    }
    closedir(d);
}

static void sweep_done(struct graced_job *j)
{
    struct graced_partials *ps =
        (struct graced_partials *)((char *)j - offsetof(struct graced_partials, sweep));
    if (ps->expired || ps->removed)
        graced_log(LOG_INFO, "resumable uploads: %lld expired, %lld leftover file(s) removed",
                   (long long)ps->expired, (long long)ps->removed);
    graced_metrics_resumable(ps->g, GRACED_RES_EXPIRED, ps->expired);
    graced_metrics_resumable(ps->g, GRACED_RES_UNFINISHED, ps->count);
    graced_metrics_resumable(ps->g, GRACED_RES_HELD, ps->bytes);
    ps->sweep_busy = 0;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct graced_partials *ps = arg;
    if (ps->sweep_busy || open_dir(ps, 0) < 0)
        return;
    ps->sweep_busy = 1;
    graced_pool_run(ps->g->pool, &ps->sweep);
}

void graced_partial_sweep_now(struct graced *g)
{
    if (g->partials && g->partials->sweep_ev)
        event_active(g->partials->sweep_ev, EV_TIMEOUT, 1);
}

/* ---------------------------------------------------------------- a worker */

int graced_partial_init(struct graced *g)
{
    struct graced_partials *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return -1;
    ps->g = g;
    ps->dirfd = -1;
    ps->sweep.work = sweep_work;
    ps->sweep.done = sweep_done;
    g->partials = ps;
    if (g->upload_fd < 0)
        return 0;
    if (g->worker == 1) {
        int64_t every = g->o.upload_expiry_ms / 10;
        struct timeval tv;
        every = every < 1000 ? 1000 : every > 60000 ? 60000 : every;
        tv.tv_sec = every / 1000;
        tv.tv_usec = (every % 1000) * 1000;
        if (!(ps->sweep_ev = event_new(g->base, -1, EV_PERSIST, sweep_cb, ps)) ||
            event_add(ps->sweep_ev, &tv) < 0)
            return -1;
        event_active(ps->sweep_ev, EV_TIMEOUT, 1); /* once at the start: the gauges */
    }
    return 0;
}

/* After graced_store_end(): the pool has run every job, ours too. */
void graced_partial_end(struct graced *g)
{
    struct graced_partials *ps = g->partials;
    if (!ps)
        return;
    if (ps->sweep_ev)
        event_free(ps->sweep_ev);
    if (ps->dirfd >= 0)
        close(ps->dirfd);
    free(ps);
    g->partials = NULL;
}
