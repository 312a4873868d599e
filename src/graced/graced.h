/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * graced.h - shared declarations of the graced daemon. Its files, by the
 * ranks test/graced_layers.sh keeps (calls go down, never in a loop):
 *
 * start, process
 *   main.c     start-up checks, then one worker or the supervisor
 *   supervisor.c  the parent of --workers N: forks, restarts, signals
 *   worker.c   a worker: its loop, its server, its signals, its stop
 * dispatch
 *   route.c    the routes and their tables of methods: which handler, after
 *              which checks (uploads on, Origin, body limit, login)
 * handlers
 *   files.c    GET/HEAD of static files: types, validators, ranges,
 *              precompressed siblings, a small cache
 *   listing.c  directory listings (--list-dirs): HTML with the upload form, JSON
 *   upload.c   PUT (and POST of a raw body): early checks, then into a store
 *   form.c     POST of multipart/form-data to a folder: each file part stored
 *   delete.c   DELETE of a file, or of a folder and all it holds
 *   propfind.c WebDAV PROPFIND: properties of a file or a folder's entries,
 *              streamed
 *   proppatch.c WebDAV PROPPATCH: dead properties set and removed
 *   mkcol.c    WebDAV MKCOL: a new folder
 *   copymove.c WebDAV COPY and MOVE
 *   lock.c     WebDAV LOCK and UNLOCK
 *   resumable.c  resumable uploads: tus 1.0 and the IETF draft (made,
 *              told, appended to, cancelled)
 *   append.c   a request writing a resumable upload: its body into the
 *              upload's file, synced, or stored through a store
 * services
 *   options.c  the table of options: parsing, defaults, --help
 *   sock.c     listening sockets and systemd socket activation
 *   certs.c    --tls-cert/--tls-key: loaded, reloaded on SIGHUP
 *   auth.c     users file, HTTP Basic auth, the upload token: who the
 *              request is, and whether it may go on
 *   perms.c    the users' rules per path (/photos:rw,/:r): graced_may()
 *   web.c      HSTS, Server header, CORS, security headers, who may write
 *              from which origin
 *   guard.c    refusals before any handler: two Origin headers, control
 *              bytes, Content-Range on a whole body
 *   store.c    an upload's file: locked temporary file, write-back, commit
 *              (fsync, rename) on the pool, the sweep of stale ones
 *   partial.c  resumable uploads on disk: their bytes and info files, the
 *              sweep of expired ones
 *   metrics.c  Prometheus /metrics, summed over workers in shared memory;
 *              --health
 *   proxy.c    PROXY protocol v1/v2 listeners
 *   locktab.c  WebDAV locks in shared memory, for every worker
 *   davcond.c  what a write must satisfy: the If header, the locks (412, 423)
 *   props.c    WebDAV dead properties, kept in an extended attribute
 *   davjob.c   a WebDAV write that waits for a job on the pool
 *   notify.c   sd_notify(3) readiness for systemd (Type=notify), no libsystemd
 * base
 *   path.c     URL paths to confined names: graced's rules on the library's
 *              decoding, form filenames, folders, opening below the root
 *   reply.c    a short text answer; does the client want JSON?
 *   escape.c   names escaped for HTML and JSON
 *   etag.c     ETags and the lists that name them (If-Match, If-None-Match)
 *   addr.c     ADDR:PORT and address lists (CIDR)
 *   log.c      error log (levels) and access log (Combined Log Format)
 *   clock.c    the monotonic clock
 *   sink.c     a request's body into a file, the client paused while the
 *              disk is behind
 *   pool.c     a few threads per worker for work that blocks on the disk
 *   multipart.c  a streaming multipart/form-data parser (no I/O)
 *   xml.c      WebDAV's XML: request bodies read (expat), answers written
 *   ifheader.c WebDAV's If header parsed (no I/O)
 *   tree.c     a folder and all it holds: counted, removed (for pool threads)
 *   fields.c   header values: numbers, Booleans, base64, tus metadata,
 *              Content-Disposition's filename (no I/O)
 */
#ifndef GRACED_H
#define GRACED_H

#include <gracehttp.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/stat.h>

struct event_base;
struct evbuffer;

#define GRACED_MAX_LISTEN 16
#define GRACED_MAX_CERTS 16

/* Name prefix of upload temporary files (store.c): never served; removed
 * by the sweep when nobody holds their lock and they are older than
 * --stale-upload-age. */
#define GRACED_TMP_PREFIX ".graced-tmp."
/* The body limit of every request but uploads (which have --max-body-size). */
#define GRACED_OTHER_BODY (64 * 1024)

struct graced_opts {
    const char *listen[GRACED_MAX_LISTEN];
    int nlisten;
    int listen_default;       /* listen[0] is 127.0.0.1:8080: no listener option given */
    const char *tls_listen[GRACED_MAX_LISTEN]; /* --tls-listen */
    int ntls_listen;
    const char *tls_cert[GRACED_MAX_CERTS], *tls_key[GRACED_MAX_CERTS]; /* pairs, in order */
    int ncert, nkey;
    int64_t hsts;             /* --hsts max-age in seconds; -1: off */
    const char *root;
    const char *upload_dir;
    const char *token_file;
    int64_t max_body;
    int workers;
    const char *access_log;
    int log_level;
    const char *pid_file;
    int64_t shutdown_timeout_ms;
    const char *metrics_path;
    const char *health_path;  /* --health: 200 serving, 503 stopping */
    int64_t stale_upload_age_ms; /* --stale-upload-age */
    int64_t upload_expiry_ms; /* --upload-expiry: unfinished resumable uploads */
    int sync_threads;         /* --sync-threads: pool.c threads per worker */
    int64_t restart_delay_max_ms; /* --restart-delay-max */
    int list_dirs;            /* --list-dirs */
    int show_hidden;          /* --show-hidden: dot-names listed and served */
    int no_overwrite;         /* --no-overwrite: every PUT is If-None-Match: * */
    int64_t list_max;         /* --list-max: entries in one listing */
    /* WebDAV */
    int64_t dav_locks;        /* --dav-locks: locks held at once, by all workers */
    int64_t dav_lock_timeout_ms; /* --dav-lock-timeout: the longest a lock lasts */
    int64_t dav_props_max;    /* --dav-props-max: bytes of dead properties a file keeps */
    int64_t dav_tree_max;     /* --dav-tree-max: entries one COPY or DELETE of a folder takes */
    struct grace_config *cfg; /* library options by their documented names */
    /* auth.c */
    const char *users_file;   /* --users-file */
    int private_read;         /* --private: reading needs a user too */
    int64_t auth_cache_ms;    /* --auth-cache-time */
    int auth_fail_limit;      /* --auth-fail-limit, per client address a minute */
    int auth_max_pending;     /* --auth-max-pending: checks waiting per worker */
    /* web.c */
    const char *cors[GRACED_MAX_LISTEN]; /* --cors ORIGIN, "*" for any: reads */
    int ncors;
    const char *cors_write[GRACED_MAX_LISTEN]; /* --cors-write ORIGIN: writes too */
    int ncors_write;
    int trust_uploads;         /* --trust-uploads: uploaded files not sandboxed */
    const char *cache_control; /* --cache-control */
    int precompressed;         /* --precompressed */
    int no_server_header;      /* --no-server-header */
    /* metrics.c, proxy.c */
    const char *metrics_allow[GRACED_MAX_LISTEN]; /* --metrics-allow CIDR */
    int nmetrics_allow;
    const char *proxy_listen[GRACED_MAX_LISTEN];  /* --proxy-listen */
    int nproxy_listen;
    const char *proxy_tls_listen[GRACED_MAX_LISTEN]; /* --proxy-tls-listen */
    int nproxy_tls_listen;
    const char *proxy_from[GRACED_MAX_LISTEN];    /* --proxy-from CIDR */
    int nproxy_from;
    int64_t proxy_timeout_ms; /* --proxy-timeout */
    int64_t warn_interval_ms; /* --warn-interval: repeated warnings at most once per */
    int backlog;              /* --backlog */
    /* the page (issue 19): search.c, zip.c, session.c */
    int64_t search_max;       /* --search-max: entries one search visits */
    int64_t search_time_ms;   /* --search-time */
    int64_t zip_max_files;    /* --zip-max-files: entries of one zip; 0: no zips */
    int64_t zip_max_size;     /* --zip-max-size: bytes of files in one zip */
    int64_t session_time_ms;  /* --session-time: a page login lasts */
    int64_t max_sessions;     /* --max-sessions: logins at once, all workers */
};

struct graced {
    struct graced_opts o;
    struct event_base *base;
    struct grace_server *srv;
    struct grace_tls *tls;   /* this worker's certificates; NULL without TLS */
    int root_fd, upload_fd;  /* O_PATH/O_DIRECTORY handles */
    char *root_real;         /* realpath of the root */
    char *upload_real;       /* files.c: realpath of --upload-dir, once known */
    char *token;             /* --auth-token-file, malloc'ed */
    size_t token_len;
    int worker;              /* 1..N */
    int supervised;          /* one of --workers N > 1: the parent decides */
    unsigned long upload_seq;
    struct graced_fcache *fcache; /* files.c: small files, kept a second */
    struct graced_auth *auth;     /* auth.c: NULL without --users-file */
    struct graced_perms *perms;   /* perms.c: each user's rules (auth.c fills it) */
    struct graced_sessions *sessions; /* session.c: shared by all workers */
    const char *who;              /* auth.c: who the request is, while a handler
                                     that graced_authorize() let through starts
                                     (graced_who()); NULL otherwise */
    struct graced_metrics *metrics; /* metrics.c: shared by all workers */
    struct graced_proxy *proxy;   /* proxy.c: this worker's PROXY listeners */
    int stopping;                 /* a graceful stop began: --health says 503 */
    int64_t stop_at_ms;           /* worker.c: when (graced_mono_ms) */
    int served;                   /* worker.c: the library's stop is done */
    struct graced_pool *pool;     /* pool.c: this worker's threads for the disk */
    struct graced_stores *stores; /* store.c: write-back, the sweep */
    struct graced_locktab *locks; /* locktab.c: WebDAV locks, shared by all workers */
    struct graced_partials *partials; /* partial.c: resumable uploads' folder, sweep */
};

/* options.c: 0 to run, 1 after --help/--version, -1 on error (printed) */
int graced_parse_options(struct graced_opts *o, int argc, char **argv);
/* the table of options, for the tests: row i, or -1 past the end */
struct graced_option_info {
    const char *name;  /* "listen": --listen */
    const char *arg;   /* what its value is ("ADDR:PORT"); NULL: it takes none */
    int lib;           /* the enum grace_opt it sets, or -1 */
    int limit;         /* a limit: a row of docs/tuning.md */
};
int graced_option_info(int i, struct graced_option_info *info);

/* log.c */
enum { LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
void graced_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void graced_log_set_level(int level);
int graced_access_log_open(const char *path);
int graced_access_log_reopen(void);
void graced_access_log_close(void);
void graced_access(const struct grace_response_info *ri, void *arg);
void graced_access_log_skip(const char *path); /* requests for path are not logged (--health) */

/* sock.c: the listening sockets of every worker, opened before forking:
 * each --listen and --tls-listen address (SO_REUSEPORT between workers), or
 * systemd's (by name in LISTEN_FDNAMES: "https"/"tls" speaks TLS, "proxy"
 * expects a PROXY header, "proxy-https" both) */
#define GRACED_MAX_WORKERS 64
#define GRACED_MAX_SOCKS 16
struct graced_socks {
    int fd[GRACED_MAX_WORKERS][GRACED_MAX_SOCKS];
    int tls[GRACED_MAX_SOCKS]; /* socket i of every worker speaks TLS */
    int proxy[GRACED_MAX_SOCKS]; /* socket i expects a PROXY header */
    int per_worker;
    int ntls;                  /* how many of them */
    int systemd;
};
int graced_open_listeners(const struct graced_opts *o, struct graced_socks *s);
void graced_announce(const struct graced_socks *s);

/* files.c */
void graced_serve_file(struct grace_request *req, struct graced *g);
void graced_files_forget(struct graced *g, const char *name);
void graced_files_cache_free(struct graced *g);

/* path.c: decoding flags */
#define GRACED_PATH_WRITE 1     /* refusals worded for writes; UTF-8 and length checked */
#define GRACED_PATH_HIDDEN_OK 2 /* --show-hidden */
/* The request's path as a relative name ("a/b c.txt", "" for the top),
 * from the library's decoded path (grace_request_path_decoded) with
 * graced's rules; 0 or a status: reads 400 (control bytes), 403 (".."),
 * 404 (dot-names, temporary files), 414; writes 400 for any refused name */
int graced_path_of(struct grace_request *req, char *out, size_t outlen, int flags,
                   int *trailing_slash);
/* the same from a raw URL path and its grace_path_normalize() (NULL if it
 * has none: 400) */
int graced_path_decode(const char *raw, const char *norm, char *out, size_t outlen, int flags,
                       int *trailing_slash);
/* a URI a WebDAV header names (Destination, an If header's tag), len
 * bytes: an absolute URI of this server (its authority is the request's
 * Host) or an absolute path, decoded as above. 0, or a status: 400
 * (malformed, a refused name), 502 (another server) */
int graced_path_uri(struct grace_request *req, const char *uri, size_t len, char *out,
                    size_t outlen, int flags, int *trailing_slash);
/* one decoded name: 0 or a status (400 control bytes, 403 "..", dot-names, 404 temp names) */
int graced_name_check(const char *seg, size_t n, int flags);
int graced_utf8_valid(const char *s, size_t n);
/* a client's file name (a form part's filename) made a name graced stores:
 * control bytes and bytes that are not UTF-8 become '_', so does a leading
 * dot (unless flags has GRACED_PATH_HIDDEN_OK); at most 255 bytes. 0, or
 * the status to refuse it with */
int graced_name_sanitise(const char *in, char *out, size_t outlen, int flags);
/* percent-encode a relative path for a URL (keeps '/'); returns the length */
size_t graced_path_encode(const char *in, char *out, size_t outlen);
/* open directory rel[0..len) below top, each segment O_NOFOLLOW, creating
 * missing ones if create: an fd, or a negative errno (-ELOOP: a symlink) */
int graced_path_open_dir(int top, const char *rel, size_t len, int create);
/* For pool threads (it waits for the disk): fsync top and each folder of
 * the folder path rel[0..len) but the last, so that the entry naming each
 * folder on the way is durable (the last folder's own entries are the
 * caller's to sync). 0, or the first negative errno. */
int graced_path_sync_dirs(int top, const char *rel, size_t len);
/* a negative errno of the above or of a file operation -> HTTP status */
int graced_errno_status(int err);
/* is rel (a decoded path below the upload tree, "a/b") graced's own URL,
 * which no upload may take? The option that has it ("--health",
 * "--metrics"), or NULL */
const char *graced_path_reserved(const struct graced *g, const char *rel);
/* open path (relative) below the root, never outside it (a symlink that
 * leads out: EXDEV): the fd, or -1 with errno */
int graced_open_beneath(const struct graced *g, const char *path);
static inline int graced_path_flags(const struct graced *g, int write)
{
    return (write ? GRACED_PATH_WRITE : 0) | (g->o.show_hidden ? GRACED_PATH_HIDDEN_OK : 0);
}

/* fields.c: header values, parsed without I/O */
/* name's value in an application/x-www-form-urlencoded string ('+' a
 * space, %XX), decoded into out; 0, or -1: absent, too long, a NUL byte */
int graced_form_field(const char *form, const char *name, char *out, size_t outlen);
int64_t graced_field_uint(const char *v); /* digits only, at most 18: the number, or -1 */
int graced_field_bool(const char *v);     /* a structured-field Boolean: ?1 1, ?0 0, else -1 */
/* standard base64 (padding optional) of n bytes into out, NUL-terminated:
 * the length decoded, or -1 (not base64, or out too small) */
int graced_b64decode(const char *in, size_t n, char *out, size_t outlen);
/* key's value in tus's Upload-Metadata ("key base64,flag,key2 base64"),
 * decoded into out (a NUL byte becomes 0x01): 1, 0 if absent, -1 if
 * malformed (no value, not base64, too long for out) */
int graced_tus_metadata(const char *md, const char *key, char *out, size_t n);
/* Content-Disposition's file name (RFC 6266): filename*=UTF-8''%XX..., or
 * filename="quoted\"" or filename=token: 1, 0 if none (or cd NULL), -1 if
 * malformed, empty or too long for out */
int graced_disposition_filename(const char *cd, char *out, size_t n);

/* etag.c: the ETag graced gives a file */
void graced_etag(const struct stat *sb, char *out, size_t n);
/* does an ETag list (If-Match, If-None-Match) hold etag? weak: W/ ignored */
int graced_etag_match(const char *list, const char *etag, int weak);
/* A write's preconditions against what is there now: name in dirfd (< 0:
 * the folder does not exist yet). *noreplace: the write may not replace
 * (--no-overwrite, If-None-Match: *). 0, or 409 (a folder), 412. */
int graced_write_conditions(struct grace_request *req, int no_overwrite, int dirfd,
                            const char *name, int *noreplace);
/* t as an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"); out: 30 bytes or more */
void graced_http_date(time_t t, char *out, size_t n);

/* listing.c: answer GET of directory dirfd (rel: its decoded path) */
void graced_list_dir(struct grace_request *req, struct graced *g, const char *rel, int dirfd);

/* page.c: graced's own page (listing.c, search.c, the login page) */
struct graced_page {
    const char *rel;      /* the folder, decoded: "a/b", "" for the top */
    const char *title;    /* before the folder in <title> and <h1>; NULL: "Index of" */
    const char *user;     /* logged in as (--users-file), or NULL */
    int login;            /* offer a login */
    int write;            /* the one asking may write here (the script's buttons) */
    int rights;           /* say beside the user what they may do here (a listing) */
    int token;            /* the upload form asks for the token */
    int tus;              /* uploads go resumable (tus) */
    int hidden;           /* --show-hidden: the script sends dot-names too */
    int search;           /* the search box */
    const char *q;        /* its words, or NULL */
    int64_t max_body;     /* --max-body-size, for the script's messages */
    char nonce[24];       /* graced_web_nonce(): the page's script and style */
};
/* the head, the header (folders on the way, search, who), <main>, <h1> */
void graced_page_begin(struct evbuffer *out, const struct graced_page *p);
/* the status line screen readers announce (id "answer") */
void graced_page_status(struct evbuffer *out);
/* the script, the end */
void graced_page_end(struct evbuffer *out, const struct graced_page *p);
/* a login form posting to ?login; msg: a refusal to show first, or NULL */
void graced_page_login_form(struct evbuffer *out, const char *msg);

/* escape.c: a size for people ("1.5 MiB", "12 B") */
void graced_human_size(int64_t n, char *out, size_t len);
/* escape.c: s as a JSON string (quoted; bytes that are not UTF-8 become U+FFFD) */
void graced_json_str(struct evbuffer *out, const char *s);
/* s escaped for HTML text and attributes (not UTF-8: U+FFFD); control bytes
 * show as \xNN, bidi controls and C1 controls as \uNNNN, never obeyed */
void graced_html_esc(struct evbuffer *out, const char *s);
/* does a name hold what graced_html_esc() shows escaped? bit 1: control
 * bytes (GET refuses such a path), bit 2: bidi or C1 controls */
int graced_name_odd(const char *s);

/* form.c: POST multipart/form-data to a folder */
int graced_is_multipart(struct grace_request *req);
void graced_form_upload(struct grace_request *req, struct graced *g);

/* search.c: GET /folder/?q=words (the route's condition: a q= in the
 * query): names below the folder, on the pool, bounded */
int graced_is_search(struct grace_request *req);
void graced_search(struct grace_request *req, struct graced *g);

/* zip.c: GET /folder/?zip (the route's condition: a zip in the query):
 * the folder as a zip, streamed while it is made */
int graced_is_zip(struct grace_request *req);
void graced_zip(struct grace_request *req, struct graced *g);

/* login.c: the page's login and logout (--users-file): GET ?login, POST
 * ?login (a form: a session cookie), POST ?logout */
int graced_is_login(struct grace_request *req);
int graced_is_logout(struct grace_request *req);
void graced_login_page(struct grace_request *req, struct graced *g);
void graced_login(struct grace_request *req, struct graced *g);
void graced_logout(struct grace_request *req, struct graced *g);

/* delete.c */
void graced_delete(struct grace_request *req, struct graced *g);

/* upload.c */
void graced_upload(struct grace_request *req, struct graced *g);

/* clock.c: CLOCK_MONOTONIC in microseconds, in milliseconds */
int64_t graced_mono_us(void);
int64_t graced_mono_ms(void);
/* resumable.c: tus 1.0 and IETF resumable uploads (docs/graced.8,
 * "Resumable uploads"). The routes' conditions: a tus creation (POST with
 * Tus-Resumable), an IETF one (Upload-Complete with a known
 * Upload-Draft-Interop-Version), a POST standing for a PATCH
 * (X-HTTP-Method-Override); the handlers; OPTIONS' headers. */
int graced_is_tus_create(struct grace_request *req);
int graced_is_ietf_create(struct grace_request *req);
int graced_is_patch_override(struct grace_request *req);
void graced_resumable_create(struct grace_request *req, struct graced *g);
void graced_resumable_head(struct grace_request *req, struct graced *g);
void graced_resumable_patch(struct grace_request *req, struct graced *g);
void graced_resumable_delete(struct grace_request *req, struct graced *g);
void graced_resumable_options(struct grace_request *req, const struct graced *g);

/* pool.c: jobs run on one of a worker's few threads (--sync-threads); then
 * done runs on the event loop, never inside graced_pool_run(). The job is
 * the caller's (embed it) and must live until done has run; work may touch
 * only what the job owns. */
struct graced_job {
    void (*work)(struct graced_job *j); /* on a pool thread */
    void (*done)(struct graced_job *j); /* on the loop, after work */
    struct graced_job *next;            /* the pool's */
};
struct graced_pool *graced_pool_new(struct event_base *base, int threads); /* NULL: errno */
/* queue j; 0 (if no thread can be started, work runs inside this call and
 * done from the loop as always) */
int graced_pool_run(struct graced_pool *p, struct graced_job *j);
int graced_pool_pending(const struct graced_pool *p); /* queued, done not yet run */
/* waits for every job queued: each work, then each done from this call */
void graced_pool_free(struct graced_pool *p);

/* store.c: an upload's file in the making (PUT, form parts, resumable
 * uploads). A locked temporary file in the target's folder (or, adopted,
 * a resumable upload's in partial.c's). */
struct graced_store;
struct graced_store_result {
    int err;      /* 0 stored, or an errno: EEXIST (noreplace, the name is taken),
                     EISDIR, ENOSPC, EDQUOT, EFBIG, EIO, ... */
    int renamed;  /* with err: the name holds the whole content, but the
                     folder's fsync failed (err): it may not survive a crash */
    int changed;  /* If-Match: the version it named is gone (412) */
    int existed;  /* the name was taken before (204 rather than 201) */
    struct stat st; /* the stored file (its ETag) */
};
/* the store is gone once this returns */
typedef void (*graced_store_cb)(const struct graced_store_result *r, void *arg);
/* A temporary file for leaf in folder dirfd (dup'ed), locked, write-back
 * started as it grows. 0, or a negative errno. */
int graced_store_open(struct graced *g, int dirfd, const char *leaf, struct graced_store **out);
int graced_store_fd(const struct graced_store *s); /* write the content here */
/* The content will be size bytes (> 0): its blocks are reserved on the
 * pool (fallocate), then cb(err, arg) runs from the loop: err 0 (also where
 * the filesystem cannot reserve), or ENOSPC, EDQUOT, EFBIG: the disk cannot
 * take it. Call before writing, at most once, and wait for cb (unless the
 * store is abandoned: then it never runs). 0, or -EINVAL for size <= 0. */
typedef void (*graced_store_ready_cb)(int err, void *arg);
int graced_store_reserve(struct graced_store *s, int64_t size, graced_store_ready_cb cb,
                         void *arg);
/* The target's folder is dir (relative to --upload-dir; "" for the top):
 * the commit then also syncs each folder above it (graced_path_sync_dirs),
 * since a folder on the way may be new and not yet on disk. Call before
 * the commit. 0 or -ENOMEM. */
int graced_store_path(struct graced_store *s, const char *dir);
/* Everything is written: fsync, If-Match (if given, copied) checked again,
 * rename (noreplace: never over an existing name), fsync of the folder
 * (and of those above it, after graced_store_path), on
 * the pool; then cb from the loop, never inside this call. err is 0 only
 * once all of it is done: a failed folder fsync is err with renamed set
 * (never retried: a second fsync can report success for what the first
 * lost). 0 or -ENOMEM (nothing happened: abandon it). */
int graced_store_commit(struct graced_store *s, int noreplace, const char *if_match,
                        graced_store_cb cb, void *arg);
/* The owner is gone (before the commit, or during it: then cb never runs).
 * The temporary file is removed once no job uses it; a rename already done
 * stays. NULL is ignored. */
void graced_store_abandon(struct graced_store *s);
/* The same steps for a pool thread that copies (COPY): a locked temporary
 * file for leaf in dirfd (its name into tmp, NAME_MAX + 1 bytes): the fd,
 * or a negative errno; then fsync, rename to name (noreplace: never over
 * an existing name: -EEXIST), the temporary file removed on failure. The
 * folder's fsync is the caller's. 0 or a negative errno. */
int graced_store_tmp_open(int dirfd, const char *leaf, char *tmp, size_t tmplen);
int graced_store_tmp_commit(int dirfd, int fd, const char *tmp, const char *name, int noreplace);
/* A resumable upload's file (partial.c): tmp in folder tmpdirfd, opened
 * and locked without waiting, written at its end. Abandoning it keeps it
 * (closed, its lock let go); a commit needs graced_store_target() first.
 * 0, -EAGAIN (someone else holds its lock), -ENOENT, or a negative errno. */
int graced_store_adopt(struct graced *g, int tmpdirfd, const char *tmp, struct graced_store **out);
/* where a commit puts it: leaf in folder dirfd (dup'ed); 0 or a negative errno */
int graced_store_target(struct graced_store *s, int dirfd, const char *leaf);
/* What is written made durable (fstat, fsync on the pool), then cb from
 * the loop: err 0 and the size synced, or an errno. One at a time, not
 * during a commit; never runs once the store is abandoned. Abandoning the
 * store in cb closes it there (its lock let go), unless write-back runs. 0. */
typedef void (*graced_store_synced_cb)(int err, int64_t size, void *arg);
int graced_store_sync(struct graced_store *s, graced_store_synced_cb cb, void *arg);
int graced_store_init(struct graced *g); /* a worker: its pool, write-back, sweep; -1 */
void graced_store_end(struct graced *g); /* after the server: waits for every job */
int graced_clean_stale(struct graced *g); /* start-up sweep; how many removed */

/* perms.c: who may do what where. want: GRACED_MAY_READ and/or _WRITE;
 * with GRACED_MAY_PASS reading also passes in a folder on the way to one
 * the user may read (a rule /a/b:r lets / and /a be listed). user: a name
 * of --users-file, graced_who_token (a request with the bearer token), or
 * NULL (nobody logged in). path: relative, decoded ("a/b", "" the top), as
 * graced_path_of() makes it; NULL: anywhere at all (a URL that is no path
 * of the tree, such as a resumable upload's). 1 if allowed. */
#define GRACED_MAY_READ 1
#define GRACED_MAY_WRITE 2
#define GRACED_MAY_PASS 4
extern const char graced_who_token[];
int graced_may(const struct graced *g, const char *user, const char *path, int want);
/* the same at path and everywhere below it: no rule of user's for a path
 * inside it gives less (a folder's DELETE, COPY, MOVE take all it holds) */
int graced_may_below(const struct graced *g, const char *user, const char *path, int want);
/* who the request being handled is, as graced_authorize() found it: valid
 * only when the handler starts (copy it to keep it) */
static inline const char *graced_who(const struct graced *g)
{
    return g->who;
}
/* the rules of --users-file lines: "r", "rw", or "/photos:rw,/:r"; 0, or
 * -1 with a reason in why */
struct graced_perms *graced_perms_new(void);
int graced_perms_add(struct graced_perms *pm, const char *name, const char *spec, char *why,
                     size_t whylen);
void graced_perms_free(struct graced_perms *pm);
/* a copy of what user may do, for work off the loop or across a reload
 * (owned by the caller); NULL: out of memory */
struct graced_access;
struct graced_access *graced_access_of(const struct graced *g, const char *user);
int graced_access_may(const struct graced_access *a, const char *path, int want);
void graced_access_free(struct graced_access *a);

/* walk.c: the names below a folder, depth first, as a listing shows them
 * (no dot-names unless --show-hidden, no temporary files, no link followed,
 * only what access lets read); owns a dup of dirfd, never touches the loop */
#define GRACED_WALK_DEPTH 64
struct graced_walk;
struct graced_walk_entry {
    const char *path;  /* below the folder walked: "a/b.txt" (until the next call) */
    const char *name;  /* its last name */
    struct stat st;
    int readable;      /* 0: a folder only on the way to one the user may read */
    int skip;          /* passed over (hidden, a link, not allowed): only counted */
};
/* top: the folder's path below the root, for the rules; NULL: errno */
struct graced_walk *graced_walk_new(int dirfd, const char *top, int show_hidden,
                                    const struct graced_access *access);
/* 1: an entry (maybe one to skip), 0: no more */
int graced_walk_next(struct graced_walk *w, struct graced_walk_entry *e);
int graced_walk_dirfd(const struct graced_walk *w); /* the folder of the last entry */
void graced_walk_free(struct graced_walk *w);

/* session.c: page logins, a cookie naming a session in memory the workers
 * share (made before forking) */
#define GRACED_SESSION_USER 256 /* longest user name a session keeps, with its NUL */
int graced_sessions_init(struct graced *g); /* -1 after a line on stderr */
void graced_sessions_free(struct graced *g);
/* the user of the request's session cookie into user, with the stamp it
 * was made with (graced_auth_stamp); 1, or 0 for none (or over) */
int graced_session_user(struct graced *g, struct grace_request *req, char *user, size_t n,
                        uint64_t *stamp);
/* a new session for user: its Set-Cookie on req; 0 or -1 */
int graced_session_open(struct graced *g, struct grace_request *req, const char *user,
                        uint64_t stamp);
/* the request's session ends (in every worker) and its cookie is cleared */
void graced_session_close(struct graced *g, struct grace_request *req);
/* does a browser send it (Sec-Fetch-Mode)? */
int graced_is_browser(struct grace_request *req);
/* 401: Basic for clients; for browsers a Cookie challenge, and for a page
 * load the login page */
void graced_session_challenge(struct graced *g, struct grace_request *req, const char *msg);
/* partial.c: resumable uploads on disk, in GRACED_PARTIAL_DIR of the
 * upload tree: ID (the bytes so far) and ID.info (what the upload is).
 * The folder's name is also the uploads' URL prefix: a name no client
 * can give a file (graced's temporary prefix). */
#define GRACED_PARTIAL_DIR GRACED_TMP_PREFIX "uploads"
#define GRACED_PARTIAL_ID 32 /* hex digits of an id: 128 random bits */
enum { GRACED_PROTO_TUS = 1, GRACED_PROTO_IETF = 2 };
struct graced_partial {
    char id[GRACED_PARTIAL_ID + 1];
    int proto;            /* the protocol that made it */
    char owner[160];      /* graced_auth_owner() of its creator */
    char dir[4096];       /* the target's folder, relative to the upload tree */
    char name[256];       /* the target's name in it */
    int64_t length;       /* the final size; -1 while not known */
    int noreplace;        /* If-None-Match: * or --no-overwrite */
    char if_match[256];   /* its If-Match, or "" */
    int64_t expiry_ms;    /* --upload-expiry when it was made */
    char metadata[2048];  /* tus Upload-Metadata as sent, or "" */
    int complete;         /* stored under its name (the info stays until it expires) */
    /* from the disk (graced_partial_load, _probe) */
    int has_data;         /* the data file is there */
    int64_t size;         /* its size: the offset */
    int64_t touched_ms;   /* the last write (data's mtime; the info's once complete), ms
                             since the epoch */
};
/* a job on the pool for one upload: the caller's (embed it), alive until done has run */
struct graced_partial_op {
    struct graced_job job;
    struct graced_partial *p;
    int dirfd, what;
    int top;              /* the upload tree (create: the folder's entry synced there) */
    int err;              /* the result: 0 or a negative errno */
    void (*done)(struct graced_partial_op *op);
};
int graced_partial_init(struct graced *g); /* a worker: the folder, worker 1's sweep; -1 */
void graced_partial_end(struct graced *g); /* after graced_store_end() */
/* the folder: made by the first upload (prepare: 0 or -1), opened if there (dirfd) */
int graced_partial_prepare(struct graced *g);
int graced_partial_dirfd(const struct graced *g); /* -1: none yet (or unusable: logged) */
int graced_partial_id_ok(const char *s, size_t n);
/* can a file of that folder be renamed into dirfd (one filesystem)? */
int graced_partial_same_fs(const struct graced *g, int dirfd);
int64_t graced_partial_space(const struct graced *g); /* bytes free there, or -1 */
int64_t graced_partial_expires(const struct graced_partial *p); /* ms since the epoch */
int64_t graced_partial_now(void); /* the same clock: ms since the epoch */
/* on the loop (a small read): 0, -ENOENT, -EINVAL (not an upload's info) */
int graced_partial_load(struct graced *g, const char *id, struct graced_partial *p);
/* on the pool, then op->done from the loop; each 0 or -ENOTSUP (off):
 * create: a new id, an empty data file, the info, all synced;
 * save: the info rewritten (a new file renamed over it, synced);
 * remove: info and data gone, -EAGAIN if someone writes it (its lock);
 * probe: p->size, p->has_data as on the disk, synced first */
int graced_partial_create(struct graced *g, struct graced_partial_op *op,
                          struct graced_partial *p, void (*done)(struct graced_partial_op *op));
int graced_partial_save(struct graced *g, struct graced_partial_op *op, struct graced_partial *p,
                        void (*done)(struct graced_partial_op *op));
int graced_partial_remove(struct graced *g, struct graced_partial_op *op,
                          struct graced_partial *p, void (*done)(struct graced_partial_op *op));
int graced_partial_probe(struct graced *g, struct graced_partial_op *op,
                         struct graced_partial *p, void (*done)(struct graced_partial_op *op));
void graced_partial_sweep_now(struct graced *g); /* worker 1: sweep on the next turn */

/* auth.c: may this request read (write 0) or write (write 1)? If so, cont
 * runs, now or once a password check has run on the helper thread;
 * otherwise the request is answered (401, 403, 429 or 503). */
typedef void (*graced_cont_cb)(struct grace_request *req, struct graced *g);
int graced_auth_load(struct graced *g); /* start-up: -1 after one line on stderr */
void graced_auth_reload(struct graced *g); /* SIGHUP: old users kept on error */
void graced_auth_stop(struct graced *g);   /* a worker ends: the helper thread */
void graced_auth_free(struct graced *g);
void graced_authorize(struct grace_request *req, struct graced *g, int write, graced_cont_cb cont);
/* the page's login (login.c): "Basic ..." made of its form, checked as a
 * header would be (the cache, the limits, the timing); cont runs as that
 * user (graced_who), or the request is answered 401, 429 or 503. What a
 * login may do where is graced_may()'s (perms.c): graced_authorize() asks
 * it for the request's path (a COPY: reading it) and, for COPY and MOVE,
 * for the Destination's (writing). */
void graced_auth_login(struct grace_request *req, struct graced *g, const char *basic,
                       graced_cont_cb cont);
/* a stamp of name's password hash, for sessions; 0: no such user */
uint64_t graced_auth_stamp(const struct graced *g, const char *name);
/* --auth-token-file: its first line into g->token; -1 with errno (EINVAL:
 * no token, EILSEQ: a byte no header can carry) */
int graced_load_token(struct graced *g);
/* "Bearer <the token>", compared in constant time */
int graced_token_ok(const struct graced *g, const char *auth);
/* who a request graced_authorize() let through is, for what it owns (a
 * resumable upload): "user NAME", "token", or "" (no login asked) */
void graced_auth_owner(const struct grace_request *req, const struct graced *g, char *out,
                       size_t n);


/* web.c: headers on every graced answer (HSTS, Server, nosniff, framing,
 * CORS) */
void graced_web_headers(struct grace_request *req, const struct graced *g);
/* a CORS preflight: Access-Control-Allow-Methods (all, or reads: the
 * methods that change no file, for an origin that may not write) and
 * -Headers; nothing for any other request */
void graced_web_preflight(struct grace_request *req, const struct graced *g, const char *all,
                          const char *reads);
/* 1 if the request's Origin may write here: none, this very origin (scheme,
 * host and port), or one of --cors-write */
int graced_web_write_origin_ok(struct grace_request *req, const struct graced *g);
/* start-up: warnings about what the CORS options open (stderr) */
void graced_web_check_options(const struct graced_opts *o);
/* graced's own HTML pages: a strict Content-Security-Policy (no framing);
 * nonce: the one their <script> and <style> carry, or NULL for none */
void graced_web_page_csp(struct grace_request *req, const char *nonce);
/* a fresh nonce for that policy: 22 base64url characters and a NUL */
void graced_web_nonce(char out[24]);

/* guard.c: refusals that come before a method's handler (two Origin
 * headers, control bytes in the path; with whole, Content-Range: the body
 * becomes one file): 1 if the request was answered */
int graced_guard(struct grace_request *req, int whole);

/* route.c: graced's routes on the server (g->srv): --health, --metrics,
 * the tree; 0 or a negative errno */
int graced_routes_add(struct graced *g);

/* addr.c: "127.0.0.1:8080", "[::1]:8080", "localhost:80" (0 or -1), and
 * address lists "10.0.0.0/8", "::1", "127.0.0.1/32" */
int graced_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
struct graced_cidr {
    int family;
    unsigned char addr[16];
    int bits;
};
int graced_cidr_parse(const char *s, struct graced_cidr *c);
int graced_cidr_match(const struct graced_cidr *list, int n, const struct sockaddr *sa);

/* proxy.c */
int graced_proxy_init(struct graced *g); /* start-up checks; -1 after a line on stderr */
/* accept on fd, read the PROXY header, then hand the connection to the
 * server (plain HTTP, or TLS with tls) */
int graced_proxy_listen(struct graced *g, int fd, struct grace_tls *tls);
/* a graceful stop, before the server's: the listen queues accepted, the
 * headers already there read and handed over, the listeners closed; the
 * number of headers still to come, settled(g) once none is (each bounded
 * by --proxy-timeout) */
int graced_proxy_stop(struct graced *g, void (*settled)(struct graced *g));
int graced_proxy_pending(const struct graced *g); /* headers still to come */
void graced_proxy_free(struct graced *g);

/* metrics.c: the mapping is made before forking, so every worker adds to
 * the same counters */
int graced_metrics_init(struct graced *g);
void graced_metrics_serve(struct grace_request *req, struct graced *g);
void graced_health_serve(struct grace_request *req, struct graced *g); /* --health */
void graced_metrics_response(const struct grace_response_info *ri, void *arg);
void graced_metrics_upload(struct graced *g, int64_t bytes);
/* resumable uploads: counters add n, gauges (the sweep's) are set to n */
enum graced_res_metric {
    GRACED_RES_CREATED, GRACED_RES_COMPLETED, GRACED_RES_TERMINATED, GRACED_RES_EXPIRED,
    GRACED_RES_BYTES,      /* appended */
    GRACED_RES_UNFINISHED, /* gauge: uploads not complete */
    GRACED_RES_HELD,       /* gauge: their bytes on disk */
    GRACED_RES__COUNT
};
void graced_metrics_resumable(struct graced *g, enum graced_res_metric m, int64_t n);
void graced_metrics_publish(struct graced *g); /* this worker's library counters */
void graced_metrics_start(struct graced *g);   /* a worker: publish once a second */
void graced_metrics_stop(struct graced *g);
/* the supervisor: worker w (0-based) ended (its gauges zeroed, its counters
 * kept), or was started again (graced_worker_restarts_total) */
void graced_metrics_worker_ended(struct graced *g, int w);
void graced_metrics_worker_restarted(struct graced *g, int w);

/* notify.c: systemd's NOTIFY_SOCKET. Only the main process sends; a worker
 * of several tells the supervisor with GRACED_SIG_UP (sigqueue, its number
 * as the value). Every function is a no-op without NOTIFY_SOCKET. */
#define GRACED_SIG_UP SIGRTMIN
/* start: take NOTIFY_SOCKET and remove it from the environment; 1 if set,
 * 0 if not, -1 if unusable (logged) */
int graced_notify_init(void);
void graced_notify_forget(void); /* a forked worker: never talk to systemd */
/* one message of "KEY=value\n" lines; 1 sent, 0 not under systemd, or a
 * negative errno (logged) */
int graced_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* a worker serves (after its start, and after a SIGHUP's reload): READY=1
 * with one worker, else tell the supervisor (the value: its generation) */
void graced_notify_up(const struct graced *g);
/* the supervisor: is a GRACED_SIG_UP's value of the current generation
 * (about the last SIGHUP, not an earlier start or reload)? */
int graced_notify_current(int value);
/* the supervisor: up of running of total workers say they serve; READY=1
 * once all did (and after a reload), STATUS= when the count changes */
void graced_notify_workers(int up, int running, int total);
/* SIGHUP, in the supervisor: a new generation, RELOADING=1, MONOTONIC_USEC;
 * in a worker, before its reload: the generation it reloads for */
void graced_notify_reloading(void);
void graced_notify_stopping(void);  /* the first stop signal: STOPPING=1 */

/* worker.c: run worker w (0-based) on row w of the sockets until it
 * stops; its exit status. The signals it handles (graced_worker_signals()
 * adds them to a set) wait, blocked, until its handlers exist. */
int graced_worker_run(struct graced *g, const struct graced_socks *s, int w);
void graced_worker_signals(sigset_t *set);

/* supervisor.c: the parent of --workers N > 1, until every worker ended;
 * its exit status */
int graced_supervise(struct graced *g, struct graced_socks *s);

/* reply.c: a short text answer (text/plain; none if body is NULL); does
 * Accept ask for JSON? */
int graced_reply(struct grace_request *req, int status, const char *body);
int graced_wants_json(struct grace_request *req);

/* ---------------------------------------------------------------- WebDAV */

/* xml.c: a request body as a tree. An element has a name (and its
 * namespace URI, "" for none); a text node has name NULL and its text. */
struct graced_xml {
    const char *ns, *name;
    const char *text;
    const char **attrs; /* (ns, name, value) triples, then NULL */
    struct graced_xml *child, *next, *parent;
};
struct graced_xml_doc;
/* 0 with the document (free it) and its root element, or -1: not
 * well-formed, a DOCTYPE, too deep or too many nodes (400) */
int graced_xml_parse(const char *buf, size_t len, struct graced_xml_doc **doc,
                     struct graced_xml **root);
void graced_xml_free(struct graced_xml_doc *doc);
int graced_xml_is(const struct graced_xml *x, const char *ns, const char *name);
/* the first child element with that name, or NULL */
struct graced_xml *graced_xml_child(const struct graced_xml *x, const char *ns, const char *name);
/* s[0..n) as XML text or attribute value: & < > " escaped, control bytes
 * and bytes that are not UTF-8 as U+FFFD */
void graced_xml_esc(struct evbuffer *out, const char *s, size_t n);
/* the element and all below it, standing alone (its namespaces declared) */
void graced_xml_write(struct evbuffer *out, const struct graced_xml *x);

/* ifheader.c: the If header's conditions, in order; list says which list
 * each belongs to, tag (taglen bytes, NULL for none) its resource */
#define GRACED_IF_MAX 64
struct graced_if_cond {
    const char *tag;
    size_t taglen;
    int list, not, etag; /* etag: an entity tag, else a state token */
    const char *s;       /* the token or the entity tag (quotes kept), len bytes */
    size_t len;
};
struct graced_if {
    int n, nlists;
    struct graced_if_cond c[GRACED_IF_MAX];
};
/* 0, or -1 for a malformed header (400); pointers point into h */
int graced_if_parse(const char *h, struct graced_if *out);

/* locktab.c: the locks of every worker (the mapping is made before the
 * workers are forked; none without --upload-dir) */
#define GRACED_LOCK_TOKEN 48   /* "urn:uuid:" and 36 characters, NUL */
#define GRACED_LOCK_OWNER 512  /* the LOCK's DAV:owner, as XML */
#define GRACED_LOCK_PATH 4096
#define GRACED_LOCK_SELF 1     /* locks that cover the path (or a folder above: depth infinity) */
#define GRACED_LOCK_PARENT 2   /* (davcond.c) and those of its folder */
#define GRACED_LOCK_BELOW 4    /* locks on what lies below it */
struct graced_lock {           /* a view of one, valid during a callback */
    const char *token, *owner, *root;
    int shared, infinite;
    int64_t timeout_s, left_s;
};
int graced_locktab_init(struct graced *g); /* start-up; -1 after a line on stderr */
int graced_locktab_active(const struct graced *g); /* are there any? */
/* fn (NULL: count only) for each live lock on path (what: SELF, BELOW);
 * fn runs under the table's mutex: no I/O there; it returns 1 to stop.
 * How many were seen. */
int graced_locktab_find(struct graced *g, const char *path, unsigned what,
                        int (*fn)(const struct graced_lock *l, void *arg), void *arg);
/* a new lock; token receives its token. 0, -EBUSY (a conflicting lock:
 * 423), -ENOSPC (the table is full), -ENAMETOOLONG */
int graced_locktab_add(struct graced *g, const char *path, int shared, int infinite,
                       int64_t timeout_s, const char *owner, char *token);
/* the lock with this token that covers path gets a new timeout; fn sees
 * it. 0 or -ENOENT */
int graced_locktab_refresh(struct graced *g, const char *path, const char *token, size_t len,
                           int64_t timeout_s, int (*fn)(const struct graced_lock *l, void *arg),
                           void *arg);
/* UNLOCK: 0 or -ENOENT (no such lock on path) */
int graced_locktab_remove(struct graced *g, const char *path, const char *token, size_t len);
/* is token a live lock covering path? */
int graced_locktab_holds(struct graced *g, const char *path, const char *token, size_t len);
/* path and all below it are gone (DELETE, MOVE): their locks go too */
void graced_locktab_drop(struct graced *g, const char *path);

/* davcond.c: the If header and the locks on what a write changes: rel
 * with what (GRACED_LOCK_SELF, _PARENT, _BELOW), and dest with dest_what
 * (COPY, MOVE; NULL for none). 0 to go on, or 1: answered (400 malformed
 * If, 412 it does not hold, 423 a lock whose token is not submitted).
 * PUT, the form upload, resumable uploads and every WebDAV write call it. */
int graced_dav_check(struct grace_request *req, struct graced *g, const char *rel,
                     unsigned what, const char *dest, unsigned dest_what);
/* the same without answering: 0 or the status; for 423 root (n bytes)
 * receives the path of the lock whose token is missing */
int graced_dav_test(struct grace_request *req, struct graced *g, const char *rel,
                    unsigned what, const char *dest, unsigned dest_what, char *root, size_t n);
/* graced_dav_check's answer to a status of graced_dav_test (400, 412, 423
 * with root; 0: none), for a caller that adds headers of its own first */
void graced_dav_refuse(struct grace_request *req, int status, const char *root);
/* an answer with a DAV:error body naming a precondition (cond: its local
 * name), with the href of a path (NULL: none) */
void graced_dav_error(struct grace_request *req, int status, const char *cond, const char *href);

/* sink.c: a request's body into an open file: spliced when splice and the
 * library can, else through memory a step per loop iteration, the client
 * paused while the disk is behind. done(err, arg) once: 0, the whole body
 * is in the file; or an errno (a write's, ENOMEM). It may free the sink. */
typedef void (*graced_sink_done_cb)(int err, void *arg);
struct graced_sink *graced_sink_new(struct event_base *base, graced_sink_done_cb done, void *arg);
/* 0, or a negative errno: the body cannot be read (done will not run) */
int graced_sink_start(struct graced_sink *s, struct grace_request *req, int fd, int splice);
/* the body's bytes taken so far; of them, those still in memory */
int64_t graced_sink_received(const struct graced_sink *s);
int64_t graced_sink_buffered(const struct graced_sink *s);
/* what is in memory written now (the request ended): 0 or a negative errno */
int graced_sink_write_out(struct graced_sink *s);
/* take nothing more, never call done (answered otherwise); NULL is fine */
void graced_sink_cancel(struct graced_sink *s);
void graced_sink_free(struct graced_sink *s);

/* davjob.c: work(arg) on the pool, then done(req, g, arg) on the loop,
 * which answers; if the client left meanwhile, done does not run (the job
 * runs all the same). release(arg) (may be NULL) after either. The request
 * holds a stop's deadline (grace_request_hold_stop). 0, or -1: answered 500
 * and released. Call with the request unanswered, its body read. */
int graced_dav_run(struct graced *g, struct grace_request *req, void (*work)(void *arg),
                   void (*done)(struct grace_request *req, struct graced *g, void *arg),
                   void (*release)(void *arg), void *arg);
/* lock.c: one DAV:activelock */
void graced_lock_xml(struct evbuffer *out, const struct graced_lock *l);

/* props.c: dead properties, records "ns\0name\0xml\0" (xml: the
 * property's element, standing alone) in one extended attribute */
/* of an open file or folder: the length read, 0 for none, or a negative
 * errno (-ENOTSUP: the filesystem keeps none) */
ssize_t graced_props_get(int fd, char *buf, size_t n);
/* the same for name in folder dirfd, without opening it */
ssize_t graced_props_get_at(int dirfd, const char *name, char *buf, size_t n);
/* replace them all (len 0: remove). 0 or a negative errno */
int graced_props_set(int fd, const char *buf, size_t len);
/* the next record from *pos: 1, or 0 at the end */
int graced_props_next(const char *buf, size_t len, size_t *pos, const char **ns,
                      const char **name, const char **xml);
/* from's dead properties onto to (COPY). 0 or a negative errno */
int graced_props_copy(int from, int to);

/* tree.c: for pool threads; never follows a symbolic link */
/* the entries below folder fd, counting up to max + 1 (depth <= 64: more
 * counts as max + 1) */
long graced_tree_count(int fd, long max);
/* remove name in dirfd and everything below it. A temporary upload file an
 * upload holds (its lock) stays, and so does its folder. fail(rel, errno)
 * for each entry left (rel: below name). 0 when all of it went, else -1 */
int graced_tree_remove(int dirfd, const char *name,
                       void (*fail)(const char *rel, int err, void *arg), void *arg);

/* handlers */
void graced_propfind(struct grace_request *req, struct graced *g);
void graced_proppatch(struct grace_request *req, struct graced *g);
void graced_mkcol(struct grace_request *req, struct graced *g);
void graced_copymove(struct grace_request *req, struct graced *g);
void graced_lock(struct grace_request *req, struct graced *g);
void graced_unlock(struct grace_request *req, struct graced *g);
/* files.c: the Content-Type a file of that name is served with */
const char *graced_content_type(const char *name);

/* certs.c: every --tls-cert/--tls-key pair into a new context, NULL after
 * one line on stderr; SIGHUP: load them again (the old stay on failure) */
struct grace_tls *graced_certs_load(const struct graced_opts *o);
void graced_certs_reload(struct graced *g);

#endif
