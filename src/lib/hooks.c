/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hooks.c - the application's view of a connection: an accept hook that
 * may refuse it before any byte is read, a close hook that fires once per
 * kept connection, user data, the addresses, and dropping it.
 *
 * The engine (conn.c) runs the accept hook while setting a connection up
 * (no read event yet) and the close hook from grace__conn_destroy(), the
 * one place every connection ends, with the socket still open.
 */
#include "conn.h"
#include "report.h"
#include "request.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

void grace_server_on_accept(struct grace_server *srv, grace_accept_cb cb, void *arg)
{
    srv->on_accept = cb;
    srv->accept_arg = arg;
}

void grace_server_on_close(struct grace_server *srv, grace_close_cb cb, void *arg)
{
    srv->on_close = cb;
    srv->close_arg = arg;
}

struct grace_conn *grace_request_conn(const struct grace_request *req)
{
    return req ? req->conn : NULL;
}

struct grace_conn *grace_response_info_conn(const struct grace_response_info *ri)
{
    return ri->conn;
}

void grace_conn_set_data(struct grace_conn *conn, void *data)
{
    conn->data = data;
}

void *grace_conn_data(const struct grace_conn *conn)
{
    return conn->data;
}

struct grace_server *grace_conn_server(const struct grace_conn *conn)
{
    return conn->srv;
}

const struct sockaddr *grace_conn_peer(const struct grace_conn *conn, socklen_t *len)
{
    if (len)
        *len = conn->peer_len;
    return &conn->peer.sa;
}

/* Asked of the kernel each time, into one buffer per server: most
 * applications never ask, and an idle connection stays small. */
const struct sockaddr *grace_conn_local(struct grace_conn *conn, socklen_t *len)
{
    struct grace_server *srv = conn->srv;
    socklen_t l = sizeof(srv->local);

    if (conn->sock.fd < 0 || getsockname(conn->sock.fd, &srv->local.sa, &l) < 0 ||
        l > sizeof(srv->local)) {
        memset(&srv->local, 0, sizeof(srv->local));
        srv->local.sa.sa_family = AF_UNSPEC;
        l = 0;
    }
    if (len)
        *len = l;
    return &srv->local.sa;
}

int grace_conn_is_tls(const struct grace_conn *conn)
{
    return conn->tp->secure; /* known before the TLS session exists */
}

const struct sockaddr *grace_request_local(const struct grace_request *req, socklen_t *len)
{
    static const struct sockaddr none = {AF_UNSPEC, {0}};
    if (!req->conn) {
        if (len)
            *len = 0;
        return &none;
    }
    return grace_conn_local(req->conn, len);
}

int grace_conn_drop(struct grace_conn *c, int how)
{
    if (how != GRACE_DROP_GRACEFUL && how != GRACE_DROP_ABORT)
        return -EINVAL;
    if (c->accepting) { /* from the accept hook: a refusal */
        c->refused = 1;
        return 0;
    }
    if (c->state == CS_DEAD)
        return 0;
    CNT(c->srv, CONN_DROPPED);
    grace__conn_enter(c);
    if (how == GRACE_DROP_ABORT)
        grace__conn_abort(c, -ECONNABORTED);
    else
        grace__conn_drop(c); /* as a graceful server stop does, for one */
    grace__conn_leave(c);
    return 0;
}
