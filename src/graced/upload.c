/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * upload.c - PUT /path (or POST of a raw body) into --upload-dir.
 *
 * Everything that can refuse an upload is checked when the headers arrive,
 * before any body byte is read: the library then closes gracefully and the
 * client receives the answer. Accepted bodies stream into a temporary file
 * in the same directory (reading pauses while the disk lags behind), which
 * is fsync'ed and renamed into place only when the body is complete: the
 * target name never holds a partial file. Anything else unlinks the
 * temporary file; a crash leaves only a temporary name, removed at start-up
 * once stale (tmp_stale): its PID is gone, or --stale-upload-age old.
 *
 * Folders on the way are created (path.c: each segment O_NOFOLLOW, so no
 * symlink leads out of the tree). Safe create and replace: If-None-Match: *
 * (and --no-overwrite) never replaces a file, checked when the headers come
 * and again by the rename itself (RENAME_NOREPLACE); If-Match replaces only
 * the version whose ETag it names.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DISK_HIGH (1u << 20) /* pause the client above this much unwritten */
#define DISK_STEP (1u << 20) /* written per loop iteration */
/* of the upload's name in its temporary name: prefix (12) + PID (up to 7)
 * + sequence (up to 20) + 2 dots + this stay below NAME_MAX (255) */
#define TMP_NAME_PART 200

struct upload {
    struct graced *g;
    struct grace_request *req;
    int fd, dirfd;        /* the temporary file; the folder it is in */
    char name[256], tmp[NAME_MAX + 1];
    char path[4096];      /* relative to the upload tree, for Location and logs */
    const char *if_match; /* the request's If-Match: checked again before the rename */
    int noreplace;        /* If-None-Match: * or --no-overwrite */
    struct evbuffer *buf; /* received, not yet on disk */
    struct event *flush_ev;
    int64_t bytes;
    int err;              /* errno of a failed write */
    int ended, paused, replied;
};

/* The first line of --auth-token-file, without the line end and the
 * spaces or tabs around it. -1 with errno: EINVAL for no token (an empty or
 * blank line), EILSEQ for a byte no client can send in a header (control
 * characters, spaces inside, non-ASCII). Any length: nothing is cut. */
int graced_load_token(struct graced *g)
{
    FILE *fp = fopen(g->o.token_file, "re");
    char *line = NULL, *t;
    size_t cap = 0, n;
    ssize_t got;
    if (!fp)
        return -1;
    got = getline(&line, &cap, fp);
    fclose(fp);
    if (got < 0) {
        free(line);
        return errno = EINVAL, -1;
    }
    n = strcspn(line, "\r\n");
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    line[n] = '\0';
    t = line + strspn(line, " \t");
    n = strlen(t);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) {
            free(line);
            return errno = EILSEQ, -1;
        }
    if (n == 0) {
        free(line);
        return errno = EINVAL, -1;
    }
    memmove(line, t, n + 1);
    free(g->token);
    g->token = line;
    g->token_len = n;
    return 0;
}

/* Compare without an early exit, so timing does not leak the token. The
 * scheme is case-insensitive (RFC 9110 11.1), then one or more spaces. */
int graced_token_ok(const struct graced *g, const char *auth)
{
    size_t n;
    unsigned char diff = 0;
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return 0;
    auth += 7;
    auth += strspn(auth, " ");
    n = strlen(auth);
    for (size_t i = 0; i < g->token_len; i++)
        diff |= (unsigned char)(g->token[i] ^ (i < n ? auth[i] : 0));
    return diff == 0 && n == g->token_len;
}

/* The process id in a temporary name: ".graced-tmp.PID.SEQ.name", or
 * ".graced-tmp.name.PID.SEQ" as written before; 0 if there is none. */
static long tmp_pid(const char *tmp)
{
    const char *p = tmp + sizeof(GRACED_TMP_PREFIX) - 1, *dot;
    char *end;
    long pid = strtol(p, &end, 10);
    if (end != p && *end == '.' && pid > 0)
        return pid;
    if (!(dot = strrchr(p, '.')) || dot == p)
        return 0;
    for (p = dot - 1; p > tmp && *p != '.'; p--)
        ;
    pid = strtol(p + 1, &end, 10);
    return end != p + 1 && end == dot && pid > 0 ? pid : 0;
}

/* Is this temporary file left over by a process that is gone? An upload
 * in flight (by another graced on the same folder, or a worker of ours)
 * has a live PID in its name and is written to, so it stays. */
static int tmp_stale(int dirfd, const char *name, time_t now, int64_t max_age_ms)
{
    long pid = tmp_pid(name);
    struct stat st;
    if (pid == (long)getpid() || (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH))
        return 1; /* our own PID here is an older process's: we upload nothing yet */
    /* no PID, or a live one that may be a reused PID: by age */
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           ((int64_t)now - st.st_mtime) * 1000 > max_age_ms;
}

/* Stale temporary files below dirfd, in subfolders too (uploads create
 * them): symlinks are not followed, depth is bounded. How many went. */
static int clean_dir(int dirfd, int depth, time_t now, int64_t max_age_ms)
{
    int fd = dup(dirfd), n = 0;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    while ((e = readdir(d))) {
        if (!strncmp(e->d_name, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1)) {
            n += tmp_stale(dirfd, e->d_name, now, max_age_ms) && unlinkat(dirfd, e->d_name, 0) == 0;
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

int graced_clean_stale(struct graced *g)
{
    int n = clean_dir(g->upload_fd, 0, time(NULL), g->o.stale_upload_age_ms);
    if (n)
        graced_log(LOG_INFO, "removed %d stale temporary upload file(s)", n);
    return n;
}

/* Failing to store: 507 when the disk (or a quota or size limit) is full. */
static int store_status(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? 507 : 500;
}

static void upload_free(struct upload *u)
{
    if (u->fd >= 0) {
        close(u->fd);
        unlinkat(u->dirfd, u->tmp, 0);
    }
    if (u->dirfd >= 0)
        close(u->dirfd);
    if (u->flush_ev)
        event_free(u->flush_ev);
    if (u->buf)
        evbuffer_free(u->buf);
    free(u);
}

/* The request ended: freed here, whatever the outcome. */
static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct upload *u = arg;
    if (err) {
        graced_log(LOG_INFO, "upload %s abandoned after %lld bytes: %s", u->name,
                   (long long)u->bytes, grace_strerror(err));
        if (!u->replied)
            grace_reply(req, 500, NULL, 0); /* completes our side; -ENOTCONN */
    }
    upload_free(u);
}

static void fail(struct upload *u, int status, const char *msg)
{
    u->replied = 1;
    graced_reply(u->req, status, msg);
}

/* The version If-Match names is still there? (it was at the headers) */
static int still_matches(struct upload *u)
{
    struct stat st;
    char etag[64];
    if (fstatat(u->dirfd, u->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    graced_etag(&st, etag, sizeof(etag));
    return graced_etag_match(u->if_match, etag, 0);
}

/* Everything is on disk: make it durable, then give it its name. */
static void commit(struct upload *u)
{
    struct stat st;
    char etag[64], loc[3 * sizeof(u->path) + 2];
    int existed = fstatat(u->dirfd, u->name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (u->if_match && !still_matches(u)) {
        fail(u, 412, "the file changed meanwhile (If-Match)\n");
        return;
    }
    if (fsync(u->fd) < 0 || fstat(u->fd, &st) < 0 ||
        renameat2(u->dirfd, u->tmp, u->dirfd, u->name, u->noreplace ? RENAME_NOREPLACE : 0) < 0) {
        int e = errno;
        if (e == EEXIST)
            fail(u, 412, "the file exists and is not replaced\n");
        else
            fail(u, e == EISDIR || e == ENOTDIR ? 409 : store_status(e),
                 e == EISDIR ? "a folder has that name\n" : "could not store the upload\n");
        return;
    }
    close(u->fd);
    u->fd = -1; /* renamed: nothing to unlink */
    graced_files_forget(u->g, u->path);
    graced_metrics_upload(u->g, u->bytes);
    fsync(u->dirfd); /* the rename itself */
    graced_log(LOG_DEBUG, "stored %s (%lld bytes)", u->path, (long long)u->bytes);
    u->replied = 1;
    graced_etag(&st, etag, sizeof(etag));
    grace_response_add_header(u->req, "ETag", etag);
    if (existed) {
        graced_reply(u->req, 204, NULL);
    } else {
        loc[0] = '/';
        graced_path_encode(u->path, loc + 1, sizeof(loc) - 1);
        grace_response_add_header(u->req, "Location", loc);
        graced_reply(u->req, 201, "created\n");
    }
}

/* Move buffered body bytes to disk, a step per loop iteration. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upload *u = arg;
    while (evbuffer_get_length(u->buf)) {
        int n = evbuffer_write_atmost(u->buf, u->fd, DISK_STEP);
        if (n < 0) {
            u->err = errno;
            fail(u, store_status(u->err), "could not store the upload\n");
            return;
        }
        if (!u->ended)
            break; /* yield to the network; come back if still behind */
    }
    if (u->ended && !evbuffer_get_length(u->buf)) {
        commit(u);
        return;
    }
    if (evbuffer_get_length(u->buf) >= DISK_HIGH) {
        event_active(u->flush_ev, EV_TIMEOUT, 1);
    } else if (u->paused) {
        u->paused = 0;
        grace_request_resume(u->req);
    }
}

static void on_data(struct grace_request *req, const char *data, size_t len, void *arg)
{
    struct upload *u = arg;
    if (u->replied)
        return;
    if (evbuffer_add(u->buf, data, len) < 0) {
        fail(u, 500, "out of memory\n");
        return;
    }
    u->bytes += (int64_t)len;
    if (evbuffer_get_length(u->buf) >= DISK_HIGH) {
        if (!u->paused) {
            u->paused = 1;
            grace_request_pause(req);
        }
        event_active(u->flush_ev, EV_TIMEOUT, 1);
    }
}

static void on_end(struct grace_request *req, void *arg)
{
    struct upload *u = arg;
    u->ended = 1;
    if (!u->replied)
        event_active(u->flush_ev, EV_TIMEOUT, 1);
}

/* The library moved the whole body into the file (splice, no copy). */
static void on_spliced(struct grace_request *req, void *arg)
{
    struct upload *u = arg;
    u->bytes = grace_request_content_length(req);
    on_end(req, arg);
}

/* Uploads on? (Who may write is graced_authorize's, before this.) */
int graced_write_allowed(struct grace_request *req, struct graced *g)
{
    if (!g->o.upload_dir) {
        grace_response_add_header(req, "Allow", "GET, HEAD");
        graced_reply(req, 405, "uploads are not enabled\n");
        return 0;
    }
    return 1;
}

/*
 * The preconditions, against what is there now (dirfd < 0: the folder does
 * not exist yet). 0, or 412 / 409 to answer.
 */
static int preconditions(struct grace_request *req, struct graced *g, int dirfd,
                         const char *name, int *noreplace)
{
    const char *inm = grace_request_header(req, "If-None-Match");
    const char *im = grace_request_header(req, "If-Match");
    struct stat st;
    char etag[64];
    int exists = dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return 409;
    if (exists)
        graced_etag(&st, etag, sizeof(etag));
    *noreplace = g->o.no_overwrite || (inm && !strcmp(inm, "*"));
    if (im && (!exists || !graced_etag_match(im, etag, 0)))
        return 412;
    if (inm && exists && graced_etag_match(inm, etag, 1))
        return 412; /* "*" matches any */
    if (*noreplace && exists)
        return 412;
    return 0;
}

void graced_upload(struct grace_request *req, struct graced *g)
{
    struct upload *u;
    char rel[4096];
    const char *leaf;
    int st, trailing, dirfd, noreplace;
    size_t dirlen;

    if (!graced_write_allowed(req, g))
        return;
    if ((st = graced_path_decode(grace_request_path(req), rel, sizeof(rel),
                                 graced_path_flags(g, 1), &trailing)) ||
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
    st = preconditions(req, g, dirfd, leaf, &noreplace);
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
    u->dirfd = dirfd;
    u->noreplace = noreplace;
    u->if_match = grace_request_header(req, "If-Match");
    memcpy(u->name, leaf, strlen(leaf) + 1); /* <= 255 bytes: graced_path_decode */
    snprintf(u->path, sizeof(u->path), "%s", rel);
    /* PID and sequence first (they make it unique, and tell a stale file
     * from one in flight); then as much of the name as fits in NAME_MAX */
    snprintf(u->tmp, sizeof(u->tmp), "%s%d.%lu.%.*s", GRACED_TMP_PREFIX, (int)getpid(),
             ++g->upload_seq, TMP_NAME_PART, leaf);
    u->fd = openat(dirfd, u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    u->buf = evbuffer_new();
    u->flush_ev = event_new(g->base, -1, 0, flush_cb, u);
    if (u->fd < 0 || !u->buf || !u->flush_ev) {
        int e = errno;
        graced_log(LOG_ERR, "upload %s: %s", rel, strerror(e));
        graced_reply(req, store_status(e), "could not store the upload\n");
        upload_free(u);
        return;
    }
    grace_request_on_finish(req, on_finish, u);
    st = grace_request_body_to_fd(req, u->fd, on_spliced, u);
    if (st == -ENOTSUP) /* TLS or chunked: through memory */
        st = grace_request_read_body(req, on_data, on_end, u);
    if (st < 0)
        fail(u, 500, "could not read the body\n");
}
