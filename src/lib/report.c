/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * report.c - every response reported to the application once it has been
 * written (grace_server_on_response), also the ones the server makes
 * itself. A record notes where its response lies in the connection's
 * output, in a list (struct grace_reports) the response's protocol keeps;
 * the protocol reports the records whose last byte has been written when
 * the engine tells it of progress, and the rest with an error when it
 * leaves the connection. It is told offsets
 * and times: it reads no buffer.
 * Nothing is allocated unless the application asked for reports.
 */
#include "report.h"

#include "conn.h"
#include "request.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>

void grace_server_on_response(struct grace_server *srv, grace_response_cb cb, void *arg)
{
    srv->on_response = cb;
    srv->response_arg = arg;
}

/* A response's head is about to be queued at offset start in the
 * connection's output (head_len bytes); start_us: its request's first byte. */
void grace__report_start(struct grace_reports *l, struct grace_conn *c, struct grace_request *req,
                         int status, int64_t start_us, uint64_t start, size_t head_len)
{
    struct grace_response_info *ri;

    if (!c->srv->on_response || !(ri = calloc(1, sizeof(*ri))))
        return;
    ri->req = req;
    ri->conn = c;
    ri->status = status;
    ri->start = start;
    ri->head_end = ri->start + head_len;
    ri->start_us = start_us;
    ri->tls_version = grace__conn_tls_version(c);
    if (req)
        req->report = ri; /* pinned: the request outlives its reply */
    if (!l->head) /* empty: a zeroed list too */
        l->tail = &l->head;
    *l->tail = ri;
    l->tail = &ri->next;
}

/* The response is complete in the output, up to offset end. */
void grace__report_done(struct grace_reports *l, struct grace_request *req, uint64_t end)
{
    struct grace_response_info *ri = req ? req->report : NULL;
    if (req && !ri)
        return; /* no record: reports off, or out of memory */
    if (!ri) { /* the server's own: the newest record */
        for (ri = l->head; ri && ri->next; ri = ri->next)
            ;
        if (!ri)
            return;
    }
    ri->end = end;
    ri->done = 1;
}

static void report(struct grace_reports *l, struct grace_response_info *ri, uint64_t written,
                   int err)
{
    struct grace_server *srv = ri->conn->srv;
    struct grace_request *req = ri->req;

    l->head = ri->next;
    if (!ri->next)
        l->tail = &l->head;
    ri->err = err;
    ri->sent = written;
    ri->end_us = grace__now_us();
    if (srv->on_response)
        srv->on_response(ri, srv->response_arg);
    if (req) {
        req->report = NULL;
        if (req->app_done)
            grace__request_release(req);
    }
    free(ri);
}

/* Report the responses whose last byte has been written (written: the
 * offset the output has reached). */
void grace__report_written(struct grace_reports *l, uint64_t written)
{
    struct grace_response_info *ri;
    while ((ri = l->head) && ri->done && ri->end <= written)
        report(l, ri, written, 0);
}

/* The connection ends: report every response left, written or not. */
void grace__report_all(struct grace_reports *l, uint64_t written, int err)
{
    struct grace_response_info *ri;
    while ((ri = l->head))
        report(l, ri, written, ri->done && ri->end <= written ? 0 : err);
}

void grace__report_head(struct grace_reports *l, uint64_t head_end)
{
    for (struct grace_response_info *ri = l->head; ri; ri = ri->next)
        if (ri->head_end == ri->start)
            ri->head_end = head_end;
}

void grace__report_cut(struct grace_reports *l, uint64_t written, int err)
{
    struct grace_response_info *ri;
    while ((ri = l->head))
        report(l, ri, written, err);
}

void grace__report_move(struct grace_reports *dst, struct grace_reports *src)
{
    dst->head = src->head;
    dst->tail = src->head ? src->tail : &dst->head;
    src->head = NULL;
    src->tail = &src->head;
}

/* ---------------------------------------------------------------- accessors */

const struct grace_request *grace_response_info_request(const struct grace_response_info *ri)
{
    return ri->req;
}

int grace_response_info_status(const struct grace_response_info *ri)
{
    return ri->status;
}

/* Where its bytes written end: the output's offset when it was reported,
 * at most its end. */
static uint64_t sent_to(const struct grace_response_info *ri)
{
    uint64_t end = ri->done ? ri->end : ri->sent;
    return ri->sent < end ? ri->sent : end;
}

uint64_t grace_response_info_bytes(const struct grace_response_info *ri)
{
    uint64_t to = sent_to(ri);
    return to > ri->start ? to - ri->start : 0;
}

uint64_t grace_response_info_body_bytes(const struct grace_response_info *ri)
{
    uint64_t to = sent_to(ri);
    return to > ri->head_end ? to - ri->head_end : 0;
}

int64_t grace_response_info_duration_us(const struct grace_response_info *ri)
{
    return ri->end_us - ri->start_us;
}

int grace_response_info_error(const struct grace_response_info *ri)
{
    return ri->err;
}

const struct sockaddr *grace_response_info_peer(const struct grace_response_info *ri,
                                                socklen_t *len)
{
    if (len)
        *len = ri->conn->peer_len;
    return &ri->conn->peer.sa;
}

const char *grace_response_info_tls_version(const struct grace_response_info *ri)
{
    return ri->tls_version;
}
