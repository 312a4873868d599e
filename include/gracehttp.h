/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * gracehttp.h - public API of libgracehttp, an HTTP/1.1 server library on
 * libevent that answers early without losing the answer.
 *
 * This is the only installed header. All types are opaque. Conventions:
 *  - functions that can fail return 0 (or a count) on success and a
 *    negative errno value on failure; grace_strerror() describes it. When a
 *    function that takes a callback fails, the callback is never called.
 *  - callbacks take the caller's context last (void *arg).
 *  - nothing is global: every object hangs off a grace_server, which lives
 *    on the caller's event_base. A server is used from that base's thread
 *    only; several servers may share one base.
 */
#ifndef GRACEHTTP_H
#define GRACEHTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(GRACE_BUILDING_LIBRARY)
#define GRACE_API __attribute__((visibility("default")))
#else
#define GRACE_API
#endif

/* A name kept for one release after its replacement came: the compiler says
 * which to use instead. */
#if defined(__GNUC__)
#define GRACE_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define GRACE_DEPRECATED(msg)
#endif

struct event_base;
struct evbuffer;
struct evconnlistener;

/** Compile-time version: major * 10000 + minor * 100 + patch. */
#define GRACE_VERSION_NUMBER 200
/** Compile-time version string; grace_version() gives the linked one. */
#define GRACE_VERSION_STRING "0.2.0"

/** The version of the library actually linked, e.g. "0.1.0". Never NULL. */
GRACE_API const char *grace_version(void);

/** The linked library's version as GRACE_VERSION_NUMBER encodes it. */
GRACE_API int grace_version_number(void);

/**
 * A short description of an error code returned by this library.
 * @param err a negative errno value as returned by grace_* functions
 * @return a static string; never NULL.
 */
GRACE_API const char *grace_strerror(int err);

/* ================================================================ config */

/**
 * Settings of a server. Every option has a default (in parentheses) and
 * docs/tuning.md says why. Times are in milliseconds, sizes in bytes.
 */
enum grace_opt {
    GRACE_OPT_MAX_REQUEST_LINE,   /**< request line bytes -> 414 (8192) */
    GRACE_OPT_MAX_HEADER_BYTES,   /**< header section bytes -> 431 (32768) */
    GRACE_OPT_MAX_HEADER_FIELDS,  /**< header field lines -> 431 (100) */
    GRACE_OPT_MAX_TRAILER_BYTES,  /**< trailer section bytes (chunked, HTTP/2) -> 431 (8192) */
    GRACE_OPT_MAX_BODY_SIZE,      /**< request body bytes -> 413 (1 MiB); a default
                                       that handlers may change per request */
    GRACE_OPT_MAX_CONNECTIONS,    /**< concurrent connections (10000) */
    GRACE_OPT_HEADER_TIMEOUT,     /**< whole header section (10000) */
    GRACE_OPT_BODY_TIMEOUT,       /**< idle while reading a body (30000) */
    GRACE_OPT_WRITE_TIMEOUT,      /**< no write progress (30000) */
    GRACE_OPT_KEEPALIVE_TIMEOUT,  /**< idle between requests (15000) */
    GRACE_OPT_OUTPUT_HIGH_WATER,  /**< stop reading above this output (262144) */
    GRACE_OPT_DRAIN_LIMIT,        /**< discard this much unread body and keep
                                       the connection; 0 disables (262144) */
    GRACE_OPT_LINGER,             /**< 1: graceful close; 0: naive close, for
                                       comparison only (1) */
    GRACE_OPT_LINGER_TIMEOUT,     /**< lingering: no data from client (5000) */
    GRACE_OPT_LINGER_TIME,        /**< lingering: total (30000) */
    GRACE_OPT_LINGER_BYTES,       /**< lingering: bytes discarded; 0: no cap
                                       (0: time, silence and rate bound it) */
    GRACE_OPT_MAX_LINGERING,      /**< connections lingering at once (1024) */
    GRACE_OPT_STOP_LINGER_TIME,   /**< a stop's lingers end this long after its deadline (1000) */
    GRACE_OPT_REUSEPORT,          /**< SO_REUSEPORT on listen sockets (0) */
    GRACE_OPT_DRAIN_TIME,         /**< discarding a remainder: total (5000) */
    GRACE_OPT_LINGER_MIN_RATE,    /**< lingering past linger-time: bytes/s a
                                       client still sending its body must keep
                                       up over linger-rate-window, unless its
                                       known remainder ends before
                                       linger-max-time at its pace (262144) */
    GRACE_OPT_LINGER_MAX_TIME,    /**< lingering: hard bound, also for such a
                                       client (300000) */
    GRACE_OPT_ACCEPT_RETRY,       /**< out of fds: accept again after (500) */
    GRACE_OPT_TLS_HANDSHAKE_TIMEOUT, /**< TLS handshake, from accept (10000) */
    GRACE_OPT_OUTPUT_LOW_WATER,   /**< drain callback: output at or below this
                                       (65536); see grace_reply_on_drain() */
    GRACE_OPT_STREAM_IDLE_TIMEOUT, /**< upgraded stream: no byte moved either
                                        way (600000); see grace_stream_set_idle_timeout() */
    GRACE_OPT_BODY_MIN_RATE,      /**< reading a body: bytes/s it must average over
                                       each body-timeout period the application
                                       waits; 0: no floor (1024) */
    GRACE_OPT_STOP_IDLE_GRACE,    /**< during a stop: an idle keep-alive connection
                                       is kept this long for its next request,
                                       answered with Connection: close (3000);
                                       see grace_server_stop() */
    GRACE_OPT_LINGER_RATE_WINDOW, /**< lingering past linger-time: the rate is
                                       judged over this long, or the whole
                                       linger if shorter (30000) */
    GRACE_OPT_HTTP2,              /**< 1: TLS listeners offer h2 by ALPN, before
                                       http/1.1 (1); 0 without libnghttp2 */
    GRACE_OPT_H2C,                /**< 1: plain listeners take HTTP/2 with prior
                                       knowledge (the client preface) (1) */
    GRACE_OPT_H2_MAX_STREAMS,     /**< HTTP/2 streams open at once per connection
                                       (SETTINGS_MAX_CONCURRENT_STREAMS) (100) */
    GRACE_OPT_H2_STREAM_WINDOW,   /**< HTTP/2 body bytes a stream may send ahead of
                                       what the application took (262144) */
    GRACE_OPT_H2_CONN_WINDOW,     /**< the same for all streams of a connection
                                       together (1048576) */
    GRACE_OPT_H2_HPACK_TABLE,     /**< HPACK dynamic table the client may make us
                                       keep (SETTINGS_HEADER_TABLE_SIZE) (4096) */
    GRACE_OPT_H2_RESET_RATE,      /**< HTTP/2 streams a client may cancel before
                                       their answer per second, per connection;
                                       more: GOAWAY(ENHANCE_YOUR_CALM) (200) */
    GRACE_OPT__COUNT
};

/** Create a config holding every default. Free with grace_config_free(). */
GRACE_API struct grace_config *grace_config_new(void);
GRACE_API void grace_config_free(struct grace_config *cfg);

/**
 * Set an option.
 * @return 0, or -EINVAL for an unknown option or a value out of range.
 */
GRACE_API int grace_config_set(struct grace_config *cfg, enum grace_opt opt, int64_t value);

/** Current value of an option (its default if never set); -1 if unknown. */
GRACE_API int64_t grace_config_get(const struct grace_config *cfg, enum grace_opt opt);

/** The documented name of an option, e.g. "header-timeout"; NULL if unknown. */
GRACE_API const char *grace_opt_name(enum grace_opt opt);

/** The option with that documented name, or -1. */
GRACE_API int grace_opt_by_name(const char *name);

/* ================================================================ server */

struct grace_server;
struct grace_request;
struct grace_tls;

/** Called when request headers are complete. Must lead to exactly one reply. */
typedef void (*grace_handler_cb)(struct grace_request *req, void *arg);

/**
 * Create a server on the caller's base. The config is copied; it may be
 * freed or reused right after. cfg may be NULL for the defaults.
 * @return the server, or NULL (errno set) if out of memory.
 */
GRACE_API struct grace_server *grace_server_new(struct event_base *base,
                                                const struct grace_config *cfg);

/**
 * Free the server: listeners, connections and lingering sockets are closed
 * at once. Requests still awaiting a reply get their finish callback with
 * -ECANCELED and may not be used afterwards. Must not be called from inside
 * one of this server's callbacks.
 */
GRACE_API void grace_server_free(struct grace_server *srv);

/**
 * Listen on host:port (IPv4 or IPv6 literal, or a name; port 0 picks one).
 * With tls non-NULL the listener speaks TLS with the context's certificates;
 * it takes its own reference, so the caller may grace_tls_free() its own
 * right after. NULL: plain HTTP. May be called several times.
 * @return 0, or a negative errno (e.g. -EADDRINUSE; -ENOTSUP: tls given to a
 *         library built without TLS).
 */
GRACE_API int grace_server_listen(struct grace_server *srv, const char *host, int port,
                                  struct grace_tls *tls);

/**
 * Adopt an already bound and listening socket (systemd socket activation),
 * plain or TLS as for grace_server_listen(). The server owns fd from then
 * on, also on failure, and closes it when freed.
 * @return 0, or a negative errno.
 */
GRACE_API int grace_server_listen_fd(struct grace_server *srv, int fd, struct grace_tls *tls);

/**
 * Adopt an evconnlistener; its callback is replaced and the server frees it.
 */
GRACE_API int grace_server_adopt_listener(struct grace_server *srv,
                                          struct evconnlistener *lev);

/**
 * Adopt a connection the caller accepted itself (e.g. after reading a PROXY
 * protocol header from it), as if a listener had accepted it: peer is the
 * client's address reported by grace_request_peer() and the response info;
 * with tls non-NULL the connection speaks TLS. The server takes ownership
 * of fd (non-blocking) and closes it, also on failure.
 * During a graceful stop the connection is still served (its response
 * carries Connection: close) until the stop deadline.
 * @return 0; -EINVAL for bad arguments; -ESHUTDOWN once the stop deadline
 * has passed; -EBUSY at max-connections.
 */
GRACE_API int grace_server_adopt_conn(struct grace_server *srv, int fd,
                                      const struct sockaddr *peer, socklen_t peer_len,
                                      struct grace_tls *tls);

/** Local port of listener number i (in order added), or a negative errno. */
GRACE_API int grace_server_port(const struct grace_server *srv, int i);

/** The catch-all handler, used when no route matches. Default: 404. */
GRACE_API void grace_server_set_handler(struct grace_server *srv, grace_handler_cb cb,
                                        void *arg);

#define GRACE_ROUTE_EXACT 0  /**< the path must equal the route */
#define GRACE_ROUTE_PREFIX 1 /**< the path starts with the route */

/**
 * Route requests: method (NULL for any) and path (without query), compared
 * with the request's decoded, normalized path (grace_request_path_decoded()),
 * so give the route in that form ("/a b", not "/a%20b"). Exact
 * routes win over prefixes, longer prefixes over shorter ones. A path that
 * matches only with another method is answered 405 with Allow.
 * @return 0, -EINVAL or -ENOMEM.
 */
GRACE_API int grace_server_route(struct grace_server *srv, const char *method, const char *path,
                                 int flags, grace_handler_cb cb, void *arg);

/** Called once when a graceful stop has finished. */
typedef void (*grace_stopped_cb)(struct grace_server *srv, void *arg);

/**
 * Stop gracefully, dropping no request a client has sent:
 *  1. the connections already waiting in the listen queues are accepted
 *     (closing a listener would reset them, and they may hold a request),
 *     up to GRACE_OPT_MAX_CONNECTIONS (the rest is reset by the close),
 *     then the listening sockets are closed: new connections are refused.
 *     From inside the accept hook the queue is taken from the loop, just
 *     after (the hook never runs inside itself);
 *  2. every response started from now on carries Connection: close and
 *     the connection closes gracefully after it (its linger as without a
 *     stop, ended by timeout_ms + GRACE_OPT_STOP_LINGER_TIME at the latest);
 *  3. an idle keep-alive connection is not closed at once (its client may
 *     be sending a request right now): it stays open for
 *     GRACE_OPT_STOP_IDLE_GRACE, counted from the stop or from the end of
 *     its last response, whichever is later (never beyond its keep-alive
 *     timeout); a request arriving meanwhile is answered, with
 *     Connection: close. A connection whose last response started before
 *     the stop (without Connection: close) is treated the same once it is
 *     idle again. Upgraded streams get on_close(-ESHUTDOWN);
 *  4. at timeout_ms, a request whose reply has not started is answered
 *     503 with Connection: close, then the graceful close (its finish
 *     callback gets -ESHUTDOWN); one whose reply has started is cut short
 *     (finish callback -ECANCELED); idle and closing connections close;
 *  5. stop-linger-time later whatever is left is closed.
 * A request that holds the stop (grace_request_hold_stop) is cut by
 * neither 4 nor 5: its connection closes after its reply.
 * cb runs once everything is closed: from the event loop, never from inside
 * this call, and at the latest timeout_ms + stop-linger-time after it
 * (or, with held requests, once the last of them has been answered).
 * Connections given to grace_server_adopt_conn() before the deadline are
 * still served (with Connection: close). May be called from any of this
 * server's callbacks, the accept hook included: a connection being
 * accepted is served before cb runs.
 * @return 0; -EINVAL; -ENOMEM; -EALREADY if a stop is already running.
 */
GRACE_API int grace_server_stop(struct grace_server *srv, int64_t timeout_ms, grace_stopped_cb cb,
                                void *arg);

/** Counters, read with grace_server_counter(). */
enum grace_counter {
    GRACE_CNT_CONN_ACCEPTED,
    GRACE_CNT_CONN_ACTIVE,      /**< a gauge: connections open now */
    GRACE_CNT_CONN_CAPPED,      /**< times the listeners paused at the cap */
    GRACE_CNT_REQUESTS,
    GRACE_CNT_ERR_400,          /**< requests refused by status */
    GRACE_CNT_ERR_413,
    GRACE_CNT_ERR_414,
    GRACE_CNT_ERR_417,
    GRACE_CNT_ERR_431,
    GRACE_CNT_ERR_501,
    GRACE_CNT_ERR_505,
    GRACE_CNT_EARLY_REPLIES,    /**< responses done before the body was read */
    GRACE_CNT_KEEPALIVE_DRAINS, /**< unread remainders discarded, conn kept */
    GRACE_CNT_LINGER_STARTED,
    GRACE_CNT_LINGER_CLIENT_EOF,
    GRACE_CNT_LINGER_IDLE_TIMEOUT,
    GRACE_CNT_LINGER_TOTAL_TIME,
    GRACE_CNT_LINGER_BYTE_CAP,
    GRACE_CNT_LINGER_ERROR,     /**< reset or other error while lingering */
    GRACE_CNT_LINGER_EVICTED,   /**< closed early: too many lingering */
    GRACE_CNT_LINGERING,        /**< a gauge: lingering now */
    GRACE_CNT_BYTES_DISCARDED,  /**< unread body bytes dropped (drain+linger) */
    GRACE_CNT_TIMEOUT_HEADER,
    GRACE_CNT_TIMEOUT_BODY,
    GRACE_CNT_TIMEOUT_WRITE,
    GRACE_CNT_TIMEOUT_KEEPALIVE,
    GRACE_CNT_CLIENT_ABORTS,    /**< client gone before the response was done */
    GRACE_CNT_TIMEOUT_DRAIN,    /**< remainder not discarded within drain-time */
    GRACE_CNT_LINGER_EXTENDED,  /**< lingers kept past linger-time: steady sender */
    GRACE_CNT_LINGER_TOO_SLOW,  /**< cut past linger-time: below linger-min-rate */
    GRACE_CNT_ACCEPT_ERRORS,    /**< accept() failures (EMFILE...): paused, retried */
    GRACE_CNT_WRITE_ERRORS,     /**< the socket refused our output (reset, EOF of a file) */
    GRACE_CNT_TLS_HANDSHAKES,   /**< TLS handshakes completed */
    GRACE_CNT_TLS_RESUMED,      /**< of those, resumed sessions */
    GRACE_CNT_TLS_FAILED,       /**< handshakes refused: garbage, plain HTTP, no common
                                     version or cipher, renegotiation, unknown name... */
    GRACE_CNT_TLS_TIMEOUT,      /**< handshakes cut by tls-handshake-timeout */
    GRACE_CNT_TLS_CLOSE_NOTIFY, /**< close_notify alerts sent */
    GRACE_CNT_TIMEOUT_REQUEST,  /**< requests cut by their own deadline
                                     (grace_request_set_deadline) */
    GRACE_CNT_UPGRADES,         /**< connections turned into streams (101, CONNECT) */
    GRACE_CNT_CONN_REFUSED,     /**< connections the accept hook refused */
    GRACE_CNT_CONN_DROPPED,     /**< connections ended by grace_conn_drop() */
    GRACE_CNT_TIMEOUT_STREAM,   /**< streams cut by stream-idle-timeout */
    GRACE_CNT_BODY_TOO_SLOW,    /**< bodies cut (408) below body-min-rate */
    GRACE_CNT_STOP_IDLE_CLOSED, /**< idle connections closed by a stop, once
                                     stop-idle-grace had passed */
    GRACE_CNT_STOP_DEADLINE,    /**< requests cut by the stop deadline: answered 503
                                     if their reply had not started, else cut short */
    GRACE_CNT_H2_CONNS,         /**< connections that spoke HTTP/2 */
    GRACE_CNT_H2_REQUESTS,      /**< of the requests, those that came over HTTP/2 */
    GRACE_CNT_H2_CALM,          /**< HTTP/2 connections ended for a flood (rapid reset,
                                     empty frames, CONTINUATION): ENHANCE_YOUR_CALM */
    GRACE_CNT_H2_RESETS,        /**< RST_STREAM frames sent: ours (an early answer's
                                     discard bound: NO_ERROR; a stalled window, a stop's
                                     cut) and nghttp2's (a refused or malformed stream, a
                                     frame on a closed one) */
    GRACE_CNT__COUNT
};

/** Current value of a counter; 0 for an unknown one. */
GRACE_API uint64_t grace_server_counter(const struct grace_server *srv, enum grace_counter c);

/** Name of a counter, e.g. "linger_client_eof"; NULL if unknown. */
GRACE_API const char *grace_counter_name(enum grace_counter c);

/* ================================================================ TLS */

/*
 * A TLS context: certificates and settings shared by TLS listeners. TLS 1.2
 * and 1.3 only, the server's cipher preference, ALPN "http/1.1", session
 * resumption (tickets whose keys rotate, and a session cache). Built with
 * OpenSSL 3; in a library built without it every function below returns
 * -ENOTSUP (or NULL with errno ENOTSUP).
 */
struct grace_tls;

/** Create an empty context. NULL with errno set on failure. */
GRACE_API struct grace_tls *grace_tls_new(void);

/**
 * Add a certificate chain and its private key (PEM files). The first pair
 * added is the default; the others are chosen by the name the client asks
 * for (SNI), matched against their subjectAltName DNS names (wildcards of
 * one label) or, without those, the subject's CN.
 * @return 0, or a negative errno; grace_tls_last_error() says why.
 */
GRACE_API int grace_tls_add_cert(struct grace_tls *tls, const char *chain_file,
                                 const char *key_file);

/**
 * Read every certificate and key file again. New handshakes use them;
 * connections already open keep what they negotiated. On failure nothing
 * changes. Session ticket keys survive a reload.
 * @return 0, or a negative errno; grace_tls_last_error() says why.
 */
GRACE_API int grace_tls_reload(struct grace_tls *tls);

/** The reason for the last failure of this context's functions; "" if none. */
GRACE_API const char *grace_tls_last_error(const struct grace_tls *tls);

/** Drop the caller's reference; listeners that use the context keep theirs. */
GRACE_API void grace_tls_free(struct grace_tls *tls);

/**
 * Deprecated: grace_server_listen(srv, host, port, tls); removed in 0.3.
 * @return as grace_server_listen(); -EINVAL when tls is NULL.
 */
GRACE_API GRACE_DEPRECATED("use grace_server_listen(srv, host, port, tls)")
int grace_server_listen_tls(struct grace_server *srv, const char *host, int port,
                            struct grace_tls *tls);

/**
 * Deprecated: grace_server_listen_fd(srv, fd, tls); removed in 0.3.
 * @return as grace_server_listen_fd(); -EINVAL when tls is NULL (fd closed).
 */
GRACE_API GRACE_DEPRECATED("use grace_server_listen_fd(srv, fd, tls)")
int grace_server_listen_fd_tls(struct grace_server *srv, int fd, struct grace_tls *tls);

/** "TLSv1.3" or "TLSv1.2" for a request that came over TLS, else NULL. */
GRACE_API const char *grace_request_tls_version(const struct grace_request *req);

/** The server name the client asked for (SNI), or NULL. */
GRACE_API const char *grace_request_tls_sni(const struct grace_request *req);

/* ================================================================ responses seen */

/*
 * Every response written on the server's connections is reported once:
 * the application's, and the ones the server makes itself (400, 408, 413,
 * 414, 431, 501, 505, 503). The report comes when the response's last byte
 * has been handed to the kernel, or when the connection ends before that.
 * The info and everything reached through it are valid during the call
 * only. An access log is the intended use.
 */
struct grace_response_info;
typedef void (*grace_response_cb)(const struct grace_response_info *ri, void *arg);

/** Report every response to cb (NULL: stop reporting). */
GRACE_API void grace_server_on_response(struct grace_server *srv, grace_response_cb cb, void *arg);

/** The request answered, or NULL when the server refused bytes that were
 * not a complete request (400, 408 in headers, 414, 431, 501, 505). */
GRACE_API const struct grace_request *
grace_response_info_request(const struct grace_response_info *ri);
/** The status sent. */
GRACE_API int grace_response_info_status(const struct grace_response_info *ri);
/** Bytes of this response written: status line, headers and body. */
GRACE_API uint64_t grace_response_info_bytes(const struct grace_response_info *ri);
/** Body bytes of this response written (without status line and headers). */
GRACE_API uint64_t grace_response_info_body_bytes(const struct grace_response_info *ri);
/** Microseconds from the request's first byte to the response's last. */
GRACE_API int64_t grace_response_info_duration_us(const struct grace_response_info *ri);
/** 0 if written in full; else why not: -ECONNRESET (client gone or reset),
 * -ETIMEDOUT (write-timeout), -EPIPE (a file ended before its length),
 * -ECANCELED (server freed or stop deadline), -ECONNABORTED (dropped). */
GRACE_API int grace_response_info_error(const struct grace_response_info *ri);
/** The client's address. */
GRACE_API const struct sockaddr *grace_response_info_peer(const struct grace_response_info *ri,
                                                          socklen_t *len);
/** "TLSv1.3" or "TLSv1.2" if the connection speaks TLS, else NULL; also for
 * responses without a request. */
GRACE_API const char *grace_response_info_tls_version(const struct grace_response_info *ri);

/* ================================================================ connections */

/*
 * A connection, as the hooks below see it. Owned by the server; valid from
 * the accept hook until the close hook has returned (or, for a connection
 * the accept hook refused, until that hook returns). Never keep it longer.
 */
struct grace_conn;

/**
 * Called for every accepted connection before any byte is read from it
 * (before the TLS handshake). The hook may look at the addresses and set
 * user data. Return 0 to keep the connection; anything else refuses it: it
 * is closed at once without reading, counted in GRACE_CNT_CONN_REFUSED
 * (not in GRACE_CNT_CONN_ACCEPTED), and gets no close hook.
 */
typedef int (*grace_accept_cb)(struct grace_conn *conn, void *arg);

/** Set the accept hook (NULL: accept every connection). */
GRACE_API void grace_server_on_accept(struct grace_server *srv, grace_accept_cb cb, void *arg);

/**
 * Called exactly once for every connection the accept hook kept (every
 * accepted one without an accept hook), when it closes, after its request's
 * finish callback and response reports. reason
 * is 0 for an orderly end (the client closed, a graceful close finished,
 * keep-alive-timeout, a graceful stop), else -ETIMEDOUT (a header, body,
 * write, drain or handshake timeout), -ECONNRESET (reset or write error),
 * -EPIPE (a file body ended before its length: grace_reply_file()),
 * -EPROTO (a TLS protocol error), -ECONNABORTED (grace_conn_drop() with
 * GRACE_DROP_ABORT), -ECANCELED (server freed, or the stop deadline),
 * -ENOMEM (the server could not set it up after the accept hook). Also
 * runs inside grace_server_free(). The connection's data is the hook's to
 * free; grace_conn_drop() does nothing here.
 */
typedef void (*grace_close_cb)(struct grace_conn *conn, int reason, void *arg);

/** Set the close hook (NULL: none). */
GRACE_API void grace_server_on_close(struct grace_server *srv, grace_close_cb cb, void *arg);

/** The connection a request came on; NULL once the request is detached
 * (the client went away or the request was ended by a limit). */
GRACE_API struct grace_conn *grace_request_conn(const struct grace_request *req);

/** The connection of a reported response (valid during the report). */
GRACE_API struct grace_conn *grace_response_info_conn(const struct grace_response_info *ri);

/** Attach the application's pointer to the connection (not owned). */
GRACE_API void grace_conn_set_data(struct grace_conn *conn, void *data);
/** The pointer set with grace_conn_set_data(), or NULL. */
GRACE_API void *grace_conn_data(const struct grace_conn *conn);

/** The server the connection belongs to. */
GRACE_API struct grace_server *grace_conn_server(const struct grace_conn *conn);

/** The client's address. */
GRACE_API const struct sockaddr *grace_conn_peer(const struct grace_conn *conn, socklen_t *len);

/**
 * The local address the client connected to (which listener, with several;
 * the real address behind a wildcard bind), asked of the kernel. The answer
 * lives in the server and is valid until the next grace_conn_local() or
 * grace_request_local() call on it: copy it to keep it. AF_UNSPEC (len 0)
 * if it cannot be known.
 */
GRACE_API const struct sockaddr *grace_conn_local(struct grace_conn *conn, socklen_t *len);

/** Nonzero if the connection speaks TLS. */
GRACE_API int grace_conn_is_tls(const struct grace_conn *conn);

/** Like grace_conn_local() (same lifetime), for the request's connection;
 * AF_UNSPEC once detached. */
GRACE_API const struct sockaddr *grace_request_local(const struct grace_request *req,
                                                     socklen_t *len);

#define GRACE_DROP_GRACEFUL 0 /**< finish the response in flight, then close gracefully */
#define GRACE_DROP_ABORT 1    /**< close now: the request in flight ends with -ECONNABORTED */

/**
 * End a connection on the application's decision (a ban, a quota, an
 * admin action). GRACE_DROP_GRACEFUL closes an idle connection at once and
 * any other after its current response (which carries Connection: close if
 * not yet started), with the usual graceful close; a response the
 * application never completes holds it, so use GRACE_DROP_ABORT for that.
 * GRACE_DROP_ABORT closes the socket at once (no linger; unread input makes
 * the kernel send a reset): the request in flight gets its finish callback
 * with -ECONNABORTED, responses not yet written are reported with
 * -ECONNABORTED, then the close hook runs. Safe from inside any callback of
 * this server; from the accept hook it refuses the connection; on a closed
 * connection (inside the close hook) it does nothing.
 * @return 0, or -EINVAL for an unknown how.
 */
GRACE_API int grace_conn_drop(struct grace_conn *conn, int how);

/* ================================================================ request */

/*
 * A request is owned by the server. It is handed to the handler when its
 * headers are complete and stays valid until it is finished: its reply has
 * been completed and the callback that completed it has returned. If the
 * client goes away first, the finish callback reports it and the request
 * stays valid until the application completes its reply, which then returns
 * -ENOTCONN and releases it. Strings returned below are NUL-terminated and
 * live as long as the request.
 */

GRACE_API const char *grace_request_method(const struct grace_request *req);
/** The request-target as sent, e.g. "/a/b?c=d". */
GRACE_API const char *grace_request_target(const struct grace_request *req);
/** The path part of the target (no query), not percent-decoded. */
GRACE_API const char *grace_request_path(const struct grace_request *req);
/**
 * The path as routes see it: grace_path_normalize() of grace_request_path()
 * ("/%61dmin", "//admin", "/x/../admin" are "/admin"); "*" for "OPTIONS *",
 * and the target as sent for CONNECT (host:port). It may hold control
 * bytes decoded from %01-%1F and %7F ("/a%0Ab" is "/a\nb"): the handler
 * decides what to do with them (the raw form stays in grace_request_path()
 * and grace_request_target()); escape it before logging it.
 * Never NULL: a request whose path cannot be normalized (an encoded '/',
 * NUL, a bad escape, ".." above the root) is answered 400 by the server
 * and never reaches a handler.
 */
GRACE_API const char *grace_request_path_decoded(const struct grace_request *req);
/** The query after '?', or NULL if there is none. */
GRACE_API const char *grace_request_query(const struct grace_request *req);
/** 0 for HTTP/1.0, 1 for HTTP/1.1; 0 for HTTP/2 (HTTP/2.0). */
GRACE_API int grace_request_version_minor(const struct grace_request *req);
/**
 * The protocol version the request came in, as an access log prints it.
 * @return "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0": a static string, never NULL.
 */
GRACE_API const char *grace_request_version(const struct grace_request *req);
/** First header with that name (case-insensitive), or NULL. */
GRACE_API const char *grace_request_header(const struct grace_request *req, const char *name);
/**
 * Every value of a repeated header, in the order received:
 *     size_t pos = 0;
 *     const char *v;
 *     while ((v = grace_request_header_next(req, "Accept", &pos)))
 *         ...
 * @param pos cursor, 0 to start; after a match it is that field's index + 1
 *            (for grace_request_header_at(req, pos - 1, ...)).
 * @return the next value of a field with that name (case-insensitive), or
 *         NULL when there is none left.
 */
GRACE_API const char *grace_request_header_next(const struct grace_request *req,
                                                const char *name, size_t *pos);
/** Number of header fields, in the order received. */
GRACE_API size_t grace_request_header_count(const struct grace_request *req);
/** Field i: name as sent and value (trimmed). @return 0 or -ERANGE. */
GRACE_API int grace_request_header_at(const struct grace_request *req, size_t i,
                                      const char **name, const char **value);
/**
 * A trailer field the client sent after the body (HTTP/1.1's chunked
 * trailer section, HTTP/2's trailing HEADERS): the first with that name
 * (case-insensitive). Shown once the body has been read to its end (from
 * on_end/on_body on): NULL before, and when absent. Fields a trailer may
 * not carry (RFC 9110 6.5.1: framing, routing, request modifiers,
 * credentials, content processing; docs/api.md lists them) are dropped on
 * arrival, and no trailer is ever merged into the headers. The section is
 * bounded by GRACE_OPT_MAX_TRAILER_BYTES (431 above it) and lives as long
 * as the request.
 */
GRACE_API const char *grace_request_trailer(const struct grace_request *req, const char *name);
/** Every value of a repeated trailer field, as grace_request_header_next();
 * @return the next value or NULL. Strings live as long as the request. */
GRACE_API const char *grace_request_trailer_next(const struct grace_request *req,
                                                 const char *name, size_t *pos);
/** Number of trailer fields kept (0 before the body's end). */
GRACE_API size_t grace_request_trailer_count(const struct grace_request *req);
/** Trailer field i: name as sent and value, living as long as the request.
 * @return 0 or -ERANGE (i past the count, or the body not yet ended). */
GRACE_API int grace_request_trailer_at(const struct grace_request *req, size_t i,
                                       const char **name, const char **value);
/** The client's address. */
GRACE_API const struct sockaddr *grace_request_peer(const struct grace_request *req,
                                                    socklen_t *len);
/** Content-Length, or -1 if the body is chunked; 0 if there is no body. */
GRACE_API int64_t grace_request_content_length(const struct grace_request *req);
/** Nonzero if the body is chunked. */
GRACE_API int grace_request_is_chunked(const struct grace_request *req);
/** The server that received the request. */
GRACE_API struct grace_server *grace_request_server(const struct grace_request *req);

/**
 * This request's body limit, instead of GRACE_OPT_MAX_BODY_SIZE (which is
 * only the default: a handler may raise it as well as lower it). Call it
 * before the body is read, typically first thing in the handler. A
 * Content-Length over the limit is refused when the body is asked for
 * (read/collect return -EMSGSIZE and send nothing: the application
 * answers), or, if the handler returns without having replied or asked
 * for the body, by the server with 413 (the finish callback gets
 * -EMSGSIZE). A chunked body is cut at the limit with 413.
 * @return 0; -EALREADY once the body is being read; -ENOTCONN if detached.
 */
GRACE_API int grace_request_set_max_body(struct grace_request *req, uint64_t bytes);

/**
 * This request's body-timeout (idle while the application waits for body
 * bytes), instead of GRACE_OPT_BODY_TIMEOUT. ms 0 restores the default.
 * @return 0; -EINVAL out of range (1 ms .. 1 day); -ENOTCONN if detached.
 */
GRACE_API int grace_request_set_body_timeout(struct grace_request *req, int64_t ms);

/**
 * This response's write-timeout (no write progress while output waits),
 * instead of GRACE_OPT_WRITE_TIMEOUT, until all of the response has been
 * written. ms 0 restores the default.
 * @return 0; -EINVAL out of range (1 ms .. 1 day); -ENOTCONN if detached.
 */
GRACE_API int grace_request_set_write_timeout(struct grace_request *req, int64_t ms);

/**
 * Called once when the request is finished: err 0 after the reply was
 * completed, or a negative errno if it ended otherwise: -ECONNRESET (the
 * client went away), -ETIMEDOUT, -EMSGSIZE (body over a limit), -EPROTO
 * (malformed body), -ECANCELED (server freed), -ECONNABORTED (the
 * application dropped the connection). The request is still valid
 * during the call.
 */
typedef void (*grace_finish_cb)(struct grace_request *req, int err, void *arg);
GRACE_API void grace_request_on_finish(struct grace_request *req, grace_finish_cb cb, void *arg);

/**
 * A total deadline for this request: ms milliseconds counted from its first
 * byte (the start grace_response_info_duration_us measures from), however
 * the request progresses. If the application has not completed its reply
 * by then, the server answers 503 (Connection: close) when nothing of the
 * response was queued yet, or closes the connection at once when a
 * response was started (the client sees it cut short); either way the
 * finish callback gets -ETIMEDOUT. The other timers run as before. ms 0
 * removes the deadline; a deadline already past acts from the event loop,
 * never inside this call. Default: none.
 * @return 0; -EINVAL for ms < 0; -ENOTCONN if the client has gone;
 * -EALREADY if the reply was completed.
 */
GRACE_API int grace_request_set_deadline(struct grace_request *req, int64_t ms);

/**
 * Hold a graceful stop for this request until its reply completes: the
 * application is committing what the request asked (an upload being
 * renamed into place and synced) and its answer must say how that ended —
 * a 503 at the stop's deadline would tell the client "not stored" about a
 * file that is. While held, the stop's deadline neither answers it 503 nor
 * cuts its reply, and the stop's last bound (GRACE_OPT_STOP_LINGER_TIME
 * after the deadline) leaves its connection open: grace_server_stop()'s
 * callback then comes once that reply is out and the connection closed,
 * which may be past timeout_ms + stop-linger-time. Hold only for work
 * bounded in time (a rename, an fsync) once the body is read. The other
 * timers, the request's own deadline (grace_request_set_deadline), the
 * client's failures and grace_server_free() still end it. Nothing is
 * allocated; the hold ends with the request, and cannot be taken back.
 * @return 0; -EINVAL if req is NULL; -ENOTCONN if the client has gone;
 * -EALREADY if the reply was completed.
 */
GRACE_API int grace_request_hold_stop(struct grace_request *req);

/** A piece of body; data is valid during the call only. */
typedef void (*grace_data_cb)(struct grace_request *req, const char *data, size_t len,
                              void *arg);
/** The body is complete. */
typedef void (*grace_end_cb)(struct grace_request *req, void *arg);

/**
 * Stream the body: on_data per piece (may not be called at all for an
 * empty body), then on_end. Sends "100 Continue" if the client asked for
 * it. Pieces stop when a reply completes first.
 * @return 0; -EALREADY if the body is already being read; -EMSGSIZE (nothing
 * sent) for a Content-Length over the request's limit.
 */
GRACE_API int grace_request_read_body(struct grace_request *req, grace_data_cb on_data,
                                      grace_end_cb on_end, void *arg);

/**
 * Move a Content-Length body on a plain (non-TLS) connection straight from
 * the socket into fd (socket -> pipe -> fd with splice(2), no copy through
 * user space), starting at fd's current offset; bytes already buffered with
 * the headers are written first. on_end runs once all of it is written. A
 * failed write answers 507 (disk full, quota, file too large) or 500, a
 * client gone early 400, body-timeout (from the last bytes moved) 408; each
 * then reaches the finish callback with its error, and on_end does not run.
 * Pause/resume, early replies and the drain after them work as with
 * grace_request_read_body().
 * @param fd stays the caller's: open until on_end or the finish callback.
 * @return 0; -ENOTSUP for TLS, a chunked body or none (use
 *         grace_request_read_body(), nothing has happened); -EMSGSIZE when the
 *         Content-Length is over the body limit; -EALREADY, -ENOTCONN,
 *         -EINVAL, or the errno of pipe2(). On an error no callback runs.
 */
GRACE_API int grace_request_body_to_fd(struct grace_request *req, int fd, grace_end_cb on_end,
                                       void *arg);

/** Stop delivering body pieces (backpressure); the socket is read no more
 * once the input buffer is full. */
GRACE_API void grace_request_pause(struct grace_request *req);
/** Deliver again, from the event loop (never from inside this call). */
GRACE_API void grace_request_resume(struct grace_request *req);

/** The collected body; the callback may keep the evbuffer's data by
 * moving it out (evbuffer_add_buffer). */
typedef void (*grace_body_cb)(struct grace_request *req, struct evbuffer *body, void *arg);

/**
 * Collect the whole body in memory, up to limit bytes. limit > 0 becomes
 * the request's body limit, above GRACE_OPT_MAX_BODY_SIZE as well as below
 * it, as grace_request_set_max_body() would set it; 0 keeps the request's
 * limit (GRACE_OPT_MAX_BODY_SIZE unless set). A Content-Length over it
 * returns -EMSGSIZE at once and sends nothing (the application answers); a
 * chunked body crossing it is answered 413 by the server and on_body is
 * not called (the finish callback gets -EMSGSIZE).
 * @return 0; -EALREADY if the body is already being read; -EMSGSIZE.
 */
GRACE_API int grace_request_collect_body(struct grace_request *req, size_t limit,
                                         grace_body_cb on_body, void *arg);

/* ================================================================ response */

/*
 * Date, Content-Length (or chunked framing) and Connection are set by the
 * server. A HEAD request gets headers only. Every reply function returns
 * -ENOTCONN if the client has gone (and, for one that completes the reply,
 * releases the request), -EALREADY if the reply was already started or
 * completed, -EINVAL for bad arguments.
 */

/**
 * Add a response header before the reply starts. Both strings are copied.
 * The server owns the message framing: Content-Length and Transfer-Encoding
 * are refused (-EINVAL), and so is Connection, except "Connection: close",
 * which makes the server close the connection after this response (and
 * send that header itself).
 */
GRACE_API int grace_response_add_header(struct grace_request *req, const char *name,
                                        const char *value);

/** Reply with a body from memory (copied). Completes the reply. */
GRACE_API int grace_reply(struct grace_request *req, int status, const char *body, size_t len);

/** Reply with the contents of an evbuffer (moved out of it; may be NULL). */
GRACE_API int grace_reply_buffer(struct grace_request *req, int status, struct evbuffer *body);

/**
 * Reply with length bytes of fd from offset: zero-copy with sendfile()
 * above 32 KiB; smaller files are read into the response so that headers
 * and body leave in one segment. The server takes ownership of fd and
 * closes it, also on failure. A file that turns out shorter than length
 * (whatever its size) ends the connection after the bytes that exist: the
 * response is reported with -EPIPE, counted in GRACE_CNT_WRITE_ERRORS, and
 * the close hook gets -EPIPE.
 */
GRACE_API int grace_reply_file(struct grace_request *req, int status, int fd, off_t offset,
                               off_t length);

/**
 * Start a streamed reply: chunked for HTTP/1.1, close-delimited for
 * HTTP/1.0. Follow with grace_reply_chunk() calls and grace_reply_end().
 */
GRACE_API int grace_reply_start(struct grace_request *req, int status);
/** Send a piece of a streamed reply (copied). len 0 does nothing. */
GRACE_API int grace_reply_chunk(struct grace_request *req, const char *data, size_t len);
/** Finish a streamed reply. Completes the reply. */
GRACE_API int grace_reply_end(struct grace_request *req);

/**
 * Finish a streamed reply with a trailer section (e.g. grpc-status): the
 * last chunk and the fields for HTTP/1.1, a HEADERS frame with END_STREAM
 * after the DATA for HTTP/2. fields holds nfields name/value pairs
 * (fields[2*i], fields[2*i+1]), copied. Names are tokens, values have no
 * control bytes (HTAB aside) and no whitespace at either end, and a field
 * RFC 9110 6.5.1 keeps out of trailers is refused (docs/api.md lists them:
 * Content-Length, Transfer-Encoding, Trailer, Host, Authorization,
 * Set-Cookie, Content-Type...). Announcing them with a "Trailer" header is
 * the application's choice (grace_response_add_header before the start).
 * nfields 0 is grace_reply_end().
 * @return 0: the reply is complete, trailers sent.
 *         1: the reply is complete, without the trailers: its framing has
 *         no place for them (an HTTP/1.0 client's close-delimited body; a
 *         HEAD request; 204, 304). Either way the request is released when
 *         the calling callback returns; only a negative answer leaves it
 *         as it was (-ENOTCONN aside).
 *         -EINVAL (bad fields) or -EALREADY (no streamed reply in
 *         progress: never started, or complete): nothing happened, a
 *         streamed reply goes on. -ENOTCONN: the client has gone (the
 *         request is released, as by grace_reply_end).
 */
GRACE_API int grace_reply_end_trailers(struct grace_request *req, const char *const *fields,
                                       size_t nfields);

/** Bytes queued for the client but not yet written (for streaming pace). */
GRACE_API size_t grace_reply_pending(const struct grace_request *req);

/** The queued output has fallen to the low-water mark; see below. */
typedef void (*grace_drain_cb)(struct grace_request *req, void *arg);

/**
 * Backpressure for a streamed reply: cb runs once, from the event loop
 * (never inside this call), as soon as grace_reply_pending(req) is at or
 * below GRACE_OPT_OUTPUT_LOW_WATER: on the next loop turn if it already is,
 * else when writing has brought it down. It is one-shot: register again to
 * hear again; a new registration replaces the old one, cb NULL cancels.
 * A producer writes while the pending bytes are above the mark, then stops
 * and registers. cb may chunk, end the reply or register again. It is
 * never called once the reply is complete or the request has ended
 * otherwise (the finish callback reports that instead).
 * @return 0; -ENOTCONN if the client has gone; -EALREADY if the reply was
 * completed.
 */
GRACE_API int grace_reply_on_drain(struct grace_request *req, grace_drain_cb cb, void *arg);

/**
 * Send an informational (1xx) response before the final one, e.g. 103
 * Early Hints with Link fields. fields holds nfields name/value pairs
 * (fields[2*i], fields[2*i+1]), checked like grace_response_add_header()
 * and copied. May be called several times before the reply starts.
 * An HTTP/1.0 client gets nothing (it cannot know 1xx): -EPROTONOSUPPORT,
 * and the final reply goes on as usual.
 * @return 0; -EINVAL for 100 (the server's own, see read_body), 101
 * (protocol upgrades) or a status outside 102-199, or bad fields;
 * -EALREADY once the reply has started; -ENOTCONN; -EPROTONOSUPPORT.
 */
GRACE_API int grace_reply_informational(struct grace_request *req, int status,
                                        const char *const *fields, size_t nfields);

/**
 * Decode and normalize a URL path (without its query) for routing and file
 * lookup: every %XX is decoded, "//" becomes "/", "." segments are dropped
 * and ".." removes the segment before it (RFC 3986 5.2.4), also when spelled
 * "%2e%2e". A trailing "/" is kept. Control bytes other than NUL (%09, %0A,
 * %0D, %7F...) are decoded like any byte: the result may hold them, and it
 * is the caller's to refuse them (a file name) or route them; never trim
 * or fold the result before comparing it.
 * Refused with -EINVAL: a path that does not start with '/', a '%' not
 * followed by two hex digits, an encoded '/' (%2F: it would hide a segment
 * boundary), a NUL, raw or encoded (the result is a C string), and a ".."
 * above the root.
 * @param path len bytes (need not be NUL-terminated)
 * @param out  receives the result and a NUL; the result is never longer than
 *             the input, and size must be at least len + 1 (else -ENOSPC)
 * @return the length of the result, or a negative errno.
 */
GRACE_API ssize_t grace_path_normalize(const char *path, size_t len, char *out, size_t size);

/** The standard reason phrase of a status, e.g. "Not Found"; never NULL. */
GRACE_API const char *grace_status_reason(int status);

/* ================================================================ upgrade */

/*
 * Upgrades (101 Switching Protocols, e.g. WebSocket) and CONNECT tunnels:
 * the handler accepts with grace_reply_upgrade() and the connection becomes
 * a raw bidirectional stream on the same event_base, plain or TLS. Bytes the
 * client sent after the request's headers are the stream's first input.
 * docs/api.md ("Upgrade and takeover") has the ownership and lifetime rules.
 */
struct grace_stream;

/**
 * Nonzero if the request asks for a protocol switch: an HTTP/1.1 request
 * with an Upgrade header and "upgrade" among its Connection tokens (read the
 * protocol with grace_request_header(req, "Upgrade")), or a CONNECT
 * (authority-form target, grace_request_target()). A request that asked for
 * one and is answered with an ordinary reply closes the connection after
 * it: what the client sent meanwhile may not be HTTP.
 */
GRACE_API int grace_request_is_upgrade(const struct grace_request *req);

/**
 * Accept the switch: send status (101 for an Upgrade request, 2xx for a
 * CONNECT) with the headers added by grace_response_add_header() (e.g.
 * "Upgrade: websocket"; "Connection: Upgrade" is added for a 101) and turn
 * the connection into a stream. Completes the reply: the request is
 * finished (err 0) and released when the calling callback returns.
 * @param stream receives the stream, owned by the server until it ends
 *        (see grace_stream_on_close) or grace_stream_close() is called.
 * @return 0; -EINVAL (not an upgrade request, or a status that does not
 *         fit it); -EBUSY (the request body is not fully read);
 *         -ESHUTDOWN (the server is stopping); -ENOTCONN, -EALREADY as for
 *         every reply; -ENOMEM.
 */
GRACE_API int grace_reply_upgrade(struct grace_request *req, int status,
                                  struct grace_stream **stream);

/** Bytes from the peer; data is valid during the call only. len 0 (data
 * NULL): the peer closed its side (end of stream); writing may go on. */
typedef void (*grace_stream_read_cb)(struct grace_stream *st, const char *data, size_t len,
                                     void *arg);
/** The output queued earlier has all been handed to the kernel. Called only
 * after a write left output waiting or was refused with -ENOBUFS. */
typedef void (*grace_stream_drain_cb)(struct grace_stream *st, void *arg);
/**
 * The stream ended; called once, never after grace_stream_close() or a
 * successful grace_stream_take_fd(). err: -ECONNRESET (peer reset or
 * write failure), -ETIMEDOUT (write-timeout: output waits without
 * progress; or stream-idle-timeout: no byte moved either way, see below),
 * -EPROTO (TLS error), -ECANCELED (server freed: nothing more can be
 * written). -ESHUTDOWN (the server is stopping) and the idle -ETIMEDOUT:
 * during this call only, the stream may still be written (a last message,
 * e.g. a WebSocket close frame) or taken over with grace_stream_take_fd();
 * afterwards it is closed gracefully. The stream is freed when the callback
 * returns.
 */
typedef void (*grace_stream_close_cb)(struct grace_stream *st, int err, void *arg);

/**
 * Set the callbacks (any may be NULL). Input is held until on_read is set;
 * then buffered bytes, including those pipelined after the request, are
 * delivered from the event loop (never from inside this call).
 */
GRACE_API void grace_stream_set_callbacks(struct grace_stream *st, grace_stream_read_cb on_read,
                                          grace_stream_drain_cb on_drain,
                                          grace_stream_close_cb on_close, void *arg);

/**
 * Queue len bytes (copied) and write what the socket takes now. Output is
 * bounded by GRACE_OPT_OUTPUT_HIGH_WATER: a write that would take the
 * pending bytes above it is refused (unless nothing is pending), and
 * on_drain follows once the output is empty. The write-timeout applies.
 * @return 0, -ENOBUFS (refused, nothing queued), -ENOTCONN (ended), -EINVAL.
 */
GRACE_API int grace_stream_write(struct grace_stream *st, const void *data, size_t len);

/** Bytes queued but not yet handed to the kernel. */
GRACE_API size_t grace_stream_pending(const struct grace_stream *st);

/** Stop delivering input (backpressure: the socket is read no more once
 * the input buffer is full); resume delivers again from the event loop. */
GRACE_API void grace_stream_pause(struct grace_stream *st);
GRACE_API void grace_stream_resume(struct grace_stream *st);

/**
 * Close gracefully and release the stream: queued output is still sent,
 * then close_notify (TLS) and FIN, and what the peer sends meanwhile is
 * discarded under the linger rules. No callback runs after this call; st
 * is invalid afterwards (also when called from one of its callbacks).
 */
GRACE_API void grace_stream_close(struct grace_stream *st);

/**
 * Take the socket over (plain connections only: a TLS session cannot be
 * handed out, use the stream functions). Bytes already read and not yet
 * delivered are moved to the end of unread. The server forgets the
 * connection (it no longer counts as active), st is released and no
 * callback runs; the caller owns the returned fd and closes it.
 * @return the fd; -ENOTSUP (TLS), -EBUSY (output still pending: wait for
 *         on_drain), -ENOTCONN (ended), -EINVAL (unread is NULL).
 */
GRACE_API int grace_stream_take_fd(struct grace_stream *st, struct evbuffer *unread);

/**
 * This stream's idle timeout instead of GRACE_OPT_STREAM_IDLE_TIMEOUT: the
 * stream ends with on_close(-ETIMEDOUT) once no byte has been read from or
 * written to the peer for ms (a stream that only sends, or only receives,
 * is kept while its bytes move). Counted from the last byte, not from this
 * call. Pausing input does not stop it.
 * @param ms 1 ms to 1 day; 0 restores the server's setting.
 * @return 0, -EINVAL (ms out of range), -ENOTCONN (ended).
 */
GRACE_API int grace_stream_set_idle_timeout(struct grace_stream *st, int64_t ms);

/** "TLSv1.3"/"TLSv1.2" if the stream runs over TLS, else NULL. */
GRACE_API const char *grace_stream_tls_version(const struct grace_stream *st);

/** The server the stream belongs to; NULL once it ended. */
GRACE_API struct grace_server *grace_stream_server(const struct grace_stream *st);

#ifdef __cplusplus
}
#endif
#endif
