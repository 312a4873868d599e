/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resumable.c - uploads that survive a dropped connection: an upload is a
 * resource of its own (partial.c keeps it on disk), made by one request,
 * told about (HEAD), appended to (PATCH) and cancelled (DELETE) by others,
 * until its last byte is stored under its name the way a PUT's is (the
 * store's commit: fsync, rename, fsync of the folder, on the pool). Two
 * protocols, one model:
 *
 *  - tus 1.0 (core, creation, creation-with-upload, creation-defer-length,
 *    termination, expiration): POST to a folder's URL with Upload-Length
 *    and Upload-Metadata's filename makes one; its Location is
 *    /.graced-tmp.uploads/ID; PATCH with application/offset+octet-stream
 *    at Upload-Offset appends; complete when the offset reaches the length.
 *  - draft-ietf-httpbis-resumable-upload-05 (interop version 6; -03's 5
 *    too): a POST to a folder, or a PUT (or raw POST) to a file, with
 *    Upload-Complete makes one and gets a 104 with its Location before the
 *    body is read; PATCH with application/partial-upload appends; complete
 *    when a request says Upload-Complete: ?1 and ends.
 *
 * This file is what each request asks and is answered; append.c writes
 * the bytes (and stores the file). Every refusal that needs no body (auth,
 * names, preconditions, the length over --max-body-size, a wrong offset, a
 * lock held) is answered before a body byte is read, so the client gets it
 * (the library's graceful close). An offset is told only once on the disk
 * (fsync), and the bytes of a request cut short stay: the next HEAD tells
 * them. The upload's name is chosen, sanitised and checked (If-None-Match:
 * *, --no-overwrite, If-Match) when it is made, and again by the rename.
 *
 * Who may go on with an upload: the login that made it (graced_auth_owner:
 * the same user, or the token); anyone else gets 404, as for an id that
 * does not exist. Without logins the URL, 128 random bits, is the key.
 */
#define _GNU_SOURCE
#include "append.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define TUS_EXTENSIONS "creation,creation-with-upload,creation-defer-length,termination,expiration"

/* ---------------------------------------------------------------- headers */

/* Is the Content-Type this media type (parameters aside)? */
static int media_is(struct grace_request *req, const char *type)
{
    const char *ct = grace_request_header(req, "Content-Type");
    size_t n = strlen(type);
    return ct && !strncasecmp(ct, type, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int graced_is_tus_create(struct grace_request *req)
{
    return grace_request_header(req, "Tus-Resumable") != NULL;
}

/* The draft's creation; a client of another interop version gets a plain
 * upload, as the draft asks (no 104 then). */
int graced_is_ietf_create(struct grace_request *req)
{
    return grace_request_header(req, "Upload-Complete") && rup_interop(req);
}

int graced_is_patch_override(struct grace_request *req)
{
    const char *v = grace_request_header(req, "X-HTTP-Method-Override");
    return v && !strcasecmp(v, "PATCH");
}

/* ---------------------------------------------------------------- creation */

static void created(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    char loc[sizeof(URL_PREFIX) + GRACED_PARTIAL_ID];
    if (rup_job_end(r))
        return;
    if (op->err) {
        graced_log(LOG_ERR, "resumable upload to %s/%s: %s", r->p.dir, r->p.name,
                   strerror(-op->err));
        rup_answer(r, rup_disk_status(-op->err), "could not make the upload\n");
        return;
    }
    graced_metrics_resumable(r->g, GRACED_RES_CREATED, 1);
    graced_log(LOG_DEBUG, "resumable upload %s to %s/%s made", r->p.id, r->p.dir, r->p.name);
    r->p.touched_ms = graced_partial_now();
    r->p.has_data = 1;
    rup_upload_url(r, loc, sizeof(loc));
    if (r->proto == GRACED_PROTO_IETF && rup_has_body(r->req)) {
        /* the URL before the body: a client cut off from now on resumes */
        char iv[4], lim[80];
        const char *f[6] = {"Location", loc, "Upload-Draft-Interop-Version", iv,
                            "Upload-Limit", lim};
        snprintf(iv, sizeof(iv), "%d", r->interop);
        snprintf(lim, sizeof(lim), "max-size=%lld,expires=%lld", (long long)r->g->o.max_body,
                 (long long)(r->p.expiry_ms / 1000));
        grace_reply_informational(r->req, 104, f, 3);
    }
    if (!rup_has_body(r->req) && !(r->ask_complete || r->p.length == 0)) {
        rup_add_offset(r, 0);
        if (r->proto == GRACED_PROTO_IETF) {
            grace_response_add_header(r->req, "Upload-Complete", "?0");
            rup_add_limit(r->req, r->g, r->p.expiry_ms / 1000);
        }
        grace_response_add_header(r->req, "Location", loc);
        rup_answer(r, 201, "created\n");
        return;
    }
    rup_start_body(r); /* with a body, or an empty upload that is complete at once */
}

/* The target of a creation: folder and name, checked. 0, or answered. */
static int target(struct rup *r, int folder, const char *filename)
{
    struct grace_request *req = r->req;
    struct graced *g = r->g;
    char rel[4096], name[256], base[1024], full[4096 + 256 + 2];
    const char *leaf, *slash, *bs;
    int st, trailing, dirfd;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 1), &trailing))) {
        rup_answer(r, st, st == 414 ? "name too long\n" : "bad upload name\n");
        return -1;
    }
    if (folder) {
        if (!filename) {
            rup_answer(r, 400, r->proto == GRACED_PROTO_TUS
                                       ? "Upload-Metadata names no filename\n"
                                       : "no file name: Upload-Metadata's filename or "
                                         "Content-Disposition's\n");
            return -1;
        }
        /* as a form's filename: its last path element, sanitised */
        slash = strrchr(filename, '/');
        bs = strrchr(filename, '\\');
        leaf = slash > bs ? slash + 1 : bs ? bs + 1 : filename;
        snprintf(base, sizeof(base), "%s", leaf);
        if ((st = graced_name_sanitise(base, name, sizeof(name), graced_path_flags(g, 1)))) {
            rup_answer(r, st, "refused file name\n");
            return -1;
        }
        snprintf(r->p.dir, sizeof(r->p.dir), "%s", rel);
    } else {
        if (!rel[0] || trailing) {
            rup_answer(r, 400, "bad upload name\n");
            return -1;
        }
        leaf = strrchr(rel, '/');
        leaf = leaf ? leaf + 1 : rel;
        if (strlen(leaf) > 255) {
            rup_answer(r, 414, "name too long\n");
            return -1;
        }
        memcpy(name, leaf, strlen(leaf) + 1);
        leaf = leaf == rel ? NULL : leaf - 1;
        snprintf(r->p.dir, sizeof(r->p.dir), "%.*s", leaf ? (int)(leaf - rel) : 0, rel);
    }
    snprintf(r->p.name, sizeof(r->p.name), "%s", name);
    if (snprintf(full, sizeof(full), "%s%s%s", r->p.dir, r->p.dir[0] ? "/" : "", name) >= 4096) {
        rup_answer(r, 414, "name too long\n");
        return -1;
    }
    if (graced_path_reserved(g, full)) {
        rup_answer(r, 409, "this path is graced's --metrics: no file may take it\n");
        return -1;
    }
    if ((dirfd = graced_path_open_dir(g->upload_fd, r->p.dir, strlen(r->p.dir), 1)) < 0) {
        st = graced_errno_status(dirfd);
        rup_answer(r, st, st == 409 ? "a file is in the way of a folder\n"
                              : st == 403 ? "forbidden path (a symbolic link?)\n"
                                          : "could not open the folder\n");
        return -1;
    }
    if ((st = graced_write_conditions(req, g->o.no_overwrite, dirfd, name, &r->p.noreplace))) {
        close(dirfd);
        rup_answer(r, st, st == 409 ? "a folder has that name\n"
                              : "precondition failed: the file exists or is another version\n");
        return -1;
    }
    st = graced_partial_same_fs(g, dirfd);
    close(dirfd);
    if (!st)
        return 1; /* the caller decides */
    return 0;
}

void graced_resumable_create(struct grace_request *req, struct graced *g)
{
    const char *v, *im = grace_request_header(req, "If-Match");
    int proto = graced_is_tus_create(req) ? GRACED_PROTO_TUS : GRACED_PROTO_IETF;
    int64_t cl = grace_request_content_length(req), len = -1;
    int folder, rc, named = 0;
    char fname[1024];
    struct rup *r;

    if (graced_partial_prepare(g) < 0) {
        graced_reply(req, 500, "resumable uploads cannot be kept (see the log)\n");
        return;
    }
    if (!(r = rup_new(req, g, proto)))
        return;
    r->creating = 1;
    if (proto == GRACED_PROTO_TUS) {
        v = grace_request_header(req, "Tus-Resumable");
        if (strcmp(v, TUS_VERSION)) {
            grace_response_add_header(req, "Tus-Version", TUS_VERSION);
            rup_answer(r, 412, "this server speaks tus 1.0.0\n");
            goto done;
        }
        v = grace_request_header(req, "Upload-Length");
        len = graced_field_uint(v);
        if (v ? len < 0 || grace_request_header(req, "Upload-Defer-Length")
              : !(v = grace_request_header(req, "Upload-Defer-Length")) || strcmp(v, "1")) {
            rup_answer(r, 400, "Upload-Length (bytes) or Upload-Defer-Length: 1 is needed\n");
            goto done;
        }
        if (rup_has_body(req) && !media_is(req, "application/offset+octet-stream")) {
            rup_answer(r, 415, "an upload's bytes come as application/offset+octet-stream\n");
            goto done;
        }
        folder = 1;
    } else {
        if ((r->ask_complete = graced_field_bool(grace_request_header(req, "Upload-Complete"))) < 0 ||
            grace_request_header(req, "Upload-Offset")) {
            rup_answer(r, 400, "Upload-Complete must be ?0 or ?1, and no Upload-Offset\n");
            goto done;
        }
        if ((v = grace_request_header(req, "Upload-Length")) && (len = graced_field_uint(v)) < 0) {
            rup_answer(r, 400, "Upload-Length must be a number of bytes\n");
            goto done;
        }
        if (r->ask_complete && cl >= 0) { /* the body is the whole upload */
            if (v && len != cl) {
                rup_answer(r, 400, "Upload-Length is not the Content-Length of a complete upload\n");
                goto done;
            }
            len = cl;
        }
        folder = -1; /* below: by the name's source */
    }
    if (len > g->o.max_body) {
        char m[32];
        snprintf(m, sizeof(m), "%lld", (long long)g->o.max_body);
        grace_response_add_header(req, proto == GRACED_PROTO_TUS ? "Tus-Max-Size" : "Upload-Limit",
                                  m);
        rup_answer(r, 413, "the upload is larger than --max-body-size\n");
        goto done;
    }
    if (len >= 0 && cl > len) {
        rup_answer(r, 413, "the body is larger than Upload-Length\n");
        goto done;
    }
    /* the name: tus's metadata, or the draft's Content-Disposition */
    v = grace_request_header(req, "Upload-Metadata");
    if (v && strlen(v) >= sizeof(r->p.metadata)) {
        rup_answer(r, 400, "Upload-Metadata is too long\n");
        goto done;
    }
    if (v) {
        snprintf(r->p.metadata, sizeof(r->p.metadata), "%s", v);
        named = graced_tus_metadata(v, "filename", fname, sizeof(fname));
    }
    if (!named && proto == GRACED_PROTO_IETF)
        named = graced_disposition_filename(grace_request_header(req, "Content-Disposition"), fname,
                                 sizeof(fname));
    if (named < 0) {
        rup_answer(r, 400, "malformed file name in Upload-Metadata or Content-Disposition\n");
        goto done;
    }
    if (folder < 0) { /* IETF: a POST with a name or to a folder's URL names a folder */
        const char *path = grace_request_path(req);
        folder = !strcmp(grace_request_method(req), "POST") &&
                 (named || path[strlen(path) - 1] == '/');
    }
    if (proto == GRACED_PROTO_TUS && im) {
        rup_answer(r, 400, "If-Match is for replacing a file by its URL, not a tus upload\n");
        goto done;
    }
    rc = target(r, folder, named ? fname : NULL);
    if (rc < 0) {
        r->replied = 1; /* answered there */
        goto done;
    }
    if (rc > 0) { /* the folder is on another filesystem: no rename from ours */
        if (proto == GRACED_PROTO_IETF && !folder) {
            free(r);
            graced_upload(req, g); /* the draft's fallback: a plain upload */
            return;
        }
        rup_answer(r, 500, "resumable uploads cannot go into this folder (another filesystem)\n");
        goto done;
    }
    if (len > 0 && graced_partial_space(g) >= 0 && len > graced_partial_space(g)) {
        rup_answer(r, 507, "not enough space for the upload\n");
        goto done;
    }
    r->p.proto = proto;
    r->p.length = len;
    r->p.expiry_ms = g->o.upload_expiry_ms;
    snprintf(r->p.if_match, sizeof(r->p.if_match), "%s", im ? im : "");
    graced_auth_owner(req, g, r->p.owner, sizeof(r->p.owner));
    grace_request_on_finish(req, rup_on_finish, r);
    if (graced_partial_create(g, &r->op, &r->p, created) < 0) {
        rup_answer(r, 500, "could not make the upload\n");
        return;
    }
    r->busy = 1;
    return;
done:
    free(r); /* answered, before rup_on_finish was set */
}

/* ---------------------------------------------------------------- HEAD, PATCH, DELETE */

/* The upload a request names, if its login owns it: r, or NULL (answered). */
static struct rup *find(struct grace_request *req, struct graced *g)
{
    const char *path = grace_request_path_decoded(req), *id = path + sizeof(URL_PREFIX) - 1;
    int proto = graced_is_tus_create(req) ? GRACED_PROTO_TUS
                : rup_interop(req)        ? GRACED_PROTO_IETF
                                         : 0;
    char owner[sizeof(((struct graced_partial *)0)->owner)];
    struct rup *r;
    int rc;

    if (!(r = rup_new(req, g, proto ? proto : GRACED_PROTO_TUS)))
        return NULL;
    if (strncmp(path, URL_PREFIX, sizeof(URL_PREFIX) - 1) || !graced_partial_id_ok(id, strlen(id)) ||
        (rc = graced_partial_load(g, id, &r->p)) < 0) {
        rup_answer(r, 404, "no such upload\n");
        free(r);
        return NULL;
    }
    graced_auth_owner(req, g, owner, sizeof(owner));
    if (strcmp(owner, r->p.owner)) { /* as if it did not exist: nothing to learn */
        r->p.id[0] = '\0';
        rup_answer(r, 404, "no such upload\n");
        free(r);
        return NULL;
    }
    if (!proto) { /* the client did not say: the rules of the protocol that made it */
        r->proto = r->p.proto;
        rup_answer(r, r->proto == GRACED_PROTO_TUS ? 412 : 400,
               r->proto == GRACED_PROTO_TUS ? "Tus-Resumable: 1.0.0 is needed\n"
                                            : "Upload-Draft-Interop-Version: 6 is needed\n");
        free(r);
        return NULL;
    }
    if (proto == GRACED_PROTO_TUS && strcmp(grace_request_header(req, "Tus-Resumable"),
                                            TUS_VERSION)) {
        grace_response_add_header(req, "Tus-Version", TUS_VERSION);
        rup_answer(r, 412, "this server speaks tus 1.0.0\n");
        free(r);
        return NULL;
    }
    if (!r->p.complete && r->p.has_data && graced_partial_now() > graced_partial_expires(&r->p)) {
        /* the sweep has not come by yet */
        rup_answer(r, r->proto == GRACED_PROTO_TUS ? 410 : 404, "the upload has expired\n");
        free(r);
        return NULL;
    }
    if (!r->p.complete && !r->p.has_data) {
        rup_answer(r, 404, "no such upload\n");
        free(r);
        return NULL;
    }
    return r;
}

static void probed(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    char v[24];
    if (rup_job_end(r))
        return;
    if (op->err || (!r->p.complete && !r->p.has_data)) {
        rup_answer(r, op->err ? 500 : 404, op->err ? "could not read the upload\n"
                                               : "no such upload\n");
        return;
    }
    grace_response_add_header(r->req, "Cache-Control", "no-store");
    rup_add_offset(r, r->p.size);
    if (r->p.complete) { /* where it went: a client that lost the last answer learns it here */
        char rel[4096 + 256 + 2], file[3 * sizeof(rel) + 2];
        snprintf(rel, sizeof(rel), "%s%s%s", r->p.dir, r->p.dir[0] ? "/" : "", r->p.name);
        file[0] = '/';
        graced_path_encode(rel, file + 1, sizeof(file) - 1);
        grace_response_add_header(r->req, "Content-Location", file);
    }
    if (r->p.length >= 0) {
        snprintf(v, sizeof(v), "%lld", (long long)r->p.length);
        grace_response_add_header(r->req, "Upload-Length", v);
    }
    if (r->proto == GRACED_PROTO_TUS) {
        if (r->p.length < 0)
            grace_response_add_header(r->req, "Upload-Defer-Length", "1");
        if (r->p.metadata[0])
            grace_response_add_header(r->req, "Upload-Metadata", r->p.metadata);
        rup_answer(r, 200, NULL);
    } else {
        grace_response_add_header(r->req, "Upload-Complete", r->p.complete ? "?1" : "?0");
        if (!r->p.complete)
            rup_add_limit(r->req, r->g, (graced_partial_expires(&r->p) - graced_partial_now()) / 1000);
        rup_answer(r, 204, NULL);
    }
}

void graced_resumable_head(struct grace_request *req, struct graced *g)
{
    struct rup *r = find(req, g);
    if (!r)
        return;
    if (r->proto == GRACED_PROTO_IETF &&
        (grace_request_header(req, "Upload-Offset") || grace_request_header(req, "Upload-Complete") ||
         grace_request_header(req, "Upload-Length"))) {
        rup_answer(r, 400, "no Upload-Offset, Upload-Complete or Upload-Length in a HEAD\n");
        free(r);
        return;
    }
    grace_request_on_finish(req, rup_on_finish, r);
    if (r->proto == GRACED_PROTO_TUS && !r->p.complete && r->p.length >= 0 &&
        r->p.size == r->p.length) {
        /* all its bytes are there, and it is not stored: its last request
         * ended after the last byte (cut short, or graced with it), or its
         * commit failed. To a tus client an offset at the length means
         * done, so it is stored now, before that is told. */
        r->heading = 1;
        r->want_offset = r->p.size;
        rup_start_body(r); /* no body: the commit */
        return;
    }
    if (graced_partial_probe(g, &r->op, &r->p, probed) < 0) {
        rup_answer(r, 500, "could not read the upload\n");
        return;
    }
    r->busy = 1;
}

static void removed(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (rup_job_end(r))
        return;
    if (op->err == -EAGAIN) {
        grace_response_add_header(r->req, "Retry-After", "1");
        rup_answer(r, 423, "a request is writing this upload\n");
        return;
    }
    if (op->err) {
        rup_answer(r, op->err == -ENOENT ? 404 : 500, op->err == -ENOENT ? "no such upload\n"
                                                                     : "could not remove it\n");
        return;
    }
    if (!r->p.complete)
        graced_metrics_resumable(r->g, GRACED_RES_TERMINATED, 1);
    r->p.id[0] = '\0'; /* no Upload-Expires on it now */
    rup_answer(r, 204, NULL);
}

void graced_resumable_delete(struct grace_request *req, struct graced *g)
{
    struct rup *r = find(req, g);
    if (!r)
        return;
    if (r->proto == GRACED_PROTO_IETF &&
        (grace_request_header(req, "Upload-Offset") || grace_request_header(req, "Upload-Complete"))) {
        rup_answer(r, 400, "no Upload-Offset or Upload-Complete in a DELETE\n");
        free(r);
        return;
    }
    grace_request_on_finish(req, rup_on_finish, r);
    rup_preempt(r); /* a request of this worker still writing it: cancelled too */
    if (graced_partial_remove(g, &r->op, &r->p, removed) < 0) {
        rup_answer(r, 500, "could not remove it\n");
        return;
    }
    r->busy = 1;
}

void graced_resumable_patch(struct grace_request *req, struct graced *g)
{
    struct rup *r = find(req, g);
    int64_t cl = grace_request_content_length(req), len;
    const char *v;
    if (!r)
        return;
    if (r->proto == GRACED_PROTO_TUS ? !media_is(req, "application/offset+octet-stream")
                                     : r->interop >= 6 && !media_is(req, "application/partial-upload")) {
        rup_answer(r, 415, r->proto == GRACED_PROTO_TUS
                           ? "PATCH takes application/offset+octet-stream\n"
                           : "PATCH takes application/partial-upload\n");
        goto done;
    }
    if ((r->want_offset = graced_field_uint(grace_request_header(req, "Upload-Offset"))) < 0) {
        rup_answer(r, 400, "Upload-Offset (bytes) is needed\n");
        goto done;
    }
    if (r->proto == GRACED_PROTO_IETF &&
        (r->ask_complete = graced_field_bool(grace_request_header(req, "Upload-Complete"))) < 0) {
        rup_answer(r, 400, "Upload-Complete must be ?0 or ?1\n");
        goto done;
    }
    if (r->p.complete) {
        if (r->proto == GRACED_PROTO_IETF) {
            rup_problem(r, 400, "completed-upload", "upload is already completed", -1, -1);
        } else if (r->want_offset == r->p.size && cl == 0) { /* a last answer lost: again */
            rup_add_offset(r, r->p.size);
            rup_answer(r, 204, NULL);
        } else {
            rup_add_offset(r, r->p.size);
            rup_answer(r, 409, "the upload is complete\n");
        }
        goto done;
    }
    /* a length told now: tus's deferred one (the draft's end: rup_start_body) */
    if ((v = grace_request_header(req, "Upload-Length"))) {
        if ((len = graced_field_uint(v)) < 0 || (r->p.length >= 0 && len != r->p.length)) {
            rup_answer(r, 400, "Upload-Length is not the upload's length\n");
            goto done;
        }
        if (r->p.length < 0)
            r->new_length = len;
    }
    if (r->new_length > g->o.max_body) {
        rup_answer(r, 413, "the upload is larger than --max-body-size\n");
        goto done;
    }
    grace_request_on_finish(req, rup_on_finish, r);
    rup_start_body(r);
    return;
done:
    free(r);
}

/* ---------------------------------------------------------------- OPTIONS */

void graced_resumable_options(struct grace_request *req, const struct graced *g)
{
    char v[32];
    if (!g->o.upload_dir)
        return;
    snprintf(v, sizeof(v), "%lld", (long long)g->o.max_body);
    grace_response_add_header(req, "Tus-Version", TUS_VERSION);
    grace_response_add_header(req, "Tus-Extension", TUS_EXTENSIONS);
    grace_response_add_header(req, "Tus-Max-Size", v);
    rup_add_limit(req, g, g->o.upload_expiry_ms / 1000);
}
