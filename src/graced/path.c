/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * path.c - request paths to names below a tree, and back.
 *
 * graced_path_decode() is the one place where a URL path becomes a relative
 * file name: percent-decoding, "." and empty segments dropped, ".." refused
 * (never resolved: a client has no business climbing), NUL and control
 * bytes refused, dot-names hidden. When the library grows a shared path
 * helper (percent-decode + dot segments), its result can be fed to the
 * segment checks below instead of the decoding loop.
 *
 * graced_path_open_dir() walks a relative directory path one segment at a
 * time with O_NOFOLLOW, optionally creating what is missing: a symbolic
 * link anywhere on the way is refused, so nothing written can land outside
 * the upload tree.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

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

static int path_decode(const char *in, char *out, size_t outlen, int flags, int *trailing_slash);

int graced_path_decode(const char *in, char *out, size_t outlen, int flags, int *trailing_slash)
{
    int st = path_decode(in, out, outlen, flags, trailing_slash);
    /* a name we do not take for writing is 400 whatever the rule, as for
     * PUT before folders existed: the answer does not hint which rule */
    return (flags & GRACED_PATH_WRITE) && (st == 403 || st == 404) ? 400 : st;
}

static int path_decode(const char *in, char *out, size_t outlen, int flags, int *trailing_slash)
{
    char seg[1024];
    size_t o = 0, s = 0, n = strlen(in);
    int st;
    *trailing_slash = n > 0 && in[n - 1] == '/';
    for (const char *p = in;; p++) {
        char c = *p;
        if (c == '%') {
            int h = hexval(p[1]), l = h < 0 ? -1 : hexval(p[2]);
            if (l < 0)
                return 400;
            c = (char)(h * 16 + l);
            p += 2;
            if (c == '\0')
                return 400;
            if (c == '/')
                return 403; /* an encoded slash would hide a segment */
        } else if (c == '/' || c == '\0') {
            /* end of a segment */
            if ((st = graced_name_check(seg, s, flags)))
                return st;
            if (s && !(s == 1 && seg[0] == '.')) {
                if (o + s + 2 > outlen)
                    return 414;
                if (o)
                    out[o++] = '/';
                memcpy(out + o, seg, s);
                o += s;
            }
            s = 0;
            if (c == '\0')
                break;
            continue;
        }
        if (s + 1 >= sizeof(seg))
            return 414;
        seg[s++] = c;
    }
    out[o] = '\0';
    return 0;
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

int graced_path_open_dir(int top, const char *rel, size_t len, int create)
{
    int fd = dup(top);
    const char *p = rel, *end = rel + len;
    char seg[256];
    while (fd >= 0 && p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t n = (size_t)((slash ? slash : end) - p);
        int next;
        if (n >= sizeof(seg)) {
            close(fd);
            return -ENAMETOOLONG;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        p += n + (slash != NULL);
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

int graced_path_reserved(const struct graced *g, const char *rel)
{
    /* metrics_path is normalized ("/metrics"); rel has no leading '/' */
    return g->o.metrics_path && !strcmp(g->o.metrics_path + 1, rel);
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
