/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * store.c - an upload's file on its way to its name: PUT bodies, form
 * parts and resumable uploads (graced_store_adopt, below) all store
 * through here.
 *
 * A temporary file ".graced-tmp.ID.name" (ID: 64 random bits, unique on a
 * folder shared by hosts and containers) is made in the target's folder
 * and locked at once with an OFD lock (fcntl F_OFD_SETLK, which NFS honours
 * as a POSIX lock), held until the file is renamed or removed. The lock,
 * not a PID, says that the file is someone's: the sweep (at start-up, and
 * then every --stale-upload-age in worker 1) removes only temporary files
 * that are unlocked AND older than --stale-upload-age.
 *
 * The window between creating the file and locking it is closed by the
 * lock itself: the sweep looks only at files older than the bound, and
 * removes one only while it holds a lock on it (a read lock through its own
 * open), after checking that the name is still that file. Whoever locks
 * first owns the file: if a sweep got there first (a clock far off on NFS,
 * or --stale-upload-age 0), our lock fails - or, if the sweep has already
 * removed the name and let go, our lock is on a file without a name, which
 * we check for - and we start over under a new name; once we hold the lock
 * on a file that still has its name, no sweep can remove it.
 *
 * While the body arrives, write-back is started every WRITEBACK_STEP bytes
 * (sync_file_range, on the pool: it can block when the disk queue is full),
 * so that the final fsync has little left and dirty pages do not pile up.
 * With a known size (a Content-Length) the blocks are reserved first
 * (fallocate, on the pool, before the body is read): a disk that cannot
 * take the file is known before a byte is sent, and the writes then land
 * in allocated blocks instead of racing the write-back, which allocates
 * delayed blocks under the file's block-map lock (ext4 i_data_sem: the
 * event loop waited there, up to seconds, under three 1 GiB uploads).
 * The commit - fsync, the If-Match check, the rename (RENAME_NOREPLACE for
 * If-None-Match: * and --no-overwrite), fsync of the folder, then of each
 * folder above it up to the upload tree (graced_store_path: a folder made
 * for an upload, by this one or by another still receiving, is on disk
 * only once the folder holding it is synced) - is a job on the worker's
 * pool (pool.c); its result comes back on the event loop. A folder fsync
 * that fails comes back as an error with the name taken (the
 * rename cannot be taken back: the version it replaced is gone, and a
 * rename back would be as little durable): the owner answers no 2xx.
 *
 * The If-Match check and the rename are one step for every commit of a
 * name, on every pool thread and every instance on the folder: each commit
 * that may replace a file first takes an OFD write lock on the file the
 * name holds (NFS sends it to the server), waits for it, checks that the
 * name still holds that file (else a commit before ours renamed over it:
 * that file's turn), then checks If-Match against it and renames, and lets
 * go. A file just renamed into place is still locked by its store until
 * the store is freed: a commit waiting for it sees the new version.
 * RENAME_NOREPLACE needs no lock (it refuses a taken name itself); a file
 * we cannot open for writing (another owner's, read-only) or a filesystem
 * without locks is checked without one, as before (warned once).
 *
 * Lifetime: the store is referenced by its owner (the upload) and by each
 * job in flight. An owner that goes away (client gone, server freed)
 * abandons it: no callback then; a job running finishes, the rename is
 * skipped if not yet done, and the temporary file is removed (still
 * locked, and on the pool: freeing a big file takes a while) when the last
 * job is done.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITEBACK_STEP (8 << 20) /* start write-back each time this much is new */
#define WRITEBACK_TICK_MS 25     /* how often the file offsets are looked at */
#define TMP_NAME_PART 200        /* of the name, in the temporary name: 12 + 16 + 1 + 200 < 255 */
#define OPEN_TRIES 8
#define TARGET_TRIES 64          /* the name changed under our wait this often: give up the lock */

struct graced_store {
    struct graced *g;
    struct graced_store *prev, *next; /* receiving: sampled for write-back */
    int receiving;
    int fd, dirfd;
    int tmpdirfd;         /* the temporary name's folder: dirfd, or a resumable
                             upload's (graced_store_adopt) */
    int keep;             /* adopted: never removed by an owner that leaves */
    int refs;             /* the owner, and each job in flight */
    atomic_int orphan;    /* the owner is gone: nothing more is stored */
    int64_t kicked;       /* write-back started up to here */
    int64_t reserve;      /* graced_store_reserve: the size */
    graced_store_ready_cb ready;
    graced_store_synced_cb on_sync;
    int64_t synced;       /* graced_store_sync: the size made durable */
    int kick_busy;
    off_t kick_from, kick_len;
    struct graced_job kick, commit;
    /* the commit's input, then its results (written by the job, read in done) */
    int noreplace;
    char *if_match;
    int err, changed, existed, renamed, unlinked, dir_err;
    int top;              /* --upload-dir (the process's: not ours to close) */
    char *path;           /* graced_store_path: the target's folder below top */
    int target_err;       /* the name's file could not be locked (errno): checked without */
    struct stat st;
    graced_store_cb cb;
    void *arg;
    char name[256], tmp[NAME_MAX + 1];
};

struct graced_stores {
    struct graced *g;
    struct graced_store *receiving;
    struct event *tick;      /* while something is received */
    struct event *sweep_ev;  /* worker 1: the sweep, every --stale-upload-age */
    struct graced_job sweep;
    int sweep_busy, sweep_removed;
    int nolock_warned, target_warned;
};

#define STORE_OF(j, member) ((struct graced_store *)((char *)(j) - offsetof(struct graced_store, member)))

/* ---------------------------------------------------------------- locks */

static int ofd_lock(int fd, short type)
{
    struct flock lk;
    memset(&lk, 0, sizeof(lk));
    lk.l_type = type;
    lk.l_whence = SEEK_SET; /* l_start 0, l_len 0: the whole file */
    return fcntl(fd, F_OFD_SETLK, &lk);
}

/* The filesystem has no (OFD) locks at all: not "someone holds it". */
static int no_locks(int err)
{
    return err == ENOLCK || err == EINVAL || err == EOPNOTSUPP || err == ENOSYS;
}

/* ---------------------------------------------------------------- the sweep */

static int64_t age_ms(const struct stat *st, const struct timespec *now)
{
    return ((int64_t)now->tv_sec - st->st_mtim.tv_sec) * 1000 +
           ((int64_t)now->tv_nsec - st->st_mtim.tv_nsec) / 1000000;
}

/* Remove this temporary file if nobody holds it and it is older than the
 * bound. Its lock is taken (a read lock: it conflicts with the writer's,
 * and needs no write permission) before it is removed, and the name is
 * checked to still be that file. 1 if removed. */
static int remove_if_stale(int dirfd, const char *name, const struct timespec *now,
                           int64_t max_age_ms)
{
    struct stat st, again;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), gone = 0;
    if (fd < 0)
        return 0; /* gone meanwhile, a symlink (never ours), unreadable */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && age_ms(&st, now) > max_age_ms &&
        (ofd_lock(fd, F_RDLCK) == 0 || no_locks(errno)) &&
        fstatat(dirfd, name, &again, AT_SYMLINK_NOFOLLOW) == 0 && again.st_ino == st.st_ino &&
        again.st_dev == st.st_dev)
        gone = unlinkat(dirfd, name, 0) == 0;
    close(fd); /* and the lock with it */
    return gone;
}

/* Stale temporary files below dirfd, in subfolders too (uploads create
 * them): symlinks are not followed, depth is bounded. How many went. */
static int clean_dir(int dirfd, int depth, const struct timespec *now, int64_t max_age_ms)
{
    /* its own open, not a dup: a dup shares the read position (with the
     * last sweep's, which ended at the end) */
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    while ((e = readdir(d))) {
        if (!strncmp(e->d_name, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1)) {
            n += remove_if_stale(dirfd, e->d_name, now, max_age_ms);
        } else if (depth < 64 && (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) &&
                   strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                n += clean_dir(sub, depth + 1, now, max_age_ms);
                close(sub);
            }
        }
    }
    closedir(d);
    return n;
}

static int sweep_now(const struct graced *g)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); /* file times are wall-clock times */
    return clean_dir(g->upload_fd, 0, &now, g->o.stale_upload_age_ms);
}

int graced_clean_stale(struct graced *g)
{
    int n = sweep_now(g);
    if (n)
        graced_log(LOG_INFO, "removed %d stale temporary upload file(s)", n);
    return n;
}

static void sweep_work(struct graced_job *j)
{
    struct graced_stores *ss = (struct graced_stores *)((char *)j - offsetof(struct graced_stores, sweep));
    ss->sweep_removed = sweep_now(ss->g);
}

static void sweep_done(struct graced_job *j)
{
    struct graced_stores *ss = (struct graced_stores *)((char *)j - offsetof(struct graced_stores, sweep));
    if (ss->sweep_removed)
        graced_log(LOG_INFO, "removed %d stale temporary upload file(s)", ss->sweep_removed);
    ss->sweep_busy = 0;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct graced_stores *ss = arg;
    if (ss->sweep_busy)
        return;
    ss->sweep_busy = 1;
    graced_pool_run(ss->g->pool, &ss->sweep);
}

/* ---------------------------------------------------------------- lifetime */

static void unwatch(struct graced_store *s)
{
    struct graced_stores *ss = s->g->stores;
    if (!s->receiving)
        return;
    s->receiving = 0;
    if (s->prev)
        s->prev->next = s->next;
    else
        ss->receiving = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (!ss->receiving)
        event_del(ss->tick);
}

static void store_free(struct graced_store *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->tmpdirfd >= 0 && s->tmpdirfd != s->dirfd)
        close(s->tmpdirfd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->if_match);
    free(s->path);
    free(s);
}

/* The last close of an unlinked file frees its pages and blocks: a while
 * for a big one, so on the pool. */
static void discard_work(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    close(s->fd);
    s->fd = -1;
}

static void discard_done(struct graced_job *j)
{
    store_free(STORE_OF(j, commit));
}

/* The last reference is gone (no job runs: the commit job's slot is free). */
static void unref(struct graced_store *s)
{
    if (--s->refs > 0)
        return;
    unwatch(s);
    if (s->fd < 0 || s->renamed || s->keep) {
        /* an adopted file stays as it is: closing lets its lock go */
        store_free(s);
        return;
    }
    /* the name goes now (cheap while the file is open), so that nothing
     * is left once the answer is out; still locked, so no sweep can
     * meanwhile think it is free */
    if (!s->unlinked)
        unlinkat(s->tmpdirfd, s->tmp, 0);
    s->commit.work = discard_work;
    s->commit.done = discard_done;
    graced_pool_run(s->g->pool, &s->commit);
}

void graced_store_abandon(struct graced_store *s)
{
    if (!s)
        return;
    atomic_store(&s->orphan, 1);
    unwatch(s);
    unref(s); /* the owner's */
}

/* ---------------------------------------------------------------- write-back */

static void kick_work(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, kick);
    if (!atomic_load(&s->orphan))
        sync_file_range(s->fd, s->kick_from, s->kick_len, SYNC_FILE_RANGE_WRITE);
}

static void kick_done(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, kick);
    s->kick_busy = 0;
    unref(s);
}

/* How far has each file being received come? (The library may splice into
 * it, so its offset is where the body is.) */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct graced_stores *ss = arg;
    for (struct graced_store *s = ss->receiving; s; s = s->next) {
        off_t off = lseek(s->fd, 0, SEEK_CUR);
        if (off < 0 || s->kick_busy || off - s->kicked < WRITEBACK_STEP)
            continue;
        s->kick_from = (off_t)s->kicked;
        s->kick_len = off - (off_t)s->kicked;
        s->kicked = off;
        s->kick_busy = 1;
        s->refs++;
        graced_pool_run(s->g->pool, &s->kick);
    }
}

/* ---------------------------------------------------------------- the commit */

/* tmp -> name; with noreplace never over an existing name. A filesystem
 * without RENAME_NOREPLACE (NFS answers EINVAL) gets link(2), which
 * refuses an existing name just as atomically, then the unlink. */
static int put_name(struct graced_store *s)
{
    if (renameat2(s->tmpdirfd, s->tmp, s->dirfd, s->name,
                  s->noreplace ? RENAME_NOREPLACE : 0) == 0)
        return 0;
    if (!s->noreplace || errno != EINVAL)
        return -1;
    if (linkat(s->tmpdirfd, s->tmp, s->dirfd, s->name, 0) < 0)
        return -1;
    unlinkat(s->tmpdirfd, s->tmp, 0);
    return 0;
}

#define TARGET_NONE -1     /* no file has the name */
#define TARGET_UNLOCKED -2 /* a file we cannot lock (s->target_err says why) */

/* Lock the regular file the name holds now (see the top): its fd, with
 * *cur its stat, or TARGET_NONE, or TARGET_UNLOCKED (*cur then from the
 * name, if it has anything). The name is opened again after the wait and
 * compared: on NFSv4 an open by name asks the server, where a stat could
 * answer from this host's cache. */
static int lock_target(struct graced_store *s, struct stat *cur)
{
    struct flock lk;
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    for (int i = 0; i < TARGET_TRIES; i++) {
        struct stat again;
        int fd, fd2, same;
        if (fstatat(s->dirfd, s->name, cur, AT_SYMLINK_NOFOLLOW) < 0)
            return errno == ENOENT ? TARGET_NONE : (s->target_err = errno, TARGET_UNLOCKED);
        if (!S_ISREG(cur->st_mode)) /* a folder (EISDIR), a symlink: the rename says */
            return TARGET_UNLOCKED;
        fd = openat(s->dirfd, s->name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            continue; /* gone meanwhile */
        if (fd < 0 || fstat(fd, cur) < 0 || !S_ISREG(cur->st_mode) ||
            fcntl(fd, F_OFD_SETLKW, &lk) < 0) {
            s->target_err = fd < 0 || S_ISREG(cur->st_mode) ? errno : EINVAL;
            if (fd >= 0)
                close(fd);
            if (fstatat(s->dirfd, s->name, cur, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? TARGET_NONE : TARGET_UNLOCKED;
            return TARGET_UNLOCKED;
        }
        fd2 = openat(s->dirfd, s->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        same = fd2 >= 0 && fstat(fd2, &again) == 0 && again.st_ino == cur->st_ino &&
               again.st_dev == cur->st_dev;
        if (fd2 >= 0)
            close(fd2);
        if (same)
            return fd;
        close(fd); /* renamed over (or removed) while we waited: its successor's turn */
    }
    s->target_err = EBUSY;
    return fstatat(s->dirfd, s->name, cur, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT
               ? TARGET_NONE : TARGET_UNLOCKED;
}

/* The steps of a commit, on a pool thread. The owner may leave meanwhile:
 * looked at before each step that cannot be taken back. 1 when renamed. */
static int commit_steps(struct graced_store *s)
{
    struct stat cur;
    char etag[64];
    int tfd = TARGET_NONE, done = 0;
    if (atomic_load(&s->orphan))
        return 0;
    if (fsync(s->fd) < 0 || fstat(s->fd, &s->st) < 0) {
        s->err = errno;
        return 0;
    }
    if (s->noreplace) {
        s->existed = fstatat(s->dirfd, s->name, &cur, AT_SYMLINK_NOFOLLOW) == 0;
    } else {
        tfd = lock_target(s, &cur); /* may wait for another commit of the name */
        s->existed = tfd != TARGET_NONE;
    }
    if (atomic_load(&s->orphan))
        goto out; /* the client left during the fsync (or the wait): not stored */
    if (s->if_match) { /* the version it names is still there? (it was at the headers) */
        if (s->existed)
            graced_etag(&cur, etag, sizeof(etag));
        if (!s->existed || !graced_etag_match(s->if_match, etag, 0)) {
            s->changed = 1;
            goto out;
        }
    }
    if (put_name(s) < 0) {
        s->err = errno;
        goto out;
    }
    done = 1;
out:
    if (tfd >= 0)
        close(tfd); /* the lock on the version replaced (or kept) goes with it */
    if (done && fsync(s->dirfd) < 0) /* the rename itself */
        s->dir_err = errno;
    else if (done && s->path) { /* the folders on the way: some may be new */
        int rc = graced_path_sync_dirs(s->top, s->path, strlen(s->path));
        if (rc < 0)
            s->dir_err = -rc;
    }
    return done;
}

/* Not stored: the temporary file goes here, off the loop (a big file takes
 * a while to free) and before the answer, still locked. */
static void commit_work(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    if (commit_steps(s))
        s->renamed = 1;
    else if (!s->keep || s->err || s->changed) /* an adopted file left by its owner stays */
        s->unlinked = unlinkat(s->tmpdirfd, s->tmp, 0) == 0 || errno == ENOENT;
}

static void commit_done(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    if (!atomic_load(&s->orphan)) {
        struct graced_store_result r;
        memset(&r, 0, sizeof(r));
        r.err = s->dir_err ? s->dir_err : s->err;
        r.renamed = s->dir_err != 0;
        r.changed = s->changed;
        r.existed = s->existed;
        r.st = s->st;
        if (s->dir_err)
            graced_log(LOG_ERR, "%s: renamed into place, but the folder's fsync failed (%s): "
                       "not durable", s->name, strerror(s->dir_err));
        if (s->target_err && !s->g->stores->target_warned) {
            s->g->stores->target_warned = 1;
            graced_log(LOG_WARN, "%s: its file could not be locked to be replaced (%s): "
                       "If-Match is checked without a lock there (said once)", s->name,
                       strerror(s->target_err));
        }
        atomic_store(&s->orphan, 1); /* the owner's part ends with the callback */
        s->cb(&r, s->arg);
        unref(s); /* the owner's */
    }
    unref(s); /* the job's */
}

int graced_store_path(struct graced_store *s, const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return -ENOMEM;
    free(s->path);
    s->path = p;
    s->top = s->g->upload_fd;
    return 0;
}

int graced_store_commit(struct graced_store *s, int noreplace, const char *if_match,
                        graced_store_cb cb, void *arg)
{
    if (if_match && !(s->if_match = strdup(if_match)))
        return -ENOMEM;
    unwatch(s);
    s->noreplace = noreplace;
    s->cb = cb;
    s->arg = arg;
    s->commit.work = commit_work; /* the slot may have served graced_store_reserve */
    s->commit.done = commit_done;
    s->refs++;
    graced_pool_run(s->g->pool, &s->commit);
    return 0;
}

/* ---------------------------------------------------------------- open */

/* Received into from now on: its write-back is started as it grows. */
static void watch(struct graced_store *s)
{
    struct graced_stores *ss = s->g->stores;
    s->receiving = 1;
    s->next = ss->receiving;
    if (s->next)
        s->next->prev = s;
    else
        event_add(ss->tick, &(struct timeval){0, WRITEBACK_TICK_MS * 1000});
    ss->receiving = s;
}

int graced_store_fd(const struct graced_store *s)
{
    return s->fd;
}

/* Our file fd still has its temporary name tmp (no sweep removed it). */
static int still_named(int dirfd, const char *tmp, int fd)
{
    struct stat mine, named;
    return fstat(fd, &mine) == 0 && mine.st_nlink > 0 &&
           fstatat(dirfd, tmp, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
           named.st_ino == mine.st_ino && named.st_dev == mine.st_dev;
}

static uint64_t tmp_id(uint64_t seq, int attempt)
{
    uint64_t id;
    struct timespec ts;
    if (getrandom(&id, sizeof(id), GRND_NONBLOCK) == (ssize_t)sizeof(id))
        return id;
    clock_gettime(CLOCK_REALTIME, &ts); /* no entropy yet: unique enough with O_EXCL retries */
    return ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_nsec << 8) ^ seq ^ (uint64_t)attempt;
}

/*
 * A new temporary file for leaf in dirfd, locked (its name into tmp): the
 * fd, or a negative errno. *nolock: the filesystem has no locks (the file
 * is then protected by --stale-upload-age alone). Safe on any thread.
 */
static int tmp_create(int dirfd, const char *leaf, char *tmp, size_t tmplen, uint64_t seq,
                      int *nolock)
{
    int err = EEXIST, fd = -1;
    *nolock = 0;
    for (int i = 0; i < OPEN_TRIES && fd < 0; i++) {
        snprintf(tmp, tmplen, "%s%016llx.%.*s", GRACED_TMP_PREFIX,
                 (unsigned long long)tmp_id(seq, i), TMP_NAME_PART, leaf);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            if ((err = errno) != EEXIST)
                break;
            continue;
        }
        if (ofd_lock(fd, F_WRLCK) == 0) {
            if (still_named(dirfd, tmp, fd))
                break;
            /* a sweep locked it, removed it and let go before our lock:
             * ours is on a file without a name; start over */
            close(fd);
            fd = -1;
            err = EEXIST;
            continue;
        }
        err = errno;
        if (no_locks(err)) { /* the bound alone protects it then */
            *nolock = err;
            break;
        }
        /* a sweep took it between our create and our lock: it is theirs
         * to remove now; we start over under a new name */
        close(fd);
        fd = -1;
        err = EEXIST;
    }
    return fd >= 0 ? fd : -err;
}

int graced_store_open(struct graced *g, int dirfd, const char *leaf, struct graced_store **out)
{
    struct graced_store *s = calloc(1, sizeof(*s));
    int err = EEXIST, nolock;
    *out = NULL;
    if (!s)
        return -ENOMEM;
    s->g = g;
    s->refs = 1;
    s->fd = -1;
    s->kick.work = kick_work;
    s->kick.done = kick_done;
    s->commit.work = commit_work;
    s->commit.done = commit_done;
    snprintf(s->name, sizeof(s->name), "%s", leaf);
    if ((s->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)) < 0) {
        err = errno;
        free(s);
        return -err;
    }
    s->tmpdirfd = s->dirfd;
    g->upload_seq++;
    s->fd = tmp_create(s->dirfd, leaf, s->tmp, sizeof(s->tmp), g->upload_seq, &nolock);
    if (s->fd < 0)
        err = -s->fd, s->fd = -1;
    if (nolock && !g->stores->nolock_warned) {
        g->stores->nolock_warned = 1;
        graced_log(LOG_WARN, "upload folder has no file locks (%s): other instances "
                             "tell uploads in flight only by --stale-upload-age",
                   strerror(nolock));
    }
    if (s->fd < 0) {
        close(s->dirfd);
        free(s);
        return -err;
    }
    watch(s);
    *out = s;
    return 0;
}

int graced_store_tmp_open(int dirfd, const char *leaf, char *tmp, size_t tmplen)
{
    static atomic_ulong seq;
    int nolock;
    return tmp_create(dirfd, leaf, tmp, tmplen, atomic_fetch_add(&seq, 1), &nolock);
}

int graced_store_tmp_commit(int dirfd, int fd, const char *tmp, const char *name, int noreplace)
{
    struct graced_store s; /* put_name's view of it */
    int err = 0;
    if (fsync(fd) < 0)
        err = errno;
    memset(&s, 0, sizeof(s));
    s.dirfd = dirfd;
    s.tmpdirfd = dirfd;
    s.noreplace = noreplace;
    snprintf(s.tmp, sizeof(s.tmp), "%s", tmp);
    snprintf(s.name, sizeof(s.name), "%s", name);
    if (!err && put_name(&s) < 0)
        err = errno;
    if (err)
        unlinkat(dirfd, tmp, 0);
    return -err;
}

/* ---------------------------------------------------------------- adopt */

/*
 * A resumable upload's file (partial.c) lives across requests: each one
 * that writes adopts it for its time, appending at its end, under the
 * same lock a new file gets (taken without waiting: someone else writing
 * is -EAGAIN). The file is never removed for its owner leaving: abandoning
 * it just closes it (and lets the lock go). A commit renames it from its
 * folder into the target's (graced_store_target), on the same filesystem.
 */
int graced_store_adopt(struct graced *g, int tmpdirfd, const char *tmp, struct graced_store **out)
{
    struct graced_store *s = calloc(1, sizeof(*s));
    off_t end;
    int err;
    *out = NULL;
    if (!s)
        return -ENOMEM;
    s->g = g;
    s->refs = 1;
    s->fd = -1;
    s->dirfd = -1;
    s->keep = 1;
    s->kick.work = kick_work;
    s->kick.done = kick_done;
    s->commit.work = commit_work;
    s->commit.done = commit_done;
    snprintf(s->tmp, sizeof(s->tmp), "%s", tmp);
    if ((s->tmpdirfd = fcntl(tmpdirfd, F_DUPFD_CLOEXEC, 0)) < 0 ||
        (s->fd = openat(s->tmpdirfd, tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        goto fail;
    if (ofd_lock(s->fd, F_WRLCK) < 0 && !no_locks(errno)) {
        errno = EAGAIN; /* EACCES or EAGAIN: someone holds it */
        goto fail;
    }
    if (!still_named(s->tmpdirfd, s->tmp, s->fd)) { /* removed (expired, cancelled) before our lock */
        errno = ENOENT;
        goto fail;
    }
    if ((end = lseek(s->fd, 0, SEEK_END)) < 0)
        goto fail;
    s->kicked = end;
    watch(s);
    *out = s;
    return 0;
fail:
    err = errno;
    store_free(s);
    return -err;
}

int graced_store_target(struct graced_store *s, int dirfd, const char *leaf)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (s->dirfd >= 0 && s->dirfd != s->tmpdirfd)
        close(s->dirfd);
    s->dirfd = fd;
    snprintf(s->name, sizeof(s->name), "%s", leaf);
    return 0;
}

static void sync_work(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    struct stat st;
    if (atomic_load(&s->orphan))
        return;
    if (fstat(s->fd, &st) < 0 || fsync(s->fd) < 0)
        s->err = errno;
    else
        s->synced = st.st_size;
}

static void sync_done(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    graced_store_synced_cb cb = s->on_sync;
    void *arg = s->arg;
    int64_t synced = s->synced;
    int err = s->err;
    if (atomic_load(&s->orphan)) {
        unref(s); /* the job's */
        return;
    }
    s->err = 0;
    /* the job's reference first (the owner's keeps it): an owner that
     * abandons the store in cb then closes it, and lets its lock go, there
     * and then - before the answer it writes next, which a client may
     * follow at once with a request another worker takes */
    unref(s);
    cb(err, synced, arg);
}

int graced_store_sync(struct graced_store *s, graced_store_synced_cb cb, void *arg)
{
    s->on_sync = cb;
    s->arg = arg;
    s->commit.work = sync_work;
    s->commit.done = sync_done;
    s->refs++;
    graced_pool_run(s->g->pool, &s->commit);
    return 0;
}

/* On a pool thread: the blocks of the announced size (unwritten extents;
 * the size stays 0). Only a full disk (or quota, or file size limit) is an
 * error: a filesystem without fallocate (NFS before 4.2) goes without. */
static void reserve_work(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    if (atomic_load(&s->orphan))
        return;
    if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)s->reserve) < 0 &&
        (errno == ENOSPC || errno == EDQUOT || errno == EFBIG))
        s->err = errno;
}

static void reserve_done(struct graced_job *j)
{
    struct graced_store *s = STORE_OF(j, commit);
    if (!atomic_load(&s->orphan)) {
        int err = s->err;
        s->err = 0;
        s->ready(err, s->arg);
    }
    unref(s); /* the job's */
}

int graced_store_reserve(struct graced_store *s, int64_t size, graced_store_ready_cb cb,
                         void *arg)
{
    if (size <= 0)
        return -EINVAL;
    s->reserve = size;
    s->ready = cb;
    s->arg = arg;
    s->commit.work = reserve_work;
    s->commit.done = reserve_done;
    s->refs++;
    graced_pool_run(s->g->pool, &s->commit);
    return 0;
}

/* ---------------------------------------------------------------- a worker */

int graced_store_init(struct graced *g)
{
    struct graced_stores *ss = calloc(1, sizeof(*ss));
    if (!ss || !(g->pool = graced_pool_new(g->base, g->o.sync_threads)))
        goto fail;
    ss->g = g;
    ss->sweep.work = sweep_work;
    ss->sweep.done = sweep_done;
    if (!(ss->tick = event_new(g->base, -1, EV_PERSIST, tick_cb, ss)))
        goto fail;
    /* one worker sweeps again and again: a crash of another instance, or
     * of a worker of ours, leaves files no restart of ours would look at */
    if (g->worker == 1 && g->upload_fd >= 0) {
        int64_t every = g->o.stale_upload_age_ms;
        struct timeval tv;
        every = every < 1000 ? 1000 : every > 3600000 ? 3600000 : every;
        tv.tv_sec = every / 1000;
        tv.tv_usec = (every % 1000) * 1000;
        if (!(ss->sweep_ev = event_new(g->base, -1, EV_PERSIST, sweep_cb, ss)) ||
            event_add(ss->sweep_ev, &tv) < 0)
            goto fail;
    }
    g->stores = ss;
    return 0;
fail:
    if (ss && ss->tick)
        event_free(ss->tick);
    if (ss && ss->sweep_ev)
        event_free(ss->sweep_ev);
    graced_pool_free(g->pool);
    g->pool = NULL;
    free(ss);
    return -1;
}

/* After the server is freed (every owner has abandoned its store): wait
 * for the jobs, which remove what they leave. */
void graced_store_end(struct graced *g)
{
    struct graced_stores *ss = g->stores;
    if (!ss)
        return;
    if (ss->sweep_ev)
        event_del(ss->sweep_ev);
    graced_pool_free(g->pool);
    g->pool = NULL;
    event_free(ss->tick);
    if (ss->sweep_ev)
        event_free(ss->sweep_ev);
    free(ss);
    g->stores = NULL;
}
