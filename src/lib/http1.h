/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http1.h - HTTP/1.1 on the engine: grace__http1 is its protocol table. Its
 * state lives in the engine's slot (the slot's protocol area): an idle
 * keep-alive connection keeps none.
 */
#ifndef GRACE_HTTP1_H
#define GRACE_HTTP1_H

#include "internal.h"

extern const struct grace_proto grace__http1;

/*
 * What the request and response code still asks HTTP/1.1 by name (until
 * they reach it through the request's ops).
 */

/* Is req's body all read, by the application or by the parser? */
int grace__h1_body_complete(const struct grace_conn *c, const struct grace_request *req);
/* The application starts reading req's body: 100 Continue if owed, the
 * body-timeout starts, delivery is scheduled. */
void grace__h1_body_start(struct grace_request *req);
/* The application waits for body bytes again (resume): body-timeout and a
 * body-min-rate window from now. */
void grace__h1_body_wait(struct grace_conn *c);
/* Is the unread rest of req's body known and small enough to discard? */
int grace__h1_body_drainable(const struct grace_conn *c, const struct grace_request *req);
/* The application completed its reply (all of it is queued). */
void grace__h1_response_done(struct grace_conn *c);
/* A drain callback may be due: the next pump runs it. */
void grace__h1_drain_check(struct grace_conn *c);
/* Queue length bytes of fd as a body read as it is sent (a transport
 * without sendfile); owns fd. -1 if a file body is still going. */
int grace__h1_send_file(struct grace_conn *c, int fd, off_t offset, off_t length);
/* A Content-Length over the limit found after the handler returned: 413. */
void grace__h1_body_too_large(struct grace_conn *c);
/* An upgrade takes the connection: HTTP/1.1 lets go of its request. */
void grace__h1_handover(struct grace_conn *c);

#endif
