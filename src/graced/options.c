/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * options.c - graced's command line: one table, one row per option (its
 * name, the kind of its value, the field it sets, its default, its bounds,
 * its help), from which getopt_long's list, the parsing, the defaults and
 * --help are all made. Every library limit and timeout is a row too, under
 * its documented name (grace_opt_name()), so the daemon and
 * docs/tuning.md never drift apart; test/unit/check_options.c holds the
 * table against docs/graced.8 and docs/tuning.md.
 *
 * A bad value is one line on stderr naming the option and the value, and
 * graced exits 2 (main.c).
 */
#include "graced.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum kind {
    K_FLAG,   /* no value: the int field becomes 1 */
    K_OFF,    /* no value: the int field (another row's flag) becomes 0 */
    K_STR,    /* a string, kept as given (check may refuse or rewrite it) */
    K_LIST,   /* repeatable: a list of up to max strings, and its count */
    K_INT,    /* a whole number in [min, max] */
    K_TIME,   /* "10s", "500ms", "2m", "24h", "10" (seconds) -> ms in [min, max] */
    K_SIZE,   /* "64K", "1M", "1G", "1048576" -> bytes in [min, max] */
    K_COUNT,  /* as a size (K, M, G taken), shown as a plain number */
    K_ONOFF,  /* "on" or "off" -> 1 or 0 */
    K_LEVEL,  /* --log-level: error, warn, info, debug -> LOG_ERR... */
    K_HELP,
    K_VERSION,
};

struct opt {
    const char *name;      /* --name; NULL: the library's name of lib */
    const char *arg;       /* its value in --help ("DIR"); NULL: no value */
    enum kind kind;
    int lib;               /* an enum grace_opt (set in o->cfg), or -1 */
    size_t off, size;      /* the field of struct graced_opts, and its size */
    size_t count_off;      /* K_LIST: the int that counts the list */
    int64_t min, max;      /* numbers; K_LIST: max is the list's capacity */
    int64_t def;           /* numbers: the default */
    const char *def_str;   /* K_STR: the default */
    const char *shown;     /* the default as --help tells it, where the value does not
                              ("" for nothing to tell) */
    int (*check)(const char *value, const char **keep); /* more than the kind's
                              rules: 0, or -1 (bad); may keep another string */
    int owned;             /* K_STR: check keeps a malloc'ed string */
    const char *bad;       /* what a bad value is told: "expected a time like 10s" */
    const char *full;      /* K_LIST: the line when full ("at most %d certificates") */
    int limit;             /* a limit: a row in docs/tuning.md */
    int quiet;             /* the bad value is not repeated (it may hold a line end) */
    const char *help;
};

#define F(field) offsetof(struct graced_opts, field), sizeof(((struct graced_opts *)0)->field)
#define LIST(field, count) F(field), offsetof(struct graced_opts, count)
#define NO_FIELD 0, 0
#define LIB(opt, kind_, arg_, help_) \
    {.kind = kind_, .lib = opt, .arg = arg_, .help = help_, .bad = "invalid value", .limit = 1}

/* ---------------------------------------------------------------- checks */

static int check_hostport(const char *a, const char **keep)
{
    char host[256];
    int port;
    (void)keep;
    return graced_parse_hostport(a, host, sizeof(host), &port);
}

static int check_cidr(const char *a, const char **keep)
{
    struct graced_cidr c;
    (void)keep;
    return graced_cidr_parse(a, &c);
}

/* an origin is scheme://host[:port], nothing after it: a trailing '/' or a
 * path would never match what a browser sends */
static int check_origin(const char *a, const char **keep)
{
    (void)keep;
    if (!strcmp(a, "*"))
        return 0;
    if ((strncmp(a, "http://", 7) && strncmp(a, "https://", 8)) || !strstr(a, "://")[3] ||
        strpbrk(strstr(a, "://") + 3, "\r\n, /?#@"))
        return -1;
    return 0;
}

static int check_header_value(const char *a, const char **keep)
{
    (void)keep;
    return !*a || strpbrk(a, "\r\n") ? -1 : 0;
}

/* --metrics: kept normalized, as requests are matched on their decoded path */
static int check_metrics(const char *a, const char **keep)
{
    char *norm = malloc(strlen(a) + 1);
    if (!norm || a[0] != '/' || grace_path_normalize(a, strlen(a), norm, strlen(a) + 1) < 0 ||
        !strcmp(norm, "/") || norm[strlen(norm) - 1] == '/') {
        free(norm);
        return -1;
    }
    *keep = norm;
    return 0;
}

/* --health: compared with the request's decoded path, so given in that form */
static int check_health(const char *a, const char **keep)
{
    char norm[1024];
    ssize_t nl = a[0] == '/' ? grace_path_normalize(a, strlen(a), norm, sizeof(norm)) : -1;
    (void)keep;
    return nl < 0 || strcmp(norm, a) ? -1 : 0;
}

/* ---------------------------------------------------------------- the table */

static const struct opt opts[] = {
    {"listen", "ADDR:PORT", K_LIST, -1, LIST(listen, nlisten), .max = GRACED_MAX_LISTEN,
     .check = check_hostport, .bad = "expected ADDR:PORT or [IPv6]:PORT",
     .full = "at most %d --listen addresses",
     .shown = "127.0.0.1:8080 unless only --tls-listen or --proxy-listen is given",
     .help = "listen here; repeatable; [IPv6]:PORT"},
    {"tls-listen", "ADDR:PORT", K_LIST, -1, LIST(tls_listen, ntls_listen),
     .max = GRACED_MAX_LISTEN, .check = check_hostport,
     .bad = "expected ADDR:PORT or [IPv6]:PORT", .full = "at most %d --tls-listen addresses",
     .help = "listen here for HTTPS; repeatable"},
    {"tls-cert", "FILE", K_LIST, -1, LIST(tls_cert, ncert), .max = GRACED_MAX_CERTS,
     .full = "at most %d certificates", .shown = "",
     .help = "PEM certificate chain; repeatable, each with a --tls-key: the first pair is the "
             "default, the others are chosen by the name the client asks (SNI); SIGHUP reads "
             "them again"},
    {"tls-key", "FILE", K_LIST, -1, LIST(tls_key, nkey), .max = GRACED_MAX_CERTS,
     .full = "at most %d certificates", .shown = "",
     .help = "PEM private key of the --tls-cert of the same rank"},
    {"hsts", "SECONDS", K_INT, -1, F(hsts), .min = 0, .max = INT64_MAX, .def = -1,
     .shown = "off", .bad = "expected a number of seconds",
     .help = "Strict-Transport-Security: max-age=SECONDS on HTTPS responses"},
    {"root", "DIR", K_STR, -1, F(root), .def_str = ".", .shown = "current directory", .help = "serve files from DIR"},
    {"upload-dir", "DIR", K_STR, -1, F(upload_dir),
     .help = "accept PUT /path, POST of forms, DELETE into DIR"},
    {"list-dirs", NULL, K_FLAG, -1, F(list_dirs), .def = 1, .shown = "on",
     .help = "list folders without index.html (HTML, or JSON on Accept: application/json), "
             "with an upload form where uploads land"},
    {"no-list-dirs", NULL, K_OFF, -1, F(list_dirs), .shown = "",
     .help = "no listings: a folder without index.html is 404"},
    {"list-max", "N", K_INT, -1, F(list_max), .min = 1, .max = 10000000, .def = 10000,
     .limit = 1, .help = "entries in one listing; more are cut, and it says so"},
    {"dav-locks", "N", K_INT, -1, F(dav_locks), .min = 1, .max = 1000000, .def = 1024,
     .limit = 1, .help = "WebDAV locks held at once, all workers together; more: 503"},
    {"dav-lock-timeout", "TIME", K_TIME, -1, F(dav_lock_timeout_ms), .min = 1000,
     .max = INT64_C(7) * 24 * 3600 * 1000, .def = 3600000, .bad = "expected a time like 1h",
     .limit = 1, .help = "the longest a WebDAV lock lasts without a refresh (Infinite too)"},
    {"dav-props-max", "SIZE", K_SIZE, -1, F(dav_props_max), .min = 64, .max = 65536,
     .def = 4096, .bad = "a size from 64 to 64K", .limit = 1,
     .help = "bytes of WebDAV dead properties one file keeps; more: 507"},
    {"dav-tree-max", "N", K_INT, -1, F(dav_tree_max), .min = 1, .max = 100000000,
     .def = 100000, .limit = 1,
     .help = "entries one COPY, MOVE over or DELETE of a folder takes; more: 403"},
    {"show-hidden", NULL, K_FLAG, -1, F(show_hidden),
     .help = "list, serve and accept dot-names such as .git"},
    {"no-overwrite", NULL, K_FLAG, -1, F(no_overwrite),
     .help = "uploads never replace a file: 412"},
    {"auth-token-file", "FILE", K_STR, -1, F(token_file),
     .help = "uploads need 'Authorization: Bearer <first line>'"},
    {"stale-upload-age", "TIME", K_TIME, -1, F(stale_upload_age_ms), .min = 0,
     .max = INT64_MAX, .def = 3600000, .bad = "expected a time like 10s", .limit = 1,
     .help = "remove temporary upload files no process holds (a lock) once this old: at start, "
             "then this often"},
    {"upload-expiry", "TIME", K_TIME, -1, F(upload_expiry_ms), .min = 1000,
     .max = INT64_C(366) * 86400000, .def = 86400000, .bad = "expected a time like 24h",
     .limit = 1,
     .help = "an unfinished resumable upload (tus, IETF) nobody has written to for this long "
             "is removed"},
    {"sync-threads", "N", K_INT, -1, F(sync_threads), .min = 1, .max = 64, .def = 2,
     .limit = 1, .help = "threads per worker for uploads' fsync and rename"},
    {"max-body-size", "SIZE", K_SIZE, -1, F(max_body), .min = 0, .max = INT64_MAX,
     .def = INT64_C(1) << 30, .bad = "invalid value", .limit = 1,
     .help = "largest upload, K/M/G suffixes; any other request takes 64K at most"},
    {"workers", "N", K_INT, -1, F(workers), .min = 1, .max = GRACED_MAX_WORKERS, .def = 1,
     .limit = 1, .help = "processes sharing the port with SO_REUSEPORT"},
    {"restart-delay-max", "TIME", K_TIME, -1, F(restart_delay_max_ms), .min = 1,
     .max = INT64_MAX, .def = 10000, .bad = "expected a time like 10s", .limit = 1,
     .help = "a worker that ends early is restarted after 100ms, doubling up to TIME while it "
             "keeps failing"},
    {"access-log", "FILE|-", K_STR, -1, F(access_log),
     .help = "Combined Log Format and the TLS version; - is stdout"},
    {"log-level", "LEVEL", K_LEVEL, -1, F(log_level), .def = LOG_INFO,
     .bad = "error, warn, info or debug", .help = "error, warn, info or debug"},
    {"warn-interval", "TIME", K_TIME, -1, F(warn_interval_ms), .min = 0, .max = INT64_MAX,
     .def = 60000, .bad = "expected a time like 1m", .limit = 1,
     .help = "a warning that repeats (untrusted PROXY peers) is logged at most once per TIME, "
             "with a count; 0: each"},
    {"pid-file", "FILE", K_STR, -1, F(pid_file), .help = "write the main process id here"},
    {"shutdown-timeout", "TIME", K_TIME, -1, F(shutdown_timeout_ms), .min = 0,
     .max = INT64_MAX, .def = 10000, .bad = "expected a time like 10s", .limit = 1,
     .help = "SIGTERM: time for requests in flight; then 503 to those not yet answered"},
    {"health", "PATH", K_STR, -1, F(health_path), .check = check_health,
     .bad = "a plain path starting with /, such as /healthz",
     .help = "GET PATH: 200 while serving, 503 while stopping; no login, not in the access log"},
    {"metrics", "PATH", K_STR, -1, F(metrics_path), .check = check_metrics, .owned = 1,
     .bad = "a path starting with / (and not ending with one), e.g. /metrics",
     .help = "counters of all workers in Prometheus text format at PATH"},
    {"metrics-allow", "CIDR", K_LIST, -1, LIST(metrics_allow, nmetrics_allow),
     .max = GRACED_MAX_LISTEN, .check = check_cidr, .bad = "expected ADDR or ADDR/BITS",
     .shown = "loopback", .help = "who may read --metrics; repeatable"},
    {"users-file", "FILE", K_STR, -1, F(users_file),
     .help = "users, one 'name:crypt-hash:PERMS' a line, PERMS r, rw or rules per path "
             "(/photos:rw,/:r): Basic auth or the page's login for writes (and reads with "
             "--private); SIGHUP reads it again"},
    {"private", NULL, K_FLAG, -1, F(private_read),
     .help = "reading needs a user from --users-file too"},
    {"auth-cache-time", "TIME", K_TIME, -1, F(auth_cache_ms), .min = 0, .max = INT64_MAX,
     .def = 60000, .bad = "expected a time like 10s", .limit = 1,
     .help = "remember a good password this long; 0: never"},
    {"auth-fail-limit", "N", K_INT, -1, F(auth_fail_limit), .min = 1, .max = 1000000,
     .def = 10, .limit = 1, .help = "failed logins a minute per client before 429"},
    {"auth-max-pending", "N", K_INT, -1, F(auth_max_pending), .min = 1, .max = 1000000,
     .def = 16, .limit = 1, .help = "password checks waiting per worker before 503"},
    {"cors", "ORIGIN", K_LIST, -1, LIST(cors, ncors), .max = GRACED_MAX_LISTEN,
     .check = check_origin, .bad = "one origin like https://example.org, or *",
     .help = "share reads with this origin (or *) cross-origin; repeatable"},
    {"cors-write", "ORIGIN", K_LIST, -1, LIST(cors_write, ncors_write),
     .max = GRACED_MAX_LISTEN, .check = check_origin,
     .bad = "one origin like https://example.org, or *",
     .shown = "off: only this site's own pages write",
     .help = "let this origin's pages write and delete too; * warns; repeatable"},
    {"trust-uploads", NULL, K_FLAG, -1, F(trust_uploads), .shown = "off: sandboxed",
     .help = "serve uploaded files as the site's own: their HTML and SVG scripts run with "
             "this origin"},
    {"cache-control", "VALUE", K_STR, -1, F(cache_control), .check = check_header_value,
     .bad = "a header value, e.g. 'max-age=3600'", .quiet = 1,
     .help = "Cache-Control header on static files"},
    {"precompressed", NULL, K_FLAG, -1, F(precompressed),
     .help = "serve NAME.br / NAME.gz for NAME if accepted"},
    {"no-server-header", NULL, K_FLAG, -1, F(no_server_header), .shown = "sent",
     .help = "no 'Server: graced' header"},
    {"proxy-listen", "ADDR:PORT", K_LIST, -1, LIST(proxy_listen, nproxy_listen),
     .max = GRACED_MAX_LISTEN, .check = check_hostport,
     .bad = "expected ADDR:PORT or [IPv6]:PORT", .full = "at most %d --proxy-listen addresses",
     .help = "listen here for connections with a PROXY protocol v1/v2 header from a load "
             "balancer; repeatable"},
    {"proxy-tls-listen", "ADDR:PORT", K_LIST, -1, LIST(proxy_tls_listen, nproxy_tls_listen),
     .max = GRACED_MAX_LISTEN, .check = check_hostport,
     .bad = "expected ADDR:PORT or [IPv6]:PORT",
     .full = "at most %d --proxy-tls-listen addresses",
     .help = "the same, then HTTPS (TLS passed through)"},
    {"proxy-from", "CIDR", K_LIST, -1, LIST(proxy_from, nproxy_from), .max = GRACED_MAX_LISTEN,
     .check = check_cidr, .bad = "expected ADDR or ADDR/BITS", .shown = "none",
     .help = "load balancers believed; repeatable"},
    {"proxy-timeout", "TIME", K_TIME, -1, F(proxy_timeout_ms), .min = 1, .max = INT64_MAX,
     .def = 5000, .bad = "expected a time like 10s", .limit = 1,
     .help = "time to send the PROXY header"},
    {"backlog", "N", K_INT, -1, F(backlog), .min = 1, .max = 1000000, .def = 511, .limit = 1,
     .help = "listen(2) backlog of each socket"},
    {"search-max", "N", K_INT, -1, F(search_max), .min = 1, .max = INT64_C(1) << 40,
     .def = 100000, .limit = 1,
     .help = "entries one search (?q=) looks at below its folder; then it says it stopped"},
    {"search-time", "TIME", K_TIME, -1, F(search_time_ms), .min = 1, .max = INT64_MAX,
     .def = 2000, .bad = "expected a time like 2s", .limit = 1,
     .help = "time one search may take; then it says it stopped"},
    {"zip-max-files", "N", K_INT, -1, F(zip_max_files), .min = 0, .max = INT64_C(1) << 40,
     .def = 100000, .limit = 1,
     .help = "files and folders in one folder's zip (?zip); more: 409 before anything is "
             "sent; 0: no zips"},
    {"zip-max-size", "SIZE", K_SIZE, -1, F(zip_max_size), .min = 0, .max = INT64_MAX,
     .def = INT64_C(64) << 30, .bad = "invalid value", .limit = 1,
     .help = "bytes of files in one folder's zip; more: 409 before anything is sent"},
    {"session-time", "TIME", K_TIME, -1, F(session_time_ms), .min = 1000, .max = INT64_MAX,
     .def = 12 * 3600000, .bad = "expected a time like 12h", .limit = 1,
     .help = "a login on the page (--users-file) lasts this long; logging out ends it"},
    {"max-sessions", "N", K_INT, -1, F(max_sessions), .min = 1, .max = 1000000, .def = 1000,
     .limit = 1, .help = "page logins kept at once, all workers; the oldest ends first"},
    {"help", NULL, K_HELP, -1, NO_FIELD, .shown = "", .help = "this text (also -h)"},
    {"version", NULL, K_VERSION, -1, NO_FIELD, .shown = "",
     .help = "graced's and libgracehttp's versions"},
    /* the library's, in the order of enum grace_opt; its max-body-size is
     * graced's for uploads (above), and reuseport is not graced's to set:
     * graced opens its sockets itself (--workers) */
    LIB(GRACE_OPT_MAX_REQUEST_LINE, K_SIZE, "SIZE", "request line; longer: 414"),
    LIB(GRACE_OPT_MAX_HEADER_BYTES, K_SIZE, "SIZE", "header section; larger: 431"),
    LIB(GRACE_OPT_MAX_HEADER_FIELDS, K_COUNT, "N", "header lines; more: 431"),
    LIB(GRACE_OPT_MAX_TRAILER_BYTES, K_SIZE, "SIZE", "trailer section of a body (HTTP/1.1 chunked, HTTP/2); larger: 431"),
    LIB(GRACE_OPT_MAX_CONNECTIONS, K_COUNT, "N", "connections at once; at it, accepting pauses"),
    LIB(GRACE_OPT_HEADER_TIMEOUT, K_TIME, "TIME", "the whole header section"),
    LIB(GRACE_OPT_BODY_TIMEOUT, K_TIME, "TIME", "a body that sends nothing this long"),
    LIB(GRACE_OPT_WRITE_TIMEOUT, K_TIME, "TIME", "an answer that makes no write progress"),
    LIB(GRACE_OPT_KEEPALIVE_TIMEOUT, K_TIME, "TIME", "idle between requests"),
    LIB(GRACE_OPT_OUTPUT_HIGH_WATER, K_SIZE, "SIZE",
        "a connection's output above which its input is not read"),
    LIB(GRACE_OPT_DRAIN_LIMIT, K_SIZE, "SIZE",
        "unread body discarded to keep the connection; 0: none"),
    LIB(GRACE_OPT_LINGER, K_ONOFF, "on|off",
        "the graceful close after an early answer (off: for comparisons only)"),
    LIB(GRACE_OPT_LINGER_TIMEOUT, K_TIME, "TIME", "lingering: silence from the client"),
    LIB(GRACE_OPT_LINGER_TIME, K_TIME, "TIME",
        "lingering: in all, unless the client keeps up --linger-min-rate"),
    LIB(GRACE_OPT_LINGER_BYTES, K_SIZE, "SIZE", "lingering: bytes discarded; 0: no cap"),
    LIB(GRACE_OPT_MAX_LINGERING, K_COUNT, "N", "connections lingering at once"),
    LIB(GRACE_OPT_STOP_LINGER_TIME, K_TIME, "TIME", "a stop's lingers end this long after its deadline"),
    LIB(GRACE_OPT_DRAIN_TIME, K_TIME, "TIME", "discarding a body's remainder: in all"),
    LIB(GRACE_OPT_LINGER_MIN_RATE, K_SIZE, "SIZE",
        "bytes/s a client still sending its body must keep up past --linger-time"),
    LIB(GRACE_OPT_LINGER_MAX_TIME, K_TIME, "TIME", "lingering: the hard bound"),
    LIB(GRACE_OPT_ACCEPT_RETRY, K_TIME, "TIME", "out of file descriptors: accept again after"),
    LIB(GRACE_OPT_TLS_HANDSHAKE_TIMEOUT, K_TIME, "TIME", "the TLS handshake, from accept"),
    LIB(GRACE_OPT_OUTPUT_LOW_WATER, K_SIZE, "SIZE",
        "a paused writer resumes at or below this much output"),
    LIB(GRACE_OPT_STREAM_IDLE_TIMEOUT, K_TIME, "TIME",
        "an upgraded stream that moves no byte either way"),
    LIB(GRACE_OPT_BODY_MIN_RATE, K_SIZE, "SIZE",
        "bytes/s a body must average over each --body-timeout; 0: no floor"),
    LIB(GRACE_OPT_STOP_IDLE_GRACE, K_TIME, "TIME",
        "during a stop: an idle connection is kept this long for its next request"),
    LIB(GRACE_OPT_LINGER_RATE_WINDOW, K_TIME, "TIME",
        "lingering past --linger-time: the rate is judged over this long"),
    LIB(GRACE_OPT_HTTP2, K_ONOFF, "on|off",
        "HTTP/2: offered by ALPN on --tls-listen; off: HTTP/1.1 only (and no h2c)"),
    LIB(GRACE_OPT_H2C, K_ONOFF, "on|off", "HTTP/2 with prior knowledge (h2c) on --listen"),
    LIB(GRACE_OPT_H2_MAX_STREAMS, K_COUNT, "N", "HTTP/2 streams open at once per connection"),
    LIB(GRACE_OPT_H2_STREAM_WINDOW, K_SIZE, "SIZE",
        "HTTP/2 body bytes a stream may send ahead of what is read"),
    LIB(GRACE_OPT_H2_CONN_WINDOW, K_SIZE, "SIZE", "the same for a connection's streams together"),
    LIB(GRACE_OPT_H2_HPACK_TABLE, K_SIZE, "SIZE", "HPACK table a client may make us keep"),
    LIB(GRACE_OPT_H2_RESET_RATE, K_COUNT, "N",
        "HTTP/2 streams a client may cancel per second before GOAWAY(ENHANCE_YOUR_CALM)"),
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *opt_name(const struct opt *r)
{
    return r->name ? r->name : grace_opt_name((enum grace_opt)r->lib);
}

int graced_option_info(int i, struct graced_option_info *info)
{
    if (i < 0 || (size_t)i >= NOPTS)
        return -1;
    info->name = opt_name(&opts[i]);
    info->arg = opts[i].arg;
    info->lib = opts[i].lib;
    info->limit = opts[i].limit;
    return 0;
}

/* ---------------------------------------------------------------- values */

/* "64K", "1M", "1G", "1048576" -> bytes; -1 if malformed */
static int64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t mul = 1;
    if (errno || end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': mul = INT64_C(1) << 10; end++; break;
    case 'm': case 'M': mul = INT64_C(1) << 20; end++; break;
    case 'g': case 'G': mul = INT64_C(1) << 30; end++; break;
    }
    if (*end && strcmp(end, "B") && strcmp(end, "iB"))
        return -1;
    if (v > INT64_MAX / mul)
        return -1;
    return v * mul;
}

/* "10s", "500ms", "2m", "24h", "10" (seconds) -> milliseconds; -1 if malformed */
static int64_t parse_time_ms(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    if (!strcmp(end, "ms"))
        return (int64_t)v;
    if (!*end || !strcmp(end, "s"))
        return (int64_t)(v * 1000);
    if (!strcmp(end, "m"))
        return (int64_t)(v * 60000);
    if (!strcmp(end, "h"))
        return (int64_t)(v * 3600000);
    return -1;
}

/* a whole number; *ok 0 if malformed */
static int64_t parse_int(const char *s, int *ok)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    *ok = !errno && end != s && !*end;
    return v;
}

static const char *const levels[] = {"error", "warn", "info", "debug"};

static void *field(struct graced_opts *o, const struct opt *r)
{
    return (char *)o + r->off;
}

static void set_num(struct graced_opts *o, const struct opt *r, int64_t v)
{
    if (r->size == sizeof(int))
        *(int *)field(o, r) = (int)v;
    else
        *(int64_t *)field(o, r) = v;
}

static int64_t get_num(const struct graced_opts *o, const struct opt *r)
{
    if (r->lib >= 0)
        return grace_config_get(o->cfg, (enum grace_opt)r->lib);
    if (r->size == sizeof(int))
        return *(const int *)((const char *)o + r->off);
    return *(const int64_t *)((const char *)o + r->off);
}

/* One value for row r: 0, or -1 after one line on stderr. */
static int take(struct graced_opts *o, const struct opt *r, const char *a)
{
    const char *keep = a;
    int64_t v = -1;
    int ok = 1;

    if (r->kind == K_LIST && *(int *)((char *)o + r->count_off) == r->max) {
        fprintf(stderr, "graced: ");
        fprintf(stderr, r->full ? r->full : "at most %d --%s", (int)r->max, opt_name(r));
        fprintf(stderr, "\n");
        return -1;
    }
    switch (r->kind) {
    case K_FLAG:
        set_num(o, r, 1);
        return 0;
    case K_OFF:
        set_num(o, r, 0);
        return 0;
    case K_STR:
    case K_LIST:
        ok = !r->check || r->check(a, &keep) == 0;
        break;
    case K_INT:
        v = parse_int(a, &ok);
        break;
    case K_TIME:
        ok = (v = parse_time_ms(a)) >= 0;
        break;
    case K_SIZE:
    case K_COUNT:
        ok = (v = parse_size(a)) >= 0;
        break;
    case K_ONOFF:
        v = !strcmp(a, "on") ? 1 : !strcmp(a, "off") ? 0 : -1;
        ok = v >= 0;
        break;
    case K_LEVEL:
        for (int i = 0; i < 4; i++)
            if (!strcmp(a, levels[i]))
                v = i;
        ok = v >= 0;
        break;
    default:
        return 0;
    }
    if (ok && r->lib >= 0)
        ok = grace_config_set(o->cfg, (enum grace_opt)r->lib, v) == 0;
    else if (ok && (r->kind == K_INT || r->kind == K_TIME || r->kind == K_SIZE))
        ok = v >= r->min && v <= r->max;
    if (ok && r->lib == GRACE_OPT_HTTP2 && !v) /* HTTP/1.1 only, TLS and plain */
        grace_config_set(o->cfg, GRACE_OPT_H2C, 0);
    if (!ok) {
        char bad[64];
        if (!r->bad)
            snprintf(bad, sizeof(bad), "a number from %lld to %lld", (long long)r->min,
                     (long long)r->max);
        if (r->quiet)
            fprintf(stderr, "graced: --%s: %s\n", opt_name(r), r->bad ? r->bad : bad);
        else
            fprintf(stderr, "graced: --%s %s: %s\n", opt_name(r), a, r->bad ? r->bad : bad);
        return -1;
    }
    if (r->kind == K_STR) {
        if (r->owned) /* the last one given counts */
            free((char *)*(const char **)field(o, r));
        *(const char **)field(o, r) = keep;
    } else if (r->kind == K_LIST) {
        int *n = (int *)((char *)o + r->count_off);
        ((const char **)field(o, r))[(*n)++] = keep;
    } else if (r->lib < 0) {
        set_num(o, r, v);
    }
    return 0;
}

/* ---------------------------------------------------------------- --help */

/* a time in the largest unit that shows it whole: 1h, 10m, 30s, 500ms */
static void show_time(int64_t ms, char *out, size_t n)
{
    if (ms && ms % 3600000 == 0)
        snprintf(out, n, "%lldh", (long long)(ms / 3600000));
    else if (ms && ms % 60000 == 0)
        snprintf(out, n, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, n, "%lldms", (long long)ms);
}

static void show_size(int64_t b, char *out, size_t n)
{
    static const char unit[] = "GMK";
    for (int i = 0; i < 3; i++) {
        int64_t u = INT64_C(1) << (10 * (3 - i));
        if (b && b % u == 0) {
            snprintf(out, n, "%lld%c", (long long)(b / u), unit[i]);
            return;
        }
    }
    snprintf(out, n, "%lld", (long long)b);
}

/* The default of row r as --help shows it ("" for none). */
static void show_default(const struct opt *r, const struct graced_opts *o, char *out, size_t n)
{
    int64_t v = r->kind >= K_INT && r->kind <= K_LEVEL ? get_num(o, r) : 0;
    out[0] = '\0';
    if (r->shown) {
        snprintf(out, n, "%s", r->shown);
        return;
    }
    switch (r->kind) {
    case K_INT: case K_COUNT: snprintf(out, n, "%lld", (long long)v); break;
    case K_TIME: show_time(v, out, n); break;
    case K_SIZE: show_size(v, out, n); break;
    case K_ONOFF: snprintf(out, n, "%s", v ? "on" : "off"); break;
    case K_LEVEL: snprintf(out, n, "%s", levels[v]); break;
    default: snprintf(out, n, "off"); break; /* flags, strings, lists */
    }
}

/* words wrapped into lines that start at column 27 and end by column 79 */
static void wrapped(FILE *out, const char *text, size_t col)
{
    const size_t indent = 27, width = 79;
    while (*text) {
        size_t w = strcspn(text, " ");
        if (col > indent && col + 1 + w > width) {
            fprintf(out, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fwrite(text, 1, w, out);
        col += w;
        text += w;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

static void usage(FILE *out, const struct graced_opts *o)
{
    fprintf(out, "usage: graced [options]\n"
                 "Serve files and accept uploads (HTTP/1.1, HTTP/2); early answers are never lost.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *r = &opts[i];
        char left[64], def[96], text[512];
        int n;
        if (r->lib >= 0 && (i == 0 || opts[i - 1].lib < 0))
            fprintf(out, "\nLibrary limits and timeouts (docs/tuning.md); TIME takes ms, s, m or h\n"
                         "(bare: s), SIZE K, M or G:\n");
        n = snprintf(left, sizeof(left), "  --%s%s%s", opt_name(r), r->arg ? " " : "",
                     r->arg ? r->arg : "");
        show_default(r, o, def, sizeof(def));
        snprintf(text, sizeof(text), "%s%s%s%s", r->help, *def ? " (" : "", def, *def ? ")" : "");
        if (n <= 26) {
            fprintf(out, "%-26s ", left);
            wrapped(out, text, 27);
        } else {
            fprintf(out, "%s\n%27s", left, "");
            wrapped(out, text, 27);
        }
    }
}

/* ---------------------------------------------------------------- parsing */

int graced_parse_options(struct graced_opts *o, int argc, char **argv)
{
    struct option lo[NOPTS + 1];
    int c;

    memset(o, 0, sizeof(*o));
    o->cfg = grace_config_new();
    if (!o->cfg) {
        fprintf(stderr, "graced: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *r = &opts[i];
        if (r->kind == K_STR && r->def_str)
            *(const char **)field(o, r) = r->def_str;
        else if (r->lib < 0 && r->size && r->kind != K_STR && r->kind != K_LIST &&
                 r->kind != K_OFF) /* its flag's row has the default */
            set_num(o, r, r->def);
        lo[i].name = opt_name(r);
        lo[i].has_arg = r->arg ? required_argument : no_argument;
        lo[i].flag = NULL;
        lo[i].val = 256 + (int)i;
    }
    memset(&lo[NOPTS], 0, sizeof(lo[NOPTS]));

    opterr = 0;
    optind = 1;
    /* leading ':': a missing value is ':', an unknown option '?' */
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        const struct opt *r = c >= 256 ? &opts[c - 256] : NULL;
        if (c == 'h' || (r && r->kind == K_HELP)) {
            usage(stdout, o);
            return 1;
        }
        if (r && r->kind == K_VERSION) {
            printf("graced %s (libgracehttp %s)\n", GRACE_VERSION_STRING, grace_version());
            return 1;
        }
        if (c == ':') {
            fprintf(stderr, "graced: option %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        }
        if (c == '?') {
            if (optopt && optopt < 256) /* an unknown short option */
                fprintf(stderr, "graced: unknown option -%c (see --help)\n", optopt);
            else
                fprintf(stderr, "graced: unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        }
        if (take(o, r, optarg) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "graced: unexpected argument %s (see --help)\n", argv[optind]);
        return -1;
    }
    /* what one option asks of another */
    if (o->ncert != o->nkey) {
        fprintf(stderr, "graced: %d --tls-cert but %d --tls-key: give them in pairs\n", o->ncert,
                o->nkey);
        return -1;
    }
    if (o->ntls_listen && !o->ncert) {
        fprintf(stderr, "graced: --tls-listen %s needs --tls-cert FILE and --tls-key FILE\n",
                o->tls_listen[0]);
        return -1;
    }
    if (o->token_file && !o->upload_dir) {
        fprintf(stderr, "graced: --auth-token-file %s guards uploads: it needs --upload-dir DIR\n",
                o->token_file);
        return -1;
    }
    if (o->nproxy_tls_listen && !o->ncert) {
        fprintf(stderr, "graced: --proxy-tls-listen %s needs --tls-cert FILE and --tls-key FILE\n",
                o->proxy_tls_listen[0]);
        return -1;
    }
    if (o->private_read && !o->users_file) {
        fprintf(stderr, "graced: --private needs --users-file FILE\n");
        return -1;
    }
    if (o->nlisten == 0 && o->ntls_listen == 0 && o->nproxy_listen == 0 &&
        o->nproxy_tls_listen == 0) {
        o->listen[o->nlisten++] = "127.0.0.1:8080";
        o->listen_default = 1;
    }
    /* uploads raise the limit for themselves (route.c); everything else
     * needs no body, so a client cannot make us read one */
    grace_config_set(o->cfg, GRACE_OPT_MAX_BODY_SIZE,
                     o->max_body < GRACED_OTHER_BODY ? o->max_body : GRACED_OTHER_BODY);
    return 0;
}
