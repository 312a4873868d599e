/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * props.c - WebDAV dead properties (what PROPPATCH sets), kept with the
 * file itself: one extended attribute, user.graced.props, holding records
 * "namespace\0name\0xml\0" (xml: the property's element, written to stand
 * alone, xml.c). Being the file's, they follow a rename (MOVE) and go with
 * the file (DELETE) by themselves; COPY copies them onto the temporary copy
 * before it gets its name. One attribute is replaced whole, so a reader
 * never sees half a PROPPATCH. Bounded by --dav-props-max (ext4 keeps at
 * most a block of attributes per file: 4 KiB there).
 *
 * A filesystem without user attributes (-ENOTSUP) keeps none: PROPPATCH
 * says so per property (507 Insufficient Storage), PROPFIND shows none.
 */
#include "graced.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#define PROPS_XATTR "user.graced.props"

static ssize_t got(ssize_t n)
{
    if (n >= 0)
        return n;
    if (errno == ENODATA)
        return 0;
    if (errno == EOPNOTSUPP)
        return -ENOTSUP;
    return -errno;
}

ssize_t graced_props_get(int fd, char *buf, size_t n)
{
    return got(fgetxattr(fd, PROPS_XATTR, buf, n));
}

ssize_t graced_props_get_at(int dirfd, const char *name, char *buf, size_t n)
{
    char path[64 + 256];
    /* the folder's fd as a path: no open of each file of a listing */
    if (snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    return got(lgetxattr(path, PROPS_XATTR, buf, n));
}

int graced_props_set(int fd, const char *buf, size_t len)
{
    if (len == 0)
        return fremovexattr(fd, PROPS_XATTR) == 0 || errno == ENODATA ? 0 : -errno;
    return fsetxattr(fd, PROPS_XATTR, buf, len, 0) == 0 ? 0 : -errno;
}

int graced_props_next(const char *buf, size_t len, size_t *pos, const char **ns,
                      const char **name, const char **xml)
{
    const char *f[3];
    size_t p = *pos;
    for (int i = 0; i < 3; i++) {
        const char *nul = p < len ? memchr(buf + p, '\0', len - p) : NULL;
        if (!nul)
            return 0; /* the end, or a record cut short: ignored */
        f[i] = buf + p;
        p = (size_t)(nul - buf) + 1;
    }
    *ns = f[0];
    *name = f[1];
    *xml = f[2];
    *pos = p;
    return 1;
}

int graced_props_copy(int from, int to)
{
    char buf[65536];
    ssize_t n = graced_props_get(from, buf, sizeof(buf));
    if (n <= 0)
        return n == -ENOTSUP ? 0 : (int)n;
    return graced_props_set(to, buf, (size_t)n);
}
