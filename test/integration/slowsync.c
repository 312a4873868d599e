/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * slowsync.c - an LD_PRELOAD shim for tests: a disk whose fsync takes as
 * long as the test wants. fsync(2) of a regular file of at least
 * SLOWSYNC_MIN_BYTES (default 1 MiB) waits while the file SLOWSYNC_GATE
 * exists (at most 30 s), then syncs; "start SIZE" and "done SIZE" lines go
 * to SLOWSYNC_LOG; with SLOWSYNC_ERRNO=N such an fsync then fails with
 * errno N (a disk that fills up or breaks at the last moment). Folders and
 * small files sync at once. Without SLOWSYNC_GATE nothing waits.
 * With SLOWSYNC_NO_NOREPLACE=1, renameat2(2) refuses RENAME_NOREPLACE with
 * EINVAL, as NFS does. With SLOWSYNC_LOCK_MS=N, the process's first
 * F_OFD_SETLK write lock waits N ms first ("lock" and "locked" lines): a
 * wide window between creating a temporary file and locking it. With
 * SLOWSYNC_FALLOC_MS=N, fallocate(2) waits N ms first: the body of an
 * upload arrives while its blocks are being reserved. With
 * SLOWSYNC_DIR_ERRNO=N, fsync(2) of a folder syncs, then fails with errno
 * N ("dirsync" lines): a rename done that the disk could not make durable.
 * With SLOWSYNC_DIR_MS=N, fsync(2) of a folder waits N ms first
 * ("dirwait" before, "dirsynced" after): a commit's last step, after its
 * rename, made slow.
 * With SLOWSYNC_RENAME_MS=N, renameat2(2) of a file whose old name holds
 * ".graced-tmp." waits N ms first ("rename" lines): a wide window between
 * the check of If-Match and the rename. Every sync_file_range(2) is noted
 * as "kick END" (END: offset + length, the bytes it covers). With
 * SLOWSYNC_NO_SETPRIORITY=1, setpriority(2) fails with EPERM, as under a
 * seccomp filter that denies it (systemd's SystemCallFilter=~@resources).
 * With SLOWSYNC_EVENTFD_MS=N, eventfd(2) waits N ms ("eventfd-wait T"
 * before, "eventfd T" after; T: CLOCK_MONOTONIC in microseconds): graced's
 * worker makes its pool's eventfd before its signal handlers, so this
 * widens a fresh worker's start; while the file SLOWSYNC_EVENTFD_FAIL
 * exists, eventfd(2) fails with EMFILE: a worker starting then (its pool
 * needs one) fails at once. With SLOWSYNC_OPEN_PATH=P and
 * SLOWSYNC_OPEN_MS=N, fopen(3) of P waits N ms ("opened T" after): a slow
 * reload of the users file. With SLOWSYNC_TRACE=1, every fsync(2) that
 * returns notes "fsync INO TID PID" (the inode synced, the thread that
 * waited for it: the event loop's is the PID's own): what was made durable
 * before an answer, and where. With SLOWSYNC_DIR_GATE, fsync(2) of a
 * folder waits while that file exists (at most 30 s; "dirstart" before).
 * With SLOWSYNC_CLOSE_MATCH=S and SLOWSYNC_CLOSE_MS=N, close(2) of a file
 * whose path holds S waits N ms first ("close" lines): whatever comes
 * after a close in the same turn of the loop comes that much later.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fsync(int fd);
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags);

static void note(const char *what, long long size)
{
    const char *path = getenv("SLOWSYNC_LOG");
    char line[64];
    int n, lfd;
    if (!path)
        return;
    n = snprintf(line, sizeof(line), "%s %lld %d\n", what, size, (int)getpid());
    lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lfd >= 0) {
        (void)!write(lfd, line, (size_t)n);
        close(lfd);
    }
}

static void trace_fsync(int fd)
{
    const char *on = getenv("SLOWSYNC_TRACE"), *path = getenv("SLOWSYNC_LOG");
    struct stat st;
    char line[96];
    int n, lfd;
    if (!on || *on != '1' || !path || fstat(fd, &st) < 0)
        return;
    n = snprintf(line, sizeof(line), "fsync %llu %d %d\n", (unsigned long long)st.st_ino,
                 (int)gettid(), (int)getpid());
    lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lfd >= 0) {
        (void)!write(lfd, line, (size_t)n);
        close(lfd);
    }
}

static int fsync_inner(int fd);

int fsync(int fd)
{
    int rc = fsync_inner(fd), e = errno;
    trace_fsync(fd);
    errno = e;
    return rc;
}

static int fsync_inner(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    const char *dirgate = getenv("SLOWSYNC_DIR_GATE");
    const char *gate = getenv("SLOWSYNC_GATE"), *min = getenv("SLOWSYNC_MIN_BYTES");
    const char *fail = getenv("SLOWSYNC_ERRNO"), *dirfail = getenv("SLOWSYNC_DIR_ERRNO");
    const char *dirms = getenv("SLOWSYNC_DIR_MS");
    struct stat st;
    int rc;
    if (dirgate && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        note("dirstart", 0);
        for (int i = 0; i < 3000 && access(dirgate, F_OK) == 0; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (dirms && atoi(dirms) > 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        struct timespec ts = {atoi(dirms) / 1000, (long)(atoi(dirms) % 1000) * 1000000L};
        note("dirwait", 0);
        nanosleep(&ts, NULL);
        rc = real(fd);
        note("dirsynced", 0);
        return rc;
    }
    if (dirfail && atoi(dirfail) > 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        (void)real(fd);
        note("dirsync", 0);
        errno = atoi(dirfail);
        return -1;
    }
    if (!gate || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        st.st_size < (min ? atoll(min) : 1 << 20))
        return real(fd);
    note("start", (long long)st.st_size);
    for (int i = 0; i < 3000 && access(gate, F_OK) == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rc = real(fd);
    note("done", (long long)st.st_size);
    if (fail && atoi(fail) > 0) {
        errno = atoi(fail);
        return -1;
    }
    return rc;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
    int (*real)(int, const char *, int, const char *, unsigned int) =
        (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT, "renameat2");
    const char *no = getenv("SLOWSYNC_NO_NOREPLACE"), *ms = getenv("SLOWSYNC_RENAME_MS");
    if (ms && atoi(ms) > 0 && strstr(oldpath, ".graced-tmp.")) {
        struct timespec ts = {atoi(ms) / 1000, (long)(atoi(ms) % 1000) * 1000000L};
        note("rename", 0);
        nanosleep(&ts, NULL);
    }
    if (no && *no == '1' && (flags & RENAME_NOREPLACE)) {
        errno = EINVAL;
        return -1;
    }
    return real(olddirfd, oldpath, newdirfd, newpath, flags);
}

/* fcntl and fcntl64 (the name glibc may redirect to): the first write lock
 * waits SLOWSYNC_LOCK_MS */
static int lock_hook(const char *name, int fd, int cmd, void *arg)
{
    static atomic_int first = 1;
    int (*real)(int, int, ...) = (int (*)(int, int, ...))dlsym(RTLD_NEXT, name);
    const char *ms = getenv("SLOWSYNC_LOCK_MS");
    int rc;
    if (cmd == F_OFD_SETLK && ms && arg && ((struct flock *)arg)->l_type == F_WRLCK &&
        atomic_exchange(&first, 0)) {
        struct timespec ts = {atoi(ms) / 1000, (long)(atoi(ms) % 1000) * 1000000L};
        note("lock", 0);
        nanosleep(&ts, NULL);
        rc = real(fd, cmd, arg);
        note("locked", 0);
        return rc;
    }
    return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...);
int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return lock_hook("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return lock_hook("fcntl64", fd, cmd, arg);
}

int setpriority(int which, id_t who, int prio);
int setpriority(int which, id_t who, int prio)
{
    int (*real)(int, id_t, int) = (int (*)(int, id_t, int))dlsym(RTLD_NEXT, "setpriority");
    const char *no = getenv("SLOWSYNC_NO_SETPRIORITY");
    if (no && *no == '1') {
        note("setpriority", 0);
        errno = EPERM;
        return -1;
    }
    return real(which, who, prio);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);
int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags)
{
    int (*real)(int, off_t, off_t, unsigned int) =
        (int (*)(int, off_t, off_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    note("kick", (long long)(offset + nbytes));
    return real(fd, offset, nbytes, flags);
}

static long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* the whole time, signals or not */
static void wait_ms(const char *ms)
{
    struct timespec ts = {atoi(ms) / 1000, (long)(atoi(ms) % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int eventfd(unsigned int initval, int flags)
{
    int (*real)(unsigned int, int) = (int (*)(unsigned int, int))dlsym(RTLD_NEXT, "eventfd");
    const char *ms = getenv("SLOWSYNC_EVENTFD_MS"), *fail = getenv("SLOWSYNC_EVENTFD_FAIL");
    if (fail && access(fail, F_OK) == 0) {
        note("eventfd-fail", 0);
        errno = EMFILE;
        return -1;
    }
    if (ms && atoi(ms) > 0) {
        note("eventfd-wait", mono_us());
        wait_ms(ms);
        note("eventfd", mono_us());
    }
    return real(initval, flags);
}

FILE *fopen(const char *path, const char *mode);
FILE *fopen(const char *path, const char *mode)
{
    FILE *(*real)(const char *, const char *) =
        (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
    const char *slow = getenv("SLOWSYNC_OPEN_PATH"), *ms = getenv("SLOWSYNC_OPEN_MS");
    FILE *fp = real(path, mode);
    if (slow && ms && !strcmp(path, slow)) {
        wait_ms(ms);
        note("opened", mono_us());
    }
    return fp;
}

int fallocate(int fd, int mode, off_t offset, off_t len);
int fallocate(int fd, int mode, off_t offset, off_t len)
{
    int (*real)(int, int, off_t, off_t) = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT,
                                                                               "fallocate");
    const char *ms = getenv("SLOWSYNC_FALLOC_MS");
    if (ms && atoi(ms) > 0) {
        struct timespec ts = {atoi(ms) / 1000, (long)(atoi(ms) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return real(fd, mode, offset, len);
}

int close(int fd);
int close(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "close");
    const char *match = getenv("SLOWSYNC_CLOSE_MATCH"), *ms = getenv("SLOWSYNC_CLOSE_MS");
    if (match && ms && atoi(ms) > 0) {
        char link[64], path[4096];
        ssize_t n;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n > 0) {
            path[n] = '\0';
            if (strstr(path, match)) {
                note("close", 0);
                wait_ms(ms);
            }
        }
    }
    return real(fd);
}
