/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * path.c - request paths to names below a tree, and back: every rule of
 * graced's about names is here.
 *
 * graced_path_of() is the one place where a URL path becomes a relative
 * file name. The decoding is the library's (grace_request_path_decoded:
 * percent-decoding, "." and empty segments dropped, an encoded '/', NUL
 * or a bad escape refused); graced's own rules come on top: ".." refused,
 * never resolved (a client has no business climbing), control bytes
 * refused, dot-names hidden (unless --show-hidden), our temporary upload
 * names never served, and for writes names of valid UTF-8 and at most 255
 * bytes. graced_name_check() is the rule for one name, also for form
 * filenames; graced_path_reserved() keeps graced's own paths (--health,
 * --metrics) from form parts (route.c refuses the other writes there).
 *
 * graced_path_uri() does the same for a URI that a WebDAV header names
 * (Destination, an If header's tag): an absolute URI must name this very
 * server (its authority is the request's Host), else 502.
 *
 * graced_path_open_dir() walks a relative directory path one segment at a
 * time with O_NOFOLLOW, optionally creating what is missing: a symbolic
 * link anywhere on the way is refused, so nothing written can land outside
 * the upload tree. graced_path_sync_dirs() makes the entries that name each
 * folder on such a path durable (a folder just made, by this request or by
 * another still on its way, is on disk only once its parent is synced).
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int graced_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        int more;
        unsigned min, cp;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf) more = 1, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) more = 2, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) more = 3, min = 0x10000, cp = c & 0x07;
        else return 0;
        if (end - p < more)
            return 0;
        while (more--) {
            if ((*p & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (*p++ & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

/*
 * Is one decoded name acceptable? 0, or the status to answer. Shared by
 * the URL decoder and by multipart filenames.
 */
int graced_name_check(const char *seg, size_t n, int flags)
{
    if (n == 2 && seg[0] == '.' && seg[1] == '.')
        return 403;
    if (n >= sizeof(GRACED_TMP_PREFIX) - 1 &&
        !memcmp(seg, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1))
        return 404;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
            return 400;
    if (n > 0 && seg[0] == '.' && !(n == 1) && !(flags & GRACED_PATH_HIDDEN_OK))
        return flags & GRACED_PATH_WRITE ? 403 : 404; /* reads: as if absent */
    if ((flags & GRACED_PATH_WRITE) && (n > 255 || !graced_utf8_valid(seg, n)))
        return 400;
    return 0;
}

int graced_name_sanitise(const char *in, char *out, size_t outlen, int flags)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 4 < outlen && n < 255;) {
        unsigned char c = (unsigned char)*p;
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && (strnlen(p, len) < len ||
                                                     !graced_utf8_valid(p, len)))) {
            out[n++] = '_';
            p++;
            continue;
        }
        if (n + len > 255)
            break;
        memcpy(out + n, p, len);
        n += len;
        p += len;
    }
    out[n] = '\0';
    if (out[0] == '.' && !(flags & GRACED_PATH_HIDDEN_OK) && strcmp(out, ".") && strcmp(out, ".."))
        out[0] = '_';
    if (n == 0 || !strcmp(out, ".") || !strcmp(out, ".."))
        return 400;
    return graced_name_check(out, n, flags | GRACED_PATH_WRITE);
}

/* The dots a raw segment decodes to if it holds nothing else ("..",
 * "%2e.", "%2E%2e"): 1 or 2 for the segments "." and "..", else 0. */
static int dots(const char *seg, size_t n)
{
    int d = 0;
    for (size_t i = 0; i < n; d++) {
        if (seg[i] == '.')
            i++;
        else if (n - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' && (seg[i + 2] | 0x20) == 'e')
            i += 3;
        else
            return 0;
    }
    return d <= 2 ? d : 0;
}

/*
 * The first n bytes of a raw path without "..", and their normal form:
 * every raw segment but an empty one and "." is, in order, one segment of
 * the normal form. Each is checked and appended to out.
 */
static int walk(const char *raw, size_t n, const char *norm, char *out, size_t outlen, int flags)
{
    const char *p = raw + 1, *end = raw + n, *d = norm + 1;
    size_t o = 0;
    int st;
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t rn = (size_t)((slash ? slash : end) - p), sn;
        if (rn && !dots(p, rn)) {
            sn = strcspn(d, "/");
            if (sn > 1023)
                return 414;
            if ((st = graced_name_check(d, sn, flags)))
                return st;
            if (o + sn + 2 > outlen)
                return 414;
            if (o)
                out[o++] = '/';
            memcpy(out + o, d, sn);
            o += sn;
            d += sn + (d[sn] == '/');
        }
        p += rn + 1;
    }
    out[o] = '\0';
    return 0;
}

/*
 * raw with the library's normal form of it. The library resolves "..";
 * graced refuses it (a client has no business climbing), after the checks
 * of the segments before it, which the normal form of that part gives.
 * An encoded '/', NUL or bad escape has no normal form at all: the library
 * answers 400 before graced sees the request.
 */
static int path_name(const char *raw, const char *norm, char *out, size_t outlen, int flags,
                     int *trailing_slash)
{
    size_t n = strlen(raw), q;
    char *pre;
    int st;
    *trailing_slash = n > 0 && raw[n - 1] == '/';
    if (!norm || raw[0] != '/' || norm[0] != '/')
        return 400;
    for (q = 1; q < n; q += strcspn(raw + q, "/") + 1)
        if (dots(raw + q, strcspn(raw + q, "/")) == 2)
            break;
    if (q >= n)
        return walk(raw, n, norm, out, outlen, flags);
    if (!(pre = malloc(q + 1)) || grace_path_normalize(raw, q, pre, q + 1) < 0)
        st = 400;
    else
        st = walk(raw, q, pre, out, outlen, flags);
    free(pre);
    return st ? st : 403;
}

int graced_path_decode(const char *raw, const char *norm, char *out, size_t outlen, int flags,
                       int *trailing_slash)
{
    int st = path_name(raw, norm, out, outlen, flags, trailing_slash);
    /* a name we do not take for writing is 400 whatever the rule, as for
     * PUT before folders existed: the answer does not hint which rule */
    return (flags & GRACED_PATH_WRITE) && (st == 403 || st == 404) ? 400 : st;
}

int graced_path_of(struct grace_request *req, char *out, size_t outlen, int flags,
                   int *trailing_slash)
{
    return graced_path_decode(grace_request_path(req), grace_request_path_decoded(req), out,
                              outlen, flags, trailing_slash);
}

size_t graced_path_encode(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outlen; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("/-._~!$()*+,;=:@", c)) { /* not & or ': safe in HTML attributes too */
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (outlen)
        out[o] = '\0';
    return o;
}

/* The next segment of [*p, end) into seg (NAME_MAX + 1 bytes), *p moved
 * past it and its slash: its length (0: an empty one), or -ENAMETOOLONG. */
static int next_segment(const char **p, const char *end, char seg[256])
{
    const char *slash = memchr(*p, '/', (size_t)(end - *p));
    size_t n = (size_t)((slash ? slash : end) - *p);
    if (n >= 256)
        return -ENAMETOOLONG;
    memcpy(seg, *p, n);
    seg[n] = '\0';
    *p += n + (slash != NULL);
    return (int)n;
}

int graced_path_open_dir(int top, const char *rel, size_t len, int create)
{
    int fd = dup(top);
    const char *p = rel, *end = rel + len;
    char seg[256];
    while (fd >= 0 && p < end) {
        int n = next_segment(&p, end, seg), next;
        if (n < 0) {
            close(fd);
            return n;
        }
        if (n == 0)
            continue;
        if (create && mkdirat(fd, seg, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            close(fd);
            return -e;
        }
        /* O_NOFOLLOW: a symlink on the way is ELOOP, never followed */
        next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int e = errno;
            struct stat sb;
            /* with O_DIRECTORY a symlink is ENOTDIR: tell it from a file */
            if (e == ENOTDIR && fstatat(fd, seg, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(sb.st_mode))
                e = ELOOP;
            close(fd);
            return -e;
        }
        close(fd);
        fd = next;
    }
    return fd < 0 ? -errno : fd;
}

int graced_path_sync_dirs(int top, const char *rel, size_t len)
{
    /* top may be an O_PATH handle, which fsync refuses: its own open */
    int fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), next;
    const char *p = rel, *end = rel + len;
    char seg[256];
    if (fd < 0)
        return -errno;
    while (p < end) {
        int n = next_segment(&p, end, seg);
        if (n < 0) {
            close(fd);
            return n;
        }
        if (n == 0)
            continue;
        /* fd holds seg: its entry made durable */
        if (fsync(fd) < 0 ||
            (next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        close(fd);
        fd = next;
    }
    close(fd); /* the last folder: its entries are the caller's */
    return 0;
}

/* Is the open file fd inside the root? (fallback for kernels < 5.6) */
static int confined(const struct graced *g, int fd)
{
    char link[64], real[4096];
    ssize_t n;
    size_t rl = strlen(g->root_real);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, real, sizeof(real) - 1);
    if (n < 0)
        return 0;
    real[n] = '\0';
    return !strncmp(real, g->root_real, rl) &&
           (real[rl] == '\0' || real[rl] == '/' || (rl == 1 && g->root_real[0] == '/'));
}

/*
 * Open path below dirfd, never outside the root: openat2(RESOLVE_BENEATH)
 * lets the kernel refuse any escape (EXDEV) in the same system call; on
 * older kernels the opened file's real path is checked instead.
 * Returns the fd, or -1 with errno (EXDEV for an escape).
 */
static int open_beneath(const struct graced *g, int dirfd, const char *path)
{
    static int no_openat2;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd;
    if (!no_openat2) {
        fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0 || errno != ENOSYS)
            return fd;
        no_openat2 = 1;
    }
    fd = openat(dirfd, path, (int)how.flags);
    if (fd >= 0 && !confined(g, fd)) {
        close(fd);
        return errno = EXDEV, -1;
    }
    return fd;
}

int graced_open_beneath(const struct graced *g, const char *path)
{
    return open_beneath(g, g->root_fd, path);
}

const char *graced_path_reserved(const struct graced *g, const char *rel)
{
    /* the options' paths are normalized and decoded ("/metrics"); rel has
     * no leading '/' */
    if (g->o.health_path && !strcmp(g->o.health_path + 1, rel))
        return "--health";
    if (g->o.metrics_path && !strcmp(g->o.metrics_path + 1, rel))
        return "--metrics";
    return NULL;
}

int graced_errno_status(int err)
{
    switch (err < 0 ? -err : err) {
    case ENOENT: return 404;
    case ENOTDIR: case EEXIST: case EISDIR: case ENOTEMPTY: return 409;
    case ELOOP: case EACCES: case EPERM: case EXDEV: return 403;
    case ENAMETOOLONG: return 414;
    case ENOSPC: case EDQUOT: case EFBIG: return 507;
    default: return 500;
    }
}

int graced_path_uri(struct grace_request *req, const char *uri, size_t len, char *out,
                    size_t outlen, int flags, int *trailing_slash)
{
    const char *p = uri, *end = uri + len, *host, *path;
    char *raw, *norm;
    size_t n;
    ssize_t nl;
    int st;
    *trailing_slash = 0;
    if ((len >= 7 && !strncasecmp(p, "http://", 7)) || (len >= 8 && !strncasecmp(p, "https://", 8))) {
        p += p[4] == ':' ? 7 : 8;
        path = memchr(p, '/', (size_t)(end - p));
        if (!path)
            path = end;
        /* this very server: the authority the request came to (Host) */
        host = grace_request_header(req, "Host");
        if (memchr(p, '@', (size_t)(path - p)))
            return 400;
        if (!host || strlen(host) != (size_t)(path - p) || strncasecmp(host, p, (size_t)(path - p)))
            return 502;
        p = path;
    }
    if (p == end)
        p = "/", end = p + 1;
    if (*p != '/')
        return 400;
    n = strcspn(p, "?#");
    if (n > (size_t)(end - p))
        n = (size_t)(end - p);
    if (!(raw = malloc(2 * n + 2)))
        return 500;
    memcpy(raw, p, n);
    raw[n] = '\0';
    norm = raw + n + 1;
    nl = grace_path_normalize(raw, n, norm, n + 1);
    st = graced_path_decode(raw, nl < 0 ? NULL : norm, out, outlen, flags, trailing_slash);
    free(raw);
    return st;
}
