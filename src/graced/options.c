/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * options.c - graced's command line. Every library limit and timeout is an
 * option under its documented name (grace_opt_name()), so the daemon and
 * docs/tuning.md never drift apart.
 */
#include "graced.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum {
    O_LISTEN = 256, O_ROOT, O_UPLOAD_DIR, O_TOKEN_FILE, O_WORKERS, O_ACCESS_LOG,
    O_LOG_LEVEL, O_PID_FILE, O_SHUTDOWN_TIMEOUT, O_METRICS, O_HELP, O_VERSION,
    O_TLS_LISTEN, O_TLS_CERT, O_TLS_KEY, O_HSTS, O_STALE_UPLOAD_AGE, O_RESTART_DELAY_MAX,
    O_LIST_DIRS, O_SHOW_HIDDEN, O_NO_OVERWRITE, O_LIST_MAX,
    O_USERS_FILE, O_PRIVATE, O_AUTH_CACHE_TIME, O_AUTH_FAIL_LIMIT, O_CORS, O_CACHE_CONTROL,
    O_PRECOMPRESSED, O_NO_SERVER_HEADER, O_METRICS_ALLOW, O_PROXY_LISTEN, O_PROXY_FROM,
    O_PROXY_TIMEOUT, O_BACKLOG, O_PROXY_TLS_LISTEN, O_AUTH_MAX_PENDING, O_WARN_INTERVAL,
    O_CORS_WRITE, O_TRUST_UPLOADS, O_HEALTH,
    O_LIB = 512 /* + enum grace_opt */
};

/* Library options that take a time in milliseconds. */
static int is_time_opt(int opt)
{
    switch (opt) {
    case GRACE_OPT_HEADER_TIMEOUT:
    case GRACE_OPT_BODY_TIMEOUT:
    case GRACE_OPT_WRITE_TIMEOUT:
    case GRACE_OPT_KEEPALIVE_TIMEOUT:
    case GRACE_OPT_LINGER_TIMEOUT:
    case GRACE_OPT_LINGER_TIME:
    case GRACE_OPT_STOP_LINGER_TIME:
    case GRACE_OPT_DRAIN_TIME:
    case GRACE_OPT_LINGER_MAX_TIME:
    case GRACE_OPT_ACCEPT_RETRY:
    case GRACE_OPT_TLS_HANDSHAKE_TIMEOUT:
    case GRACE_OPT_STREAM_IDLE_TIMEOUT:
    case GRACE_OPT_STOP_IDLE_GRACE:
    case GRACE_OPT_LINGER_RATE_WINDOW:
        return 1;
    default:
        return 0;
    }
}

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

static void usage(FILE *out, const struct grace_config *cfg)
{
    fprintf(out,
            "usage: graced [options]\n"
            "Serve files and accept uploads over HTTP/1.1; early answers are never lost.\n\n"
            "  --listen ADDR:PORT       listen here; repeatable; [IPv6]:PORT (127.0.0.1:8080\n"
            "                           unless only --tls-listen is given)\n"
            "  --tls-listen ADDR:PORT   listen here for HTTPS; repeatable (off)\n"
            "  --tls-cert FILE          PEM certificate chain; repeatable, each with a\n"
            "  --tls-key FILE           PEM private key: the first pair is the default, the\n"
            "                           others are chosen by the name the client asks (SNI);\n"
            "                           SIGHUP reads them again\n"
            "  --hsts SECONDS           Strict-Transport-Security: max-age=SECONDS on HTTPS\n"
            "                           responses (off)\n"
            "  --root DIR               serve files from DIR (current directory)\n"
            "  --upload-dir DIR         accept PUT /path, POST of forms, DELETE into DIR (off)\n"
            "  --list-dirs              list folders without index.html (HTML, or JSON on\n"
            "                           Accept: application/json), with an upload form\n"
            "                           where uploads land (off)\n"
            "  --list-max N             entries in one listing; more are cut, and it says so\n"
            "                           (10000)\n"
            "  --show-hidden            list, serve and accept dot-names such as .git (off)\n"
            "  --no-overwrite           uploads never replace a file: 412 (off)\n"
            "  --auth-token-file FILE   uploads need 'Authorization: Bearer <first line>' (off)\n"
            "  --stale-upload-age TIME  at start, remove temporary upload files this old even\n"
            "                           if the PID in their name is alive (24h)\n"
            "  --max-body-size SIZE     largest upload, K/M/G suffixes (1G)\n"
            "  --workers N              processes sharing the port with SO_REUSEPORT (1)\n"
            "  --restart-delay-max TIME a worker that ends early is restarted after 100ms,\n"
            "                           doubling up to TIME while it keeps failing (10s)\n"
            "  --access-log FILE|-      Combined Log Format and the TLS version; - is stdout\n"
            "                           (off)\n"
            "  --log-level LEVEL        error, warn, info or debug (info)\n"
            "  --warn-interval TIME     a warning that repeats (untrusted PROXY peers) is\n"
            "                           logged at most once per TIME, with a count; 0: each\n"
            "                           (1m)\n"
            "  --pid-file FILE          write the main process id here (off)\n"
            "  --shutdown-timeout TIME  SIGTERM: time for requests in flight; then 503 to\n"
            "                           those not yet answered (10s)\n"
            "  --health PATH            GET PATH: 200 while serving, 503 while stopping; no\n"
            "                           login, not in the access log (off)\n"
            "  --metrics PATH           counters of all workers in Prometheus text format\n"
            "                           at PATH (off)\n"
            "  --metrics-allow CIDR     who may read --metrics; repeatable (loopback)\n"
            "  --users-file FILE        users, one 'name:crypt-hash:r|rw' a line: Basic auth\n"
            "                           for uploads (and reads with --private); SIGHUP\n"
            "                           reads it again (off)\n"
            "  --private                reading needs a user from --users-file too (off)\n"
            "  --auth-cache-time TIME   remember a good password this long; 0: never (60s)\n"
            "  --auth-fail-limit N      failed logins a minute per client before 429 (10)\n"
            "  --auth-max-pending N     password checks waiting per worker before 503 (16)\n"
            "  --cors ORIGIN            share reads with this origin (or *) cross-origin;\n"
            "                           repeatable (off)\n"
            "  --cors-write ORIGIN      let this origin's pages write and delete too; * warns;\n"
            "                           repeatable (off: only this site's own pages write)\n"
            "  --trust-uploads          serve uploaded files as the site's own: their HTML and\n"
            "                           SVG scripts run with this origin (off: sandboxed)\n"
            "  --cache-control VALUE    Cache-Control header on static files (off)\n"
            "  --precompressed          serve NAME.br / NAME.gz for NAME if accepted (off)\n"
            "  --no-server-header       no 'Server: graced' header (sent)\n"
            "  --proxy-listen ADDR:PORT listen here for connections with a PROXY protocol\n"
            "                           v1/v2 header from a load balancer; repeatable (off)\n"
            "  --proxy-tls-listen ADDR:PORT  the same, then HTTPS (TLS passed through)\n"
            "  --proxy-from CIDR        load balancers believed; repeatable (none)\n"
            "  --proxy-timeout TIME     time to send the PROXY header (5s)\n"
            "  --backlog N              listen(2) backlog of each socket (511)\n"
            "  -h, --help, --version\n\n"
            "Library limits and timeouts (docs/tuning.md); TIME takes ms, s or m (bare: s):\n");
    for (int i = 0; i < GRACE_OPT__COUNT; i++) {
        const char *n = grace_opt_name(i);
        int64_t d = grace_config_get(cfg, i);
        if (i == GRACE_OPT_MAX_BODY_SIZE || i == GRACE_OPT_REUSEPORT)
            continue; /* --max-body-size above; --workers sets reuseport */
        if (i == GRACE_OPT_LINGER)
            fprintf(out, "  --%-23s %s\n", "linger on|off", d ? "(on)" : "(off)");
        else if (i == GRACE_OPT_HTTP2) /* off: no h2 by ALPN, nor h2c */
            fprintf(out, "  --%-23s %s\n", "http2 on|off", d ? "(on)" : "(off)");
        else if (i == GRACE_OPT_H2C)
            fprintf(out, "  --%-23s %s\n", "h2c on|off", d ? "(on)" : "(off)");
        else if (is_time_opt(i) && d % 1000 == 0)
            fprintf(out, "  --%-23s (%llds)\n", n, (long long)(d / 1000));
        else if (is_time_opt(i))
            fprintf(out, "  --%-23s (%lldms)\n", n, (long long)d);
        else
            fprintf(out, "  --%-23s (%lld)\n", n, (long long)d);
    }
}

/* One more ADDR:PORT for a listen option: checked now, resolved later. */
static int add_listen(const char *name, const char *a, const char **list, int *cnt)
{
    char host[256];
    int port;
    if (*cnt == GRACED_MAX_LISTEN) {
        fprintf(stderr, "graced: at most %d %s addresses\n", GRACED_MAX_LISTEN, name);
        return -1;
    }
    if (graced_parse_hostport(a, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "graced: %s %s: expected ADDR:PORT or [IPv6]:PORT\n", name, a);
        return -1;
    }
    list[(*cnt)++] = a;
    return 0;
}

int graced_parse_options(struct graced_opts *o, int argc, char **argv)
{
    static struct option base_opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"tls-listen", required_argument, NULL, O_TLS_LISTEN},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"hsts", required_argument, NULL, O_HSTS},
        {"root", required_argument, NULL, O_ROOT},
        {"upload-dir", required_argument, NULL, O_UPLOAD_DIR},
        {"auth-token-file", required_argument, NULL, O_TOKEN_FILE},
        {"workers", required_argument, NULL, O_WORKERS},
        {"access-log", required_argument, NULL, O_ACCESS_LOG},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"pid-file", required_argument, NULL, O_PID_FILE},
        {"shutdown-timeout", required_argument, NULL, O_SHUTDOWN_TIMEOUT},
        {"metrics", required_argument, NULL, O_METRICS},
        {"health", required_argument, NULL, O_HEALTH},
        {"stale-upload-age", required_argument, NULL, O_STALE_UPLOAD_AGE},
        {"restart-delay-max", required_argument, NULL, O_RESTART_DELAY_MAX},
        {"list-dirs", no_argument, NULL, O_LIST_DIRS},
        {"list-max", required_argument, NULL, O_LIST_MAX},
        {"show-hidden", no_argument, NULL, O_SHOW_HIDDEN},
        {"no-overwrite", no_argument, NULL, O_NO_OVERWRITE},
        {"metrics-allow", required_argument, NULL, O_METRICS_ALLOW},
        {"users-file", required_argument, NULL, O_USERS_FILE},
        {"private", no_argument, NULL, O_PRIVATE},
        {"auth-cache-time", required_argument, NULL, O_AUTH_CACHE_TIME},
        {"auth-fail-limit", required_argument, NULL, O_AUTH_FAIL_LIMIT},
        {"auth-max-pending", required_argument, NULL, O_AUTH_MAX_PENDING},
        {"cors", required_argument, NULL, O_CORS},
        {"cors-write", required_argument, NULL, O_CORS_WRITE},
        {"trust-uploads", no_argument, NULL, O_TRUST_UPLOADS},
        {"cache-control", required_argument, NULL, O_CACHE_CONTROL},
        {"precompressed", no_argument, NULL, O_PRECOMPRESSED},
        {"no-server-header", no_argument, NULL, O_NO_SERVER_HEADER},
        {"proxy-listen", required_argument, NULL, O_PROXY_LISTEN},
        {"proxy-tls-listen", required_argument, NULL, O_PROXY_TLS_LISTEN},
        {"proxy-from", required_argument, NULL, O_PROXY_FROM},
        {"proxy-timeout", required_argument, NULL, O_PROXY_TIMEOUT},
        {"warn-interval", required_argument, NULL, O_WARN_INTERVAL},
        {"backlog", required_argument, NULL, O_BACKLOG},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
    };
    enum { NBASE = sizeof(base_opts) / sizeof(base_opts[0]) };
    struct option opts[NBASE + GRACE_OPT__COUNT + 1];
    int n = NBASE, c;

    memset(o, 0, sizeof(*o));
    o->root = ".";
    o->max_body = INT64_C(1) << 30;
    o->workers = 1;
    o->log_level = LOG_INFO;
    o->shutdown_timeout_ms = 10000;
    o->hsts = -1;
    o->stale_upload_age_ms = INT64_C(24) * 3600 * 1000;
    o->restart_delay_max_ms = 10000;
    o->list_max = 10000;
    o->auth_cache_ms = 60000;
    o->auth_fail_limit = 10;
    o->auth_max_pending = 16;
    o->proxy_timeout_ms = 5000;
    o->warn_interval_ms = 60000;
    o->backlog = 511;
    o->cfg = grace_config_new();
    if (!o->cfg) {
        fprintf(stderr, "graced: out of memory\n");
        return -1;
    }
    memcpy(opts, base_opts, sizeof(base_opts));
    for (int i = 0; i < GRACE_OPT__COUNT; i++) {
        opts[n].name = grace_opt_name(i);
        opts[n].has_arg = required_argument;
        opts[n].flag = NULL;
        opts[n].val = O_LIB + i;
        n++;
    }
    memset(&opts[n], 0, sizeof(opts[n]));

    opterr = 0;
    optind = 1;
    /* leading ':': a missing value is ':', an unknown option '?' */
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case O_LISTEN:
            if (add_listen("--listen", a, o->listen, &o->nlisten) < 0)
                return -1;
            break;
        case O_TLS_LISTEN:
            if (add_listen("--tls-listen", a, o->tls_listen, &o->ntls_listen) < 0)
                return -1;
            break;
        case O_TLS_CERT:
        case O_TLS_KEY: {
            int *cnt = c == O_TLS_CERT ? &o->ncert : &o->nkey;
            if (*cnt == GRACED_MAX_CERTS) {
                fprintf(stderr, "graced: at most %d certificates\n", GRACED_MAX_CERTS);
                return -1;
            }
            (c == O_TLS_CERT ? o->tls_cert : o->tls_key)[(*cnt)++] = a;
            break;
        }
        case O_HSTS: {
            char *end;
            long long v;
            errno = 0;
            v = strtoll(a, &end, 10);
            if (errno || end == a || *end || v < 0) {
                fprintf(stderr, "graced: --hsts %s: expected a number of seconds\n", a);
                return -1;
            }
            o->hsts = v;
            break;
        }
        case O_LIST_DIRS: o->list_dirs = 1; break;
        case O_SHOW_HIDDEN: o->show_hidden = 1; break;
        case O_NO_OVERWRITE: o->no_overwrite = 1; break;
        case O_LIST_MAX: {
            char *end;
            long long v;
            errno = 0;
            v = strtoll(a, &end, 10);
            if (errno || end == a || *end || v < 1 || v > 10000000) {
                fprintf(stderr, "graced: --list-max %s: a number from 1 to 10000000\n", a);
                return -1;
            }
            o->list_max = v;
            break;
        }
        case O_PROXY_LISTEN:
            if (add_listen("--proxy-listen", a, o->proxy_listen, &o->nproxy_listen) < 0)
                return -1;
            break;
        case O_PROXY_TLS_LISTEN:
            if (add_listen("--proxy-tls-listen", a, o->proxy_tls_listen, &o->nproxy_tls_listen) < 0)
                return -1;
            break;
        case O_PROXY_FROM:
        case O_METRICS_ALLOW:
        case O_CORS_WRITE:
        case O_CORS: {
            int cors = c == O_CORS || c == O_CORS_WRITE;
            const char *name = c == O_PROXY_FROM ? "--proxy-from" : c == O_CORS ? "--cors"
                               : c == O_CORS_WRITE ? "--cors-write" : "--metrics-allow";
            int *cnt = c == O_PROXY_FROM ? &o->nproxy_from : c == O_CORS ? &o->ncors
                       : c == O_CORS_WRITE ? &o->ncors_write : &o->nmetrics_allow;
            const char **list = c == O_PROXY_FROM ? o->proxy_from : c == O_CORS ? o->cors
                                : c == O_CORS_WRITE ? o->cors_write : o->metrics_allow;
            struct graced_cidr cidr;
            if (*cnt == GRACED_MAX_LISTEN) {
                fprintf(stderr, "graced: at most %d %s\n", GRACED_MAX_LISTEN, name);
                return -1;
            }
            if (!cors && graced_cidr_parse(a, &cidr) < 0) {
                fprintf(stderr, "graced: %s %s: expected ADDR or ADDR/BITS\n", name, a);
                return -1;
            }
            /* an origin is scheme://host[:port], nothing after it: a trailing
             * '/' or a path would never match what a browser sends */
            if (cors && strcmp(a, "*") &&
                ((strncmp(a, "http://", 7) && strncmp(a, "https://", 8)) ||
                 !strstr(a, "://")[3] || strpbrk(strstr(a, "://") + 3, "\r\n, /?#@"))) {
                fprintf(stderr, "graced: %s %s: one origin like https://example.org, or *\n",
                        name, a);
                return -1;
            }
            list[(*cnt)++] = a;
            break;
        }
        case O_USERS_FILE: o->users_file = a; break;
        case O_PRIVATE: o->private_read = 1; break;
        case O_PRECOMPRESSED: o->precompressed = 1; break;
        case O_TRUST_UPLOADS: o->trust_uploads = 1; break;
        case O_NO_SERVER_HEADER: o->no_server_header = 1; break;
        case O_CACHE_CONTROL:
            if (!*a || strpbrk(a, "\r\n")) {
                fprintf(stderr, "graced: --cache-control: a header value, e.g. 'max-age=3600'\n");
                return -1;
            }
            o->cache_control = a;
            break;
        case O_AUTH_CACHE_TIME:
        case O_PROXY_TIMEOUT: {
            int64_t v = parse_time_ms(a);
            if (v < 0 || (c == O_PROXY_TIMEOUT && v == 0)) {
                fprintf(stderr, "graced: %s %s: expected a time like 10s\n",
                        c == O_PROXY_TIMEOUT ? "--proxy-timeout" : "--auth-cache-time", a);
                return -1;
            }
            *(c == O_PROXY_TIMEOUT ? &o->proxy_timeout_ms : &o->auth_cache_ms) = v;
            break;
        }
        case O_AUTH_FAIL_LIMIT:
        case O_AUTH_MAX_PENDING:
        case O_BACKLOG: {
            char *end;
            long v;
            errno = 0;
            v = strtol(a, &end, 10);
            if (errno || end == a || *end || v < 1 || v > 1000000) {
                fprintf(stderr, "graced: %s %s: a number from 1 to 1000000\n",
                        c == O_BACKLOG ? "--backlog" : c == O_AUTH_MAX_PENDING
                                                           ? "--auth-max-pending"
                                                           : "--auth-fail-limit", a);
                return -1;
            }
            *(c == O_BACKLOG ? &o->backlog : c == O_AUTH_MAX_PENDING ? &o->auth_max_pending
                                                                      : &o->auth_fail_limit) = (int)v;
            break;
        }
        case O_ROOT: o->root = a; break;
        case O_UPLOAD_DIR: o->upload_dir = a; break;
        case O_TOKEN_FILE: o->token_file = a; break;
        case O_ACCESS_LOG: o->access_log = a; break;
        case O_PID_FILE: o->pid_file = a; break;
        case O_METRICS: {
            /* kept normalized: requests are matched on their decoded path */
            char *norm = malloc(strlen(a) + 1);
            if (!norm || a[0] != '/' || grace_path_normalize(a, strlen(a), norm, strlen(a) + 1) < 0 ||
                !strcmp(norm, "/") || norm[strlen(norm) - 1] == '/') {
                free(norm);
                fprintf(stderr, "graced: --metrics %s: a path starting with / (and not ending "
                                "with one), e.g. /metrics\n", a);
                return -1;
            }
            free((char *)o->metrics_path);
            o->metrics_path = norm;
            break;
        }
        case O_HEALTH: { /* compared with the request's decoded path */
            char norm[1024];
            ssize_t nl = a[0] == '/' ? grace_path_normalize(a, strlen(a), norm, sizeof(norm)) : -1;
            if (nl < 0 || strcmp(norm, a)) {
                fprintf(stderr, "graced: --health %s: a plain path starting with /, "
                                "such as /healthz\n", a);
                return -1;
            }
            o->health_path = a;
            break;
        }
        case O_WORKERS: {
            char *end;
            long w = strtol(a, &end, 10);
            if (*end || w < 1 || w > GRACED_MAX_WORKERS) {
                fprintf(stderr, "graced: --workers %s: a number from 1 to %d\n", a,
                        GRACED_MAX_WORKERS);
                return -1;
            }
            o->workers = (int)w;
            break;
        }
        case O_LOG_LEVEL: {
            static const char *lv[] = {"error", "warn", "info", "debug"};
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (!strcmp(a, lv[i]))
                    found = i;
            if (found < 0) {
                fprintf(stderr, "graced: --log-level %s: error, warn, info or debug\n", a);
                return -1;
            }
            o->log_level = found;
            break;
        }
        case O_SHUTDOWN_TIMEOUT:
            if ((o->shutdown_timeout_ms = parse_time_ms(a)) < 0) {
                fprintf(stderr, "graced: --shutdown-timeout %s: expected a time like 10s\n", a);
                return -1;
            }
            break;
        case O_WARN_INTERVAL:
            if ((o->warn_interval_ms = parse_time_ms(a)) < 0) {
                fprintf(stderr, "graced: --warn-interval %s: expected a time like 1m\n", a);
                return -1;
            }
            break;
        case O_STALE_UPLOAD_AGE:
        case O_RESTART_DELAY_MAX: {
            int64_t v = parse_time_ms(a);
            if (v < 0 || (c == O_RESTART_DELAY_MAX && v == 0)) {
                fprintf(stderr, "graced: --%s %s: expected a time like 10s\n",
                        c == O_STALE_UPLOAD_AGE ? "stale-upload-age" : "restart-delay-max", a);
                return -1;
            }
            *(c == O_STALE_UPLOAD_AGE ? &o->stale_upload_age_ms : &o->restart_delay_max_ms) = v;
            break;
        }
        case 'h':
        case O_HELP:
            usage(stdout, o->cfg);
            return 1;
        case O_VERSION:
            printf("graced %s (libgracehttp %s)\n", GRACE_VERSION_STRING, grace_version());
            return 1;
        case ':':
            fprintf(stderr, "graced: option %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        case '?':
            if (optopt && optopt < O_LISTEN) /* an unknown short option */
                fprintf(stderr, "graced: unknown option -%c (see --help)\n", optopt);
            else
                fprintf(stderr, "graced: unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        default: {
            int opt = c - O_LIB;
            int64_t v;
            if (opt == GRACE_OPT_LINGER || opt == GRACE_OPT_HTTP2 || opt == GRACE_OPT_H2C)
                v = !strcmp(a, "on") ? 1 : !strcmp(a, "off") ? 0 : -1;
            else if (is_time_opt(opt))
                v = parse_time_ms(a);
            else
                v = parse_size(a);
            if (v < 0 || grace_config_set(o->cfg, opt, v) < 0) {
                fprintf(stderr, "graced: --%s %s: invalid value\n", grace_opt_name(opt), a);
                return -1;
            }
            if (opt == GRACE_OPT_MAX_BODY_SIZE)
                o->max_body = v;
            if (opt == GRACE_OPT_HTTP2 && !v) /* HTTP/1.1 only, TLS and plain */
                grace_config_set(o->cfg, GRACE_OPT_H2C, 0);
            break;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "graced: unexpected argument %s (see --help)\n", argv[optind]);
        return -1;
    }
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
    /* uploads raise the limit for themselves (graced_upload); everything
     * else needs no body, so a client cannot make us read one */
    grace_config_set(o->cfg, GRACE_OPT_MAX_BODY_SIZE,
                     o->max_body < GRACED_OTHER_BODY ? o->max_body : GRACED_OTHER_BODY);
    if (o->workers > 1)
        grace_config_set(o->cfg, GRACE_OPT_REUSEPORT, 1);
    return 0;
}
