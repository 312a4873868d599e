/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * delete.c - DELETE of a file, or of an empty folder, in the upload tree.
 *
 * The same checks as an upload (uploads on, the token), the same decoding
 * and confinement (path.c: no "..", no dot-names unless --show-hidden, no
 * symlink on the way). A folder that still holds something is 409: nothing
 * is deleted recursively. If-Match deletes only that version of a file.
 */
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void graced_delete(struct grace_request *req, struct graced *g)
{
    char rel[4096], etag[64];
    const char *leaf, *im = grace_request_header(req, "If-Match");
    int st, trailing, dirfd;
    struct stat sb;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        graced_reply(req, st, st == 403 ? "forbidden name\n" : "bad path\n");
        return;
    }
    if (!rel[0]) {
        graced_reply(req, 403, "the top folder is not deleted\n");
        return;
    }
    leaf = strrchr(rel, '/');
    dirfd = graced_path_open_dir(g->upload_fd, rel, leaf ? (size_t)(leaf - rel) : 0, 0);
    leaf = leaf ? leaf + 1 : rel;
    if (dirfd < 0) {
        st = graced_errno_status(dirfd);
        graced_reply(req, st, st == 404 ? "not found\n" : "cannot reach that path\n");
        return;
    }
    if (fstatat(dirfd, leaf, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        st = graced_errno_status(errno);
        close(dirfd);
        graced_reply(req, st, st == 404 ? "not found\n" : "cannot reach that path\n");
        return;
    }
    if (im) {
        graced_etag(&sb, etag, sizeof(etag));
        if (S_ISDIR(sb.st_mode) || !graced_etag_match(im, etag, 0)) {
            close(dirfd);
            graced_reply(req, 412, "precondition failed: another version\n");
            return;
        }
    }
    if (unlinkat(dirfd, leaf, S_ISDIR(sb.st_mode) ? AT_REMOVEDIR : 0) < 0) {
        int e = errno;
        close(dirfd);
        st = e == ENOTEMPTY || e == EEXIST ? 409 : graced_errno_status(e);
        graced_reply(req, st, st == 409 ? "the folder is not empty\n" : "could not delete\n");
        return;
    }
    graced_files_forget(g, rel);
    /* the name is gone, but a crash may bring it back: no 2xx (and no
     * second fsync, which could report success for what the first lost) */
    if (fsync(dirfd) < 0) {
        int e = errno;
        close(dirfd);
        graced_log(LOG_ERR, "deleted %s, but the folder's fsync failed (%s): not durable", rel,
                   strerror(e));
        graced_reply(req, 500, "deleted, but the folder could not be synced to disk: not durable "
                               "(a crash may bring the file back)\n");
        return;
    }
    close(dirfd);
    graced_log(LOG_DEBUG, "deleted %s", rel);
    graced_reply(req, 204, NULL);
}
