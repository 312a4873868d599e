/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * core.c - the settings and the counters: the option table (names,
 * defaults, bounds) behind grace_config_*, and the counter names behind
 * grace_server_counter(). Data, and the functions that read it.
 */
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- config */

static const struct {
    const char *name;
    int64_t def, min, max;
} opt_info[GRACE_OPT__COUNT] = {
    [GRACE_OPT_MAX_REQUEST_LINE] = {"max-request-line", 8192, 64, 1 << 20},
    [GRACE_OPT_MAX_HEADER_BYTES] = {"max-header-bytes", 32768, 64, 1 << 24},
    [GRACE_OPT_MAX_HEADER_FIELDS] = {"max-header-fields", 100, 1, 10000},
    [GRACE_OPT_MAX_TRAILER_BYTES] = {"max-trailer-bytes", 8192, 2, 1 << 24},
    [GRACE_OPT_MAX_BODY_SIZE] = {"max-body-size", 1 << 20, 0, INT64_MAX},
    [GRACE_OPT_MAX_CONNECTIONS] = {"max-connections", 10000, 1, 1 << 24},
    [GRACE_OPT_HEADER_TIMEOUT] = {"header-timeout", 10000, 1, 86400000},
    [GRACE_OPT_BODY_TIMEOUT] = {"body-timeout", 30000, 1, 86400000},
    [GRACE_OPT_WRITE_TIMEOUT] = {"write-timeout", 30000, 1, 86400000},
    [GRACE_OPT_KEEPALIVE_TIMEOUT] = {"keepalive-timeout", 15000, 1, 86400000},
    [GRACE_OPT_OUTPUT_HIGH_WATER] = {"output-high-water", 262144, 1024, INT32_MAX},
    [GRACE_OPT_DRAIN_LIMIT] = {"drain-limit", 262144, 0, INT64_MAX},
    [GRACE_OPT_LINGER] = {"linger", 1, 0, 1},
    [GRACE_OPT_LINGER_TIMEOUT] = {"linger-timeout", 5000, 1, 86400000},
    [GRACE_OPT_LINGER_TIME] = {"linger-time", 30000, 1, 86400000},
    [GRACE_OPT_LINGER_BYTES] = {"linger-bytes", 0, 0, INT64_MAX},
    [GRACE_OPT_MAX_LINGERING] = {"max-lingering", 1024, 1, 1 << 24},
    [GRACE_OPT_STOP_LINGER_TIME] = {"stop-linger-time", 1000, 1, 86400000},
    [GRACE_OPT_REUSEPORT] = {"reuseport", 0, 0, 1},
    [GRACE_OPT_DRAIN_TIME] = {"drain-time", 5000, 1, 86400000},
    [GRACE_OPT_LINGER_MIN_RATE] = {"linger-min-rate", 262144, 0, INT64_MAX},
    [GRACE_OPT_LINGER_MAX_TIME] = {"linger-max-time", 300000, 1, 86400000},
    [GRACE_OPT_ACCEPT_RETRY] = {"accept-retry", 500, 1, 86400000},
    [GRACE_OPT_TLS_HANDSHAKE_TIMEOUT] = {"tls-handshake-timeout", 10000, 1, 86400000},
    [GRACE_OPT_OUTPUT_LOW_WATER] = {"output-low-water", 65536, 0, INT32_MAX},
    [GRACE_OPT_STREAM_IDLE_TIMEOUT] = {"stream-idle-timeout", 600000, 1, 86400000},
    [GRACE_OPT_BODY_MIN_RATE] = {"body-min-rate", 1024, 0, INT64_C(1) << 30},
    [GRACE_OPT_STOP_IDLE_GRACE] = {"stop-idle-grace", 3000, 0, 86400000},
    [GRACE_OPT_LINGER_RATE_WINDOW] = {"linger-rate-window", 30000, 1, 86400000},
    [GRACE_OPT_HTTP2] = {"http2", 1, 0, 1},
    [GRACE_OPT_H2C] = {"h2c", 1, 0, 1},
    [GRACE_OPT_H2_MAX_STREAMS] = {"h2-max-streams", 100, 1, 1 << 16},
    [GRACE_OPT_H2_STREAM_WINDOW] = {"h2-stream-window", 262144, 1024, INT32_MAX},
    [GRACE_OPT_H2_CONN_WINDOW] = {"h2-conn-window", 1048576, 65535, INT32_MAX},
    [GRACE_OPT_H2_HPACK_TABLE] = {"h2-hpack-table", 4096, 0, 1 << 20},
    [GRACE_OPT_H2_RESET_RATE] = {"h2-reset-rate", 200, 1, 1 << 20},
};

void grace__config_defaults(struct grace_config *cfg)
{
    for (int i = 0; i < GRACE_OPT__COUNT; i++)
        cfg->v[i] = opt_info[i].def;
}

struct grace_config *grace_config_new(void)
{
    struct grace_config *cfg = malloc(sizeof(*cfg));
    if (!cfg)
        return NULL;
    grace__config_defaults(cfg);
    return cfg;
}

void grace_config_free(struct grace_config *cfg)
{
    free(cfg);
}

int grace_config_set(struct grace_config *cfg, enum grace_opt opt, int64_t value)
{
    if (!cfg || (unsigned)opt >= GRACE_OPT__COUNT || value < opt_info[opt].min ||
        value > opt_info[opt].max)
        return -EINVAL;
    cfg->v[opt] = value;
    return 0;
}

int64_t grace_config_get(const struct grace_config *cfg, enum grace_opt opt)
{
    if (!cfg || (unsigned)opt >= GRACE_OPT__COUNT)
        return -1;
    return cfg->v[opt];
}

const char *grace_opt_name(enum grace_opt opt)
{
    return (unsigned)opt < GRACE_OPT__COUNT ? opt_info[opt].name : NULL;
}

int grace_opt_by_name(const char *name)
{
    for (int i = 0; name && i < GRACE_OPT__COUNT; i++)
        if (!strcmp(opt_info[i].name, name))
            return i;
    return -1;
}

/* ---------------------------------------------------------------- counters */

static const char *const counter_names[GRACE_CNT__COUNT] = {
    [GRACE_CNT_CONN_ACCEPTED] = "conn_accepted",
    [GRACE_CNT_CONN_ACTIVE] = "conn_active",
    [GRACE_CNT_CONN_CAPPED] = "conn_capped",
    [GRACE_CNT_REQUESTS] = "requests",
    [GRACE_CNT_ERR_400] = "err_400",
    [GRACE_CNT_ERR_413] = "err_413",
    [GRACE_CNT_ERR_414] = "err_414",
    [GRACE_CNT_ERR_417] = "err_417",
    [GRACE_CNT_ERR_431] = "err_431",
    [GRACE_CNT_ERR_501] = "err_501",
    [GRACE_CNT_ERR_505] = "err_505",
    [GRACE_CNT_EARLY_REPLIES] = "early_replies",
    [GRACE_CNT_KEEPALIVE_DRAINS] = "keepalive_drains",
    [GRACE_CNT_LINGER_STARTED] = "linger_started",
    [GRACE_CNT_LINGER_CLIENT_EOF] = "linger_client_eof",
    [GRACE_CNT_LINGER_IDLE_TIMEOUT] = "linger_idle_timeout",
    [GRACE_CNT_LINGER_TOTAL_TIME] = "linger_total_time",
    [GRACE_CNT_LINGER_BYTE_CAP] = "linger_byte_cap",
    [GRACE_CNT_LINGER_ERROR] = "linger_error",
    [GRACE_CNT_LINGER_EVICTED] = "linger_evicted",
    [GRACE_CNT_LINGERING] = "lingering",
    [GRACE_CNT_BYTES_DISCARDED] = "bytes_discarded",
    [GRACE_CNT_TIMEOUT_HEADER] = "timeout_header",
    [GRACE_CNT_TIMEOUT_BODY] = "timeout_body",
    [GRACE_CNT_TIMEOUT_WRITE] = "timeout_write",
    [GRACE_CNT_TIMEOUT_KEEPALIVE] = "timeout_keepalive",
    [GRACE_CNT_CLIENT_ABORTS] = "client_aborts",
    [GRACE_CNT_TIMEOUT_DRAIN] = "timeout_drain",
    [GRACE_CNT_LINGER_EXTENDED] = "linger_extended",
    [GRACE_CNT_LINGER_TOO_SLOW] = "linger_too_slow",
    [GRACE_CNT_ACCEPT_ERRORS] = "accept_errors",
    [GRACE_CNT_WRITE_ERRORS] = "write_errors",
    [GRACE_CNT_TLS_HANDSHAKES] = "tls_handshakes",
    [GRACE_CNT_TLS_RESUMED] = "tls_resumed",
    [GRACE_CNT_TLS_FAILED] = "tls_failed",
    [GRACE_CNT_TLS_TIMEOUT] = "tls_timeout",
    [GRACE_CNT_TLS_CLOSE_NOTIFY] = "tls_close_notify",
    [GRACE_CNT_TIMEOUT_REQUEST] = "timeout_request",
    [GRACE_CNT_UPGRADES] = "upgrades",
    [GRACE_CNT_CONN_REFUSED] = "conn_refused",
    [GRACE_CNT_CONN_DROPPED] = "conn_dropped",
    [GRACE_CNT_TIMEOUT_STREAM] = "timeout_stream",
    [GRACE_CNT_BODY_TOO_SLOW] = "body_too_slow",
    [GRACE_CNT_STOP_IDLE_CLOSED] = "stop_idle_closed",
    [GRACE_CNT_STOP_DEADLINE] = "stop_deadline",
    [GRACE_CNT_H2_CONNS] = "h2_conns",
    [GRACE_CNT_H2_REQUESTS] = "h2_requests",
    [GRACE_CNT_H2_CALM] = "h2_calm",
    [GRACE_CNT_H2_RESETS] = "h2_resets",
};

uint64_t grace_server_counter(const struct grace_server *srv, enum grace_counter c)
{
    return srv && (unsigned)c < GRACE_CNT__COUNT ? srv->cnt[c] : 0;
}

const char *grace_counter_name(enum grace_counter c)
{
    return (unsigned)c < GRACE_CNT__COUNT ? counter_names[c] : NULL;
}

void grace__count_status(struct grace_server *srv, int status)
{
    switch (status) {
    case 400: CNT(srv, ERR_400); break;
    case 413: CNT(srv, ERR_413); break;
    case 414: CNT(srv, ERR_414); break;
    case 417: CNT(srv, ERR_417); break;
    case 431: CNT(srv, ERR_431); break;
    case 501: CNT(srv, ERR_501); break;
    case 505: CNT(srv, ERR_505); break;
    }
}
