/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * h2.h - HTTP/2's protocol table, for the server's registry (h2.c; the
 * streams as requests are h2_req.c's, below it).
 */
#ifndef GRACE_H2_H
#define GRACE_H2_H

#include "h2_req.h"

extern const struct grace_proto grace__h2_proto;

#endif
