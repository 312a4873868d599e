/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * report.h - every response reported to the application once written
 * (report.c): records in a list its protocol keeps, told offsets and times.
 */
#ifndef GRACE_REPORT_H
#define GRACE_REPORT_H

#include <stddef.h>
#include <stdint.h>

struct grace_conn;
struct grace_request;

/*
 * A response on its way out, reported to the application (report.c) once
 * its last byte is written or the connection ends. Exists only while the
 * application asked for reports.
 */
struct grace_response_info {
    struct grace_response_info *next; /* its list, oldest first */
    struct grace_request *req;        /* pinned until reported; may be NULL */
    struct grace_conn *conn;
    uint64_t start, head_end, end;    /* offsets in the connection's output */
    int64_t start_us, end_us;
    uint64_t sent;                    /* the output's offset when it was reported */
    const char *tls_version;          /* the connection's, when it started */
    int status, err;
    unsigned done : 1;                /* end is known: the reply completed */
};

/* The records of a protocol's responses, oldest first; all zero: empty. A
 * protocol keeps its own (HTTP/1.1 in its slot area, handed to a stream on
 * an upgrade) and tells report.c of progress and of its end. */
struct grace_reports {
    struct grace_response_info *head, **tail;
};

/* report.c */
void grace__report_start(struct grace_reports *l, struct grace_conn *c, struct grace_request *req,
                         int status, int64_t start_us, uint64_t start, size_t head_len);
void grace__report_done(struct grace_reports *l, struct grace_request *req, uint64_t end);
/* The head of the records started without one ends at head_end (HTTP/2
 * knows its size once HPACK has framed it). */
void grace__report_head(struct grace_reports *l, uint64_t head_end);
void grace__report_written(struct grace_reports *l, uint64_t written);
void grace__report_all(struct grace_reports *l, uint64_t written, int err);
/* Every record ends with err, complete or not: its answer did not all leave. */
void grace__report_cut(struct grace_reports *l, uint64_t written, int err);
/* The records of src go to dst (empty before), src is left empty. */
void grace__report_move(struct grace_reports *dst, struct grace_reports *src);

#endif
