/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * walk.c - the names below a folder, one at a time, depth first: what a
 * search looks through and a zip holds. It shows what a listing shows: no
 * dot-names (unless --show-hidden), none of graced's temporary files, no
 * name GET would refuse (control bytes), only files and folders, no
 * symbolic link followed (each folder is opened with O_NOFOLLOW below the
 * one before: the walk never leaves the tree), and only what the access
 * copy lets read; a folder that is only on the way to a readable one is
 * entered and shown, marked as such. At most GRACED_WALK_DEPTH folders
 * deep. It owns only what it was given (a dup of the folder, a copy of the
 * rules), so it may run on a pool thread as well as on the loop.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct graced_walk {
    const struct graced_access *access;
    int show_hidden;
    char top[4096];            /* the folder's path below the root */
    DIR *stack[GRACED_WALK_DEPTH];
    size_t plen[GRACED_WALK_DEPTH]; /* length of path while in stack[i] */
    int depth;
    char path[4096];           /* "a/b/" below the folder: where stack[depth] is */
    size_t len;
    char item[4096 + 256];     /* the last entry's path below the folder */
    int enter;                 /* the last entry is a folder to enter next */
    char enter_name[256];
};

struct graced_walk *graced_walk_new(int dirfd, const char *top, int show_hidden,
                                    const struct graced_access *access)
{
    struct graced_walk *w = calloc(1, sizeof(*w));
    /* a new open file description: a dup would share the offset of
     * another walk of the same folder */
    int fd = dirfd >= 0 ? openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (!w || fd < 0 || !(w->stack[0] = fdopendir(fd))) {
        if (fd >= 0)
            close(fd);
        free(w);
        return NULL;
    }
    w->access = access;
    w->show_hidden = show_hidden;
    snprintf(w->top, sizeof(w->top), "%s", top);
    return w;
}

void graced_walk_free(struct graced_walk *w)
{
    if (!w)
        return;
    while (w->depth >= 0)
        closedir(w->stack[w->depth--]);
    free(w);
}

int graced_walk_dirfd(const struct graced_walk *w)
{
    return dirfd(w->stack[w->depth]);
}

/* Enter the folder the last entry was, if any: it becomes stack[depth]. */
static void enter(struct graced_walk *w)
{
    int fd;
    DIR *d;
    w->enter = 0;
    if (w->depth + 1 >= GRACED_WALK_DEPTH ||
        w->len + strlen(w->enter_name) + 2 >= sizeof(w->path))
        return;
    fd = openat(dirfd(w->stack[w->depth]), w->enter_name,
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || !(d = fdopendir(fd))) {
        if (fd >= 0)
            close(fd);
        return;
    }
    w->stack[++w->depth] = d;
    w->len += (size_t)snprintf(w->path + w->len, sizeof(w->path) - w->len, "%s/",
                               w->enter_name);
    w->plen[w->depth] = w->len;
}

int graced_walk_next(struct graced_walk *w, struct graced_walk_entry *e)
{
    char below[4096 + 4096 + 256 + 2];
    if (w->enter)
        enter(w);
    while (w->depth >= 0) {
        struct dirent *de = readdir(w->stack[w->depth]);
        struct stat sb;
        const char *nm;
        int dir;
        if (!de) { /* this folder is done: back to its parent's */
            closedir(w->stack[w->depth--]);
            if (w->depth >= 0)
                w->path[w->len = w->plen[w->depth]] = '\0';
            continue;
        }
        nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        if ((nm[0] == '.' && !w->show_hidden) ||
            !strncmp(nm, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1) ||
            graced_name_check(nm, strlen(nm), w->show_hidden ? GRACED_PATH_HIDDEN_OK : 0))
            return e->skip = 1, 1;
        if (fstatat(dirfd(w->stack[w->depth]), nm, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
            !(S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)) ||
            w->len + strlen(nm) + 2 >= sizeof(w->path))
            return e->skip = 1, 1;
        dir = S_ISDIR(sb.st_mode);
        /* its path below the root, as the rules name paths */
        snprintf(below, sizeof(below), "%s%s%s%s", w->top, w->top[0] ? "/" : "", w->path, nm);
        if (!graced_access_may(w->access, below, GRACED_MAY_READ | (dir ? GRACED_MAY_PASS : 0)))
            return e->skip = 1, 1;
        snprintf(w->item, sizeof(w->item), "%s%s", w->path, nm);
        e->skip = 0;
        e->path = w->item;
        e->name = w->item + w->len;
        e->st = sb;
        e->readable = !dir || graced_access_may(w->access, below, GRACED_MAY_READ);
        if (dir) {
            w->enter = 1;
            snprintf(w->enter_name, sizeof(w->enter_name), "%s", nm);
        }
        return 1;
    }
    return 0;
}
