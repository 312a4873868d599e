/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * append.h - one request on a resumable upload, as resumable.c (what each
 * protocol asks and answers) and append.c (writing the upload) share it.
 */
#ifndef GRACED_APPEND_H
#define GRACED_APPEND_H

#include "graced.h"

#define TUS_VERSION "1.0.0"
#define URL_PREFIX "/" GRACED_PARTIAL_DIR "/"

/* One request on a resumable upload. */
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
    struct graced_sink *sink;  /* the body into fd */
    int64_t start, bytes;      /* the offset its body starts at; of it in the file */
    int busy;                  /* a job whose end comes back here runs */
    int gone;                  /* ... and the request ended meanwhile: free at its end */
    int replied;
    int failed;                /* a write failed: nothing more is written */
    int heading;               /* a HEAD that stores an upload whose bytes are all there */
    struct rup *wnext, **wprev; /* in writers: it holds the upload's file */
    int counted;               /* its bytes are in the metrics */
    int status;                /* a failed commit's answer, once the info is gone */
    const char *why;
    char etag[64];
    int existed;
};

/* the request's Upload-Draft-Interop-Version if graced speaks it (6, 5), else 0 */
int rup_interop(struct grace_request *req);
int rup_has_body(struct grace_request *req);
/* a request's state (NULL: answered 500) */
struct rup *rup_new(struct grace_request *req, struct graced *g, int proto);
/* its finish callback: what it received is kept; r freed, or at the end
 * of the job that runs (busy) */
void rup_on_finish(struct grace_request *req, int err, void *arg);
/* a job of r's ended: 1 if the request had gone meanwhile (r is freed) */
int rup_job_end(struct rup *r);
/* end this worker's other request writing r's upload: 1 if there was one */
int rup_preempt(struct rup *r);
/* answers: the protocol's headers added; the last use of r (it may be freed) */
void rup_answer(struct rup *r, int status, const char *body);
void rup_problem(struct rup *r, int status, const char *type, const char *title,
                 int64_t expected, int64_t provided);
void rup_add_offset(struct rup *r, int64_t off);
void rup_add_limit(struct grace_request *req, const struct graced *g, int64_t expires_in);
void rup_upload_url(const struct rup *r, char *out, size_t n);
int rup_disk_status(int err);
/* the upload's file taken for this request (its lock), the offset checked
 * under it, the body bounded and appended; then synced and answered, or
 * stored and answered */
void rup_start_body(struct rup *r);

#endif
