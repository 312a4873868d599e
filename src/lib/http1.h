/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http1.h - HTTP/1.1 on the engine: grace__http1 is its protocol table. Its
 * state lives in the engine's slot (the slot's protocol area): an idle
 * keep-alive connection keeps none.
 */
#ifndef GRACE_HTTP1_H
#define GRACE_HTTP1_H

#include "conn.h"

extern const struct grace_proto grace__http1;

#endif
