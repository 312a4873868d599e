/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * etag.c - the validator graced gives a file, and the lists that name one
 * (If-Match, If-None-Match). One ETag for GET, PUT, DELETE and the commit
 * of an upload: the modification time (with its nanoseconds) and the size,
 * in hex. And HTTP's dates (Last-Modified, Upload-Expires).
 */
#include "graced.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void graced_http_date(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void graced_etag(const struct stat *sb, char *out, size_t n)
{
    snprintf(out, n, "\"%llx-%lx-%llx\"", (unsigned long long)sb->st_mtim.tv_sec,
             (unsigned long)sb->st_mtim.tv_nsec, (unsigned long long)sb->st_size);
}

/* Does an If-None-Match (weak comparison) or If-Match (strong: a W/ tag
 * never matches) list contain our ETag? */
int graced_etag_match(const char *list, const char *etag, int weak)
{
    size_t el = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        int is_weak = !strncmp(p, "W/", 2);
        if (is_weak)
            p += 2;
        if ((weak || !is_weak) && !strncmp(p, etag, el) && (p[el] == '\0' || p[el] == ',' || p[el] == ' '))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

int graced_write_conditions(struct grace_request *req, int no_overwrite, int dirfd,
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
    *noreplace = no_overwrite || (inm && !strcmp(inm, "*"));
    if (im && (!exists || !graced_etag_match(im, etag, 0)))
        return 412;
    if (inm && exists && graced_etag_match(inm, etag, 1))
        return 412; /* "*" matches any */
    if (*noreplace && exists)
        return 412;
    return 0;
}
