/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stop.h - a graceful stop (stop.c): its phases and timers, and what it
 * does to each connection (the lame duck's due time, the cut at the
 * deadline). server.c calls it around the listeners' part; the engine asks
 * the due time through srv->up.stop_due.
 */
#ifndef GRACE_STOP_H
#define GRACE_STOP_H

#include "core.h"

#include <stdint.h>

/* The stop begins (grace_server_stop: arguments checked, not stopping):
 * the lame duck, cb kept for the end. -ENOMEM. */
int grace__stop_begin(struct grace_server *srv, grace_stopped_cb cb, void *arg);
/* Once the listeners took their last connections: the deadline
 * (timeout_ms from now), every connection told; no callback runs. */
void grace__stop_lame_duck(struct grace_server *srv, int64_t timeout_ms);
/* The connections changed: report the end once nothing is left. */
void grace__stop_check(struct grace_server *srv);
/* A connection without a request (new: since its accept; idle: since its
 * output emptied) during the lame duck: closed stop-idle-grace after since
 * or after the stop, whichever is later (srv->up.stop_due). */
int64_t grace__stop_due(const struct grace_server *srv, int64_t since);

#endif
