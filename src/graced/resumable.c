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
 * Every refusal that needs no body (auth, names, preconditions, the length
 * over --max-body-size, a wrong offset, a lock held) is answered before a
 * body byte is read, so the client gets it (the library's graceful close).
 * Bytes go to the upload's file through an adopted store (store.c: locked
 * for the request, written at its end, write-back as it grows, reserved
 * for a Content-Length); an offset is told only once on the disk (fsync),
 * and the bytes of a request cut short stay: the next HEAD tells them. The
 * upload's name is chosen, sanitised and checked (If-None-Match: *,
 * --no-overwrite, If-Match) when it is made, and again by the rename.
 *
 * Who may go on with an upload: the login that made it (graced_auth_owner:
 * the same user, or the token); anyone else gets 404, as for an id that
 * does not exist. Without logins the URL, 128 random bits, is the key.
 */
#define _GNU_SOURCE
#include "graced.h"

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

#define DISK_HIGH (1u << 20) /* pause the client above this much unwritten */
#define DISK_STEP (1u << 20) /* written per loop iteration */
#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS "creation,creation-with-upload,creation-defer-length,termination,expiration"
#define URL_PREFIX "/" GRACED_PARTIAL_DIR "/"

/* One request on a resumable upload. */
struct rup {
    struct graced *g;
    struct grace_request *req; /* NULL once it has finished */
    int proto;                 /* this request's protocol */
    int interop;               /* IETF: its Upload-Draft-Interop-Version */
    int creating;              /* it made the upload (POST, PUT) */
    int ask_complete;          /* IETF: Upload-Complete: ?1 */
    int64_t want_offset;       /* an append's Upload-Offset */
    int64_t new_length;        /* a length this request tells (-1: none) */
    struct graced_partial p;
    struct graced_partial_op op;
    struct graced_store *store;
    int fd;
    struct evbuffer *buf;      /* received, not yet written */
    struct event *flush_ev;
    int64_t start, bytes;      /* the offset its body starts at; received so far */
    int busy;                  /* a job whose end comes back here runs */
    int gone;                  /* ... and the request ended meanwhile: free at its end */
    int ended, paused, replied;
    int failed;                /* a write failed: nothing more is written */
    int heading;               /* a HEAD that stores an upload whose bytes are all there */
    struct rup *wnext, **wprev; /* in writers: it holds the upload's file */
    int counted;               /* its bytes are in the metrics */
    int status;                /* a failed commit's answer, once the info is gone */
    const char *why;
    char etag[64];
    int existed;
};

/* ---------------------------------------------------------------- headers */

static int interop_of(struct grace_request *req)
{
    const char *v = grace_request_header(req, "Upload-Draft-Interop-Version");
    return v && (!strcmp(v, "6") || !strcmp(v, "5")) ? v[0] - '0' : 0;
}

/* Is the Content-Type this media type (parameters aside)? */
static int media_is(struct grace_request *req, const char *type)
{
    const char *ct = grace_request_header(req, "Content-Type");
    size_t n = strlen(type);
    return ct && !strncasecmp(ct, type, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int has_body(struct grace_request *req)
{
    return grace_request_content_length(req) != 0;
}

int graced_is_tus_create(struct grace_request *req)
{
    return grace_request_header(req, "Tus-Resumable") != NULL;
}

/* The draft's creation; a client of another interop version gets a plain
 * upload, as the draft asks (no 104 then). */
int graced_is_ietf_create(struct grace_request *req)
{
    return grace_request_header(req, "Upload-Complete") && interop_of(req);
}

int graced_is_patch_override(struct grace_request *req)
{
    const char *v = grace_request_header(req, "X-HTTP-Method-Override");
    return v && !strcasecmp(v, "PATCH");
}

/* ---------------------------------------------------------------- answers */

static void upload_url(const struct rup *r, char *out, size_t n)
{
    snprintf(out, n, URL_PREFIX "%s", r->p.id);
}

static void add_offset(struct rup *r, int64_t off)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)off);
    grace_response_add_header(r->req, "Upload-Offset", v);
}

/* IETF's Upload-Limit: what the upload may grow to, how long it lives. */
static void add_limit(struct grace_request *req, const struct graced *g, int64_t expires_in)
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
static void answer(struct rup *r, int status, const char *body)
{
    r->replied = 1;
    add_common(r);
    graced_reply(r->req, status, body);
}

/* IETF's problem types (RFC 9457) for a wrong offset and a completed upload. */
static void answer_problem(struct rup *r, int status, const char *type, const char *title,
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
    add_common(r);
    grace_response_add_header(r->req, "Content-Type", "application/problem+json");
    grace_reply(r->req, status, body, strlen(body));
}

static int disk_status(int err)
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
static int preempt(struct rup *r)
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

static struct rup *rup_new(struct grace_request *req, struct graced *g, int proto)
{
    struct rup *r = calloc(1, sizeof(*r));
    if (!r) {
        graced_reply(req, 500, "out of memory\n");
        return NULL;
    }
    r->g = g;
    r->req = req;
    r->proto = proto;
    r->interop = interop_of(req);
    r->fd = -1;
    r->new_length = -1;
    return r;
}

static void rup_free(struct rup *r)
{
    writer_remove(r);
    graced_store_abandon(r->store); /* an upload's file stays: closed, its lock let go */
    if (r->flush_ev)
        event_free(r->flush_ev);
    if (r->buf)
        evbuffer_free(r->buf);
    free(r);
}

/* The request ended early: what it received is kept, also what is still
 * in memory (at most DISK_HIGH and a piece); its bytes are counted. */
static void keep_received(struct rup *r)
{
    off_t at;
    if (r->fd < 0 || r->counted)
        return;
    while (r->buf && evbuffer_get_length(r->buf) && !r->failed &&
           evbuffer_write_atmost(r->buf, r->fd, -1) >= 0)
        ;
    at = lseek(r->fd, 0, SEEK_CUR); /* spliced bytes too */
    if (at > r->start)
        graced_metrics_resumable(r->g, GRACED_RES_BYTES, at - r->start);
    r->counted = 1;
}

static void on_finish(struct grace_request *req, int err, void *arg)
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
static int job_end(struct rup *r)
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
    add_offset(r, r->p.size);
    grace_response_add_header(r->req, "Content-Location", file);
    grace_response_add_header(r->req, "ETag", r->etag);
    if (r->heading) { /* a tus HEAD */
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)r->p.size);
        grace_response_add_header(r->req, "Upload-Length", v);
        grace_response_add_header(r->req, "Cache-Control", "no-store");
        answer(r, 200, NULL);
        return;
    }
    if (r->proto == GRACED_PROTO_IETF)
        grace_response_add_header(r->req, "Upload-Complete", "?1");
    if (r->creating) {
        upload_url(r, loc, sizeof(loc));
        grace_response_add_header(r->req, "Location", loc);
    }
    /* tus: 201 made, 204 appended; IETF: as a PUT answers, 201 for a new
     * file, 204 for one it replaced */
    status = r->proto == GRACED_PROTO_TUS ? (r->creating ? 201 : 204) : r->existed ? 204 : 201;
    answer(r, status, status == 204 ? NULL : "created\n");
}

static void saved_complete(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (job_end(r))
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
    if (job_end(r))
        return;
    answer(r, r->status, r->why);
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
                                                                : disk_status(res->err);
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
        if (job_end(r))
            return;
        answer(r, r->status, r->why);
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
    if (job_end(r))
        return;
    final_answer(r);
}

/* All of it is there: under its name, the way a PUT's is. The request's
 * end does not stop it (the bytes are all there): r is kept until done. */
static void commit(struct rup *r)
{
    int dirfd = graced_path_open_dir(r->g->upload_fd, r->p.dir, strlen(r->p.dir), 1), st;
    if (dirfd < 0 || graced_store_target(r->store, dirfd, r->p.name) < 0) {
        st = graced_errno_status(dirfd < 0 ? dirfd : -ENOMEM);
        if (dirfd >= 0)
            close(dirfd);
        graced_log(LOG_WARN, "resumable upload %s: its folder %s: %s", r->p.id, r->p.dir,
                   strerror(dirfd < 0 ? -dirfd : ENOMEM));
        add_offset(r, r->p.size);
        answer(r, st, st == 409 ? "a file is in the way of the folder\n"
                      : st == 403 ? "forbidden path (a symbolic link?)\n"
                                  : "could not open the folder\n");
        return;
    }
    close(dirfd);
    r->busy = 1;
    if (graced_store_commit(r->store, r->p.noreplace, r->p.if_match[0] ? r->p.if_match : NULL,
                            committed, r) < 0) {
        r->busy = 0;
        answer(r, 500, "out of memory\n");
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
        answer(r, 500, "could not store the upload\n");
}

static void answer_progress(struct rup *r)
{
    char loc[sizeof(URL_PREFIX) + GRACED_PARTIAL_ID];
    add_offset(r, r->p.size);
    if (r->proto == GRACED_PROTO_IETF) {
        grace_response_add_header(r->req, "Upload-Complete", "?0");
        add_limit(r->req, r->g, (graced_partial_expires(&r->p) - graced_partial_now()) / 1000);
        if (r->ask_complete) { /* it said complete, and is short of its length */
            answer(r, 400, "Upload-Complete: ?1, but the upload is short of its length\n");
            return;
        }
    }
    if (r->creating) {
        upload_url(r, loc, sizeof(loc));
        grace_response_add_header(r->req, "Location", loc);
        answer(r, 201, "created\n");
    } else {
        answer(r, 204, NULL);
    }
}

static void saved_progress(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (job_end(r))
        return;
    if (op->err) {
        answer(r, 500, "could not store the upload's length\n");
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
        answer(r, disk_status(err), "could not store the upload\n");
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
        answer(r, 500, "could not store the upload's length\n");
        return;
    }
    answer_progress(r);
}

/* ---------------------------------------------------------------- the body */

static void fail_body(struct rup *r, int status, const char *msg)
{
    add_offset(r, r->start + r->bytes);
    answer(r, status, msg);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rup *r = arg;
    while (evbuffer_get_length(r->buf)) {
        int n = evbuffer_write_atmost(r->buf, r->fd, DISK_STEP);
        if (n < 0) {
            int e = errno;
            r->failed = 1;
            graced_log(LOG_ERR, "resumable upload %s: %s", r->p.id, strerror(e));
            r->bytes -= (int64_t)evbuffer_get_length(r->buf); /* what reached the file */
            fail_body(r, disk_status(e), "could not store the upload\n");
            return;
        }
        if (!r->ended)
            break; /* yield to the network; come back if still behind */
    }
    if (r->ended && !evbuffer_get_length(r->buf)) {
        body_done(r);
        return;
    }
    if (evbuffer_get_length(r->buf) >= DISK_HIGH) {
        event_active(r->flush_ev, EV_TIMEOUT, 1);
    } else if (r->paused) {
        r->paused = 0;
        grace_request_resume(r->req);
    }
}

static void on_data(struct grace_request *req, const char *data, size_t len, void *arg)
{
    struct rup *r = arg;
    if (r->replied)
        return;
    if (evbuffer_add(r->buf, data, len) < 0) {
        fail_body(r, 500, "out of memory\n");
        return;
    }
    r->bytes += (int64_t)len;
    if (evbuffer_get_length(r->buf) >= DISK_HIGH) {
        if (!r->paused) {
            r->paused = 1;
            grace_request_pause(req);
        }
        event_active(r->flush_ev, EV_TIMEOUT, 1);
    }
}

static void on_end(struct grace_request *req, void *arg)
{
    struct rup *r = arg;
    r->ended = 1;
    if (!r->replied)
        event_active(r->flush_ev, EV_TIMEOUT, 1);
}

static void on_spliced(struct grace_request *req, void *arg)
{
    struct rup *r = arg;
    r->bytes = grace_request_content_length(req);
    on_end(req, arg);
}

static void read_body(struct rup *r)
{
    int st = has_body(r->req) ? grace_request_body_to_fd(r->req, r->fd, on_spliced, r) : -ENOTSUP;
    if (st == -ENOTSUP) /* TLS, chunked, none: through memory */
        st = grace_request_read_body(r->req, on_data, on_end, r);
    if (st < 0)
        fail_body(r, 500, "could not read the body\n");
}

static void reserved(int err, void *arg)
{
    struct rup *r = arg;
    if (err) {
        fail_body(r, disk_status(err), "not enough space for the upload\n");
        return;
    }
    read_body(r);
}

/* Take the upload's file for this request, check the offset under its
 * lock, bound the body, then read it. */
static void start_body(struct rup *r)
{
    int64_t cl = grace_request_content_length(r->req), room;
    int rc = graced_store_adopt(r->g, graced_partial_dirfd(r->g), r->p.id, &r->store);
    if (rc == -EAGAIN && !r->heading && preempt(r)) /* a HEAD never ends a transfer */
        rc = graced_store_adopt(r->g, graced_partial_dirfd(r->g), r->p.id, &r->store);
    if (rc == -EAGAIN) {
        grace_response_add_header(r->req, "Retry-After", "1");
        answer(r, 423, "another request is writing this upload; ask its offset again\n");
        return;
    }
    if (rc < 0) {
        answer(r, rc == -ENOENT ? 404 : 500, rc == -ENOENT ? "no such upload\n"
                                                           : "could not open the upload\n");
        return;
    }
    r->fd = graced_store_fd(r->store);
    r->start = lseek(r->fd, 0, SEEK_CUR);
    writer_add(r);
    if (!r->creating && r->start != r->want_offset) {
        add_offset(r, r->start);
        if (r->proto == GRACED_PROTO_IETF)
            answer_problem(r, 409, "mismatching-upload-offset",
                           "offset from request does not match offset of resource", r->start,
                           r->want_offset);
        else
            answer(r, 409, "Upload-Offset is not the upload's offset: ask it again (HEAD)\n");
        return;
    }
    if (!r->creating && r->proto == GRACED_PROTO_IETF && r->ask_complete && cl >= 0) {
        /* the draft: this body ends the upload, so its end is the length */
        int64_t end = r->start + cl, known = r->p.length >= 0 ? r->p.length : r->new_length;
        if ((known >= 0 && end != known) || end > r->g->o.max_body) {
            add_offset(r, r->start);
            answer(r, end > r->g->o.max_body ? 413 : 400,
                   "Upload-Complete: ?1, but the body does not end at the upload's length\n");
            return;
        }
        r->new_length = known >= 0 ? -1 : end;
    }
    room = (r->p.length >= 0 ? r->p.length : r->new_length >= 0 ? r->new_length
                                                                 : r->g->o.max_body) - r->start;
    if (cl > room || room < 0) {
        add_offset(r, r->start);
        answer(r, r->proto == GRACED_PROTO_TUS ? 413 : 400,
               "the body goes past the upload's length\n");
        return;
    }
    grace_request_set_max_body(r->req, (uint64_t)room); /* a chunked body is cut there */
    r->buf = evbuffer_new();
    r->flush_ev = event_new(r->g->base, -1, 0, flush_cb, r);
    if (!r->buf || !r->flush_ev) {
        answer(r, 500, "out of memory\n");
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

/* ---------------------------------------------------------------- creation */

/* Against what is there now: 0, or 409 (a folder), 412. */
static int preconditions(struct grace_request *req, struct graced *g, int dirfd, const char *name,
                         int *noreplace)
{
    const char *inm = grace_request_header(req, "If-None-Match");
    const char *im = grace_request_header(req, "If-Match");
    struct stat st;
    char etag[64];
    int exists = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return 409;
    if (exists)
        graced_etag(&st, etag, sizeof(etag));
    *noreplace = g->o.no_overwrite || (inm && !strcmp(inm, "*"));
    if (im && (!exists || !graced_etag_match(im, etag, 0)))
        return 412;
    if (inm && exists && graced_etag_match(inm, etag, 1))
        return 412;
    if (*noreplace && exists)
        return 412;
    return 0;
}

static void created(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    char loc[sizeof(URL_PREFIX) + GRACED_PARTIAL_ID];
    if (job_end(r))
        return;
    if (op->err) {
        graced_log(LOG_ERR, "resumable upload to %s/%s: %s", r->p.dir, r->p.name,
                   strerror(-op->err));
        answer(r, disk_status(-op->err), "could not make the upload\n");
        return;
    }
    graced_metrics_resumable(r->g, GRACED_RES_CREATED, 1);
    graced_log(LOG_DEBUG, "resumable upload %s to %s/%s made", r->p.id, r->p.dir, r->p.name);
    r->p.touched_ms = graced_partial_now();
    r->p.has_data = 1;
    upload_url(r, loc, sizeof(loc));
    if (r->proto == GRACED_PROTO_IETF && has_body(r->req)) {
        /* the URL before the body: a client cut off from now on resumes */
        char iv[4], lim[80];
        const char *f[6] = {"Location", loc, "Upload-Draft-Interop-Version", iv,
                            "Upload-Limit", lim};
        snprintf(iv, sizeof(iv), "%d", r->interop);
        snprintf(lim, sizeof(lim), "max-size=%lld,expires=%lld", (long long)r->g->o.max_body,
                 (long long)(r->p.expiry_ms / 1000));
        grace_reply_informational(r->req, 104, f, 3);
    }
    if (!has_body(r->req) && !(r->ask_complete || r->p.length == 0)) {
        add_offset(r, 0);
        if (r->proto == GRACED_PROTO_IETF) {
            grace_response_add_header(r->req, "Upload-Complete", "?0");
            add_limit(r->req, r->g, r->p.expiry_ms / 1000);
        }
        grace_response_add_header(r->req, "Location", loc);
        answer(r, 201, "created\n");
        return;
    }
    start_body(r); /* with a body, or an empty upload that is complete at once */
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
        answer(r, st, st == 414 ? "name too long\n" : "bad upload name\n");
        return -1;
    }
    if (folder) {
        if (!filename) {
            answer(r, 400, r->proto == GRACED_PROTO_TUS
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
            answer(r, st, "refused file name\n");
            return -1;
        }
        snprintf(r->p.dir, sizeof(r->p.dir), "%s", rel);
    } else {
        if (!rel[0] || trailing) {
            answer(r, 400, "bad upload name\n");
            return -1;
        }
        leaf = strrchr(rel, '/');
        leaf = leaf ? leaf + 1 : rel;
        if (strlen(leaf) > 255) {
            answer(r, 414, "name too long\n");
            return -1;
        }
        memcpy(name, leaf, strlen(leaf) + 1);
        leaf = leaf == rel ? NULL : leaf - 1;
        snprintf(r->p.dir, sizeof(r->p.dir), "%.*s", leaf ? (int)(leaf - rel) : 0, rel);
    }
    snprintf(r->p.name, sizeof(r->p.name), "%s", name);
    if (snprintf(full, sizeof(full), "%s%s%s", r->p.dir, r->p.dir[0] ? "/" : "", name) >= 4096) {
        answer(r, 414, "name too long\n");
        return -1;
    }
    if (graced_path_reserved(g, full)) {
        answer(r, 409, "this path is graced's --metrics: no file may take it\n");
        return -1;
    }
    if ((dirfd = graced_path_open_dir(g->upload_fd, r->p.dir, strlen(r->p.dir), 1)) < 0) {
        st = graced_errno_status(dirfd);
        answer(r, st, st == 409 ? "a file is in the way of a folder\n"
                              : st == 403 ? "forbidden path (a symbolic link?)\n"
                                          : "could not open the folder\n");
        return -1;
    }
    if ((st = preconditions(req, g, dirfd, name, &r->p.noreplace))) {
        close(dirfd);
        answer(r, st, st == 409 ? "a folder has that name\n"
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
            answer(r, 412, "this server speaks tus 1.0.0\n");
            goto done;
        }
        v = grace_request_header(req, "Upload-Length");
        len = graced_field_uint(v);
        if (v ? len < 0 || grace_request_header(req, "Upload-Defer-Length")
              : !(v = grace_request_header(req, "Upload-Defer-Length")) || strcmp(v, "1")) {
            answer(r, 400, "Upload-Length (bytes) or Upload-Defer-Length: 1 is needed\n");
            goto done;
        }
        if (has_body(req) && !media_is(req, "application/offset+octet-stream")) {
            answer(r, 415, "an upload's bytes come as application/offset+octet-stream\n");
            goto done;
        }
        folder = 1;
    } else {
        if ((r->ask_complete = graced_field_bool(grace_request_header(req, "Upload-Complete"))) < 0 ||
            grace_request_header(req, "Upload-Offset")) {
            answer(r, 400, "Upload-Complete must be ?0 or ?1, and no Upload-Offset\n");
            goto done;
        }
        if ((v = grace_request_header(req, "Upload-Length")) && (len = graced_field_uint(v)) < 0) {
            answer(r, 400, "Upload-Length must be a number of bytes\n");
            goto done;
        }
        if (r->ask_complete && cl >= 0) { /* the body is the whole upload */
            if (v && len != cl) {
                answer(r, 400, "Upload-Length is not the Content-Length of a complete upload\n");
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
        answer(r, 413, "the upload is larger than --max-body-size\n");
        goto done;
    }
    if (len >= 0 && cl > len) {
        answer(r, 413, "the body is larger than Upload-Length\n");
        goto done;
    }
    /* the name: tus's metadata, or the draft's Content-Disposition */
    v = grace_request_header(req, "Upload-Metadata");
    if (v && strlen(v) >= sizeof(r->p.metadata)) {
        answer(r, 400, "Upload-Metadata is too long\n");
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
        answer(r, 400, "malformed file name in Upload-Metadata or Content-Disposition\n");
        goto done;
    }
    if (folder < 0) { /* IETF: a POST with a name or to a folder's URL names a folder */
        const char *path = grace_request_path(req);
        folder = !strcmp(grace_request_method(req), "POST") &&
                 (named || path[strlen(path) - 1] == '/');
    }
    if (proto == GRACED_PROTO_TUS && im) {
        answer(r, 400, "If-Match is for replacing a file by its URL, not a tus upload\n");
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
        answer(r, 500, "resumable uploads cannot go into this folder (another filesystem)\n");
        goto done;
    }
    if (len > 0 && graced_partial_space(g) >= 0 && len > graced_partial_space(g)) {
        answer(r, 507, "not enough space for the upload\n");
        goto done;
    }
    r->p.proto = proto;
    r->p.length = len;
    r->p.expiry_ms = g->o.upload_expiry_ms;
    snprintf(r->p.if_match, sizeof(r->p.if_match), "%s", im ? im : "");
    graced_auth_owner(req, g, r->p.owner, sizeof(r->p.owner));
    grace_request_on_finish(req, on_finish, r);
    if (graced_partial_create(g, &r->op, &r->p, created) < 0) {
        answer(r, 500, "could not make the upload\n");
        return;
    }
    r->busy = 1;
    return;
done:
    free(r); /* answered, before on_finish was set */
}

/* ---------------------------------------------------------------- HEAD, PATCH, DELETE */

/* The upload a request names, if its login owns it: r, or NULL (answered). */
static struct rup *find(struct grace_request *req, struct graced *g)
{
    const char *path = grace_request_path_decoded(req), *id = path + sizeof(URL_PREFIX) - 1;
    int proto = graced_is_tus_create(req) ? GRACED_PROTO_TUS
                : interop_of(req)        ? GRACED_PROTO_IETF
                                         : 0;
    char owner[sizeof(((struct graced_partial *)0)->owner)];
    struct rup *r;
    int rc;

    if (!(r = rup_new(req, g, proto ? proto : GRACED_PROTO_TUS)))
        return NULL;
    if (strncmp(path, URL_PREFIX, sizeof(URL_PREFIX) - 1) || !graced_partial_id_ok(id, strlen(id)) ||
        (rc = graced_partial_load(g, id, &r->p)) < 0) {
        answer(r, 404, "no such upload\n");
        free(r);
        return NULL;
    }
    graced_auth_owner(req, g, owner, sizeof(owner));
    if (strcmp(owner, r->p.owner)) { /* as if it did not exist: nothing to learn */
        r->p.id[0] = '\0';
        answer(r, 404, "no such upload\n");
        free(r);
        return NULL;
    }
    if (!proto) { /* the client did not say: the rules of the protocol that made it */
        r->proto = r->p.proto;
        answer(r, r->proto == GRACED_PROTO_TUS ? 412 : 400,
               r->proto == GRACED_PROTO_TUS ? "Tus-Resumable: 1.0.0 is needed\n"
                                            : "Upload-Draft-Interop-Version: 6 is needed\n");
        free(r);
        return NULL;
    }
    if (proto == GRACED_PROTO_TUS && strcmp(grace_request_header(req, "Tus-Resumable"),
                                            TUS_VERSION)) {
        grace_response_add_header(req, "Tus-Version", TUS_VERSION);
        answer(r, 412, "this server speaks tus 1.0.0\n");
        free(r);
        return NULL;
    }
    if (!r->p.complete && r->p.has_data && graced_partial_now() > graced_partial_expires(&r->p)) {
        /* the sweep has not come by yet */
        answer(r, r->proto == GRACED_PROTO_TUS ? 410 : 404, "the upload has expired\n");
        free(r);
        return NULL;
    }
    if (!r->p.complete && !r->p.has_data) {
        answer(r, 404, "no such upload\n");
        free(r);
        return NULL;
    }
    return r;
}

static void probed(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    char v[24];
    if (job_end(r))
        return;
    if (op->err || (!r->p.complete && !r->p.has_data)) {
        answer(r, op->err ? 500 : 404, op->err ? "could not read the upload\n"
                                               : "no such upload\n");
        return;
    }
    grace_response_add_header(r->req, "Cache-Control", "no-store");
    add_offset(r, r->p.size);
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
        answer(r, 200, NULL);
    } else {
        grace_response_add_header(r->req, "Upload-Complete", r->p.complete ? "?1" : "?0");
        if (!r->p.complete)
            add_limit(r->req, r->g, (graced_partial_expires(&r->p) - graced_partial_now()) / 1000);
        answer(r, 204, NULL);
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
        answer(r, 400, "no Upload-Offset, Upload-Complete or Upload-Length in a HEAD\n");
        free(r);
        return;
    }
    grace_request_on_finish(req, on_finish, r);
    if (r->proto == GRACED_PROTO_TUS && !r->p.complete && r->p.length >= 0 &&
        r->p.size == r->p.length) {
        /* all its bytes are there, and it is not stored: its last request
         * ended after the last byte (cut short, or graced with it), or its
         * commit failed. To a tus client an offset at the length means
         * done, so it is stored now, before that is told. */
        r->heading = 1;
        r->want_offset = r->p.size;
        start_body(r); /* no body: the commit */
        return;
    }
    if (graced_partial_probe(g, &r->op, &r->p, probed) < 0) {
        answer(r, 500, "could not read the upload\n");
        return;
    }
    r->busy = 1;
}

static void removed(struct graced_partial_op *op)
{
    struct rup *r = (struct rup *)((char *)op - offsetof(struct rup, op));
    if (job_end(r))
        return;
    if (op->err == -EAGAIN) {
        grace_response_add_header(r->req, "Retry-After", "1");
        answer(r, 423, "a request is writing this upload\n");
        return;
    }
    if (op->err) {
        answer(r, op->err == -ENOENT ? 404 : 500, op->err == -ENOENT ? "no such upload\n"
                                                                     : "could not remove it\n");
        return;
    }
    if (!r->p.complete)
        graced_metrics_resumable(r->g, GRACED_RES_TERMINATED, 1);
    r->p.id[0] = '\0'; /* no Upload-Expires on it now */
    answer(r, 204, NULL);
}

void graced_resumable_delete(struct grace_request *req, struct graced *g)
{
    struct rup *r = find(req, g);
    if (!r)
        return;
    if (r->proto == GRACED_PROTO_IETF &&
        (grace_request_header(req, "Upload-Offset") || grace_request_header(req, "Upload-Complete"))) {
        answer(r, 400, "no Upload-Offset or Upload-Complete in a DELETE\n");
        free(r);
        return;
    }
    grace_request_on_finish(req, on_finish, r);
    preempt(r); /* a request of this worker still writing it: cancelled too */
    if (graced_partial_remove(g, &r->op, &r->p, removed) < 0) {
        answer(r, 500, "could not remove it\n");
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
        answer(r, 415, r->proto == GRACED_PROTO_TUS
                           ? "PATCH takes application/offset+octet-stream\n"
                           : "PATCH takes application/partial-upload\n");
        goto done;
    }
    if ((r->want_offset = graced_field_uint(grace_request_header(req, "Upload-Offset"))) < 0) {
        answer(r, 400, "Upload-Offset (bytes) is needed\n");
        goto done;
    }
    if (r->proto == GRACED_PROTO_IETF &&
        (r->ask_complete = graced_field_bool(grace_request_header(req, "Upload-Complete"))) < 0) {
        answer(r, 400, "Upload-Complete must be ?0 or ?1\n");
        goto done;
    }
    if (r->p.complete) {
        if (r->proto == GRACED_PROTO_IETF) {
            answer_problem(r, 400, "completed-upload", "upload is already completed", -1, -1);
        } else if (r->want_offset == r->p.size && cl == 0) { /* a last answer lost: again */
            add_offset(r, r->p.size);
            answer(r, 204, NULL);
        } else {
            add_offset(r, r->p.size);
            answer(r, 409, "the upload is complete\n");
        }
        goto done;
    }
    /* a length told now: tus's deferred one (the draft's end: start_body) */
    if ((v = grace_request_header(req, "Upload-Length"))) {
        if ((len = graced_field_uint(v)) < 0 || (r->p.length >= 0 && len != r->p.length)) {
            answer(r, 400, "Upload-Length is not the upload's length\n");
            goto done;
        }
        if (r->p.length < 0)
            r->new_length = len;
    }
    if (r->new_length > g->o.max_body) {
        answer(r, 413, "the upload is larger than --max-body-size\n");
        goto done;
    }
    grace_request_on_finish(req, on_finish, r);
    start_body(r);
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
    add_limit(req, g, g->o.upload_expiry_ms / 1000);
}
