/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * append.c - writing a resumable upload (resumable.c says what the
 * protocols ask of it): a request takes the upload's file for its time
 * through an adopted store (store.c: the upload's lock, taken without
 * waiting; appended at its end, write-back as it grows, the blocks of a
 * known body reserved first), checks the offset under that lock, and
 * appends its body. When the body ends, an upload not complete yet is
 * synced before its offset is told (an offset told never goes back after a
 * crash); a complete one is stored the way a PUT is (the store's commit:
 * fsync, If-None-Match / If-Match again, rename, fsync of the folder, on
 * the pool) and its info marked complete. A request cut short keeps every
 * byte it received, also what is still in memory. A request that ends
 * while its upload is being stored does not stop that: the bytes are all
 * there, and the request's state lives until the job is done.
 */
#define _GNU_SOURCE
#include "append.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int rup_interop(struct grace_request *req)
{
    const char *v = grace_request_header(req, "Upload-Draft-Interop-Version");
    return v && (!strcmp(v, "6") || !strcmp(v, "5")) ? v[0] - '0' : 0;
}

int rup_has_body(struct grace_request *req)
{
    return grace_request_content_length(req) != 0;
}

/* ---------------------------------------------------------------- answers */

void rup_upload_url(const struct rup *r, char *out, size_t n)
{
    snprintf(out, n, URL_PREFIX "%s", r->p.id);
}

void rup_add_offset(struct rup *r, int64_t off)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)off);
    grace_response_add_header(r->req, "Upload-Offset", v);
}

/* IETF's Upload-Limit: what the upload may grow to, how long it lives. */
void rup_add_limit(struct grace_request *req, const struct graced *g, int64_t expires_in)
{
    char v[80];
    snprintf(v, sizeof(v), "max-size=%lld,expires=%lld", (long long)g->o.max_body,
             (long long)(expires_in < 0 ? 0 : expires_in));
    grace_response_add_header(req, "Upload-Limit", v);
}

/* What tus asks of every answer, and the expiry of an upload in flight. */
static void add_common(struct rup *r)
{
    if (r->proto == GRACED_PROTO_TUS) {
        grace_response_add_header(r->req, "Tus-Resumable", TUS_VERSION);
        if (r->p.id[0] && !r->p.complete && r->p.touched_ms) {
            char d[40];
            graced_http_date((time_t)(graced_partial_expires(&r->p) / 1000), d, sizeof(d));
            grace_response_add_header(r->req, "Upload-Expires", d);
        }
    } else if (r->interop) {
        char v[4];
        snprintf(v, sizeof(v), "%d", r->interop);
        grace_response_add_header(r->req, "Upload-Draft-Interop-Version", v);
    }
}

/* The last thing done with r: it may be freed inside. */
void rup_answer(struct rup *r, int status, const char *body)
{
    r->replied = 1;
    graced_sink_cancel(r->sink); /* what else comes is dropped */
    add_common(r);
    graced_reply(r->req, status, body);
}

/* IETF's problem types (RFC 9457) for a wrong offset and a completed upload. */
void rup_problem(struct rup *r, int status, const char *type, const char *title,
                           int64_t expected, int64_t provided)
{
    char body[400];
    if (expected >= 0)
        snprintf(body, sizeof(body),
                 "{\"type\":\"https://iana.org/assignments/http-problem-types#%s\","
                 "\"title\":\"%s\",\"expected-offset\":%lld,\"provided-offset\":%lld}\n",
                 type, title, (long long)expected, (long long)provided);
    else
        snprintf(body, sizeof(body),
                 "{\"type\":\"https://iana.org/assignments/http-problem-types#%s\","
                 "\"title\":\"%s\"}\n", type, title);
    r->replied = 1;
    graced_sink_cancel(r->sink);
    add_common(r);
    grace_response_add_header(r->req, "Content-Type", "application/problem+json");
    grace_reply(r->req, status, body, strlen(body));
}

int rup_disk_status(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? 507 : 500;
}

/* ---------------------------------------------------------------- lifetime */

/* This worker's requests that hold an upload's file (its lock): a client
 * that lost its connection unseen (a phone changing networks) comes back
 * while its old request still waits for bytes, up to body-timeout; the
 * draft lets the server assume that transfer has failed, as a client never
 * sends two at once. (One in another worker or instance keeps its lock
 * until then: 423.) */
static struct rup *writers;

static void writer_add(struct rup *r)
{
    if ((r->wnext = writers))
        writers->wprev = &r->wnext;
    r->wprev = &writers;
    writers = r;
}

static void writer_remove(struct rup *r)
{
    if (!r->wprev)
        return;
    if ((*r->wprev = r->wnext))
        r->wnext->wprev = r->wprev;
    r->wprev = NULL;
    r->wnext = NULL;
}

/* End this worker's other request writing r's upload (not one storing it
 * now: it has all the bytes). 1 if there was one. */
int rup_preempt(struct rup *r)
{
    for (struct rup *w = writers; w; w = w->wnext) {
        struct grace_conn *conn;
        if (w == r || strcmp(w->p.id, r->p.id) || w->busy || w->heading || !w->req ||
            !(conn = grace_request_conn(w->req)))
            continue;
        graced_log(LOG_INFO, "resumable upload %s: a new request ends the one still writing it",
                   r->p.id);
        grace_conn_drop(conn, GRACE_DROP_ABORT); /* its finish: the bytes kept, the file let go */
        return 1;
    }
    return 0;
}

struct rup *rup_new(struct grace_request *req, struct graced *g, int proto)
{
    struct rup *r = calloc(1, sizeof(*r));
    if (!r) {
        graced_reply(req, 500, "out of memory\n");
        return NULL;
    }
    r->g = g;
    r->req = req;
    r->proto = proto;
    r->interop = rup_interop(req);
    r->fd = -1;
    r->new_length = -1;
    return r;
}

static void rup_free(struct rup *r)
{
    writer_remove(r);
    graced_store_abandon(r->store); /* an upload's file stays: closed, its lock let go */
    graced_sink_free(r->sink);
    free(r);
}

/* The request ended early: what it received is kept, also what is still
 * in memory (at most DISK_HIGH and a piece); its bytes are counted. */
static void keep_received(struct rup *r)
{
    off_t at;
    if (r->fd < 0 || r->counted)
        return;
    if (!r->failed)
        (void)graced_sink_write_out(r->sink);
    at = lseek(r->fd, 0, SEEK_CUR); /* spliced bytes too */
    if (at > r->start)
        graced_metrics_resumable(r->g, GRACED_RES_BYTES, at - r->start);
    r->counted = 1;
}

void rup_on_finish(struct grace_request *req, int err, void *arg)
{
    struct rup *r = arg;
    if (err) {
        keep_received(r);
        graced_log(LOG_INFO, "resumable upload %s: request ended at offset %lld: %s", r->p.id,
                   (long long)(r->fd >= 0 ? lseek(r->fd, 0, SEEK_CUR) : r->start),
                   grace_strerror(err));
        if (!r->replied)
            grace_reply(req, 500, NULL, 0); /* completes our side; -ENOTCONN */
    }
    r->req = NULL;
    if (r->busy) { /* its job's end frees it (a commit goes on: the bytes are all there) */
        r->gone = 1;
        return;
    }
    rup_free(r);
}

/* A job of ours ended: 1 if the request is gone (and r freed). */
int rup_job_end(struct rup *r)
{
    r->busy = 0;
    if (!r->gone)
        return 0;
    rup_free(r);
    return 1;
}

/* ---------------------------------------------------------------- the end of a body */

static void committed(const struct graced_store_result *res, void *arg);
static void synced(int err, int64_t size, void *arg);

static void final_answer(struct rup *r)
{
    char loc[sizeof(URL_PREFIX) + GRACED_PARTIAL_ID], file[3 * 4096 + 3 * 256 + 4],
        rel[4096 + 256 + 2];
    int status;
    snprintf(rel, sizeof(rel), "%s%s%s", r->p.dir, r->p.dir[0] ? "/" : "", r->p.name);
    file[0] = '/';
    graced_path_encode(rel, file + 1, sizeof(file) - 1);
    rup_add_offset(r, r->p.size);
    grace_response_add_header(r->req, "Content-Location", file);
    grace_response_add_header(r->req, "ETag", r->etag);
    if (r->heading) { /* a tus HEAD */
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)r->p.size);
        grace_response_add_header(r->req, "Upload-Length", v);
        grace_response_add_header(r->req, "Cache-Control", "no-store");
        rup_answer(r, 200, NULL);
        return;
    }
    if (r->proto == GRACED_PROTO_IETF)
        grace_response_add_header(r->req, "Upload-Complete", "?1");
    if (r->creating) {
        rup_upload_url(r, loc, sizeof(loc));
        grace_response_add_header(r->req, "Location", loc);
    }
    /* tus: 201 made, 204 appended; IETF: as a PUT answers, 201 for a new
     * file, 204 for one it replaced */
    status = r->proto == GRACED_PROTO_TUS ? (r->creating ? 201 : 204) : r->existed ? 204 : 201;
    rup_answer(r, status, status == 204 ? NULL : "created\n");
}

static void saved_complete(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (rup_job_end(r))
        return;
    if (op->err) /* stored all the same; a HEAD may not know it is complete */
        graced_log(LOG_WARN, "resumable upload %s stored, its state not: %s", r->p.id,
                   strerror(-op->err));
    final_answer(r);
}

/* A commit that failed: the data is gone with it (store.c), so the info
 * goes too; then the answer. */
static void removed_dead(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (rup_job_end(r))
        return;
    rup_answer(r, r->status, r->why);
}

static void committed(const struct graced_store_result *res, void *arg)
{
    struct rup *r = arg;
    char rel[4096 + 256 + 2];
    writer_remove(r);
    r->store = NULL; /* gone with this call */
    r->fd = -1;
    if (res->err || res->changed) {
        r->status = res->changed || res->err == EEXIST ? 412
                    : res->err == EISDIR || res->err == ENOTDIR ? 409
                                                                : rup_disk_status(res->err);
        r->why = res->changed ? "the file changed meanwhile (If-Match)\n"
                 : res->err == EEXIST ? "the file exists and is not replaced\n"
                 : res->err == EISDIR ? "a folder has that name\n"
                                      : "could not store the upload\n";
        graced_log(res->changed || res->err == EEXIST ? LOG_INFO : LOG_ERR,
                   "resumable upload %s to %s/%s not stored: %s", r->p.id, r->p.dir, r->p.name,
                   res->changed ? "If-Match" : strerror(res->err));
        if (graced_partial_remove(r->g, &r->op, &r->p, removed_dead) == 0) {
            r->busy = 1;
            return;
        }
        if (rup_job_end(r))
            return;
        rup_answer(r, r->status, r->why);
        return;
    }
    snprintf(rel, sizeof(rel), "%s%s%s", r->p.dir, r->p.dir[0] ? "/" : "", r->p.name);
    graced_files_forget(r->g, rel);
    graced_metrics_upload(r->g, r->p.size);
    graced_metrics_resumable(r->g, GRACED_RES_COMPLETED, 1);
    graced_log(LOG_DEBUG, "stored %s (%lld bytes, resumable %s)", rel, (long long)r->p.size,
               r->p.id);
    graced_etag(&res->st, r->etag, sizeof(r->etag));
    r->existed = res->existed;
    r->p.complete = 1;
    r->p.length = r->p.size;
    if (graced_partial_save(r->g, &r->op, &r->p, saved_complete) == 0)
        return; /* still busy */
    if (rup_job_end(r))
        return;
    final_answer(r);
}

/* All of it is there: under its name, the way a PUT's is. The request's
 * end does not stop it (the bytes are all there): r is kept until done. */
static void commit(struct rup *r)
{
    int dirfd = graced_path_open_dir(r->g->upload_fd, r->p.dir, strlen(r->p.dir), 1), st;
    /* graced_store_path: the folders on the way synced too (made at the
     * upload's creation, maybe never synced since) */
    if (dirfd < 0 || graced_store_target(r->store, dirfd, r->p.name) < 0 ||
        graced_store_path(r->store, r->p.dir) < 0) {
        st = graced_errno_status(dirfd < 0 ? dirfd : -ENOMEM);
        if (dirfd >= 0)
            close(dirfd);
        graced_log(LOG_WARN, "resumable upload %s: its folder %s: %s", r->p.id, r->p.dir,
                   strerror(dirfd < 0 ? -dirfd : ENOMEM));
        rup_add_offset(r, r->p.size);
        rup_answer(r, st, st == 409 ? "a file is in the way of the folder\n"
                      : st == 403 ? "forbidden path (a symbolic link?)\n"
                                  : "could not open the folder\n");
        return;
    }
    close(dirfd);
    r->busy = 1;
    grace_request_hold_stop(r->req); /* no 503 at a stop's deadline for a stored file */
    if (graced_store_commit(r->store, r->p.noreplace, r->p.if_match[0] ? r->p.if_match : NULL,
                            committed, r) < 0) {
        r->busy = 0;
        rup_answer(r, 500, "out of memory\n");
    }
}

static void saved_progress(struct graced_partial_op *op);

/* The body is all on disk; an upload not complete yet gets its offset
 * synced before it is told. */
static void body_done(struct rup *r)
{
    int64_t off = r->start + r->bytes, length = r->p.length >= 0 ? r->p.length : r->new_length;
    int complete = r->proto == GRACED_PROTO_IETF ? r->ask_complete && (length < 0 || off == length)
                                                 : length >= 0 && off == length;
    graced_metrics_resumable(r->g, GRACED_RES_BYTES, r->bytes);
    r->counted = 1;
    r->p.size = off;
    if (complete) {
        commit(r);
        return;
    }
    if (graced_store_sync(r->store, synced, r) < 0)
        rup_answer(r, 500, "could not store the upload\n");
}

static void answer_progress(struct rup *r)
{
    char loc[sizeof(URL_PREFIX) + GRACED_PARTIAL_ID];
    rup_add_offset(r, r->p.size);
    if (r->proto == GRACED_PROTO_IETF) {
        grace_response_add_header(r->req, "Upload-Complete", "?0");
        rup_add_limit(r->req, r->g, (graced_partial_expires(&r->p) - graced_partial_now()) / 1000);
        if (r->ask_complete) { /* it said complete, and is short of its length */
            rup_answer(r, 400, "Upload-Complete: ?1, but the upload is short of its length\n");
            return;
        }
    }
    if (r->creating) {
        rup_upload_url(r, loc, sizeof(loc));
        grace_response_add_header(r->req, "Location", loc);
        rup_answer(r, 201, "created\n");
    } else {
        rup_answer(r, 204, NULL);
    }
}

static void saved_progress(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (rup_job_end(r))
        return;
    if (op->err) {
        rup_answer(r, 500, "could not store the upload's length\n");
        return;
    }
    answer_progress(r);
}

/* The offset is on the disk (from the loop). */
static void synced(int err, int64_t size, void *arg)
{
    struct rup *r = arg;
    /* let the lock go before answering: the client's next request may come at once */
    writer_remove(r);
    graced_store_abandon(r->store);
    r->store = NULL;
    r->fd = -1;
    if (err) {
        graced_log(LOG_ERR, "resumable upload %s: %s", r->p.id, strerror(err));
        rup_answer(r, rup_disk_status(err), "could not store the upload\n");
        return;
    }
    r->p.size = size;
    r->p.touched_ms = graced_partial_now();
    if (r->new_length >= 0 && r->p.length < 0) { /* learnt now: kept for the next requests */
        r->p.length = r->new_length;
        if (graced_partial_save(r->g, &r->op, &r->p, saved_progress) == 0) {
            r->busy = 1;
            return;
        }
        rup_answer(r, 500, "could not store the upload's length\n");
        return;
    }
    answer_progress(r);
}

/* ---------------------------------------------------------------- the body */

static void fail_body(struct rup *r, int status, const char *msg)
{
    rup_add_offset(r, r->start + r->bytes);
    rup_answer(r, status, msg);
}

/* The body is all in the file, or could not be: err. */
static void body_stored(int err, void *arg)
{
    struct rup *r = arg;
    if (err) {
        r->failed = 1;
        /* what reached the file */
        r->bytes = graced_sink_received(r->sink) - graced_sink_buffered(r->sink);
        graced_log(LOG_ERR, "resumable upload %s: %s", r->p.id, strerror(err));
        fail_body(r, rup_disk_status(err),
                  err == ENOMEM ? "out of memory\n" : "could not store the upload\n");
        return;
    }
    r->bytes = graced_sink_received(r->sink);
    body_done(r);
}

static void read_body(struct rup *r)
{
    if (graced_sink_start(r->sink, r->req, r->fd, rup_has_body(r->req)) < 0)
        fail_body(r, 500, "could not read the body\n");
}

static void reserved(int err, void *arg)
{
    struct rup *r = arg;
    if (err) {
        fail_body(r, rup_disk_status(err), "not enough space for the upload\n");
        return;
    }
    read_body(r);
}

/* Take the upload's file for this request, check the offset under its
 * lock, bound the body, then read it. */
void rup_start_body(struct rup *r)
{
    int64_t cl = grace_request_content_length(r->req), room;
    int rc = graced_store_adopt(r->g, graced_partial_dirfd(r->g), r->p.id, &r->store);
    if (rc == -EAGAIN && !r->heading && rup_preempt(r)) /* a HEAD never ends a transfer */
        rc = graced_store_adopt(r->g, graced_partial_dirfd(r->g), r->p.id, &r->store);
    if (rc == -EAGAIN) {
        grace_response_add_header(r->req, "Retry-After", "1");
        rup_answer(r, 423, "another request is writing this upload; ask its offset again\n");
        return;
    }
    if (rc < 0) {
        rup_answer(r, rc == -ENOENT ? 404 : 500, rc == -ENOENT ? "no such upload\n"
                                                           : "could not open the upload\n");
        return;
    }
    r->fd = graced_store_fd(r->store);
    r->start = lseek(r->fd, 0, SEEK_CUR);
    writer_add(r);
    if (!r->creating && r->start != r->want_offset) {
        rup_add_offset(r, r->start);
        if (r->proto == GRACED_PROTO_IETF)
            rup_problem(r, 409, "mismatching-upload-offset",
                           "offset from request does not match offset of resource", r->start,
                           r->want_offset);
        else
            rup_answer(r, 409, "Upload-Offset is not the upload's offset: ask it again (HEAD)\n");
        return;
    }
    if (!r->creating && r->proto == GRACED_PROTO_IETF && r->ask_complete && cl >= 0) {
        /* the draft: this body ends the upload, so its end is the length */
        int64_t end = r->start + cl, known = r->p.length >= 0 ? r->p.length : r->new_length;
        if ((known >= 0 && end != known) || end > r->g->o.max_body) {
            rup_add_offset(r, r->start);
            rup_answer(r, end > r->g->o.max_body ? 413 : 400,
                   "Upload-Complete: ?1, but the body does not end at the upload's length\n");
            return;
        }
        r->new_length = known >= 0 ? -1 : end;
    }
    room = (r->p.length >= 0 ? r->p.length : r->new_length >= 0 ? r->new_length
                                                                 : r->g->o.max_body) - r->start;
    if (cl > room || room < 0) {
        rup_add_offset(r, r->start);
        rup_answer(r, r->proto == GRACED_PROTO_TUS ? 413 : 400,
               "the body goes past the upload's length\n");
        return;
    }
    grace_request_set_max_body(r->req, (uint64_t)room); /* a chunked body is cut there */
    if (!(r->sink = graced_sink_new(r->g->base, body_stored, r))) {
        rup_answer(r, 500, "out of memory\n");
        return;
    }
    /* the blocks of a known body first (store.c says why), if they cannot
     * outgrow the upload: reserved blocks past the end of a stored file
     * would stay */
    if (cl > 0 && (r->p.length >= 0 || r->new_length >= 0) &&
        graced_store_reserve(r->store, r->start + cl, reserved, r) == 0)
        return;
    read_body(r);
}

