/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stream.h - upgrades and CONNECT tunnels (stream.c): the connection as a
 * raw stream, a protocol the engine calls through grace__stream_proto.
 */
#ifndef GRACE_STREAM_H
#define GRACE_STREAM_H

#include "conn.h"
#include "report.h"

/* stream.c */
extern const struct grace_proto grace__stream_proto;
/* A stream for an upgrade about to be answered (then grace__conn_switch(c,
 * &grace__stream_proto, st)); NULL: out of memory. */
struct grace_stream *grace__stream_new(void);
/* The connection is st's from now on, with the records of the responses
 * still on their way (the 101's): the stream reports them once written. */
void grace__stream_attach(struct grace_conn *c, struct grace_stream *st,
                          struct grace_reports *reports);

#endif
